package snapshotter

import (
	"fmt"
	"testing"
)

// TestCaptureQueue: one actor's captures are taken one at a time and in
// order; the others are not held back by them; after close the queue
// gives what it holds, then nothing.
func TestCaptureQueue(t *testing.T) {
	q := newCaptureQueue(10)
	for _, j := range []job{{key: "a", version: 1}, {key: "a", version: 2}, {key: "b", version: 1}, {key: "a", version: 3}, {key: "c", version: 1}} {
		if !q.put(j) {
			t.Fatal("put refused before close")
		}
	}
	next := func() (job, bool) {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.next()
	}
	want := func(key string, version uint64) {
		t.Helper()
		j, ok := next()
		if !ok || j.key != key || j.version != version {
			t.Fatalf("took %s v%d (%v), want %s v%d", j.key, j.version, ok, key, version)
		}
	}
	want("a", 1)
	want("b", 1) // a v2 waits for a v1
	want("c", 1)
	if j, ok := next(); ok {
		t.Fatalf("took %s v%d while a v1 runs", j.key, j.version)
	}
	q.done("a")
	want("a", 2)
	q.close()
	if q.put(job{key: "d"}) {
		t.Fatal("put accepted after close")
	}
	q.done("a")
	if j, ok := q.take(); !ok || j.key != "a" || j.version != 3 {
		t.Fatalf("after close took %s v%d (%v), want a v3", j.key, j.version, ok)
	}
	q.done("a")
	if _, ok := q.take(); ok {
		t.Fatal("took from a closed, empty queue")
	}
}

// TestCaptureQueueDrop: drop takes out every queued capture of one actor,
// oldest first, and leaves the others in order.
func TestCaptureQueueDrop(t *testing.T) {
	q := newCaptureQueue(10)
	for _, j := range []job{{key: "a", version: 1}, {key: "b", version: 1}, {key: "a", version: 2}, {key: "c", version: 1}, {key: "a", version: 3}} {
		q.put(j)
	}
	if j, _ := q.take(); j.key != "a" || j.version != 1 {
		t.Fatalf("took %s v%d, want a v1", j.key, j.version)
	}
	dropped := q.drop("a")
	if len(dropped) != 2 || dropped[0].version != 2 || dropped[1].version != 3 {
		t.Fatalf("dropped %+v, want a v2 and a v3", dropped)
	}
	q.done("a")
	q.close()
	var left []string
	for {
		j, ok := q.take()
		if !ok {
			break
		}
		left = append(left, j.key)
		q.done(j.key)
	}
	if fmt.Sprint(left) != "[b c]" {
		t.Fatalf("left %v, want [b c]", left)
	}
}
