package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
	"github.com/parley-go/parley-xmpp/serve"
)

func (a *app) postCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "post TOPIC [TEXT|-]",
		Short: "Post TEXT (or standard input, with - or no TEXT) and print the message id",
		Args:  argsBetween(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, err := a.newRuntime("")
			if err != nil {
				return err
			}
			text := "-"
			if len(args) == 2 {
				text = args[1]
			}
			if text == "-" {
				// Read no more than can be posted (and a newline), and one
				// byte more to know there is more.
				b, err := io.ReadAll(io.LimitReader(a.in, int64(rt.MaxContentBytes())+2))
				if err != nil {
					return err
				}
				text = strings.TrimSuffix(string(b), "\n")
			}
			if err := rt.CheckPost(seam.Topic(args[0]), text); err != nil {
				return postUsage(args[0], err)
			}
			if err := connect(cmd.Context(), rt); err != nil {
				return err
			}
			defer disconnect(rt)
			id, err := rt.Post(cmd.Context(), seam.Topic(args[0]), "cli", text, seam.PostOptions{})
			if err != nil {
				return err
			}
			fmt.Fprintln(a.out, id)
			return nil
		},
	}
}

// postUsage names what post's check refused: the topic or the text.
func postUsage(topic string, err error) error {
	if errors.Is(err, seam.ErrInvalidTopic) {
		return fmt.Errorf("%w: TOPIC %.60q: %v", errUsage, topic, err)
	}
	return fmt.Errorf("%w: TEXT: %v", errUsage, err)
}

// checkFetch checks fetch's and tail's arguments before any network; the error
// names the argument or flag at fault.
func checkFetch(rt *runtime.Runtime, fa seam.FetchRecentArgs) error {
	if _, err := runtime.RoomLocalpart(fa.Topic); err != nil {
		return fmt.Errorf("%w: TOPIC %.60q: %v", errUsage, fa.Topic, err)
	}
	for _, c := range []struct {
		flag string
		args seam.FetchRecentArgs
	}{
		{"--limit", seam.FetchRecentArgs{Topic: fa.Topic, Limit: fa.Limit}},
		{"--block", seam.FetchRecentArgs{Topic: fa.Topic, Block: fa.Block}},
		{"--since", seam.FetchRecentArgs{Topic: fa.Topic, Since: fa.Since}},
	} {
		if err := rt.CheckFetch(c.args); err != nil {
			return fmt.Errorf("%w: %s: %v", errUsage, c.flag, err)
		}
	}
	return nil
}

// printer writes messages as JSON lines or a readable table, one at a time.
type printer struct {
	mu     sync.Mutex
	w      io.Writer
	table  bool
	topics bool // several topics: say which
}

func newPrinter(w io.Writer, format string, topics int) (*printer, error) {
	switch format {
	case "json", "table":
		return &printer{w: w, table: format == "table", topics: topics > 1}, nil
	}
	return nil, fmt.Errorf("%w: --format %q: want json or table", errUsage, format)
}

func (p *printer) print(m seam.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.table {
		return json.NewEncoder(p.w).Encode(serve.Encode(m))
	}
	where := ""
	if p.topics {
		where = "[" + string(m.Topic) + "] "
	}
	_, err := fmt.Fprintf(p.w, "%s  %s%-16s %s\n", m.Timestamp.Local().Format("15:04:05"), where, m.SenderHandle, m.Content)
	return err
}

