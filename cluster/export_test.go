package cluster

import "github.com/parley-go/parley-xmpp/serve"

// Kind and Identity give the tests a (route, topic)'s cluster identity.
const Kind = kind

func Identity(route, topic string) string { return identity(serve.Topic{Route: route, Topic: topic}) }
