package stanza

import (
	"errors"
	"fmt"
	"strings"
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

// MaxIDBytes bounds a message id (a room's stanza-id, which is also its archive
// id and the runtime's cursor): Prosody's are 24 characters, ejabberd's 16
// digits.
const MaxIDBytes = 1023

// CheckID reports why id can't be a message id, and so a cursor, or nil: it is
// empty or longer than MaxIDBytes, XML can't carry it, or it holds white
// space (which XML attribute values don't keep as it is).
func CheckID(id string) error {
	switch {
	case id == "":
		return errors.New("empty id")
	case len(id) > MaxIDBytes:
		return fmt.Errorf("id of %d bytes is longer than %d", len(id), MaxIDBytes)
	case strings.ContainsAny(id, " \t\r\n"):
		return fmt.Errorf("id %.40q holds white space", id)
	}
	if err := CheckText(id); err != nil {
		return fmt.Errorf("id %.40q: %v", id, err)
	}
	return nil
}
