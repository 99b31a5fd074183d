// Package scripting loads, compiles, sandboxes, runs and hot-reloads the
// JavaScript reducers of jetsnap (DESIGN.md, "Reducers").
//
// A reducer file scripts/<type>.js is compiled once into a [Script], which is
// immutable and may be shared by any number of goroutines. A [Registry] holds
// the current Script of every actor type in a directory and reloads edited
// files. A [Runtime] folds events with a Script; it is confined to one
// goroutine, so callers keep one Runtime per worker.
//
// scripting knows nothing of NATS: events arrive as [Event] values and
// states leave as JSON.
package scripting

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Event is one event as a reducer sees it. scripting knows nothing of NATS.
type Event struct {
	Actor string // actor key "<type>.<id>"
	Type  string // event type ("" if none)
	// TypeFromData, with Type "", says the type is the payload's: the
	// top-level "type" string of a JSON object payload (see PayloadType),
	// found in the same pass that decodes the payload for JS.
	TypeFromData bool
	Subject      string
	// Data is the raw payload. Valid UTF-8 JSON reaches JS as the value
	// JSON.parse gives (object, array, number, ...), its objects made
	// lazily (see decodeEventData); anything else (invalid JSON, invalid
	// UTF-8, empty) reaches JS as a string.
	Data    []byte
	Seq     uint64              // EVENTS stream sequence
	Version uint64              // actor's version after this event (1-based)
	Time    time.Time           // when JetStream stored it
	Headers map[string][]string // message headers; JS sees the first value of each
}

// Limits bound one fold. Zero fields take the defaults below.
type Limits struct {
	// Timeout bounds one Fold call (JETSNAP_SCRIPT_TIMEOUT). Default 2s.
	Timeout time.Duration
	// MaxStateBytes bounds the JSON of the folded state
	// (JETSNAP_MAX_STATE_BYTES). Default 900 KiB.
	MaxStateBytes int
	// MaxCallStack bounds the JS call depth. Default 1000.
	MaxCallStack int
	// MaxHeapBytes bounds the process heap while folds run: above it the
	// fold that has run longest is interrupted with ErrHeapLimit (see
	// heapwatch.go). The heap is the whole process's, so this is a bound
	// on jetsnap's memory, not a reducer's share. Default 2 GiB.
	MaxHeapBytes int
}

// Default limits.
const (
	DefaultTimeout       = 2 * time.Second
	DefaultMaxStateBytes = 900 * 1024
	DefaultMaxCallStack  = 1000
	DefaultMaxHeapBytes  = 2 << 30
)

func (l Limits) withDefaults() Limits {
	if l.Timeout <= 0 {
		l.Timeout = DefaultTimeout
	}
	if l.MaxStateBytes <= 0 {
		l.MaxStateBytes = DefaultMaxStateBytes
	}
	if l.MaxCallStack <= 0 {
		l.MaxCallStack = DefaultMaxCallStack
	}
	if l.MaxHeapBytes <= 0 {
		l.MaxHeapBytes = DefaultMaxHeapBytes
	}
	return l
}

// Errors a *ScriptError may wrap; test with errors.Is.
var (
	// ErrTimeout: the fold ran longer than Limits.Timeout and was interrupted.
	ErrTimeout = errors.New("scripting: reducer timed out")
	// ErrStackOverflow: the call depth exceeded Limits.MaxCallStack.
	ErrStackOverflow = errors.New("scripting: maximum call stack size exceeded")
	// ErrStateTooLarge: the state's JSON is larger than Limits.MaxStateBytes.
	ErrStateTooLarge = errors.New("scripting: state too large")
	// ErrNotSerialisable: the state cannot be stored as JSON (undefined,
	// a function, a symbol, a cycle).
	ErrNotSerialisable = errors.New("scripting: state is not JSON-serialisable")
	// ErrHeapLimit: the process heap exceeded Limits.MaxHeapBytes while
	// the fold ran, and it was the one interrupted.
	ErrHeapLimit = errors.New("scripting: heap limit exceeded")
)

// ScriptError is an error in a reducer: a compile error, an exception, a
// timeout or a state that cannot be stored. Fields are zero when unknown.
//
// Error() gives e.g.
//
//	scripts/account.js:12:7: actor account.42, event seq 57 (Deposited): TypeError: ...
type ScriptError struct {
	File         string
	Line, Column int
	Actor        string
	Seq          uint64 // 0: not while folding an event (compile, init, final state)
	EventType    string
	Err          error
}

func (e *ScriptError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	if e.Actor != "" {
		fmt.Fprintf(&b, "actor %s", e.Actor)
		if e.Seq > 0 || e.EventType != "" {
			fmt.Fprintf(&b, ", event seq %d (%s)", e.Seq, e.EventType)
		}
		b.WriteString(": ")
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *ScriptError) Unwrap() error { return e.Err }
