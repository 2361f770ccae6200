//go:build unix

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockNick takes this user's lock on nick at service, waiting for it up to
// ctx (where: the account and MUC service): a nick is exclusive per
// connection, so this machine's posts under one
// nick (cron jobs, parallel scripts) take turns instead of failing on each
// other. The lock is a file in the user's cache directory (the kernel drops it
// when the process ends, even by kill -9); without one, there is no lock and
// unlock does nothing.
func lockNick(ctx context.Context, where, nick string) (unlock func(), err error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return func() {}, nil
	}
	dir = filepath.Join(dir, "parley-xmpp")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return func() {}, nil
	}
	sum := sha256.Sum256([]byte(where + "\x00" + nick))
	f, err := os.OpenFile(filepath.Join(dir, "nick-"+hex.EncodeToString(sum[:8])+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return func() {}, nil
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return func() {}, nil
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
