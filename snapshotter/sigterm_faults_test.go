//go:build faults

package snapshotter_test

import (
	"testing"
	"time"
)

// TestFaultSigterm: the real process gets SIGTERM three times during a
// paced workload, exits 0 each time and is started again; afterwards every
// snapshot is right and each actor has exactly its placements.
func TestFaultSigterm(t *testing.T) {
	jetsnapBinary(t)
	e := newEnv(t)
	subjects, types := workload(500, 60, []string{"Deposited", "Withdrawn", "Renamed"}, 14)
	p := e.spawn(faultStrategy)
	waitFor(t, 30*time.Second, "ready", p.ready)
	pub := e.publishPaced(subjects, types, 5000)
	for i := 1; i <= 3; i++ {
		waitFor(t, time.Minute, "more of the workload", func() bool { return pub.sent.Load() > int64(i*len(subjects)/4) })
		start := time.Now()
		p.stop() // SIGTERM; fails the test unless it exits 0 within 30s
		t.Logf("SIGTERM #%d after %d events: exited in %v", i, pub.sent.Load(), time.Since(start))
		p = e.spawn(faultStrategy)
		waitFor(t, 30*time.Second, "ready", p.ready) // SIGTERM before the handler is set kills it
	}
	pub.wait()
	e.idle(faultStrategy, 3*time.Minute)
	if n := e.check(faultStrategy); n < 500*3 {
		t.Fatalf("only %d snapshots", n)
	}
}
