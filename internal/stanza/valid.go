package stanza

import (
	"fmt"
	"unicode/utf8"
)

// CheckText reports why s can't travel as XML 1.0 character data, or nil when it
// can: invalid UTF-8 (which is how a lone surrogate arrives in a Go string),
// control characters other than tab, newline and carriage return, and U+FFFE and
// U+FFFF are not XML characters.
func CheckText(s string) error {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return fmt.Errorf("invalid UTF-8 at byte %d", i)
		case r < 0x20 && r != '\t' && r != '\n' && r != '\r':
			return fmt.Errorf("control character U+%04X at byte %d is not allowed in XML", r, i)
		case r == 0xFFFE || r == 0xFFFF:
			return fmt.Errorf("non-character U+%04X at byte %d is not allowed in XML", r, i)
		}
		i += size
	}
	return nil
}
