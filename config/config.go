// Package config is jetsnap's configuration. Every setting comes from an
// environment variable (DESIGN.md, Configuration): the connection under the
// names the NATS tools use (NATS_URL, NATS_CREDS, ...), everything else under
// JETSNAP_. This is the only package that reads the environment; the rest of
// jetsnap receives values taken from a Config.
package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/jetsnap/jetsnap/snapshotter"
)

// Config is every setting of jetsnap, from environment variables. Load reads
// and checks it; the zero Config is not valid.
//
// Each field's envconfig tag is the full variable name and Load processes
// with an empty prefix. This is deliberate: with a prefix, envconfig also
// falls back to the bare tag name (a field tagged "EVERY" would read EVERY
// when JETSNAP_EVERY is unset), and a nested struct would be read as
// JETSNAP_NATS_URL. Here exactly the names below are read, nothing else.
type Config struct {
	// NATS is processed on its own (see Load), hence ignored here.
	NATS NATS `ignored:"true"`

	Stream           string              `envconfig:"JETSNAP_STREAM" default:"EVENTS" desc:"stream holding the events (created only for the embedded server)"`
	Durable          string              `envconfig:"JETSNAP_DURABLE" default:"jetsnap" desc:"name of jetsnap's durable pull consumer on JETSNAP_STREAM"`
	SubjectPattern   snapshotter.Pattern `envconfig:"JETSNAP_SUBJECT_PATTERN" default:"events.{type}.{id}" desc:"event subjects: {type} and {id} required, {event} optional, each a whole token; a final > is allowed"`
	SnapshotStream   string              `envconfig:"JETSNAP_SNAPSHOT_STREAM" default:"SNAPSHOTS" desc:"stream jetsnap creates or updates for the snapshots"`
	SnapshotPrefix   string              `envconfig:"JETSNAP_SNAPSHOT_PREFIX" default:"snapshots" desc:"snapshots are published on <prefix>.<type>.<id>"`
	Keep             int                 `envconfig:"JETSNAP_KEEP" default:"3" desc:"snapshots kept per actor (MaxMsgsPerSubject), >= 1"`
	SnapshotReplicas int                 `envconfig:"JETSNAP_SNAPSHOT_REPLICAS" default:"1" desc:"replicas of the snapshot stream, 1 to 5"`
	Strategy         string              `envconfig:"JETSNAP_STRATEGY" default:"hybrid" desc:"when an actor is due: interval, version or hybrid"`
	Every            int                 `envconfig:"JETSNAP_EVERY" default:"100" desc:"snapshot every this many events (all strategies), >= 1"`
	MinEvents        int                 `envconfig:"JETSNAP_MIN_EVENTS" default:"10" desc:"hybrid: fewest new events before a snapshot, >= 1"`
	MaxEvents        int                 `envconfig:"JETSNAP_MAX_EVENTS" default:"500" desc:"hybrid: a snapshot at the latest after this many new events, >= JETSNAP_MIN_EVENTS"`
	MaxAge           time.Duration       `envconfig:"JETSNAP_MAX_AGE" default:"0" desc:"hybrid: snapshot when the oldest unsnapshotted event is this old; 0 = off"`
	OnTypes          []string            `envconfig:"JETSNAP_ON_TYPES" desc:"hybrid: comma-separated event types that trigger a snapshot (after JETSNAP_MIN_EVENTS)"`
	Workers          int                 `envconfig:"JETSNAP_WORKERS" default:"16" desc:"capture workers (captures in flight: reading, folding, publishing), 1 to 256; at most one fold per CPU (GOMAXPROCS) runs at a time"`
	ScriptsDir       string              `envconfig:"JETSNAP_SCRIPTS_DIR" default:"./scripts" desc:"directory of the reducers, <type>.js; reloaded on change"`
	ScriptTimeout    time.Duration       `envconfig:"JETSNAP_SCRIPT_TIMEOUT" default:"2s" desc:"longest a reducer may run for one capture, > 0"`
	MaxStateBytes    int                 `envconfig:"JETSNAP_MAX_STATE_BYTES" default:"921600" desc:"largest stored state in bytes, up to 64 MiB; must fit the server's max_payload (1 MiB by default) with headers"`
	AckWait          time.Duration       `envconfig:"JETSNAP_ACK_WAIT" default:"30s" desc:"consumer ack wait; longer than JETSNAP_SCRIPT_TIMEOUT"`
	AckMode          string              `envconfig:"JETSNAP_ACK_MODE" default:"batch" desc:"batch: one process consumes the durable at a time and acks many events at once (others stand by); each: one ack per event, processes share the durable"`
	MaxAckPending    int                 `envconfig:"JETSNAP_MAX_ACK_PENDING" default:"20000" desc:"consumer max ack pending: events in flight, >= 1"`
	BufferBytes      int                 `envconfig:"JETSNAP_BUFFER_BYTES" default:"67108864" desc:"memory for events kept for captures, up to a quarter of it for their base snapshots, and up to half of it for a catch-up window after a restart (64 MiB); past it captures read events back from the stream, >= 0"`
	DataDir          string              `envconfig:"JETSNAP_DATA_DIR" default:"./data" desc:"embedded server only: JetStream store directory"`
	EmbeddedListen   string              `envconfig:"JETSNAP_EMBEDDED_LISTEN" default:"127.0.0.1:4222" desc:"embedded server only: host:port it listens on"`
	HTTPAddr         string              `envconfig:"JETSNAP_HTTP_ADDR" default:":9464" desc:"host:port of /metrics, /healthz and /readyz"`
	LogFormat        string              `envconfig:"JETSNAP_LOG_FORMAT" default:"json" desc:"log format: json or text"`
	LogLevel         string              `envconfig:"JETSNAP_LOG_LEVEL" default:"info" desc:"log level: debug, info, warn or error"`
	ShutdownTimeout  time.Duration       `envconfig:"JETSNAP_SHUTDOWN_TIMEOUT" default:"10s" desc:"on SIGTERM, longest wait for in-flight captures and the drain, > 0"`
}

