package runtime

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// MinOriginSecret is the shortest secret OriginKey accepts, in bytes.
const MinOriginSecret = 16

// OriginKey derives a PostOnce key from secret and parts: HMAC-SHA256 over the
// parts (each length-prefixed, so ("ab","c") and ("a","bc") differ), as 32 hex
// characters. Only holders of the secret can compute it, which is what makes
// PostOnce safe in a room that hides its occupants' real JIDs: there an
// archived message with the key's origin-id is taken as the runtime's own
// post, so a key that a stranger can predict lets the stranger post it first
// and suppress the real post. Runtimes that share the account and the secret
// derive the same key, so PostOnce stays idempotent across them (a restart,
// another replica). Use at least MinOriginSecret random bytes, kept as
// private as the password; `serve` keeps its relays' secret in state_dir.
func OriginKey(secret []byte, parts ...string) (string, error) {
	if len(secret) < MinOriginSecret {
		return "", fmt.Errorf("parley-xmpp: origin key: the secret must hold at least 16 random bytes: %w", ErrInvalidArgument)
	}
	mac := hmac.New(sha256.New, secret)
	var n [binary.MaxVarintLen64]byte
	for _, p := range parts {
		mac.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
		mac.Write([]byte(p))
	}
	return hex.EncodeToString(mac.Sum(nil)[:16]), nil
}
