package cluster

import (
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/parley-go/parley-xmpp/config"
)

// remoteTLS is the remote's options for serve.cluster.tls: mutual TLS on the
// node's listener (a client certificate signed by the CA is required) and on
// its dials to the other nodes (it presents its certificate and checks
// theirs). None when tls is unset: protoactor's default, plain gRPC.
func remoteTLS(c *config.Cluster) ([]remote.ConfigOption, error) {
	server, client, err := c.NodeTLSConfigs()
	if err != nil || server == nil {
		return nil, err
	}
	return []remote.ConfigOption{
		remote.WithServerOptions(grpc.Creds(credentials.NewTLS(server))),
		// Replaces protoactor's default dial options (grpc.WithInsecure).
		remote.WithDialOptions(grpc.WithTransportCredentials(credentials.NewTLS(client))),
	}, nil
}
