package instruction

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// filterRE is the one accepted filter syntax. It runs on the lower-cased line.
// One or more blanks separate the two words; none is needed after the colon
// because "include keys:win10-64" is the most common form in real history.
var filterRE = regexp.MustCompile(`^(include|exclude)[ \t]+(keys|pools|regions|environments)[ \t]*:(.*)$`)

// Parse reads the instruction lines of a commit message. It is pure and never
// fails: a problem is a Diagnostic, so that the plan can report every problem
// at once instead of stopping at the first.
func Parse(message string, v Vocabulary) Instructions {
	p := newParser(v, lineRef)
	p.message(strings.TrimPrefix(message, "\ufeff"))
	return p.finish()
}

// lineRef points at another line of a commit message from inside a message.
func lineRef(n int) string { return fmt.Sprintf("line %d", n) }

// seenFilter remembers the first line of a filter type, for the combination rules.
type seenFilter struct {
	line int
	mode Mode
}

// parser holds the state of one Parse call.
type parser struct {
	v   Vocabulary
	ref func(line int) string // how a message names another line

	flagLine [len(knownFlags)]int    // first line of each flag, 0 if absent
	flagText [len(knownFlags)]string // text of that line
	seen     [len(knownTypes)]seenFilter
	out      Instructions
}

func newParser(v Vocabulary, ref func(int) string) *parser {
	return &parser{
		v:   v,
		ref: ref,
		out: Instructions{
			Flags:       []Flag{},
			Filters:     map[FilterType]Filter{},
			Diagnostics: []Diagnostic{},
			FlagLines:   map[Flag]int{},
		},
	}
}

// message feeds every line of s to line; \n, \r\n and \r all end a line.
func (p *parser) message(s string) {
	n, start := 1, 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\n' || c == '\r' {
			p.line(n, s[start:i])
			n++
			if c == '\r' && i+1 < len(s) && s[i+1] == '\n' {
				i++
			}
			start = i + 1
		}
	}
	p.line(n, s[start:])
}

func (p *parser) diag(n int, sev Severity, text, format string, args ...any) {
	p.out.Diagnostics = append(p.out.Diagnostics, Diagnostic{
		Line: n, Severity: sev, Text: text, Message: fmt.Sprintf(format, args...),
	})
}

// line classifies one line: a flag, a filter, a near miss, or prose.
func (p *parser) line(n int, raw string) {
	text := strings.TrimSpace(raw)
	if text == "" {
		return
	}
	low := strings.ToLower(text)
	if i := flagIndex(low); i >= 0 {
		if p.flagLine[i] == 0 { // a repeated flag has no further effect
			p.flagLine[i], p.flagText[i] = n, text
		}
		return
	}
	if hasModePrefix(low) {
		if m := filterRE.FindStringSubmatch(low); m != nil {
			p.filter(n, text, Mode(m[1]), FilterType(m[2]), m[3])
			return
		}
	}
	p.nearMiss(n, text, low)
}

// flagIndex returns the index in knownFlags of an exact flag name, or -1.
func flagIndex(low string) int {
	for i, f := range knownFlags {
		if string(f) == low {
			return i
		}
	}
	return -1
}

// hasModePrefix is a cheap test that spares most lines the regular expressions.
func hasModePrefix(low string) bool {
	return strings.HasPrefix(low, "include") || strings.HasPrefix(low, "exclude")
}

func typeIndex(t FilterType) int {
	return slices.Index(knownTypes[:], t)
}

// filter handles a well-formed filter line. The combination rules are checked
// first so that their errors, the more fundamental ones, are listed first.
func (p *parser) filter(n int, text string, mode Mode, t FilterType, rest string) {
	ti := typeIndex(t)
	first := p.seen[ti]
	if first.line != 0 {
		// The first line stays in effect; this one is only checked and dropped.
		if first.mode == mode {
			p.diag(n, Error, text, "%s %s is already given (see %s): put all values on that line, separated by commas, and delete this one",
				mode, t, p.ref(first.line))
		} else {
			p.diag(n, Error, text, "%s %s contradicts %s %s (see %s): keep one of the two",
				mode, t, first.mode, t, p.ref(first.line))
		}
	} else {
		p.seen[ti] = seenFilter{line: n, mode: mode}
		other := Pools
		if t == Pools {
			other = Keys
		}
		if o := p.seen[typeIndex(other)]; (t == Keys || t == Pools) && o.line != 0 {
			p.diag(n, Error, text, "key and pool filters cannot be combined (%s filters %s): a key is selected through its pools, so keep one of the two",
				p.ref(o.line), other)
		}
	}

	values := p.values(n, text, t, rest)
	if len(values) == 0 {
		p.diag(n, Error, text, "no values; list them separated by commas, or delete the line")
	}
	if first.line == 0 {
		p.out.Filters[t] = Filter{Mode: mode, Values: values, Line: n}
	}
}

