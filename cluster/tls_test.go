package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/parley-go/parley-xmpp/config"
	"github.com/parley-go/parley-xmpp/internal/etcdtest"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	ca := &testCA{cert: cert, key: key, dir: t.TempDir()}
	writePEM(t, filepath.Join(ca.dir, "ca.pem"), "CERTIFICATE", der)
	return ca
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
}

// node issues a node certificate for 127.0.0.1 with the given extended key
// usages and returns its serve.cluster.tls block.
func (ca *testCA) node(t *testing.T, name string, usages ...x509.ExtKeyUsage) *config.NodeTLS {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usages,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	n := &config.NodeTLS{CertFile: filepath.Join(ca.dir, name+".pem"), KeyFile: filepath.Join(ca.dir, name+".key"), CAFile: filepath.Join(ca.dir, "ca.pem")}
	writePEM(t, n.CertFile, "CERTIFICATE", der)
	writePEM(t, n.KeyFile, "PRIVATE KEY", kder)
	return n
}

var nodeUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}

// listener starts an actor system whose remote listens on 127.0.0.1 with the
// options Start gives a node for serve.cluster.tls (nil: plain gRPC), and an
// actor named echo there; got receives what echo is sent. One listener per
// process (ownProcess).
func listener(t *testing.T, tlsBlock *config.NodeTLS) (addr string, got chan string) {
	t.Helper()
	opts, err := remoteTLS(&config.Cluster{TLS: tlsBlock})
	require.NoError(t, err)
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	r := remote.NewRemote(sys, remote.Configure("127.0.0.1", etcdtest.FreePort(t), opts...))
	r.Start()
	t.Cleanup(func() { r.Shutdown(false); sys.Shutdown() })
	got = make(chan string, 16)
	_, err = sys.Root.SpawnNamed(actor.PropsFromFunc(func(ctx actor.Context) {
		if v, ok := ctx.Message().(*wrapperspb.StringValue); ok {
			got <- v.Value
		}
	}), "echo")
	require.NoError(t, err)
	return sys.Address(), got
}

// deliver speaks protoactor's remote protocol to addr over a gRPC connection
// with creds, as a node's endpoint writer does: a connect request, then one
// message (a StringValue) to the actor named echo.
func deliver(addr string, creds credentials.TransportCredentials, body string) error {
	conn, err := grpc.Dial(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	stream, err := remote.NewRemotingClient(conn).Receive(ctx)
	if err != nil {
		return err
	}
	if err := stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_ConnectRequest{ConnectRequest: &remote.ConnectRequest{
		ConnectionType: &remote.ConnectRequest_ServerConnection{ServerConnection: &remote.ServerConnection{SystemId: "outsider", Address: "outsider:1"}}}}}); err != nil {
		return err
	}
	res, err := stream.Recv()
	if err != nil {
		return err
	}
	if res.GetConnectResponse() == nil {
		return errors.New("no connect response")
	}
	data, err := proto.Marshal(wrapperspb.String(body))
	if err != nil {
		return err
	}
	if err := stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: &remote.MessageBatch{
		TypeNames: []string{string(proto.MessageName(wrapperspb.String("")))},
		Targets:   []*actor.PID{actor.NewPID(addr, "echo")},
		Envelopes: []*remote.MessageEnvelope{{TypeId: 0, MessageData: data, Target: 0}},
	}}}); err != nil {
		return err
	}
	// The listener reads the stream in order: once it has seen its end, it
	// has handed the message over.
	if err := stream.CloseSend(); err != nil {
		return err
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("the listener ended the stream with %v", err)
	}
	return nil
}

// ownProcess runs the calling test again in a process of its own and reports
// false (the caller returns); in that process it reports true. A listener
// needs a process to itself: protoactor's remote sets grpc's global logger as
// it starts, racing with the goroutines of another test's gRPC connections
// (upstream).
func ownProcess(t *testing.T) bool {
	t.Helper()
	const env = "PARLEY_CLUSTER_OWN_PROCESS"
	if os.Getenv(env) == t.Name() {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), env+"="+t.Name())
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "--- PASS: "+t.Name(), "%s", out)
	return false
}

func received(got chan string, want string) bool {
	for {
		select {
		case v := <-got:
			if v == want {
				return true
			}
		case <-time.After(2 * time.Second):
			return false
		}
	}
}

// What an unauthenticated listener exposes (docs/cluster.md): anyone who can
// reach a node's plain listener sends messages to its actors by name, with
// no credentials, over protoactor's own protocol.
func TestPlainNodeListenerTakesActorMessagesFromAnyone(t *testing.T) {
	if !ownProcess(t) {
		return
	}
	addr, got := listener(t, nil)
	require.NoError(t, deliver(addr, insecure.NewCredentials(), "from a stranger"))
	assert.True(t, received(got, "from a stranger"), "the actor got the stranger's message")
}

