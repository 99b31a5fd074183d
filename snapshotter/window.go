package snapshotter

// Catching up after a restart. A process new to the durable knows no actor:
// it counts each one against the streams at its first delivery, and the
// events an actor had since its last snapshot, delivered to the process
// before, must be read back for its first capture. Read actor by actor,
// that costs the server a scan of the stream between two events of the
// actor (its events lie among everyone else's) for every event. So the
// first actor found with such events makes Handle read the stream before
// its delivery once, in stream order (one scan for everyone), into a
// window; the actors counted after that while the window lasts take their
// events from it: their count, the placements among them and the start of
// their tail, so that their first capture folds from memory.
//
// The window holds every event of the subject pattern with a sequence in
// [from, to], as the stream held them when read: what reading them one
// actor at a time would have found, the stream only growing at its end.
// When it was read whole up to the first delivery that opened it, the
// deliveries after that one extend it while they stay contiguous (the
// delivery epoch it was read in) and each of them is counted: every event
// after to then came to this process, in order, and was counted, so an
// actor new at a first delivery had none between to and it. It takes up
// to half of Config.BufferBytes, counted in Stats.Buffered; each actor's
// events leave it as the actor is counted, and the rest goes once the
// deliveries stop extending it, at a reset, or after as many deliveries as
// it read events.

// window is the events of a range of the stream, by actor key.
type window struct {
	from, to uint64
	events   map[string][]storedMsg // in stream order
	bytes    map[string]int64
	gen      uint64 // s.gen when read
	epoch    uint32 // s.epoch when read: deliveries since extend it while it lasts
	extend   bool   // read whole up to the first delivery that opened it, and no delivery since went uncounted
	left     int    // deliveries until it is dropped
}

// openWindow reads the window before stream sequence at (the delivery being
// counted; firstDelivery: its first), once per reset, if the budget has
// room. The caller holds s.mu.
func (s *Snapshotter) openWindow(at uint64, firstDelivery bool) {
	gen := s.gen.Load()
	if s.windowGen == gen+1 || at <= 1 {
		return // tried since the last reset, or nothing before at
	}
	s.windowGen = gen + 1
	budget := s.cfg.BufferBytes/2 - s.stats.Buffered.Load()
	if budget <= 0 {
		return
	}
	// Handle waits for it, and the rest of the delivery's count after it.
	ctx, cancel := s.drops.bind(s.readCtx, ioTimeout/2)
	defer cancel()
	stream, err := s.js.Stream(ctx, s.cfg.EventStream)
	if err != nil {
		s.log.Debug("catch-up window not read: stream info", "err", err)
		return
	}
	state := stream.CachedInfo().State
	if state.Msgs == 0 || at <= state.FirstSeq {
		return
	}
	n := uint64(budget) / (state.Bytes/state.Msgs + bufferedOverhead)
	w := &window{from: max(state.FirstSeq, at-min(at-1, n)), events: map[string][]storedMsg{}, bytes: map[string]int64{}, gen: gen, epoch: s.epoch}
	var total int64
	var last uint64 // the last sequence read: every event up to it is in
	cut := false
	read, err := s.store.scan(ctx, s.cfg.Pattern.Filter(), w.from, at-1, 0, func(sm storedMsg) error {
		typ, id, _, ok := s.cfg.Pattern.Match(sm.Subject)
		if !ok {
			last = sm.Seq
			return nil
		}
		size := eventSize(sm.Subject, sm.Data, sm.Header)
		if total+size > budget {
			cut = true
			return errStop // the window ends before the first event it has no room for
		}
		key := typ + "." + id
		// A copy: the reply's buffer also holds the direct get's headers.
		sm.Data = append([]byte(nil), sm.Data...)
		w.events[key] = append(w.events[key], sm)
		w.bytes[key] += size
		total += size
		w.left++
		last = sm.Seq
		return nil
	})
	if err != nil {
		// What was read before the failure is whole: keep it.
		s.log.Warn("catch-up window read in part; actors whose events it lacks read them back one by one", "err", err, "to_seq", last)
	}
	if last < w.from || read == 0 {
		return
	}
	// Up to the last event read: past it, a replica that is behind, or the
	// budget, may have left events out. Read whole, and with nothing of the
	// pattern's between that event and the delivery, it reaches the
	// delivery, and the deliveries after a first one extend it.
	w.to = last
	if err == nil && !cut && firstDelivery {
		if next, err := s.store.next(ctx, s.cfg.Pattern.Filter(), last+1); err == nil && next.Seq == at {
			w.to, w.extend = at-1, true
		}
	}
	s.stats.WindowReads.Add(uint64(w.left))
	s.stats.Buffered.Add(total)
	s.window = w
	s.log.Info("catch-up window read: actors new to this process take their events since their snapshot from it",
		"from_seq", w.from, "to_seq", w.to, "events", w.left, "actors", len(w.events), "bytes", total)
}

// fromWindow returns the events of key in [from, to], where to+1 is the
// sequence of the delivery being counted, an actor's first to this
// process. ok is false when the window does not hold that range: an actor
// whose events start before it reads them back from the stream, one by
// one, as before. Either way it takes every event of key out of the
// window: the actor is counted now, and never asks again. The caller holds
// s.mu.
func (s *Snapshotter) fromWindow(key string, from, to uint64, firstDelivery bool) (evs []storedMsg, ok bool) {
	w := s.window
	if w == nil || w.gen != s.gen.Load() {
		return nil, false
	}
	evs = w.events[key]
	s.stats.Buffered.Add(-w.bytes[key])
	delete(w.events, key)
	delete(w.bytes, key)
	if from < w.from || to > w.to && !(w.extend && firstDelivery && s.epoch == w.epoch) {
		return nil, false
	}
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

// passWindow drops the window once it holds nothing more for the delivery
// at seq: the deliveries stopped extending it and seq is past its end, a
// reset made it stale, it is empty, or it has lasted as many deliveries as
// it read events. The caller holds s.mu.
func (s *Snapshotter) passWindow(seq uint64) {
	w := s.window
	w.left--
	if w.left < 0 || len(w.events) == 0 || w.gen != s.gen.Load() || s.epoch != w.epoch && seq > w.to+1 {
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
		var typ string
		if st.UsesTypes() {
			typ = eventType(s.token(sm.Subject), sm.Header, sm.Data)
		}
		if st.Due(v, t.snap, typ, false) {
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
