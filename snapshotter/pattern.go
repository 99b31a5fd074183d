package snapshotter

import (
	"errors"
	"fmt"
	"strings"
)

// Placeholders of a subject pattern (DESIGN.md, Subjects and actor identity).
const (
	placeType  = "{type}"
	placeID    = "{id}"
	placeEvent = "{event}"
)

// Pattern describes the event subjects, e.g. "events.{type}.{id}". It maps
// a subject to its actor and event type without allocating. The zero value
// is not usable; build one with ParsePattern. A Pattern is immutable and safe
// for concurrent use.
type Pattern struct {
	raw    string
	tokens []string // literal tokens, placeholders, "*" or a final ">"
	typeAt int
	idAt   int
	event  int // index of {event}, or -1
	tail   bool
}

// ParsePattern checks and parses a subject pattern. Each placeholder must be
// a whole token; {type} and {id} are required once, {event} is optional, and
// ">" may only be the last token.
func ParsePattern(s string) (Pattern, error) {
	p := Pattern{raw: s, typeAt: -1, idAt: -1, event: -1}
	if s == "" {
		return p, fmt.Errorf("pattern is empty: use e.g. %q", "events.{type}.{id}")
	}
	p.tokens = strings.Split(s, ".")
	for i, tok := range p.tokens {
		switch {
		case tok == "":
			return p, fmt.Errorf("pattern %q has an empty token", s)
		case tok == placeType:
			if p.typeAt >= 0 {
				return p, fmt.Errorf("pattern %q has {type} twice", s)
			}
			p.typeAt = i
		case tok == placeID:
			if p.idAt >= 0 {
				return p, fmt.Errorf("pattern %q has {id} twice", s)
			}
			p.idAt = i
		case tok == placeEvent:
			if p.event >= 0 {
				return p, fmt.Errorf("pattern %q has {event} twice", s)
			}
			p.event = i
		case tok == ">":
			if i != len(p.tokens)-1 {
				return p, fmt.Errorf("pattern %q: '>' is only allowed as the last token", s)
			}
			p.tail = true
		case strings.ContainsAny(tok, "{}"):
			return p, fmt.Errorf("pattern %q: token %q is not a placeholder; use {type}, {id} or {event} as whole tokens", s, tok)
		case strings.ContainsAny(tok, " \t\r\n>"):
			return p, fmt.Errorf("pattern %q: token %q is not a valid subject token", s, tok)
		}
	}
	if p.typeAt < 0 {
		return p, fmt.Errorf("pattern %q has no {type} token", s)
	}
	if p.idAt < 0 {
		return p, fmt.Errorf("pattern %q has no {id} token", s)
	}
	return p, nil
}

// MustPattern is ParsePattern for patterns known to be valid, as in tests.
func MustPattern(s string) Pattern {
	p, err := ParsePattern(s)
	if err != nil {
		panic(err)
	}
	return p
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.raw }

// HasEvent reports whether the pattern has an {event} token.
func (p Pattern) HasEvent() bool { return p.event >= 0 }

// Filter is the consumer's filter subject: every placeholder replaced by "*".
func (p Pattern) Filter() string { return p.fill("*", "*") }

// ActorFilter matches the events of one actor: {type} and {id} filled in,
// {event} as "*".
func (p Pattern) ActorFilter(actorType, id string) string { return p.fill(actorType, id) }

func (p Pattern) fill(actorType, id string) string {
	out := make([]string, len(p.tokens))
	for i, tok := range p.tokens {
		switch i {
		case p.typeAt:
			out[i] = actorType
		case p.idAt:
			out[i] = id
		case p.event:
			out[i] = "*"
		default:
			out[i] = tok
		}
	}
	return strings.Join(out, ".")
}

// Match splits subject into actor type, id and event type (empty when the
// pattern has no {event}). ok is false when the subject does not fit the
// pattern. The results are substrings of subject: Match does not allocate.
func (p Pattern) Match(subject string) (actorType, id, event string, ok bool) {
	rest := subject
	for i, tok := range p.tokens {
		if tok == ">" {
			if rest == "" {
				return "", "", "", false
			}
			return actorType, id, event, true
		}
		if rest == "" {
			return "", "", "", false
		}
		var t string
		if j := strings.IndexByte(rest, '.'); j >= 0 {
			t, rest = rest[:j], rest[j+1:]
			if rest == "" { // trailing dot
				return "", "", "", false
			}
		} else {
			t, rest = rest, ""
		}
		if t == "" {
			return "", "", "", false
		}
		switch i {
		case p.typeAt:
			actorType = t
		case p.idAt:
			id = t
		case p.event:
			event = t
		default:
			if tok != "*" && tok != t {
				return "", "", "", false
			}
		}
	}
	if rest != "" {
		return "", "", "", false
	}
	return actorType, id, event, true
}

var errBadActor = errors.New("bad actor key")

// SplitActor splits an actor key "<type>.<id>" into its type and id, each
// one subject token.
func SplitActor(actor string) (actorType, id string, err error) {
	t, id, found := strings.Cut(actor, ".")
	if !found || t == "" || id == "" || strings.ContainsAny(actor, " *>\t\r\n") || strings.Contains(id, ".") {
		return "", "", fmt.Errorf("%w: %q is not of the form <type>.<id>, e.g. account.42", errBadActor, actor)
	}
	return t, id, nil
}

// Decode lets envconfig parse a Pattern from an environment variable.
func (p *Pattern) Decode(value string) error {
	parsed, err := ParsePattern(value)
	if err != nil {
		return err
	}
	*p = parsed
	return nil
}

// Subject builds the subject of an event of the actor: {event} is filled
// with event, and a final ">" becomes event as well.
func (p Pattern) Subject(actorType, id, event string) string {
	out := make([]string, len(p.tokens))
	for i, tok := range p.tokens {
		switch {
		case i == p.typeAt:
			out[i] = actorType
		case i == p.idAt:
			out[i] = id
		case i == p.event, tok == ">":
			out[i] = event
		case tok == "*":
			out[i] = "_"
		default:
			out[i] = tok
		}
	}
	return strings.Join(out, ".")
}
