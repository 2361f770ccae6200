package serve

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/parley-go/parley-xmpp/config"
)

// secretName is the file in the state dir that holds the relays' secret: the
// HMAC key of their PostOnce keys (see relayKey). It never leaves the file:
// not logged, not in an error.
const secretName = "relay.secret"

// secretBytes is the secret's size.
const secretBytes = 32

// loadSecret reads the state dir's secret, or creates it (32 random bytes, as
// hex, mode 0600) when there is none. A file that doesn't hold one, or that
// others can read, is a configuration error naming the file: a new secret in
// its place would change every relay key, so a crash's last post would be
// posted again.
func loadSecret(dir string) ([]byte, error) {
	path := filepath.Join(dir, secretName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createSecret(dir, path)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: serve.state_dir: reading the relay secret: %v", config.ErrConfig, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: serve.state_dir: %v", config.ErrConfig, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: serve.state_dir: %s is readable by others (mode %s): chmod 600 it", config.ErrConfig, path, fi.Mode().Perm())
	}
	secret, err := hex.DecodeString(string(bytes.TrimSuffix(data, []byte("\n"))))
	if err != nil || len(secret) != secretBytes {
		return nil, fmt.Errorf("%w: serve.state_dir: %s does not hold a relay secret (%d hex characters): restore it from a backup; "+
			"or remove it, and a new one is made, but a relay that crashed between a post and saving its cursor then posts that message again",
			config.ErrConfig, path, 2*secretBytes)
	}
	return secret, nil
}

func createSecret(dir, path string) ([]byte, error) {
	secret := make([]byte, secretBytes)
	_, _ = rand.Read(secret) // never fails (crypto/rand)
	tmp, err := os.CreateTemp(dir, "."+secretName+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("serve: creating the relay secret in %s: %w", dir, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	_, err = tmp.WriteString(hex.EncodeToString(secret) + "\n")
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// A link fails if the file appeared meanwhile, where a rename would
		// replace it (the state dir's lock makes that unlikely).
		err = os.Link(tmp.Name(), path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("serve: creating the relay secret in %s: %w", dir, err)
	}
	return secret, nil
}
