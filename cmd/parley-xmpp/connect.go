package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/serve"
)

// loadConfig reads --config, if given; without one the PARLEY_XMPP_* variables
// and the runtime's defaults apply.
func (a *app) loadConfig() error {
	if a.configPath == "" {
		a.file = config.FromEnv()
		if a.server != "" {
			return fmt.Errorf("%w: --server %q needs --config", errUsage, a.server)
		}
		return nil
	}
	f, err := config.Load(a.configPath)
	if err != nil {
		return err
	}
	a.file = f
	return nil
}

// runtimeConfig is the configuration of server ("" for --server, then the
// default one).
func (a *app) runtimeConfig(server string) (runtime.Config, error) {
	if server == "" {
		server = a.server
	}
	c, err := a.file.ServerConfig(server)
	if err != nil {
		return c, err
	}
	c.Logger = a.log.With(slog.String("server", serverName(server)))
	return c, nil
}

// newRuntime returns a runtime for server ("" for --server), checked and not
// yet connected: a command checks its input against it before any network.
// Its nick is --nick, else the configured one, else, with stable (post), the
// account's stable nick (stableNick), else a random one per run.
func (a *app) newRuntime(server string, stable bool) (*runtime.Runtime, error) {
	c, err := a.runtimeConfig(server)
	if err != nil {
		return nil, err
	}
	switch {
	case a.nick != "":
		c.Nick = a.nick
	case c.Nick == "" && stable:
		c.Nick = stableNick(c.Username, c.Domain)
	}
	rt, err := runtime.New(c)
	if err != nil {
		err = a.file.Explain(a.serverFor(server), err)
		if a.configPath != "" {
			return nil, fmt.Errorf("%w: %s: %w", config.ErrConfig, a.configPath, err)
		}
		return nil, fmt.Errorf("%w: %w", config.ErrConfig, err)
	}
	return rt, nil
}

// serverFor is the server a command uses: server, else --server.
func (a *app) serverFor(server string) string {
	if server == "" {
		return a.server
	}
	return server
}

// explain names, in err (from the runtime's checks of a command's input), the
// configuration keys instead of the runtime's Go fields.
func (a *app) explain(err error) error { return a.file.Explain(a.serverFor(""), err) }

// stableNick is the nick one-shot posts take when none is set: "parley-" and
// the first 8 hex digits of the SHA-256 of the account's bare JID (lower
// case), the same on every run and machine, so a route's senders can name it.
func stableNick(username, domain string) string {
	jid := strings.ToLower(or(username, runtime.DefaultUsername) + "@" + or(domain, runtime.DefaultDomain))
	sum := sha256.Sum256([]byte(jid))
	return "parley-" + hex.EncodeToString(sum[:4])
}

// connect connects rt, giving it 20 s.
func connect(ctx context.Context, rt *runtime.Runtime) error {
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return rt.Connect(cctx)
}

// connectAll connects each server's runtime (rts[i] is names[i]'s) and
// answers them as the engine's backends, by server name, and a func that
// disconnects those connected; on an error, those already connected are
// disconnected and the error names the server.
func connectAll(ctx context.Context, names []string, rts []*runtime.Runtime) (map[string]serve.Backend, func(), error) {
	backends := make(map[string]serve.Backend, len(names))
	var connected []*runtime.Runtime
	done := func() {
		for _, rt := range connected {
			disconnect(rt)
		}
	}
	for i, name := range names {
		if err := connect(ctx, rts[i]); err != nil {
			done()
			return nil, nil, fmt.Errorf("server %s: %w", serverLabel(name), err)
		}
		connected = append(connected, rts[i])
		backends[name] = rts[i]
	}
	return backends, done, nil
}

func disconnect(rt *runtime.Runtime) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = rt.Disconnect(ctx)
}
