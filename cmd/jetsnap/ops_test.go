package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetsnap/jetsnap/consumer"
	"github.com/jetsnap/jetsnap/snapshotter"
	"github.com/nats-io/nats-server/v2/server"
	natstest "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// runNATS starts an in-process nats-server with JetStream; port -1 picks a
// free one. edit, if not nil, adjusts the options (auth, TLS).
func runNATS(t *testing.T, port int, storeDir string, edit func(*server.Options)) *server.Server {
	t.Helper()
	opts := natstest.DefaultTestOptions
	opts.Port, opts.JetStream, opts.StoreDir = port, true, storeDir
	if edit != nil {
		edit(&opts)
	}
	srv := natstest.RunServer(&opts)
	t.Cleanup(srv.Shutdown)
	return srv
}

// syncBuffer collects log output written from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// running is `jetsnap run` in process, as started by startRun.
type running struct {
	base   string // http://host:port of /metrics, /healthz, /readyz
	cancel context.CancelFunc
	exit   chan int
	logs   *syncBuffer
}

// startRun runs `jetsnap run` with the scripts of scripts/ and env on top of
// test defaults, as SIGTERM-able as the real thing (cancel is the signal).
// It fails the test if the HTTP server does not come up.
func startRun(t *testing.T, env map[string]string) *running {
	t.Helper()
	scripts := t.TempDir()
	src, err := os.ReadFile("../../scripts/account.js")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(scripts, "account.js"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	defaults := map[string]string{
		"JETSNAP_SCRIPTS_DIR": scripts, "JETSNAP_HTTP_ADDR": "127.0.0.1:0", "JETSNAP_LOG_LEVEL": "info",
		"JETSNAP_EVERY": "10", "JETSNAP_MIN_EVENTS": "3", "JETSNAP_MAX_EVENTS": "25",
		"JETSNAP_SHUTDOWN_TIMEOUT": "5s",
		"OTEL_METRICS_EXPORTER":    "", "OTEL_TRACES_EXPORTER": "", "OTEL_EXPORTER_OTLP_ENDPOINT": "",
		"NATS_URL": "", "NATS_CREDS": "", "NATS_NKEY": "", "NATS_USER": "", "NATS_PASSWORD": "",
		"NATS_TOKEN": "", "NATS_CERT": "", "NATS_KEY": "", "NATS_CA": "",
	}
	for k, v := range env {
		defaults[k] = v
	}
	for k, v := range defaults {
		t.Setenv(k, v)
	}
	r := &running{exit: make(chan int, 1), logs: &syncBuffer{}}
	cfg, log, code := loadConfig(r.logs)
	if cfg == nil {
		t.Fatalf("config: exit %d: %s", code, r.logs)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	addr := make(chan net.Addr, 1)
	go func() { r.exit <- runWith(ctx, cfg, log, func(a net.Addr) { addr <- a }) }()
	select {
	case a := <-addr:
		r.base = "http://" + a.String()
	case code := <-r.exit:
		t.Fatalf("jetsnap run exited %d before serving HTTP:\n%s", code, r.logs)
	case <-time.After(10 * time.Second):
		t.Fatal("jetsnap run did not start its HTTP server")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.exit:
		case <-time.After(30 * time.Second):
			t.Error("jetsnap run did not stop")
		}
	})
	return r
}

// get returns the status and body of a GET of path.
func (r *running) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(r.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func (r *running) ready(t *testing.T) bool {
	code, _ := r.get(t, "/readyz")
	return code == http.StatusOK
}

// stop sends the "signal" and returns the exit code.
func (r *running) stop(t *testing.T) int {
	t.Helper()
	r.cancel()
	select {
	case code := <-r.exit:
		r.exit <- code // for the cleanup
		return code
	case <-time.After(30 * time.Second):
		t.Fatalf("jetsnap run did not stop within 30s:\n%s", r.logs)
		return -1
	}
}

// scrape reads /metrics.
func (r *running) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := r.get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics: %v\n%s", err, body)
	}
	return families
}

// value is the value of a counter or gauge with the given labels (all of
// them, name=value), or -1 if there is none.
func value(families map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := families[name]
	if f == nil {
		return -1
	}
	for _, m := range f.Metric {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
	}
	return -1
}

func hasLabels(m *dto.Metric, labels []string) bool {
	have := map[string]string{}
	for _, l := range m.Label {
		have[l.GetName()] = l.GetValue()
	}
	for _, l := range labels {
		k, v, _ := strings.Cut(l, "=")
		if have[k] != v {
			return false
		}
	}
	return true
}

func histogram(t *testing.T, families map[string]*dto.MetricFamily, name string) *dto.Histogram {
	t.Helper()
	f := families[name]
	if f == nil || len(f.Metric) != 1 || f.Metric[0].Histogram == nil {
		t.Fatalf("no histogram %s", name)
	}
	return f.Metric[0].Histogram
}

