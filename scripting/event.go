package scripting

import (
	"slices"
	"sort"
	"strings"
	"time"
	"unsafe"

	"github.com/dop251/goja"
)

// eventKeys are the properties of the JS event, in order.
var eventKeys = []string{"actor", "type", "data", "seq", "version", "time", "subject", "headers"}

const (
	keyActor = iota
	keyType
	keyData
	keySeq
	keyVersion
	keyTime
	keySubject
	keyHeaders
	nEventKeys
)

func eventKeyIndex(k string) int {
	switch k {
	case "actor":
		return keyActor
	case "type":
		return keyType
	case "data":
		return keyData
	case "seq":
		return keySeq
	case "version":
		return keyVersion
	case "time":
		return keyTime
	case "subject":
		return keySubject
	case "headers":
		return keyHeaders
	}
	return -1
}

// eventObject is the JS event: a goja dynamic object whose properties are
// made on first read, so a reducer pays only for what it reads (most read
// type and a field or two of data). It behaves as a plain object whose
// properties are all writable, enumerable and configurable data
// properties, in the order of eventKeys; a script may set, add and delete
// properties. What a dynamic object cannot do: it cannot be frozen, sealed
// or made non-extensible, and cannot get accessor or symbol properties
// (those throw a TypeError). Copy it ({...event}) for that.
//
// The values depend only on the Event, so when they are made does not
// matter: e.data === e.data, and the result is the same for every fold.
type eventObject struct {
	r    *realm
	ev   *Event
	vals [nEventKeys]goja.Value // nil until first read or write

	// The payload as JS sees it, and its type (Event.TypeFromData): decoded
	// once, when e.data or the type is first needed.
	payload     string      // ev.Data as a string
	top         *lazyObject // memory for an object payload, or nil
	data        goja.Value
	payloadType string
	decoded     bool

	// After the script adds or deletes a property: the own keys in
	// insertion order (nil until then: eventKeys), deleted event keys, and
	// the values of added keys.
	keys    []string
	deleted [nEventKeys]bool
	extra   map[string]goja.Value
}

func (o *eventObject) Get(k string) goja.Value {
	if i := eventKeyIndex(k); i >= 0 {
		if o.deleted[i] {
			return nil
		}
		if o.vals[i] == nil {
			o.vals[i] = o.r.eventValue(o, i)
		}
		return o.vals[i]
	}
	return o.extra[k]
}

func (o *eventObject) Set(k string, v goja.Value) bool {
	if i := eventKeyIndex(k); i >= 0 {
		if o.deleted[i] {
			o.deleted[i] = false
			o.keys = append(o.ownKeys(), k)
		}
		o.vals[i] = v
		return true
	}
	if _, ok := o.extra[k]; !ok {
		if o.extra == nil {
			o.extra = make(map[string]goja.Value)
		}
		o.keys = append(o.ownKeys(), k)
	}
	o.extra[k] = v
	return true
}

func (o *eventObject) Has(k string) bool {
	if i := eventKeyIndex(k); i >= 0 {
		return !o.deleted[i]
	}
	_, ok := o.extra[k]
	return ok
}

func (o *eventObject) Delete(k string) bool {
	if !o.Has(k) {
		return true
	}
	keys := o.ownKeys()
	o.keys = slices.Delete(keys, slices.Index(keys, k), slices.Index(keys, k)+1)
	if i := eventKeyIndex(k); i >= 0 {
		o.deleted[i], o.vals[i] = true, nil
	} else {
		delete(o.extra, k)
	}
	return true
}

// Keys gives the own keys as a plain object orders them: array indices
// ascending first, then the other keys in insertion order.
func (o *eventObject) Keys() []string {
	if o.keys == nil {
		return eventKeys
	}
	keys := slices.Clone(o.keys)
	sort.SliceStable(keys, func(a, b int) bool {
		ia, aok := arrayIndex(keys[a])
		ib, bok := arrayIndex(keys[b])
		return aok && (!bok || ia < ib)
	})
	return keys
}

// ownKeys returns o.keys, first making it a copy of eventKeys.
func (o *eventObject) ownKeys() []string {
	if o.keys == nil {
		o.keys = slices.Clone(eventKeys)
	}
	return o.keys
}

