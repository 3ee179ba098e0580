package apps

import (
	"strings"
	"testing"
)

// FuzzTopicFilter feeds the topic filters and topic names apps send (the
// outside input this package parses) to the matcher and the reading-topic
// splitter: they must not panic, a topic always matches itself and '#',
// and a split reading topic joins back to the same topic.
func FuzzTopicFilter(f *testing.F) {
	for _, s := range [][2]string{
		{"candor/#", "candor/dev_a/temperature"},
		{"candor/+/temperature", "candor/dev_a/temperature"},
		{"+/+/+", "$SYS/x/y"},
		{"candor/dev_a/control/#", "candor/dev_a/control/temperature"},
		{"", ""},
		{"#/x", "a//b"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, filter, topic string) {
		_ = matchFilter(filter, topic)
		if strings.ContainsAny(topic, "+#") {
			return
		}
		if !matchFilter(topic, topic) {
			t.Errorf("topic %q does not match itself", topic)
		}
		if !strings.HasPrefix(topic, "$") && !matchFilter("#", topic) {
			t.Errorf("topic %q does not match #", topic)
		}
		if d, s, ok := ReadingTopic(topic); ok && TopicRoot+"/"+d+"/"+s != topic {
			t.Errorf("ReadingTopic(%q) = %q, %q", topic, d, s)
		}
	})
}
