// Package config reads parley-xmpp's configuration files: YAML with a
// backend_config block, as the Parley bridge writes them:
//
//	backend_config:
//	  service: "xmpp://127.0.0.1:5222"
//	  domain: "parley.local"
//	  muc_service: "muc.parley.local"
//	  username: "parley"
//	  # password: from PARLEY_XMPP_PASS or a .env file beside this file
//	  # nick: leave unset for a random nick per connection
//
// Unknown keys are errors that name the key. PARLEY_XMPP_* variables override
// the file, and a .env file beside it supplies those not set in the
// environment, so the password never has to be in the YAML.
package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/parley-go/parley-xmpp/runtime"
)

// Backend is the backend_config block.
type Backend struct {
	Service    string `yaml:"service"`
	Domain     string `yaml:"domain"`
	MUCService string `yaml:"muc_service"`
	Username   string `yaml:"username"`
	Password   string `yaml:"password"`
	Nick       string `yaml:"nick"`
}

// File is a configuration file.
type File struct {
	Backend Backend `yaml:"backend_config"`

	path string
}

// ErrConfig is what every configuration error wraps.
var ErrConfig = errors.New("config")

// env maps backend_config keys to the variables that override them.
var env = []struct {
	key, name string
	field     func(*Backend) *string
}{
	{"service", "PARLEY_XMPP_SERVICE", func(b *Backend) *string { return &b.Service }},
	{"domain", "PARLEY_XMPP_DOMAIN", func(b *Backend) *string { return &b.Domain }},
	{"muc_service", "PARLEY_XMPP_MUC", func(b *Backend) *string { return &b.MUCService }},
	{"username", "PARLEY_XMPP_USER", func(b *Backend) *string { return &b.Username }},
	{"password", "PARLEY_XMPP_PASS", func(b *Backend) *string { return &b.Password }},
	{"nick", "PARLEY_XMPP_NICK", func(b *Backend) *string { return &b.Nick }},
}

// Load reads the configuration file at path, then applies the PARLEY_XMPP_*
// variables, from the environment or from a .env file in the same directory.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	f, err := Parse(data)
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
	return f, nil
}

// Parse reads a configuration from YAML, without the environment.
func Parse(data []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, explain(data, err)
	}
	return &f, nil
}

var lineRE = regexp.MustCompile(`^line (\d+): (.*)$`)
var unknownRE = regexp.MustCompile(`^field (\S+) not found in type`)

// explain rewrites yaml.v3's errors ("line 3: cannot unmarshal ...") so each
// names the key at fault ("backend_config.nick (line 3): ...").
func explain(data []byte, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("%w: %s", ErrConfig, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	var msgs []string
	for _, e := range te.Errors {
		m := lineRE.FindStringSubmatch(e)
		if m == nil {
			msgs = append(msgs, e)
			continue
		}
		line, _ := strconv.Atoi(m[1])
		what := m[2]
		if u := unknownRE.FindStringSubmatch(what); u != nil {
			what = "unknown key"
		}
		msgs = append(msgs, fmt.Sprintf("%s (line %d): %s", keyAt(&root, line), line, what))
	}
	return fmt.Errorf("%w: %s", ErrConfig, strings.Join(msgs, "; "))
}

// keyAt returns the dotted path of the mapping key on line, or of the key whose
// value starts there.
func keyAt(n *yaml.Node, line int) string {
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
				if k.Line == line || v.Line == line && v.Kind != yaml.MappingNode {
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
}

// RuntimeConfig is the runtime configuration the file describes (the runtime
// fills in what is left unset).
func (f *File) RuntimeConfig() runtime.Config {
	b := f.Backend
	return runtime.Config{
		Service: b.Service, Domain: b.Domain, MUCService: b.MUCService,
		Username: b.Username, Password: b.Password, Nick: b.Nick,
	}
}

// readDotEnv reads KEY=VALUE lines (# comments, optional quotes) from path; a
// missing file is no error.
func readDotEnv(path string) (map[string]string, error) {
	out := map[string]string{}
	fh, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok {
			return nil, fmt.Errorf("%w: %s:%d: want KEY=VALUE", ErrConfig, path, n)
		}
		value = strings.TrimSpace(value)
		if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0] {
			value = value[1 : len(value)-1]
		}
		out[strings.TrimSpace(key)] = value
	}
	return out, sc.Err()
}
