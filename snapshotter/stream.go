package snapshotter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Headers that a direct get adds to a stored message. They are stripped
// before an event reaches a reducer, so a fold sees the same headers whether
// the event came from the consumer or from a read of the stream.
var directGetHeaders = []string{
	"Nats-Stream", "Nats-Subject", "Nats-Sequence", "Nats-Time-Stamp",
	"Nats-Num-Pending", "Nats-Last-Sequence",
}

// requestTimeout bounds a request whose context has no deadline: a request
// lost in a server restart must not wait forever.
const requestTimeout = 10 * time.Second

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, requestTimeout)
}

// errNotFound is what a direct get answers when nothing matches.
var errNotFound = errors.New("not found")

// store reads the EVENTS and SNAPSHOTS streams with JetStream direct gets:
// one request, no consumer, answered from any replica that has the stream.
// It is safe for concurrent use.
type store struct {
	nc     *nats.Conn
	events string // EVENTS stream name
	snaps  string // SNAPSHOTS stream name

	// Replies to batch gets arrive on one wildcard subscription and are
	// routed by their last token: a subscription per request costs ten
	// times the request itself.
	muxOnce sync.Once
	muxErr  error
	prefix  string
	mu      sync.Mutex
	waiting map[string]chan *nats.Msg
	nextID  uint64
}

// open registers a reply channel for a batch of up to size messages (plus
// the end-of-batch status) and returns its reply subject.
func (s *store) open(size int) (string, chan *nats.Msg, error) {
	s.muxOnce.Do(func() {
		s.prefix = s.nc.NewRespInbox()
		s.waiting = make(map[string]chan *nats.Msg)
		_, s.muxErr = s.nc.Subscribe(s.prefix+".*", func(m *nats.Msg) {
			token := m.Subject[len(s.prefix)+1:]
			s.mu.Lock()
			ch := s.waiting[token]
			s.mu.Unlock()
			if ch != nil {
				select {
				case ch <- m:
				default: // more than the batch asked for: the reader will see a gap and fail
				}
			}
		})
	})
	if s.muxErr != nil {
		return "", nil, s.muxErr
	}
	s.mu.Lock()
	s.nextID++
	token := strconv.FormatUint(s.nextID, 36)
	ch := make(chan *nats.Msg, size+1)
	s.waiting[token] = ch
	s.mu.Unlock()
	return s.prefix + "." + token, ch, nil
}

func (s *store) close(reply string) {
	s.mu.Lock()
	delete(s.waiting, reply[len(s.prefix)+1:])
	s.mu.Unlock()
}

type storedMsg struct {
	Subject string
	Seq     uint64
	Time    time.Time
	Header  nats.Header
	Data    []byte
	pending uint64 // messages matching the filter after this one (batch gets only)
	prev    uint64 // the sequence of the message before it in the same batch reply, 0 for a batch's first (batch gets only)
}

