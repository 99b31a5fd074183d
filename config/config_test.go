package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jetsnap/jetsnap/snapshotter"
)

// contract is every variable DESIGN.md and the issues name, in Usage order.
var contract = []string{
	"NATS_URL", "NATS_CREDS", "NATS_NKEY", "NATS_USER", "NATS_PASSWORD", "NATS_TOKEN", "NATS_CERT", "NATS_KEY", "NATS_CA",
	"JETSNAP_STREAM", "JETSNAP_DURABLE", "JETSNAP_SUBJECT_PATTERN", "JETSNAP_SNAPSHOT_STREAM", "JETSNAP_SNAPSHOT_PREFIX",
	"JETSNAP_KEEP", "JETSNAP_SNAPSHOT_REPLICAS", "JETSNAP_STRATEGY", "JETSNAP_EVERY", "JETSNAP_MIN_EVENTS",
	"JETSNAP_MAX_EVENTS", "JETSNAP_MAX_AGE", "JETSNAP_ON_TYPES", "JETSNAP_WORKERS", "JETSNAP_SCRIPTS_DIR",
	"JETSNAP_SCRIPT_TIMEOUT", "JETSNAP_MAX_STATE_BYTES", "JETSNAP_ACK_WAIT", "JETSNAP_ACK_MODE", "JETSNAP_MAX_ACK_PENDING", "JETSNAP_BUFFER_BYTES",
	"JETSNAP_DATA_DIR", "JETSNAP_EMBEDDED_LISTEN", "JETSNAP_HTTP_ADDR", "JETSNAP_LOG_FORMAT", "JETSNAP_LOG_LEVEL",
	"JETSNAP_SHUTDOWN_TIMEOUT",
}

// clearEnv unsets every variable jetsnap reads, and any other JETSNAP_*
// one, for the duration of the test.
func clearEnv(t *testing.T) {
	t.Helper()
	names := slices.Clone(contract)
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(strings.ToUpper(name), Prefix) {
			names = append(names, name)
		}
	}
	for _, name := range names {
		t.Setenv(name, "") // restores the old value at the end
		if err := os.Unsetenv(name); err != nil {
			t.Fatal(err)
		}
	}
}

func setEnv(t *testing.T, env map[string]string) {
	t.Helper()
	clearEnv(t)
	for k, v := range env {
		t.Setenv(k, v)
	}
}

