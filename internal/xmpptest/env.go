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

	"github.com/parley-go/parley-xmpp/internal/defaults"
	"github.com/parley-go/parley-xmpp/internal/rawclient"
)

// Server describes the XMPP server the integration tests use: one of the dev
// servers (PARLEY_TEST_SERVER: prosody, the default, or ejabberd), with any
// setting overridden by the PARLEY_XMPP_* variables that runtime.ConfigFromEnv
// reads (the same names, from internal/defaults; this package can't import
// runtime: xmppconn's own tests use it). Tests build their runtime.Config from
// a Server explicitly.
type Server struct {
	Name      string // prosody or ejabberd: what scripts/devserver.sh calls it
	Addr      string // host:port
	Domain    string
	MUC       string
	NoMAMMUC  string // a MUC service without MAM
	Transient string // a MUC service whose rooms are not persistent by default
	Accounts  [][2]string
}

// devServers are scripts/devserver.sh's servers.
var devServers = map[string]Server{
	"prosody":  {Name: "prosody", Addr: "127.0.0.1:5222", NoMAMMUC: "nomam.parley.local", Transient: "transient.parley.local"},
	"ejabberd": {Name: "ejabberd", Addr: "127.0.0.1:15222", NoMAMMUC: "muc.nomam.local", Transient: "muc.transient.local"},
}

// Env returns the server under test.
func Env() Server {
	get := func(k, def string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return def
	}
	dev, ok := devServers[get("PARLEY_TEST_SERVER", "prosody")]
	if !ok {
		dev = devServers["prosody"]
	}
	addr := strings.TrimPrefix(get(defaults.EnvService, "xmpp://"+dev.Addr), "xmpp://")
	return Server{
		Name:      dev.Name,
		Addr:      addr,
		Domain:    get(defaults.EnvDomain, defaults.Domain),
		MUC:       get(defaults.EnvMUCService, defaults.MUCService),
		NoMAMMUC:  get("PARLEY_XMPP_NOMAM_MUC", dev.NoMAMMUC),
		Transient: get("PARLEY_XMPP_TRANSIENT_MUC", dev.Transient),
		Accounts: [][2]string{
			{get(defaults.EnvUsername, defaults.Username), get(defaults.EnvPassword, defaults.Password)},
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
		t.Fatalf("XMPP server %s (%s) unreachable (%v): CI must run it (scripts/devserver.sh start)", s.Addr, s.Name, err)
	}
	t.Skipf("XMPP server %s (%s) unreachable (%v); start one with scripts/devserver.sh start (with CI=true this fails)", s.Addr, s.Name, err)
	return s
}

// Dial connects an independent client as account i of s (0 is the runtime's
// account).
func Dial(s Server, i int) (*rawclient.Client, error) {
	return rawclient.Dial(s.Addr, s.Domain, s.Accounts[i][0], s.Accounts[i][1])
}