// bucket is the cumulative count of a histogram at upper bound le.
func bucket(h *dto.Histogram, le float64) uint64 {
	for _, b := range h.Bucket {
		if b.GetUpperBound() == le {
			return b.GetCumulativeCount()
		}
	}
	return 0
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// publisher is a producer's connection that rides out server restarts.
func publisher(t *testing.T, url string, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	if err := consumer.EnsureEventStream(context.Background(), js, "EVENTS", "events.>"); err != nil {
		t.Fatal(err)
	}
	return js
}

// deposit publishes n Deposited events of amount 1 for each actor.
func deposit(t *testing.T, js jetstream.JetStream, actors []string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range n {
		for _, a := range actors {
			if _, err := js.Publish(ctx, "events."+a, []byte(`{"type":"Deposited","amount":1}`)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// balance is the balance in the latest snapshot of actor, or -1.
func balance(nc *nats.Conn, actor string) (version uint64, bal float64) {
	r := snapshotter.NewReader(snapshotter.ReaderConfig{Pattern: snapshotter.MustPattern("events.{type}.{id}")}, nc, nil)
	snap, err := r.Latest(context.Background(), actor)
	if err != nil {
		return 0, -1
	}
	var st struct{ Balance float64 }
	_ = json.Unmarshal(snap.State, &st)
	return snap.Version, st.Balance
}

// TestRunOperations: `jetsnap run` against an external server. After a
// workload /metrics says what happened; /readyz flips to 503 while the
// server is down and back to 200 after it restarts on the same port and
// store, and events published after the restart get their snapshots; the
// signal stops it with exit 0.
func TestRunOperations(t *testing.T) {
	store := t.TempDir()
	srv := runNATS(t, -1, store, nil)
	port := srv.Addr().(*net.TCPAddr).Port
	js := publisher(t, srv.ClientURL())
	r := startRun(t, map[string]string{"NATS_URL": srv.ClientURL()})

	if code, body := r.get(t, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	waitFor(t, 10*time.Second, "/readyz 200", func() bool { return r.ready(t) })

	// 5 actors × 35 events: snapshots at 10, 20 and 30, each folding 10.
	actors := []string{"account.1", "account.2", "account.3", "account.4", "account.5"}
	deposit(t, js, actors, 35)
	var m map[string]*dto.MetricFamily
	// Settled: a capture queued twice (its event delivered again after a
	// reset of the consumer at start-up, on a slow machine) ends as
	// already up to date, after the 15th snapshot.
	waitFor(t, 20*time.Second, "15 snapshots, 175 events and no capture left in /metrics", func() bool {
		m = r.scrape(t)
		return value(m, "jetsnap_snapshots_published_total", "actor_type=account") == 15 &&
			value(m, "jetsnap_events_consumed_total") >= 175 &&
			value(m, "jetsnap_captures_queued") == 0 && value(m, "jetsnap_captures_running") == 0
	})
	replay := histogram(t, m, "jetsnap_replay_events")
	if replay.GetSampleCount() != 15 || replay.GetSampleSum() != 150 || bucket(replay, 10) != 15 || bucket(replay, 5) != 0 {
		t.Errorf("jetsnap_replay_events: count %d sum %v, le=5: %d, le=10: %d; want 15 captures of exactly 10 events",
			replay.GetSampleCount(), replay.GetSampleSum(), bucket(replay, 5), bucket(replay, 10))
	}
	if h := histogram(t, m, "jetsnap_capture_duration_seconds"); h.GetSampleCount() != 15 || h.GetSampleSum() <= 0 {
		t.Errorf("jetsnap_capture_duration_seconds: count %d sum %v", h.GetSampleCount(), h.GetSampleSum())
	}
	if h := histogram(t, m, "jetsnap_fold_wait_seconds"); h.GetSampleCount() < 15 {
		t.Errorf("jetsnap_fold_wait_seconds: count %d, want a wait per fold (15 or more)", h.GetSampleCount())
	}
	if h := histogram(t, m, "jetsnap_snapshot_size_bytes"); h.GetSampleCount() != 15 || h.GetSampleSum() < 15*50 {
		t.Errorf("jetsnap_snapshot_size_bytes: count %d sum %v", h.GetSampleCount(), h.GetSampleSum())
	}
	for name, want := range map[string]float64{
		"jetsnap_actors_tracked": 5, "jetsnap_snapshots_invalidated_total": 0, "jetsnap_consumer_pending": 0,
	} {
		if got := value(m, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := value(m, "jetsnap_reducer_errors_total", "actor_type=account"); got > 0 {
		t.Errorf("jetsnap_reducer_errors_total = %v", got)
	}
	nc := js.Conn()
	if v, b := balance(nc, "account.3"); v != 30 || b != 30 {
		t.Errorf("account.3: snapshot v%d balance %v, want v30 balance 30", v, b)
	}

	// An outage of the server.
	srv.Shutdown()
	waitFor(t, 10*time.Second, "/readyz 503 during the outage", func() bool { return !r.ready(t) })
	if code, body := r.get(t, "/readyz"); code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "not ready: ") {
		t.Errorf("/readyz during the outage: %d %q", code, body)
	}
	if code, _ := r.get(t, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz during the outage: %d, want 200 (alive)", code)
	}
	runNATS(t, port, store, nil) // the same port and store: the same server, back
	waitFor(t, 20*time.Second, "/readyz 200 after the restart", func() bool { return r.ready(t) })
	deposit(t, js, actors[:1], 10) // account.1 to v45: a snapshot at 40
	waitFor(t, 20*time.Second, "the snapshot of an event published after the restart", func() bool {
		v, b := balance(nc, "account.1")
		return v == 40 && b == 40
	})

	if code := r.stop(t); code != 0 {
		t.Fatalf("exit %d after the signal, want 0:\n%s", code, r.logs)
	}
	if _, err := http.Get(r.base + "/healthz"); err == nil {
		t.Error("HTTP server still up after exit")
	}
	for _, line := range strings.Split(r.logs.String(), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) {
			t.Errorf("error logged: %s", line)
		}
	}
	if !strings.Contains(r.logs.String(), "reconnected to NATS") {
		t.Errorf("no reconnect logged:\n%s", r.logs)
	}
}
