package runtime_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// These examples run against the dev server (scripts/devserver.sh start, or
// the PARLEY_XMPP_* variables): TestMain skips them when it is unreachable,
// unless CI=true or PARLEY_XMPP_REQUIRE_SERVER=1, when they fail.

// connectExample connects a runtime to the server of the PARLEY_XMPP_*
// variables (the dev server by default) and gives it a topic of its own.
func connectExample() (*runtime.Runtime, seam.Topic, error) {
	rt, err := runtime.New(runtime.ConfigFromEnv())
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := rt.Connect(ctx); err != nil {
		return nil, "", err
	}
	return rt, seam.Topic("example-" + strings.ToLower(rand.Text()[:10])), nil
}

// A bridge resumes from its saved cursor without a gap: it subscribes first,
// keeping what arrives live, then reads the archive from the cursor, then
// hands on the kept live messages, dropping those the archive already gave
// (a message posted while the reads ran comes both ways).
func ExampleRuntime_FetchRecent_resume() {
	rt, topic, err := connectExample()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rt.Disconnect(context.Background())
	ctx := context.Background()

	// The bridge's last run handled "one" and saved its cursor; "two" came
	// while it was down.
	rt.Post(ctx, topic, "bridge", "one", seam.PostOptions{})
	page, _ := rt.FetchRecent(ctx, seam.FetchRecentArgs{Topic: topic, Limit: 1})
	saved := page.NextCursor
	rt.Post(ctx, topic, "bridge", "two", seam.PostOptions{})

	// 1. Subscribe, keeping the live messages (a handler must not block).
	live := make(chan seam.Message, 100)
	sub, err := rt.Subscribe(ctx, topic, func(m seam.Message) { live <- m })
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sub.Close()
	rt.Post(ctx, topic, "bridge", "three", seam.PostOptions{}) // both live and in the archive

	// 2. Read the archive from the saved cursor until it has nothing more.
	seen := map[seam.BackendMsgID]bool{}
	for {
		page, err := rt.FetchRecent(ctx, seam.FetchRecentArgs{Topic: topic, Since: &saved, Limit: 100})
		if err != nil {
			fmt.Println(err)
			return
		}
		if len(page.Messages) == 0 {
			break
		}
		for _, m := range page.Messages {
			fmt.Println("from the archive:", m.Content)
			seen[m.BackendMsgID] = true
			saved = m.Cursor // a real bridge saves it after handling m
		}
		saved = page.NextCursor
	}

	// 3. Go on live, dropping what the archive gave.
	rt.Post(ctx, topic, "bridge", "four", seam.PostOptions{})
	dropped := 0
	for m := range live {
		if seen[m.BackendMsgID] {
			dropped++
			continue
		}
		fmt.Println("live:", m.Content)
		if m.Content == "four" {
			break
		}
	}
	fmt.Println("dropped as already seen:", dropped)
	// Output:
	// from the archive: two
	// from the archive: three
	// live: four
	// dropped as already seen: 1
}

// Since pointing at an empty cursor reads from the start, oldest first; Since
// nil reads the newest messages.
func ExampleRuntime_FetchRecent_fromTheStart() {
	rt, topic, err := connectExample()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rt.Disconnect(context.Background())
	ctx := context.Background()
	for _, text := range []string{"a", "b", "c"} {
		if _, err := rt.Post(ctx, topic, "me", text, seam.PostOptions{}); err != nil {
			fmt.Println(err)
			return
		}
	}
	contents := func(p seam.FetchRecentResult) (out []string) {
		for _, m := range p.Messages {
			out = append(out, m.Content)
		}
		return out
	}

	start := seam.Cursor("")
	first, _ := rt.FetchRecent(ctx, seam.FetchRecentArgs{Topic: topic, Since: &start, Limit: 2})
	rest, _ := rt.FetchRecent(ctx, seam.FetchRecentArgs{Topic: topic, Since: &first.NextCursor, Limit: 2})
	newest, _ := rt.FetchRecent(ctx, seam.FetchRecentArgs{Topic: topic, Limit: 2})
	fmt.Println("from the start:", contents(first), "then", contents(rest))
	fmt.Println("newest:", contents(newest))
	// Output:
	// from the start: [a b] then [c]
	// newest: [b c]
}

// Post's identity is ignored: every post is the runtime's, under its nick.
// A bridge that relays someone's message names them in the content.
func ExampleRuntime_Post_identity() {
	rt, topic, err := connectExample()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rt.Disconnect(context.Background())
	ctx := context.Background()
	if _, err := rt.Post(ctx, topic, "alice", "<alice> hello", seam.PostOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	page, _ := rt.FetchRecent(ctx, seam.FetchRecentArgs{Topic: topic, Limit: 1})
	m := page.Messages[0]
	fmt.Println(m.Content)
	fmt.Println("sent as the runtime's nick:", m.SenderHandle == seam.Handle(rt.Nick()))
	fmt.Println("sent as alice:", m.SenderHandle == "alice")
	// Output:
	// <alice> hello
	// sent as the runtime's nick: true
	// sent as alice: false
}

// A handler that panics keeps its subscription, and the panic is logged at
// ERROR with its topic: to Config.Logger, or, without one, to slog.Default().
func ExampleRuntime_Subscribe_panic() {
	// The default logger, on standard output for the example: without the
	// time, the message's id, the stack, and with the topic's name replaced.
	var topic seam.Topic
	old := slog.Default()
	defer slog.SetDefault(old)
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			switch {
			case a.Key == "time" || a.Key == "id" || a.Key == "stack":
				return slog.Attr{}
			case a.Key == "topic" && a.Value.String() == string(topic):
				return slog.String("topic", "TOPIC")
			}
			return a
		},
	})))

	rt, topic, err := connectExample() // no Logger
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rt.Disconnect(context.Background())
	ctx := context.Background()
	handled := make(chan string, 10)
	sub, err := rt.Subscribe(ctx, topic, func(m seam.Message) {
		if m.Content == "bad" {
			panic("cannot handle " + m.Content)
		}
		handled <- m.Content
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sub.Close()
	rt.Post(ctx, topic, "me", "bad", seam.PostOptions{})
	rt.Post(ctx, topic, "me", "good", seam.PostOptions{})
	fmt.Println("handled:", <-handled)
	// Output:
	// level=ERROR msg="subscription handler panicked; continuing with the next message" topic=TOPIC panic="cannot handle bad"
	// handled: good
}
