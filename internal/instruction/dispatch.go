package instruction

import (
	"fmt"
	"slices"
	"strings"
)

// DispatchInputs are the inputs of a manual (workflow_dispatch) run: the four
// filters as comma lists, where "" means not given, and the flags as booleans.
// A filter value that starts with "exclude:" or "include:" (any case) sets the
// mode; otherwise it is an include list.
type DispatchInputs struct {
	Keys, Pools, Regions, Environments string        // include lists, or "exclude: a, b"
	Flags                              map[Flag]bool // true = given; false and absent are the same
}

// FromDispatch builds the instruction model from workflow_dispatch inputs. It
// writes the inputs as instruction lines ("include keys: <value>", one line
// per given filter in FilterTypes order, then one line per true flag in
// AllFlags order) and runs them through the same parser as a commit message,
// so a manual run and a commit message can never disagree. Every diagnostic
// then names its input in Diagnostic.Input; its Line is the synthetic line.
// Filter.Line and FlagLines are 0, since there is no message to point into.
// A true flag that is not a known flag is an error.
func FromDispatch(in DispatchInputs, v Vocabulary) Instructions {
	var lines, inputs []string
	for _, t := range knownTypes {
		value := strings.TrimSpace(dispatchValue(in, t))
		if value == "" {
			continue
		}
		mode := Include
		for _, m := range [...]Mode{Include, Exclude} {
			prefix := string(m) + ":"
			if len(value) >= len(prefix) && strings.EqualFold(value[:len(prefix)], prefix) {
				mode, value = m, strings.TrimSpace(value[len(prefix):])
				break
			}
		}
		// A line break would start a new instruction line; in a list it can
		// only mean "next value".
		value = strings.NewReplacer("\r\n", ",", "\r", ",", "\n", ",").Replace(value)
		lines = append(lines, fmt.Sprintf("%s %s: %s", mode, t, value))
		inputs = append(inputs, string(t))
	}
	for _, f := range knownFlags {
		if in.Flags[f] {
			lines = append(lines, string(f))
			inputs = append(inputs, string(f))
		}
	}

	p := newParser(v, func(n int) string { return "input " + inputs[n-1] })
	for i, l := range lines {
		p.line(i+1, l)
	}

	var unknown []string
	for f, on := range in.Flags {
		if on && !slices.Contains(knownFlags[:], f) {
			unknown = append(unknown, string(f))
		}
	}
	slices.Sort(unknown)
	for _, f := range unknown {
		lines = append(lines, f)
		inputs = append(inputs, f)
		p.diag(len(lines), Error, f, "unknown flag input %q: the flags are %s", f, flagList())
	}

	out := p.finish()
	for i := range out.Diagnostics {
		out.Diagnostics[i].Input = inputs[out.Diagnostics[i].Line-1]
	}
	for t, f := range out.Filters {
		f.Line = 0
		out.Filters[t] = f
	}
	for f := range out.FlagLines {
		out.FlagLines[f] = 0
	}
	return out
}

func dispatchValue(in DispatchInputs, t FilterType) string {
	switch t {
	case Keys:
		return in.Keys
	case Pools:
		return in.Pools
	case Regions:
		return in.Regions
	default:
		return in.Environments
	}
}

func flagList() string {
	names := make([]string, len(knownFlags))
	for i, f := range knownFlags {
		names[i] = string(f)
	}
	return strings.Join(names, ", ")
}
