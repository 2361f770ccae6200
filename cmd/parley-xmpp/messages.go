package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
	"github.com/parley-go/parley-xmpp/serve"
)

func (a *app) postCmd() *cobra.Command {
	var lines bool
	cmd := &cobra.Command{
		Use:   "post TOPIC [TEXT|-]",
		Short: "Post TEXT (or standard input, with - or no TEXT) and print the message id",
		Long: `Post TEXT to TOPIC, or standard input (with - or no TEXT; one trailing newline
is dropped), and print the message id once the room has it. With --lines, each
line of standard input is a message of its own, posted in order (empty lines
are skipped), and each id is printed as it is posted: standard input is read to
its end and every line checked before anything is posted.

The nick is --nick, else the configuration's nick, else the account's own:
"parley-" and the first 8 hex digits of the SHA-256 of its bare JID (user@domain,
lower case), the same on every run, so a route's senders can name it.`,
		Example: `  parley-xmpp post general "hello @bob"
  echo "from a pipe" | parley-xmpp post general
  printf 'one\ntwo\n' | parley-xmpp post --lines general
  parley-xmpp --nick deploy-bot post deploys "v1.2 is out"`,
		Args: argsBetween(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, err := a.newRuntime("", true)
			if err != nil {
				return err
			}
			topic := seam.Topic(args[0])
			var texts []string
			switch {
			case lines && len(args) == 2 && args[1] != "-":
				return fmt.Errorf("%w: --lines posts the lines of standard input: give no TEXT (or -)", errUsage)
			case lines:
				if texts, err = a.readLines(rt, topic); err != nil {
					return err
				}
				if len(texts) == 0 {
					return fmt.Errorf("%w: --lines: standard input holds no line to post", errUsage)
				}
			case len(args) == 2 && args[1] != "-":
				texts = []string{args[1]}
				if err := rt.CheckPost(topic, texts[0]); err != nil {
					return a.postUsage(args[0], "TEXT", err)
				}
			default:
				text, err := a.readText(rt.MaxContentBytes())
				if err != nil {
					return err
				}
				if err := rt.CheckPost(topic, text); err != nil {
					return a.postUsage(args[0], "TEXT (standard input)", err)
				}
				texts = []string{text}
			}
			err = a.postAll(cmd.Context(), rt, topic, texts)
			if err != nil && lines {
				return fmt.Errorf("%w (the ids printed were posted, in order; the rest were not)", err)
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&lines, "lines", false, "post each line of standard input as a message of its own, in order")
	return cmd
}

// nickWait bounds how long post waits for this user's other posts under the
// same nick (the same stable nick) to finish.
var nickWait = time.Minute

// postAll posts texts to topic in order, printing each id. A nick is
// exclusive per connection: this user's posts under it on this machine take
// turns (lockNick). A connection elsewhere that holds it fails the post
// (seam.ErrNickConflict): give that one its own --nick.
func (a *app) postAll(ctx context.Context, rt *runtime.Runtime, topic seam.Topic, texts []string) error {
	c, err := a.runtimeConfig("")
	if err != nil {
		return err
	}
	where := or(c.Username, runtime.DefaultUsername) + "@" + or(c.Domain, runtime.DefaultDomain) + " " + or(c.MUCService, runtime.DefaultMUCService)
	lctx, cancel := context.WithTimeout(ctx, nickWait)
	unlock, err := lockNick(lctx, where, rt.Nick())
	cancel()
	if err != nil {
		return fmt.Errorf("waited %s for this user's other posts as %q to finish: %w", nickWait, rt.Nick(), err)
	}
	defer unlock()
	if err := connect(ctx, rt); err != nil {
		return err
	}
	defer disconnect(rt)
	a.log.Info("posting", slog.String("topic", string(topic)), slog.String("nick", rt.Nick()), slog.Int("messages", len(texts)))
	for i, text := range texts {
		id, err := rt.Post(ctx, topic, "cli", text, seam.PostOptions{})
		if err != nil {
			if errors.Is(err, seam.ErrNickConflict) {
				err = fmt.Errorf("%w (another connection of the account holds the nick %q: a tail, a serve, or a post from another machine; give one of them its own --nick)", err, rt.Nick())
			}
			if len(texts) > 1 {
				err = fmt.Errorf("message %d of %d: %w", i+1, len(texts), err)
			}
			return err
		}
		fmt.Fprintln(a.out, id)
	}
	return nil
}

// maxInput bounds what post reads from standard input: a text over the
// limit is reported with its size, up to this.
var maxInput int64 = 1 << 30

// measured keeps the first max bytes written to it and counts them all.
type measured struct {
	buf  []byte
	max  int
	n    int64
	last byte
}

func (m *measured) Write(p []byte) (int, error) {
	if room := m.max - len(m.buf); room > 0 {
		m.buf = append(m.buf, p[:min(room, len(p))]...)
	}
	if len(p) > 0 {
		m.n += int64(len(p))
		m.last = p[len(p)-1]
	}
	return len(p), nil
}

// readText reads post's text from standard input, dropping one trailing
// newline. A text over max bytes is a usage error giving its real size.
func (a *app) readText(limit int) (string, error) {
	m := &measured{max: limit + 1} // and its newline
	if _, err := io.Copy(m, io.LimitReader(a.in, maxInput+1)); err != nil {
		return "", fmt.Errorf("reading standard input: %w", err)
	}
	size := m.n
	if m.last == '\n' {
		size--
	}
	switch {
	case m.n > maxInput:
		return "", fmt.Errorf("%w: TEXT (standard input): over %d bytes, far over the %d-byte limit (%s)", errUsage, maxInput, limit, a.contentKey())
	case size > int64(limit):
		return "", fmt.Errorf("%w: TEXT (standard input): %d bytes is over the %d-byte limit (%s)", errUsage, size, limit, a.contentKey())
	}
	return strings.TrimSuffix(string(m.buf), "\n"), nil
}

// contentKey names the setting that caps a post's size.
func (a *app) contentKey() string {
	if a.configPath == "" {
		return "runtime.max_content_bytes in a --config file"
	}
	return "runtime.max_content_bytes"
}

// readLines reads post --lines' messages, every line checked (empty ones
// skipped, a trailing carriage return dropped); an error names the line and,
// for a line over the limit, its real size.
func (a *app) readLines(rt *runtime.Runtime, topic seam.Topic) ([]string, error) {
	limit := rt.MaxContentBytes()
	r := bufio.NewReader(io.LimitReader(a.in, maxInput))
	var out []string
	for n := 1; ; n++ {
		var line []byte // its first max+2 bytes
		size := 0       // all of it, its end (\n or \r\n) included
		var tail []byte // its last two bytes
		var err error
		for {
			var chunk []byte
			chunk, err = r.ReadSlice('\n')
			size += len(chunk)
			line = append(line, chunk[:min(len(chunk), max(0, limit+2-len(line)))]...)
			tail = append(tail, chunk...)
			tail = tail[max(0, len(tail)-2):]
			if err != bufio.ErrBufferFull {
				break
			}
		}
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("reading standard input: %w", err)
		}
		text := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
		if bytes.HasSuffix(tail, []byte("\n")) {
			size--
			if bytes.HasSuffix(tail, []byte("\r\n")) {
				size--
			}
		}
		if size > limit {
			return nil, fmt.Errorf("%w: line %d of standard input: %d bytes is over the %d-byte limit (%s)", errUsage, n, size, limit, a.contentKey())
		}
		if text != "" {
			if cerr := rt.CheckPost(topic, text); cerr != nil {
				return nil, a.postUsage(string(topic), fmt.Sprintf("line %d of standard input", n), cerr)
			}
			out = append(out, text)
		}
		if err == io.EOF {
			return out, nil
		}
	}
}

// postUsage names what post's check refused: the topic or the text (what).
func (a *app) postUsage(topic, what string, err error) error {
	if errors.Is(err, seam.ErrInvalidTopic) {
		return fmt.Errorf("%w: TOPIC %.60q: %v", errUsage, topic, err)
	}
	return fmt.Errorf("%w: %s: %v", errUsage, what, a.explain(err))
}

// checkFetch checks fetch's and tail's arguments before any network; the error
// names the argument or flag at fault.
func (a *app) checkFetch(rt *runtime.Runtime, fa seam.FetchRecentArgs) error {
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
			return fmt.Errorf("%w: %s: %v", errUsage, c.flag, a.explain(err))
		}
	}
	return nil
}

