package serve

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// topicState is what a worker keeps across restarts: one JSON file per (route,
// topic).
//
// The state file format. Under serve.state_dir, each route has a directory
// named after it, and each of its topics a file in it named after the
// topic's room localpart (runtime.RoomLocalpart) plus ".json", or, for a
// localpart too long for a file name, its start, '+', and a hash of the whole
// (stateFileName). The file holds one JSON object:
//
//	{
//	  "topic": "alerts",           // the topic, for people (and checked on load)
//	  "cursor": "xmqZTCS2ghgT1Idd", // the last message delivered or passed over; "" the archive's start
//	  "relay_last": ""              // relays: the destination id of the last post ("" before the first)
//	}
//
// "cursor" is required and must be a message id (a stanza-id); a file that
// isn't such an object is refused as corrupt, naming it. The file is replaced
// atomically (a synced temp file ".<name>.tmp-*" renamed over it, then the
// directory synced), so a reader sees the old state or the new one. Beside
// the route directories are ".lock" (flock: one serve, or one `parley-xmpp
// state set|skip`, at a time) and relay.secret (see loadSecret). To change a
// cursor, stop serve and use `parley-xmpp state set` or `skip` (LockStateDir):
// they take the lock and write as serve does.
type topicState struct {
	// Topic is there for people reading the file: its name is the topic's room
	// localpart.
	Topic string `json:"topic"`
	// Cursor is the last message the sink acknowledged ("" for the archive's
	// start).
	Cursor seam.Cursor `json:"cursor"`
	// RelayLast is the destination id of the last message a relay posted: where
	// PostOnce looks for a post that happened before a crash.
	RelayLast seam.BackendMsgID `json:"relay_last"`
}

// maxStateName bounds the names the engine gives files and directories under
// the state dir: a route's directory and a topic's state file. File systems
// take 255 bytes (some fewer); a temp file's name adds about 16 to a state
// file's.
const maxStateName = 200

// stateFileName is the name of the state file of the topic whose room
// localpart is local: the localpart and ".json", or, when that is longer than
// maxStateName (a localpart may hold 1023 bytes), its start, '+' and a hash of
// the whole. A localpart never holds '+', so a hashed name never equals a
// plain one, and the file also names its topic, which load's caller checks.
func stateFileName(local string) string {
	const ext = ".json"
	if len(local)+len(ext) <= maxStateName {
		return local + ext
	}
	sum := sha256.Sum256([]byte(local))
	h := hex.EncodeToString(sum[:16])
	return local[:maxStateName-len(ext)-1-len(h)] + "+" + h + ext
}

// stateFile is where a topicState lives when serve runs alone.
type stateFile struct{ path string }

// fileStore is a topic's state file as its Store: nothing fences it (the
// state dir's lock keeps other processes out).
type fileStore struct {
	file  stateFile
	topic string
}

var _ Store = fileStore{}

func (f fileStore) Save(_ context.Context, st State) error {
	return f.file.save(topicState{Topic: f.topic, Cursor: st.Cursor, RelayLast: st.RelayLast})
}
func (fileStore) Check(context.Context) error { return nil }

// tempMark is in the name of every temp file of an atomic write
// (".<localpart>.json.tmp-<random>"), so leftovers of a crash can be found.
const tempMark = ".json.tmp-"

// load reads the saved state; found is false when there is none yet. A file
// that doesn't hold a state is an error naming it: guessing a cursor would
// skip or repeat messages.
func (f stateFile) load() (st topicState, found bool, err error) {
	data, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return topicState{}, false, nil
	}
	if err != nil {
		return topicState{}, false, fmt.Errorf("reading state: %w", err)
	}
	var raw struct {
		Topic     string             `json:"topic"`
		Cursor    *seam.Cursor       `json:"cursor"`
		RelayLast *seam.BackendMsgID `json:"relay_last"`
	}
	corrupt := func(why string, a ...any) (topicState, bool, error) {
		return topicState{}, false, fmt.Errorf("state file %s is corrupt (%s): fix or remove it (removed, the topic starts over as configured by start)", f.path, fmt.Sprintf(why, a...))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return corrupt("%v", err)
	}
	if dec.Decode(&struct{}{}) != io.EOF {
		return corrupt("more after its JSON object")
	}
	if raw.Cursor == nil {
		return corrupt("no \"cursor\"")
	}
	if err := runtime.CheckCursor(*raw.Cursor); err != nil {
		return corrupt("cursor: %v", err)
	}
	if raw.RelayLast != nil && *raw.RelayLast != "" {
		if err := stanza.CheckID(string(*raw.RelayLast)); err != nil {
			return corrupt("relay_last: %v", err)
		}
	}
	st = topicState{Topic: raw.Topic, Cursor: *raw.Cursor}
	if raw.RelayLast != nil {
		st.RelayLast = *raw.RelayLast
	}
	return st, true, nil
}

// save replaces the state file atomically: a crash leaves the old state or the
// new one, never a torn file. The temp file is in the same directory so the
// rename can't cross file systems, and both it and the directory are synced so
// the new state survives a power loss once save returns.
func (f stateFile) save(st topicState) (err error) {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	dir := filepath.Dir(f.path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(f.path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
			err = fmt.Errorf("saving state to %s: %w", f.path, err)
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), f.path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// prepareStateDir creates a route's state dir, removes temp files a crash left
// behind, and proves the dir is writable, so that a route that could never save
// its cursor fails at start rather than after its first delivery.
func prepareStateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("serve.state_dir: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("serve.state_dir: %w", err)
	}
	for _, e := range entries {
		if name := e.Name(); strings.HasPrefix(name, ".") && strings.Contains(name, tempMark) {
			_ = os.Remove(filepath.Join(dir, name))
		}
	}
	probe, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("serve.state_dir: %s is not writable: %w", dir, err)
	}
	_ = probe.Close()
	if err := os.Remove(probe.Name()); err != nil {
		return fmt.Errorf("serve.state_dir: %s: %w", dir, err)
	}
	return nil
}
