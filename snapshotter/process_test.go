//go:build faults

package snapshotter_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jetsnap/jetsnap/snapshotter"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The fault tests run jetsnap as a real process, built once per test run.
var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

func jetsnapBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "jetsnap-faults-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "jetsnap")
		out, err := exec.Command("go", "build", "-o", binary, "../cmd/jetsnap").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// proc is one jetsnap process.
type proc struct {
	t       *testing.T
	cmd     *exec.Cmd
	done    chan error
	health  string // base URL of /healthz and /readyz
	logFile string
}

// freePort returns a loopback port that is free now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// spawn runs jetsnap against the env's server with the strategy and extra
// variables.
func (e *env) spawn(st snapshotter.Strategy, extra ...string) *proc {
	e.t.Helper()
	port := freePort(e.t)
	logFile := filepath.Join(e.t.TempDir(), "jetsnap.log")
	f, err := os.Create(logFile)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(jetsnapBinary(e.t), "run")
	cmd.Env = append(os.Environ(),
		"NATS_URL="+e.url(),
		"JETSNAP_SCRIPTS_DIR="+e.scripts,
		"JETSNAP_STRATEGY="+st.Kind,
		"JETSNAP_EVERY="+strconv.FormatUint(st.Every, 10),
		"JETSNAP_MIN_EVENTS="+strconv.FormatUint(max(st.MinEvents, 1), 10),
		"JETSNAP_MAX_EVENTS="+strconv.FormatUint(max(st.MaxEvents, 1), 10),
		"JETSNAP_KEEP=100000",
		"JETSNAP_SCRIPT_TIMEOUT=1s",
		"JETSNAP_ACK_WAIT=3s",
		"JETSNAP_SHUTDOWN_TIMEOUT=5s",
		"JETSNAP_LOG_LEVEL=warn",
		fmt.Sprintf("JETSNAP_HTTP_ADDR=127.0.0.1:%d", port),
	)
	cmd.Env = append(cmd.Env, extra...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	p := &proc{t: e.t, cmd: cmd, done: make(chan error, 1), health: fmt.Sprintf("http://127.0.0.1:%d", port), logFile: logFile}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	e.t.Cleanup(func() {
		p.kill()
		if e.t.Failed() {
			if log, err := os.ReadFile(logFile); err == nil {
				if len(log) > 8000 {
					log = log[len(log)-8000:]
				}
				e.t.Logf("jetsnap log (tail):\n%s", log)
			}
		}
	})
	return p
}

// kill sends SIGKILL: nothing in flight is finished or acknowledged.
func (p *proc) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Errorf("jetsnap exited with %v after SIGTERM; log %s", err, p.logFile)
		}
	case <-time.After(30 * time.Second):
		p.t.Errorf("jetsnap did not exit within 30s of SIGTERM; log %s", p.logFile)
		p.kill()
	}
}

// ready reports whether /readyz answers 200.
func (p *proc) ready() bool {
	resp, err := http.Get(p.health + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// url is the client URL of the env's server.
func (e *env) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", e.port) }

// restartServer stops the server, waits down, and starts it again on the
// same port and store.
func (e *env) restartServer(down time.Duration) {
	e.t.Helper()
	e.nc.Close()
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	time.Sleep(down) // the outage itself is what is being tested
	e.start()
}

// publisher publishes a workload on its own connection, across outages:
// each event carries Nats-Msg-Id "w<i>", so a retry after a lost ack is
// deduplicated by the stream rather than stored twice.
type publisher struct {
	t    *testing.T
	nc   *nats.Conn
	js   jetstream.JetStream
	done chan struct{}
	sent atomic.Int64
}

// publishPaced publishes the workload in the background at about rate
// events per second (0: as fast as acks come back).
func (e *env) publishPaced(subjects, types []string, rate int) *publisher {
	e.t.Helper()
	nc, err := nats.Connect(e.url(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		e.t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	p := &publisher{t: e.t, nc: nc, js: js, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		defer nc.Close()
		const chunk = 500
		var interval time.Duration
		if rate > 0 {
			interval = time.Duration(float64(time.Second) * chunk / float64(rate))
		}
		for start := 0; start < len(subjects); start += chunk {
			end := min(start+chunk, len(subjects))
			began := time.Now()
			p.publish(start, subjects[start:end], types[start:end])
			p.sent.Store(int64(end))
			if d := interval - time.Since(began); d > 0 {
				time.Sleep(d)
			}
		}
	}()
	e.t.Cleanup(func() { <-p.done })
	return p
}

func (p *publisher) publish(offset int, subjects, types []string) {
	pending := make([]int, len(subjects))
	for i := range pending {
		pending[i] = i
	}
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt > 0 {
			time.Sleep(200 * time.Millisecond)
		}
		futures := make([]jetstream.PubAckFuture, len(pending))
		for k, i := range pending {
			data, _ := json.Marshal(map[string]any{"type": types[i], "i": offset + i})
			msg := &nats.Msg{Subject: subjects[i], Data: data, Header: nats.Header{nats.MsgIdHdr: {fmt.Sprintf("w%d", offset+i)}}}
			futures[k], _ = p.js.PublishMsgAsync(msg, jetstream.WithStallWait(5*time.Second))
		}
		var retry []int
		for k, f := range futures {
			if f == nil {
				retry = append(retry, pending[k])
				continue
			}
			select {
			case <-f.Ok():
			case <-f.Err():
				retry = append(retry, pending[k])
			case <-time.After(10 * time.Second):
				retry = append(retry, pending[k])
			}
		}
		pending = retry
	}
}

// wait blocks until every event is stored.
func (p *publisher) wait() { <-p.done }
