package snapshotter

import (
	"slices"
	"sync"
)

// captureQueue hands captures to the workers. A worker takes the oldest
// capture whose actor has no capture running, so that one actor's captures
// run one at a time and in order, while a wave of captures spreads over
// every worker instead of queueing behind the one its actor hashes to.
type captureQueue struct {
	mu      sync.Mutex
	ready   sync.Cond // a capture was added, an actor's capture ended, or the queue closed
	roomy   sync.Cond // a capture was taken or the queue closed
	jobs    []job     // oldest first
	running map[string]bool
	limit   int
	closed  bool
}

func newCaptureQueue(limit int) *captureQueue {
	q := &captureQueue{running: make(map[string]bool), limit: limit}
	q.ready.L, q.roomy.L = &q.mu, &q.mu
	return q
}

// put adds j, waiting while the queue holds limit captures. It reports
// false, with j not added, once the queue is closed.
func (q *captureQueue) put(j job) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.jobs) >= q.limit && !q.closed {
		q.roomy.Wait()
	}
	if q.closed {
		return false
	}
	q.jobs = append(q.jobs, j)
	q.ready.Signal()
	return true
}

// tryPut adds j if the queue is open and has room, without waiting.
func (q *captureQueue) tryPut(j job) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || len(q.jobs) >= q.limit {
		return false
	}
	q.jobs = append(q.jobs, j)
	q.ready.Signal()
	return true
}

// take returns the oldest capture whose actor has none running, waiting
// for one; the caller must call done with its key when it ends. After
// close it returns the captures left, then false.
func (q *captureQueue) take() (job, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if j, ok := q.next(); ok {
			return j, true
		}
		if q.closed && len(q.jobs) == 0 {
			return job{}, false
		}
		q.ready.Wait()
	}
}

// next removes and returns the oldest capture whose actor has none
// running, if there is one, and marks its actor running. The caller holds
// q.mu.
func (q *captureQueue) next() (job, bool) {
	i := slices.IndexFunc(q.jobs, func(j job) bool { return !q.running[j.key] })
	if i < 0 {
		return job{}, false
	}
	j := q.jobs[i]
	if i == 0 {
		q.jobs[0] = job{} // let go of its event and tail
		q.jobs = q.jobs[1:]
	} else {
		q.jobs = slices.Delete(q.jobs, i, i+1)
	}
	q.running[j.key] = true
	q.roomy.Signal()
	return j, true
}

// done ends the running capture of actor key.
func (q *captureQueue) done(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.running, key)
	switch {
	case q.closed && len(q.jobs) == 0:
		q.ready.Broadcast() // the last one: every idle worker can stop
	case len(q.jobs) > 0:
		q.ready.Signal() // at most one capture, of this actor, can be taken now
	}
}

// drop removes the queued captures of actor key and returns them, oldest
// first.
func (q *captureQueue) drop(key string) []job {
	q.mu.Lock()
	defer q.mu.Unlock()
	var dropped []job
	q.jobs = slices.DeleteFunc(q.jobs, func(j job) bool {
		if j.key == key {
			dropped = append(dropped, j)
			return true
		}
		return false
	})
	if len(dropped) > 0 {
		q.roomy.Broadcast()
	}
	return dropped
}

// close lets the workers finish what is queued and stop.
func (q *captureQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.ready.Broadcast()
	q.roomy.Broadcast()
}
