package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// relaySecretBytes is the size of the relays' secret (serve's, for a state
// dir, is the same).
const relaySecretBytes = 32

// RelaySecret answers the cluster's relay secret, creating it on first use in
// one transaction (create if absent), so that every node keys its relays'
// origin-ids the same way and finds the posts another node made. Whoever can
// read the cluster's keys in etcd can read it: protect etcd (auth, TLS).
func RelaySecret(ctx context.Context, cli *clientv3.Client, cluster string) ([]byte, error) {
	key := keysOf(cluster).relaySecret()
	fresh := make([]byte, relaySecretBytes)
	_, _ = rand.Read(fresh) // never fails (crypto/rand)
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, hex.EncodeToString(fresh))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return nil, fmt.Errorf("%w: reading the relay secret: %v", ErrEtcdUnreachable, err)
	}
	if resp.Succeeded {
		return fresh, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	var secret []byte
	if len(kvs) == 1 {
		secret, err = hex.DecodeString(string(kvs[0].Value))
	}
	if len(kvs) != 1 || err != nil || len(secret) != relaySecretBytes {
		return nil, fmt.Errorf("the relay secret at %s in etcd is corrupt: restore it from a backup, or delete it "+
			"(a new one is made, but a relay that was between a post and its cursor write posts that message again)", key)
	}
	return secret, nil
}
