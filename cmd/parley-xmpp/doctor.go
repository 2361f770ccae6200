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
	var muc string
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

Prints a table of the checks, then what to change on the server for each one
that did not pass. Exit status: 0 every check passed (warnings allowed), 1 a
check failed, 2 bad usage or configuration.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.runtimeConfig("")
			if err != nil {
				return err
			}
			p, err := runtime.Probe(c)
			if err != nil {
				return fmt.Errorf("%w: %v", config.ErrConfig, err)
			}
			var topics []seam.Topic
			for _, t := range args {
				topics = append(topics, seam.Topic(t))
			}
			if len(args) == 0 {
				topics = a.serveTopics()
			}
			report := doctor.Run(cmd.Context(), doctor.Options{Probe: p, PersistentRooms: c.PersistentRooms, Topics: topics, MUCService: muc})
			if err := doctor.Print(a.out, report); err != nil {
				return err
			}
			if doctor.Failed(report) {
				return errChecksFailed
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&muc, "muc-service", "", "check this MUC service instead of the configuration's muc_service")
	return cmd
}

var errChecksFailed = fmt.Errorf("doctor: a check failed (see the table above)")

// serveTopics are the topics the serve routes read from --server's server.
func (a *app) serveTopics() []seam.Topic {
	seen := map[string]bool{}
	var out []seam.Topic
	for _, r := range a.file.Serve.Routes {
		if r.Server != a.server {
			continue
		}
		for _, t := range r.Topics {
			if !seen[t] {
				seen[t] = true
				out = append(out, seam.Topic(t))
			}
		}
	}
	return out
}
