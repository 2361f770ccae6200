package cluster

import "github.com/parley-go/parley-xmpp/serve"

// Identity gives the tests a (route, topic)'s cluster identity.
func Identity(route, topic string) string { return identity(serve.Topic{Route: route, Topic: topic}) }

// Assign is placement: which member each identity goes to.
func Assign(members, idents []string) map[string]string { return assign(members, idents) }
