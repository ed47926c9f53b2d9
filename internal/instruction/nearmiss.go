package instruction

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cib-project/cib/internal/editdistance"
)

// Near misses are lines that were meant as instructions but are not one. They
// are warnings, never errors: the cost of a false alarm on prose is a stray
// warning, the cost of silence is a build nobody asked for. Every rule below is
// therefore narrow enough that the prose found in real history stays quiet.

// nearFilterRE catches a filter whose type word is misspelt, glued on with a
// hyphen ("include-pools:", seen in history) or missing ("include:", also seen).
var nearFilterRE = regexp.MustCompile(`^(include|exclude)s?[\s_-]*([a-z]*)\s*:`)

// missingColonRE catches "include keys win10-64". The rest must look like a
// value list, so that "include regions in the plan" stays prose.
var missingColonRE = regexp.MustCompile(`^(include|exclude)\s+(keys|pools|regions|environments)(?:\s+(.+))?$`)

// nearMiss reports a line that looks like an instruction but is not one.
func (p *parser) nearMiss(n int, text, low string) {
	if hasModePrefix(low) {
		p.nearFilter(n, text, low)
		return
	}
	p.nearFlag(n, text, low)
}

func (p *parser) nearFilter(n int, text, low string) {
	if m := nearFilterRE.FindStringSubmatch(low); m != nil {
		mode, word := m[1], m[2]
		rest := strings.TrimSpace(text[strings.IndexByte(text, ':')+1:])
		if word == "" {
			if t, ok := p.typeOfValues(rest); ok {
				p.diag(n, Warning, text, "the filter type is missing: did you mean %q?", rewrite(mode, t, rest))
				return
			}
			p.diag(n, Warning, text, "the filter type is missing: name it, as in %s keys:, %s pools:, %s regions: or %s environments:",
				mode, mode, mode, mode)
			return
		}
		if t, ok := closeType(word); ok {
			p.diag(n, Warning, text, "not a filter: did you mean %q?", rewrite(mode, t, rest))
		}
		return
	}
	if m := missingColonRE.FindStringSubmatch(low); m != nil {
		mode, t, rest := m[1], FilterType(m[2]), m[3]
		if rest == "" {
			p.diag(n, Warning, text, "not a filter: write %s %s: followed by values separated by commas", mode, t)
			return
		}
		if looksLikeValues(rest) {
			p.diag(n, Warning, text, "missing ':' after %s %s: write %q", mode, t, rewrite(mode, t, rest))
		}
	}
}

// rewrite writes a corrected filter line for a "did you mean" hint.
func rewrite(mode string, t FilterType, rest string) string {
	if rest == "" {
		return fmt.Sprintf("%s %s:", mode, t)
	}
	return fmt.Sprintf("%s %s: %s", mode, t, rest)
}

// closeType says whether a word is close enough to a filter type to be a typo
// of it, and which. The rules follow the typos real users make: the exact word
// with the wrong separator, a truncation ("key", "env"), an extra suffix, or
// one or two wrong letters.
func closeType(word string) (FilterType, bool) {
	for _, t := range knownTypes {
		if word == string(t) || strings.HasPrefix(word, string(t)) {
			return t, true
		}
	}
	if len(word) >= 3 {
		for _, w := range [...]string{word, strings.TrimSuffix(word, "s")} {
			for _, t := range knownTypes {
				if len(w) >= 3 && strings.HasPrefix(string(t), w) {
					return t, true
				}
			}
		}
		best, bestD := FilterType(""), 3
		for _, t := range knownTypes {
			if d, ok := within2(word, string(t)); ok && d < bestD {
				best, bestD = t, d
			}
		}
		if best != "" {
			return best, true
		}
	}
	return "", false
}

// typeOfValues guesses the filter type of an "include: x" line from its values,
// when every value is a known name of one type.
func (p *parser) typeOfValues(rest string) (FilterType, bool) {
	items := strings.Split(strings.ToLower(rest), ",")
	for _, t := range knownTypes {
		all, some := true, false
		for _, item := range items {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			if t == Regions {
				item = NormalizeRegion(item)
			}
			some = true
			all = all && slices.Contains(p.v.of(t), item)
		}
		if some && all {
			return t, true
		}
	}
	return "", false
}

