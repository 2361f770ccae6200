// Package config reads parley-xmpp's configuration files: YAML with a
// backend_config block, as the Parley bridge writes them, plus the runtime's
// options, other servers (for relays) and the routes of `parley-xmpp serve`:
//
//	backend_config:
//	  service: "xmpp://127.0.0.1:5222"
//	  domain: "parley.local"
//	  muc_service: "muc.parley.local"
//	  username: "parley"
//	  # password: from PARLEY_XMPP_PASS or a .env file beside this file,
//	  # or password_file: /run/credentials/parley.service/xmpp
//	  # tls: {ca_file: ca.pem, server_name: chat.example.org}
//	  # nick: leave unset for a random nick per connection
//
// Unknown keys and bad values are errors that name the key. PARLEY_XMPP_*
// variables override the default server's backend_config, and
// PARLEY_XMPP_<NAME>_* a named server's (NAME in upper case, other characters
// as _); a .env file beside the configuration supplies those not set in the
// environment, so passwords never have to be in the YAML. The README's
// configuration reference lists every key and its default.
package config

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/parley-go/parley-xmpp/internal/defaults"
	"github.com/parley-go/parley-xmpp/runtime"
)

// Backend is the backend_config block.
type Backend struct {
	Service    string `yaml:"service"`
	Domain     string `yaml:"domain"`
	MUCService string `yaml:"muc_service"`
	Username   string `yaml:"username"`
	Password   string `yaml:"password"`
	// PasswordFile holds the password (a systemd credential, a mounted secret):
	// one trailing newline is trimmed. "$VAR" and "${VAR}" in it are expanded
	// (e.g. ${CREDENTIALS_DIRECTORY}/xmpp); relative to the file's directory.
	PasswordFile string `yaml:"password_file"`
	Nick         string `yaml:"nick"`
	// TLS: whom to trust. Either setting makes TLS mandatory for this server,
	// even on loopback.
	TLS TLS `yaml:"tls"`

	tlsConfig *tls.Config // built from TLS when the file is loaded
}

// TLS says how a server's certificate is checked.
type TLS struct {
	// CAFile: PEM certificates to trust instead of the system's roots.
	CAFile string `yaml:"ca_file"`
	// ServerName: the name the certificate must carry [the domain].
	ServerName string `yaml:"server_name"`
}

// File is a configuration file.
type File struct {
	// Backend is the default server.
	Backend Backend `yaml:"backend_config"`
	// Servers are further servers, by name, for relays.
	Servers map[string]Server `yaml:"servers"`
	// Runtime holds the runtime's options, for every server.
	Runtime Runtime `yaml:"runtime"`
	// Serve configures `parley-xmpp serve`.
	Serve Serve `yaml:"serve"`

	path string
}

// ServerLabel is how logs and metrics name server name: "default" for the
// default server (backend_config), else its name under servers.
func ServerLabel(name string) string {
	if name == "" {
		return "default"
	}
	return name
}

// Server is a named server.
type Server struct {
	Backend Backend `yaml:"backend_config"`
}

