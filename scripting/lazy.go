package scripting

import (
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/dop251/goja"
)

// Event payloads reach reducers lazily: a reducer typically reads a field
// or two of e.data, and making every object, string and number of a
// payload as goja values costs more than the rest of the fold (goja
// objects are Go maps). So decodeEventData checks the whole payload once,
// without making anything, and gives JSON objects as lazyObjects: goja
// dynamic objects that decode a member when it is first read. Arrays are
// real arrays, made when first read, whose object elements are lazy too.
//
// A lazyObject behaves as JSON.parse's object: the same own keys in the
// same order (array indices first), the same values, Object.prototype as
// prototype, writable, enumerable and configurable data properties that a
// script may set, add and delete, "__proto__" as an own property. What a
// goja dynamic object cannot do, it cannot do: be frozen, sealed or made
// non-extensible, or get accessor, non-writable, non-enumerable,
// non-configurable or symbol-keyed properties (these throw a TypeError, or
// in sloppy mode a symbol-keyed assignment is ignored). A reducer that
// needs that copies the object first ({...e.data}, or
// JSON.parse(JSON.stringify(e.data))).

// decodeEventData is decodeData for event payloads: the same values, with
// objects made lazily. It also returns what PayloadType would: the
// top-level "type" string of an object payload. top, when not nil, is the
// memory for a top-level object.
func decodeEventData(vm *goja.Runtime, s string, top *lazyObject) (goja.Value, string) {
	if len(s) > 0 {
		// The usual payload is an object: index its members while checking.
		if top == nil {
			top = &lazyObject{}
		}
		*top = lazyObject{vm: vm, s: s}
		if v := (jsonValidator{s: s, top: top}); v.valid() {
			if top.indexed {
				top.finish()
				return vm.NewDynamicObject(top), top.stringMember("type")
			}
			d := lazyDecoder{vm: vm, s: s, i: v.start}
			return d.value(), ""
		}
	}
	return vm.ToValue(strings.ToValidUTF8(s, "\uFFFD")), ""
}

// jsonValidator checks that s is one JSON value in valid UTF-8, as
// utf8.Valid and json.Valid together do (nesting deeper than maxJSONDepth
// is invalid), without decoding it. Only strings may hold bytes past
// ASCII, so str checks UTF-8 in the same pass.
type jsonValidator struct {
	s string
	i int

	start int         // where the value starts, after space
	top   *lazyObject // when not nil: gets the members of a top-level object
}

func (v *jsonValidator) valid() bool {
	v.space()
	v.start = v.i
	if v.top != nil && v.i < len(v.s) && v.s[v.i] == '{' {
		v.top.start, v.top.indexed = v.i, true
		v.top.keys, v.top.offs = v.top.keysBuf[:0], v.top.offsBuf[:0]
	} else {
		v.top = nil
	}
	if !v.value(0) {
		return false
	}
	v.space()
	return v.i == len(v.s)
}

func (v *jsonValidator) space() {
	for v.i < len(v.s) {
		switch v.s[v.i] {
		case ' ', '\t', '\n', '\r':
			v.i++
		default:
			return
		}
	}
}

func (v *jsonValidator) value(depth int) bool {
	if v.i >= len(v.s) {
		return false
	}
	switch v.s[v.i] {
	case '{', '[':
		return v.container(depth + 1)
	case '"':
		return v.str()
	case 't':
		return v.literal("true")
	case 'f':
		return v.literal("false")
	case 'n':
		return v.literal("null")
	default:
		return v.number()
	}
}

func (v *jsonValidator) literal(lit string) bool {
	if !strings.HasPrefix(v.s[v.i:], lit) {
		return false
	}
	v.i += len(lit)
	return true
}

// container checks an object or an array at v.i.
func (v *jsonValidator) container(depth int) bool {
	if depth > maxJSONDepth {
		return false
	}
	obj := v.s[v.i] == '{'
	end := byte(']')
	if obj {
		end = '}'
	}
	v.i++
	v.space()
	if v.i < len(v.s) && v.s[v.i] == end {
		v.i++
		return true
	}
	for {
		if obj {
			k := v.i
			if v.i >= len(v.s) || v.s[v.i] != '"' || !v.str() {
				return false
			}
			ke := v.i
			v.space()
			if v.i >= len(v.s) || v.s[v.i] != ':' {
				return false
			}
			v.i++
			v.space()
			if depth == 1 && v.top != nil {
				v.top.add(jsonString(v.s[k:ke]), v.i)
			}
		}
		if !v.value(depth) {
			return false
		}
		v.space()
		if v.i >= len(v.s) {
			return false
		}
		switch v.s[v.i] {
		case end:
			v.i++
			return true
		case ',':
			v.i++
			v.space()
		default:
			return false
		}
	}
}

