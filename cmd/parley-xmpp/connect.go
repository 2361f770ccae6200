package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/runtime"
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
func (a *app) newRuntime(server string) (*runtime.Runtime, error) {
	c, err := a.runtimeConfig(server)
	if err != nil {
		return nil, err
	}
	rt, err := runtime.New(c)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", config.ErrConfig, err)
	}
	return rt, nil
}

// connect connects rt, giving it 20 s.
func connect(ctx context.Context, rt *runtime.Runtime) error {
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return rt.Connect(cctx)
}

func disconnect(rt *runtime.Runtime) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = rt.Disconnect(ctx)
}
