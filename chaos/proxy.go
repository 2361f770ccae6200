// Package chaos injects faults on the real TCP path between the runtime and a
// real XMPP server, and runs scenarios that check the runtime's promise under
// them: every subscriber receives every message of its topic exactly once, in
// archive order, and every post resolves exactly once with the id the archive
// holds.
//
// The faults come from Toxiproxy (github.com/Shopify/toxiproxy/v2), embedded as
// a library: no separate process, no HTTP API.
package chaos

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
	zlog "github.com/rs/zerolog/log"
)

var quietOnce sync.Once

// Proxy is a fault-injecting TCP proxy on 127.0.0.1 in front of a server.
// Clients connect to a thin relay of its own, which forwards to Toxiproxy: the
// relay is what KillAll cuts, so a kill drops the connections and nothing else
// (stopping Toxiproxy's proxy also closes its listener for a moment, and a
// client that redials at once is refused: a server outage, not a kill).
type Proxy struct {
	mu     sync.Mutex
	server *toxiproxy.ApiServer
	p      *toxiproxy.Proxy
	n      int // names toxics uniquely

	ln    net.Listener
	links map[*link]struct{}
	wg    sync.WaitGroup
}

// link is one client connection and its connection to Toxiproxy.
type link struct {
	client, upstream net.Conn
	closed           atomic.Bool
}

// close ends the link; it reports whether this call ended it (false: it had
// ended already).
func (l *link) close() bool {
	if !l.closed.CompareAndSwap(false, true) {
		return false
	}
	_ = l.client.Close()
	_ = l.upstream.Close()
	return true
}

// NewProxy starts a proxy on a free loopback port that forwards to upstream
// (host:port).
func NewProxy(upstream string) (*Proxy, error) {
	// Toxiproxy's bandwidth toxic logs through zerolog's global logger at trace
	// level; nothing of it is ours to show.
	quietOnce.Do(func() { zlog.Logger = zerolog.Nop() })
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(server, "xmpp", "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("chaos: start proxy: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		p.Stop()
		return nil, fmt.Errorf("chaos: start proxy: %w", err)
	}
	x := &Proxy{server: server, p: p, ln: ln, links: map[*link]struct{}{}}
	x.wg.Add(1)
	go x.accept()
	return x, nil
}

func (x *Proxy) accept() {
	defer x.wg.Done()
	for {
		c, err := x.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", x.p.Listen)
		if err != nil {
			_ = c.Close()
			continue
		}
		l := &link{client: c, upstream: up}
		x.mu.Lock()
		x.links[l] = struct{}{}
		x.mu.Unlock()
		x.wg.Add(2)
		go x.pipe(l, up, c)
		go x.pipe(l, c, up)
	}
}

// pipe copies one direction of l; when either ends, l ends.
func (x *Proxy) pipe(l *link, dst, src net.Conn) {
	defer x.wg.Done()
	_, _ = io.Copy(dst, src)
	l.close()
	x.mu.Lock()
	delete(x.links, l)
	x.mu.Unlock()
}

// Addr is where clients connect (host:port).
func (x *Proxy) Addr() string { return x.ln.Addr().String() }

// KillAll drops every connection through the proxy at once (both sides see the
// TCP connection close); new connections are accepted as before.
func (x *Proxy) KillAll() error {
	x.Kill()
	return nil
}

// Kill is KillAll that reports how many live connections it cut (0 when the
// client had none: it was between connections).
func (x *Proxy) Kill() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := 0
	for l := range x.links {
		if l.close() {
			n++
		}
	}
	return n
}

// toxic adds a toxic and returns its name.
func (x *Proxy) toxic(typ, stream, attrs string) (string, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.n++
	name := fmt.Sprintf("%s-%s-%d", typ, stream, x.n)
	js := fmt.Sprintf(`{"name":%q,"type":%q,"stream":%q,"toxicity":1.0,"attributes":{%s}}`, name, typ, stream, attrs)
	if _, err := x.p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
		return "", fmt.Errorf("chaos: add %s toxic: %w", typ, err)
	}
	return name, nil
}

// CutAfter closes each server-to-client stream after bytes more bytes: a link
// broken mid-stanza. Heal removes it.
func (x *Proxy) CutAfter(bytes int) error {
	_, err := x.toxic("limit_data", "downstream", fmt.Sprintf(`"bytes":%d`, bytes))
	return err
}

// Blackhole stops all data both ways while keeping every connection open: a
// half-open link. Heal removes it. (Toxiproxy drops what it holds back, which
// real TCP never does; heal only once the clients have abandoned their links.)
func (x *Proxy) Blackhole() error {
	for _, s := range []string{"upstream", "downstream"} {
		if _, err := x.toxic("timeout", s, `"timeout":0`); err != nil {
			return err
		}
	}
	return nil
}

// Latency delays data both ways by latency ± jitter.
func (x *Proxy) Latency(latency, jitter time.Duration) error {
	for _, s := range []string{"upstream", "downstream"} {
		if _, err := x.toxic("latency", s, fmt.Sprintf(`"latency":%d,"jitter":%d`, latency.Milliseconds(), jitter.Milliseconds())); err != nil {
			return err
		}
	}
	return nil
}

// Bandwidth limits data both ways to kbps kilobytes per second.
func (x *Proxy) Bandwidth(kbps int) error {
	for _, s := range []string{"upstream", "downstream"} {
		if _, err := x.toxic("bandwidth", s, fmt.Sprintf(`"rate":%d`, kbps)); err != nil {
			return err
		}
	}
	return nil
}

// Slice cuts server-to-client data into small pieces (about avg bytes) with a
// short delay between them: stanzas arrive in fragments.
func (x *Proxy) Slice(avg int, delay time.Duration) error {
	_, err := x.toxic("slicer", "downstream", fmt.Sprintf(`"average_size":%d,"size_variation":%d,"delay":%d`, avg, avg/2, delay.Microseconds()))
	return err
}

// Heal removes every toxic.
func (x *Proxy) Heal() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.p.Toxics.ResetToxics(context.Background())
}

// Close stops the proxy and drops its connections.
func (x *Proxy) Close() {
	_ = x.ln.Close()
	_ = x.KillAll()
	x.wg.Wait()
	x.mu.Lock()
	defer x.mu.Unlock()
	x.p.Stop()
}
