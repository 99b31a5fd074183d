package main

import (
	"bytes"
	"strings"
	"testing"

	natstest "github.com/nats-io/nats-server/v2/test"
)

// TestRunMissingStream: against an external server without the EVENTS
// stream, jetsnap stops with an error naming the stream and JETSNAP_STREAM.
func TestRunMissingStream(t *testing.T) {
	opts := natstest.DefaultTestOptions
	opts.Port, opts.JetStream, opts.StoreDir = -1, true, t.TempDir()
	srv := natstest.RunServer(&opts)
	t.Cleanup(srv.Shutdown)
	t.Setenv("NATS_URL", srv.ClientURL())
	t.Setenv("JETSNAP_SCRIPTS_DIR", "../../scripts")
	t.Setenv("JETSNAP_HTTP_ADDR", "127.0.0.1:0")
	var stderr bytes.Buffer
	code := run([]string{"run"}, nil, &bytes.Buffer{}, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), `stream \"EVENTS\" not found`) || !strings.Contains(stderr.String(), "JETSNAP_STREAM") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
}

// TestRunBadConfig: an invalid variable stops start-up with exit 2 and a
// message naming it.
func TestRunBadConfig(t *testing.T) {
	t.Setenv("JETSNAP_EVERY", "-5")
	var stderr bytes.Buffer
	if code := run([]string{"run"}, nil, &bytes.Buffer{}, &stderr); code != 2 || !strings.Contains(stderr.String(), "JETSNAP_EVERY") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
}
