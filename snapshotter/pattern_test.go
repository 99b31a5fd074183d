package snapshotter

import "testing"

func TestPatternMatch(t *testing.T) {
	cases := []struct {
		pattern, subject string
		typ, id, event   string
		ok               bool
	}{
		{"events.{type}.{id}", "events.account.42", "account", "42", "", true},
		{"events.{type}.{id}", "events.account", "", "", "", false},
		{"events.{type}.{id}", "events.account.42.x", "", "", "", false},
		{"events.{type}.{id}", "other.account.42", "", "", "", false},
		{"events.{type}.{id}", "events.account.", "", "", "", false},
		{"events.{type}.{id}", "events..42", "", "", "", false},
		{"app.{type}.{id}.{event}", "app.cart.7.ItemAdded", "cart", "7", "ItemAdded", true},
		{"{type}.x.{id}.>", "order.x.9.a.b", "order", "9", "", true},
		{"{type}.x.{id}.>", "order.x.9", "", "", "", false},
		{"events.{id}.{type}", "events.42.account", "account", "42", "", true},
		{"events.{type}.{id}", "events.acc-ount_1.id:42@x", "acc-ount_1", "id:42@x", "", true},
	}
	for _, c := range cases {
		t.Run(c.pattern+" "+c.subject, func(t *testing.T) {
			p := MustPattern(c.pattern)
			typ, id, event, ok := p.Match(c.subject)
			if ok != c.ok || typ != c.typ || id != c.id || event != c.event {
				t.Fatalf("Match(%q) = %q %q %q %v, want %q %q %q %v", c.subject, typ, id, event, ok, c.typ, c.id, c.event, c.ok)
			}
		})
	}
}

func TestPatternSubjects(t *testing.T) {
	p := MustPattern("app.{type}.{id}.{event}")
	if got := p.Filter(); got != "app.*.*.*" {
		t.Errorf("Filter = %q", got)
	}
	if got := p.ActorFilter("cart", "7"); got != "app.cart.7.*" {
		t.Errorf("ActorFilter = %q", got)
	}
	if got := p.Subject("cart", "7", "ItemAdded"); got != "app.cart.7.ItemAdded" {
		t.Errorf("Subject = %q", got)
	}
	if got := MustPattern("events.{type}.{id}.>").Filter(); got != "events.*.*.>" {
		t.Errorf("Filter with > = %q", got)
	}
}

func TestParsePatternErrors(t *testing.T) {
	for _, bad := range []string{
		"", "events.{type}", "events.{id}", "events.{type}.{id}.{type}", "events.>.{type}.{id}",
		"events.{type}.{id}x", "events..{type}.{id}", "events.{type}.{id}.{event}.{event}", "ev ents.{type}.{id}",
	} {
		if _, err := ParsePattern(bad); err == nil {
			t.Errorf("ParsePattern(%q) = nil error", bad)
		}
	}
}
