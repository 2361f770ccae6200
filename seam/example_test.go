package seam_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/parley-go/parley-xmpp/seam"
	"github.com/parley-go/parley-xmpp/seam/memory"
)

// A Backend in use: connect, post, read a page, and read on from its
// NextCursor. seam/memory is the in-memory reference backend; the XMPP one
// (package runtime) behaves the same.
func Example() {
	ctx := context.Background()
	var b seam.Backend = memory.NewStore().NewBackend()
	if err := b.Connect(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer b.Disconnect(ctx)

	for _, text := range []string{"hello @bob", "second"} {
		if _, err := b.Post(ctx, "general", "alice", text, seam.PostOptions{}); err != nil {
			fmt.Println(err)
			return
		}
	}
	page, err := b.FetchRecent(ctx, seam.FetchRecentArgs{Topic: "general"}) // Since nil: the newest page
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range page.Messages {
		fmt.Println(m.SenderHandle, m.Content, m.Mentions)
	}

	b.Post(ctx, "general", "bob", "third", seam.PostOptions{})
	next, _ := b.FetchRecent(ctx, seam.FetchRecentArgs{Topic: "general", Since: &page.NextCursor})
	fmt.Println(len(next.Messages), next.Messages[0].Content)
	// Output:
	// alice hello @bob [bob]
	// alice second []
	// 1 third
}

// Subscribe delivers every message posted after it returns, in order, on a
// goroutine of the subscription's own.
func Example_subscribe() {
	ctx := context.Background()
	store := memory.NewStore()
	reader, writer := store.NewBackend(), store.NewBackend()
	reader.Connect(ctx)
	writer.Connect(ctx)
	defer reader.Disconnect(ctx)
	defer writer.Disconnect(ctx)

	got := make(chan seam.Message)
	sub, err := reader.Subscribe(ctx, "deploys", func(m seam.Message) { got <- m })
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sub.Close()
	writer.Post(ctx, "deploys", "ci", "v1.2 deployed", seam.PostOptions{})
	writer.Post(ctx, "deploys", "ci", "v1.3 deployed", seam.PostOptions{})
	fmt.Println((<-got).Content)
	fmt.Println((<-got).Content)
	// Output:
	// v1.2 deployed
	// v1.3 deployed
}

// Errors are sentinels: test them with errors.Is.
func Example_errors() {
	ctx := context.Background()
	b := memory.NewStore().NewBackend()
	_, err := b.Post(ctx, "general", "alice", "too early", seam.PostOptions{})
	fmt.Println(errors.Is(err, seam.ErrNotConnected))

	b.Connect(ctx)
	unknown := seam.Cursor("never-issued")
	_, err = b.FetchRecent(ctx, seam.FetchRecentArgs{Topic: "general", Since: &unknown})
	fmt.Println(errors.Is(err, seam.ErrUnknownCursor))

	_, err = b.Subscribe(ctx, "general", nil)
	fmt.Println(errors.Is(err, seam.ErrInvalidArgument))

	b.Disconnect(ctx)
	_, err = b.Post(ctx, "general", "alice", "too late", seam.PostOptions{})
	fmt.Println(errors.Is(err, seam.ErrDisconnected))
	// Output:
	// true
	// true
	// true
	// true
}

func ExampleParseMentions() {
	fmt.Println(seam.ParseMentions("ping @alice and @bob.smith, not me@example.org"))
	// Output: [alice bob.smith]
}