// arrayIndex reports whether k is an array index (a canonical decimal
// below 2^32-1), which plain objects list first.
func arrayIndex(k string) (uint32, bool) {
	if k == "" || len(k) > 10 || (k[0] == '0' && len(k) > 1) {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n >= 1<<32-1 {
		return 0, false
	}
	return uint32(n), true
}

// event returns the JS event for ev (outside a fold's foldMem).
func (r *realm) event(ev *Event) goja.Value {
	return r.vm.NewDynamicObject(&eventObject{r: r, ev: ev, payload: string(ev.Data)})
}

// foldMem is the memory of a fold's JS events, taken for foldChunk events
// at a time rather than for each event: their event objects and room for
// their payloads' top-level objects. Within a fold nothing is reused: a
// reducer may keep an event or a part of one in its state, which keeps
// that chunk alive, and only that chunk. (Memory for a whole fold at once
// would grow with the fold: a rebuild folds an actor's whole history.)
// The first chunk is the realm's own (realm.chunk), reused fold after fold
// and cleared at the end of each: nothing of a fold is reachable from the
// realm once it ends (see lockdown.go), and most folds (a capture's EVERY
// events) fit in it, so that they take no memory for their events.
//
// Payloads reach JS as strings that share the memory of Event.Data (see
// Fold): no copy.
type foldMem struct {
	objs  []eventObject
	tops  []lazyObject
	first int // index in the fold's events of objs[0]
}

// foldChunk is how many events a chunk of foldMem holds.
const foldChunk = 128

// chunk is a realm's memory for the first foldChunk events of a fold.
type chunk struct {
	objs [foldChunk]eventObject
	tops [foldChunk]lazyObject
}

// event returns the event object of events[i]; it must be called for
// every event of the fold, in order.
func (m *foldMem) event(r *realm, events []Event, i int) *eventObject {
	if m.objs == nil || i-m.first >= len(m.objs) {
		n := min(foldChunk, len(events)-i)
		if m.objs == nil && r.chunk != nil {
			*m = foldMem{objs: r.chunk.objs[:n], tops: r.chunk.tops[:n], first: i}
		} else {
			*m = foldMem{objs: make([]eventObject, n), tops: make([]lazyObject, n), first: i}
		}
	}
	o := &m.objs[i-m.first]
	ev := &events[i]
	o.r, o.ev, o.top = r, ev, &m.tops[i-m.first]
	o.payload = unsafe.String(unsafe.SliceData(ev.Data), len(ev.Data))
	return o
}

// release clears what the fold left in the realm's chunk, so that an idle
// realm keeps nothing of it alive.
func (r *realm) release(events []Event) {
	if r.chunk != nil {
		n := min(foldChunk, len(events))
		clear(r.chunk.objs[:n])
		clear(r.chunk.tops[:n])
	}
}

// decode decodes the payload, once.
func (o *eventObject) decode() {
	if !o.decoded {
		o.data, o.payloadType = decodeEventData(o.r.vm, o.payload, o.top)
		o.decoded = true
	}
}

// typ is the event's type as the reducer sees it.
func (o *eventObject) typ() string {
	if o.ev.Type != "" || !o.ev.TypeFromData {
		return o.ev.Type
	}
	o.decode()
	return o.payloadType
}

// eventType is ev's type (for error reports: it decodes the payload again).
func eventType(ev *Event) string {
	if ev.Type != "" || !ev.TypeFromData {
		return ev.Type
	}
	return PayloadType(ev.Data)
}

// eventValue makes property i of the JS event o.
func (r *realm) eventValue(o *eventObject, i int) goja.Value {
	vm, ev := r.vm, o.ev
	switch i {
	case keyActor:
		if ev.Actor == "" {
			return r.str(r.actor)
		}
		return r.str(ev.Actor)
	case keyType:
		return r.str(o.typ())
	case keyData:
		o.decode()
		return o.data
	case keySeq:
		return vm.ToValue(float64(ev.Seq))
	case keyVersion:
		return vm.ToValue(float64(ev.Version))
	case keyTime:
		if ev.Time.IsZero() {
			return r.str("")
		}
		return vm.ToValue(ev.Time.UTC().Format(time.RFC3339Nano))
	case keySubject:
		return r.str(ev.Subject)
	case keyHeaders:
		h := vm.NewObject()
		if len(ev.Headers) > 0 {
			keys := make([]string, 0, len(ev.Headers))
			for k, vs := range ev.Headers {
				if len(vs) > 0 {
					keys = append(keys, k)
				}
			}
			sort.Strings(keys)
			for _, k := range keys {
				_ = h.DefineDataProperty(k, vm.ToValue(ev.Headers[k][0]), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE)
			}
		}
		return h
	}
	return nil
}

// str returns s as a JS string, the same value for strings that repeat in
// a fold (actor, type, subject).
func (r *realm) str(s string) goja.Value {
	if v, ok := r.strs[s]; ok {
		return v
	}
	if len(r.strs) >= 64 {
		return r.vm.ToValue(s)
	}
	// A copy: s may be a part of the fold's payloads (a type found in
	// one), which the cache must not keep alive.
	s = strings.Clone(s)
	v := r.vm.ToValue(s)
	if r.strs == nil {
		r.strs = make(map[string]goja.Value)
	}
	r.strs[s] = v
	return v
}