// printer writes messages as JSON lines (serve's stdout shape) or a readable
// table, one at a time, up to limit messages (0: no limit).
type printer struct {
	mu      sync.Mutex
	w       io.Writer
	table   bool
	topics  bool // several topics: say which
	limit   int
	printed int
}

// errEnough: the printer has printed its limit.
var errEnough = errors.New("printed --count messages")

func newPrinter(w io.Writer, format string, topics int) (*printer, error) {
	switch format {
	case "json", "table":
		return &printer{w: w, table: format == "table", topics: topics > 1}, nil
	}
	return nil, fmt.Errorf("%w: --format %q: want json or table", errUsage, format)
}

// print prints m, or answers errEnough without printing it when the limit is
// reached; done reports whether m was the last one the limit allows.
func (p *printer) print(m seam.Message) (done bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.limit > 0 && p.printed >= p.limit {
		return true, errEnough
	}
	if p.table {
		where := ""
		if p.topics {
			where = "[" + string(m.Topic) + "] "
		}
		_, err = fmt.Fprintf(p.w, "%s  %s%-16s %s\n", m.Timestamp.Local().Format("15:04:05"), where, m.SenderHandle, m.Content)
	} else {
		enc := json.NewEncoder(p.w)
		enc.SetEscapeHTML(false) // as serve's stdout sink writes it
		err = enc.Encode(serve.Encode(m))
	}
	if err != nil {
		return false, err
	}
	p.printed++
	return p.limit > 0 && p.printed >= p.limit, nil
}

