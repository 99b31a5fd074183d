package snapshotter

import (
	"context"
	"errors"
)

// Catching up after a restart. A process new to the durable knows no actor:
// it counts each one against the streams at its first delivery, and the
// events an actor had since its last snapshot, delivered to the process
// before, must be read back for its first capture. Read actor by actor,
// that costs the server a scan of the stream between two events of the
// actor (its events lie among everyone else's) for every event: after a
// restart, about as many events read back as there are actors times the
// events between snapshots, each costing tens of microseconds of the
// server's time. So the first actor found with such events makes Handle read
// the stream around them once, in stream order (one scan for everyone),
// into a window; the actors counted after that while the window lasts take
// their events from it: their count, the placements among them and the
// start of their tail, so that their first capture folds from memory.
//
// The window holds every event of the subject pattern with a sequence in
// [from, to], as the stream held them when read: what reading them one
// actor at a time would have found, the stream only growing at its end. It
// takes up to half of Config.BufferBytes, counted in Stats.Buffered; each
// actor's events leave it as the actor is counted, and the rest goes once
// deliveries pass its end, or at a reset.

// window is the events of a range of the stream, by actor key.
type window struct {
	from, to uint64
	events   map[string][]storedMsg // in stream order
	bytes    map[string]int64
	gen      uint64 // s.gen when read
}

// windowBack is the part of a window before the delivery that opens it:
// most of it, as that is where the events to read back are; the rest covers
// the deliveries of the actors' first events after it.
const windowBack = 0.75

// storedSize is what an event read from the stream costs in a window or a
// tail, as buffer counts it.
func storedSize(sm storedMsg) int64 {
	size := int64(len(sm.Data)+len(sm.Subject)) + bufferedOverhead
	for k, vs := range sm.Header {
		size += int64(len(k))
		for _, v := range vs {
			size += int64(len(v))
		}
	}
	return size
}

// openWindow reads a window around stream sequence at, once per reset, if
// the budget has room. The caller holds s.mu.
func (s *Snapshotter) openWindow(ctx context.Context, at uint64) {
	gen := s.gen.Load()
	if s.windowGen == gen+1 {
		return // tried since the last reset
	}
	s.windowGen = gen + 1
	budget := s.cfg.BufferBytes/2 - s.stats.Buffered.Load()
	stream, err := s.js.Stream(ctx, s.cfg.EventStream)
	if err != nil {
		s.log.Debug("catch-up window not read: stream info", "err", err)
		return
	}
	state := stream.CachedInfo().State
	if state.Msgs == 0 || budget <= 0 {
		return
	}
	n := uint64(budget) / (state.Bytes/state.Msgs + bufferedOverhead)
	back := uint64(float64(n) * windowBack)
	from := max(state.FirstSeq, at-min(at-1, back))
	to := min(state.LastSeq, at+(n-back))
	if to < from {
		return
	}
	w := &window{from: from, to: to, events: map[string][]storedMsg{}, bytes: map[string]int64{}, gen: gen}
	var total int64
	read, err := s.store.scan(ctx, s.cfg.Pattern.Filter(), from, to, 0, func(sm storedMsg) error {
		size := storedSize(sm)
		if total+size > budget {
			w.to = sm.Seq - 1 // the window ends before the first event it has no room for
			return errStop
		}
		typ, id, _, ok := s.cfg.Pattern.Match(sm.Subject)
		if !ok {
			return nil
		}
		key := typ + "." + id
		w.events[key] = append(w.events[key], sm)
		w.bytes[key] += size
		total += size
		return nil
	})
	s.stats.WindowReads.Add(uint64(read))
	if err != nil && !errors.Is(err, errStop) {
		s.log.Warn("catch-up window not read; actors new to this process read their events back one by one", "err", err)
		return
	}
	if w.to < w.from {
		return
	}
	s.stats.Buffered.Add(total)
	s.window = w
	s.log.Info("catch-up window read: actors new to this process take their events from it",
		"from_seq", w.from, "to_seq", w.to, "events", read, "actors", len(w.events), "bytes", total)
}

// fromWindow returns the events of key in [from, to] if the window holds
// that range, and takes every event of key out of the window. ok is false
// when it does not hold the range. The caller holds s.mu.
func (s *Snapshotter) fromWindow(key string, from, to uint64) (evs []storedMsg, ok bool) {
	w := s.window
	if w == nil || w.gen != s.gen.Load() || from < w.from || to > w.to {
		return nil, false
	}
	evs = w.events[key]
	s.stats.Buffered.Add(-w.bytes[key])
	delete(w.events, key)
	delete(w.bytes, key)
	i := 0
	for i < len(evs) && evs[i].Seq < from {
		i++
	}
	j := i
	for j < len(evs) && evs[j].Seq <= to {
		j++
	}
	return evs[i:j], true
}

// passWindow drops the window once deliveries are past its end (an actor
// first delivered there has events after it) or a reset made it stale. The
// caller holds s.mu.
func (s *Snapshotter) passWindow(seq uint64) {
	if w := s.window; w != nil && (seq > w.to+1 || w.gen != s.gen.Load()) {
		s.dropWindow()
	}
}

// dropWindow gives the window's bytes back to the budget. The caller holds
// s.mu.
func (s *Snapshotter) dropWindow() {
	if w := s.window; w != nil {
		for _, b := range w.bytes {
			s.stats.Buffered.Add(-b)
		}
		s.window = nil
	}
}

// countWindowed counts ev, the first delivery of an actor new to this
// process, whose events since its last snapshot, evs (those in
// (t.lastSeq, ev.seq)), came from the window: as resync does with a read of
// the stream, it queues the captures of the placements among them not yet
// published, and it starts the actor's tail with the events after the last
// placement. The caller holds s.mu.
func (s *Snapshotter) countWindowed(key string, t *tally, ev event, evs []storedMsg) {
	st := &s.cfg.Strategy
	start := 0 // evs[start:] come after the last placement
	for i, sm := range evs {
		v := t.version + uint64(i) + 1
		if st.Due(v, t.snap, eventType(s.token(sm.Subject), sm.Header, sm.Data), false) {
			t.snap, start = v, i+1
			s.queue(job{key: key, typ: ev.typ, id: ev.id, version: v, seq: sm.Seq})
		}
	}
	base := t.version
	t.tail = emptyTail
	for i, sm := range evs[start:] {
		t.version, t.lastSeq = base+uint64(start+i)+1, sm.Seq
		s.bufferStored(t, sm, ev.pending)
	}
	t.version, t.lastSeq = base+uint64(len(evs))+1, ev.seq
	s.buffer(t, ev)
}
