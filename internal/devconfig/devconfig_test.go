package devconfig

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The dev server's and a test's configurations come from the same templates;
// what differs is what Server says.
func TestRender(t *testing.T) {
	cfg, err := Prosody(Dev("/d", "/data", 5222))
	require.NoError(t, err)
	c := string(cfg)
	for _, want := range []string{`c2s_ports = { 5222 }`, `data_path = "/data"`, `"smacks"`, `smacks_max_unacked_stanzas = 32`,
		`admin_socket = "/data/prosody.sock"`, `Component "muc.parley.local" "muc"`, `Component "transient.parley.local" "muc"`,
		`Component "nomam.parley.local" "muc"`, `storage = "sql"`, `allow_unencrypted_plain_auth = true`} {
		assert.Contains(t, c, want)
	}
	assert.NotContains(t, c, "ssl =", "the dev server has no certificate")

	test := Server{Dir: "/t", Data: "/t/data", Port: 4000, TLS: &TLS{Cert: "/t/c.pem", Key: "/t/k.pem"}, DirectTLSPort: 4001, RequireEncryption: true}
	cfg, err = Prosody(test)
	require.NoError(t, err)
	c = string(cfg)
	for _, want := range []string{`c2s_direct_tls_ports = { 4001 }`, `ssl = { certificate = "/t/c.pem"; key = "/t/k.pem" }`, `c2s_require_encryption = true`, `"tls"`} {
		assert.Contains(t, c, want)
	}
	assert.NotContains(t, c, `"smacks"`)
	assert.NotContains(t, c, "admin_socket =")

	yml, ctl, err := Ejabberd(Dev("/e", "/edata", 15222))
	require.NoError(t, err)
	y := string(yml)
	for _, want := range []string{`- port: 15222`, `resume_timeout: 300`, `sql_database: "/edata/parley.local.db"`, `"transient.local":`, `starttls: false`} {
		assert.Contains(t, y, want)
	}
	assert.Equal(t, 3, strings.Count(y, "sql_database:"), "one SQLite database per host")
	assert.Contains(t, string(ctl), "ERLANG_NODE=parleydev_15222@localhost")
	assert.Contains(t, string(ctl), "EJABBERD_CONFIG_PATH=/e/etc/ejabberd.yml")

	yml, _, err = Ejabberd(Server{Dir: "/m", Data: "/m/data", Port: 1, Node: "n", Cookie: "c", Mnesia: true})
	require.NoError(t, err)
	assert.NotContains(t, string(yml), "sql_database")
	assert.NotContains(t, string(yml), "db_type: sql")
	assert.Contains(t, string(yml), "default_db: mnesia")

	_, _, err = Ejabberd(Server{Port: 1})
	assert.Error(t, err, "no node name")
	_, err = Prosody(Server{Port: 1, StreamManagement: true})
	assert.Error(t, err, "no resumption timeout")
}
