package runtime_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// Embedding the runtime: connect, subscribe, post, and catch up from a saved
// cursor. (Compiled, not run: it needs a server.)
func Example() {
	ctx := context.Background()
	cfg := runtime.ConfigFromEnv() // the PARLEY_XMPP_* variables, if you want them
	cfg.MUCService = "muc.parley.local"
	// Nick left empty: a random nick for this runtime.
	rt, err := runtime.New(cfg)
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

// The runtime reads no environment by itself: ConfigFromEnv gives the
// PARLEY_XMPP_* variables to whoever asks, and code sets the rest. New checks
// the Config without connecting.
func ExampleConfigFromEnv() {
	cfg := runtime.ConfigFromEnv()
	cfg.Nick = "bridge"
	cfg.PostTimeout = 0 // the default (30 s)
	rt, err := runtime.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(rt.Nick())
	// Output: bridge
}

// Every error a call returns matches a sentinel of package runtime or seam.
func ExampleErrConfig() {
	_, err := runtime.New(runtime.Config{Service: "http://chat.example.org"})
	fmt.Println(errors.Is(err, runtime.ErrConfig))

	rt, _ := runtime.New(runtime.Config{})
	_, err = rt.Post(context.Background(), "general", "me", "hi", seam.PostOptions{})
	fmt.Println(errors.Is(err, seam.ErrNotConnected))
	// Output:
	// true
	// true
}

// A topic is a room: its localpart is stable, and safe for any topic name.
func ExampleRoomLocalpart() {
	local, err := runtime.RoomLocalpart("general")
	fmt.Println(local, err)
	_, err = runtime.RoomLocalpart("")
	fmt.Println(errors.Is(err, seam.ErrInvalidTopic))
	// Output:
	// general <nil>
	// true
}

// OriginKey derives a PostOnce key that only holders of the secret can compute.
func ExampleOriginKey() {
	secret := []byte("0123456789abcdef0123456789abcdef") // use random bytes, kept private
	key, _ := runtime.OriginKey(secret, "route-1", "source-message-id")
	again, _ := runtime.OriginKey(secret, "route-1", "source-message-id")
	fmt.Println(len(key), key == again)
	_, err := runtime.OriginKey([]byte("short"))
	fmt.Println(errors.Is(err, runtime.ErrInvalidArgument))
	// Output:
	// 32 true
	// true
}

// The connection's states, as OnStateChange and State report them.
func ExampleState() {
	for _, s := range []runtime.State{runtime.Connecting, runtime.Online, runtime.Reconnecting, runtime.Closed} {
		fmt.Println(s)
	}
	// Output:
	// connecting
	// online
	// reconnecting
	// closed
}
