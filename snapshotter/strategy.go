package snapshotter

import (
	"fmt"
	"slices"
	"time"
)

// Strategy kinds (JETSNAP_STRATEGY).
const (
	KindInterval = "interval"
	KindVersion  = "version"
	KindHybrid   = "hybrid"
)

// Strategy decides when an actor is due for a snapshot (DESIGN.md, Strategy).
// With v the actor's version after an event, s the version of its last
// snapshot and n = v - s:
//
//	interval: n >= Every
//	version:  v/Every > s/Every
//	hybrid:   n >= MaxEvents, or n >= MinEvents and one of
//	          v/Every > s/Every; the event's type is in OnTypes;
//	          MaxAge > 0 and the oldest event not in a snapshot is MaxAge old.
//
// A Strategy is a value: safe for concurrent use.
type Strategy struct {
	Kind      string
	Every     uint64
	MinEvents uint64
	MaxEvents uint64
	MaxAge    time.Duration
	OnTypes   []string
}

// Validate checks the numbers against each other.
func (st Strategy) Validate() error {
	switch st.Kind {
	case KindInterval, KindVersion, KindHybrid:
	default:
		return fmt.Errorf("snapshotter: strategy %q is unknown: use interval, version or hybrid", st.Kind)
	}
	if st.Every == 0 {
		return fmt.Errorf("snapshotter: Every must be at least 1")
	}
	if st.Kind == KindHybrid && (st.MinEvents == 0 || st.MaxEvents < st.MinEvents) {
		return fmt.Errorf("snapshotter: hybrid needs 1 <= MinEvents (%d) <= MaxEvents (%d)", st.MinEvents, st.MaxEvents)
	}
	return nil
}

// UsesTypes reports whether placement depends on event types, so that the
// type of every event must be known.
func (st Strategy) UsesTypes() bool { return st.Kind == KindHybrid && len(st.OnTypes) > 0 }

// UsesAge reports whether MaxAge can make an actor due.
func (st Strategy) UsesAge() bool { return st.Kind == KindHybrid && st.MaxAge > 0 }

// Due reports whether an actor at version v whose last snapshot is at s is
// due after an event of type eventType. aged tells whether the oldest event
// not yet in a snapshot is MaxAge old or more.
func (st Strategy) Due(v, s uint64, eventType string, aged bool) bool {
	if v <= s {
		return false
	}
	n := v - s
	switch st.Kind {
	case KindInterval:
		return n >= st.Every
	case KindVersion:
		return v/st.Every > s/st.Every
	}
	if n >= st.MaxEvents {
		return true
	}
	if n < st.MinEvents {
		return false
	}
	return v/st.Every > s/st.Every ||
		(len(st.OnTypes) > 0 && slices.Contains(st.OnTypes, eventType)) ||
		(aged && st.MaxAge > 0)
}

// Next returns the first version after s that is due on counts alone,
// leaving out OnTypes and MaxAge. When UsesTypes is false, the placements of
// an actor are exactly Next(0), Next(Next(0)), ... (plus MaxAge captures),
// which lets a tally skip over many events without reading them.
func (st Strategy) Next(s uint64) uint64 {
	boundary := (s/st.Every + 1) * st.Every
	switch st.Kind {
	case KindInterval:
		return s + st.Every
	case KindVersion:
		return boundary
	}
	return min(s+st.MaxEvents, max(s+st.MinEvents, boundary))
}
