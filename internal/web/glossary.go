package web

import (
	"fmt"
	"html/template"
)

// A glossaryEntry explains one term the pages use. Pages link a term to
// its entry with {{term "id" "words"}}; an unknown id fails the page, so a
// link can never dangle.
type glossaryEntry struct {
	ID   string
	Term string
	Text []string // short paragraphs in plain words
}

// glossary is in reading order: from the hub and its people, through what
// a label says, to the security words. Tests hold it to plain English.
var glossary = []glossaryEntry{
	{"hub", "Hub", []string{
		"The hub is this program. It runs on a computer in your home. Your devices send their data to it, and it keeps the data here, not in a company's cloud.",
	}},
	{"household", "Household", []string{
		"A household is a group of people who share devices. You see only the devices of your own household. People in other households cannot see yours.",
	}},
	{"owner", "Owner", []string{
		"An owner of a household can add devices, give them new credentials and turn them off. The person who set up the hub is an owner.",
	}},
	{"member", "Member", []string{
		"A member of a household can see its devices and their data, but cannot change them.",
	}},
	{"device", "Device", []string{
		"A device is a thing that sends data to the hub, like a thermostat, a meter or a door sensor.",
	}},
	{"data-manifest", "Data manifest", []string{
		"A data manifest is a file for each kind of device. It lists every kind of data the device sends, why, who gets it and how long it is kept.",
		"The hub refuses any data that the manifest does not list. So the label cannot lie.",
	}},
	{"label", "Label", []string{
		"The label tells you what the data manifest says, in plain words. It has two layers: a short one that would fit on a box, and a longer one for each stream.",
	}},
	{"stream", "Stream", []string{
		"A stream is one kind of data that a device sends again and again. The room temperature is one stream. Whether the heating is on is another.",
	}},
	{"reading", "Reading", []string{
		"A reading is one message from a device: the values of one stream at one moment.",
	}},
	{"field", "Field", []string{
		"A field is one value in a reading, like the temperature in degrees.",
	}},
	{"purpose", "Purpose", []string{
		"A purpose is why a stream is used, such as to run your heating or to bill you. Some purposes are needed for the device to work. Others are used only if you say yes.",
	}},
	{"recipient", "Recipient", []string{
		"A recipient is someone outside this hub who gets some of your data, like your energy supplier. The label names each one, why they get it and how long they keep it.",
	}},
	{"linked", "Linked to you", []string{
		"Data that is linked to you comes with your name or account. The one who gets it knows it is yours.",
	}},
	{"de-identified", "De-identified", []string{
		"De-identified data has your name and account taken off before it leaves. Someone may still be able to work out that it is yours, so it is not the same as anonymous.",
	}},
	{"anonymous", "Anonymous", []string{
		"Anonymous data has nothing in it that points to you or your home.",
	}},
	{"kept-for", "Kept for", []string{
		"Kept for is the longest time a stream may be kept, as its data manifest says. A recipient may keep its own copy for a different time. The label then says so.",
	}},
	{"snoop", "Can it snoop on me?", []string{
		"This asks what the data could tell someone about you: when you are home, where you are, how you look or sound, or how you are.",
	}},
	{"learning", "Learning and acting by itself", []string{
		"Some systems learn from your data over time, to work better for you. Some act on it by themselves, without asking you each time. The label says which streams are used like this.",
	}},
	{"monitoring", "How the hub watches devices", []string{
		"The hub watches how each device behaves, to spot one that is broken or taken over. It looks only at how many messages a device sends, how big they are, when they come, which topics they use and where it joins from. It never looks at what the messages say.",
		"It compares this with what the maker said the device would do, and with what the device most often does. When something is far off for a few minutes in a row, it tells you. It can slow the device down or put it on hold until you release it.",
		"The hub keeps only these counts, a row for each device and minute, and shows the last day on the device's page. It deletes them after 30 days, or after the time the admin set. A hold stays until you release it. Each alarm, hold and release is written in the transparency log.",
	}},
	{"security-updates", "Security updates", []string{
		"Security updates fix flaws that could let someone break into a device. The maker says until when they will send them.",
	}},
	{"end-of-support", "End of support", []string{
		"End of support is the day security updates stop. After it, flaws found in the device are not fixed. Think about replacing a device once its support has ended.",
	}},
	{"firmware", "Firmware", []string{
		"Firmware is the software inside a device. Each version has a number. The device tells the hub which one it runs, so the hub can tell you about flaws in it.",
	}},
	{"security-advisory", "Security flaw", []string{
		"A security advisory is a notice from a maker or a group of experts. It says that some versions of a device have a flaw, how bad it is, and how to fix it.",
		"The hub checks each notice against the version your device runs. A notice that says your version is safe does not warn you.",
	}},
	{"credential", "Credential", []string{
		"A credential is what a device uses to prove who it is: its id and a long secret. The hub makes a new one for each device, and no two are the same.",
		"The hub shows the secret once. It keeps only a hash of it, so nobody can read it back.",
	}},
	{"hash", "Hash", []string{
		"A hash is a scrambled form of a secret. The hub can check a secret against it, but nobody can turn it back into the secret.",
	}},
	{"rotate", "New credential", []string{
		"Making a new credential replaces the old secret. The old one stops working at once, so you must put the new one in the device.",
	}},
	{"revoke", "Revoke", []string{
		"To revoke a credential is to turn it off for good. The device can no longer connect. The data it sent before stays.",
	}},
	{"refused-data", "Refused data", []string{
		"Refused data is a reading that broke the device's data manifest, for example with a field the label does not list. The hub does not keep it.",
		"The hub counts such readings and shows where they went wrong, but never what they said.",
	}},
	{"mqtt", "MQTT", []string{
		"MQTT is the way most devices talk to the hub. Each device connects with its own credential and may send only its own data.",
	}},
	{"mosquitto-pub", "mosquitto_pub", []string{
		"A small program for tests. It sends one reading to the hub as if it were the device, so you can check that the credential works.",
	}},
	{"session", "Session", []string{
		"A session is one place where you are logged in, like this browser. You can end any of your sessions on the security page.",
	}},
	{"api-token", "API token", []string{
		"An API token lets a program use the hub in your name. It is a kind of session. Keep it as safe as a password.",
	}},
	{"passphrase", "Passphrase", []string{
		"A passphrase is a password made of a few words, like \"violet canyon drifting\". It is long, so it is hard to guess, but easy to remember.",
		"The hub refuses known default passwords, short ones and simple patterns.",
	}},
	{"setup-token", "Setup token", []string{
		"The setup token is a code the hub prints when it starts for the first time. It lets one person make the first account. It works only once.",
	}},
	{"consent", "Consent", []string{
		"Consent means you choose, for each stream and purpose, whether your data may be used for it. Turn it off, and the hub stops keeping or sharing that data from the next reading on.",
		"Each person in a household may choose. The switches are on each device's page.",
	}},
	{"receipt", "Receipt", []string{
		"A receipt is a small file the hub gives you for each choice you make. It says what you chose, when, and what the label said then.",
		"The hub signs it with its own key. So you can prove later what you chose, and nobody can change the file without it showing.",
	}},
	{"export", "Export", []string{
		"An export is a copy of your data in one file that you can take with you. It uses common formats that other programs can open.",
	}},
	{"crypto-shredding", "Crypto-shredding", []string{
		"Crypto-shredding deletes data by destroying the key that unlocks it. Without the key, nobody can read the data again, and that holds at once, however much data there is.",
		"This hub does it when you delete your account. Then it clears the locked data away in the background. A backup made before that still has the keys, so delete old backups too.",
	}},
	{"transparency-log", "Transparency log", []string{
		"A transparency log is a record that can only grow. When someone reads your data or changes a device, a credential or an account, the hub adds a line to it, and says who did it.",
		"Nothing can be changed or taken out without it showing, and anyone can check that.",
	}},
	{"checkpoint", "Checkpoint", []string{
		"A checkpoint is a short note, signed by the hub, that sums up the whole transparency log at one moment. Save it.",
		"Later, you can check that the log only grew since then, and that no line was changed or taken out.",
	}},
	{"proof", "Proof", []string{
		"A proof shows that one line is in the transparency log that a checkpoint sums up. It is a short list of hashes. A program can check it in a moment.",
	}},
	{"verifier-key", "Verifier key", []string{
		"The verifier key is the public half of the key the hub signs its checkpoints with. With it, anyone can check that a checkpoint came from this hub.",
	}},
}

var glossaryIDs = func() map[string]bool {
	m := make(map[string]bool, len(glossary))
	for _, e := range glossary {
		m[e.ID] = true
	}
	return m
}()

// termLink links words on a page to their glossary entry.
func termLink(id, words string) (template.HTML, error) {
	if !glossaryIDs[id] {
		return "", fmt.Errorf("glossary has no entry %q", id)
	}
	return template.HTML(`<a class="term" href="/learn#` + id + `">` + template.HTMLEscapeString(words) + `</a>`), nil
}