func mustLoad(t *testing.T, env map[string]string) Config {
	t.Helper()
	setEnv(t, env)
	c, err := Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func requireEqual[T any](t *testing.T, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

// defaults is the configuration DESIGN.md gives when nothing is set.
func defaults() Config {
	return Config{
		Stream:           "EVENTS",
		Durable:          "jetsnap",
		SubjectPattern:   snapshotter.MustPattern("events.{type}.{id}"),
		SnapshotStream:   "SNAPSHOTS",
		SnapshotPrefix:   "snapshots",
		Keep:             3,
		SnapshotReplicas: 1,
		Strategy:         "hybrid",
		Every:            100,
		MinEvents:        10,
		MaxEvents:        500,
		MaxAge:           0,
		Workers:          16,
		ScriptsDir:       "./scripts",
		ScriptTimeout:    2 * time.Second,
		MaxStateBytes:    900 << 10,
		AckWait:          30 * time.Second,
		AckMode:          "batch",
		MaxAckPending:    20000,
		BufferBytes:      64 << 20,
		DataDir:          "./data",
		EmbeddedListen:   "127.0.0.1:4222",
		HTTPAddr:         ":9464",
		LogFormat:        "json",
		LogLevel:         "info",
		ShutdownTimeout:  10 * time.Second,
	}
}

func TestDefaults(t *testing.T) {
	c := mustLoad(t, nil)
	requireEqual(t, c, defaults())
	if !c.Embedded() {
		t.Error("Embedded() = false with NATS_URL unset")
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate(defaults) = %v", err)
	}
}

func TestLoadReadsEveryVariable(t *testing.T) {
	c := mustLoad(t, map[string]string{
		"NATS_URL":                  "nats://a:4222,nats://b:4222",
		"NATS_CREDS":                "/etc/nats/app.creds",
		"NATS_CERT":                 "/tls/cert.pem",
		"NATS_KEY":                  "/tls/key.pem",
		"NATS_CA":                   "/tls/ca.pem",
		"JETSNAP_STREAM":            "ORDERS",
		"JETSNAP_DURABLE":           "snaps",
		"JETSNAP_SUBJECT_PATTERN":   "app.{type}.{id}.{event}",
		"JETSNAP_SNAPSHOT_STREAM":   "ORDER_SNAPS",
		"JETSNAP_SNAPSHOT_PREFIX":   "snaps.app",
		"JETSNAP_KEEP":              "5",
		"JETSNAP_SNAPSHOT_REPLICAS": "3",
		"JETSNAP_STRATEGY":          "interval",
		"JETSNAP_EVERY":             "50",
		"JETSNAP_MIN_EVENTS":        "5",
		"JETSNAP_MAX_EVENTS":        "5",
		"JETSNAP_MAX_AGE":           "5m",
		"JETSNAP_ON_TYPES":          " Closed, Shipped ,,",
		"JETSNAP_WORKERS":           "256",
		"JETSNAP_SCRIPTS_DIR":       "/scripts",
		"JETSNAP_SCRIPT_TIMEOUT":    "500ms",
		"JETSNAP_MAX_STATE_BYTES":   "67108864",
		"JETSNAP_ACK_WAIT":          "1m",
		"JETSNAP_MAX_ACK_PENDING":   "1",
		"JETSNAP_ACK_MODE":          "each",
		"JETSNAP_BUFFER_BYTES":      "1000",
		"JETSNAP_DATA_DIR":          "/data",
		"JETSNAP_EMBEDDED_LISTEN":   "0.0.0.0:4333",
		"JETSNAP_HTTP_ADDR":         "127.0.0.1:9000",
		"JETSNAP_LOG_FORMAT":        "text",
		"JETSNAP_LOG_LEVEL":         "debug",
		"JETSNAP_SHUTDOWN_TIMEOUT":  "1m30s",
	})
	requireEqual(t, c, Config{
		NATS: NATS{
			URL:   "nats://a:4222,nats://b:4222",
			Creds: "/etc/nats/app.creds",
			Cert:  "/tls/cert.pem",
			Key:   "/tls/key.pem",
			CA:    "/tls/ca.pem",
		},
		Stream:           "ORDERS",
		Durable:          "snaps",
		SubjectPattern:   snapshotter.MustPattern("app.{type}.{id}.{event}"),
		SnapshotStream:   "ORDER_SNAPS",
		SnapshotPrefix:   "snaps.app",
		Keep:             5,
		SnapshotReplicas: 3,
		Strategy:         "interval",
		Every:            50,
		MinEvents:        5,
		MaxEvents:        5,
		MaxAge:           5 * time.Minute,
		OnTypes:          []string{"Closed", "Shipped"},
		Workers:          256,
		ScriptsDir:       "/scripts",
		ScriptTimeout:    500 * time.Millisecond,
		MaxStateBytes:    64 << 20,
		AckWait:          time.Minute,
		AckMode:          "each",
		MaxAckPending:    1,
		BufferBytes:      1000,
		DataDir:          "/data",
		EmbeddedListen:   "0.0.0.0:4333",
		HTTPAddr:         "127.0.0.1:9000",
		LogFormat:        "text",
		LogLevel:         "debug",
		ShutdownTimeout:  90 * time.Second,
	})
	if c.Embedded() {
		t.Error("Embedded() = true with NATS_URL set")
	}

	c = mustLoad(t, map[string]string{"NATS_USER": "app", "NATS_PASSWORD": "pw", "NATS_URL": "nats://h:4222"})
	requireEqual(t, c.NATS, NATS{URL: "nats://h:4222", User: "app", Password: "pw"})
	c = mustLoad(t, map[string]string{"NATS_NKEY": "/k.nk", "NATS_URL": "nats://h:4222"})
	requireEqual(t, c.NATS.NKey, "/k.nk")
	c = mustLoad(t, map[string]string{"NATS_TOKEN": "tok", "NATS_URL": "nats://h:4222"})
	requireEqual(t, c.NATS.Token, "tok")
}

// Only the exact names are read: envconfig would also read the bare tag
// name (EVERY) or a prefixed nested name (JETSNAP_NATS_URL) if the tags and
// prefix were set up differently.
func TestOnlyExactNames(t *testing.T) {
	env := map[string]string{
		"JETSNAP_NATS_URL":     "nats://wrong:4222",
		"JETSNAP_NATS_USER":    "wrong",
		"JETSNAP_URL":          "nats://wrong:4222",
		"URL":                  "nats://wrong:4222",
		"NATS_NATS_URL":        "nats://wrong:4222",
		"STREAM":               "WRONG",
		"EVERY":                "7",
		"STRATEGY":             "interval",
		"NATS_JETSNAP_WORKERS": "9",
	}
	c := mustLoad(t, env)
	requireEqual(t, c, defaults())

	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	requireEqual(t, Unknown(environ), []string{"JETSNAP_NATS_URL", "JETSNAP_NATS_USER", "JETSNAP_URL"})
}

func TestInvalid(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string // substrings of the error
	}{
		{"negative EVERY", map[string]string{"JETSNAP_EVERY": "-5"}, []string{"JETSNAP_EVERY=-5 is too small: it must be at least 1 (default 100)"}},
		{"zero EVERY", map[string]string{"JETSNAP_EVERY": "0"}, []string{"JETSNAP_EVERY=0"}},
		{"EVERY not a number", map[string]string{"JETSNAP_EVERY": "ten"}, []string{"JETSNAP_EVERY=ten is not a whole number: use e.g. 100"}},
		{"EVERY a fraction", map[string]string{"JETSNAP_EVERY": "1.5"}, []string{"JETSNAP_EVERY=1.5 is not a whole number"}},
		{"EVERY empty", map[string]string{"JETSNAP_EVERY": ""}, []string{"JETSNAP_EVERY is set but empty: unset it to use the default 100"}},
		{"WORKERS overflow", map[string]string{"JETSNAP_WORKERS": "99999999999999999999"}, []string{"JETSNAP_WORKERS=99999999999999999999 is out of range"}},
		{"MIN_EVENTS > MAX_EVENTS", map[string]string{"JETSNAP_MIN_EVENTS": "600"},
			[]string{"JETSNAP_MIN_EVENTS=600 is greater than JETSNAP_MAX_EVENTS=500: MIN_EVENTS must be <= MAX_EVENTS"}},
		{"negative MIN_EVENTS", map[string]string{"JETSNAP_MIN_EVENTS": "-1"}, []string{"JETSNAP_MIN_EVENTS=-1"}},
		{"zero MAX_EVENTS", map[string]string{"JETSNAP_MAX_EVENTS": "0"}, []string{"JETSNAP_MAX_EVENTS=0"}},
		{"pattern without {id}", map[string]string{"JETSNAP_SUBJECT_PATTERN": "events.{type}"},
			[]string{"JETSNAP_SUBJECT_PATTERN=events.{type}", "no {id}"}},
		{"pattern without {type}", map[string]string{"JETSNAP_SUBJECT_PATTERN": "events.*.{id}"}, []string{"JETSNAP_SUBJECT_PATTERN", "no {type}"}},
		{"pattern placeholder inside a token", map[string]string{"JETSNAP_SUBJECT_PATTERN": "events.{type}-x.{id}"}, []string{"JETSNAP_SUBJECT_PATTERN"}},
		{"pattern empty", map[string]string{"JETSNAP_SUBJECT_PATTERN": ""}, []string{"JETSNAP_SUBJECT_PATTERN is set but empty"}},
		{"unknown strategy", map[string]string{"JETSNAP_STRATEGY": "fast"},
			[]string{"JETSNAP_STRATEGY=fast is not known: use one of interval, version, hybrid"}},
		{"strategy in capitals", map[string]string{"JETSNAP_STRATEGY": "HYBRID"}, []string{"JETSNAP_STRATEGY=HYBRID"}},
		{"duration without unit", map[string]string{"JETSNAP_SCRIPT_TIMEOUT": "2"},
			[]string{"JETSNAP_SCRIPT_TIMEOUT=2 is not a duration: write a number with a unit"}},
		{"bad duration", map[string]string{"JETSNAP_MAX_AGE": "soon"}, []string{"JETSNAP_MAX_AGE=soon is not a duration"}},
		{"negative MAX_AGE", map[string]string{"JETSNAP_MAX_AGE": "-1s"}, []string{"JETSNAP_MAX_AGE=-1s is negative"}},
		{"zero SCRIPT_TIMEOUT", map[string]string{"JETSNAP_SCRIPT_TIMEOUT": "0"}, []string{"JETSNAP_SCRIPT_TIMEOUT=0s must be a positive duration"}},
		{"zero SHUTDOWN_TIMEOUT", map[string]string{"JETSNAP_SHUTDOWN_TIMEOUT": "0s"}, []string{"JETSNAP_SHUTDOWN_TIMEOUT=0s"}},
		{"negative ACK_WAIT", map[string]string{"JETSNAP_ACK_WAIT": "-30s"}, []string{"JETSNAP_ACK_WAIT=-30s"}},
		{"ACK_WAIT not above SCRIPT_TIMEOUT", map[string]string{"JETSNAP_ACK_WAIT": "2s"},
			[]string{"JETSNAP_ACK_WAIT=2s is not longer than JETSNAP_SCRIPT_TIMEOUT=2s"}},
		{"bad log format", map[string]string{"JETSNAP_LOG_FORMAT": "xml"}, []string{"JETSNAP_LOG_FORMAT=xml is not known: use one of json, text"}},
		{"bad log level", map[string]string{"JETSNAP_LOG_LEVEL": "verbose"}, []string{"JETSNAP_LOG_LEVEL=verbose", "debug, info, warn, error"}},
		{"zero KEEP", map[string]string{"JETSNAP_KEEP": "0"}, []string{"JETSNAP_KEEP=0 is too small"}},
		{"too many replicas", map[string]string{"JETSNAP_SNAPSHOT_REPLICAS": "6"}, []string{"JETSNAP_SNAPSHOT_REPLICAS=6 is too large: it must be between 1 and 5"}},
		{"zero replicas", map[string]string{"JETSNAP_SNAPSHOT_REPLICAS": "0"}, []string{"JETSNAP_SNAPSHOT_REPLICAS=0 is too small"}},
		{"zero WORKERS", map[string]string{"JETSNAP_WORKERS": "0"}, []string{"JETSNAP_WORKERS=0"}},
		{"too many WORKERS", map[string]string{"JETSNAP_WORKERS": "257"}, []string{"JETSNAP_WORKERS=257 is too large: it must be between 1 and 256"}},
		{"zero MAX_STATE_BYTES", map[string]string{"JETSNAP_MAX_STATE_BYTES": "0"}, []string{"JETSNAP_MAX_STATE_BYTES=0"}},
		{"huge MAX_STATE_BYTES", map[string]string{"JETSNAP_MAX_STATE_BYTES": "67108865"}, []string{"JETSNAP_MAX_STATE_BYTES=67108865 is too large"}},
		{"unknown ACK_MODE", map[string]string{"JETSNAP_ACK_MODE": "all"}, []string{"JETSNAP_ACK_MODE=all", "batch, each"}},
		{"zero MAX_ACK_PENDING", map[string]string{"JETSNAP_MAX_ACK_PENDING": "0"}, []string{"JETSNAP_MAX_ACK_PENDING=0"}},
		{"negative BUFFER_BYTES", map[string]string{"JETSNAP_BUFFER_BYTES": "-1"}, []string{"JETSNAP_BUFFER_BYTES=-1"}},
		{"empty STREAM", map[string]string{"JETSNAP_STREAM": ""}, []string{"JETSNAP_STREAM is empty: unset it to use the default EVENTS"}},
		{"STREAM with a dot", map[string]string{"JETSNAP_STREAM": "my.events"}, []string{"JETSNAP_STREAM=my.events is not a valid stream name"}},
		{"DURABLE with a space", map[string]string{"JETSNAP_DURABLE": "my durable"}, []string{`JETSNAP_DURABLE="my durable" is not a valid consumer name`}},
		{"one stream for both", map[string]string{"JETSNAP_SNAPSHOT_STREAM": "EVENTS"},
			[]string{"JETSNAP_SNAPSHOT_STREAM=EVENTS is the same as JETSNAP_STREAM=EVENTS"}},
		{"prefix with a wildcard", map[string]string{"JETSNAP_SNAPSHOT_PREFIX": "snaps.*"}, []string{"JETSNAP_SNAPSHOT_PREFIX=snaps.* is not a subject prefix"}},
		{"prefix with an empty token", map[string]string{"JETSNAP_SNAPSHOT_PREFIX": "snaps."}, []string{"JETSNAP_SNAPSHOT_PREFIX=snaps."}},
		{"prefix overlapping the events", map[string]string{"JETSNAP_SUBJECT_PATTERN": "snapshots.{type}.{id}"},
			[]string{"JETSNAP_SNAPSHOT_PREFIX=snapshots overlaps JETSNAP_SUBJECT_PATTERN=snapshots.{type}.{id}"}},
		{"prefix overlapping a > pattern", map[string]string{"JETSNAP_SUBJECT_PATTERN": "{type}.{id}.>"}, []string{"JETSNAP_SNAPSHOT_PREFIX=snapshots overlaps"}},
		{"empty SCRIPTS_DIR", map[string]string{"JETSNAP_SCRIPTS_DIR": ""}, []string{"JETSNAP_SCRIPTS_DIR is empty"}},
		{"empty DATA_DIR", map[string]string{"JETSNAP_DATA_DIR": " "}, []string{"JETSNAP_DATA_DIR is empty"}},
		{"HTTP_ADDR without colon", map[string]string{"JETSNAP_HTTP_ADDR": "9464"}, []string{"JETSNAP_HTTP_ADDR=9464 is not host:port"}},
		{"EMBEDDED_LISTEN bad port", map[string]string{"JETSNAP_EMBEDDED_LISTEN": "localhost:http"}, []string{"JETSNAP_EMBEDDED_LISTEN=localhost:http is not host:port"}},
		{"EMBEDDED_LISTEN port too big", map[string]string{"JETSNAP_EMBEDDED_LISTEN": "localhost:70000"}, []string{"JETSNAP_EMBEDDED_LISTEN=localhost:70000"}},
		{"NATS_URL empty entry", map[string]string{"NATS_URL": "nats://a:4222,,nats://b:4222"}, []string{"NATS_URL=nats://a:4222,,nats://b:4222 has an empty entry"}},
		{"password without user", map[string]string{"NATS_URL": "nats://a:4222", "NATS_PASSWORD": "pw"}, []string{"NATS_PASSWORD is set but NATS_USER is not"}},
		{"cert without key", map[string]string{"NATS_URL": "nats://a:4222", "NATS_CERT": "/c.pem"}, []string{"NATS_CERT=/c.pem and NATS_KEY=\"\""}},
		{"key without cert", map[string]string{"NATS_URL": "nats://a:4222", "NATS_KEY": "/k.pem"}, []string{"NATS_KEY=/k.pem"}},
		{"two auth methods", map[string]string{"NATS_URL": "nats://a:4222", "NATS_CREDS": "/a.creds", "NATS_TOKEN": "t"},
			[]string{"NATS_CREDS and NATS_TOKEN are both set: use only one of"}},
		{"three auth methods", map[string]string{"NATS_URL": "nats://a:4222", "NATS_CREDS": "/a.creds", "NATS_NKEY": "/a.nk", "NATS_USER": "u"},
			[]string{"NATS_CREDS, NATS_NKEY and NATS_USER are all set"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, tt.env)
			c, err := Load()
			if err == nil {
				t.Fatalf("Load() = %+v, nil; want an error", c)
			}
			requireEqual(t, c, Config{})
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q\ndoes not contain %q", msg, w)
				}
			}
			for _, raw := range []string{"envconfig", "strconv", "ParseInt", "converting"} {
				if strings.Contains(msg, raw) {
					t.Errorf("error %q shows the raw parse error (%q)", msg, raw)
				}
			}
			if !strings.HasPrefix(msg, "config: ") {
				t.Errorf("error %q does not start with the package prefix", msg)
			}
		})
	}
}

