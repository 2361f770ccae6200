package cluster

import "github.com/parley-go/parley-xmpp/serve"

// Identity gives the tests a (route, topic)'s cluster identity.
func Identity(route, topic string) string { return identity(serve.Topic{Route: route, Topic: topic}) }
