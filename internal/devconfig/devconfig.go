// Package devconfig renders the configurations of the test servers, Prosody
// and ejabberd, from one set of templates: scripts/devserver.sh renders the
// dev servers' through the render command (go run ./internal/devconfig/render),
// and the tests' private servers (internal/xmpptest) render theirs here, so
// the two never drift apart. What differs between them (ports, directories,
// TLS, stream management's resumption timeout) is a field of Server.
package devconfig

import (
	"bytes"
	"embed"
	"fmt"
	"path/filepath"
	"text/template"
)

// The names the servers serve. Both servers have all of them.
const (
	Domain        = "parley.local"
	MUC           = "muc.parley.local"
	NoMAMMUC      = "nomam.parley.local"     // Prosody: a MUC service without an archive
	NoMAMHost     = "nomam.local"            // ejabberd: a host without mod_mam (its MUC: muc.nomam.local)
	TransientMUC  = "transient.parley.local" // Prosody: rooms not persistent by default
	TransientHost = "transient.local"        // ejabberd: the same, as muc.transient.local
)

// AckEvery is how many stanzas Prosody sends before it asks for an ack
// (smacks_max_unacked_stanzas). Its default, 0, asks after every write burst,
// and the ack ping-pong that follows every message slowed posting and
// delivery by up to a quarter (docs/performance.md).
const AckEvery = 32

// Server is one server's configuration.
type Server struct {
	For  string // what it is for, in the rendered file's first comment
	Dir  string // configuration, pid file and logs
	Data string // accounts, rooms and archives (SQLite)
	Port int    // client connections on 127.0.0.1, STARTTLS when TLS is set
	// TLS: a certificate (nil: none, so no STARTTLS and no direct TLS).
	TLS           *TLS
	DirectTLSPort int // TLS from the first byte (with TLS)
	// RequireEncryption refuses a login before STARTTLS.
	RequireEncryption bool
	// PlainAuth: Prosody offers PLAIN without TLS.
	PlainAuth bool
	// StreamManagement: XEP-0198 with resumption, a lost session kept
	// ResumeSeconds.
	StreamManagement bool
	ResumeSeconds    int
	// AdminSocket: Prosody's admin shell on Data/prosody.sock (a Unix
	// socket's path is at most 107 bytes).
	AdminSocket bool
	// Node and Cookie: ejabberd's Erlang node name (without @localhost) and
	// cookie.
	Node, Cookie string
	// Mnesia: ejabberd keeps rooms and archives in mnesia, not SQLite (a test
	// of mnesia's archive, which answers some rows twice under load).
	Mnesia bool
}

// TLS names a certificate and its key, PEM files.
type TLS struct{ Cert, Key string }

//go:embed *.tmpl
var files embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"q":    func(s string) string { return fmt.Sprintf("%q", s) },
	"path": func(p ...string) string { return filepath.Join(p...) },
}).ParseFS(files, "*.tmpl"))

// view is what the templates see: the server and the names.
type view struct {
	Server
	AckEvery                                                      int
	Domain, MUC, NoMAMMUC, NoMAMHost, TransientMUC, TransientHost string
	DB                                                            string // ejabberd's db_type: sql or mnesia
}

func render(name string, s Server) ([]byte, error) {
	v := view{Server: s, AckEvery: AckEvery, Domain: Domain, MUC: MUC, NoMAMMUC: NoMAMMUC, NoMAMHost: NoMAMHost,
		TransientMUC: TransientMUC, TransientHost: TransientHost, DB: "sql"}
	if s.Mnesia {
		v.DB = "mnesia"
	}
	if s.StreamManagement && s.ResumeSeconds <= 0 {
		return nil, fmt.Errorf("devconfig: stream management needs a resumption timeout (ResumeSeconds %d)", s.ResumeSeconds)
	}
	if s.TLS != nil && s.DirectTLSPort <= 0 {
		return nil, fmt.Errorf("devconfig: TLS needs a direct-TLS port")
	}
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, name, v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Prosody renders prosody.cfg.lua.
func Prosody(s Server) ([]byte, error) { return render("prosody.cfg.lua.tmpl", s) }

// Ejabberd renders ejabberd.yml and ejabberdctl.cfg (which names
// Dir/etc/ejabberd.yml and Dir/ejabberd.pid).
func Ejabberd(s Server) (yml, ctl []byte, err error) {
	if s.Node == "" || s.Cookie == "" {
		return nil, nil, fmt.Errorf("devconfig: ejabberd needs a node name and a cookie")
	}
	if yml, err = render("ejabberd.yml.tmpl", s); err != nil {
		return nil, nil, err
	}
	ctl, err = render("ejabberdctl.cfg.tmpl", s)
	return yml, ctl, err
}

// Dev is the dev servers' configuration (scripts/devserver.sh): no
// certificate (loopback only), PLAIN allowed, stream management with a
// 300-second resumption, Prosody's admin shell, and for ejabberd the node
// name its port gives (parleydev_PORT: two instances on other ports run side
// by side).
func Dev(dir, data string, port int) Server {
	return Server{For: "scripts/devserver.sh", Dir: dir, Data: data, Port: port, PlainAuth: true,
		StreamManagement: true, ResumeSeconds: 300, AdminSocket: true,
		Node: fmt.Sprintf("parleydev_%d", port), Cookie: "parleydev"}
}
