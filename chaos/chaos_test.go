package chaos

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/parley-go/parley-xmpp/internal/xmpptest"
)

var (
	duration = flag.Duration("chaos.duration", 30*time.Second, "how long the chaos test writes (make soak sets it)")
	seed     = flag.Uint64("chaos.seed", 0, "fault seed (0: from the clock; a failing run prints its seed)")
)

func server(s xmpptest.Server) Server {
	return Server{
		Addr: s.Addr, Domain: s.Domain, MUC: s.MUC,
		User: s.Accounts[0][0], Password: s.Accounts[0][1],
		WriterUser: s.Accounts[3][0], WriterPassword: s.Accounts[3][1],
	}
}

// devServerRestart restarts the local dev server under test (when
// scripts/devserver.sh manages it); otherwise there is no restart fault.
func devServerRestart(t *testing.T, s xmpptest.Server) func(context.Context) error {
	script := "../scripts/devserver.sh"
	if err := exec.Command(script, "status", s.Name).Run(); err != nil {
		t.Log("the server under test is not the dev server: no restart faults")
		return nil
	}
	return func(ctx context.Context) error {
		out, err := exec.CommandContext(ctx, script, "restart", s.Name).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
}

// The chaos suite: faults drawn from a seed on the real TCP path while runtimes
// and an independent client write and subscribers read; then every subscriber's
// deliveries and every post are checked against the archives.
func TestChaos(t *testing.T) {
	s := xmpptest.Require(t)
	ignore := goleak.IgnoreCurrent()
	o := Options{
		Server:     server(s),
		Duration:   *duration,
		FaultEvery: 1500 * time.Millisecond,
		Faults:     []Fault{Kill, Cut, Blackhole, Latency, Bandwidth, Slice},
		Seed:       *seed,
		Log:        func(l string) { t.Log(l) },
	}
	rep, err := Run(context.Background(), o)
	require.NoError(t, err)
	t.Logf("\n%s", rep)
	if !rep.OK() {
		t.Fatalf("chaos found problems; rerun with -chaos.seed=%d", rep.Seed)
	}
	assert.NotZero(t, rep.Messages)
	assert.Greater(t, rep.Posts, 0)
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
		FaultEvery:    3 * time.Second,
		Faults:        []Fault{Restart},
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
	require.NoError(t, p.KillAll())
	assert.Error(t, roundTrip(c, "after kill"), "kill drops the connection")
	c.Close()

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
