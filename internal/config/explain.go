package config

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Change is one difference between two sets of canonical inputs.
type Change struct {
	// Path is where the change is, e.g. image.size or
	// packages["nxlog-ce.msi"].unattend[0].command.
	Path string
	// Section is the top-level input the change is in (image, packages, tag…).
	Section string
	// Entry names the list entry the change is in, for named entries.
	Entry string
	// Old is nil when the value was added; New is nil when it was removed.
	Old, New any
}

// Diff lists what changed from old to new. Lists of named entries (shared
// file entries, tags) are compared entry by entry, by name, so that
// inserting one entry reads as one addition, not as every later entry
// changing.
func Diff(old, new Inputs) []Change {
	var out []Change
	for _, k := range unionKeys(old, new) {
		diffValue(k, k, "", old[k], new[k], &out)
	}
	return out
}

func unionKeys(a, b map[string]any) []string {
	m := map[string]any{}
	for k := range a {
		m[k] = nil
	}
	for k := range b {
		m[k] = nil
	}
	return sortedKeys(m)
}

func diffValue(section, path, entry string, a, b any, out *[]Change) {
	if a == nil || b == nil {
		if a != nil || b != nil {
			*out = append(*out, Change{Path: path, Section: section, Entry: entry, Old: a, New: b})
		}
		return
	}
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		for _, k := range unionKeys(am, bm) {
			diffValue(section, path+"."+k, entry, am[k], bm[k], out)
		}
		return
	}
	al, aok := a.([]any)
	bl, bok := b.([]any)
	if aok && bok {
		ai, aNamed := identities(al)
		bi, bNamed := identities(bl)
		if aNamed && bNamed && entry == "" {
			byID := map[string]any{}
			var order []string
			for i, id := range ai {
				byID[id] = al[i]
				order = append(order, id)
			}
			newByID := map[string]any{}
			for i, id := range bi {
				newByID[id] = bl[i]
				if _, seen := byID[id]; !seen {
					order = append(order, id)
				}
			}
			for _, id := range order {
				diffValue(section, fmt.Sprintf("%s[%q]", path, id), id, byID[id], newByID[id], out)
			}
			return
		}
		for i := 0; i < max(len(al), len(bl)); i++ {
			var x, y any
			if i < len(al) {
				x = al[i]
			}
			if i < len(bl) {
				y = bl[i]
			}
			diffValue(section, fmt.Sprintf("%s[%d]", path, i), entry, x, y, out)
		}
		return
	}
	if !sameScalar(a, b) {
		*out = append(*out, Change{Path: path, Section: section, Entry: entry, Old: a, New: b})
	}
}

func sameScalar(a, b any) bool {
	switch x := a.(type) {
	case map[string]any, []any:
		return false
	case json.Number:
		y, ok := b.(json.Number)
		return ok && x == y
	default:
		return a == b
	}
}

// identities names each element of a list of entries by its name (or
// description), numbering repeats; ok is false when an element has neither.
func identities(l []any) ([]string, bool) {
	ids := make([]string, len(l))
	seen := map[string]int{}
	for i, e := range l {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, false
		}
		id, _ := m["name"].(string)
		if id == "" {
			id, _ = m["description"].(string)
		}
		if id == "" {
			return nil, false
		}
		seen[id]++
		if n := seen[id]; n > 1 {
			id = fmt.Sprintf("%s#%d", id, n)
		}
		ids[i] = id
	}
	return ids, true
}

// sharedFiles are the input sections that come from shared files.
var sharedFiles = map[string]string{
	"drivers":                 DriversFile,
	"packages":                PackagesFile,
	"unattend-commands":       UnattendCommandsFile,
	"disable-windows-service": DisabledServicesFile,
}

// Explain turns changes into sentences a person can act on, such as
// `image.size changed 64 → 128` or `packages.yaml entry "nxlog-ce.msi"
// changed (unattend[0].command)`. Several changes inside one shared-file
// entry make one sentence. Product keys are never printed.
func Explain(changes []Change) []string {
	var out []string
	entryFields := map[string][]string{}
	var entryOrder []string
	for _, c := range changes {
		if file, ok := sharedFiles[c.Section]; ok && c.Entry != "" {
			prefix := fmt.Sprintf("%s[%q]", c.Section, c.Entry)
			key := file + "\x00" + c.Entry
			if c.Path == prefix {
				if c.Old == nil {
					out = append(out, fmt.Sprintf("%s entry %q now applies", file, c.Entry))
				} else {
					out = append(out, fmt.Sprintf("%s entry %q no longer applies", file, c.Entry))
				}
				continue
			}
			if _, seen := entryFields[key]; !seen {
				entryOrder = append(entryOrder, key)
			}
			entryFields[key] = append(entryFields[key], strings.TrimPrefix(strings.TrimPrefix(c.Path, prefix), "."))
			continue
		}
		switch c.Section {
		case "format":
			out = append(out, fmt.Sprintf("builder format version changed %s → %s", show(c.Old), show(c.New)))
		case "product-key":
			out = append(out, "product key changed")
		case "disk-image":
			out = append(out, "disk image inputs changed")
		case "platform":
			out = append(out, fmt.Sprintf("platform changed %s → %s", show(c.Old), show(c.New)))
		case "tag":
			if c.Entry != "" && c.Path == fmt.Sprintf("tag[%q]", c.Entry) {
				if c.Old == nil {
					out = append(out, fmt.Sprintf("tag %s added", c.Entry))
				} else {
					out = append(out, fmt.Sprintf("tag %s removed", c.Entry))
				}
				continue
			}
			if c.Entry != "" {
				out = append(out, fmt.Sprintf("tag %s changed %s → %s", c.Entry, show(c.Old), show(c.New)))
				continue
			}
			out = append(out, sentence(c))
		default:
			out = append(out, sentence(c))
		}
	}
	for _, key := range entryOrder {
		file, entry, _ := strings.Cut(key, "\x00")
		out = append(out, fmt.Sprintf("%s entry %q changed (%s)", file, entry, strings.Join(entryFields[key], ", ")))
	}
	return out
}

func sentence(c Change) string {
	switch {
	case c.Old == nil:
		return fmt.Sprintf("%s set to %s", c.Path, show(c.New))
	case c.New == nil:
		return fmt.Sprintf("%s removed (was %s)", c.Path, show(c.Old))
	default:
		return fmt.Sprintf("%s changed %s → %s", c.Path, show(c.Old), show(c.New))
	}
}

func show(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case string:
		if r := []rune(x); len(r) > 40 {
			x = string(r[:39]) + "…"
		}
		return x
	case json.Number:
		return string(x)
	case bool:
		return fmt.Sprint(x)
	case map[string]any:
		return "{…}"
	case []any:
		return "[…]"
	}
	return fmt.Sprint(v)
}
