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
	"regexp"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/runtime"
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
	nick        string // --nick: the occupant nick, for every server
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
		a.log.Error(errorText(err), slog.Int("exit", code)) // standard error stays JSON lines
	} else {
		fmt.Fprintf(errOut, "parley-xmpp: %s\n", errorText(err))
	}
	return code
}

// noiseRE matches, at the start of the message or of one of its ": "
// segments, the words of the sentinels an error wraps to be classified (usage,
// config), the runtime's own prefix (parley-xmpp, parley-xmpp: bad config) and
// seam's package name: the command says "parley-xmpp: " once.
var noiseRE = regexp.MustCompile(`(^|: )(?:(?:parley-xmpp: bad config|parley-xmpp|usage|config)(?:: |$)|seam: )`)

// errorText is err as the command reports it, without the prefix.
func errorText(err error) string {
	s := err.Error()
	for {
		t := noiseRE.ReplaceAllString(s, "$1")
		if t == s {
			return s
		}
		s = t
	}
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
		Example: `  parley-xmpp post general "hello @bob"
  parley-xmpp fetch general | jq -r .content
  parley-xmpp tail general --state cursors.json
  parley-xmpp --config serve.yaml serve
  parley-xmpp completion bash > /etc/bash_completion.d/parley-xmpp`,
		Version:       versionString(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			l, err := newLogger(a.errOut, a.logFormat, a.logLevel, a.verbose, defaultLevel(cmd))
			if err != nil {
				return err
			}
			if a.nick != "" {
				if _, err := runtime.New(runtime.Config{Nick: a.nick}); err != nil {
					return fmt.Errorf("%w: --nick %q: holds characters a nick can't (/, tabs, newlines, \", <, >, &, or white space at either end)", errUsage, a.nick)
				}
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
	root.PersistentFlags().StringVar(&a.nick, "nick", "", "the occupant nick post, fetch, tail and serve join rooms and post under (default: the configured nick; for post, the account's stable nick, parley-<8 hex digits>; else a random one)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return fmt.Errorf("%w: %v", errUsage, err) })
	root.SetVersionTemplate("{{.Version}}")
	root.AddCommand(a.postCmd(), a.fetchCmd(), a.tailCmd(), a.roomCmd(), a.serveCmd(), a.stateCmd(), a.demoCmd(), a.benchCmd(), a.versionCmd(), a.doctorCmd(), a.clusterCmd(), a.manCmd(root))
	root.SetOut(a.out) // cobra's completion command keeps the writer it is made with
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if ex, ok := examples[c.Name()]; ok && c.Example == "" {
			c.Example = ex
		}
		if c.Name() == "completion" {
			for _, shell := range c.Commands() {
				shell.Example = "  parley-xmpp completion " + shell.Name() + " > parley-xmpp." + shell.Name()
			}
		}
	}
	return root
}

// examples for the commands defined elsewhere (cobra's completion, doctor)
// when they bring none.
var examples = map[string]string{
	"completion": `  parley-xmpp completion bash > /etc/bash_completion.d/parley-xmpp
  parley-xmpp completion zsh > "${fpath[1]}/_parley-xmpp"
  parley-xmpp completion fish > ~/.config/fish/completions/parley-xmpp.fish`,
	"doctor": `  parley-xmpp doctor
  parley-xmpp --config serve.yaml doctor general alerts`,
	"help": `  parley-xmpp help tail`,
}
