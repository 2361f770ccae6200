package runtime_test

import (
	"context"
	"fmt"
	"os"

	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// Embedding the runtime: connect, subscribe, post, and catch up from a saved
// cursor. (Compiled, not run: it needs a server.)
func Example() {
	ctx := context.Background()
	rt, err := runtime.New(runtime.Config{
		Service:    "xmpp://127.0.0.1:5222",
		Domain:     "parley.local",
		MUCService: "muc.parley.local",
		Username:   "parley",
		Password:   os.Getenv("PARLEY_XMPP_PASS"),
		// Nick left empty: a random nick for this runtime.
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := rt.Connect(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer rt.Disconnect(context.Background())

	sub, err := rt.Subscribe(ctx, "general", func(m seam.Message) {
		fmt.Printf("%s: %s (id %s)\n", m.SenderHandle, m.Content, m.BackendMsgID)
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sub.Close()

	if _, err := rt.Post(ctx, "general", "me", "hello @bob", seam.PostOptions{}); err != nil {
		fmt.Println(err)
		return
	}

	saved := seam.Cursor("") // the start of the topic; later, a NextCursor you kept
	page, err := rt.FetchRecent(ctx, seam.FetchRecentArgs{Topic: "general", Since: &saved, Limit: 100})
	if err != nil {
		fmt.Println(err)
		return
	}
	saved = page.NextCursor
	_ = saved
}