// Every problem is reported at once, each once, in the order of the
// variables; an unreadable value is not also reported by the checks that
// involve it.
func TestAllProblemsTogether(t *testing.T) {
	setEnv(t, map[string]string{
		"JETSNAP_EVERY":          "-1",
		"JETSNAP_MIN_EVENTS":     "lots", // unreadable: no "greater than MAX_EVENTS" too
		"JETSNAP_STRATEGY":       "fast",
		"JETSNAP_SCRIPT_TIMEOUT": "2",  // unreadable: no ACK_WAIT comparison
		"JETSNAP_ACK_WAIT":       "1s", // only compared with SCRIPT_TIMEOUT
		"NATS_PASSWORD":          "s3cr3t",
		"NATS_URL":               "nats://a:4222",
	})
	_, err := Load()
	if err == nil {
		t.Fatal("Load() = nil error")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{
		"config: 5 invalid settings:",
		"NATS_PASSWORD is set but NATS_USER is not: set both, or neither",
		"JETSNAP_STRATEGY=fast is not known: use one of interval, version, hybrid (default hybrid)",
		"JETSNAP_EVERY=-1 is too small: it must be at least 1 (default 100)",
		"JETSNAP_MIN_EVENTS=lots is not a whole number: use e.g. 10",
		"JETSNAP_SCRIPT_TIMEOUT=2 is not a duration: write a number with a unit, such as 2s, 500ms or 1m",
	}
	requireEqual(t, lines, want)
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Error("the error shows NATS_PASSWORD")
	}
}