type directGetRequest struct {
	Seq     uint64 `json:"seq,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
	Batch   int    `json:"batch,omitempty"`
}

func parseStored(m *nats.Msg) (storedMsg, error) {
	if status := m.Header.Get("Status"); status != "" {
		if status == "404" {
			return storedMsg{}, errNotFound
		}
		return storedMsg{}, fmt.Errorf("direct get: status %s %s", status, m.Header.Get("Description"))
	}
	seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
	if err != nil {
		return storedMsg{}, fmt.Errorf("direct get: bad Nats-Sequence %q", m.Header.Get("Nats-Sequence"))
	}
	ts, err := time.Parse(time.RFC3339Nano, m.Header.Get("Nats-Time-Stamp"))
	if err != nil {
		return storedMsg{}, fmt.Errorf("direct get: bad Nats-Time-Stamp %q", m.Header.Get("Nats-Time-Stamp"))
	}
	sm := storedMsg{Subject: m.Header.Get("Nats-Subject"), Seq: seq, Time: ts, Data: m.Data}
	if p := m.Header.Get("Nats-Num-Pending"); p != "" {
		sm.pending, _ = strconv.ParseUint(p, 10, 64)
	}
	if p := m.Header.Get("Nats-Last-Sequence"); p != "" {
		sm.prev, _ = strconv.ParseUint(p, 10, 64)
	}
	for _, h := range directGetHeaders {
		m.Header.Del(h)
	}
	if len(m.Header) > 0 {
		sm.Header = m.Header
	}
	return sm, nil
}

// last returns the last message on subject in the snapshot stream, or
// errNotFound.
func (s *store) last(ctx context.Context, subject string) (storedMsg, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	m, err := s.nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+s.snaps+"."+subject, nil)
	if err != nil {
		return storedMsg{}, fmt.Errorf("read last message of %s in stream %s: %w", subject, s.snaps, err)
	}
	return parseStored(m)
}

// next returns the first event matching filter with sequence >= seq, or
// errNotFound. It is one plain direct get, which, unlike a batch, does not
// make the server count pending messages.
func (s *store) next(ctx context.Context, filter string, seq uint64) (storedMsg, error) {
	req, _ := json.Marshal(directGetRequest{Seq: seq, NextFor: filter})
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	m, err := s.nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+s.events, req)
	if err != nil {
		return storedMsg{}, fmt.Errorf("read %s from stream %s: %w", filter, s.events, err)
	}
	return parseStored(m)
}

type nextResult struct {
	msg storedMsg
	err error
}

// nextAsync is next, answered on the channel returned, so that the caller
// can make another read meanwhile.
func (s *store) nextAsync(ctx context.Context, filter string, seq uint64) <-chan nextResult {
	ch := make(chan nextResult, 1)
	go func() {
		m, err := s.next(ctx, filter, seq)
		ch <- nextResult{m, err}
	}()
	return ch
}

// scan calls fn for each event in the EVENTS stream that matches filter,
// in sequence order, from sequence from up to and including upTo, at most
// limit of them (limit <= 0: no limit). It stops early when fn returns
// errStop, and returns the number of events passed to fn.
func (s *store) scan(ctx context.Context, filter string, from, upTo uint64, limit int, fn func(storedMsg) error) (int, error) {
	return s.scanIn(ctx, s.events, filter, from, upTo, limit, fn)
}

// scanIn is scan on any stream.
func (s *store) scanIn(ctx context.Context, stream, filter string, from, upTo uint64, limit int, fn func(storedMsg) error) (int, error) {
	const maxBatch = 1000
	n := 0
	for from <= upTo && (limit <= 0 || n < limit) {
		batch := maxBatch
		if limit > 0 {
			batch = min(batch, limit-n)
		}
		got, last, more, err := s.batchIn(ctx, stream, filter, from, batch, func(sm storedMsg) error {
			if sm.Seq > upTo {
				return errStop
			}
			n++
			return fn(sm)
		})
		if errors.Is(err, errStop) || (err == nil && (!more || got == 0)) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		from = last + 1
	}
	return n, nil
}

var errStop = errors.New("stop")

// batch sends one batch direct get and calls fn for each message. It returns
// how many messages arrived, the last sequence, and whether more messages
// match after it.
func (s *store) batch(ctx context.Context, filter string, from uint64, size int, fn func(storedMsg) error) (got int, last uint64, more bool, err error) {
	return s.batchIn(ctx, s.events, filter, from, size, fn)
}

func (s *store) batchIn(ctx context.Context, stream, filter string, from uint64, size int, fn func(storedMsg) error) (got int, last uint64, more bool, err error) {
	req, _ := json.Marshal(directGetRequest{Seq: from, NextFor: filter, Batch: size})
	inbox, replies, err := s.open(size)
	if err != nil {
		return 0, 0, false, fmt.Errorf("read %s from stream %s: %w", filter, stream, err)
	}
	defer s.close(inbox)
	if err := s.nc.PublishRequest("$JS.API.DIRECT.GET."+stream, inbox, req); err != nil {
		return 0, 0, false, fmt.Errorf("read %s from stream %s: %w", filter, stream, err)
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	var stopErr error
	for {
		var m *nats.Msg
		select {
		case m = <-replies:
		case <-ctx.Done():
			return got, last, false, fmt.Errorf("read %s from stream %s: %w", filter, stream, ctx.Err())
		}
		switch m.Header.Get("Status") {
		case "204": // end of batch
			if l := m.Header.Get("Nats-Last-Sequence"); l != "" && l != strconv.FormatUint(last, 10) {
				// It names the last reply sent: that one went missing.
				return got, last, false, fmt.Errorf("read %s from stream %s: a reply of the batch was lost (the batch ended at seq %s, the last one received is %d)", filter, stream, l, last)
			}
			p, _ := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			return got, last, p > 0, stopErr
		case "404":
			if got == 0 {
				return 0, 0, false, stopErr
			}
		}
		sm, err := parseStored(m)
		if err != nil {
			return got, last, false, fmt.Errorf("read %s from stream %s: %w", filter, stream, err)
		}
		if sm.prev != 0 && sm.prev != last {
			// Each reply names the one sent before it: one went missing.
			return got, last, false, fmt.Errorf("read %s from stream %s: a reply of the batch was lost (seq %d follows seq %d, the last one received is %d)", filter, stream, sm.Seq, sm.prev, last)
		}
		got++
		last = sm.Seq
		if stopErr == nil {
			stopErr = fn(sm)
		}
	}
}

// countFrom returns how many events matching filter have sequence >= seq.
func (s *store) countFrom(ctx context.Context, filter string, seq uint64) (uint64, error) {
	var count uint64
	_, _, _, err := s.batch(ctx, filter, seq, 1, func(sm storedMsg) error {
		count = sm.pending + 1
		return nil
	})
	return count, err
}

// count returns how many events matching filter have a sequence in
// [from, to]. The stream only grows at its end, so two reads of the count
// after to that agree prove that the count from from was read at a moment
// consistent with them.
func (s *store) count(ctx context.Context, filter string, from, to uint64) (uint64, error) {
	if to < from {
		return 0, nil
	}
	after, err := s.countFrom(ctx, filter, to+1)
	if err != nil {
		return 0, err
	}
	for range 8 {
		total, err := s.countFrom(ctx, filter, from)
		if err != nil {
			return 0, err
		}
		again, err := s.countFrom(ctx, filter, to+1)
		if err != nil {
			return 0, err
		}
		if again == after && total >= after {
			return total - after, nil
		}
		after = again
	}
	return 0, fmt.Errorf("count events of %s in stream %s: the count kept changing; retry", filter, s.events)
}
