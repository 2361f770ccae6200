package config

import (
	"regexp"
	"sort"
	"strings"

	"github.com/parley-go/parley-xmpp/internal/defaults"
)

// Explain rewrites an error of the runtime's (runtime.New refusing a
// runtime.Config, CheckPost, CheckFetch) for the server named server ("" for
// backend_config) so that it names what an operator changes: this file's keys
// (backend_config.nick, runtime.max_content_bytes), or, for a configuration
// without a file (FromEnv), the PARLEY_XMPP_* variables, instead of the
// runtime's Go fields (Nick, Config.MaxContentBytes). The runtime's errors
// stay as they are for embedders; errors.Is still finds everything err wraps.
func (f *File) Explain(server string, err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	out := f.explainText(server, msg)
	if out == msg {
		return err
	}
	return &explained{msg: out, err: err}
}

type explained struct {
	msg string
	err error
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }

// backendKeys: runtime.Config's fields set from backend_config, with the
// variable that sets each without a file.
var backendKeys = map[string]struct{ key, env string }{
	"Service":    {"service", defaults.EnvService},
	"Domain":     {"domain", defaults.EnvDomain},
	"MUCService": {"muc_service", defaults.EnvMUCService},
	"Username":   {"username", defaults.EnvUsername},
	"Password":   {"password", defaults.EnvPassword},
	"Nick":       {"nick", defaults.EnvNick},
}

var (
	runtimeFieldRE = regexp.MustCompile(`\b(?:Config\.)?(` + alternatives(runtimeKeys) + `)\b`)
	// A backend field is named where runtime.New's errors name it: first,
	// right after the "bad config" sentinel (Service "x" is ...).
	backendFieldRE = regexp.MustCompile(`(bad config: )(Service|Domain|MUCService|Username|Password|Nick)\b`)
	allowRE        = regexp.MustCompile(`(bad config: )Allow\[("[^"]*")\]`)
)

func alternatives[V any](m map[string]V) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	// Longest first: the regexp takes the first alternative that matches.
	sort.Slice(names, func(i, j int) bool { return len(names[i]) > len(names[j]) })
	return strings.Join(names, "|")
}

func (f *File) explainText(server, msg string) string {
	file := f != nil && f.path != ""
	msg = runtimeFieldRE.ReplaceAllStringFunc(msg, func(m string) string {
		key := "runtime." + runtimeKeys[strings.TrimPrefix(m, "Config.")]
		if !file {
			return key + " in a --config file"
		}
		return key
	})
	prefix := "backend_config."
	if server != "" {
		prefix = "servers." + server + ".backend_config."
	}
	msg = backendFieldRE.ReplaceAllStringFunc(msg, func(m string) string {
		sub := backendFieldRE.FindStringSubmatch(m)
		k := backendKeys[sub[2]]
		if !file && server == "" {
			return sub[1] + k.env
		}
		return sub[1] + prefix + k.key
	})
	msg = allowRE.ReplaceAllString(msg, "${1}the senders of topic $2")
	// The rest of the runtime's hints for embedders, in the file's words.
	msg = strings.ReplaceAll(msg, " (set it, or PARLEY_XMPP_PASS for ConfigFromEnv)", " (set password_file, or PARLEY_XMPP_PASS)")
	msg = strings.ReplaceAll(msg, "give the account as Username and Password instead", "give the account as username and password instead")
	return msg
}
