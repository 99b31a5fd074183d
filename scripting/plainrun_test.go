package scripting

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// plainRun must stop at exactly the first '"', '\\', control byte or byte
// past ASCII, wherever it lies in or across its eight-byte words, and
// whatever the byte after it (the borrows of its subtractions run upward).
func TestPlainRun(t *testing.T) {
	special := func(c byte) bool { return c == '"' || c == '\\' || c < 0x20 || c >= 0x80 }
	for c := range 256 {
		for _, after := range []byte{'x', ' ', 0x1f, 0x21, '"' + 1, '\\' + 1, 0x7f, 0x80} {
			for n := range 20 {
				for from := range min(n+1, 4) {
					b := []byte(strings.Repeat("x", n) + string([]byte{byte(c), after}) + strings.Repeat("y", 9))
					want := n
					switch {
					case special(byte(c)):
					case special(after):
						want = n + 1
					default:
						want = len(b)
					}
					if got := plainRun(string(b), from); got != want {
						t.Fatalf("plainRun(%q, %d) = %d, want %d", b, from, got, want)
					}
				}
			}
		}
	}
	if got := plainRun("", 0); got != 0 {
		t.Fatalf("plainRun of nothing = %d", got)
	}
}

// TestValidatorMatchesJSONValid: the payload check accepts exactly what
// utf8.Valid and json.Valid together accept, on generated documents whose
// strings are long runs of plain bytes broken by escapes, control bytes,
// quotes and valid or broken UTF-8, some cut short.
func TestValidatorMatchesJSONValid(t *testing.T) {
	pieces := []string{`\"`, `\\`, `\/`, `\n`, `\u0041`, `\ud800`, `\uZZ`, `\u12`, `\x`, "\x00", "\x1f", "\x7f", `"`,
		"\xc3\xa9", "\xc3", "\xe2\x82\xac", "\xed\xa0\x80", "\xf0\x9f\x98\x80", "\xf4\x90\x80\x80", "\xff", "\x80"}
	r := rand.New(rand.NewPCG(3, 4))
	str := func() string {
		var b strings.Builder
		for range r.IntN(12) {
			if r.IntN(3) == 0 {
				b.WriteString(pieces[r.IntN(len(pieces))])
				continue
			}
			for range r.IntN(20) {
				b.WriteByte(byte(0x20 + r.IntN(0x60)))
			}
		}
		return b.String()
	}
	valid := 0
	for range 200_000 {
		var doc string
		switch r.IntN(3) {
		case 0:
			doc = `"` + str() + `"`
		case 1:
			doc = `{"` + str() + `":"` + str() + `","type":"` + str() + `"}`
		default:
			doc = `["` + str() + `", "` + str() + `"]`
		}
		if r.IntN(5) == 0 {
			doc = doc[:r.IntN(len(doc))]
		}
		want := utf8.ValidString(doc) && json.Valid([]byte(doc))
		if v := (jsonValidator{s: doc}); v.valid() != want {
			t.Fatalf("validator(%q) = %v, json.Valid says %v", doc, !want, want)
		}
		if want {
			valid++
		}
	}
	if valid < 10_000 {
		t.Fatalf("only %d valid documents generated: the test checks too little", valid)
	}
}