// looksLikeValues says whether text reads as a comma list of names rather
// than as a sentence: no item has white space inside.
func looksLikeValues(text string) bool {
	some := false
	for item := range strings.SplitSeq(text, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if strings.ContainsFunc(item, unicode.IsSpace) {
			return false
		}
		some = true
	}
	return some
}

// flagsLongestFirst orders flags so that a prefix test finds the longest name.
var flagsLongestFirst = func() []Flag {
	fs := slices.Clone(knownFlags[:])
	slices.SortStableFunc(fs, func(a, b Flag) int { return len(b) - len(a) })
	return fs
}()

func (p *parser) nearFlag(n int, text, low string) {
	// A flag with a value: "pool-deploy: gecko-t/win10-64-azure".
	for _, f := range flagsLongestFirst {
		rest, ok := strings.CutPrefix(low, string(f))
		if !ok || rest == "" {
			continue
		}
		r, _ := utf8.DecodeRuneInString(rest)
		value := strings.TrimSpace(rest)
		if r == ':' || (unicode.IsSpace(r) && !strings.ContainsFunc(value, unicode.IsSpace)) {
			p.diag(n, Warning, text, "a flag stands alone on its line: write %s by itself, and values in an include or exclude line", f)
			return
		}
	}

	// A flag spelt with spaces or underscores: "no ci", "Overwrite Machine Image".
	collapsed := collapse(low)
	if i := flagIndex(collapsed); i >= 0 {
		p.diag(n, Warning, text, "not a flag: did you mean %s?", knownFlags[i])
		return
	}

	// A misspelt flag on a line of its own: "overwrite-disk-images", "pool-deplyo".
	if strings.ContainsFunc(low, unicode.IsSpace) || utf8.RuneCountInString(low) < 5 {
		return
	}
	best, bestD := Flag(""), 3
	for _, f := range knownFlags {
		if d, ok := within2(collapsed, string(f)); ok && d < bestD {
			best, bestD = f, d
		}
	}
	if best != "" {
		p.diag(n, Warning, text, "not a flag: did you mean %s?", best)
	}
}

// collapse turns every run of white space, underscores and hyphens into one
// hyphen, the separator flags use.
func collapse(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	sep := false
	for _, r := range s {
		if r == '-' || r == '_' || unicode.IsSpace(r) {
			sep = true
			continue
		}
		if sep {
			b.WriteByte('-')
			sep = false
		}
		b.WriteRune(r)
	}
	if sep {
		b.WriteByte('-')
	}
	return b.String()
}

// suggest returns the known value a user most likely meant: the closest one
// within two edits, else the one sharing the longest prefix, provided that
// prefix covers at least half of what was written ("win2012r2-64-alpha" ->
// "win2012r2-64-l1-alpha"). It returns "" when nothing is close.
func suggest(value string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d, ok := within2(value, k); ok && d < bestD {
			best, bestD = k, d
		}
	}
	if best != "" {
		return best
	}
	bestP, bestD := 0, 0
	for _, k := range known {
		l := commonPrefix(value, k)
		if l < 3 || 2*l < len(value) {
			continue
		}
		d := editdistance.Levenshtein(value, k)
		if l > bestP || (l == bestP && d < bestD) {
			best, bestP, bestD = k, l, d
		}
	}
	return best
}

func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// within2 reports the edit distance of a and b when it is at most 2, the
// largest distance any rule accepts, and skips the work when the lengths
// alone rule that out.
func within2(a, b string) (int, bool) {
	if d := len(a) - len(b); d > 2*utf8.UTFMax || d < -2*utf8.UTFMax {
		return 0, false
	}
	if d := utf8.RuneCountInString(a) - utf8.RuneCountInString(b); d > 2 || d < -2 {
		return 0, false
	}
	d := editdistance.Levenshtein(a, b)
	return d, d <= 2
}
