package session

import "crypto/rand"

func randID() string { return rand.Text() }