func TestValidate(t *testing.T) {
	if err := defaults().Validate(); err != nil {
		t.Errorf("defaults().Validate() = %v", err)
	}
	err := Config{}.Validate()
	if err == nil {
		t.Fatal("Config{}.Validate() = nil; the zero Config is not valid")
	}
	for _, name := range []string{"JETSNAP_SUBJECT_PATTERN", "JETSNAP_STREAM", "JETSNAP_EVERY", "JETSNAP_WORKERS", "JETSNAP_LOG_LEVEL"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("Config{}.Validate() does not name %s: %v", name, err)
		}
	}
	c := defaults()
	c.OnTypes = []string{"Closed", " "}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "JETSNAP_ON_TYPES") {
		t.Errorf("Validate with a blank ON_TYPES entry = %v", err)
	}
}

// Every name a validation or parse error mentions is a real variable.
func TestProblemsNameKnownVariables(t *testing.T) {
	c := Config{NATS: NATS{URL: "a,,b", Password: "x", Cert: "c", Creds: "c", Token: "t", User: ""}}
	for _, p := range c.problems() {
		for _, v := range p.vars {
			if !slices.Contains(contract, v) {
				t.Errorf("problem %q is about %q, not a variable", p.msg, v)
			}
		}
	}
}

func TestUnknown(t *testing.T) {
	environ := []string{
		"JETSNAP_EVRY=1",
		"JETSNAP_EVERY=1",
		"JETSNAP_EVRY=2",
		"JETSNAP_MIN_EVENT=3",
		"jetsnap_every=1",
		"JETSNAP_=x",
		"JETSNAPX=1",
		"NATS_URLS=nats://x",
		"OTEL_SERVICE_NAME=jetsnap",
		"PATH=/bin",
		"=C:=C:\\",
		"JETSNAP_NOVALUE",
	}
	requireEqual(t, Unknown(environ), []string{"JETSNAP_", "JETSNAP_EVRY", "JETSNAP_MIN_EVENT", "JETSNAP_NOVALUE", "jetsnap_every"})

	var all []string
	for _, name := range contract {
		all = append(all, name+"=x")
	}
	if got := Unknown(all); len(got) != 0 {
		t.Errorf("Unknown(every known variable) = %v", got)
	}
}

