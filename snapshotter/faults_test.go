//go:build faults

package snapshotter_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jetsnap/jetsnap/snapshotter"
	"github.com/nats-io/nats.go"
)

// Fault tests: run with `make test-faults` (go test -tags faults). Each
// ends with the invariant checker (env.check).

var faultStrategy = snapshotter.Strategy{Kind: snapshotter.KindHybrid, Every: 20, MinEvents: 5, MaxEvents: 50}

// TestFaultKill9: kill -9 jetsnap at random moments of a 200,000-event
// workload over 2,000 actors, five times, restarting it each time (with
// -short: 100,000 events over 1,000 actors, three times).
func TestFaultKill9(t *testing.T) {
	jetsnapBinary(t) // before the clock starts
	actors, kills := 2000, 5
	if testing.Short() {
		actors, kills = 1000, 3
	}
	e := newEnv(t)
	subjects, types := workload(actors, 100, []string{"Deposited", "Withdrawn", "Renamed"}, 11)
	pub := e.publishPaced(subjects, types, 20000)
	p := e.spawn(faultStrategy)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for kill := 0; kill < kills; kill++ {
		at := time.Duration(500+rng.IntN(2500)*actors/2000) * time.Millisecond
		time.Sleep(at) // the fault schedule, not a wait for a result
		t.Logf("kill -9 #%d after %v, %d events published", kill+1, at, pub.sent.Load())
		p.kill()
		p = e.spawn(faultStrategy)
	}
	pub.wait()
	e.idle(faultStrategy, 3*time.Minute)
	n := e.check(faultStrategy)
	t.Logf("%d snapshots checked over %d actors and %d events after %d kills", n, actors, len(subjects), kills)
	if n < actors*5 {
		t.Fatalf("only %d snapshots", n)
	}
}

// TestFaultOutage: nats-server stops for a while mid-workload and comes
// back; jetsnap reconnects by itself, /readyz says so, consumption resumes.
// The outages are 10 s and 150 s, with -short one of 4 s.
func TestFaultOutage(t *testing.T) {
	downs := []time.Duration{10 * time.Second, 150 * time.Second}
	if testing.Short() {
		downs = []time.Duration{4 * time.Second}
	}
	for _, down := range downs {
		t.Run(down.String(), func(t *testing.T) {
			jetsnapBinary(t)
			e := newEnv(t)
			subjects, types := workload(500, 60, []string{"Deposited", "Withdrawn"}, 12)
			p := e.spawn(faultStrategy)
			waitFor(t, 30*time.Second, "ready", p.ready)
			pub := e.publishPaced(subjects, types, 5000)
			waitFor(t, time.Minute, "a third of the workload", func() bool { return pub.sent.Load() > int64(len(subjects)/3) })

			stopped := make(chan struct{})
			go func() {
				defer close(stopped)
				e.restartServer(down)
			}()
			waitFor(t, 30*time.Second, "/readyz to say not ready during the outage", func() bool { return !p.ready() })
			<-stopped
			waitFor(t, time.Minute, "/readyz to say ready after the outage", p.ready)
			pub.wait()
			e.idle(faultStrategy, 3*time.Minute)
			if n := e.check(faultStrategy); n < 500*3 {
				t.Fatalf("only %d snapshots", n)
			}
		})
	}
}

// TestFaultRedelivery: a reducer slower than AckWait/2 per capture, and a
// short AckWait: redeliveries and duplicates change no snapshot. 100
// actors, with -short 30.
func TestFaultRedelivery(t *testing.T) {
	jetsnapBinary(t)
	actors := 100
	if testing.Short() {
		actors = 30
	}
	e := newEnv(t)
	e.script("account", "testdata/slow.js")
	subjects, types := workload(actors, 60, []string{"Deposited", "Withdrawn"}, 13)
	p := e.spawn(faultStrategy, "JETSNAP_ACK_WAIT=1100ms", "JETSNAP_SCRIPT_TIMEOUT=1s", "JETSNAP_WORKERS=1")
	e.publish(subjects, types)
	e.idle(faultStrategy, 3*time.Minute)
	e.check(faultStrategy)
	cons, _ := e.js.Consumer(context.Background(), "EVENTS", "jetsnap")
	info, _ := cons.Info(context.Background())
	t.Logf("delivered %d (consumer seq) for %d events", info.Delivered.Consumer, len(subjects))
	p.stop()
}

// TestFaultDuplicatePublishes: producers publish some events twice, with the
// same Nats-Msg-Id (deduplicated by the stream) and without one (stored
// twice): snapshots follow what the stream holds.
func TestFaultDuplicatePublishes(t *testing.T) {
	jetsnapBinary(t)
	e := newEnv(t)
	e.spawn(faultStrategy)
	ctx := context.Background()
	for i := 0; i < 3000; i++ {
		subject := fmt.Sprintf("events.account.%d", i%50)
		data := fmt.Appendf(nil, `{"type":"Deposited","i":%d}`, i)
		id := nats.Header{nats.MsgIdHdr: {fmt.Sprint("d", i)}}
		for copies := 0; copies < 1+i%2; copies++ { // odd events twice with one id
			if _, err := e.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data, Header: id}); err != nil {
				t.Fatal(err)
			}
		}
		if i%7 == 0 { // and some again without an id: a second event
			if _, err := e.js.Publish(ctx, subject, data); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.idle(faultStrategy, 2*time.Minute)
	e.check(faultStrategy)
	if n := len(e.allEvents()["account.0"]); n != 60+9 {
		t.Fatalf("account.0 has %d events in the stream, want 69", n)
	}
}

// TestFaultTwoProcesses: two jetsnap processes on the same durable at once.
// With JETSNAP_ACK_MODE=each they share its events; with batch one
// consumes and the other stands by, and here the one consuming is killed
// with -9 halfway so the standby takes over. Either way: no snapshot goes
// backwards, no version twice, every snapshot right.
func TestFaultTwoProcesses(t *testing.T) {
	jetsnapBinary(t)
	for _, mode := range []string{"each", "batch"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			subjects, types := workload(300, 60, []string{"Deposited", "Withdrawn"}, 14)
			e.spawn(faultStrategy, "JETSNAP_ACK_MODE="+mode)
			second := e.spawn(faultStrategy, "JETSNAP_ACK_MODE="+mode)
			pub := e.publishPaced(subjects, types, 5000)
			if mode == "batch" {
				waitFor(t, time.Minute, "a third of the events published", func() bool { return pub.sent.Load() >= int64(len(subjects)/3) })
				second.kill() // the newest process most likely holds the durable
			}
			pub.wait()
			e.idle(faultStrategy, 3*time.Minute)
			e.check(faultStrategy)
		})
	}
}
