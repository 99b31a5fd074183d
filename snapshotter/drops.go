package snapshotter

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// A request in flight when the NATS connection drops is never answered,
// even once nats.go has reconnected: the server that had it is gone. A
// capture waiting for such an answer waited for its whole deadline, half a
// minute, and with batched acks every event after its own waited too
// (TestFaultOutage). So the snapshotter's reads and publishes end when the
// connection drops, and are made again over the next one: a capture is
// retried as after any passing failure; a count in Handle fails and its
// event is delivered again.

// errDropped is the cause of a context that a drop ended.
var errDropped = errors.New("the NATS connection dropped while waiting for an answer")

// drops hands out contexts that end at the next drop of the connection.
type drops struct {
	mu      sync.Mutex
	current context.Context // ends at the next drop
	end     context.CancelCauseFunc
}

func newDrops() *drops {
	d := &drops{}
	d.current, d.end = context.WithCancelCause(context.Background())
	return d
}

// watch ends the current context at each drop of nc, until stop.
func (d *drops) watch(nc *nats.Conn) (stop func()) {
	ch := nc.StatusChanged(nats.RECONNECTING, nats.DISCONNECTED)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range ch {
			d.drop()
		}
	}()
	return func() {
		nc.RemoveStatusListener(ch)
		<-done
	}
}

func (d *drops) drop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.end(errDropped)
	d.current, d.end = context.WithCancelCause(context.Background())
}

// bind returns parent with a timeout that also ends at the next drop.
func (d *drops) bind(parent context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	d.mu.Lock()
	current := d.current
	d.mu.Unlock()
	ctx, cancel := context.WithCancelCause(parent)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	stop := context.AfterFunc(current, func() { cancel(errDropped) })
	return ctx, func() {
		stop()
		cancelTimeout()
		cancel(nil)
	}
}

// dropped reports whether ctx, from bind, ended because the connection
// dropped.
func dropped(ctx context.Context) bool { return errors.Is(context.Cause(ctx), errDropped) }
