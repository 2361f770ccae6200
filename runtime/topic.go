package runtime

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/parley-go/parley-xmpp/seam"
)

// maxLocalpart is the longest JID localpart (RFC 7622).
const maxLocalpart = 1023

// RoomLocalpart maps a topic to the localpart of its room's JID. The mapping is
// deterministic and injective, so two different topics never share a room, not
// even when they differ only in letter case:
//
//   - a-z, 0-9, '-', '.' and '_' stand for themselves;
//   - an upper-case letter A-Z becomes '~' and the letter in lower case;
//   - every other character becomes its UTF-8 bytes percent-encoded in lower-case
//     hex ("%20" for a space, "%7e" for '~', "%25" for '%').
//
// So "general" → "general", "Team Chat" → "~team%20~chat", "ümlaut" →
// "%c3%bcmlaut". The result only holds characters every server accepts in a
// localpart and is already in the case servers fold JIDs to. An empty topic, one
// that isn't valid UTF-8 or holds control characters, or one whose room name
// would exceed 1023 bytes is refused with seam.ErrInvalidTopic.
func RoomLocalpart(t seam.Topic) (string, error) {
	s := string(t)
	switch {
	case s == "":
		return "", fmt.Errorf("%w: the topic is empty", seam.ErrInvalidTopic)
	case !utf8.ValidString(s):
		return "", fmt.Errorf("%w: %q is not valid UTF-8", seam.ErrInvalidTopic, s)
	}
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '.', r == '_':
			b.WriteRune(r)
		case r >= 'A' && r <= 'Z':
			b.WriteByte('~')
			b.WriteRune(r + ('a' - 'A'))
		case r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0:
			return "", fmt.Errorf("%w: %q holds a control character at byte %d", seam.ErrInvalidTopic, s, i)
		default:
			var buf [utf8.UTFMax]byte
			n := utf8.EncodeRune(buf[:], r)
			for _, c := range buf[:n] {
				fmt.Fprintf(&b, "%%%02x", c)
			}
		}
	}
	if b.Len() > maxLocalpart {
		return "", fmt.Errorf("%w: topic %.40q… maps to a room name of %d bytes; the limit is %d", seam.ErrInvalidTopic, s, b.Len(), maxLocalpart)
	}
	return b.String(), nil
}
