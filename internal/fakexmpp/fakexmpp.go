// Package fakexmpp is the server side of an XMPP stream, as little of it as a
// fake server needs: it logs a client in (plain text, SASL PLAIN accepting any
// password, resource binding) and then reads the client's stanzas and writes
// raw XML back. The test servers of internal/xmpptest and the benchmarks' fake
// MUC service are built on it.
package fakexmpp

import (
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Element is a stanza the client sent, with its raw XML.
type Element struct {
	XMLName xml.Name
	Attr    []xml.Attr `xml:",any,attr"`
	Inner   string     `xml:",innerxml"`
}

// Get returns the value of the attribute name.
func (e Element) Get(name string) string {
	for _, a := range e.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// Child decodes the first child element named local into v.
func (e Element) Child(local string, v any) bool {
	d := xml.NewDecoder(strings.NewReader(e.Inner))
	for {
		tok, err := d.Token()
		if err != nil {
			return false
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == local {
			return d.DecodeElement(v, &se) == nil
		}
	}
}

// Stream is one client's stream, after login.
type Stream struct {
	Conn net.Conn
	JID  string // the client's full JID
	dec  *xml.Decoder
}

// Login plays the server's part of a login on c, within timeout, and returns
// the stream ready for stanzas. sawAuth, when set, is called when the client
// sends its credentials.
func Login(c net.Conn, domain string, timeout time.Duration, sawAuth func()) (*Stream, error) {
	_ = c.SetDeadline(time.Now().Add(timeout))
	defer func() { _ = c.SetDeadline(time.Time{}) }()
	header := fmt.Sprintf(`<?xml version='1.0'?><stream:stream from='%s' id='%d' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`, domain, time.Now().UnixNano())
	dec := xml.NewDecoder(c)
	if err := awaitStreamStart(dec); err != nil {
		return nil, err
	}
	fmt.Fprint(c, header+`<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>`)
	if _, err := next(dec); err != nil { // <auth/>
		return nil, err
	}
	if sawAuth != nil {
		sawAuth()
	}
	fmt.Fprint(c, `<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`)
	dec = xml.NewDecoder(c) // the client restarts the stream
	if err := awaitStreamStart(dec); err != nil {
		return nil, err
	}
	fmt.Fprint(c, header+`<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>`)
	bind, err := next(dec)
	if err != nil {
		return nil, err
	}
	var res struct {
		Resource string `xml:"resource"`
	}
	bind.Child("bind", &res)
	jid := "user@" + domain + "/" + res.Resource
	fmt.Fprintf(c, `<iq type='result' id='%s'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>%s</jid></bind></iq>`, bind.Get("id"), jid)
	return &Stream{Conn: c, JID: jid, dec: dec}, nil
}

// Next returns the client's next stanza; io.EOF when it closed its stream.
func (st *Stream) Next() (Element, error) { return next(st.dec) }

// Send writes raw XML to the client.
func (st *Stream) Send(xml string) error {
	_, err := io.WriteString(st.Conn, xml)
	return err
}

func awaitStreamStart(dec *xml.Decoder) error {
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "stream" {
			return nil
		}
	}
}

func next(dec *xml.Decoder) (Element, error) {
	for {
		tok, err := dec.Token()
		if err != nil {
			return Element{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			var e Element
			err := dec.DecodeElement(&e, &t)
			return e, err
		case xml.EndElement:
			return Element{}, io.EOF // </stream:stream>
		}
	}
}
