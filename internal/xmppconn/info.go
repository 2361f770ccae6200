package xmppconn

import (
	"crypto/tls"
	"runtime/debug"
	"sync"
)

// version is this build's module version, for XEP-0092 answers.
var version = sync.OnceValue(func() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
})

// TLSState is the stream's TLS state, and whether it is encrypted at all
// (xmpps:// or STARTTLS). For diagnostics (parley-xmpp doctor).
func (c *Conn) TLSState() (tls.ConnectionState, bool) {
	if tc, ok := c.t.Load().w.(*tls.Conn); ok {
		return tc.ConnectionState(), true
	}
	return tls.ConnectionState{}, false
}

// AdvertisedMaxBytes is the stanza size limit the server advertised in its
// stream features (XEP-0478 <limits><max-bytes/>), or 0 when it advertised
// none.
func (c *Conn) AdvertisedMaxBytes() int { return c.t.Load().client.LimitMaxBytes }
