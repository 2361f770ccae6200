package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

func connect(ctx context.Context) (*runtime.Runtime, error) {
	rt, err := runtime.New(runtime.Config{})
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := rt.Connect(cctx); err != nil {
		return nil, err
	}
	return rt, nil
}

func disconnect(rt *runtime.Runtime) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = rt.Disconnect(ctx)
}

func newFlags(name string, errOut io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(errOut)
	return fs
}

func runPost(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) error {
	fs := newFlags("post", errOut)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("%w: want TOPIC and TEXT", errUsage)
	}
	text := fs.Arg(1)
	if text == "-" {
		b, err := io.ReadAll(in)
		if err != nil {
			return err
		}
		text = strings.TrimSuffix(string(b), "\n")
	}
	rt, err := connect(ctx)
	if err != nil {
		return err
	}
	defer disconnect(rt)
	id, err := rt.Post(ctx, seam.Topic(fs.Arg(0)), "cli", text, seam.PostOptions{})
	if err != nil {
		return err
	}
	fmt.Fprintln(out, id)
	return nil
}

// jsonMessage is a message as the command prints it.
type jsonMessage struct {
	Topic     string    `json:"topic"`
	ID        string    `json:"id"`
	Cursor    string    `json:"cursor"`
	Sender    string    `json:"sender"`
	Timestamp time.Time `json:"timestamp"`
	Content   string    `json:"content"`
	Mentions  []string  `json:"mentions,omitempty"`
}

func toJSON(m seam.Message) jsonMessage {
	j := jsonMessage{Topic: string(m.Topic), ID: string(m.BackendMsgID), Cursor: string(m.Cursor), Sender: string(m.SenderHandle), Timestamp: m.Timestamp, Content: m.Content}
	for _, h := range m.Mentions {
		j.Mentions = append(j.Mentions, string(h))
	}
	return j
}

func runFetch(ctx context.Context, args []string, _ io.Reader, out, errOut io.Writer) error {
	fs := newFlags("fetch", errOut)
	since := fs.String("since", "", "cursor to read strictly after (\"\" with -from-start: the start)")
	fromStart := fs.Bool("from-start", false, "read from the start of the topic")
	limit := fs.Int("limit", 0, "messages at most (0: the default, 50)")
	block := fs.Duration("block", 0, "wait this long for a new message when there is none")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: want TOPIC", errUsage)
	}
	rt, err := connect(ctx)
	if err != nil {
		return err
	}
	defer disconnect(rt)
	a := seam.FetchRecentArgs{Topic: seam.Topic(fs.Arg(0)), Limit: *limit, Block: *block}
	if *since != "" || *fromStart {
		c := seam.Cursor(*since)
		a.Since = &c
	}
	res, err := rt.FetchRecent(ctx, a)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	for _, m := range res.Messages {
		if err := enc.Encode(toJSON(m)); err != nil {
			return err
		}
	}
	return enc.Encode(map[string]string{"next_cursor": string(res.NextCursor)})
}

func runTail(ctx context.Context, args []string, _ io.Reader, out, errOut io.Writer) error {
	fs := newFlags("tail", errOut)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: want TOPIC", errUsage)
	}
	rt, err := connect(ctx)
	if err != nil {
		return err
	}
	defer disconnect(rt)
	msgs := make(chan seam.Message, 1024)
	sub, err := rt.Subscribe(ctx, seam.Topic(fs.Arg(0)), func(m seam.Message) { msgs <- m })
	if err != nil {
		return err
	}
	defer sub.Close()
	enc := json.NewEncoder(out)
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-msgs:
			if err := enc.Encode(toJSON(m)); err != nil {
				return err
			}
		}
	}
}
