package config

import (
	"fmt"
	"strings"
)

// RelayPlaceholders are what a relay's format may name, each in braces:
// {sender} (the original sender's nick, or its handle), {content}, {topic}
// (the source topic), {id} (the original message's id) and {timestamp} (RFC
// 3339, UTC). {{ and }} are literal braces.
var RelayPlaceholders = []string{"sender", "content", "topic", "id", "timestamp"}

// relaySegment is a literal text, or a placeholder (name set).
type relaySegment struct{ text, name string }

// parseRelayFormat splits format into literals and placeholders; an unknown
// placeholder, an unclosed or unmatched brace, or a format without {content}
// is an error.
func parseRelayFormat(format string) ([]relaySegment, error) {
	var segs []relaySegment
	var lit strings.Builder
	hasContent := false
	for i := 0; i < len(format); i++ {
		c := format[i]
		switch {
		case c == '{' && i+1 < len(format) && format[i+1] == '{', c == '}' && i+1 < len(format) && format[i+1] == '}':
			lit.WriteByte(c)
			i++
		case c == '{':
			end := strings.IndexByte(format[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("%q: a { is not closed (write {{ for a literal brace)", format)
			}
			name := format[i+1 : i+end]
			known := false
			for _, p := range RelayPlaceholders {
				known = known || p == name
			}
			if !known {
				return nil, fmt.Errorf("%q: unknown placeholder {%s} (known: {%s}; {{ and }} are literal braces)", format, name, strings.Join(RelayPlaceholders, "}, {"))
			}
			hasContent = hasContent || name == "content"
			if lit.Len() > 0 {
				segs = append(segs, relaySegment{text: lit.String()})
				lit.Reset()
			}
			segs = append(segs, relaySegment{name: name})
			i += end
		case c == '}':
			return nil, fmt.Errorf("%q: a } closes nothing (write }} for a literal brace)", format)
		default:
			lit.WriteByte(c)
		}
	}
	if !hasContent {
		return nil, fmt.Errorf("%q has no {content}: the relayed message would lose its text", format)
	}
	if lit.Len() > 0 {
		segs = append(segs, relaySegment{text: lit.String()})
	}
	return segs, nil
}

// ExpandRelayFormat is format (checked when the file was loaded) with its
// placeholders replaced by vals; "" is the content alone.
func ExpandRelayFormat(format string, vals map[string]string) string {
	if format == "" {
		return vals["content"]
	}
	segs, err := parseRelayFormat(format)
	if err != nil {
		return vals["content"] // not reached for a loaded file
	}
	var b strings.Builder
	for _, s := range segs {
		if s.name != "" {
			b.WriteString(vals[s.name])
		} else {
			b.WriteString(s.text)
		}
	}
	return b.String()
}
