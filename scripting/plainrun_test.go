package scripting

import (
	"strings"
	"testing"
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
