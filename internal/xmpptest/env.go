// Package xmpptest holds test helpers: the settings of the local test servers
// (and the rule that CI never skips for want of one), and a scripted server for
// hostile input no real server would send.
package xmpptest

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/parley-go/parley-xmpp/internal/rawclient"
)

// Server describes the XMPP server the integration tests use, from the same
// PARLEY_XMPP_* variables the runtime reads, with the dev server's defaults.
type Server struct {
	Addr     string // host:port
	Domain   string
	MUC      string
	NoMAMMUC string // a MUC service without MAM
	Accounts [][2]string
}

// Env returns the server under test.
func Env() Server {
	get := func(k, def string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return def
	}
	addr := strings.TrimPrefix(get("PARLEY_XMPP_SERVICE", "xmpp://127.0.0.1:5222"), "xmpp://")
	return Server{
		Addr:     addr,
		Domain:   get("PARLEY_XMPP_DOMAIN", "parley.local"),
		MUC:      get("PARLEY_XMPP_MUC", "muc.parley.local"),
		NoMAMMUC: get("PARLEY_XMPP_NOMAM_MUC", "nomam.parley.local"),
		Accounts: [][2]string{
			{get("PARLEY_XMPP_USER", "parley"), get("PARLEY_XMPP_PASS", "parleypass")},
			{"parley2", "parleypass2"},
			{"parley3", "parleypass3"},
			{"observer", "observerpass"},
		},
	}
}

// Require fails the test when the server isn't reachable and CI=true or
// PARLEY_XMPP_REQUIRE_SERVER=1 (set by `make test`); otherwise it skips it. In
// CI an unreachable server is a failure, never a skip.
func Require(t testing.TB) Server {
	t.Helper()
	s := Env()
	c, err := net.DialTimeout("tcp", s.Addr, 2*time.Second)
	if err == nil {
		_ = c.Close()
		return s
	}
	if os.Getenv("CI") == "true" || os.Getenv("PARLEY_XMPP_REQUIRE_SERVER") == "1" {
		t.Fatalf("XMPP server %s unreachable (%v): CI must run it (scripts/devserver.sh start)", s.Addr, err)
	}
	t.Skipf("XMPP server %s unreachable (%v); start one with scripts/devserver.sh start (with CI=true this fails)", s.Addr, err)
	return s
}

// Dial connects an independent client as account i of s (0 is the runtime's
// account).
func Dial(s Server, i int) (*rawclient.Client, error) {
	return rawclient.Dial(s.Addr, s.Domain, s.Accounts[i][0], s.Accounts[i][1])
}
