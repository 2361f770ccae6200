package stanza

import (
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

// ParseForwarded reads the inner XML of a MAM <result/> (<forwarded/> holding
// a <delay/> and the archived <message/>) with the same parser as the stream.
func ParseForwarded(inner string) (Forwarded, error) {
	e, err := ParseElement([]byte(inner))
	if err != nil {
		return Forwarded{}, fmt.Errorf("stanza: unreadable MAM result: %w", err)
	}
	if !e.Is(NSForward, "forwarded") {
		return Forwarded{}, fmt.Errorf("stanza: MAM result holds <%s xmlns=%q>, not <forwarded/>", e.Name.Local, e.Name.Space)
	}
	r := parseMAMResult("", &Element{Name: xml.Name{Space: NSMAM, Local: "result"}, Children: []*Element{e}})
	if r.Unreadable != "" {
		return Forwarded{}, errors.New("stanza: " + r.Unreadable)
	}
	return r.Message, nil
}

// ParseError reads an <error/> element's inner XML (its condition and text),
// with the same parser as the stream.
func ParseError(typ string, inner string) *Error {
	e, err := ParseElement([]byte("<error xmlns='" + NSClient + "'>" + inner + "</error>"))
	if err != nil {
		return &Error{Type: typ, Condition: "undefined-condition"}
	}
	out := parseError(e)
	out.Type = typ
	return out
}

// HasFeature reports whether a disco#info payload lists feature.
func HasFeature(payload []byte, feature string) bool {
	e, err := ParseElement(payload)
	if err != nil || !e.Is(NSDiscoInfo, "query") {
		return false
	}
	for _, f := range e.All(NSDiscoInfo, "feature") {
		if f.Attribute("var") == feature {
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