// Mutual TLS between nodes (serve.cluster.tls), with the options Start gives
// protoactor's remote: a node with a certificate of the cluster's CA gets its
// message to an actor; plain gRPC, a certificate another CA signed, and a TLS
// client without a certificate are refused by the listener, and nothing of
// theirs reaches an actor.
func TestNodeListenerRequiresMutualTLS(t *testing.T) {
	if !ownProcess(t) {
		return
	}
	ca := newTestCA(t, "cluster CA")
	addr, got := listener(t, ca.node(t, "b", nodeUsages...))
	clientOf := func(n *config.NodeTLS) credentials.TransportCredentials {
		_, client, err := (&config.Cluster{TLS: n}).NodeTLSConfigs()
		require.NoError(t, err)
		return credentials.NewTLS(client)
	}
	require.NoError(t, deliver(addr, clientOf(ca.node(t, "a", nodeUsages...)), "from a node"))
	assert.True(t, received(got, "from a node"), "a node of the cluster's CA reaches the actor")

	err := deliver(addr, insecure.NewCredentials(), "plain")
	assert.Error(t, err, "plain gRPC is refused")
	other := newTestCA(t, "another CA")
	err = deliver(addr, clientOf(other.node(t, "stranger", nodeUsages...)), "another CA")
	assert.Error(t, err, "a certificate of another CA is refused")
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	err = deliver(addr, credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}), "no certificate")
	require.Error(t, err, "a TLS client without a certificate is refused")
	select {
	case v := <-got:
		t.Fatalf("a refused client's message reached the actor: %q", v)
	case <-time.After(500 * time.Millisecond):
	}
}

// serve.cluster.tls is checked before any network: a missing or unreadable
// file, a CA file without a certificate, a key that isn't the certificate's, a
// certificate of another CA or without client authentication are config errors
// naming the key.
func TestNodeTLSConfigIsChecked(t *testing.T) {
	ca := newTestCA(t, "cluster CA")
	good := ca.node(t, "good", nodeUsages...)
	serverOnly := ca.node(t, "server-only", x509.ExtKeyUsageServerAuth)
	other := newTestCA(t, "another CA").node(t, "stranger", nodeUsages...)
	notPEM := filepath.Join(t.TempDir(), "empty.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("nothing\n"), 0o600))
	with := func(f func(n *config.NodeTLS)) *config.NodeTLS { n := *good; f(&n); return &n }
	for _, c := range []struct {
		name string
		tls  *config.NodeTLS
		key  string
	}{
		{"no cert", with(func(n *config.NodeTLS) { n.CertFile = "" }), "serve.cluster.tls.cert_file: missing"},
		{"no key", with(func(n *config.NodeTLS) { n.KeyFile = "" }), "serve.cluster.tls.key_file: missing"},
		{"no CA", with(func(n *config.NodeTLS) { n.CAFile = "" }), "serve.cluster.tls.ca_file: missing"},
		{"unreadable CA", with(func(n *config.NodeTLS) { n.CAFile += ".gone" }), "serve.cluster.tls.ca_file: can't read"},
		{"CA without a certificate", with(func(n *config.NodeTLS) { n.CAFile = notPEM }), "serve.cluster.tls.ca_file: " + notPEM + " holds no PEM certificate"},
		{"unreadable key", with(func(n *config.NodeTLS) { n.KeyFile += ".gone" }), "serve.cluster.tls.key_file: can't read"},
		{"another certificate's key", with(func(n *config.NodeTLS) { n.KeyFile = other.KeyFile }), "serve.cluster.tls.cert_file: "},
		{"another CA's certificate", with(func(n *config.NodeTLS) { n.CertFile, n.KeyFile = other.CertFile, other.KeyFile }), "is not a node certificate of ca_file"},
		{"server authentication only", serverOnly, "is not a node certificate of ca_file"},
	} {
		_, _, err := (&config.Cluster{TLS: c.tls}).NodeTLSConfigs()
		require.Error(t, err, c.name)
		assert.True(t, errors.Is(err, config.ErrConfig), "%s: %v", c.name, err)
		assert.Contains(t, err.Error(), c.key, c.name)
	}
	server, client, err := (&config.Cluster{TLS: good}).NodeTLSConfigs()
	require.NoError(t, err)
	assert.Equal(t, tls.RequireAndVerifyClientCert, server.ClientAuth)
	assert.Len(t, client.Certificates, 1)
}
