package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestServeClusterBlock(t *testing.T) {
	f, err := Parse([]byte("serve:\n  cluster:\n    name: bridge\n    etcd: {endpoints: ['127.0.0.1:2379', 'https://etcd.example:2379']}\n"))
	require.NoError(t, err)
	c := f.Serve.Cluster
	require.NotNil(t, c)
	assert.Equal(t, DefaultLeaseTTL, c.TTL())
	assert.Equal(t, "127.0.0.1:0", c.ListenAddr())

	f, err = Parse([]byte("serve: {}\n"))
	require.NoError(t, err)
	assert.Nil(t, f.Serve.Cluster, "no block: serve runs alone")

	for yaml, key := range map[string]string{
		"serve:\n  cluster:\n    etcd: {endpoints: ['127.0.0.1:2379']}\n":                                                                                                         "serve.cluster.name",
		"serve:\n  cluster:\n    name: 'a/b'\n    etcd: {endpoints: ['127.0.0.1:2379']}\n":                                                                                        "serve.cluster.name",
		"serve:\n  cluster:\n    name: x\n":                                                                                                                                       "serve.cluster.etcd.endpoints",
		"serve:\n  cluster:\n    name: x\n    etcd: {endpoints: ['nohost']}\n":                                                                                                    "serve.cluster.etcd.endpoints[0]",
		"serve:\n  cluster:\n    name: x\n    etcd: {endpoints: ['ftp://h:1']}\n":                                                                                                 "serve.cluster.etcd.endpoints[0]",
		"serve:\n  cluster:\n    name: x\n    etcd: {endpoints: ['h:1'], password: p, password_file: f}\n":                                                                        "serve.cluster.etcd.password_file",
		"serve:\n  cluster:\n    name: x\n    etcd: {endpoints: ['h:1'], password: p}\n":                                                                                          "serve.cluster.etcd.username",
		"serve:\n  cluster:\n    name: x\n    etcd: {endpoints: ['h:1'], tls: {cert_file: c.pem}}\n":                                                                              "serve.cluster.etcd.tls",
		"serve:\n  cluster:\n    name: x\n    etcd: {endpoints: ['h:1']}\n    listen: nope\n":                                                                                     "serve.cluster.listen",
		"serve:\n  cluster:\n    name: x\n    etcd: {endpoints: ['h:1']}\n    lease_ttl: 2500ms\n":                                                                                "serve.cluster.lease_ttl",
		"serve:\n  cluster:\n    name: x\n    etcd: {endpoints: ['h:1']}\n    lease_ttl: 1s\n":                                                                                    "serve.cluster.lease_ttl",
		"serve:\n  cluster:\n    name: x\n    etcd: {endpoints: ['h:1']}\n    bogus: 1\n":                                                                                         "bogus",
		"serve:\n  cluster:\n    name: x\n    etcd: {endpoints: ['h:1']}\n    tls: {cert_file: c.pem, key_file: k.pem}\n":                                                         "serve.cluster.tls.ca_file: missing",
		"serve:\n  cluster:\n    name: x\n    etcd: {endpoints: ['h:1']}\n    tls: {cert_file: /nonexistent/c.pem, key_file: /nonexistent/k.pem, ca_file: /nonexistent/ca.pem}\n": "serve.cluster.tls.ca_file: can't read /nonexistent/ca.pem",
	} {
		_, err := Parse([]byte(yaml))
		require.Error(t, err, yaml)
		assert.True(t, errors.Is(err, ErrConfig), "%s: %v", yaml, err)
		assert.Contains(t, err.Error(), key, yaml)
	}
}

// Relative file paths of the block are relative to the configuration file;
// the password comes from password_file without its line end.
func TestServeClusterFiles(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "etcd.pass"), []byte("s3cret\n"), 0o600))
	cfg := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("serve:\n  cluster:\n    name: x\n    lease_ttl: 3s\n"+
		"    etcd: {endpoints: ['h:1'], username: u, password_file: etcd.pass, tls: {ca_file: ca.pem}}\n"), 0o600))
	f, err := Load(cfg)
	require.NoError(t, err)
	c := f.Serve.Cluster
	assert.Equal(t, filepath.Join(dir, "ca.pem"), c.Etcd.TLS.CAFile)
	assert.Equal(t, 3*time.Second, c.TTL())
	pw, err := c.EtcdPassword()
	require.NoError(t, err)
	assert.Equal(t, "s3cret", pw)
}

// etcd credentials go to a non-loopback endpoint only over TLS: the error
// names the endpoint's key and etcd.tls, never the password. An http://
// endpoint is plain text even with etcd.tls (etcd's client drops TLS for it).
func TestEtcdCredentialsNeedTLSOffLoopback(t *testing.T) {
	cluster := func(etcd string) []byte {
		return []byte("serve:\n  cluster:\n    name: x\n    etcd: " + etcd + "\n")
	}
	for etcd, key := range map[string]string{
		"{endpoints: ['etcd.example:2379'], username: u, password: pw-in-clear}":                                "serve.cluster.etcd.endpoints[0]",
		"{endpoints: ['10.0.0.5:2379'], username: u}":                                                           "serve.cluster.etcd.endpoints[0]",
		"{endpoints: ['127.0.0.1:2379', 'http://10.0.0.5:2379'], username: u, password: pw-in-clear}":           "serve.cluster.etcd.endpoints[1]",
		"{endpoints: ['http://etcd.example:2379'], username: u, password: pw-in-clear, tls: {ca_file: ca.pem}}": "serve.cluster.etcd.endpoints[0]",
		"{endpoints: ['localhost:2379', '[2001:db8::1]:2379'], username: u, password: pw-in-clear}":             "serve.cluster.etcd.endpoints[1]",
	} {
		_, err := Parse(cluster(etcd))
		require.Error(t, err, etcd)
		assert.ErrorIs(t, err, ErrConfig, etcd)
		assert.Contains(t, err.Error(), key+": ", etcd)
		assert.Contains(t, err.Error(), "clear text", etcd)
		assert.Contains(t, err.Error(), "etcd.tls", etcd)
		assert.NotContains(t, err.Error(), "pw-in-clear", etcd)
	}
	for _, etcd := range []string{
		"{endpoints: ['etcd.example:2379'], username: u, password: p, tls: {ca_file: ca.pem}}",
		"{endpoints: ['https://etcd.example:2379'], username: u, password: p}",
		"{endpoints: ['127.0.0.1:2379', 'localhost:2379', 'http://[::1]:2379'], username: u, password: p}",
		"{endpoints: ['etcd.example:2379', 'http://10.0.0.5:2379']}",
	} {
		_, err := Parse(cluster(etcd))
		assert.NoError(t, err, etcd)
	}
}
