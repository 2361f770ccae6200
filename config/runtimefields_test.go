package config

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parley-go/parley-xmpp/runtime"
)

// embedderOnly: runtime.Config's fields no file sets, and why.
var embedderOnly = map[string]string{
	"TLSConfig":     "backend_config.tls (ca_file, server_name) builds it",
	"OnStateChange": "a callback",
	"OnRoomEvent":   "a callback",
	"Metrics":       "serve passes its Prometheus metrics",
	"Allow":         "serve builds it from the routes' senders (Serve.Allow)",
	"Logger":        "the command passes its logger",
}

// Every runtime.Config field is set from the runtime block, from
// backend_config, or only by embedders (embedderOnly): a new knob needs a
// key, or a reason here.
func TestTheRuntimeBlockCoversConfig(t *testing.T) {
	ct := reflect.TypeFor[runtime.Config]()
	for i := range ct.NumField() {
		name := ct.Field(i).Name
		_, fromRuntime := runtimeKeys[name]
		_, fromBackend := backendKeys[name]
		if !fromRuntime && !fromBackend && embedderOnly[name] == "" {
			t.Errorf("runtime.Config.%s is set from no key of the file", name)
		}
	}
	for _, f := range runtimeFields {
		require.NotEmpty(t, f.key, "Runtime.%s has no yaml key", f.name)
		if f.name != "StreamManagement" {
			_, ok := ct.FieldByName(f.name)
			assert.True(t, ok, "runtime.%s (Runtime.%s) names no runtime.Config field", f.key, f.name)
		}
	}
}

// apply carries every key's value into runtime.Config: each field set to a
// value of its own comes out in the field of the same name.
func TestApplyCarriesEveryKey(t *testing.T) {
	var r Runtime
	rv := reflect.ValueOf(&r).Elem()
	for i := range rv.NumField() {
		switch f := rv.Field(i); f.Kind() {
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(1000 + i))
		case reflect.Bool:
			f.SetBool(true)
		}
	}
	off := false
	r.StreamManagement = &off
	var c runtime.Config
	r.apply(&c)
	cv := reflect.ValueOf(c)
	for _, f := range runtimeFields {
		if f.name == "StreamManagement" {
			continue
		}
		assert.Equal(t, rv.Field(f.index).Convert(cv.FieldByName(f.name).Type()).Interface(), cv.FieldByName(f.name).Interface(), f.key)
	}
	assert.True(t, c.DisableStreamManagement, "stream_management: false turns it off")
	on := true
	r.StreamManagement = &on
	r.apply(&c)
	assert.False(t, c.DisableStreamManagement)
}
