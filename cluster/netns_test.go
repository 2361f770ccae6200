package cluster_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// An isolated node's network, made by the test: two network namespaces, the
// node's and a hub, joined by two veth pairs, one for each path the node has:
//
//	node ns                         hub ns
//	etcd   10.231.1.2/30  <—veth—>  10.231.1.1/30 etcdh   forwarder → etcd on 127.0.0.1
//	xmpp   10.231.2.2/30  <—veth—>  10.231.2.1/30 xmpph   forwarder → XMPP server on 127.0.0.1
//	lo     127.0.0.1 (the node's metrics)  <— forwarder from the test's 127.0.0.1
//
// The forwarders run in the test process: their listening sockets are made
// inside the hub namespace (a thread switched into it), and each accepted
// connection is forwarded by a dial from the test's own namespace to
// loopback. Traffic goes only to loopback addresses and to addresses inside
// namespaces the test made. The addresses are the same for every isolated
// node: each node has its own pair of namespaces.
//
// A path is cut by setting its hub-side veth down: the node's end loses its
// carrier but keeps its address and route, so whatever the node sends on it is
// dropped silently (established connections stall, new dials time out, no
// RST, no ICMP), as in a real partition. Setting the node's own end down
// instead would remove its route, and its new dials would fail at once with
// "network is unreachable".
type netPath struct {
	t         *testing.T
	node, hub string // namespace names
	etcd      string // the etcd endpoint as the node dials it (http://10.231.1.1:port)
	xmpp      string // the XMPP server as the node dials it (10.231.2.1:port)
	// metricsListen is the node's metrics address inside its namespace;
	// metricsAddr the test's loopback forwarder to it.
	metricsListen, metricsAddr string
}

// The links a netPath can cut: their hub-side veths.
const (
	etcdLink = "etcdh"
	xmppLink = "xmpph"
)

var netnsSeq atomic.Int64

// requireNetns fails the test under CI (CI=true or
// PARLEY_XMPP_REQUIRE_SERVER=1) and skips it elsewhere when it can't make
// network namespaces.
func requireNetns(t *testing.T, why string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(why, args...)
	if os.Getenv("CI") == "true" || os.Getenv("PARLEY_XMPP_REQUIRE_SERVER") == "1" {
		t.Fatalf("partition test setup: %s (CI must run it as root with iproute2)", msg)
	}
	t.Skipf("partition test setup: %s; it needs root and iproute2 (with CI=true this fails)", msg)
}

// newNetPath makes an isolated node's network (removed at the end of the
// test) with forwarders to etcdUpstream and xmppUpstream (host:port on
// loopback).
func newNetPath(t *testing.T, etcdUpstream, xmppUpstream string) *netPath {
	t.Helper()
	if os.Geteuid() != 0 {
		requireNetns(t, "not root (uid %d)", os.Geteuid())
	}
	if _, err := exec.LookPath("ip"); err != nil {
		requireNetns(t, "no ip command: %v", err)
	}
	removeStaleNetns()
	n := netnsSeq.Add(1)
	p := &netPath{t: t, node: fmt.Sprintf("pxt-%d-%d-node", os.Getpid(), n), hub: fmt.Sprintf("pxt-%d-%d-hub", os.Getpid(), n)}
	for _, ns := range []string{p.node, p.hub} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			requireNetns(t, "ip netns add %s: %v: %s", ns, err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		})
	}
	p.ip("-n", p.node, "link", "set", "lo", "up")
	p.ip("-n", p.hub, "link", "set", "lo", "up")
	for i, link := range []string{"etcd", "xmpp"} {
		p.ip("-n", p.node, "link", "add", link, "type", "veth", "peer", "name", link+"h", "netns", p.hub)
		p.ip("-n", p.node, "addr", "add", fmt.Sprintf("10.231.%d.2/30", i+1), "dev", link)
		p.ip("-n", p.hub, "addr", "add", fmt.Sprintf("10.231.%d.1/30", i+1), "dev", link+"h")
		p.ip("-n", p.node, "link", "set", link, "up")
		p.ip("-n", p.hub, "link", "set", link+"h", "up")
	}
	etcdLn := p.listenIn(p.hub, "10.231.1.1:0")
	p.etcd = "http://" + etcdLn.Addr().String()
	p.forward(etcdLn, func() (net.Conn, error) { return net.Dial("tcp", etcdUpstream) })
	xmppLn := p.listenIn(p.hub, "10.231.2.1:0")
	p.xmpp = xmppLn.Addr().String()
	p.forward(xmppLn, func() (net.Conn, error) { return net.Dial("tcp", xmppUpstream) })
	// The node's namespace is its own: any port is free there.
	p.metricsListen = "127.0.0.1:9464"
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.metricsAddr = mln.Addr().String()
	p.forward(mln, func() (net.Conn, error) { return dialIn(p.node, p.metricsListen) })
	return p
}

