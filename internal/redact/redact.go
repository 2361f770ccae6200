// Package redact keeps credentials out of what parley-xmpp prints.
package redact

import (
	"net/url"
	"strings"
)

// URL is s with any password in it replaced by "xxxxx" (url.URL.Redacted). A
// string that doesn't parse as a hierarchical URL loses everything between
// "://" (or its start) and its last "@" instead, so user info is never shown.
func URL(s string) string {
	if u, err := url.Parse(s); err == nil && u.Opaque == "" {
		return u.Redacted()
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		scheme, rest = "", s
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = "xxxxx" + rest[i:]
	}
	if !ok {
		return rest
	}
	return scheme + "://" + rest
}