// str checks a string at v.i (the opening quote).
func (v *jsonValidator) str() bool {
	s := v.s
	for i := v.i + 1; i < len(s); i++ {
		if i = plainRun(s, i); i == len(s) {
			return false
		}
		switch c := s[i]; {
		case c == '"':
			v.i = i + 1
			return true
		case c < 0x20:
			return false
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				return false
			}
			i += n - 1
		case c == '\\':
			i++
			if i >= len(s) {
				return false
			}
			switch s[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) || !isHex(s[i+3]) || !isHex(s[i+4]) {
					return false
				}
				i += 4
			default:
				return false
			}
		}
	}
	return false
}

// plainRun returns the index of the first byte of s at or after i that
// ends a run of plain string bytes: '"', '\\', a control byte (< 0x20) or
// a byte past ASCII; len(s) if there is none. Most payload bytes are plain
// string bytes, so it tests eight at a time (the borrows of the
// subtractions only ever mark a byte above one that is itself marked, so
// whether any byte is marked is exact).
func plainRun(s string, i int) int {
	const (
		ones = 0x0101010101010101
		high = 0x8080808080808080
	)
	for ; i+8 <= len(s); i += 8 {
		w := s[i : i+8]
		x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
		q, b := x^(ones*'"'), x^(ones*'\\')
		if (x|(x-ones*0x20)|(q-ones)&^q|(b-ones)&^b)&high != 0 {
			break
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			return i
		}
	}
	return i
}

// number checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at v.i.
func (v *jsonValidator) number() bool {
	s, i := v.s, v.i
	digits := func() int {
		n := 0
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	v.i = i
	return true
}

// lazyDecoder decodes values of a payload that jsonValidator accepted.
type lazyDecoder struct {
	vm *goja.Runtime
	s  string
	i  int
}

func (d *lazyDecoder) space() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// value decodes the value at d.i: objects lazily, the rest at once.
func (d *lazyDecoder) value() goja.Value {
	switch d.s[d.i] {
	case '{':
		o := &lazyObject{vm: d.vm, s: d.s, start: d.i}
		d.skip()
		return d.vm.NewDynamicObject(o)
	case '[':
		d.i++
		d.space()
		var items []any
		for d.s[d.i] != ']' {
			items = append(items, d.value())
			d.space()
			if d.s[d.i] == ',' {
				d.i++
				d.space()
			}
		}
		d.i++
		return d.vm.NewArray(items...)
	default:
		// Scalars as decodeData makes them; s is valid, so is the value.
		e := jsonDecoder{vm: d.vm, s: d.s, i: d.i}
		v, _ := e.value()
		d.i = e.i
		return v
	}
}

// skip moves past the value at d.i.
func (d *lazyDecoder) skip() {
	s := d.s
	switch s[d.i] {
	case '"':
		d.skipString()
	case '{', '[':
		depth := 0
		for {
			switch s[d.i] {
			case '"':
				d.skipString()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			d.i++
			if depth == 0 {
				return
			}
		}
	default: // number or literal
		for d.i < len(s) {
			switch s[d.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return
			}
			d.i++
		}
	}
}

func (d *lazyDecoder) skipString() {
	for i := d.i + 1; ; i++ {
		switch d.s[i] {
		case '\\':
			i++
		case '"':
			d.i = i + 1
			return
		}
	}
}

// lazyObject is a JSON object of an event payload (see decodeEventData).
// Its members are found when it is first used, and decoded when first
// read; a value once made is kept, so o.x === o.x.
type lazyObject struct {
	vm    *goja.Runtime
	s     string // the payload
	start int    // offset of the object's '{' in s

	indexed bool
	// The own properties in order: keys[i] has the value vals[i], or when
	// that is nil the JSON value at offs[i]. Keys returns keys as it is:
	// adding or deleting a property makes new slices.
	keys []string
	offs []int
	vals []goja.Value
	pos  map[string]int // key → index, for objects with many keys

	// Room for small objects, saving three allocations.
	keysBuf [8]string
	offsBuf [8]int
	valsBuf [8]goja.Value
}

// index finds the members of an object inside the payload (a top-level
// object is indexed by decodeEventData).
func (o *lazyObject) index() {
	if o.indexed {
		return
	}
	o.indexed = true
	o.keys, o.offs = o.keysBuf[:0], o.offsBuf[:0]
	d := lazyDecoder{vm: o.vm, s: o.s, i: o.start + 1}
	d.space()
	for d.s[d.i] != '}' {
		k := d.i
		d.skipString()
		ke := d.i
		d.space()
		d.i++ // ':'
		d.space()
		o.add(jsonString(d.s[k:ke]), d.i)
		d.skip()
		d.space()
		if d.s[d.i] == ',' {
			d.i++
			d.space()
		}
	}
	o.finish()
}

// add adds the member k whose value is at offset off: the last of
// duplicate keys wins, in the position of the first, as in JSON.parse.
func (o *lazyObject) add(k string, off int) {
	if i := o.find(k); i >= 0 {
		o.offs[i] = off
		return
	}
	o.keys = append(o.keys, k)
	o.offs = append(o.offs, off)
	if o.pos != nil || len(o.keys) > 8 {
		o.mapKeys()
	}
}

// finish makes room for the values and puts array indices first.
func (o *lazyObject) finish() {
	if len(o.keys) <= len(o.valsBuf) {
		o.vals = o.valsBuf[:len(o.keys)]
	} else {
		o.vals = make([]goja.Value, len(o.keys))
	}
	for i, k := range o.keys {
		if _, ok := arrayIndex(k); ok && i > 0 {
			o.order()
			return
		}
	}
}

// jsonString decodes a valid JSON string literal, quotes included.
func jsonString(lit string) string {
	if strings.IndexByte(lit, '\\') < 0 {
		return lit[1 : len(lit)-1]
	}
	e := jsonDecoder{s: lit}
	k, _ := e.str()
	return k
}

// order puts array indices first, ascending, as plain objects list keys.
func (o *lazyObject) order() {
	idx := make([]int, len(o.keys))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return compareKeys(o.keys[a], o.keys[b]) })
	keys, offs := make([]string, len(idx)), make([]int, len(idx))
	for i, j := range idx {
		keys[i], offs[i] = o.keys[j], o.offs[j]
	}
	o.keys, o.offs = keys, offs
	if o.pos != nil {
		o.mapKeys()
	}
}