// removeStaleNetns removes the namespaces of test processes that are gone
// (killed before their cleanup ran).
func removeStaleNetns() {
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		fs := strings.Split(e.Name(), "-")
		if len(fs) != 4 || fs[0] != "pxt" {
			continue
		}
		pid, err := strconv.Atoi(fs[1])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
			_ = exec.Command("ip", "netns", "del", e.Name()).Run()
		}
	}
}

func (p *netPath) ip(args ...string) {
	p.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		requireNetns(p.t, "ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// cut drops everything on link (etcdLink or xmppLink) from now on, silently.
func (p *netPath) cut(link string) {
	p.t.Helper()
	p.ip("-n", p.hub, "link", "set", link, "down")
}

// heal lets link carry packets again. The node side's neighbour entries
// are flushed: those that failed while the link was down answer "no route
// to host" for a few seconds (a node started right after a heal exited on
// it in the soak).
func (p *netPath) heal(link string) {
	p.t.Helper()
	p.ip("-n", p.hub, "link", "set", link, "up")
	p.ip("-n", p.node, "neigh", "flush", "dev", strings.TrimSuffix(link, "h"))
}

// prefix is the command prefix that runs a command in the node's namespace.
func (p *netPath) prefix() []string { return []string{"ip", "netns", "exec", p.node} }

// inNetns runs f on a thread switched into namespace ns. The thread is never
// switched back: it stays locked, and ends with f's goroutine, so no other
// goroutine ever runs in ns.
func inNetns(ns string, f func()) error {
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread() // never unlocked: the thread ends with this goroutine
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		_ = unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		f()
		errc <- nil
	}()
	return <-errc
}

// listenIn listens on addr inside namespace ns.
func (p *netPath) listenIn(ns, addr string) net.Listener {
	p.t.Helper()
	var ln net.Listener
	err := inNetns(ns, func() {
		var err error
		ln, err = net.Listen("tcp", addr)
		if err != nil {
			ln = nil
			p.t.Errorf("listening on %s in %s: %v", addr, ns, err)
		}
	})
	if err != nil || ln == nil {
		requireNetns(p.t, "listening on %s in namespace %s: %v", addr, ns, err)
	}
	return ln
}

// dialIn connects to addr from inside namespace ns.
func dialIn(ns, addr string) (net.Conn, error) {
	var c net.Conn
	var derr error
	if err := inNetns(ns, func() { c, derr = net.Dial("tcp", addr) }); err != nil {
		return nil, err
	}
	return c, derr
}

// forward copies each connection ln accepts to and from a connection dial
// makes, until the test ends (everything is closed and waited for then).
func (p *netPath) forward(ln net.Listener, dial func() (net.Conn, error)) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
	)
	track := func(cs ...net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if conns == nil { // closed
			return false
		}
		for _, c := range cs {
			conns[c] = true
		}
		return true
	}
	p.t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		conns = nil
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := dial()
			if err != nil {
				_ = c.Close()
				continue
			}
			if !track(c, up) {
				_ = c.Close()
				_ = up.Close()
				return
			}
			pipe := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				_ = dst.Close()
				_ = src.Close()
			}
			wg.Go(func() { pipe(up, c) })
			wg.Go(func() { pipe(c, up) })
		}
	})
}

// startIsolated starts a node in p's namespace: it reaches etcd and the
// XMPP server only through p's links, and the test reaches its metrics through
// p's forwarder.
//
// The XMPP service is then 10.231.2.1, not loopback: the dev servers offer no
// STARTTLS, and the runtime sends a password in the clear to a non-loopback
// server only with runtime.allow_plaintext, which the node's config sets (the
// path is the test's own veth; the bytes end on loopback). The etcd endpoint
// needs no such setting: the nodes use no etcd credentials (config refuses
// plaintext etcd off loopback only with a username).
func (f *fixture) startIsolated(name string, p *netPath) *node {
	return f.startNodeOpts(name, nodeOpts{xmppAddr: p.xmpp, etcd: p.etcd,
		metricsListen: p.metricsListen, metricsAddr: p.metricsAddr, prefix: p.prefix(),
		yaml: "runtime:\n  allow_plaintext: true\n"})
}
