package redact

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:hunter2@hooks.example.com/x?q=1": "https://user:xxxxx@hooks.example.com/x?q=1",
		"https://hooks.example.com/x":                  "https://hooks.example.com/x",
		"xmpp://bridge:hunter2@chat.example.org":       "xmpp://bridge:xxxxx@chat.example.org",
		"https://u:hunter2 x@bad host/%zz":             "https://xxxxx@bad host/%zz",
		"u:hunter2@host:notaport":                      "xxxxx@host:notaport",
	} {
		assert.Equal(t, want, URL(in), in)
		assert.NotContains(t, URL(in), "hunter2")
	}
}
