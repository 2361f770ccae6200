package config

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzParse: a configuration file. A refusal is a config error (exit status
// 2) and no value; what is accepted gives every server's runtime
// configuration, and written back as YAML reads the same.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"backend_config:\n  service: \"xmpp://127.0.0.1:5222\"\n  domain: parley.local\n  muc_service: muc.parley.local\n  username: parley\n",
		"servers:\n  remote:\n    backend_config: {service: \"xmpps://chat.example.org\", domain: example.org}\nruntime:\n  dial_timeout: 1.5s\n  keepalive: -1s\n  fetch_limit: 10\n",
		"serve:\n  state_dir: /tmp/s\n  metrics_listen: 127.0.0.1:9100\n  routes:\n    - name: r\n      topics: [general, Team Chat]\n      start: start\n      retry_wait: 100ms\n      sink: {exec: {command: [cat], timeout: 2s}}\n    - {name: w, topics: [a], sink: {webhook: {url: 'https://h/x', headers: {X-Token: t}}}}\n    - {name: x, server: remote, topics: [a], sink: {relay: {topic: b}}}\nservers:\n  remote:\n    backend_config: {service: 'xmpp://localhost'}\n",
		"serve:\n  routes:\n    - {name: r1, topics: [a], sink: {relay: {topic: b}}}\n    - {name: r2, topics: [b], sink: {relay: {topic: a}}}\n",
		"runtime: {max_reconnects: -1}\n",
		"backend_config: [1, 2]\n",
		"a: &a [*a]\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("not a config error: %v", err)
			}
			if file != nil {
				t.Fatalf("refused (%v) with a value", err)
			}
			return
		}
		for _, name := range append([]string{""}, keys(file.Servers)...) {
			if _, err := file.ServerConfig(name); err != nil {
				t.Fatalf("server %q: %v", name, err)
			}
		}
		out, err := yaml.Marshal(file)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("written back, refused: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(normal(file), normal(again)) {
			t.Fatalf("round trip:\n%+v\n%+v\n%s", file, again, out)
		}
	})
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// normal makes empty and nil collections equal (YAML writes neither).
func normal(f *File) *File {
	c := *f
	if len(c.Servers) == 0 {
		c.Servers = nil
	}
	if len(c.Serve.Routes) == 0 {
		c.Serve.Routes = nil
	}
	routes := make([]Route, len(c.Serve.Routes))
	for i, r := range c.Serve.Routes {
		if len(r.Topics) == 0 {
			r.Topics = nil
		}
		if r.Sink.Webhook != nil && len(r.Sink.Webhook.Headers) == 0 {
			w := *r.Sink.Webhook
			w.Headers = nil
			r.Sink.Webhook = &w
		}
		routes[i] = r
	}
	if c.Serve.Routes != nil {
		c.Serve.Routes = routes
	}
	return &c
}

// FuzzDotEnv: the .env file beside a configuration. A refusal is a config
// error and no value; every key read is a variable name; and a file written
// from what was read (each value quoted) reads the same.
func FuzzDotEnv(f *testing.F) {
	for _, s := range []string{
		"PARLEY_XMPP_PASS=s3cret\n# a comment\nexport PARLEY_XMPP_USER='bridge'\nPARLEY_XMPP_NICK=\"the bot\"\n",
		"PARLEY_XMPP_REMOTE_PASS = spaced \n\nA=\nB='\nC=\"x'\n",
		"no equals sign\n",
		"=value\n",
		"KEY WITH SPACES=x\n",
		strings.Repeat("A", 70000) + "=x\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := parseDotEnv(bytes.NewReader(data), ".env")
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("not a config error: %v", err)
			}
			if env != nil {
				t.Fatalf("refused (%v) with a value", err)
			}
			return
		}
		var b strings.Builder
		for k, v := range env {
			if !envKeyRE.MatchString(k) {
				t.Fatalf("key %q is no variable name", k)
			}
			switch {
			case strings.ContainsAny(v, "\r\n"):
				return // a line can't hold it
			case !strings.Contains(v, "'"):
				b.WriteString(k + "='" + v + "'\n")
			case !strings.Contains(v, `"`):
				b.WriteString(k + `="` + v + "\"\n")
			default:
				return
			}
		}
		again, err := parseDotEnv(strings.NewReader(b.String()), ".env")
		if err != nil || !reflect.DeepEqual(env, again) {
			t.Fatalf("round trip: %q → %q → %q (%v)", data, b.String(), again, err)
		}
	})
}
