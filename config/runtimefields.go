package config

import (
	"reflect"
	"strings"
	"time"

	"github.com/parley-go/parley-xmpp/runtime"
)

// The runtime block maps onto runtime.Config through one table, read from
// the Runtime struct itself: each field's yaml key names it in the file, and
// the runtime.Config field of the same Go name takes its value (a Duration
// as a time.Duration). The one field that maps otherwise is
// stream_management, which turns DisableStreamManagement over. A test checks
// that every runtime.Config field is set from this block, from
// backend_config, or only by embedders.

// runtimeField is one key of the runtime block.
type runtimeField struct {
	key   string // the yaml key: max_stanza_bytes
	name  string // the Go field, in Runtime and runtime.Config: MaxStanzaBytes
	index int    // in Runtime
}

// runtimeFields is the table, in the order Runtime declares its fields.
var runtimeFields = func() []runtimeField {
	t := reflect.TypeFor[Runtime]()
	out := make([]runtimeField, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		out = append(out, runtimeField{key: key, name: f.Name, index: i})
	}
	return out
}()

// runtimeKeys: runtime.Config's field names → the runtime block's keys.
var runtimeKeys = func() map[string]string {
	m := make(map[string]string, len(runtimeFields))
	for _, f := range runtimeFields {
		if f.name == "StreamManagement" {
			m["DisableStreamManagement"] = f.key
			continue
		}
		m[f.name] = f.key
	}
	return m
}()

var durationType = reflect.TypeFor[Duration]()

// apply sets c's fields from the runtime block.
func (r Runtime) apply(c *runtime.Config) {
	src := reflect.ValueOf(r)
	dst := reflect.ValueOf(c).Elem()
	for _, f := range runtimeFields {
		v := src.Field(f.index)
		if f.name == "StreamManagement" {
			c.DisableStreamManagement = r.StreamManagement != nil && !*r.StreamManagement
			continue
		}
		to := dst.FieldByName(f.name)
		if v.Type() == durationType {
			to.Set(reflect.ValueOf(time.Duration(v.Int())))
			continue
		}
		to.Set(v)
	}
}

// negativeInts names the runtime block's integer keys set below zero, each
// with its value (none of them takes a negative number).
func (r Runtime) negativeInts() (keys []string, values []int) {
	v := reflect.ValueOf(r)
	for _, f := range runtimeFields {
		if fv := v.Field(f.index); fv.Kind() == reflect.Int && fv.Int() < 0 {
			keys, values = append(keys, "runtime."+f.key), append(values, int(fv.Int()))
		}
	}
	return keys, values
}
