package config

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Error lists every problem found in one configuration file. Parse and Load
// return it (as *Error) whenever validation fails.
type Error struct {
	Path     string    // the file's path as given to Parse or Load
	Problems []Problem // in document order; never empty
}

// Error renders all problems on one line:
// configuration file "<path>" has N problems: <first>; <second>; ...
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "configuration file %q has %d problem", e.Path, len(e.Problems))
	if len(e.Problems) != 1 {
		b.WriteByte('s')
	}
	for i, p := range e.Problems {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// Problem is one violation of the configuration rules.
type Problem struct {
	// Runtime is the id of the <runtime> the problem is in, as written
	// (trimmed), or "#N" for the N-th <runtime> (1-based) when it has no
	// usable id. It is "" for file-level problems, including problems of
	// top-level <backend> elements (their message names the backend).
	Runtime string

	// Element names the element and attribute at fault: "id",
	// "setting@memory_mb", "shared_directory@access", "backend@type",
	// "device_request/deviceid", "backend/port", "coordinator@prewarm".
	// "a@b" is attribute b of element a, "a/b" is child element b of a. It
	// is "" for problems of the document as a whole (malformed XML, size).
	Element string

	// Message says what is wrong: lower-case, one line, no trailing period,
	// quoting the offending value.
	Message string
}

// String renders the problem on one line, for example
// runtime "plc_python": <setting memory_mb>: container memory size must be greater than 0, got "-5"
func (p Problem) String() string {
	var b strings.Builder
	switch {
	case p.Runtime == "":
	case isPositionLabel(p.Runtime):
		b.WriteString("runtime ")
		b.WriteString(p.Runtime)
		b.WriteString(": ")
	default:
		b.WriteString("runtime ")
		b.WriteString(quote(p.Runtime))
		b.WriteString(": ")
	}
	if p.Element != "" {
		for part := range strings.SplitSeq(p.Element, "/") {
			b.WriteByte('<')
			b.WriteString(strings.Replace(part, "@", " ", 1))
			b.WriteByte('>')
		}
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// positionLabel is the Problem.Runtime (or backend label) of the n-th
// element, 1-based, when it has no usable name.
func positionLabel(n int) string {
	return "#" + strconv.Itoa(n)
}

// isPositionLabel reports whether s was made by positionLabel. Valid ids
// never start with '#'; an invalid id that looks like a label still renders
// unambiguously because its own problem quotes it.
func isPositionLabel(s string) bool {
	if len(s) < 2 || s[0] != '#' {
		return false
	}
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// maxQuoted is the longest value, in bytes, that messages quote in full.
const maxQuoted = 80

// quote returns s as a Go string literal for a message, shortened to
// maxQuoted bytes (on a rune boundary) with "..." appended, so that a huge
// value cannot blow up a log line and control characters stay escaped.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}
