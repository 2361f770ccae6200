package stanza

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
)

// Element is one XML element as read off the stream: a namespace-qualified
// name, its attributes (namespace declarations left out), the text directly
// inside it, and its child elements. Everything the runtime decides about a
// stanza is decided from an Element, by this package's parsers: the live path
// and the archive path read the same tree with the same code.
type Element struct {
	Name     xml.Name
	Attr     []xml.Attr
	Text     string
	Children []*Element
}

// Limits of one element tree. A stanza's bytes are bounded by the
// connection (xmppconn's inbound cap); these bound what a small stanza can
// make the parser build.
const (
	MaxDepth    = 32     // nesting below the stanza
	MaxElements = 20_000 // elements in one stanza
)

// ErrTooDeep and ErrTooManyElements: a stanza over the tree limits. The
// stream stays readable (the rest of the element was read and dropped).
var (
	ErrTooDeep         = errors.New("stanza: elements nested too deep")
	ErrTooManyElements = errors.New("stanza: too many elements in one stanza")
)

// ReadElement reads the element that start opened, up to and including its
// end, from d. An error from d (a decoder or transport error) is returned as
// it is, and the stream is then unusable; ErrTooDeep and ErrTooManyElements
// leave d at the end of the element, ready for the next one.
func ReadElement(d *xml.Decoder, start xml.StartElement) (*Element, error) {
	root := newElement(start)
	stack := []*Element{root}
	// The text of each open element, by level: byte slices, which the slice
	// of levels may copy as it grows (a strings.Builder may not be copied).
	text := make([][]byte, 1, 8)
	count := 1
	var over error
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			count++
			if over == nil && len(stack) > MaxDepth {
				over = ErrTooDeep
			}
			if over == nil && count > MaxElements {
				over = ErrTooManyElements
			}
			e := newElement(t)
			if over == nil {
				parent := stack[len(stack)-1]
				parent.Children = append(parent.Children, e)
			}
			stack = append(stack, e)
			text = append(text, nil)
		case xml.CharData:
			if over == nil {
				text[len(text)-1] = append(text[len(text)-1], t...)
			}
		case xml.EndElement:
			top := len(stack) - 1
			stack[top].Text = string(text[top])
			stack, text = stack[:top], text[:top]
			if top == 0 {
				if over != nil {
					return nil, over
				}
				return root, nil
			}
		}
	}
}

func newElement(t xml.StartElement) *Element {
	e := &Element{Name: t.Name}
	for _, a := range t.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue // a declaration, already applied to the names
		}
		e.Attr = append(e.Attr, a)
	}
	return e
}

// Is reports whether e is the element {space}local.
func (e *Element) Is(space, local string) bool {
	return e != nil && e.Name.Space == space && e.Name.Local == local
}

// Attribute returns the value of e's unqualified attribute name ("" when absent).
func (e *Element) Attribute(name string) string {
	v, _ := e.lookup(name)
	return v
}

func (e *Element) lookup(name string) (string, bool) {
	if e == nil {
		return "", false
	}
	for _, a := range e.Attr {
		if a.Name.Space == "" && a.Name.Local == name {
			return a.Value, true
		}
	}
	return "", false
}

// Lang is e's xml:lang ("" when absent).
func (e *Element) Lang() string {
	for _, a := range e.Attr {
		if a.Name.Local == "lang" && (a.Name.Space == nsXML || a.Name.Space == "xml") {
			return a.Value
		}
	}
	return ""
}

const nsXML = "http://www.w3.org/XML/1998/namespace"

// Child returns e's first child {space}local, or nil.
func (e *Element) Child(space, local string) *Element {
	if e == nil {
		return nil
	}
	for _, c := range e.Children {
		if c.Is(space, local) {
			return c
		}
	}
	return nil
}

// All returns e's children {space}local.
func (e *Element) All(space, local string) []*Element {
	if e == nil {
		return nil
	}
	var out []*Element
	for _, c := range e.Children {
		if c.Is(space, local) {
			out = append(out, c)
		}
	}
	return out
}

// XML serialises e again, with its namespaces declared where they change, so
// a payload handed on (an IQ's child) is well-formed on its own.
func (e *Element) XML() []byte {
	var b bytes.Buffer
	e.write(&b, "\x00") // no parent namespace matches
	return b.Bytes()
}

func (e *Element) write(b *bytes.Buffer, parentSpace string) {
	b.WriteByte('<')
	b.WriteString(e.Name.Local)
	if e.Name.Space != parentSpace {
		attr(b, "xmlns", e.Name.Space)
	}
	for _, a := range e.Attr {
		switch a.Name.Space {
		case "":
			attr(b, a.Name.Local, a.Value)
		case nsXML, "xml":
			attr(b, "xml:"+a.Name.Local, a.Value)
		} // attributes in other namespaces are dropped: nothing here reads them
	}
	if e.Text == "" && len(e.Children) == 0 {
		b.WriteString("/>")
		return
	}
	b.WriteByte('>')
	_ = xml.EscapeText(b, []byte(e.Text))
	for _, c := range e.Children {
		c.write(b, e.Name.Space)
	}
	b.WriteString("</")
	b.WriteString(e.Name.Local)
	b.WriteByte('>')
}

// ParseElement reads one element from its XML: for tests, fuzzing and
// payloads that arrive as bytes.
func ParseElement(data []byte) (*Element, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("stanza: no element: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			return ReadElement(d, se)
		}
	}
}
