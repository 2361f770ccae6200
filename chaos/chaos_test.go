package chaos

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
)

// The chaos test's settings. The defaults are the short run CI makes; make
// soak sets them for a long one (docs/reliability.md).
var (
	duration     = flag.Duration("chaos.duration", 30*time.Second, "how long the chaos test writes (make soak sets it)")
	seed         = flag.Uint64("chaos.seed", 0, "fault seed (0: from the clock; a failing run prints its seed)")
	runtimes     = flag.Int("chaos.runtimes", 2, "runtimes, each behind a proxy of its own")
	rooms        = flag.Int("chaos.rooms", 3, "rooms (topics) every runtime subscribes and posts to")
	faultEvery   = flag.Duration("chaos.fault-every", 1500*time.Millisecond, "a fault on each runtime's link about this often")
	postEvery    = flag.Duration("chaos.post-every", 25*time.Millisecond, "each writer posts to each room this often")
	restartEvery = flag.Duration("chaos.restart-every", 0, "restart the dev server about this often (0: never)")
	weights      = flag.String("chaos.weights", "", "how often each fault is drawn, e.g. kill=6,cut=2,blackhole=1 (unnamed faults: 1; 0 leaves one out)")
	minKills     = flag.Int("chaos.min-kills", 0, "fail unless kills cut at least this many links")
)

func server(s xmpptest.Server) Server {
	return Server{
		Addr: s.Addr, Domain: s.Domain, MUC: s.MUC,
		User: s.Accounts[0][0], Password: s.Accounts[0][1],
		WriterUser: s.Accounts[3][0], WriterPassword: s.Accounts[3][1],
	}
}

// devServerRestart restarts the local dev server under test (when
// scripts/devserver.sh manages it, the instance its PARLEY_DEV_* variables
// name, and the test's address is that instance's port); otherwise there is
// no restart fault.
func devServerRestart(t *testing.T, s xmpptest.Server) func(context.Context) error {
	script := "../scripts/devserver.sh"
	if err := exec.Command(script, "status", s.Name).Run(); err != nil {
		t.Log("the server under test is not the dev server: no restart faults")
		return nil
	}
	if port := devServerPort(s.Name); !strings.HasSuffix(s.Addr, ":"+port) {
		t.Logf("the server under test (%s) is not the dev server scripts/devserver.sh would restart (its %s listens on port %s; set PARLEY_DEV_* as for it): no restart faults", s.Addr, s.Name, port)
		return nil
	}
	return func(ctx context.Context) error {
		// The script inherits this process's environment: PARLEY_DEV_DIR and the
		// ports pick the same instance as the status check above.
		out, err := exec.CommandContext(ctx, script, "restart", s.Name).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
}

// devServerPort is the port scripts/devserver.sh runs server on.
func devServerPort(server string) string {
	env, def := "PARLEY_DEV_PROSODY_PORT", "5222"
	if server == "ejabberd" {
		env, def = "PARLEY_DEV_EJABBERD_PORT", "15222"
	}
	if v := os.Getenv(env); v != "" {
		return v
	}
	return def
}

// parseWeights reads -chaos.weights: kind=n pairs, comma-separated.
func parseWeights(s string) (map[Fault]int, error) {
	w := map[Fault]int{}
	if s == "" {
		return w, nil
	}
	for pair := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n < 0 {
			return nil, fmt.Errorf("-chaos.weights: %q is not kind=n (n ≥ 0)", pair)
		}
		switch f := Fault(k); f {
		case Kill, Cut, Blackhole, Latency, Bandwidth, Slice:
			w[f] = n
		default:
			return nil, fmt.Errorf("-chaos.weights: no link fault %q (kill, cut, blackhole, latency, bandwidth, slice)", k)
		}
	}
	return w, nil
}

