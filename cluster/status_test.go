package cluster_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/internal/etcdtest"
)

// cluster status exits 2 on a bad configuration and 1 when etcd can't be
// reached, naming the problem.
func TestClusterStatusExitCodes(t *testing.T) {
	bin := serveBinary(t)
	dir := t.TempDir()
	run := func(yaml string) (int, string) {
		cfg := filepath.Join(dir, "c.yaml")
		require.NoError(t, os.WriteFile(cfg, []byte(yaml), 0o600))
		out, err := exec.Command(bin, "--config", cfg, "cluster", "status").CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		require.NoError(t, err)
		return 0, string(out)
	}
	code, out := run("serve:\n  cluster:\n    name: ''\n    etcd: {endpoints: ['127.0.0.1:2379']}\n")
	assert.Equal(t, 2, code, out)
	assert.Contains(t, out, "serve.cluster.name")
	code, out = run("serve:\n  cluster:\n    name: x\n    etcd: {endpoints: []}\n")
	assert.Equal(t, 2, code, out)
	assert.Contains(t, out, "serve.cluster.etcd.endpoints")
	code, out = run("serve:\n  routes: []\n")
	assert.Equal(t, 2, code, out)
	assert.Contains(t, out, "serve.cluster")
	port := etcdtest.FreePort(t) // nothing listens there
	code, out = run(fmt.Sprintf("serve:\n  cluster:\n    name: x\n    etcd: {endpoints: ['127.0.0.1:%d'], dial_timeout: 1s}\n", port))
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, "etcd is unreachable")
}