func TestSuggest(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"JETSNAP_EVRY", "JETSNAP_EVERY"},
		{"JETSNAP_MIN_EVENT", "JETSNAP_MIN_EVENTS"},
		{"jetsnap_every", "JETSNAP_EVERY"},
		{"JETSNAP_WORKER", "JETSNAP_WORKERS"},
		{"JETSNAP_SNAPSHOTS_STREAM", "JETSNAP_SNAPSHOT_STREAM"},
		{"JETSNAP_NATS_URL", ""},
		{"JETSNAP_FOO", ""},
		{"JETSNAP_", ""},
	} {
		t.Run(tt.in, func(t *testing.T) { requireEqual(t, Suggest(tt.in), tt.want) })
	}
}

func TestUsage(t *testing.T) {
	var buf bytes.Buffer
	if err := Usage(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	rows := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			rows[f[0]] = line
		}
	}
	for _, name := range contract {
		row, ok := rows[name]
		if !ok {
			t.Errorf("Usage does not list %s:\n%s", name, out)
			continue
		}
		if def := defaultOf(name); def != "" && !strings.Contains(row, " "+def+" ") {
			t.Errorf("Usage row for %s does not show its default %q: %q", name, def, row)
		}
	}
	// Every variable read is in the contract, in the same order, with a meaning.
	var names []string
	for _, v := range variables() {
		names = append(names, v.name)
		if v.desc == "" {
			t.Errorf("%s has no desc tag", v.name)
		}
	}
	requireEqual(t, names, contract)
}