func (a *app) fetchCmd() *cobra.Command {
	var since, format, cursorFile string
	var fromStart, trailer bool
	var limit int
	var block time.Duration
	cmd := &cobra.Command{
		Use:   "fetch TOPIC",
		Short: "Print a page of TOPIC (the newest, or the one after --since), one message per line",
		Long: `Print a page of TOPIC, oldest first: the newest messages, or those strictly
after --since (or from the start, --from-start). In JSON (the default) each line
is one message, the same shape serve's stdout sink writes, so
"fetch | jq .content" reads every message. The next cursor (pass it as --since
to read on) goes to --cursor-file, else to standard error ("next cursor: C");
--trailer also prints it as a last line {"next_cursor": C}, as before. In a
table the next cursor is the last line.`,
		Example: `  parley-xmpp fetch general | jq -r .content
  parley-xmpp fetch general --from-start --limit 100 --cursor-file general.cursor
  parley-xmpp fetch general --since "$(cat general.cursor)" --cursor-file general.cursor
  parley-xmpp fetch general --format table`,
		Args: argsBetween(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := newPrinter(a.out, format, 1)
			if err != nil {
				return err
			}
			if since != "" && fromStart {
				return fmt.Errorf("%w: --since and --from-start exclude each other", errUsage)
			}
			if cursorFile != "" {
				if err := checkWritable("--cursor-file", cursorFile); err != nil {
					return err
				}
			}
			rt, err := a.newRuntime("", false)
			if err != nil {
				return err
			}
			fa := seam.FetchRecentArgs{Topic: seam.Topic(args[0]), Limit: limit, Block: block}
			if since != "" || fromStart {
				c := seam.Cursor(since)
				fa.Since = &c
			}
			if err := a.checkFetch(rt, fa); err != nil {
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
				if _, err := p.print(m); err != nil {
					return err
				}
			}
			if cursorFile != "" {
				if err := writeFileAtomic(cursorFile, []byte(string(res.NextCursor)+"\n")); err != nil {
					return fmt.Errorf("--cursor-file: %w", err)
				}
			}
			switch {
			case p.table:
				_, err = fmt.Fprintf(a.out, "next cursor: %s\n", res.NextCursor)
			case trailer:
				err = json.NewEncoder(a.out).Encode(map[string]string{"next_cursor": string(res.NextCursor)})
			case cursorFile == "":
				_, err = fmt.Fprintf(a.errOut, "next cursor: %s\n", res.NextCursor)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "read strictly after this cursor")
	cmd.Flags().BoolVar(&fromStart, "from-start", false, "read from the start of the topic")
	cmd.Flags().IntVar(&limit, "limit", 0, "messages at most (0: runtime.fetch_limit, 50)")
	cmd.Flags().DurationVar(&block, "block", 0, "wait this long for a message when there is nothing newer")
	cmd.Flags().StringVar(&format, "format", "json", "json (JSON lines) or table")
	cmd.Flags().StringVar(&cursorFile, "cursor-file", "", "write the next cursor to this file (replaced atomically) instead of standard error")
	cmd.Flags().BoolVar(&trailer, "trailer", false, `JSON: end with a line {"next_cursor": C} on standard output (the old format)`)
	return cmd
}

func (a *app) tailCmd() *cobra.Command {
	var since, format, state string
	var fromStart bool
	var count int
	cmd := &cobra.Command{
		Use:   "tail TOPIC...",
		Short: "Print the topics' new messages as they arrive, until interrupted (or --count)",
		Long: `Print the topics' messages as they arrive, until interrupted or, with
--count N, after N messages: from now on, or from --since (one topic) or the
start (--from-start), or from the cursors saved in --state, a file the command
keeps up to date so the next run resumes exactly after the last message
printed. Messages come from the archive in its order: nothing is skipped or
printed twice, whatever the link does. The --state file is checked before any
network: its directory must exist and be writable, and the file, if there is
one, must be readable and hold saved cursors.`,
		Example: `  parley-xmpp tail general
  parley-xmpp tail general alerts --state cursors.json
  parley-xmpp tail general --from-start --count 10 | jq -r .content
  parley-xmpp tail alerts --format table`,
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
			if count < 0 {
				return fmt.Errorf("%w: --count %d: want 0 (no limit) or more", errUsage, count)
			}
			p.limit = count
			saved, err := loadCursors(state)
			if err != nil {
				return err
			}
			rt, err := a.newRuntime("", false)
			if err != nil {
				return err
			}
			for _, t := range args {
				fa := seam.FetchRecentArgs{Topic: seam.Topic(t)}
				if since != "" {
					fa.Since = &[]seam.Cursor{seam.Cursor(since)}[0]
				}
				if err := a.checkFetch(rt, fa); err != nil {
					return err
				}
			}
			if err := connect(cmd.Context(), rt); err != nil {
				return err
			}
			defer disconnect(rt)
			ctx, enough := context.WithCancel(cmd.Context())
			defer enough()
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
				go func() { errs <- tailTopic(ctx, rt, topic, start, p, saved, enough) }()
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
	cmd.Flags().IntVar(&count, "count", 0, "stop after this many messages, all topics together (0: run until interrupted)")
	return cmd
}

// tailTopic long-polls topic from start (nil: from now on) until ctx ends,
// saving each message's cursor once it is printed; it calls enough once the
// printer has printed its limit.
func tailTopic(ctx context.Context, rt *runtime.Runtime, topic seam.Topic, start *seam.Cursor, p *printer, saved *cursors, enough func()) error {
	if start == nil {
		res, err := rt.FetchRecent(ctx, seam.FetchRecentArgs{Topic: topic, Limit: 1})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
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
			done, err := p.print(m)
			if errors.Is(err, errEnough) {
				enough()
				return nil
			}
			if err != nil {
				return err
			}
			cur = m.Cursor
			if err := saved.set(string(topic), cur); err != nil {
				return fmt.Errorf("--state %s: saving the cursor of the message just printed (%s): %w", saved.path, cur, err)
			}
			if done {
				enough()
				return nil
			}
		}
		// Past the rows the archive skipped after the last message too: the
		// next read would return them again (the same rule as serve's).
		if next := res.After(cur); next != cur {
			cur = next
			if err := saved.set(string(topic), cur); err != nil {
				return fmt.Errorf("--state %s: saving the cursor after the page (%s): %w", saved.path, cur, err)
			}
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

// loadCursors reads tail's --state file, checking before any network that it
// can be kept: the directory exists and takes new files, the file (if there is
// one) is readable and holds valid cursors.
func loadCursors(path string) (*cursors, error) {
	c := &cursors{path: path, m: map[string]seam.Cursor{}}
	if path == "" {
		return c, nil
	}
	if err := checkWritable("--state", path); err != nil {
		return nil, err
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

// checkWritable checks, before any network, that the file at path (flag's
// value) can be written as writeFileAtomic writes it: its directory exists and
// takes a new file, and the path is no directory. The error is a usage error
// naming the flag and the path.
func checkWritable(flag, path string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s %s: %s", errUsage, flag, path, fmt.Sprintf(format, args...))
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return bad("is a directory; want a file")
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return bad("the directory %s doesn't exist (create it first)", dir)
	case err != nil:
		return bad("%v", errors.Unwrap(err))
	case !fi.IsDir():
		return bad("%s is not a directory", dir)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".check-*")
	if err != nil {
		return bad("can't write in %s: %v", dir, errors.Unwrap(err))
	}
	f.Close()
	_ = os.Remove(f.Name())
	return nil
}

// writeFileAtomic replaces path with data: written to a temporary file beside
// it, synced, then renamed over it.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after the rename, nothing to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
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
	return writeFileAtomic(c.path, b)
}

func (a *app) roomCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "room TOPIC...",
		Short: "Print the JID of each topic's room",
		Long: `Print, for each TOPIC, a line "TOPIC<tab>ROOM-JID": the room it lives in on the
configured MUC service. Nothing is sent to the server.`,
		Example: `  parley-xmpp room general "Team Chat"
  parley-xmpp --config serve.yaml --server remote room alerts`,
		Args: argsBetween(1, -1),
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
