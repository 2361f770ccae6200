package stanza

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
)

// Fin is the <fin/> that ends a MAM query.
type Fin struct {
	Complete bool
	First    string
	Last     string
	Count    int // -1 when the server didn't say
}

// ParseFin reads the <fin/> payload of a MAM query's IQ result.
func ParseFin(payload []byte) (Fin, error) {
	var v struct {
		XMLName  xml.Name
		Complete string `xml:"complete,attr"`
		Set      struct {
			First string `xml:"first"`
			Last  string `xml:"last"`
			Count *int   `xml:"count"`
		} `xml:"set"`
	}
	if err := xml.Unmarshal(payload, &v); err != nil {
		return Fin{}, fmt.Errorf("stanza: unreadable MAM <fin/>: %w", err)
	}
	if v.XMLName.Local != "fin" || v.XMLName.Space != NSMAM {
		return Fin{}, fmt.Errorf("stanza: MAM answer is <%s xmlns=%q>, not <fin/>", v.XMLName.Local, v.XMLName.Space)
	}
	f := Fin{Complete: v.Complete == "true" || v.Complete == "1", First: v.Set.First, Last: v.Set.Last, Count: -1}
	if v.Set.Count != nil && *v.Set.Count >= 0 {
		f.Count = *v.Set.Count // a negative count says nothing: unknown, as without one
	}
	return f, nil
}

// ParseForwarded reads the inner XML of a MAM <result/>: <forwarded/> holding a
// <delay/> and the archived <message/>.
func ParseForwarded(inner string) (Forwarded, error) {
	var v struct {
		XMLName xml.Name
		Delay   struct {
			Stamp string `xml:"stamp,attr"`
		} `xml:"urn:xmpp:delay delay"`
		Message *struct {
			From     string  `xml:"from,attr"`
			Type     string  `xml:"type,attr"`
			Body     *string `xml:"jabber:client body"`
			OriginID struct {
				ID string `xml:"id,attr"`
			} `xml:"urn:xmpp:sid:0 origin-id"`
			Delay struct {
				Stamp string `xml:"stamp,attr"`
			} `xml:"urn:xmpp:delay delay"`
			X []struct {
				Items []struct {
					JID *string `xml:"jid,attr"`
				} `xml:"http://jabber.org/protocol/muc#user item"`
			} `xml:"http://jabber.org/protocol/muc#user x"`
		} `xml:"jabber:client message"`
	}
	if err := xml.Unmarshal([]byte(inner), &v); err != nil {
		return Forwarded{}, fmt.Errorf("stanza: unreadable MAM result: %w", err)
	}
	if v.XMLName.Local != "forwarded" || v.XMLName.Space != NSForward {
		return Forwarded{}, fmt.Errorf("stanza: MAM result holds <%s xmlns=%q>, not <forwarded/>", v.XMLName.Local, v.XMLName.Space)
	}
	if v.Message == nil {
		return Forwarded{}, errors.New("stanza: MAM result without a <message/>")
	}
	f := Forwarded{From: v.Message.From, Type: v.Message.Type, OriginID: v.Message.OriginID.ID}
	for _, x := range v.Message.X {
		for _, it := range x.Items {
			if it.JID != nil {
				f.RealJIDs = append(f.RealJIDs, *it.JID)
			}
		}
	}
	if v.Message.Body != nil {
		f.Body, f.HasBody = *v.Message.Body, true
	}
	stamp := v.Delay.Stamp
	if stamp == "" {
		stamp = v.Message.Delay.Stamp
	}
	t, err := ParseStamp(stamp)
	if err != nil {
		return Forwarded{}, err
	}
	f.Stamp = t
	return f, nil
}

// ParseError reads an <error/> element's inner XML (its condition and text).
func ParseError(typ string, inner string) *Error {
	e := &Error{Type: typ}
	d := xml.NewDecoder(bytes.NewReader([]byte(inner)))
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 && t.Name.Space == NSStanzas {
				if t.Name.Local == "text" {
					var s string
					if d.DecodeElement(&s, &t) == nil {
						e.Text = s
					}
					depth--
				} else if e.Condition == "" {
					e.Condition = t.Name.Local
				}
			}
		case xml.EndElement:
			depth--
		}
	}
	return e
}

// HasFeature reports whether a disco#info payload lists feature.
func HasFeature(payload []byte, feature string) bool {
	var v struct {
		Features []struct {
			Var string `xml:"var,attr"`
		} `xml:"feature"`
	}
	if xml.Unmarshal(payload, &v) != nil {
		return false
	}
	for _, f := range v.Features {
		if f.Var == feature {
			return true
		}
	}
	return false
}

// FormFields lists the field vars of the data form inside payload (a muc#owner
// query answering a configuration form request).
func FormFields(payload []byte) []string {
	var v struct {
		X struct {
			Fields []struct {
				Var string `xml:"var,attr"`
			} `xml:"field"`
		} `xml:"x"`
	}
	if xml.Unmarshal(payload, &v) != nil {
		return nil
	}
	var out []string
	for _, f := range v.X.Fields {
		if f.Var != "" {
			out = append(out, f.Var)
		}
	}
	return out
}
