// Command parley-xmpp serves Parley topics as XMPP Multi-User Chat rooms: try it
// against a server (post, fetch, tail), run it as a fan-out engine (serve), or
// watch it keep its promise while its connections are killed (demo).
//
// Exit status: 0 success; 1 the operation failed (the server, the network, a
// sink); 2 bad usage or a bad configuration (the message names the flag or key).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/parley-go/parley-xmpp/config"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// errUsage marks an error of the command line (exit status 2).
var errUsage = errors.New("usage")

// app is the state every command shares: its flags and where it writes.
type app struct {
	in          io.Reader
	out, errOut io.Writer
	configPath  string
	server      string
	verbose     bool
	logFormat   string // text or json
	logLevel    string // debug, info, warn, error ("": defaultLevel, or debug with -v)
	log         *slog.Logger
	file        *config.File
}

func run(args []string, in io.Reader, out, errOut io.Writer) int {
	a := &app{in: in, out: out, errOut: errOut}
	root := a.root()
	root.SetArgs(args)
	root.SetIn(in)
	root.SetOut(out)
	root.SetErr(errOut)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	code := 1
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage), errors.Is(err, config.ErrConfig), strings.HasPrefix(err.Error(), "unknown command"):
		code = 2
	}
	if a.log != nil && a.jsonLogs() {
		a.log.Error(err.Error(), slog.Int("exit", code)) // standard error stays JSON lines
	} else {
		fmt.Fprintf(errOut, "parley-xmpp: %v\n", err)
	}
	return code
}

func (a *app) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "parley-xmpp",
		Short: "Parley topics as XMPP Multi-User Chat rooms",
		Long: `parley-xmpp serves Parley topics as XMPP Multi-User Chat rooms.

The server comes from --config (a YAML file with a backend_config block), then
the PARLEY_XMPP_SERVICE, _DOMAIN, _MUC, _USER, _PASS and _NICK variables, then
the defaults (the local development server). Exit status: 0 success, 1 the
operation failed, 2 bad usage or configuration.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			l, err := newLogger(a.errOut, a.logFormat, a.logLevel, a.verbose, defaultLevel(cmd))
			if err != nil {
				return err
			}
			a.log = l
			a.errOut = logStderr{a.errOut, l} // progress lines are its records
			return a.loadConfig()
		},
	}
	root.PersistentFlags().StringVarP(&a.configPath, "config", "c", "", "configuration file (YAML: backend_config, servers, runtime, serve)")
	root.PersistentFlags().StringVar(&a.server, "server", "", "which configured server to use (a name under servers; default: backend_config)")
	root.PersistentFlags().BoolVarP(&a.verbose, "verbose", "v", false, "debug logs on standard error (--log-level debug)")
	root.PersistentFlags().StringVar(&a.logFormat, "log-format", "text", "log format on standard error: text or json (one JSON object per line)")
	root.PersistentFlags().StringVar(&a.logLevel, "log-level", "", "least severe log level shown: debug, info, warn or error (default info for serve, tail, demo and bench, warn for the others)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return fmt.Errorf("%w: %v", errUsage, err) })
	root.AddCommand(a.postCmd(), a.fetchCmd(), a.tailCmd(), a.roomCmd(), a.serveCmd(), a.demoCmd(), a.benchCmd(), a.versionCmd(), a.doctorCmd(), a.clusterCmd())
	return root
}