func (a *app) fetchCmd() *cobra.Command {
	var since, format string
	var fromStart bool
	var limit int
	var block time.Duration
	cmd := &cobra.Command{
		Use:   "fetch TOPIC",
		Short: "Print a page of TOPIC (the newest, or the one after --since), then the next cursor",
		Long: `Print a page of TOPIC, oldest first: the newest messages, or those strictly
after --since (or from the start, --from-start). In JSON (the default) the last
line is {"next_cursor": ...}: pass it as --since to read on.`,
		Args: argsBetween(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := newPrinter(a.out, format, 1)
			if err != nil {
				return err
			}
			if since != "" && fromStart {
				return fmt.Errorf("%w: --since and --from-start exclude each other", errUsage)
			}
			rt, err := a.newRuntime("")
			if err != nil {
				return err
			}
			fa := seam.FetchRecentArgs{Topic: seam.Topic(args[0]), Limit: limit, Block: block}
			if since != "" || fromStart {
				c := seam.Cursor(since)
				fa.Since = &c
			}
			if err := checkFetch(rt, fa); err != nil {
				return err
			}
			if err := connect(cmd.Context(), rt); err != nil {
				return err
			}
			defer disconnect(rt)
			res, err := rt.FetchRecent(cmd.Context(), fa)
			if err != nil {
				return err
			}
			for _, m := range res.Messages {
				if err := p.print(m); err != nil {
					return err
				}
			}
			if p.table {
				_, err = fmt.Fprintf(a.out, "next cursor: %s\n", res.NextCursor)
				return err
			}
			return json.NewEncoder(a.out).Encode(map[string]string{"next_cursor": string(res.NextCursor)})
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "read strictly after this cursor")
	cmd.Flags().BoolVar(&fromStart, "from-start", false, "read from the start of the topic")
	cmd.Flags().IntVar(&limit, "limit", 0, "messages at most (0: 50)")
	cmd.Flags().DurationVar(&block, "block", 0, "wait this long for a message when there is nothing newer")
	cmd.Flags().StringVar(&format, "format", "json", "json (JSON lines) or table")
	return cmd
}

func (a *app) tailCmd() *cobra.Command {
	var since, format, state string
	var fromStart bool
	cmd := &cobra.Command{
		Use:   "tail TOPIC...",
		Short: "Print the topics' new messages as they arrive, until interrupted",
		Long: `Print the topics' messages as they arrive, until interrupted: from now on,
or from --since (one topic) or the start (--from-start), or from the cursors
saved in --state, a file the command keeps up to date so the next run resumes
exactly after the last message printed. Messages come from the archive in its
order: nothing is skipped or printed twice, whatever the link does.`,
		Args: argsBetween(1, -1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := newPrinter(a.out, format, len(args))
			if err != nil {
				return err
			}
			if since != "" && len(args) > 1 {
				return fmt.Errorf("%w: --since names one topic's cursor; with several topics use --state", errUsage)
			}
			if since != "" && fromStart {
				return fmt.Errorf("%w: --since and --from-start exclude each other", errUsage)
			}
			saved, err := loadCursors(state)
			if err != nil {
				return err
			}
			rt, err := a.newRuntime("")
			if err != nil {
				return err
			}
			for _, t := range args {
				fa := seam.FetchRecentArgs{Topic: seam.Topic(t)}
				if since != "" {
					fa.Since = &[]seam.Cursor{seam.Cursor(since)}[0]
				}
				if err := checkFetch(rt, fa); err != nil {
					return err
				}
			}
			if err := connect(cmd.Context(), rt); err != nil {
				return err
			}
			defer disconnect(rt)
			ctx := cmd.Context()
			errs := make(chan error, len(args))
			for _, t := range args {
				topic := seam.Topic(t)
				var start *seam.Cursor
				switch c, ok := saved.get(t); {
				case since != "":
					start = &[]seam.Cursor{seam.Cursor(since)}[0]
				case ok:
					start = &c
				case fromStart:
					start = &[]seam.Cursor{""}[0]
				}
				go func() { errs <- tailTopic(ctx, rt, topic, start, p, saved) }()
			}
			for range args {
				if err := <-errs; err != nil && ctx.Err() == nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "start strictly after this cursor (one topic)")
	cmd.Flags().BoolVar(&fromStart, "from-start", false, "start from the start of the topics")
	cmd.Flags().StringVar(&state, "state", "", "a file of saved cursors: resume from it, keep it up to date")
	cmd.Flags().StringVar(&format, "format", "json", "json (JSON lines) or table")
	return cmd
}

// tailTopic long-polls topic from start (nil: from now on) until ctx ends.
func tailTopic(ctx context.Context, rt *runtime.Runtime, topic seam.Topic, start *seam.Cursor, p *printer, saved *cursors) error {
	if start == nil {
		res, err := rt.FetchRecent(ctx, seam.FetchRecentArgs{Topic: topic, Limit: 1})
		if err != nil {
			return err
		}
		start = &res.NextCursor
	}
	cur := *start
	for ctx.Err() == nil {
		res, err := rt.FetchRecent(ctx, seam.FetchRecentArgs{Topic: topic, Since: &cur, Limit: 100, Block: 30 * time.Second})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, m := range res.Messages {
			if err := p.print(m); err != nil {
				return err
			}
			cur = m.Cursor
			if err := saved.set(string(topic), cur); err != nil {
				return err
			}
		}
		if len(res.Messages) == 0 {
			cur = res.NextCursor
		}
	}
	return nil
}

// cursors is tail's --state file: topic → cursor, rewritten atomically.
type cursors struct {
	mu   sync.Mutex
	path string
	m    map[string]seam.Cursor
}

func loadCursors(path string) (*cursors, error) {
	c := &cursors{path: path, m: map[string]seam.Cursor{}}
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return c, nil
	}
	if err == nil {
		err = json.Unmarshal(b, &c.m)
	}
	if c.m == nil { // the file said null
		c.m = map[string]seam.Cursor{}
	}
	for topic, cur := range c.m {
		if err != nil {
			break
		}
		if cerr := runtime.CheckCursor(cur); cerr != nil {
			err = fmt.Errorf("topic %.60q: %v", topic, cerr)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: --state %s: %v", errUsage, path, err)
	}
	return c, nil
}

func (c *cursors) get(topic string) (seam.Cursor, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[topic]
	return v, ok
}

func (c *cursors) set(topic string, v seam.Cursor) error {
	if c.path == "" {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[topic] = v
	b, err := json.MarshalIndent(c.m, "", "  ")
	if err != nil {
		return err
	}
	tmp := c.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, c.path)
}

func (a *app) roomCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "room TOPIC...",
		Short: "Print the JID of each topic's room",
		Args:  argsBetween(1, -1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.runtimeConfig("")
			if err != nil {
				return err
			}
			muc := or(c.MUCService, runtime.DefaultMUCService)
			for _, t := range args {
				local, err := runtime.RoomLocalpart(seam.Topic(t))
				if err != nil {
					return fmt.Errorf("%w: %q: %v", errUsage, t, err)
				}
				fmt.Fprintf(a.out, "%s\t%s@%s\n", t, local, muc)
			}
			return nil
		},
	}
}

// argsBetween accepts lo to hi arguments (hi < 0: no limit); anything else is
// a usage error.
func argsBetween(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) >= lo && (hi < 0 || len(args) <= hi) {
			return nil
		}
		want := fmt.Sprintf("%d to %d", lo, hi)
		switch {
		case hi < 0:
			want = fmt.Sprintf("at least %d", lo)
		case lo == hi:
			want = fmt.Sprint(lo)
		}
		return fmt.Errorf("%w: %s wants %s arguments, got %d (see %s --help)", errUsage, cmd.Name(), want, len(args), cmd.CommandPath())
	}
}
