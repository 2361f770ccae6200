package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/serve"
)

// ErrEtcdUnreachable is what a command answers when etcd can't be reached.
var ErrEtcdUnreachable = errors.New("etcd is unreachable")

// NewEtcdClient connects to the cluster's etcd (lazily: the first call fails
// when it is unreachable).
func NewEtcdClient(c *config.Cluster) (*clientv3.Client, error) {
	cfg, err := etcdConfig(c)
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: serve.cluster.etcd: %v", config.ErrConfig, err)
	}
	return cli, nil
}

func etcdConfig(c *config.Cluster) (clientv3.Config, error) {
	dial := time.Duration(c.Etcd.DialTimeout)
	if dial <= 0 {
		dial = 5 * time.Second
	}
	cfg := clientv3.Config{
		Endpoints: make([]string, len(c.Etcd.Endpoints)), DialTimeout: dial,
		DialKeepAliveTime: time.Second, DialKeepAliveTimeout: c.TTL() / 2,
		Logger: quietZap(),
	}
	for i, e := range c.Etcd.Endpoints {
		if !strings.Contains(e, "://") {
			scheme := "http://"
			if c.Etcd.TLS != nil {
				scheme = "https://"
			}
			e = scheme + e
		}
		cfg.Endpoints[i] = e
	}
	if c.Etcd.Username != "" {
		pw, err := c.EtcdPassword()
		if err != nil {
			return cfg, err
		}
		cfg.Username, cfg.Password = c.Etcd.Username, pw
	}
	if t := c.Etcd.TLS; t != nil {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if t.CAFile != "" {
			pem, err := os.ReadFile(t.CAFile)
			if err != nil {
				return cfg, fmt.Errorf("%w: serve.cluster.etcd.tls.ca_file: %w", config.ErrConfig, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return cfg, fmt.Errorf("%w: serve.cluster.etcd.tls.ca_file: %s holds no PEM certificate", config.ErrConfig, t.CAFile)
			}
			tc.RootCAs = pool
		}
		if t.CertFile != "" {
			pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
			if err != nil {
				return cfg, fmt.Errorf("%w: serve.cluster.etcd.tls: %w", config.ErrConfig, err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		cfg.TLS = tc
	}
	return cfg, nil
}

// keys lays out one cluster's keys in etcd, under /parley-xmpp/<name>/.
type keys struct{ prefix string }

func keysOf(name string) keys { return keys{prefix: "/parley-xmpp/" + name + "/"} }

func (k keys) nodes() string              { return k.prefix + "nodes/" }
func (k keys) node(id string) string      { return k.nodes() + id }
func (k keys) locks() string              { return k.prefix + "locks/" }
func (k keys) lock(ident string) string   { return k.locks() + ident }
func (k keys) cursor(ident string) string { return k.prefix + "cursors/" + ident }
func (k keys) relaySecret() string        { return k.prefix + "relay-secret" }

// identity is a (route, topic)'s cluster identity: both parts path-escaped,
// joined by '/'.
func identity(t serve.Topic) string {
	return url.PathEscape(t.Route) + "/" + url.PathEscape(t.Topic)
}

func parseIdentity(s string) (serve.Topic, error) {
	r, t, ok := strings.Cut(s, "/")
	if !ok {
		return serve.Topic{}, fmt.Errorf("cluster identity %q is not route/topic", s)
	}
	route, err1 := url.PathUnescape(r)
	topic, err2 := url.PathUnescape(t)
	if err := errors.Join(err1, err2); err != nil {
		return serve.Topic{}, fmt.Errorf("cluster identity %q: %w", s, err)
	}
	return serve.Topic{Route: route, Topic: topic}, nil
}

// savedCursor is a cursor as etcd keeps it: the serve.State plus who wrote it.
type savedCursor struct {
	serve.State
	Route string `json:"route"`
	Topic string `json:"topic"`
	Node  string `json:"node"`
	At    string `json:"at"`
}

func decodeCursor(key string, data []byte) (savedCursor, error) {
	var c savedCursor
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("the cursor at %s in etcd is corrupt (%v): fix or delete it (deleted, the topic starts over as configured by start)", key, err)
	}
	return c, nil
}
