package scripting

import "testing"

func TestPayloadType(t *testing.T) {
	for _, c := range []struct{ data, want string }{
		{`{"type":"Deposited","amount":5}`, "Deposited"},
		{` {"amount":5, "type" : "With\u0064rawn"} `, "Withdrawn"},
		{`{"type":"A","type":"B"}`, "B"},
		{`{"Type":"A"}`, ""},
		{`{"type":5}`, ""},
		{`{"nested":{"type":"A"}}`, ""},
		{`{"type":"A"`, ""},
		{`["type","A"]`, ""},
		{`"type"`, ""},
		{"{\"type\":\"A\",\"x\":\"\xff\"}", ""},
		{``, ""},
		{`{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"type":"Many"}`, "Many"},
	} {
		if got := PayloadType([]byte(c.data)); got != c.want {
			t.Errorf("PayloadType(%q) = %q, want %q", c.data, got, c.want)
		}
	}
}

func BenchmarkPayloadType(b *testing.B) {
	data := []byte(`{"type":"Deposited","amount":125,"currency":"EUR","account":"account.42","note":"salary for the month of november"}`)
	for b.Loop() {
		if PayloadType(data) != "Deposited" {
			b.Fatal("wrong type")
		}
	}
}
