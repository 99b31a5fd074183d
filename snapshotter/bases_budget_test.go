package snapshotter

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/jetsnap/jetsnap/scripting"
)

// TestBasesBudget: kept bases take at most a quarter of BufferBytes,
// counted in Buffered with the tails; past it a new base replaces an old
// one, and taking a base gives its bytes back, as does a reset, which drops
// them all. A base is only taken in the reset generation it was kept in.
func TestBasesBudget(t *testing.T) {
	const budget = 40_000
	log := slog.New(slog.DiscardHandler)
	scripts, err := scripting.Load(t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Pattern: MustPattern("events.{type}.{id}"), Strategy: Strategy{Kind: KindInterval, Every: 2}, BufferBytes: budget},
		nil, nil, scripts, log)
	if err != nil {
		t.Fatal(err)
	}
	snap := func(i int) Snapshot {
		return Snapshot{Actor: fmt.Sprint("account.", i), Version: 2, State: make([]byte, 1000)}
	}
	kept := func() (n int64) {
		for k, v := range s.bases.m {
			n += baseSize(k, v.snap)
		}
		return n
	}
	size := baseSize("account.10", snap(10))
	for i := range 100 {
		s.keepBase(fmt.Sprint("account.", i), snap(i), 0)
		if b := s.stats.Buffered.Load(); b > budget/4 || b != s.bases.bytes || b != kept() {
			t.Fatalf("after %d bases: %d bytes buffered, %d kept in %d bases; want at most %d", i+1, b, s.bases.bytes, len(s.bases.m), budget/4)
		}
	}
	if n := len(s.bases.m); n != int(budget/4/size) {
		t.Errorf("%d bases kept, want %d (a quarter of %d bytes, %d bytes each)", n, budget/4/size, budget, size)
	}
	if _, ok := s.takeBase("account.99", 0); !ok {
		t.Fatal("the last base kept is gone")
	}
	if _, ok := s.takeBase("account.99", 0); ok {
		t.Error("a base taken twice")
	}
	// A base kept before a reset (by a capture or a fold made ahead still
	// running at the reset) is not taken after it.
	s.keepBase("account.98", snap(98), 0)
	if _, ok := s.takeBase("account.98", 1); ok {
		t.Error("a base kept in reset generation 0 taken in generation 1")
	}
	if _, ok := s.bases.m["account.98"]; ok {
		t.Error("a base of an older reset generation still kept after a take")
	}
	if b := s.stats.Buffered.Load(); b != s.bases.bytes || b != kept() {
		t.Errorf("after a take: %d bytes buffered, %d kept in %d bases", b, s.bases.bytes, len(s.bases.m))
	}
	s.stats.Buffered.Add(budget - s.stats.Buffered.Load()) // tails took the rest
	s.keepBase("account.100", snap(100), 0)
	if b := s.stats.Buffered.Load(); b > budget {
		t.Errorf("%d bytes buffered, over the budget of %d", b, budget)
	}
	// The tails take the whole budget: the bases kept stay, the new one is
	// not kept.
	tails := int64(budget)
	s.stats.Buffered.Store(tails + s.bases.bytes)
	n := len(s.bases.m)
	s.keepBase("account.101", snap(101), 0)
	if _, ok := s.bases.m["account.101"]; ok || len(s.bases.m) != n {
		t.Errorf("with the tails taking the budget: %d bases kept (account.101 among them: %v), want the %d before", len(s.bases.m), ok, n)
	}
	s.mu.Lock()
	s.resetLocked("test")
	s.mu.Unlock()
	if b := s.stats.Buffered.Load(); len(s.bases.m) != 0 || s.bases.bytes != 0 || b != tails {
		t.Errorf("after a reset: %d bases of %d bytes kept, %d buffered; want none and %d", len(s.bases.m), s.bases.bytes, b, tails)
	}
}
