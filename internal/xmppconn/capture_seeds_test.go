package xmppconn

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-go/parley-xmpp/internal/stanza"
)

// TestCaptureSeeds records, from the two dev servers (scripts/devserver.sh),
// the exact bytes a client receives when other users send it things, and writes
// them as seeds for the fuzz targets of this package and of internal/stanza
// (testdata/fuzz/<Target>/captured-<server>-<step>...). It is skipped unless
// PARLEY_CAPTURE_SEEDS=1:
//
//	scripts/devserver.sh start
//	PARLEY_CAPTURE_SEEDS=1 go test -count=1 -run '^TestCaptureSeeds$' -v ./internal/xmppconn/
//
// It uses only the accounts parley3 (sends) and observer (receives), and rooms
// with random names it creates and destroys itself: other tests run on the same
// servers at the same time. No go-xmpp and no scripted server: a plain socket, a
// hand-written SASL PLAIN login and bind (plain text is allowed on loopback),
// then every top-level element read off the stream is kept byte for byte.
// The rooms' random names are replaced by fixed ones in the seeds; everything
// else (ids, stamps, the servers' rewritten IQ ids) is kept as received.
func TestCaptureSeeds(t *testing.T) {
	if os.Getenv("PARLEY_CAPTURE_SEEDS") != "1" {
		t.Skip("set PARLEY_CAPTURE_SEEDS=1 to recapture the fuzz seeds from the dev servers")
	}
	for _, srv := range []struct{ name, addr string }{
		{"prosody", "127.0.0.1:5222"},
		{"ejabberd", "127.0.0.1:15222"},
	} {
		t.Run(srv.name, func(t *testing.T) { captureSeeds(t, srv.name, srv.addr) })
	}
}

const (
	capDomain = "parley.local"
	capMUC    = "muc.parley.local"
	nsPubsubE = "http://jabber.org/protocol/pubsub#event"
	pubsubEvt = `<event xmlns='` + nsPubsubE + `'><items node='urn:xmpp:avatar:metadata'/></event>`
)

// capStanza is one top-level element as received.
type capStanza struct {
	step string
	raw  []byte
	el   *stanza.Element
}

// capClient is a logged-in plain socket that keeps everything it reads.
type capClient struct {
	t    *testing.T
	name string
	jid  string
	nc   net.Conn
	wmu  sync.Mutex
	step atomic.Value // string: the step the next stanza is filed under

	buf  []byte // every byte read (reader goroutine only until done)
	br   *bufio.Reader
	dec  *xml.Decoder
	base int64 // offset in buf where dec starts

	mu       sync.Mutex
	got      []capStanza
	session  []byte // the stream after bind, as received, once done
	done     chan struct{}
	seq      int
	sessionS int // offset in buf where the session (after bind) starts
}

type teeReader struct{ c *capClient }

func (r teeReader) Read(p []byte) (int, error) {
	n, err := r.c.nc.Read(p)
	r.c.buf = append(r.c.buf, p[:n]...)
	return n, err
}

func (c *capClient) newDecoder() {
	c.base = int64(len(c.buf)) - int64(c.br.Buffered())
	c.dec = xml.NewDecoder(c.br)
}

func (c *capClient) send(s string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Logf("%s: write: %v", c.name, err)
	}
}

func (c *capClient) id() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	return fmt.Sprintf("cap-%s-%d", strings.ReplaceAll(c.name, "/", "-"), c.seq)
}

// next reads the next top-level element off the current decoder (nil at the
// end of the stream).
func (c *capClient) next() (*stanza.Element, []byte, error) {
	for {
		start := c.dec.InputOffset()
		tok, err := c.dec.Token()
		if err != nil {
			return nil, nil, err
		}
		switch tt := tok.(type) {
		case xml.StartElement:
			if tt.Name.Local == "stream" {
				continue // the stream header
			}
			el, err := stanza.ReadElement(c.dec, tt)
			if err != nil {
				return nil, nil, err
			}
			end := c.dec.InputOffset()
			return el, bytes.Clone(c.buf[c.base+start : c.base+end]), nil
		case xml.EndElement:
			return nil, nil, io.EOF
		}
	}
}