// Runtime holds the runtime's options; unset ones take runtime.Config's
// defaults.
type Runtime struct {
	AllowPlaintext   bool     `yaml:"allow_plaintext"`
	DialTimeout      Duration `yaml:"dial_timeout"`
	RequestTimeout   Duration `yaml:"request_timeout"`
	JoinTimeout      Duration `yaml:"join_timeout"`
	PostTimeout      Duration `yaml:"post_timeout"`
	ReconnectWait    Duration `yaml:"reconnect_wait"`
	MaxReconnectWait Duration `yaml:"max_reconnect_wait"`
	MaxReconnects    int      `yaml:"max_reconnects"`
	StableAfter      Duration `yaml:"stable_after"`
	KeepAlive        Duration `yaml:"keepalive"`
	KeepAliveTimeout Duration `yaml:"keepalive_timeout"`
	SelfPing         Duration `yaml:"self_ping"`
	FailFast         bool     `yaml:"fail_fast"`
	PersistentRooms  bool     `yaml:"persistent_rooms"`
	SubscriberBuffer int      `yaml:"subscriber_buffer"`
	RingMessages     int      `yaml:"ring_messages"`
	RingBytes        int      `yaml:"ring_bytes"`
	ArchiveWait      Duration `yaml:"archive_wait"`
	FetchLimit       int      `yaml:"fetch_limit"`
	MaxFetchLimit    int      `yaml:"max_fetch_limit"`
	MAMPageSize      int      `yaml:"mam_page_size"`
	MaxContentBytes  int      `yaml:"max_content_bytes"`
	// MaxStanzaBytes caps a post's stanza once escaped [245760];
	// MaxInboundStanzaBytes caps a stanza the server sends [1 MiB].
	MaxStanzaBytes        int `yaml:"max_stanza_bytes"`
	MaxInboundStanzaBytes int `yaml:"max_inbound_stanza_bytes"`
	// RejoinConcurrency bounds the rooms rejoining at once after a reconnect [100].
	RejoinConcurrency int `yaml:"rejoin_concurrency"`
	// StreamManagement: XEP-0198 stream management with resumption, used
	// whenever the server offers it [true]; false turns it off.
	StreamManagement *bool `yaml:"stream_management"`
}

// Serve configures the fan-out engine.
type Serve struct {
	// StateDir holds each route's durable cursors [./parley-state]; Load
	// makes a relative one relative to the file's directory.
	StateDir string `yaml:"state_dir"`
	// MetricsListen, when set, serves /metrics, /healthz and /readyz there.
	MetricsListen string  `yaml:"metrics_listen"`
	Routes        []Route `yaml:"routes"`
	// Cluster, when set, shares the routes' topics among every serve process
	// of the same cluster (see Cluster); unset, serve runs alone.
	Cluster *Cluster `yaml:"cluster"`
}

// Route forwards every message of its topics to its sink, in order, resuming
// after the last message delivered.
type Route struct {
	Name   string   `yaml:"name"`
	Server string   `yaml:"server"` // "" for the default server
	Topics []string `yaml:"topics"`
	// Start: where a topic without a saved cursor starts: "newest" (messages
	// posted from now on, the default) or "start" (the whole archive).
	Start string `yaml:"start"`
	// Batch: messages read per archive query [100].
	Batch int  `yaml:"batch"`
	Sink  Sink `yaml:"sink"`
	// Retry: waits between failed deliveries, doubling [500ms to 1m].
	RetryWait    Duration `yaml:"retry_wait"`
	MaxRetryWait Duration `yaml:"max_retry_wait"`
	// Senders, when set, delivers only these senders' messages (see Senders).
	Senders *Senders `yaml:"senders"`
	// MaxAttempts bounds the attempts at one message before OnExhausted
	// decides its fate [0: unlimited, the message is retried until the sink
	// takes it].
	MaxAttempts int `yaml:"max_attempts"`
	// OnExhausted: what happens to a message the sink refused max_attempts
	// times, or refused for good (an error no retry can mend) [stop].
	OnExhausted OnExhausted `yaml:"on_exhausted"`
}

// Exhausted actions: what OnExhausted.Action holds.
const (
	ExhaustedStop       = "stop"        // the topic stops delivering (the others go on)
	ExhaustedSkip       = "skip"        // the message is passed over, logged and counted
	ExhaustedDeadLetter = "dead_letter" // the message goes to DeadLetter, then is passed over
)

// OnExhausted is a route's on_exhausted: "stop", "skip", or a mapping
// {dead_letter: SINK}, SINK shaped as a route's sink (stdout, exec or webhook).
type OnExhausted struct {
	Action     string // "" (unset: stop), or one of the Exhausted constants
	DeadLetter *Sink  // for dead_letter
}