// NATS holds the connection settings, under the names the NATS tools use.
// Its String, GoString and LogValue never show the password, the token or
// credentials written into NATS_URL; paths of key files are shown, their
// contents are never read here.
type NATS struct {
	URL      string `envconfig:"NATS_URL" desc:"server URLs, comma-separated; empty: run an embedded nats-server with JetStream"`
	Creds    string `envconfig:"NATS_CREDS" desc:"path of a credentials (.creds) file"`
	NKey     string `envconfig:"NATS_NKEY" desc:"path of an NKey seed file"`
	User     string `envconfig:"NATS_USER" desc:"user name, with NATS_PASSWORD"`
	Password string `envconfig:"NATS_PASSWORD" desc:"password of NATS_USER"`
	Token    string `envconfig:"NATS_TOKEN" desc:"authentication token"`
	Cert     string `envconfig:"NATS_CERT" desc:"path of the TLS client certificate, with NATS_KEY"`
	Key      string `envconfig:"NATS_KEY" desc:"path of the TLS client key, with NATS_CERT"`
	CA       string `envconfig:"NATS_CA" desc:"path of the CA certificates that verify the server"`
}

// Load reads the configuration from the environment, applies the defaults
// and validates it. The error lists every problem found, each naming its
// variable and saying what to do; on error the Config is the zero value.
func Load() (Config, error) {
	var c Config
	var probs []problem
	unreadable := map[string]bool{}

	// Only strings: envconfig cannot fail here short of a bug.
	if err := envconfig.Process("", &c.NATS); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}

	// One field at a time, so that one unparsable value does not hide the
	// others: envconfig.Process stops at the first.
	v := reflect.ValueOf(&c).Elem()
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if f.Tag.Get("ignored") == "true" {
			continue
		}
		one := reflect.New(reflect.StructOf([]reflect.StructField{{Name: f.Name, Type: f.Type, Tag: f.Tag}}))
		if err := envconfig.Process("", one.Interface()); err != nil {
			var pe *envconfig.ParseError
			if !errors.As(err, &pe) {
				return Config{}, fmt.Errorf("config: %w", err)
			}
			unreadable[pe.KeyName] = true
			probs = append(probs, parseProblem(pe, f.Tag.Get("default")))
			continue
		}
		v.Field(i).Set(one.Elem().Field(0))
	}
	c.OnTypes = cleanList(c.OnTypes)

	for _, p := range c.problems() {
		if !p.about(unreadable) { // already reported as unreadable
			probs = append(probs, p)
		}
	}
	if err := joinProblems(probs); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Embedded reports whether jetsnap runs its own nats-server, which it does
// when NATS_URL is empty.
func (c Config) Embedded() bool { return c.NATS.URL == "" }

// cleanList trims the entries of a comma-separated list and drops empty ones
// ("a, b," is a, b).
func cleanList(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
