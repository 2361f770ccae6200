package runtime

import (
	"time"

	"github.com/parley-go/parley-xmpp/internal/vocab"
)

// ProbeConfig is a Config resolved as New resolves it (environment, defaults),
// with the options the runtime dials with. parley-xmpp doctor uses it to
// check a server exactly as the runtime would connect to it. It is not part of
// the seam and may change.
type ProbeConfig struct {
	Service, Domain, MUCService, Username string
	// Loopback: the service is on a loopback address.
	Loopback        bool
	MaxContentBytes int
	MAMPageSize     int
	RequestTimeout  time.Duration
	// Dial is how the runtime logs in: address, TLS policy, credentials.
	Dial DialPlan
}

// DialPlan is how the runtime logs in: where, with which TLS policy, as whom.
type DialPlan = vocab.DialPlan

// Probe resolves c for a diagnosis; it fails as New does on a bad Config.
func Probe(c Config) (ProbeConfig, error) {
	r, err := resolve(c)
	if err != nil {
		return ProbeConfig{}, err
	}
	return ProbeConfig{
		Service: r.Service, Domain: r.Domain, MUCService: r.MUCService, Username: r.Username,
		Loopback: r.loopback, MaxContentBytes: r.MaxContentBytes, MAMPageSize: r.MAMPageSize,
		RequestTimeout: r.RequestTimeout, Dial: r.dialPlan(),
	}, nil
}
