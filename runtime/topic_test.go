package runtime

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/seam"
)

func TestRoomLocalpartExamples(t *testing.T) {
	for topic, want := range map[seam.Topic]string{
		"general":      "general",
		"a-b.c_d":      "a-b.c_d",
		"Team Chat":    "~team%20~chat",
		"ümlaut":       "%c3%bcmlaut",
		"100%":         "100%25",
		"~x":           "%7ex",
		"a@b/c":        "a%40b%2fc",
		"🎉":            "%f0%9f%8e%89",
		"\"<&'>\"":     "%22%3c%26%27%3e%22",
		"UPPER":        "~u~p~p~e~r",
		"x y\ttab-not": "",
	} {
		got, err := RoomLocalpart(topic)
		if want == "" {
			assert.ErrorIs(t, err, seam.ErrInvalidTopic, "%q", topic)
			continue
		}
		require.NoError(t, err, "%q", topic)
		assert.Equal(t, want, got, "%q", topic)
	}
}

// Different topics never share a room, including topics that differ only in
// case; the output only holds characters that survive a server's nodeprep.
func TestRoomLocalpartIsInjectiveAndSafe(t *testing.T) {
	topics := []seam.Topic{"a", "A", "~a", "%7ea", "a b", "a%20b", "a_b", "a.b", "ab", "Ab", "aB", "é", "e\u0301", "%c3%a9", "~", "%7e", "%25", "%"}
	seen := map[string]seam.Topic{}
	for _, tp := range topics {
		l, err := RoomLocalpart(tp)
		require.NoError(t, err, "%q", tp)
		if other, dup := seen[l]; dup {
			t.Fatalf("%q and %q share room %q", tp, other, l)
		}
		seen[l] = tp
		assert.Equal(t, strings.ToLower(l), l)
		assert.False(t, strings.ContainsAny(l, " \"&'/:<>@\t"), l)
	}
}

func TestRoomLocalpartRefuses(t *testing.T) {
	for _, tp := range []seam.Topic{"", "bad\xffutf8", "nul\x00", "esc\x1b", "del\x7f", seam.Topic(strings.Repeat("é", 200))} {
		_, err := RoomLocalpart(tp)
		assert.ErrorIs(t, err, seam.ErrInvalidTopic, "%q", tp)
	}
	_, err := RoomLocalpart(seam.Topic(strings.Repeat("a", 1023)))
	assert.NoError(t, err, "1023 bytes is the limit, not over it")
}

func FuzzRoomLocalpart(f *testing.F) {
	for _, s := range []string{"general", "Team Chat", "ümlaut", "%7e", "~"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := RoomLocalpart(seam.Topic(s))
		if err != nil {
			return
		}
		back, ok := decodeLocalpart(l)
		if !ok || back != s {
			t.Fatalf("%q → %q → %q (ok=%v)", s, l, back, ok)
		}
	})
}

// decodeLocalpart inverts RoomLocalpart: proof that the mapping is injective.
func decodeLocalpart(l string) (string, bool) {
	var b []byte
	for i := 0; i < len(l); i++ {
		switch c := l[i]; c {
		case '~':
			if i+1 >= len(l) || l[i+1] < 'a' || l[i+1] > 'z' {
				return "", false
			}
			b = append(b, l[i+1]-'a'+'A')
			i++
		case '%':
			if i+2 >= len(l) {
				return "", false
			}
			var v byte
			for _, h := range []byte(l[i+1 : i+3]) {
				switch {
				case h >= '0' && h <= '9':
					v = v*16 + h - '0'
				case h >= 'a' && h <= 'f':
					v = v*16 + h - 'a' + 10
				default:
					return "", false
				}
			}
			b = append(b, v)
			i += 2
		default:
			b = append(b, c)
		}
	}
	return string(b), true
}