func TestSecretsNotShown(t *testing.T) {
	const password, token, urlPassword, urlToken = "hunter2", "t0k3n", "pa55", "urlt0k"
	c := defaults()
	c.NATS = NATS{
		URL:      "nats://app:" + urlPassword + "@a:4222,tls://" + urlToken + "@b:4443/x,nats://c:4222",
		User:     "app",
		Password: password,
		Token:    token,
		NKey:     "/secrets/app.nk",
		Cert:     "/tls/cert.pem",
		Key:      "/tls/key.pem",
		CA:       "/tls/ca.pem",
	}
	var json, text bytes.Buffer
	slog.New(slog.NewJSONHandler(&json, nil)).Info("start", "config", c, "nats", c.NATS)
	slog.New(slog.NewTextHandler(&text, nil)).Info("start", "config", c, "nats", c.NATS)
	forms := map[string]string{
		"String":     c.NATS.String(),
		"%v NATS":    fmt.Sprintf("%v", c.NATS),
		"%+v NATS":   fmt.Sprintf("%+v", c.NATS),
		"%#v NATS":   fmt.Sprintf("%#v", c.NATS),
		"%v Config":  fmt.Sprintf("%v", c),
		"%+v Config": fmt.Sprintf("%+v", c),
		"json log":   json.String(),
		"text log":   text.String(),
		"error":      c.Validate().Error(),
	}
	for name, s := range forms {
		for _, secret := range []string{password, token, urlPassword, urlToken} {
			if strings.Contains(s, secret) {
				t.Errorf("%s shows the secret %q: %s", name, secret, s)
			}
		}
	}
	want := "url=nats://app:[redacted]@a:4222,tls://[redacted]@b:4443/x,nats://c:4222 nkey=/secrets/app.nk user=app password=[redacted] token=[redacted] cert=/tls/cert.pem key=/tls/key.pem ca=/tls/ca.pem"
	requireEqual(t, c.NATS.String(), want)
	if !strings.Contains(json.String(), `"user":"app"`) || !strings.Contains(json.String(), `"min_events":10`) {
		t.Errorf("json log lacks the settings: %s", json.String())
	}
	requireEqual(t, NATS{}.String(), "embedded")
}

