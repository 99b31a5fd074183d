package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jetsnap/jetsnap/config"
	"github.com/jetsnap/jetsnap/scripting"
)

// TestDeployExample keeps deploy/kubernetes/jetsnap.yaml true to jetsnap:
// its variables exist and load, its probes and port are jetsnap's, its
// grace period outlasts the shutdown, and its inline reducer compiles.
func TestDeployExample(t *testing.T) {
	src, err := os.ReadFile("../../deploy/kubernetes/jetsnap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	manifest := string(src)
	_, sidecar, ok := strings.Cut(manifest, "- name: jetsnap\n")
	if !ok {
		t.Fatal("no container named jetsnap")
	}

	// Every variable is one jetsnap reads (or OTEL_*, or a helper) and the
	// values pass config.Load.
	known := map[string]bool{}
	for f := range reflect.TypeFor[config.NATS]().Fields() {
		known[f.Tag.Get("envconfig")] = true
	}
	env := regexp.MustCompile(`\{name: ([A-Z_]+), value: (?:"([^"]*)"|([^}]*))\}`).FindAllStringSubmatch(sidecar, -1)
	if len(env) < 5 {
		t.Fatalf("only %d variables found", len(env))
	}
	var environ []string
	for _, kv := range env {
		name, value := kv[1], strings.TrimSpace(kv[2]+kv[3])
		environ = append(environ, name+"="+value)
		switch {
		case strings.HasPrefix(name, config.Prefix), strings.HasPrefix(name, "OTEL_"):
		case strings.HasPrefix(name, "NATS_") && !known[name]:
			t.Errorf("%s is not a connection variable", name)
		}
		if strings.HasPrefix(name, config.Prefix) || strings.HasPrefix(name, "NATS_") {
			t.Setenv(name, value)
		}
	}
	if unknown := config.Unknown(environ); len(unknown) > 0 {
		t.Errorf("unknown variables %v", unknown)
	}
	t.Setenv("JETSNAP_SCRIPTS_DIR", "/scripts")
	cfg, err := config.Load()
	if err != nil {
		t.Fatalf("the example's settings do not load: %v", err)
	}

	for _, want := range []string{"path: /readyz", "path: /healthz", "mountPath: /scripts", "containerPort: 9464"} {
		if !strings.Contains(sidecar, want) {
			t.Errorf("the jetsnap container lacks %q", want)
		}
	}
	if !strings.HasSuffix(cfg.HTTPAddr, ":9464") {
		t.Errorf("JETSNAP_HTTP_ADDR %s is not the container port 9464", cfg.HTTPAddr)
	}
	grace := regexp.MustCompile(`terminationGracePeriodSeconds: (\d+)`).FindStringSubmatch(manifest)
	if grace == nil {
		t.Fatal("no terminationGracePeriodSeconds")
	}
	if s, _ := strconv.Atoi(grace[1]); time.Duration(s)*time.Second < cfg.ShutdownTimeout+10*time.Second {
		t.Errorf("terminationGracePeriodSeconds %ss is shorter than JETSNAP_SHUTDOWN_TIMEOUT %v plus the drain", grace[1], cfg.ShutdownTimeout)
	}

	// The inline reducer: the indented block after "account.js: |".
	_, block, ok := strings.Cut(manifest, "  account.js: |\n")
	if !ok {
		t.Fatal("no inline account.js")
	}
	var script strings.Builder
	for _, line := range strings.Split(block, "\n") {
		if line != "" && !strings.HasPrefix(line, "    ") {
			break
		}
		script.WriteString(strings.TrimPrefix(line, "    ") + "\n")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "account.js"), []byte(script.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	reg, err := scripting.Load(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("the inline reducer does not compile: %v", err)
	}
	if s, ok := reg.Lookup("account"); !ok || s.Reducer() != "account@r1" {
		t.Errorf("inline reducer: %v %v", s, ok)
	}
}
