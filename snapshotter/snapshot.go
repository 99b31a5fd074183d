package snapshotter

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// Snapshot headers (DESIGN.md, Snapshots).
const (
	HeaderActor     = "Jetsnap-Actor"
	HeaderVersion   = "Jetsnap-Version"
	HeaderLastSeq   = "Jetsnap-Last-Seq"
	HeaderReducer   = "Jetsnap-Reducer"
	HeaderEventTime = "Jetsnap-Event-Time"
)

// ErrNoSnapshot is returned when an actor has no snapshot.
var ErrNoSnapshot = errors.New("snapshotter: no snapshot")

// Snapshot is one stored snapshot of an actor.
type Snapshot struct {
	Actor     string    // "<type>.<id>"
	State     []byte    // the reducer's state, JSON
	Version   uint64    // number of the actor's events folded
	LastSeq   uint64    // EVENTS sequence of the last folded event
	Reducer   string    // "<type>@<identity>"
	EventTime time.Time // when the last folded event was stored
	Seq       uint64    // sequence of the snapshot in the SNAPSHOTS stream
	Stored    time.Time // when the snapshot was stored
}

// Headers returns the contract headers of s (DESIGN.md, Snapshots), as
// the service's replies carry them.
func (s Snapshot) Headers() nats.Header {
	h := make(nats.Header, 7)
	h.Set(HeaderActor, s.Actor)
	h.Set(HeaderVersion, strconv.FormatUint(s.Version, 10))
	h.Set(HeaderLastSeq, strconv.FormatUint(s.LastSeq, 10))
	h.Set(HeaderReducer, s.Reducer)
	h.Set(HeaderEventTime, s.EventTime.UTC().Format(time.RFC3339Nano))
	return h
}

// header returns the headers a snapshot is published with: the contract
// headers and Nats-Msg-Id.
func (s Snapshot) header() nats.Header {
	h := s.Headers()
	h.Set(nats.MsgIdHdr, s.Actor+"@"+strconv.FormatUint(s.Version, 10))
	return h
}

// ParseHeaders reads a snapshot from the contract headers and body of a
// message, such as a service reply.
func ParseHeaders(h nats.Header, body []byte) (Snapshot, error) {
	return parseSnapshot(storedMsg{Header: h, Data: body})
}

// parseSnapshot reads a stored snapshot message.
func parseSnapshot(sm storedMsg) (Snapshot, error) {
	h := sm.Header
	s := Snapshot{
		Actor:   h.Get(HeaderActor),
		State:   sm.Data,
		Reducer: h.Get(HeaderReducer),
		Seq:     sm.Seq,
		Stored:  sm.Time,
	}
	var err error
	if s.Version, err = strconv.ParseUint(h.Get(HeaderVersion), 10, 64); err != nil {
		return s, fmt.Errorf("snapshot %s seq %d: bad %s header %q", sm.Subject, sm.Seq, HeaderVersion, h.Get(HeaderVersion))
	}
	if s.LastSeq, err = strconv.ParseUint(h.Get(HeaderLastSeq), 10, 64); err != nil {
		return s, fmt.Errorf("snapshot %s seq %d: bad %s header %q", sm.Subject, sm.Seq, HeaderLastSeq, h.Get(HeaderLastSeq))
	}
	if t := h.Get(HeaderEventTime); t != "" {
		s.EventTime, _ = time.Parse(time.RFC3339Nano, t)
	}
	return s, nil
}
