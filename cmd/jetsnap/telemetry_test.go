package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

func TestExporterFor(t *testing.T) {
	for _, c := range []struct {
		env    map[string]string
		signal string
		want   string
		ok     bool
	}{
		{nil, "METRICS", "", false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "TRACES", "otlp", true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, "TRACES", "otlp", true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, "METRICS", "", false},
		{map[string]string{"OTEL_TRACES_EXPORTER": "console"}, "TRACES", "console", true},
		{map[string]string{"OTEL_METRICS_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "METRICS", "", false},
	} {
		name, ok := exporterFor(func(k string) string { return c.env[k] }, c.signal)
		if name != c.want || ok != c.ok {
			t.Errorf("%v %s: %q %v, want %q %v", c.env, c.signal, name, ok, c.want, c.ok)
		}
	}
}

// otlpReceiver is an OTLP/HTTP endpoint that keeps what it is sent.
type otlpReceiver struct {
	mu      sync.Mutex
	metrics []*colmetricpb.ExportMetricsServiceRequest
	traces  []*coltracepb.ExportTraceServiceRequest
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	data, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	switch r.URL.Path {
	case "/v1/metrics":
		req := &colmetricpb.ExportMetricsServiceRequest{}
		err = proto.Unmarshal(data, req)
		o.metrics = append(o.metrics, req)
	case "/v1/traces":
		req := &coltracepb.ExportTraceServiceRequest{}
		err = proto.Unmarshal(data, req)
		o.traces = append(o.traces, req)
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(nil)
}

// TestRunOTLP: with OTEL_EXPORTER_OTLP_ENDPOINT set, jetsnap pushes its
// metrics and a span per capture by OTLP, the span linked to the span of
// the producer whose traceparent the events carry; the signal flushes them.
func TestRunOTLP(t *testing.T) {
	recv := &otlpReceiver{}
	collector := httptest.NewServer(recv)
	t.Cleanup(collector.Close)
	srv := runNATS(t, -1, t.TempDir(), nil)
	js := publisher(t, srv.ClientURL())
	r := startRun(t, map[string]string{
		"NATS_URL": srv.ClientURL(), "OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL,
		"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_SERVICE_NAME": "jetsnap-test",
	})
	waitFor(t, 10*time.Second, "/readyz 200", func() bool { return r.ready(t) })

	producer, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 10 {
		msg := &nats.Msg{Subject: "events.account.9", Data: []byte(`{"type":"Deposited","amount":1}`), Header: nats.Header{}}
		msg.Header.Set("traceparent", "00-"+producer.String()+"-b7ad6b7169203331-01")
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "a snapshot at 10", func() bool { v, _ := balance(js.Conn(), "account.9"); return v == 10 })
	if code := r.stop(t); code != 0 {
		t.Fatalf("exit %d:\n%s", code, r.logs)
	}

	recv.mu.Lock()
	defer recv.mu.Unlock()
	var span bool
	for _, req := range recv.traces {
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					if s.Name != "jetsnap.capture account" || len(s.Links) != 1 || !bytes.Equal(s.Links[0].TraceId, producer[:]) {
						t.Errorf("span %q with links %v", s.Name, s.Links)
						continue
					}
					span = true
					if got := rs.Resource.String(); !bytes.Contains([]byte(got), []byte("jetsnap-test")) {
						t.Errorf("resource %s lacks OTEL_SERVICE_NAME", got)
					}
				}
			}
		}
	}
	if !span {
		t.Errorf("no capture span exported (%d trace requests)", len(recv.traces))
	}
	var published bool
	for _, req := range recv.metrics {
		for _, rm := range req.ResourceMetrics {
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					if m.Name == "jetsnap.snapshots.published" && len(m.GetSum().GetDataPoints()) == 1 && m.GetSum().GetDataPoints()[0].GetAsInt() == 1 {
						published = true
					}
				}
			}
		}
	}
	if !published {
		t.Errorf("jetsnap.snapshots.published = 1 not exported (%d metric requests)", len(recv.metrics))
	}
}
