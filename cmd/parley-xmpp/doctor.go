package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/internal/doctor"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

func (a *app) doctorCmd() *cobra.Command {
	var muc, format string
	cmd := &cobra.Command{
		Use:   "doctor [TOPIC...]",
		Short: "Check that the server is set up the way parley-xmpp needs, and say what to change",
		Long: `Connect as the configuration says (exactly as the runtime would) and check the
server: TLS and its certificate, login, MAM on the MUC service, a room created
and made persistent, MAM on for new rooms, the stanza size limit against
max_content_bytes, the MAM page cap, the archive's retention in the given
topics (default: the serve routes' topics), that the topics' rooms which exist
are owned by this account (not squatted by another), and the clock offset. It
joins each existing topic room briefly to read its affiliation. It creates a
room of its own (parley-doctor-...), posts a few messages there, and destroys
it.

Without --server, every server the serve routes read from or relay to is
checked (backend_config as "default", then each one under servers), each with
the topics the routes read or relay there; with --server, or without serve
routes, the one server.

A plain-text stream is a warning on a loopback server (nothing crosses a
network: the dev servers) and a failure anywhere else.

--format table (the default) prints a table of the checks per server, then
what to change on the server for each one that did not pass. --format json
prints one JSON document: {"status", "servers": [{"server", "service",
"domain", "muc_service", "status", "checks": [{"name", "status", "detail",
"fix"}]}]}, each status pass, warn, fail or skip. Exit status: 0 every check
passed (warnings allowed), 1 a check failed, 2 bad usage or configuration.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "table" && format != "json" {
				return fmt.Errorf("%w: --format %q: table or json", errUsage, format)
			}
			var given []seam.Topic
			for _, t := range args {
				given = append(given, seam.Topic(t))
			}
			// Every server's configuration is checked before any network.
			type target struct {
				name string
				o    doctor.Options
			}
			var targets []target
			for _, name := range a.doctorServers() {
				c, err := a.runtimeConfig(name)
				if err != nil {
					return err
				}
				p, err := runtime.Probe(c)
				if err != nil {
					return fmt.Errorf("%w: %s: %v", config.ErrConfig, serverKey(name), err)
				}
				topics := given
				if len(args) == 0 {
					topics = a.serveTopics(name)
				}
				targets = append(targets, target{name, doctor.Options{Probe: p, PersistentRooms: c.PersistentRooms, Topics: topics,
					MUCService: muc, Key: serverKey(name)}})
			}
			var reports []doctor.Server
			failed := false
			for _, t := range targets {
				checks := doctor.Run(cmd.Context(), t.o)
				failed = failed || doctor.Failed(checks)
				reports = append(reports, doctor.NewServer(serverLabel(t.name), t.o, checks))
			}
			var err error
			if format == "json" {
				err = doctor.WriteJSON(a.out, reports)
			} else {
				err = doctor.PrintServers(a.out, reports)
			}
			if err != nil {
				return err
			}
			if failed {
				return errChecksFailed
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&muc, "muc-service", "", "check this MUC service instead of the configuration's muc_service")
	cmd.Flags().StringVar(&format, "format", "table", "output: table, or json (one document with every check)")
	return cmd
}

var errChecksFailed = fmt.Errorf("doctor: a check failed (see the report above)")

// doctorServers are the servers doctor checks: --server's when given, else
// every server the serve routes read from or relay to (serve's order), else
// the default one.
func (a *app) doctorServers() []string {
	if a.server != "" || len(a.file.Serve.Routes) == 0 {
		return []string{a.server}
	}
	return serversOf(a.file.Serve.Routes)
}

// serveTopics are the topics the serve routes read from server, and those
// they relay to it (the runtime creates and owns those rooms too).
func (a *app) serveTopics(server string) []seam.Topic {
	seen := map[string]bool{}
	var out []seam.Topic
	add := func(t string) {
		if !seen[t] {
			seen[t] = true
			out = append(out, seam.Topic(t))
		}
	}
	for _, r := range a.file.Serve.Routes {
		if r.Server == server {
			for _, t := range r.Topics {
				add(t)
			}
		}
		if rl := r.Sink.Relay; rl != nil && rl.Server == server {
			add(rl.Topic)
		}
	}
	return out
}