// UnmarshalYAML reads a scalar action or a {dead_letter: SINK} mapping; a
// mapping's keys are checked as strictly as the rest of the file.
func (o *OnExhausted) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		switch n.Value {
		case "", ExhaustedStop, ExhaustedSkip: // "": unset, as MarshalYAML writes it
			*o = OnExhausted{Action: n.Value}
			return nil
		case ExhaustedDeadLetter:
			return fmt.Errorf("line %d: key on_exhausted: dead_letter needs its sink: on_exhausted: {dead_letter: {webhook: {url: ...}}}", n.Line)
		}
		return fmt.Errorf("line %d: key on_exhausted: %q is none of stop, skip or {dead_letter: SINK}", n.Line, n.Value)
	case yaml.MappingNode:
		// Errors name the mapping's first key: on the node's line, where
		// explain finds it (in flow and block style alike).
		first := "dead_letter"
		if len(n.Content) > 0 {
			first = n.Content[0].Value
		}
		var v struct {
			DeadLetter *Sink `yaml:"dead_letter"`
		}
		// Node.Decode doesn't refuse unknown keys: decode a copy strictly.
		data, err := yaml.Marshal(n)
		if err != nil {
			return fmt.Errorf("line %d: key %s: %v", n.Line, first, err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&v); err != nil {
			what := "not {dead_letter: SINK}"
			var te *yaml.TypeError
			if errors.As(err, &te) && len(te.Errors) > 0 {
				if m := lineRE.FindStringSubmatch(te.Errors[0]); m != nil {
					what = m[2]
					if u := unknownRE.FindStringSubmatch(what); u != nil {
						what = "unknown key " + u[1]
					}
				}
			}
			return fmt.Errorf("line %d: key %s: %s", n.Line, first, what)
		}
		if v.DeadLetter == nil {
			return fmt.Errorf("line %d: key %s: a mapping here is {dead_letter: SINK}", n.Line, first)
		}
		*o = OnExhausted{Action: ExhaustedDeadLetter, DeadLetter: v.DeadLetter}
		return nil
	}
	return fmt.Errorf("line %d: key on_exhausted: none of stop, skip or {dead_letter: SINK}", n.Line)
}

// MarshalYAML writes o as UnmarshalYAML reads it.
func (o OnExhausted) MarshalYAML() (any, error) {
	if o.Action == ExhaustedDeadLetter {
		return map[string]*Sink{"dead_letter": o.DeadLetter}, nil
	}
	return o.Action, nil
}

// Sink says where a route delivers: exactly one of its fields.
type Sink struct {
	Stdout  *StdoutSink  `yaml:"stdout"`
	Exec    *ExecSink    `yaml:"exec"`
	Webhook *WebhookSink `yaml:"webhook"`
	Relay   *RelaySink   `yaml:"relay"`
}

// StdoutSink writes each message as a JSON line to standard output.
type StdoutSink struct{}

// ExecSink runs Command once per message, with the message as JSON on its
// standard input; exit status 0 is delivered.
type ExecSink struct {
	Command []string `yaml:"command"`
	Timeout Duration `yaml:"timeout"` // [30s]
	// EnvAllowlist names PARLEY_XMPP_* variables the command may see after all.
	// It gets the engine's environment without them: they hold the servers'
	// passwords (PARLEY_XMPP_PASS, PARLEY_XMPP_<NAME>_PASS, ..._PASS_FILE).
	EnvAllowlist []string `yaml:"env_allowlist,omitempty"`
}

// WebhookSink POSTs each message as JSON to URL; a 2xx answer is delivered.
type WebhookSink struct {
	URL     string            `yaml:"url"`
	Headers map[string]string `yaml:"headers"`
	Timeout Duration          `yaml:"timeout"` // [10s]
}

// RelaySink posts each message to Topic on Server, exactly once.
type RelaySink struct {
	Server string `yaml:"server"` // "" for the default server
	Topic  string `yaml:"topic"`
	// Oversize: what becomes of content the destination can't take in one
	// post (over its max_content_bytes or max_stanza_bytes): "split" (posted
	// as several, in order, each exactly once), "truncate" (its start, marked
	// with …), or "on_exhausted" (the route's on_exhausted, at once) [on_exhausted].
	Oversize string `yaml:"oversize"`
	// Format, when set, is the relayed text: "<{sender}> {content}" keeps
	// the original sender (see RelayPlaceholders) [{content}].
	Format string `yaml:"format,omitempty"`
}

// Oversize values.
const (
	OversizeExhausted = "on_exhausted"
	OversizeSplit     = "split"
	OversizeTruncate  = "truncate"
)