// compareKeys orders array indices before other keys, ascending; other
// keys compare equal (a stable sort keeps their order).
func compareKeys(a, b string) int {
	ia, aok := arrayIndex(a)
	ib, bok := arrayIndex(b)
	switch {
	case aok && bok:
		return int(int64(ia) - int64(ib))
	case aok:
		return -1
	case bok:
		return 1
	}
	return 0
}

func (o *lazyObject) mapKeys() {
	o.pos = make(map[string]int, len(o.keys))
	for i, k := range o.keys {
		o.pos[k] = i
	}
}

// stringMember returns the member k of a fresh (unchanged) object when it
// is a JSON string, else "".
func (o *lazyObject) stringMember(k string) string {
	i := o.find(k)
	if i < 0 || o.s[o.offs[i]] != '"' {
		return ""
	}
	d := jsonDecoder{s: o.s, i: o.offs[i]}
	v, _ := d.str()
	return v
}

func (o *lazyObject) find(k string) int {
	if o.pos != nil {
		if i, ok := o.pos[k]; ok {
			return i
		}
		return -1
	}
	for i, kk := range o.keys {
		if kk == k {
			return i
		}
	}
	return -1
}

func (o *lazyObject) Get(k string) goja.Value {
	o.index()
	i := o.find(k)
	if i < 0 {
		return nil
	}
	if o.vals[i] == nil {
		d := lazyDecoder{vm: o.vm, s: o.s, i: o.offs[i]}
		o.vals[i] = d.value()
	}
	return o.vals[i]
}

func (o *lazyObject) Has(k string) bool {
	o.index()
	return o.find(k) >= 0
}

func (o *lazyObject) Set(k string, v goja.Value) bool {
	o.index()
	if i := o.find(k); i >= 0 {
		o.vals[i] = v
		return true
	}
	// A new key goes last, or among the array indices in order.
	at := len(o.keys)
	if _, ok := arrayIndex(k); ok {
		at, _ = slices.BinarySearchFunc(o.keys, k, func(e, t string) int {
			if compareKeys(e, t) < 0 {
				return -1
			}
			return 1
		})
	}
	o.keys = slices.Insert(slices.Clip(o.keys), at, k)
	o.offs = slices.Insert(slices.Clip(o.offs), at, -1)
	o.vals = slices.Insert(slices.Clip(o.vals), at, v)
	if o.pos != nil || len(o.keys) > 8 {
		o.mapKeys()
	}
	return true
}

func (o *lazyObject) Delete(k string) bool {
	o.index()
	i := o.find(k)
	if i < 0 {
		return true
	}
	o.keys = slices.Concat(o.keys[:i], o.keys[i+1:])
	o.offs = slices.Concat(o.offs[:i], o.offs[i+1:])
	o.vals = slices.Concat(o.vals[:i], o.vals[i+1:])
	if o.pos != nil {
		o.mapKeys()
	}
	return true
}

func (o *lazyObject) Keys() []string {
	o.index()
	return o.keys
}

// PayloadType returns the string value of a payload's top-level "type"
// member, as a reducer sees it in e.data: the payload must be valid UTF-8
// JSON whose top level is an object, and of duplicate members the last
// counts, as with JSON.parse. Otherwise it returns "". It checks the
// payload without decoding the rest of it.
func PayloadType(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	s := string(b)
	v := jsonValidator{s: s}
	if !v.valid() || s[v.start] != '{' {
		return ""
	}
	typ := ""
	d := lazyDecoder{s: s, i: v.start + 1}
	d.space()
	for s[d.i] != '}' {
		k := d.i
		d.skipString()
		key := s[k:d.i]
		d.space()
		d.i++ // ':'
		d.space()
		if key == `"type"` || (len(key) > 6 && jsonString(key) == "type") {
			typ = ""
			if s[d.i] == '"' {
				e := jsonDecoder{s: s, i: d.i}
				typ, _ = e.str()
			}
		}
		d.skip()
		d.space()
		if s[d.i] == ',' {
			d.i++
			d.space()
		}
	}
	return typ
}
