package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/serve"
)

// Report is what etcd says of a cluster.
type Report struct {
	Members []Member
	Topics  []TopicOwner
}

// Member is a node holding a live lease.
type Member struct{ ID, Address string }

// TopicOwner says which node holds a (route, topic)'s lock ("" none).
type TopicOwner struct {
	Route, Topic string
	Node         string
	Configured   bool // listed in this configuration (else only found in etcd)
}

// Status reads the members and the lock holders of the cluster from etcd;
// configured lists the (route, topic)s to show even when nobody holds them.
// An unreachable etcd answers ErrEtcdUnreachable.
func Status(ctx context.Context, c *config.Cluster, configured []serve.Topic) (Report, error) {
	cli, err := NewEtcdClient(c)
	if err != nil {
		return Report{}, err
	}
	defer cli.Close()
	k := keysOf(c.Name)
	timeout := time.Duration(max(c.Etcd.DialTimeout, config.Duration(5*time.Second)))
	get := func(prefix string) (*clientv3.GetResponse, error) {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		resp, err := cli.Get(cctx, prefix, clientv3.WithPrefix())
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrEtcdUnreachable, err)
		}
		return resp, nil
	}
	nodes, err := get(k.nodes())
	if err != nil {
		return Report{}, err
	}
	locks, err := get(k.locks())
	if err != nil {
		return Report{}, err
	}
	var r Report
	for _, kv := range nodes.Kvs {
		var m Member
		if json.Unmarshal(kv.Value, &struct {
			ID      *string `json:"id"`
			Address *string `json:"address"`
		}{&m.ID, &m.Address}) == nil {
			r.Members = append(r.Members, m)
		}
	}
	sort.Slice(r.Members, func(i, j int) bool { return r.Members[i].Address < r.Members[j].Address })
	owners := map[serve.Topic]string{}
	for _, kv := range locks.Kvs {
		if t, err := parseIdentity(strings.TrimPrefix(string(kv.Key), k.locks())); err == nil {
			owners[t] = string(kv.Value)
		}
	}
	seen := map[serve.Topic]bool{}
	for _, t := range configured {
		seen[t] = true
		r.Topics = append(r.Topics, TopicOwner{Route: t.Route, Topic: t.Topic, Node: owners[t], Configured: true})
	}
	var extra []TopicOwner
	for t, node := range owners {
		if !seen[t] {
			extra = append(extra, TopicOwner{Route: t.Route, Topic: t.Topic, Node: node})
		}
	}
	sort.Slice(extra, func(i, j int) bool {
		return extra[i].Route+"\x00"+extra[i].Topic < extra[j].Route+"\x00"+extra[j].Topic
	})
	r.Topics = append(r.Topics, extra...)
	return r, nil
}