// Duration is a time.Duration written as "1.5s", "100ms", "5m".
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration like 1.5s, 100ms or 5m", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes d as UnmarshalYAML reads it.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// ErrConfig is what every configuration error wraps.
var ErrConfig = errors.New("config")

// env maps backend_config keys to the variables that override them.
var env = []struct {
	key, name string
	field     func(*Backend) *string
}{
	{"service", defaults.EnvService, func(b *Backend) *string { return &b.Service }},
	{"domain", defaults.EnvDomain, func(b *Backend) *string { return &b.Domain }},
	{"muc_service", defaults.EnvMUCService, func(b *Backend) *string { return &b.MUCService }},
	{"username", defaults.EnvUsername, func(b *Backend) *string { return &b.Username }},
	{"password", defaults.EnvPassword, func(b *Backend) *string { return &b.Password }},
	{"password_file", "PARLEY_XMPP_PASS_FILE", func(b *Backend) *string { return &b.PasswordFile }},
	{"nick", defaults.EnvNick, func(b *Backend) *string { return &b.Nick }},
}

// Load reads the configuration file at path, then applies the PARLEY_XMPP_*
// variables, from the environment or from a .env file in the same directory.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	f, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.path = path
	dotenv, err := readDotEnv(filepath.Join(filepath.Dir(path), ".env"))
	if err != nil {
		return nil, err
	}
	f.applyEnv(func(name string) string {
		if v := os.Getenv(name); v != "" {
			return v
		}
		return dotenv[name]
	})
	if err := f.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := f.resolveStateDir(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := f.loadSecrets(true); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// resolveStateDir makes a relative serve.state_dir relative to the file's
// directory, as password_file is. A state dir that used to resolve against the
// working directory and is still there, while the file's directory has none,
// is an error: starting without the saved cursors would skip or repeat
// messages.
func (f *File) resolveStateDir() error {
	sd := f.Serve.StateDir
	if sd == "" || filepath.IsAbs(sd) {
		return nil
	}
	resolved := f.relative(sd)
	f.Serve.StateDir = resolved
	if filepath.Clean(resolved) == filepath.Clean(sd) {
		return nil // the file is in the working directory
	}
	if _, err := os.Stat(resolved); !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if fi, err := os.Stat(sd); err == nil && fi.IsDir() {
		abs, _ := filepath.Abs(sd)
		return fmt.Errorf("%w: serve.state_dir: %q is relative to the configuration file's directory: %s, which doesn't exist, while %s (relative to the working directory, as before) does: move it to %s, or make state_dir absolute", ErrConfig, sd, resolved, abs, resolved)
	}
	return nil
}

// FromEnv is the configuration without a file: the default server from the
// PARLEY_XMPP_* variables (runtime.ConfigFromEnv), and the runtime's defaults
// for everything else.
func FromEnv() *File {
	c := runtime.ConfigFromEnv()
	return &File{Backend: Backend{Service: c.Service, Domain: c.Domain, MUCService: c.MUCService, Username: c.Username, Password: c.Password, Nick: c.Nick}}
}

// Parse reads a configuration from YAML, without the environment, and checks
// it; a relative password_file or tls.ca_file is read from the working
// directory.
func Parse(data []byte) (*File, error) {
	f, err := parse(data)
	if err != nil {
		return nil, err
	}
	if err := f.loadSecrets(false); err != nil {
		return nil, err
	}
	return f, nil
}

func parse(data []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, explain(data, err)
	}
	if err := f.validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

var lineRE = regexp.MustCompile(`^line (\d+): (.*)$`)
var unknownRE = regexp.MustCompile(`^field (\S+) not found in type`)

// keyRE: an UnmarshalYAML error that names the key on its line ("key K: why"),
// where a line holds several (flow style).
var keyRE = regexp.MustCompile(`^key (\S+): (.*)$`)

// explain rewrites yaml.v3's errors ("line 3: cannot unmarshal ...") so each
// names the key at fault ("backend_config.nick (line 3): ...").
func explain(data []byte, err error) error {
	var te *yaml.TypeError
	errs := []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	if errors.As(err, &te) {
		errs = te.Errors
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	var msgs []string
	for _, e := range errs {
		m := lineRE.FindStringSubmatch(e)
		if m == nil {
			msgs = append(msgs, e)
			continue
		}
		line, _ := strconv.Atoi(m[1])
		what, name := m[2], ""
		if u := unknownRE.FindStringSubmatch(what); u != nil {
			what, name = "unknown key", u[1]
		} else if k := keyRE.FindStringSubmatch(what); k != nil {
			what, name = k[2], k[1]
		}
		msgs = append(msgs, fmt.Sprintf("%s (line %d): %s", keyAt(&root, line, name), line, what))
	}
	return fmt.Errorf("%w: %s", ErrConfig, strings.Join(msgs, "; "))
}

// keyAt returns the dotted path of the mapping key named name on line (any key
// when name is ""), or of the key whose value starts there.
func keyAt(n *yaml.Node, line int, name string) string {
	var walk func(n *yaml.Node, path string) string
	walk = func(n *yaml.Node, path string) string {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for i, c := range n.Content {
				p := path
				if n.Kind == yaml.SequenceNode {
					p = fmt.Sprintf("%s[%d]", path, i)
				}
				if r := walk(c, p); r != "" {
					return r
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				if k.Line == line && (name == "" || k.Value == name) || name == "" && v.Line == line && v.Kind != yaml.MappingNode {
					return p
				}
				if r := walk(v, p); r != "" {
					return r
				}
			}
		}
		return ""
	}
	if k := walk(n, ""); k != "" {
		return k
	}
	return "?"
}

func (f *File) applyEnv(get func(string) string) {
	for _, e := range env {
		if v := get(e.name); v != "" {
			*e.field(&f.Backend) = v
		}
	}
	for name, srv := range f.Servers {
		prefix := "PARLEY_XMPP_" + envName(name) + "_"
		for _, e := range env {
			if v := get(prefix + strings.TrimPrefix(e.name, "PARLEY_XMPP_")); v != "" {
				*e.field(&srv.Backend) = v
			}
		}
		f.Servers[name] = srv
	}
}

// envName is a server name as it appears in variable names.
func envName(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, name)
}

// RuntimeConfig is the runtime configuration of the default server (the
// runtime fills in what is left unset).
func (f *File) RuntimeConfig() runtime.Config {
	c, _ := f.ServerConfig("")
	return c
}

// ServerConfig is the runtime configuration of the named server ("" for the
// default one).
func (f *File) ServerConfig(name string) (runtime.Config, error) {
	b := f.Backend
	if name != "" {
		srv, ok := f.Servers[name]
		if !ok {
			return runtime.Config{}, fmt.Errorf("%w: servers.%s: no such server", ErrConfig, name)
		}
		b = srv.Backend
	}
	c := runtime.Config{
		Service: b.Service, Domain: b.Domain, MUCService: b.MUCService,
		Username: b.Username, Password: b.Password, Nick: b.Nick, TLSConfig: b.tlsConfig,
	}
	f.Runtime.apply(&c)
	return c, nil
}

// readDotEnv reads KEY=VALUE lines (# comments, optional quotes) from path; a
// missing file is no error, one its group or others may open is.
func readDotEnv(path string) (map[string]string, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	// It holds passwords (PARLEY_XMPP_PASS): the same rule as password_file.
	data, err := ReadSecretFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: .env: %v", ErrConfig, err)
	}
	return parseDotEnv(bytes.NewReader(data), path)
}

// parseDotEnv reads a .env file's lines; path names it in errors.
func parseDotEnv(r io.Reader, path string) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		key = strings.TrimSpace(key)
		if !ok || !envKeyRE.MatchString(key) {
			return nil, fmt.Errorf("%w: %s:%d: want KEY=VALUE (KEY: letters, digits and _)", ErrConfig, path, n)
		}
		value = strings.TrimSpace(value)
		if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0] {
			value = value[1 : len(value)-1]
		}
		out[key] = value
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrConfig, path, err)
	}
	return out, nil
}

var envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
