package serve

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// ErrStateDirInUse is what taking a state dir's lock answers while another
// process (a running serve) holds it.
var ErrStateDirInUse = errors.New("serve: the state dir is locked by another process")

// ErrNoState: the (route, topic) has no saved state yet.
var ErrNoState = errors.New("serve: no saved state")

// StateFile is where the state of route's topic lives under stateDir, as
// serve names it (see stateFileName). Errors name what is wrong with route or
// topic.
func StateFile(stateDir, route, topic string) (string, error) {
	if !config.RouteNameOK(route) {
		return "", fmt.Errorf("route %q can't name a state directory", route)
	}
	local, err := runtime.RoomLocalpart(seam.Topic(topic))
	if err != nil {
		return "", fmt.Errorf("topic %q: %w", topic, err)
	}
	return filepath.Join(stateDir, route, stateFileName(local)), nil
}

// ReadState reads the saved state of route's topic under stateDir, without
// the lock: a state file is replaced by rename, so a read sees a whole one
// even while serve runs. found is false when there is none yet.
func ReadState(stateDir, route, topic string) (st State, found bool, err error) {
	path, err := StateFile(stateDir, route, topic)
	if err != nil {
		return State{}, false, err
	}
	saved, found, err := stateFile{path: path}.load()
	if err != nil || !found {
		return State{}, found, err
	}
	if saved.Topic != "" && saved.Topic != topic {
		return State{}, false, fmt.Errorf("%s holds the state of topic %q, not %q", path, saved.Topic, topic)
	}
	return State{Cursor: saved.Cursor, RelayLast: saved.RelayLast}, true, nil
}

// LockedStateDir is a state dir locked as serve locks it, for editing its
// saved state while no serve runs (`parley-xmpp state set` and `skip`).
type LockedStateDir struct {
	dir    string
	unlock func()
}

// LockStateDir takes stateDir's lock; it answers ErrStateDirInUse while a
// serve holds it. The dir must exist: a missing one is a wrong path, not an
// empty state.
func LockStateDir(stateDir string) (*LockedStateDir, error) {
	if _, err := os.Stat(stateDir); err != nil {
		return nil, fmt.Errorf("serve.state_dir: %w", err)
	}
	unlock, err := lockStateDir(stateDir)
	if err != nil {
		return nil, err
	}
	return &LockedStateDir{dir: stateDir, unlock: unlock}, nil
}

// Close releases the lock.
func (d *LockedStateDir) Close() { d.unlock() }

// Read reads route's topic's state (ErrNoState when there is none).
func (d *LockedStateDir) Read(route, topic string) (State, error) {
	st, found, err := ReadState(d.dir, route, topic)
	if err == nil && !found {
		err = ErrNoState
	}
	return st, err
}

// Write replaces route's topic's state, atomically (as serve does: the old
// state or the new one survives a crash, never a torn file). The cursor and
// relay_last must be ids this runtime could have issued.
func (d *LockedStateDir) Write(route, topic string, st State) error {
	if err := runtime.CheckCursor(st.Cursor); err != nil {
		return fmt.Errorf("cursor %q: %w", st.Cursor, err)
	}
	if err := runtime.CheckCursor(seam.Cursor(st.RelayLast)); err != nil {
		return fmt.Errorf("relay_last %q: %w", st.RelayLast, err)
	}
	path, err := StateFile(d.dir, route, topic)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Dir(path)); errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(filepath.Dir(path), 0o700); err != nil {
			return fmt.Errorf("serve.state_dir: %w", err)
		}
	}
	return stateFile{path: path}.save(topicState{Topic: topic, Cursor: st.Cursor, RelayLast: st.RelayLast})
}
