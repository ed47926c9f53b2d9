package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/cib-project/cib/internal/editdistance"
)

// Pos is a line and column in a YAML file, both 1-based.
type Pos struct{ Line, Column int }

// decoder fills Go values from a YAML node tree strictly: every unknown
// field and every value of the wrong kind is a Problem with its position.
// yaml.v3's own Decode stops at the first unknown field and reports no
// column, and one run should list every mistake, so it is walked by hand.
type decoder struct {
	file     string
	pos      map[string]Pos
	problems Problems
}

func newDecoder(file string) *decoder {
	return &decoder{file: file, pos: map[string]Pos{}}
}

// nodeDecoder is implemented by types that accept more than one YAML shape.
type nodeDecoder interface {
	decodeNode(d *decoder, n *yaml.Node, path string)
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	p := Problem{File: d.file, Path: path, Message: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line, p.Column = n.Line, n.Column
	}
	d.problems = append(d.problems, p)
}

// at returns the position recorded for a path, falling back to its closest
// recorded parent so that a missing field is reported where its parent is.
func (d *decoder) at(path string) Pos {
	for {
		if p, ok := d.pos[path]; ok {
			return p
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return d.pos[""]
		}
		path = path[:i]
	}
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && (n.Kind == yaml.AliasNode || n.Kind == yaml.DocumentNode) {
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		} else if len(n.Content) > 0 {
			n = n.Content[0]
		} else {
			return nil
		}
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

var nodeDecoderType = reflect.TypeOf((*nodeDecoder)(nil)).Elem()

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n != nil {
		if _, seen := d.pos[path]; !seen {
			d.pos[path] = Pos{n.Line, n.Column}
		}
	}
	n = resolve(n)
	if n != nil {
		if _, seen := d.pos[path]; !seen {
			d.pos[path] = Pos{n.Line, n.Column}
		}
	}
	if v.CanAddr() && v.Addr().Type().Implements(nodeDecoderType) {
		if !isNull(n) {
			v.Addr().Interface().(nodeDecoder).decodeNode(d, n, path)
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if isNull(n) {
			return
		}
		nv := reflect.New(v.Type().Elem())
		d.decode(n, nv.Elem(), path)
		v.Set(nv)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "expected a list (lines starting with \"- \"), found %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "expected a mapping (name: value lines), found %s", describe(n))
			return
		}
		m := reflect.MakeMap(v.Type())
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := resolve(n.Content[i])
			if seen[k.Value] {
				d.fail(k, join(path, k.Value), "%q is defined twice in this mapping; keep one", k.Value)
				continue
			}
			seen[k.Value] = true
			ev := reflect.New(v.Type().Elem()).Elem()
			d.decode(n.Content[i+1], ev, join(path, k.Value))
			m.SetMapIndex(reflect.ValueOf(k.Value), ev)
		}
		v.Set(m)
	case reflect.String:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "expected a single value, found %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			d.fail(n, path, "expected a whole number, found %s", describe(n))
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if err != nil {
			d.fail(n, path, "expected a whole number, found %q", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Bool:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			d.fail(n, path, "expected true or false, found %s", describe(n))
			return
		}
		v.SetBool(strings.EqualFold(n.Value, "true"))
	default:
		panic(fmt.Sprintf("config: no YAML decoding for %s", v.Type()))
	}
}

// fieldsOf maps YAML names to struct field indexes, flattening inline
// structs.
func fieldsOf(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if opts == "inline" {
			for k, idx := range fieldsOf(f.Type) {
				out[k] = append([]int{i}, idx...)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = []int{i}
	}
	return out
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping (name: value lines), found %s", describe(n))
		return
	}
	fields := fieldsOf(v.Type())
	seen := map[string]bool{}
	var walk func(m *yaml.Node)
	walk = func(m *yaml.Node) {
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, val := resolve(m.Content[i]), m.Content[i+1]
			if k.Value == "<<" && k.Tag == "!!merge" {
				if r := resolve(val); r != nil && r.Kind == yaml.MappingNode {
					walk(r)
				} else {
					d.fail(val, path, "a merge (<<) needs a mapping")
				}
				continue
			}
			idx, ok := fields[k.Value]
			if !ok {
				d.fail(k, join(path, k.Value), "unknown field %q%s; expected one of: %s",
					k.Value, suggest(k.Value, keysOf(fields)), strings.Join(keysOf(fields), ", "))
				continue
			}
			if seen[k.Value] {
				d.fail(k, join(path, k.Value), "%q is defined twice; keep one", k.Value)
				continue
			}
			seen[k.Value] = true
			d.decode(val, v.FieldByIndex(idx), join(path, k.Value))
		}
	}
	walk(n)
}

func keysOf(m map[string][]int) []string { return sortedKeys(m) }

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing (null)"
		}
		return strconv.Quote(n.Value)
	}
	return "something else"
}

// suggest returns ` (did you mean "x"?)` for the closest known name.
func suggest(got string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if dist := editdistance.Levenshtein(strings.ToLower(got), strings.ToLower(k)); dist < bestD {
			best, bestD = k, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// StringList is a list that the YAML may also write as one scalar
// (destinationPortRange: 22 or a list of ports).
type StringList []string

func (s *StringList) decodeNode(d *decoder, n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.ScalarNode:
		*s = StringList{n.Value}
	case yaml.SequenceNode:
		out := make(StringList, 0, len(n.Content))
		for i, c := range n.Content {
			c = resolve(c)
			if c.Kind != yaml.ScalarNode || isNull(c) {
				d.fail(c, fmt.Sprintf("%s[%d]", path, i), "expected a single value, found %s", describe(c))
				continue
			}
			out = append(out, c.Value)
		}
		*s = out
	default:
		d.fail(n, path, "expected a value or a list of values, found %s", describe(n))
	}
}

func (c *Command) decodeNode(d *decoder, n *yaml.Node, path string) {
	if n.Kind == yaml.ScalarNode {
		c.Text = n.Value
		return
	}
	type plain Command
	var p plain
	d.decodeStruct(n, reflect.ValueOf(&p).Elem(), path)
	*c = Command(p)
	if c.Format == "" {
		d.fail(n, path, "a command is a line of text or {format, tokens}; format is missing")
	}
}

func reflectValue(out any) reflect.Value { return reflect.ValueOf(out).Elem() }
