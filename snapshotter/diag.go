package snapshotter

import "runtime"

// TallyMemory measures what tracking n actors costs in heap bytes per actor,
// for `jetsnap bench`. It installs n tallies, with the keys key(0) ..
// key(n-1), into a tally map the way Handle does (install, a map made
// without a size hint, a key string of its own per actor), each as an
// actor stands right after a snapshot was made due: a tally whose tail is
// valid and empty (the shared emptyTail, as evaluate leaves it), no pending
// events. It returns the growth of the live heap
// (runtime.MemStats.HeapAlloc after a forced GC, before and after) divided
// by n: the tally, the key and the map's share, with the map at
// whatever fill its growth left it for this n.
//
// It forces garbage collections and allocates n actors' worth of memory: a
// diagnostic, not for a running jetsnap. Memory that other goroutines
// allocate or release while it runs is counted too, so run it when the
// process is quiet.
func TallyMemory(n int, key func(i int) string) (bytesPerActor float64) {
	if n <= 0 {
		return 0
	}
	before := liveHeap()
	s := &Snapshotter{tallies: make(map[string]*tally)}
	for i := range n {
		t := &tally{lastSeq: uint64(i) + 1, version: 1, snap: 1, tail: emptyTail}
		s.install(key(i), t, true, true)
	}
	after := liveHeap()
	runtime.KeepAlive(s)
	return (float64(after) - float64(before)) / float64(n)
}

// liveHeap collects garbage until the live heap stops shrinking (objects
// in a sync.Pool survive one collection) and returns it.
func liveHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	for range 4 {
		last := m.HeapAlloc
		runtime.GC()
		runtime.ReadMemStats(&m)
		if m.HeapAlloc >= last {
			break
		}
	}
	return m.HeapAlloc
}
