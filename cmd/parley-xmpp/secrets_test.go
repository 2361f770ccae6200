package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// demo and bench log in without TLS: they refuse a server that is not on
// loopback (exit 2, before any connection), and never echo credentials.
func TestDemoAndBenchRefuseRemoteServers(t *testing.T) {
	t.Setenv("PARLEY_XMPP_PASS", "demo-secret-pw")
	for _, svc := range []string{"xmpp://192.0.2.1:5222", "xmpp://chat.example.org", "xmpp://u:hunter2@192.0.2.1"} {
		t.Setenv("PARLEY_XMPP_SERVICE", svc)
		for _, args := range [][]string{{"demo", "--duration", "2s"}, {"bench", "--scale", "0.01"}} {
			code, out, errOut := runCLI(t, "", args...)
			assert.Equal(t, 2, code, "%s %v: %s", svc, args, errOut)
			assert.Contains(t, errOut, "only against a server on loopback", args)
			assert.NotContains(t, out+errOut, "hunter2")
			assert.NotContains(t, out+errOut, "demo-secret-pw")
		}
	}
}
