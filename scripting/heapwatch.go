package scripting

import (
	"fmt"
	"runtime/metrics"
	"sync"
	"time"
)

// heapWatch bounds memory that a reducer grows by ordinary code between
// the VM's interrupt checks (s += s doubling a string, pushing in a loop):
// fast enough to exhaust memory before the fold's timeout, yet made of
// instructions that can be interrupted. While folds run, a goroutine reads
// the heap every heapWatchEvery. When it is above the smallest
// Limits.MaxHeapBytes of the running folds, it interrupts, with
// ErrHeapLimit, the fold that has run longest among those during which
// the process allocated more than that limit (a runaway fold grows for a
// while; folds are otherwise short; garbage left by earlier folds does not
// count), and waits for it to end before it picks another. The fold stops
// after the instruction under way, e.g. one more doubling of its string.
// The heap is the process's and includes garbage not yet collected: a fold
// that runs long beside a runaway one, or allocates (even short-lived)
// more than the limit while the heap is above it, can be the one
// interrupted. The goroutine stops once no fold has run for heapWatchIdle.
//
// It is process-wide state because the heap is: one watcher for all
// Runtimes.
var heapWatch heapWatcher

const (
	heapWatchEvery = 10 * time.Millisecond
	heapWatchIdle  = time.Second
)

type heapWatcher struct {
	mu       sync.Mutex
	running  map[*realm]*watched
	watching bool      // the goroutine runs
	last     time.Time // when the last fold ended
}

type watched struct {
	start       time.Time
	allocated   uint64 // the process's allocated bytes when the fold started
	interrupted bool
}

func (w *heapWatcher) add(r *realm) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running == nil {
		w.running = make(map[*realm]*watched)
	}
	if !w.watching {
		w.watching = true
		go w.watch()
	}
	w.running[r] = &watched{start: time.Now(), allocated: allocatedBytes()}
}

func (w *heapWatcher) remove(r *realm) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.running, r)
	w.last = time.Now()
}

func (w *heapWatcher) watch() {
	t := time.NewTicker(heapWatchEvery)
	defer t.Stop()
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/allocs:bytes"}}
	for range t.C {
		w.mu.Lock()
		if len(w.running) == 0 && time.Since(w.last) > heapWatchIdle {
			w.watching = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		limit := w.limit()
		if limit < 0 {
			continue
		}
		metrics.Read(samples)
		heap, allocated := samples[0].Value.Uint64(), samples[1].Value.Uint64()
		if heap <= uint64(limit) {
			continue
		}
		w.mu.Lock()
		var victim *realm
		var since time.Time
		for r, f := range w.running {
			if f.interrupted {
				victim = nil // wait for it to end
				break
			}
			if allocated-f.allocated > uint64(limit) && (victim == nil || f.start.Before(since)) {
				victim, since = r, f.start
			}
		}
		if victim != nil {
			victim.vm.Interrupt(fmt.Errorf("%w: the heap reached %d MiB (limit %d MiB) while this fold ran longest",
				ErrHeapLimit, heap>>20, limit>>20))
			w.running[victim].interrupted = true
		}
		w.mu.Unlock()
	}
}

var allocSample = []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
var allocMu sync.Mutex

// allocatedBytes is the process's total allocated bytes so far.
func allocatedBytes() uint64 {
	allocMu.Lock()
	defer allocMu.Unlock()
	metrics.Read(allocSample)
	return allocSample[0].Value.Uint64()
}

// limit is the smallest MaxHeapBytes of the running folds, -1 if none.
func (w *heapWatcher) limit() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	limit := -1
	for r := range w.running {
		if limit < 0 || r.lim.MaxHeapBytes < limit {
			limit = r.lim.MaxHeapBytes
		}
	}
	return limit
}
