package scripting

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/dop251/goja"
)

// decodeData converts an event payload to the JS value reducers see:
// valid UTF-8 JSON gives what JSON.parse gives (plain objects, arrays,
// numbers as float64, "__proto__" as an own property, the last of
// duplicate keys), anything else (invalid JSON, invalid UTF-8, empty) the
// payload as a string, invalid bytes replaced by U+FFFD.
//
// It decodes in Go, in one pass that also checks the syntax exactly as
// json.Valid does (nesting deeper than 10000 is invalid), about ten times
// faster than goja's JSON.parse, which reads through encoding/json's
// tokenizer. One deliberate difference: numbers beyond float64 range
// (1e400) give ±Infinity, as JSON.parse does in browsers, where goja's
// JSON.parse throws.
func decodeData(vm *goja.Runtime, b []byte) goja.Value {
	if v, ok := decodeJSON(vm, b); ok {
		return v
	}
	return vm.ToValue(strings.ToValidUTF8(string(b), "\uFFFD"))
}

// decodeJSON decodes b as JSON.parse would; ok is false if b is not valid
// UTF-8 JSON.
func decodeJSON(vm *goja.Runtime, b []byte) (v goja.Value, ok bool) {
	if len(b) == 0 || !utf8.Valid(b) {
		return nil, false
	}
	d := jsonDecoder{vm: vm, s: string(b)}
	return d.document()
}

// maxJSONDepth is json.Valid's nesting limit: deeper documents are invalid.
const maxJSONDepth = 10000

// jsonDecoder decodes and validates one JSON document into goja values.
// Strings and keys are substrings of s, the payload converted once.
type jsonDecoder struct {
	vm    *goja.Runtime
	s     string
	i     int
	depth int
	items []any // scratch for array elements, shared by nested arrays
}

// document decodes the whole input; ok is false if it is not valid JSON.
func (d *jsonDecoder) document() (v goja.Value, ok bool) {
	d.space()
	if v, ok = d.value(); !ok {
		return nil, false
	}
	d.space()
	return v, d.i == len(d.s)
}

func (d *jsonDecoder) space() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// value decodes the value at d.i (no leading space).
func (d *jsonDecoder) value() (goja.Value, bool) {
	if d.i >= len(d.s) {
		return nil, false
	}
	switch c := d.s[d.i]; c {
	case '{':
		return d.object()
	case '[':
		return d.array()
	case '"':
		s, ok := d.str()
		if !ok {
			return nil, false
		}
		return d.vm.ToValue(s), true
	case 't':
		return d.vm.ToValue(true), d.literal("true")
	case 'f':
		return d.vm.ToValue(false), d.literal("false")
	case 'n':
		return goja.Null(), d.literal("null")
	default:
		return d.number()
	}
}

func (d *jsonDecoder) literal(lit string) bool {
	if !strings.HasPrefix(d.s[d.i:], lit) {
		return false
	}
	d.i += len(lit)
	return true
}

func (d *jsonDecoder) object() (goja.Value, bool) {
	if d.depth++; d.depth > maxJSONDepth {
		return nil, false
	}
	defer func() { d.depth-- }()
	d.i++ // '{'
	o := d.vm.NewObject()
	d.space()
	if d.i < len(d.s) && d.s[d.i] == '}' {
		d.i++
		return o, true
	}
	for {
		if d.i >= len(d.s) || d.s[d.i] != '"' {
			return nil, false
		}
		k, ok := d.str()
		if !ok {
			return nil, false
		}
		d.space()
		if d.i >= len(d.s) || d.s[d.i] != ':' {
			return nil, false
		}
		d.i++
		d.space()
		v, ok := d.value()
		if !ok {
			return nil, false
		}
		// Define, not set: like JSON.parse, "__proto__" becomes an own
		// property and setters a script put on Object.prototype do not run.
		_ = o.DefineDataProperty(k, v, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE)
		d.space()
		if d.i >= len(d.s) {
			return nil, false
		}
		switch d.s[d.i] {
		case '}':
			d.i++
			return o, true
		case ',':
			d.i++
			d.space()
		default:
			return nil, false
		}
	}
}

func (d *jsonDecoder) array() (goja.Value, bool) {
	if d.depth++; d.depth > maxJSONDepth {
		return nil, false
	}
	defer func() { d.depth-- }()
	d.i++ // '['
	d.space()
	if d.i < len(d.s) && d.s[d.i] == ']' {
		d.i++
		return d.vm.NewArray(), true
	}
	base := len(d.items)
	defer func() {
		clear(d.items[base:])
		d.items = d.items[:base]
	}()
	for {
		v, ok := d.value()
		if !ok {
			return nil, false
		}
		d.items = append(d.items, v)
		d.space()
		if d.i >= len(d.s) {
			return nil, false
		}
		switch d.s[d.i] {
		case ']':
			d.i++
			return d.vm.NewArray(d.items[base:]...), true
		case ',':
			d.i++
			d.space()
		default:
			return nil, false
		}
	}
}

// str reads a string at d.i (the opening quote).
func (d *jsonDecoder) str() (string, bool) {
	start := d.i + 1
	escaped := false
	for i := start; i < len(d.s); i++ {
		if i = plainRun(d.s, i); i == len(d.s) {
			break
		}
		switch c := d.s[i]; {
		case c == '"':
			d.i = i + 1
			if !escaped {
				return d.s[start:i], true
			}
			// Let encoding/json unescape (as goja's JSON.parse does: lone
			// surrogates become U+FFFD).
			var s string
			if json.Unmarshal([]byte(d.s[start-1:d.i]), &s) != nil {
				return "", false
			}
			return s, true
		case c < 0x20:
			return "", false
		case c == '\\':
			escaped = true
			i++
			if i >= len(d.s) {
				return "", false
			}
			switch d.s[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(d.s) {
					return "", false
				}
				for _, h := range []byte(d.s[i+1 : i+5]) {
					if !isHex(h) {
						return "", false
					}
				}
				i += 4
			default:
				return "", false
			}
		}
	}
	return "", false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// number reads a number with JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *jsonDecoder) number() (goja.Value, bool) {
	s, start := d.s, d.i
	i := start
	neg := i < len(s) && s[i] == '-'
	if neg {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	intStart := i
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return nil, false
	}
	intEnd := i
	simple := true
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return nil, false
		}
		simple = false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return nil, false
		}
		simple = false
	}
	d.i = i
	// Integers of up to 15 digits are exact in float64; -0 is not an int.
	if simple && intEnd-intStart <= 15 && !(neg && s[intStart] == '0') {
		var n int64
		for _, c := range []byte(s[intStart:intEnd]) {
			n = n*10 + int64(c-'0')
		}
		if neg {
			n = -n
		}
		return d.vm.ToValue(n), true
	}
	// Out of range gives ±Inf with an error; the syntax is checked.
	f, _ := strconv.ParseFloat(s[start:i], 64)
	return d.vm.ToValue(f), true
}