// The chaos suite: faults drawn from a seed on the real TCP path while runtimes
// and an independent client write and subscribers read; every subscriber's
// deliveries and every post are checked against the archives, read during the
// run. With its flags set by make soak, the soak (docs/reliability.md).
func TestChaos(t *testing.T) {
	s := xmpptest.Require(t)
	ignore := goleak.IgnoreCurrent()
	w, err := parseWeights(*weights)
	require.NoError(t, err)
	o := Options{
		Server:     server(s),
		Duration:   *duration,
		Runtimes:   *runtimes,
		Rooms:      *rooms,
		PostEvery:  *postEvery,
		FaultEvery: *faultEvery,
		Faults:     []Fault{Kill, Cut, Blackhole, Latency, Bandwidth, Slice},
		Weights:    w,
		Seed:       *seed,
		Log:        func(l string) { t.Log(l) },
		// A short run reads the archives whole once more: the incremental reads
		// must have seen exactly what they hold.
		FullRead: *duration <= time.Minute,
	}
	if *restartEvery > 0 {
		o.RestartServer = devServerRestart(t, s)
		require.NotNil(t, o.RestartServer, "-chaos.restart-every needs the dev server under test (scripts/devserver.sh)")
		o.Faults = append(o.Faults, Restart)
		o.RestartEvery = *restartEvery
	}
	rep, err := Run(context.Background(), o)
	require.NoError(t, err)
	t.Logf("\n%s", rep)
	if !rep.OK() {
		t.Fatalf("chaos found problems; rerun with -chaos.seed=%d", rep.Seed)
	}
	assert.NotZero(t, rep.Messages)
	assert.Greater(t, rep.Posts, 0)
	assert.GreaterOrEqual(t, rep.Faults[Kill], *minKills, "links cut by kills")
	// Toxiproxy's own link goroutines can outlive its Stop (a bandwidth toxic
	// blocked on a channel nobody reads); they are the harness's, not the
	// runtime's.
	goleak.VerifyNone(t, ignore,
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2.(*ToxicLink).read"),
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2.(*ToxicLink).write"),
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2/toxics.(*ToxicStub).Run"),
	)
}

// The server itself restarts (twice) while everything runs: rooms are
// persistent, so history survives, and the runtimes rejoin and replay.
func TestChaosServerRestart(t *testing.T) {
	s := xmpptest.Require(t)
	restart := devServerRestart(t, s)
	if restart == nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs the dev server: the restart test must run")
		}
		t.Skip("needs the dev server (scripts/devserver.sh) to restart it")
	}
	rep, err := Run(context.Background(), Options{
		Server:        server(s),
		Duration:      8 * time.Second,
		RestartEvery:  3 * time.Second,
		Faults:        []Fault{Restart},
		FullRead:      true,
		RestartServer: restart,
		Seed:          *seed,
		Log:           func(l string) { t.Log(l) },
	})
	require.NoError(t, err)
	t.Logf("\n%s", rep)
	require.NotZero(t, rep.Faults[Restart], "the server was restarted")
	if !rep.OK() {
		t.Fatalf("the server restart lost, duplicated or reordered something; rerun with -chaos.seed=%d", rep.Seed)
	}
}

// The proxy's faults do what they say, on a plain TCP echo.
func TestProxyFaults(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	p, err := NewProxy(echo.Addr().String())
	require.NoError(t, err)
	defer p.Close()

	roundTrip := func(c net.Conn, msg string) error {
		_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := c.Write([]byte(msg)); err != nil {
			return err
		}
		buf := make([]byte, len(msg))
		_, err := io.ReadFull(c, buf)
		return err
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", p.Addr())
		require.NoError(t, err)
		return c
	}

	c := dial()
	require.NoError(t, roundTrip(c, "hello"))
	c2 := dial()
	require.NoError(t, roundTrip(c2, "hello"))
	assert.Equal(t, 2, p.Kill(), "kill counts the connections it cuts")
	assert.Zero(t, p.Kill(), "each once")
	assert.Error(t, roundTrip(c, "after kill"), "kill drops the connection")
	c.Close()
	c2.Close()

	c = dial()
	require.NoError(t, roundTrip(c, "new connection works"))
	require.NoError(t, p.Blackhole())
	assert.Error(t, roundTrip(c, "into the hole"), "nothing comes back from a blackhole")
	p.Heal()
	c.Close()

	c = dial()
	require.NoError(t, p.CutAfter(3))
	assert.Error(t, roundTrip(c, "longer than three bytes"), "cut mid-stream")
	p.Heal()
	c.Close()

	c = dial()
	require.NoError(t, p.Latency(200*time.Millisecond, 0))
	start := time.Now()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	_, err = c.Write([]byte("slow"))
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "latency both ways")
	p.Heal()
	c.Close()
}
