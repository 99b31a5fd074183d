package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jetsnap/jetsnap/scripting"
	"github.com/jetsnap/jetsnap/snapshotter"
	"github.com/nats-io/nats.go"
)

// workload generates the bench's events: event i is a pure function of i
// and the seed, so the events published, the events folded by the reducer
// comparison and the events of later phases are the same ones.
type workload struct {
	pattern snapshotter.Pattern
	typ     string // actor type (the reducer's file name)
	actors  int
	payload int // bytes per payload, at least what the fields need
	seed    uint64
	types   []string
	cum     []uint64 // cumulative weights of types
}

// parseMix reads "Deposited=65,Withdrawn=30,Opened=4,Closed=1".
func parseMix(s string) (types []string, cum []uint64, err error) {
	var total uint64
	for _, part := range strings.Split(s, ",") {
		name, weight, ok := strings.Cut(strings.TrimSpace(part), "=")
		w, perr := strconv.ParseUint(weight, 10, 32)
		if !ok || name == "" || perr != nil || w == 0 {
			return nil, nil, fmt.Errorf("--mix %q: want Type=weight,... with weights >= 1, e.g. Deposited=65,Withdrawn=35", s)
		}
		total += w
		types, cum = append(types, name), append(cum, total)
	}
	return types, cum, nil
}

// splitmix64 is a tiny, good-enough hash for spreading events.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// actor returns the actor of event i: uniform over the actors.
func (w *workload) actor(i int) int {
	return int(splitmix64(w.seed^uint64(i)) % uint64(w.actors))
}

// id is the actor id of actor a in subjects and keys.
func (w *workload) id(a int) string { return strconv.Itoa(a) }

// event returns the event type and JSON payload of event i.
func (w *workload) event(i int) (string, []byte) {
	h := splitmix64(splitmix64(w.seed^uint64(i)) + 1)
	r := h % w.cum[len(w.cum)-1]
	typ := w.types[len(w.types)-1]
	for k, c := range w.cum {
		if r < c {
			typ = w.types[k]
			break
		}
	}
	b := make([]byte, 0, max(w.payload, 96))
	b = append(b, `{"type":`...)
	b = strconv.AppendQuote(b, typ)
	switch typ {
	case "Opened":
		b = append(b, `,"owner":"owner-`...)
		b = strconv.AppendUint(b, h%1000, 10)
		b = append(b, `","currency":"EUR"`...)
	case "Closed":
		b = append(b, `,"reason":"bench"`...)
	default:
		b = append(b, `,"amount":`...)
		b = strconv.AppendUint(b, 1+(h>>20)%100, 10)
	}
	b = append(b, `,"ref":"e`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, '"')
	if pad := w.payload - len(b) - len(`,"pad":""}`); pad > 0 {
		b = append(b, `,"pad":"`...)
		for range pad {
			b = append(b, 'x')
		}
		b = append(b, '"')
	}
	return typ, append(b, '}')
}

// msg is event i of actor id as published.
func (w *workload) msg(i int, id string) *nats.Msg {
	_, data := w.event(i)
	return &nats.Msg{Subject: w.pattern.Subject(w.typ, id, ""), Data: data}
}

// foldSet returns the events of the first actors of the workload's n events
// until about want events are taken, each actor's events cut in folds of
// every events, as captures fold them. Event i has stream sequence i+1: the
// workload is the first thing published on a fresh stream. As in the
// pipeline (subjects without an {event} token, no Event-Type header), the
// type is the payload's.
func (w *workload) foldSet(n, want, every int) [][]scripting.Event {
	perActor := max(n/w.actors, 1)
	take := min(max(want/perActor, 1), w.actors)
	byActor := make([][]scripting.Event, take)
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		a := w.actor(i)
		if a >= take {
			continue
		}
		_, data := w.event(i)
		id := w.id(a)
		byActor[a] = append(byActor[a], scripting.Event{
			Actor: w.typ + "." + id, TypeFromData: true, Subject: w.pattern.Subject(w.typ, id, ""), Data: data,
			Seq: uint64(i + 1), Version: uint64(len(byActor[a]) + 1), Time: t0.Add(time.Duration(i) * time.Millisecond),
		})
	}
	var folds [][]scripting.Event
	for _, evs := range byActor {
		for len(evs) > 0 {
			k := min(every, len(evs))
			folds = append(folds, evs[:k:k])
			evs = evs[k:]
		}
	}
	return folds
}

// nativeAccount is scripts/account.js written in Go: the native fold the
// reducer is compared with. It decodes the base state and every payload
// with encoding/json and writes the state as JSON.stringify would, key
// order included, so that its output can be checked byte for byte against
// the reducer's.
type nativeAccount struct {
	id, status                     string
	balance, deposits, withdrawals float64
	updated                        *string
	extra                          []kv // owner, currency, reason: in the order they were added
}

type kv struct{ k, v string }

