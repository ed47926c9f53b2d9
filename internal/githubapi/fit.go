package githubapi

import (
	"strings"
	"unicode/utf8"
)

// Fit returns body when it is at most limit bytes long; else as many of its
// first lines as fit with pointer (a line saying where the whole text is)
// after them, closing what the cut leaves open so that the rest of the
// comment renders: a code fence is closed, every open <details> gets its
// </details>. A cut never falls inside a Mermaid fence (half a graph does
// not render): the graph is left out whole.
//
// The limit counts bytes, where GitHub counts characters: a character is at
// least one byte, so a body within limit bytes is within limit characters
// whatever its script, and a cut at a line boundary never splits a
// character. (plan.Markdown counts the same way.)
func Fit(body string, limit int, pointer string) string {
	if len(body) <= limit {
		return body
	}
	pointer = strings.TrimRight(pointer, "\n") + "\n"
	best := ""
	bestSet := false
	var st fenceState
	details := 0
	consider := func(end int) {
		if st.open && st.mermaid {
			return
		}
		closers := ""
		if st.open {
			closers += st.marker + "\n"
		}
		if end > 0 {
			closers += "\n" // a blank line ends a table or a paragraph
		}
		closers += strings.Repeat("</details>\n\n", details)
		if end+len(closers)+len(pointer) <= limit {
			best, bestSet = body[:end]+closers+pointer, true
		}
	}
	consider(0)
	for pos := 0; pos < len(body); {
		next := strings.IndexByte(body[pos:], '\n')
		end := len(body)
		if next >= 0 {
			end = pos + next + 1
		}
		line := body[pos:end]
		if next < 0 {
			// The last line has no newline: cut after it with one.
			line += "\n"
		}
		if !st.step(line) {
			lower := strings.ToLower(line)
			details += strings.Count(lower, "<details") - strings.Count(lower, "</details")
			details = max(details, 0)
		}
		pos = end
		if next < 0 {
			body += "\n"
			end++
			pos = end
		}
		consider(end)
	}
	if !bestSet {
		// Not even the pointer fits: as much of it as does.
		cut := max(min(limit, len(pointer)), 0)
		for cut > 0 && cut < len(pointer) && !utf8.RuneStart(pointer[cut]) {
			cut--
		}
		return pointer[:cut]
	}
	return best
}

// fenceState follows CommonMark code fences line by line.
type fenceState struct {
	open    bool
	marker  string // the opening fence: ``` or ~~~~ ...
	mermaid bool
}

// step reads one line and reports whether it is part of a fence (the
// fence lines included), where HTML does not count.
func (f *fenceState) step(line string) bool {
	trimmed := strings.TrimRight(line, "\r\n")
	indent := len(trimmed) - len(strings.TrimLeft(trimmed, " "))
	if indent > 3 {
		return f.open
	}
	t := trimmed[indent:]
	if f.open {
		run := leadingRun(t)
		if run >= len(f.marker) && run > 0 && t[0] == f.marker[0] && strings.TrimSpace(t[run:]) == "" {
			f.open, f.mermaid, f.marker = false, false, ""
		}
		return true
	}
	if !strings.HasPrefix(t, "```") && !strings.HasPrefix(t, "~~~") {
		return false
	}
	run := leadingRun(t)
	info := strings.TrimSpace(t[run:])
	if t[0] == '`' && strings.Contains(info, "`") {
		return false // inline code, not a fence
	}
	f.open, f.marker = true, t[:run]
	lang, _, _ := strings.Cut(info, " ")
	f.mermaid = strings.EqualFold(lang, "mermaid")
	return true
}

// leadingRun is how many times the first byte of s repeats at its start.
func leadingRun(s string) int {
	n := 0
	for n < len(s) && s[n] == s[0] {
		n++
	}
	return n
}
