package xmppconn

import (
	"crypto/tls"
	"net"
	"reflect"
	"unsafe"
)

// TLSState is the stream's TLS state, and whether it is encrypted at all
// (xmpps:// or STARTTLS). For diagnostics (parley-xmpp doctor).
func (c *Conn) TLSState() (tls.ConnectionState, bool) {
	if tc, ok := streamConn(c).(*tls.Conn); ok {
		return tc.ConnectionState(), true
	}
	return tls.ConnectionState{}, false
}

// AdvertisedMaxBytes is the stanza size limit the server advertised in its
// stream features (XEP-0478 <limits><max-bytes/>), or 0 when it advertised
// none.
func (c *Conn) AdvertisedMaxBytes() int { return c.client.LimitMaxBytes }

// streamConn is the connection go-xmpp reads and writes: the *tls.Conn of an
// encrypted stream. Its field is unexported; the type is checked, so a changed
// layout gives nil, never memory corruption.
func streamConn(c *Conn) net.Conn {
	f := reflect.ValueOf(c.client).Elem().FieldByName("conn")
	if !f.IsValid() || f.Type() != reflect.TypeFor[net.Conn]() {
		return nil
	}
	return *(*net.Conn)(unsafe.Pointer(f.UnsafeAddr()))
}