func (s *nativeAccount) set(k, v string) {
	for i := range s.extra {
		if s.extra[i].k == k {
			s.extra[i].v = v
			return
		}
	}
	s.extra = append(s.extra, kv{k, v})
}

// accountData is what account.js reads of a payload. A field of the wrong
// JSON type stays nil, as `typeof d.amount === "number"` rejects it.
type accountData struct {
	Type     string   `json:"type"` // the event type when Event.TypeFromData
	Amount   *float64 `json:"amount"`
	Owner    *string  `json:"owner"`
	Currency *string  `json:"currency"`
	Reason   *string  `json:"reason"`
}

// nativeFold folds events on top of state (nil: init) like account.js.
func nativeFold(actor string, state []byte, events []scripting.Event) ([]byte, error) {
	s := nativeAccount{id: actor, status: "new"}
	if state != nil {
		if err := s.decode(state); err != nil {
			return nil, err
		}
	}
	for i := range events {
		ev := &events[i]
		var d accountData
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			var typeErr *json.UnmarshalTypeError
			if !errors.As(err, &typeErr) || typeErr.Field == "" {
				d = accountData{} // not an object: account.js reads {}
			}
		}
		typ := ev.Type
		if typ == "" && ev.TypeFromData {
			typ = d.Type
		}
		switch typ {
		case "Opened":
			s.status = "open"
			if d.Owner != nil {
				s.set("owner", *d.Owner)
			}
			if d.Currency != nil {
				s.set("currency", *d.Currency)
			}
		case "Deposited", "Withdrawn":
			if d.Amount == nil || math.IsInf(*d.Amount, 0) || !(*d.Amount > 0) {
				continue
			}
			if typ == "Deposited" {
				s.balance += *d.Amount
				s.deposits++
			} else {
				s.balance -= *d.Amount
				s.withdrawals++
			}
		case "Closed":
			s.status = "closed"
			if d.Reason != nil {
				s.set("reason", *d.Reason)
			}
		default:
			continue
		}
		t := ev.Time.UTC().Format(time.RFC3339Nano)
		s.updated = &t
	}
	return s.encode(), nil
}

func (s *nativeAccount) decode(state []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(state, &raw); err != nil {
		return fmt.Errorf("native fold: base state: %w", err)
	}
	str := func(k string) string {
		var v string
		_ = json.Unmarshal(raw[k], &v)
		return v
	}
	num := func(k string) float64 {
		var v float64
		_ = json.Unmarshal(raw[k], &v)
		return v
	}
	s.id, s.status = str("id"), str("status")
	s.balance, s.deposits, s.withdrawals = num("balance"), num("deposits"), num("withdrawals")
	if u, ok := raw["updated"]; ok && string(u) != "null" {
		v := str("updated")
		s.updated = &v
	}
	// The order of the optional keys: their order in the stored JSON.
	dec := json.NewDecoder(strings.NewReader(string(state)))
	_, _ = dec.Token() // {
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		var skip json.RawMessage
		_ = dec.Decode(&skip)
		switch k, _ := tok.(string); k {
		case "owner", "currency", "reason":
			s.extra = append(s.extra, kv{k, str(k)})
		}
	}
	return nil
}

func (s *nativeAccount) encode() []byte {
	b := make([]byte, 0, 160)
	b = append(b, `{"id":`...)
	b = appendJSString(b, s.id)
	b = append(b, `,"status":`...)
	b = appendJSString(b, s.status)
	b = append(b, `,"balance":`...)
	b = appendJSNumber(b, s.balance)
	b = append(b, `,"deposits":`...)
	b = appendJSNumber(b, s.deposits)
	b = append(b, `,"withdrawals":`...)
	b = appendJSNumber(b, s.withdrawals)
	b = append(b, `,"updated":`...)
	if s.updated == nil {
		b = append(b, "null"...)
	} else {
		b = appendJSString(b, *s.updated)
	}
	for _, e := range s.extra {
		b = append(b, ',')
		b = appendJSString(b, e.k)
		b = append(b, ':')
		b = appendJSString(b, e.v)
	}
	return append(b, '}')
}

// appendJSNumber formats v as JSON.stringify does for the values the
// bench produces (integers below 1e21 print without exponent).
func appendJSNumber(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	if a := math.Abs(v); a == 0 || (a >= 1e-6 && a < 1e21) {
		return strconv.AppendFloat(b, v, 'f', -1, 64)
	}
	s := strconv.FormatFloat(v, 'e', -1, 64) // 1e-07 → 1e-7, as JS writes it
	mant, exp, _ := strings.Cut(s, "e")
	sign, digits := exp[:1], strings.TrimLeft(exp[1:], "0")
	return append(b, mant+"e"+sign+digits...)
}

// appendJSString quotes s as JSON.stringify does.
func appendJSString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '\r':
			b = append(b, `\r`...)
		case c == '\t':
			b = append(b, `\t`...)
		case c == '\b':
			b = append(b, `\b`...)
		case c == '\f':
			b = append(b, `\f`...)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