func TestRedactURL(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"nats://a:4222", "nats://a:4222"},
		{"a:4222", "a:4222"},
		{"nats://u:p@a:4222", "nats://u:[redacted]@a:4222"},
		{"nats://p@ss:w@rd@a:4222", "nats://p@ss:[redacted]@a:4222"},
		{"nats://u:p@ss@a:4222", "nats://u:[redacted]@a:4222"},
		{"u:p@a:4222", "u:[redacted]@a:4222"},
		{"nats://tok@a:4222/path@x", "nats://[redacted]@a:4222/path@x"},
		{"nats://a:4222/path@x", "nats://a:4222/path@x"},
	} {
		t.Run(tt.in, func(t *testing.T) { requireEqual(t, redactURL(tt.in), tt.want) })
	}
}

func TestSubjectsOverlap(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want bool
	}{
		{"events.*.*", "snapshots.>", false},
		{"snapshots.*.*", "snapshots.>", true},
		{"*.*", "snapshots.>", true},
		{"*", "snapshots.>", false},
		{"*.*.>", "snapshots.>", true},
		{"events.>", "events", false},
		{"a.b", "a.b", true},
		{"a.b", "a.c", false},
		{"a.*", "a.b.c", false},
		{"app.*.*.*", "app.snaps.>", true},
	} {
		t.Run(tt.a+" "+tt.b, func(t *testing.T) {
			requireEqual(t, subjectsOverlap(tt.a, tt.b), tt.want)
			requireEqual(t, subjectsOverlap(tt.b, tt.a), tt.want)
		})
	}
}
