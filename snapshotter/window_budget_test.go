package snapshotter

import (
	"log/slog"
	"testing"

	"github.com/jetsnap/jetsnap/scripting"
)

// TestWindowBudget: the catch-up window's bytes are in Stats.Buffered until
// each actor takes its events (whether or not the window holds its range)
// or the window goes; it holds a range past its end only for a first
// delivery in the epoch it was read in, if it reached its first delivery
// and every delivery since was counted; and passWindow drops it once the
// deliveries stopped extending it and passed its end, or after as many
// deliveries as it read events.
func TestWindowBudget(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	scripts, err := scripting.Load(t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Pattern: MustPattern("events.{type}.{id}"), Strategy: Strategy{Kind: KindInterval, Every: 100}, BufferBytes: 1 << 20},
		nil, nil, scripts, log)
	if err != nil {
		t.Fatal(err)
	}
	ev := func(id string, seq uint64) storedMsg {
		return storedMsg{Subject: "events.account." + id, Seq: seq, Data: []byte(`{"type":"Deposited","amount":1}`)}
	}
	open := func(left int) {
		w := &window{from: 5, to: 40, events: map[string][]storedMsg{}, bytes: map[string]int64{}, gen: s.gen.Load(), epoch: s.epoch, left: left, extend: true}
		for _, sm := range []storedMsg{ev("1", 10), ev("2", 15), ev("1", 20), ev("2", 25), ev("1", 30)} {
			key := "account." + sm.Subject[len("events.account."):]
			w.events[key] = append(w.events[key], sm)
			size := eventSize(sm.Subject, sm.Data, sm.Header)
			w.bytes[key] += size
			s.stats.Buffered.Add(size)
		}
		s.window = w
	}
	buffered := func(want int64, when string) {
		t.Helper()
		if got := s.stats.Buffered.Load(); got != want {
			t.Errorf("%s: %d bytes buffered, want %d", when, got, want)
		}
	}
	size := eventSize(ev("1", 10).Subject, ev("1", 10).Data, nil)

	open(5)
	buffered(5*size, "window read")
	if evs, ok := s.fromWindow("account.1", 20, 29, true); !ok || len(evs) != 1 || evs[0].Seq != 20 {
		t.Errorf("account.1 in [20, 29]: %v, %v; want seq 20", evs, ok)
	}
	buffered(2*size, "account.1 taken")
	if _, ok := s.fromWindow("account.2", 3, 30, true); ok {
		t.Error("account.2 from seq 3, before the window, was held")
	}
	buffered(0, "account.2 asked for a range the window does not hold")
	s.dropWindow()
	buffered(0, "window dropped")

	// Past its end: for a first delivery in the epoch it was read in.
	open(5)
	if _, ok := s.fromWindow("account.1", 10, 99, false); ok {
		t.Error("a range past the window's end was held for a redelivery")
	}
	if evs, ok := s.fromWindow("account.2", 15, 99, true); !ok || len(evs) != 2 {
		t.Errorf("account.2 in [15, 99] at a first delivery: %v, %v; want its 2 events", evs, ok)
	}
	s.dropWindow()
	open(5)
	s.epoch++
	if _, ok := s.fromWindow("account.1", 10, 99, true); ok {
		t.Error("a range past the window's end was held after the deliveries stopped being contiguous")
	}
	// Not read whole up to its first delivery (cut by the budget, a read
	// that failed), or a delivery since went uncounted: not extended.
	s.dropWindow()
	open(5)
	s.window.extend = false
	if _, ok := s.fromWindow("account.1", 10, 99, true); ok {
		t.Error("a range past the end of a window that does not reach its delivery was held")
	}

	// passWindow: kept while the deliveries extend it, dropped past its end
	// once they no longer do, and after as many deliveries as it read events.
	s.dropWindow()
	open(5)
	s.passWindow(100)
	if s.window == nil {
		t.Fatal("dropped at a delivery past its end in its epoch")
	}
	s.epoch++
	s.passWindow(41)
	if s.window == nil {
		t.Fatal("dropped at the delivery right after its end")
	}
	s.passWindow(42)
	if s.window != nil {
		t.Error("kept past its end once the deliveries stopped being contiguous")
	}
	buffered(0, "window passed")
	open(2)
	for range 3 {
		s.passWindow(10)
	}
	if s.window != nil {
		t.Error("kept after as many deliveries as it read events")
	}
	buffered(0, "window outlived")
}
