package unattend

import (
	"bytes"
	"strings"
)

// node is one element of the document. A tiny tree plus a hand-written
// printer gives us full control over element order, attribute order and
// indentation, so that the output is byte-for-byte deterministic and golden
// files stay stable; encoding/xml's struct marshalling would need a struct
// type per component for no gain.
type node struct {
	name     string
	attrs    [][2]string
	text     string
	children []*node
}

// el makes an element with child elements; nil children are skipped, as
// in add.
func el(name string, children ...*node) *node {
	return (&node{name: name}).add(children...)
}

// leaf makes an element holding only text.
func leaf(name, text string) *node {
	return &node{name: name, text: text}
}

// attr adds an attribute and returns n, so that calls chain.
func (n *node) attr(name, value string) *node {
	n.attrs = append(n.attrs, [2]string{name, value})
	return n
}

// add appends children, skipping nils so that optional settings can be
// written inline as "nil when not set".
func (n *node) add(children ...*node) *node {
	for _, c := range children {
		if c != nil {
			n.children = append(n.children, c)
		}
	}
	return n
}

// listItem marks an element as a new member of a list, which is how
// Windows setup's schema wants repeated elements.
func listItem(n *node) *node { return n.attr("wcm:action", "add") }

var (
	textEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\r", "&#xD;")
	attrEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;",
		"\r", "&#xD;", "\n", "&#xA;", "\t", "&#x9;")
)

// marshal prints the document with an XML declaration and two-space
// indentation. Only &, <, > (and " in attributes) are escaped: commands are
// full of quotes, and keeping them literal keeps the golden files readable.
func marshal(root *node) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\n")
	write(&b, root, 0)
	return b.Bytes()
}

func write(b *bytes.Buffer, n *node, depth int) {
	indent := strings.Repeat("  ", depth)
	b.WriteString(indent + "<" + n.name)
	for _, a := range n.attrs {
		b.WriteString(" " + a[0] + `="` + attrEscaper.Replace(a[1]) + `"`)
	}
	switch {
	case len(n.children) > 0:
		b.WriteString(">\n")
		for _, c := range n.children {
			write(b, c, depth+1)
		}
		b.WriteString(indent + "</" + n.name + ">\n")
	case n.text != "":
		b.WriteString(">" + textEscaper.Replace(n.text) + "</" + n.name + ">\n")
	default:
		b.WriteString(" />\n")
	}
}