// values splits, normalizes and checks the values of a filter line.
func (p *parser) values(n int, text string, t FilterType, rest string) []string {
	known := p.v.of(t)
	values := []string{}
	var seen map[string]bool
	for item := range strings.SplitSeq(rest, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		value, suffix := item, ""
		switch t {
		case Regions:
			value = NormalizeRegion(item)
		case Keys:
			for _, s := range [...]string{".yaml", ".yml"} {
				if strings.HasSuffix(value, s) && len(value) > len(s) {
					value, suffix = strings.TrimSuffix(value, s), s
					break
				}
			}
		}
		if seen != nil {
			if seen[value] {
				continue
			}
			seen[value] = true
		} else if slices.Contains(values, value) {
			continue
		} else if len(values) == 16 {
			// Past a handful of values a set keeps long lists linear.
			seen = make(map[string]bool, 32)
			for _, v := range values {
				seen[v] = true
			}
			seen[value] = true
		}
		values = append(values, value)

		if suffix != "" {
			p.diag(n, Warning, text, "a key is named without its %s suffix: write %s", suffix, value)
		}
		if t != Regions && strings.ContainsFunc(value, unicode.IsSpace) {
			p.diag(n, Error, text, "%q is not one %s: separate values with commas (%s)",
				value, t.singular(), strings.Join(strings.Fields(value), ", "))
			continue
		}
		if slices.Contains(known, value) {
			continue
		}
		switch t {
		case Keys, Environments:
			p.diag(n, Error, text, "unknown %s %q: %s", t.singular(), value, p.knownHint(t, value))
		case Pools:
			if i := strings.IndexByte(value, '/'); i <= 0 || i == len(value)-1 || strings.Count(value, "/") != 1 {
				p.diag(n, Warning, text, "pools are written domain/variant, e.g. %s; %q matches nothing%s",
					p.examplePool(), value, p.otherTypeHint(value, Pools))
			} else {
				p.diag(n, Warning, text, "unknown pool %q matches nothing: %s", value, p.knownHint(t, value))
			}
		case Regions:
			p.diag(n, Warning, text, "unknown region %q matches nothing: %s", value, p.regionHint(item, value))
		}
	}
	return values
}

// knownHint says what to write instead of an unknown value.
func (p *parser) knownHint(t FilterType, value string) string {
	known := p.v.of(t)
	if s := suggest(value, known); s != "" {
		return fmt.Sprintf("did you mean %q?", s)
	}
	if len(known) == 0 {
		return fmt.Sprintf("the configuration defines no %s", t)
	}
	if len(known) <= 5 {
		return fmt.Sprintf("use one of %s", strings.Join(known, ", "))
	}
	return fmt.Sprintf("use a %s defined in the configuration", t.singular())
}

// regionHint spots a space-separated list of regions, which NormalizeRegion
// would otherwise glue into one unknown name.
func (p *parser) regionHint(item, value string) string {
	if parts := strings.Fields(item); len(parts) > 1 {
		all := true
		for _, part := range parts {
			all = all && slices.Contains(p.v.Regions, NormalizeRegion(part))
		}
		if all {
			return fmt.Sprintf("separate values with commas (%s)", strings.ToLower(strings.Join(parts, ", ")))
		}
	}
	return p.knownHint(Regions, value)
}

// examplePool shows the pool syntax with a pool the configuration really has.
func (p *parser) examplePool() string {
	for _, pool := range p.v.Pools {
		if strings.Count(pool, "/") == 1 {
			return pool
		}
	}
	return "gecko-t/win10-64-azure"
}

// otherTypeHint notices a value written under the wrong filter type, as in
// "include pools: northeurope".
func (p *parser) otherTypeHint(value string, t FilterType) string {
	for _, o := range knownTypes {
		if o == t {
			continue
		}
		v := value
		if o == Regions {
			v = NormalizeRegion(value)
		}
		if slices.Contains(p.v.of(o), v) {
			return fmt.Sprintf(" (%s is a %s: did you mean \"include %s: %s\"?)", v, o.singular(), o, v)
		}
	}
	return ""
}

// finish applies the rules between flags and puts the result in order.
func (p *parser) finish() Instructions {
	idx := func(f Flag) int { return slices.Index(knownFlags[:], f) }
	for i, f := range knownFlags {
		if n := p.flagLine[i]; n != 0 {
			p.out.Flags = append(p.out.Flags, f)
			p.out.FlagLines[f] = n
		}
	}
	for _, f := range [...]Flag{NoCI, NoActionsCI} {
		if n := p.flagLine[idx(f)]; n != 0 && (p.out.Skip == "" || n < p.out.FlagLines[p.out.Skip]) {
			p.out.Skip = f
		}
	}

	pd := idx(PoolDeploy)
	for _, f := range [...]Flag{OverwriteDiskImage, OverwriteMachineImage} {
		o := idx(f)
		if p.flagLine[pd] == 0 || p.flagLine[o] == 0 {
			continue
		}
		later, other := o, pd
		if p.flagLine[pd] > p.flagLine[o] {
			later, other = pd, o
		}
		p.diag(p.flagLine[later], Error, p.flagText[later], "pool-deploy skips image builds; %s asks to rebuild them: keep one (see %s)",
			f, p.ref(p.flagLine[other]))
	}
	if ntc := idx(NoTaskclusterCI); p.flagLine[ntc] != 0 {
		for _, f := range [...]Flag{PoolDeploy, OverwriteDiskImage, OverwriteMachineImage, NoVerify} {
			if i := idx(f); p.flagLine[i] != 0 {
				p.diag(p.flagLine[i], Warning, p.flagText[i], "%s has no effect: no-taskcluster-ci skips every image-build, pool and verify job (see %s); delete one of the two",
					f, p.ref(p.flagLine[ntc]))
			}
		}
	}

	slices.Sort(p.out.Flags)
	slices.SortStableFunc(p.out.Diagnostics, func(a, b Diagnostic) int {
		if c := cmp.Compare(a.Line, b.Line); c != 0 {
			return c
		}
		return cmp.Compare(severityRank(a.Severity), severityRank(b.Severity))
	})
	return p.out
}

func severityRank(s Severity) int {
	if s == Error {
		return 0
	}
	return 1
}
