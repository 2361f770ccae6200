//go:build unix

package serve

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockStateDir takes an exclusive lock on dir, so two engines never deliver the
// same routes and overwrite each other's cursors. The kernel drops it when the
// process dies, even by kill -9.
func lockStateDir(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("serve.state_dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("serve.state_dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("serve.state_dir: %s is in use by another serve process (set serve.state_dir apart for each): %w", dir, ErrStateDirInUse)
		}
		return nil, fmt.Errorf("serve.state_dir: lock: %w", err)
	}
	return func() { _ = f.Close() }, nil
}
