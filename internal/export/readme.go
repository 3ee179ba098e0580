package export

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// writeReadme writes README.txt: what every file of the archive is and how
// to read and check it, in plain words. It names every file the archive
// will hold.
func writeReadme(w io.Writer, p *plan, person Person, now time.Time) error {
	bw := bufio.NewWriter(w)
	r := &readme{w: bw}

	r.heading("YOUR DATA FROM CANDOR")
	r.para("This archive holds the data your Candor hub keeps about you and the devices in your home. " +
		"It was made for " + quote(person.Username) + " on " + now.Format("2006-01-02") + " at " + now.Format("15:04:05") + " UTC. " +
		"It has the readings the hub stored up to that moment.")
	r.para("Every file is in an open format, so you can read it without Candor. This file tells you what each one is.")

	r.heading("WHAT IS IN IT")
	r.item("README.txt", "This file.")
	r.item("devices.json", "Your devices: the id, name and type of each, its data streams, the files with their readings, "+
		"and the unit of each value.")
	for _, m := range p.manifests {
		r.item(m.path, "Version "+strconv.Itoa(m.version)+" of the data manifest for devices of the type "+quote(m.typ)+". "+
			"A manifest says what a device may send, why, who gets it and how long it is kept. "+
			"This is the exact text the hub held the device to.")
	}
	for _, d := range p.devices {
		for _, s := range d.streams {
			who := quote(d.Name) + " (" + oneLine(d.ID) + ")"
			if strings.TrimSpace(d.Name) == "" {
				who = oneLine(d.ID)
			}
			r.item(s.csvPath, "The readings of the stream "+quote(s.name)+" of "+who+", as a table.")
			r.item(s.senmlPath, "The same readings in SenML (see below).")
		}
	}
	r.item(consentPath, "Your consent choices: which data you allowed, for what, and when. "+
		"It is an empty list ([]) when the hub has recorded none.")
	if p.audit != nil {
		r.item(auditPath, "The hub's transparency log: a record of what the hub did with your data, one JSON object per line. "+
			"The first line holds the log's signed checkpoint, each entry comes with a proof that it is in the log, "+
			"and the last line says how many entries there are. "+
			"The proofs let anyone check that the hub did not change or hide an entry.")
	}
	r.item(sumsPath, "A checksum of each file above, to check that none was damaged or changed (see below).")
	r.item(indexPath, "The list of all other files, with the size in bytes and the SHA-256 checksum of each, "+
		"and the number of readings in each file of readings. It is written last, once all else is done: "+
		"if it is missing, the export did not finish, so ask for a new one.")

	r.heading("TIMES")
	r.para("All times are in UTC, not in your local time. They are written in the form of ISO 8601 (RFC 3339), " +
		"for example 2026-03-01T14:05:09.250Z: the date, a T, the time of day to the thousandth of a second, " +
		"and a Z, which means UTC.")

	r.heading("THE TABLES (.csv)")
	r.para("Each .csv file is a table with one row for each reading, oldest first. Any spreadsheet program opens it. " +
		"The first row names the columns:")
	r.item("time", "When the hub accepted the reading.")
	r.item("seq", "The number of the reading in the hub's store. It only goes up.")
	r.item("manifest_version", "The version of the manifest that was in force when the hub stored the reading. 0 means there was none.")
	r.item("one column for each value", "For example celsius. Numbers are written as the device sent them. "+
		"Yes or no values are written true or false. An empty cell means the reading did not have that value. "+
		"If a value has the same name as one of the other columns, its column is called field: and then its name.")
	r.item(otherColumn, "Any values the manifest does not name, written as JSON. It is almost always empty.")
	r.para("Text that starts with =, +, -, or @ gets a ' in front, so that a spreadsheet does not run it as a formula. " +
		"The SenML files have the text just as the device sent it.")

	r.heading("THE SENML FILES (.senml.json)")
	r.para("SenML (Sensor Measurement Lists) is an open standard for sensor data: RFC 8428 of the IETF, " +
		"https://www.rfc-editor.org/rfc/rfc8428. Many tools for smart devices can read it. " +
		"Each .senml.json file is a JSON list with one record for each value of each reading, like this one:")
	r.code(`{"bn":"dev_k3xq7wz2m4ab:","bt":1.7723664e+09,"n":"temperature:celsius","u":"Cel","t":0.25,"v":21.5}`)
	r.item("n", "The name of the value: the stream, a colon, and the value's own name.")
	r.item("bn", "The device id and a colon. It comes once, in the first record, and goes in front of every name.")
	r.item("bt", "A time, in seconds since 1970-01-01T00:00:00Z. It comes once, in the first record.")
	r.item("t", "When the value was taken: this many seconds after bt. Add t to bt to get the time.")
	r.item("v, vb, vs", "The value: v holds a number, vb true or false, and vs text.")
	r.item("u", "The unit, as a SenML symbol. For example Cel is degrees Celsius, %RH is humidity in percent, "+
		"%EL is battery level in percent, W is watts, kWh is kilowatt hours, beat/min is heartbeats per minute, "+
		"count is a number of things, and / is a ratio from 0 to 1. "+
		"devices.json gives the unit of each value in words next to its symbol. "+
		"When SenML has no symbol for a unit, u is left out.")
	r.item("bver", "26 at the start of a file means it uses kWh or another extra unit of RFC 8798.")
	r.para("A value that SenML cannot hold, such as a list, is only in the .csv file.")

	r.heading("CHECKING THE FILES")
	r.para("To check that no file was damaged or changed, unpack the archive, open a terminal in its folder and run:")
	r.code("sha256sum -c " + sumsPath)
	r.para("Each file should say OK. On a Mac, run: shasum -a 256 -c " + sumsPath)
	r.para("To check one file by hand, run sha256sum and the file's name, for example: sha256sum devices.json. " +
		"The long number it prints must be the same as the sha256 that index.json lists for that file.")

	r.heading("WHAT IS NOT IN IT")
	r.para("Your password and the secrets of your devices are not here. The hub never keeps them in a form anyone can read.")

	if r.err != nil {
		return r.err
	}
	return bw.Flush()
}

type readme struct {
	w     *bufio.Writer
	err   error
	first bool
}

const readmeWidth = 76

func (r *readme) print(s string) {
	if r.err == nil {
		_, r.err = r.w.WriteString(s)
	}
}

func (r *readme) heading(s string) {
	if r.first {
		r.print("\n")
	}
	r.first = true
	r.print(s + "\n\n")
}

func (r *readme) para(s string) { r.print(wrap(s, readmeWidth, "") + "\n") }

func (r *readme) item(name, text string) {
	r.print(oneLine(name) + "\n" + wrap(text, readmeWidth, "    ") + "\n")
}

func (r *readme) code(s string) { r.print("    " + s + "\n\n") }

// wrap breaks text into lines of at most width characters (longer words
// stay whole), each starting with indent.
func wrap(text string, width int, indent string) string {
	var b strings.Builder
	line := indent
	for _, word := range strings.Fields(text) {
		if line != indent && len(line)+1+len(word) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if line != indent {
			line += " "
		}
		line += word
	}
	b.WriteString(line + "\n")
	return b.String()
}

// quote puts a name chosen by people in quotes, on one line.
func quote(s string) string { return fmt.Sprintf("%q", oneLine(s)) }

// oneLine turns control characters (line breaks included) into spaces and
// cuts text to 120 bytes, so names cannot reshape the README.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	if len(s) > 120 {
		cut := 120
		for cut > 0 && !utf8RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