func (c *capClient) header() {
	c.send(`<?xml version='1.0'?><stream:stream to='` + capDomain + `' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`)
}

func capLogin(t *testing.T, addr, user, pass, resource string) *capClient {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v (scripts/devserver.sh start)", addr, err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	c := &capClient{t: t, name: user + "/" + resource, nc: nc, done: make(chan struct{})}
	c.step.Store("login")
	c.br = bufio.NewReader(teeReader{c})
	must := func(el *stanza.Element, raw []byte, err error) *stanza.Element {
		t.Helper()
		if err != nil {
			t.Fatalf("%s login: %v (read %q)", c.name, err, c.buf)
		}
		return el
	}
	c.header()
	c.newDecoder()
	must(c.next()) // features
	c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` +
		base64.StdEncoding.EncodeToString([]byte("\x00"+strings.TrimSuffix(user, "@"+capDomain)+"\x00"+pass)) + `</auth>`)
	if el := must(c.next()); el.Name.Local != "success" {
		t.Fatalf("%s: auth: %s", c.name, el.XML())
	}
	c.header()
	c.newDecoder()
	must(c.next()) // features
	c.send(`<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>` + resource + `</resource></bind></iq>`)
	for {
		el := must(c.next())
		if el.Name.Local == "iq" && el.Attribute("id") == "bind" {
			if el.Attribute("type") != "result" {
				t.Fatalf("%s: bind: %s", c.name, el.XML())
			}
			if b := el.Child("urn:ietf:params:xml:ns:xmpp-bind", "bind"); b != nil {
				if j := b.Child("urn:ietf:params:xml:ns:xmpp-bind", "jid"); j != nil {
					c.jid = j.Text
				}
			}
			break
		}
	}
	c.sessionS = int(c.base + c.dec.InputOffset())
	_ = nc.SetReadDeadline(time.Time{})
	go c.read()
	return c
}

func (c *capClient) read() {
	defer close(c.done)
	for {
		el, raw, err := c.next()
		if err != nil {
			c.mu.Lock()
			c.session = bytes.Clone(c.buf[c.sessionS:])
			c.mu.Unlock()
			return
		}
		c.mu.Lock()
		c.got = append(c.got, capStanza{step: c.step.Load().(string), raw: raw, el: el})
		c.mu.Unlock()
	}
}

// expect waits up to 5 s for a stanza received during step that matches ok,
// then a little longer for what follows it. It reports whether one came.
func (c *capClient) expect(step string, ok func(*stanza.Element) bool) bool {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		for _, s := range c.got {
			if s.step == step && ok(s.el) {
				c.mu.Unlock()
				time.Sleep(300 * time.Millisecond)
				return true
			}
		}
		c.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Logf("%s: nothing came for step %s", c.name, step)
	return false
}

// close ends the stream and waits for the server's end.
func (c *capClient) close() {
	c.send(`</stream:stream>`)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		c.t.Logf("%s: the server did not end the stream", c.name)
		_ = c.nc.Close()
		<-c.done
	}
	_ = c.nc.Close()
}

func from(prefix string) func(*stanza.Element) bool {
	return func(e *stanza.Element) bool { return strings.HasPrefix(e.Attribute("from"), prefix) }
}

func is(name, typ string) func(*stanza.Element) bool {
	return func(e *stanza.Element) bool { return e.Name.Local == name && e.Attribute("type") == typ }
}

func both(a, b func(*stanza.Element) bool) func(*stanza.Element) bool {
	return func(e *stanza.Element) bool { return a(e) && b(e) }
}

func iqID(id string) func(*stanza.Element) bool {
	return func(e *stanza.Element) bool { return e.Name.Local == "iq" && e.Attribute("id") == id }
}

func randName() string { return strings.ToLower(rand.Text()[:12]) }

func captureSeeds(t *testing.T, server, addr string) {
	room := "capture-" + randName() + "@" + capMUC
	other := "capture-" + randName() + "@" + capMUC  // a room the observer is not in
	absent := "capture-" + randName() + "@" + capMUC // a room nobody created
	o := capLogin(t, addr, "observer@"+capDomain, "observerpass", "capture-observer")
	s := capLogin(t, addr, "parley3@"+capDomain, "parleypass3", "capture-sender")
	set := func(step string, cs ...*capClient) {
		for _, c := range cs {
			c.step.Store(step)
		}
	}
	all := []*capClient{o, s}

	// The observer: available (bare-JID messages reach it), then the room's
	// owner. Priority 0: other tests' resources of the account are never
	// outranked (a message to the bare JID still reaches them).
	set("initial-presence", all...)
	o.send(`<presence/>`)
	o.expect("initial-presence", from(o.jid))

	set("room-create", all...)
	o.send(`<presence to='` + room + `/observer'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
	o.expect("room-create", from(room+"/observer"))
	set("room-config-form", all...)
	id := o.id()
	o.send(`<iq type='get' to='` + room + `' id='` + id + `'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>`)
	o.expect("room-config-form", iqID(id))
	set("room-config-submit", all...)
	id = o.id()
	o.send(`<iq type='set' to='` + room + `' id='` + id + `'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`)
	o.expect("room-config-submit", iqID(id))
	set("room-disco-info", all...)
	id = o.id()
	o.send(`<iq type='get' to='` + room + `' id='` + id + `'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	o.expect("room-disco-info", iqID(id))

	// Occupants' presences with payloads from other namespaces.
	set("join-caps", all...)
	s.send(`<presence to='` + room + `/sender'><x xmlns='http://jabber.org/protocol/muc'/>` +
		`<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://parley.example/capture' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/></presence>`)
	o.expect("join-caps", from(room+"/sender"))
	set("presence-vcard-update", all...)
	s.send(`<presence to='` + room + `/sender'><show>away</show>` +
		`<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://parley.example/capture' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/>` +
		`<x xmlns='vcard-temp:x:update'><photo>01b87fcd030b72895ff8e88db57ec525450f000d</photo></x></presence>`)
	o.expect("presence-vcard-update", from(room+"/sender"))
	f := capLogin(t, addr, "parley3@"+capDomain, "parleypass3", "capture-forger")
	all = append(all, f)
	set("join-forged", all...)
	f.send(`<presence to='` + room + `/forger'><x xmlns='http://jabber.org/protocol/muc'/>` +
		`<x xmlns='urn:example:forged'><item jid='someone@` + capDomain + `'/></x></presence>`)
	o.expect("join-forged", from(room+"/forger"))
	set("presence-forged-mucuser", all...)
	f.send(`<presence to='` + room + `/forger'><x xmlns='http://jabber.org/protocol/muc#user'>` +
		`<item jid='boss@` + capDomain + `' affiliation='owner' role='moderator'/><status code='110'/></x></presence>`)
	o.expect("presence-forged-mucuser", from(room+"/forger"))

	// Pubsub events: through the room as private messages, and as a headline
	// to the observer's bare JID.
	for _, typ := range []string{"chat", "normal", "headline"} {
		step := "pubsub-pm-" + typ
		set(step, all...)
		s.send(`<message to='` + room + `/observer' type='` + typ + `' id='` + s.id() + `'>` + pubsubEvt + `</message>`)
		o.expect(step, from(room+"/sender"))
	}
	set("pubsub-headline", all...)
	s.send(`<message to='observer@` + capDomain + `' type='headline' id='` + s.id() + `'>` + pubsubEvt + `</message>`)
	o.expect("pubsub-headline", from(s.jid))

	// IQ gets from an occupant to an occupant (left unanswered).
	for _, q := range []struct{ step, payload string }{
		{"iq-get-ping", `<ping xmlns='urn:xmpp:ping'/>`},
		{"iq-get-version", `<query xmlns='jabber:iq:version'/>`},
		{"iq-get-disco-info", `<query xmlns='http://jabber.org/protocol/disco#info'/>`},
		{"iq-get-disco-info-node", `<query xmlns='http://jabber.org/protocol/disco#info' node='https://parley.example/capture#QgayPKawpkPSDYmwT/WM94uAlu0='/>`},
		{"iq-get-unknown", `<query xmlns='urn:example:unknown'><item/></query>`},
	} {
		set(q.step, all...)
		s.send(`<iq type='get' to='` + room + `/observer' id='` + s.id() + `'>` + q.payload + `</iq>`)
		o.expect(q.step, from(room+"/sender"))
	}

	// Groupchat: others' posts, the observer's own reflection.
	posts := []struct{ step, children string }{
		{"groupchat", `<body>hello &lt;&amp;&gt; &apos;quotes&apos;</body><origin-id xmlns='urn:xmpp:sid:0' id='capture-o1'/>`},
		{"groupchat-pubsub", `<body>with an event</body>` + pubsubEvt},
		{"groupchat-forged-mucuser", `<body>forged</body><x xmlns='http://jabber.org/protocol/muc#user'><item jid='boss@` + capDomain + `'/></x>`},
		{"groupchat-delay", `<body>late</body><delay xmlns='urn:xmpp:delay' stamp='2001-01-01T00:00:00Z' from='` + room + `'/>`},
	}
	for _, p := range posts {
		set(p.step, all...)
		s.send(`<message to='` + room + `' type='groupchat' id='` + s.id() + `'>` + p.children + `</message>`)
		o.expect(p.step, from(room+"/sender"))
	}
	set("reflection", all...)
	o.send(`<message to='` + room + `' type='groupchat' id='` + o.id() + `'><body>mine</body><origin-id xmlns='urn:xmpp:sid:0' id='capture-o2'/></message>`)
	o.expect("reflection", from(room+"/observer"))

	set("mam", all...)
	id = o.id()
	o.send(`<iq type='set' to='` + room + `' id='` + id + `'><query xmlns='urn:xmpp:mam:2' queryid='capture-q'/></iq>`)
	o.expect("mam", iqID(id))

	// Error messages from an occupant to an occupant. Both servers take one
	// for a bounce and kick its sender (status 333) rather than deliver it:
	// the sender rejoins before each.
	for i, e := range []struct{ step, errEl string }{
		{"error-pm", `<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>not here</text></error>`},
		{"error-pm-modify", `<error type='modify'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><x xmlns='urn:example:extra'/></error>`},
		{"error-pm-empty", ``},
	} {
		set(e.step, all...)
		if i > 0 {
			s.send(`<presence to='` + room + `/sender'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
			s.expect(e.step, both(from(room+"/sender"), is("presence", "")))
		}
		s.send(`<message to='` + room + `/observer' type='error' id='` + s.id() + `'>` + e.errEl + `</message>`)
		o.expect(e.step, func(el *stanza.Element) bool {
			return both(from(room+"/sender"), is("message", "error"))(el) || both(from(room+"/sender"), is("presence", "unavailable"))(el)
		})
	}
	// An occupant bouncing a groupchat message back to the room.
	set("error-to-room", all...)
	f.send(`<message to='` + room + `' type='error' id='` + f.id() + `'><error type='cancel'><recipient-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`)
	o.expect("error-to-room", both(from(room+"/forger"), is("presence", "unavailable")))

	// Genuine bounces from a room: not an occupant, no such room.
	set("bounce-other-room", all...)
	s.send(`<presence to='` + other + `/sender'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
	s.expect("bounce-other-room", from(other+"/sender"))
	id = s.id()
	s.send(`<iq type='set' to='` + other + `' id='` + id + `'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`)
	s.expect("bounce-other-room", iqID(id))
	set("bounce-not-occupant", all...)
	o.send(`<message to='` + other + `' type='groupchat' id='` + o.id() + `'><body>not in</body></message>`)
	o.expect("bounce-not-occupant", from(other))
	set("bounce-no-room", all...)
	o.send(`<message to='` + absent + `' type='groupchat' id='` + o.id() + `'><body>nobody</body></message>`)
	o.expect("bounce-no-room", from(absent))
	set("bounce-pm-absent-nick", all...)
	o.send(`<message to='` + room + `/nobody' type='chat' id='` + o.id() + `'><body>who</body></message>`)
	o.expect("bounce-pm-absent-nick", from(room))

	// Too large: a stanza over the server's limit, on a connection of its own.
	big := capLogin(t, addr, "observer@"+capDomain, "observerpass", "capture-big")
	set("too-large", append(all, big)...)
	big.send(`<message to='` + room + `' type='groupchat' id='big'><body>` + strings.Repeat("x", 600_000) + `</body></message>`)
	select {
	case <-big.done:
	case <-time.After(10 * time.Second):
		t.Logf("%s: still open after the large stanza", big.name)
		big.close()
	}
	_ = big.nc.Close()

	// Clean up: both rooms destroyed, every stream ended.
	set("destroy", append(all, big)...)
	id = o.id()
	o.send(`<iq type='set' to='` + room + `' id='` + id + `'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query></iq>`)
	o.expect("destroy", iqID(id))
	id = s.id()
	s.send(`<iq type='set' to='` + other + `' id='` + id + `'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query></iq>`)
	s.expect("destroy", iqID(id))
	set("close", all...)
	f.close()
	s.close()
	o.close()

	names := map[string]string{
		strings.TrimSuffix(room, "@"+capMUC):   "capture-room",
		strings.TrimSuffix(other, "@"+capMUC):  "capture-other",
		strings.TrimSuffix(absent, "@"+capMUC): "capture-absent",
	}
	w := &seedWriter{t: t, server: server, names: names, seen: map[string]bool{}, written: map[string]bool{}}
	w.clear()
	for _, c := range []*capClient{o, s, f, big} {
		w.client(c, c == o)
	}
	w.session(o.session)
	w.streamEnd(big.session)
	t.Logf("%s: %d seeds written", server, w.n)
}

// seedWriter files captured stanzas under the fuzz targets they fit.
type seedWriter struct {
	t       *testing.T
	server  string
	names   map[string]string
	seen    map[string]bool
	written map[string]bool // files written by this run
	n       int
}

// clear removes the seeds an earlier capture from this server wrote.
func (w *seedWriter) clear() {
	for _, dir := range []string{".", stanzaDir} {
		old, _ := filepath.Glob(filepath.Join(dir, "testdata", "fuzz", "*", "captured-"+w.server+"-*"))
		for _, f := range old {
			if err := os.Remove(f); err != nil {
				w.t.Fatal(err)
			}
		}
	}
}

func (w *seedWriter) fix(b []byte) []byte {
	for from, to := range w.names {
		b = bytes.ReplaceAll(b, []byte(from), []byte(to))
	}
	return b
}

// write writes one seed; args are []byte or string values.
func (w *seedWriter) write(dir, target, name string, args ...any) {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			b.WriteString("[]byte(" + strconv.Quote(string(w.fix(v))) + ")\n")
		case string:
			b.WriteString("string(" + strconv.Quote(string(w.fix([]byte(v)))) + ")\n")
		}
	}
	key := target + "\x00" + b.String()
	if w.seen[key] {
		return // the same bytes twice (a step that got two identical stanzas)
	}
	w.seen[key] = true
	d := filepath.Join(dir, "testdata", "fuzz", target)
	if err := os.MkdirAll(d, 0o755); err != nil {
		w.t.Fatal(err)
	}
	file := filepath.Join(d, "captured-"+w.server+"-"+name)
	for i := 2; w.written[file]; i++ {
		file = filepath.Join(d, fmt.Sprintf("captured-%s-%s-%d", w.server, name, i))
	}
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		w.t.Fatal(err)
	}
	w.written[file] = true
	w.n++
}

const stanzaDir = "../stanza"

// client files what c received: all of it for the observer, the errors for
// the others (the sender sees the room's bounces).
func (w *seedWriter) client(c *capClient, observer bool) {
	who := ""
	if !observer {
		who = strings.TrimPrefix(c.name[strings.IndexByte(c.name, '/')+1:], "capture-") + "-"
	}
	for _, s := range c.got {
		el := s.el
		if s.step == "login" || s.step == "close" {
			continue
		}
		// The others' errors, bounces and kicks: what the room answers a sender.
		if !observer && el.Attribute("type") != "error" && !el.Is(nsStream, "error") &&
			!(el.Name.Local == "presence" && strings.HasPrefix(s.step, "error-")) {
			continue
		}
		// Other tests' resources of the same accounts come and go meanwhile.
		if f := el.Attribute("from"); strings.HasSuffix(stanza.Bare(f), "@"+capDomain) &&
			!strings.HasPrefix(stanza.Resource(f), "capture-") {
			continue
		}
		name := who + s.step
		switch {
		case el.Is(nsStream, "error"):
			w.write(".", "FuzzStreamError", name, s.raw)
		case el.Name.Local == "message" && el.Child(stanza.NSMAM, "result") != nil:
			w.write(".", "FuzzMAMResult", name, s.raw)
		case el.Name.Local == "message":
			w.write(".", "FuzzReflection", name, s.raw)
		case el.Name.Local == "presence":
			w.write(".", "FuzzPresence", name, s.raw)
		case el.Name.Local == "iq":
			if q := el.Child(stanza.NSDiscoInfo, "query"); q != nil {
				w.write(".", "FuzzDiscoInfo", name, s.raw)
			} else {
				w.write(".", "FuzzIQ", name, s.raw)
			}
		}
		w.parts(s, name)
	}
}

// parts files the pieces package stanza's targets take.
func (w *seedWriter) parts(s capStanza, name string) {
	for _, sp := range spans(s.raw) {
		switch {
		case sp.local == "error" && sp.depth == 1:
			w.write(stanzaDir, "FuzzParseError", name, sp.attr["type"], string(sp.inner))
		case sp.local == "forwarded":
			w.write(stanzaDir, "FuzzParseForwarded", name, string(sp.outer))
		case sp.local == "fin":
			w.write(stanzaDir, "FuzzParseFin", name, sp.outer)
		case sp.local == "query" && sp.depth == 1 && (sp.space == stanza.NSDiscoInfo || sp.space == stanza.NSMUCOwner):
			w.write(stanzaDir, "FuzzFormFields", name, sp.outer, stanza.NSMAM)
		}
	}
	el := s.el
	if el.Name.Local == "message" && el.Attribute("type") == "groupchat" {
		from := el.Attribute("from")
		if i := strings.IndexByte(from, '/'); i > 0 {
			w.liveEqualsArchive(s.raw, from[:i], from[i+1:], name)
		}
	}
}

// liveEqualsArchive: a live groupchat message's children as its sender put
// them, the room's own stanza-id (and ejabberd's <archived/>) left out: the
// target adds its room's.
func (w *seedWriter) liveEqualsArchive(raw []byte, room, nick, name string) {
	var kids strings.Builder
	for _, sp := range spans(raw) {
		if sp.depth != 1 {
			continue
		}
		if (sp.local == "stanza-id" || sp.local == "archived") && sp.attr["by"] == room {
			continue
		}
		kids.Write(sp.outer)
	}
	w.write(".", "FuzzLiveEqualsArchive", name, kids.String(), nick)
}

// session: the observer's whole stream after bind, every stanza of the capture
// in one input, for every stream target.
func (w *seedWriter) session(b []byte) {
	for _, target := range []string{"FuzzReflection", "FuzzPresence", "FuzzMAMResult", "FuzzIQ", "FuzzDiscoInfo"} {
		w.write(".", target, "session", b)
	}
	w.write(".", "FuzzStreamError", "session-end", b)
}

// streamEnd: how the server ended the stream of the too-large stanza.
func (w *seedWriter) streamEnd(b []byte) {
	w.write(".", "FuzzStreamError", "too-large-stream", b)
}

// span is one element inside a stanza: its bytes, its content's bytes.
type span struct {
	space, local string
	attr         map[string]string
	depth        int // 1: a child of the stanza
	outer, inner []byte
}

func spans(raw []byte) []span {
	d := xml.NewDecoder(bytes.NewReader(raw))
	type open struct {
		span
		start, innerStart int64
	}
	var stack []open
	var out []span
	for {
		before := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			return out
		}
		switch t := tok.(type) {
		case xml.StartElement:
			o := open{start: before, innerStart: d.InputOffset()}
			o.space, o.local, o.depth = t.Name.Space, t.Name.Local, len(stack)
			o.attr = map[string]string{}
			for _, a := range t.Attr {
				o.attr[a.Name.Local] = a.Value
			}
			stack = append(stack, o)
		case xml.EndElement:
			o := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			o.inner = raw[o.innerStart:before]
			o.outer = raw[o.start:d.InputOffset()]
			if o.innerStart == d.InputOffset() { // <x/>
				o.inner = nil
			}
			out = append(out, o.span)
		}
	}
}
