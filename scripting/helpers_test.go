package scripting

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func require_NoError(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func require_Equal[T comparable](t testing.TB, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func require_Contains(t testing.TB, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("%q does not contain %q", s, sub)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a wait for a result
	}
}

// compiled caches mustCompile's scripts: a Script is immutable and its
// realms isolate folds, and making realms (lockdown) is what takes time in
// these tests. Sharing them also has every test fold in reused realms.
var compiled sync.Map // file + "\x00" + src → *Script

func mustCompile(t testing.TB, file, src string) *Script {
	t.Helper()
	if s, ok := compiled.Load(file + "\x00" + src); ok {
		return s.(*Script)
	}
	s, err := Compile(file, []byte(src))
	require_NoError(t, err)
	compiled.Store(file+"\x00"+src, s)
	return s
}

// evs builds events for actor with JSON data, versions and seqs from 1.
func evs(actor string, typesAndData ...string) []Event {
	var out []Event
	for i := 0; i+1 < len(typesAndData); i += 2 {
		n := uint64(len(out) + 1)
		out = append(out, Event{
			Actor: actor, Type: typesAndData[i], Data: []byte(typesAndData[i+1]),
			Subject: fmt.Sprintf("events.%s", actor), Seq: n * 10, Version: n,
			Time: time.Date(2024, 1, 1, 0, 0, int(n), 0, time.UTC),
		})
	}
	return out
}

func fold(t testing.TB, rt *Runtime, s *Script, actor string, state string, events []Event) (string, error) {
	t.Helper()
	var st []byte
	if state != "" {
		st = []byte(state)
	}
	out, err := rt.Fold(context.Background(), s, actor, st, events)
	return string(out), err
}

func asScriptError(t testing.TB, err error) *ScriptError {
	t.Helper()
	var se *ScriptError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *ScriptError", err, err)
	}
	return se
}
