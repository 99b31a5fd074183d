package config

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/jetsnap/jetsnap/snapshotter"
)

// Bounds checked by Validate.
const (
	maxWorkers       = 256
	maxReplicas      = 5
	maxStateBytesCap = 64 << 20 // 64 MiB, NATS's hard max_payload
)

// problem is one invalid setting. vars are the variables it is about, so
// that Load can leave out what it already reported as unreadable.
type problem struct {
	vars []string
	msg  string
}

func (p problem) Error() string { return p.msg }

func (p problem) about(vars map[string]bool) bool {
	for _, v := range p.vars {
		if vars[v] {
			return true
		}
	}
	return false
}

// order is the position of the problem's first variable in variables.
func (p problem) order() int {
	if len(p.vars) == 0 {
		return -1
	}
	return slices.IndexFunc(variables(), func(v variable) bool { return v.name == p.vars[0] })
}

func newProblem(vars []string, format string, args ...any) problem {
	return problem{vars: vars, msg: fmt.Sprintf(format, args...)}
}

// joinProblems makes one error of all problems: "config: " and the problem
// when there is one, else a count and one problem per line, in the order of
// the variables in Usage.
func joinProblems(probs []problem) error {
	slices.SortStableFunc(probs, func(a, b problem) int { return cmp.Compare(a.order(), b.order()) })
	switch len(probs) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("config: %w", probs[0])
	}
	errs := make([]error, len(probs))
	for i, p := range probs {
		errs[i] = p
	}
	return fmt.Errorf("config: %d invalid settings:\n%w", len(probs), errors.Join(errs...))
}

// Validate checks every setting and returns all problems together, each
// naming its variable. Load calls it; call it yourself on a Config built or
// changed in code.
func (c Config) Validate() error { return joinProblems(c.problems()) }

func (c Config) problems() []problem {
	var ps []problem
	add := func(p *problem) {
		if p != nil {
			ps = append(ps, *p)
		}
	}

	ps = append(ps, c.NATS.problems()...)

	add(checkName("JETSNAP_STREAM", c.Stream, "stream"))
	add(checkName("JETSNAP_DURABLE", c.Durable, "consumer"))
	add(checkName("JETSNAP_SNAPSHOT_STREAM", c.SnapshotStream, "stream"))
	if c.Stream != "" && c.Stream == c.SnapshotStream {
		add(&problem{[]string{"JETSNAP_SNAPSHOT_STREAM", "JETSNAP_STREAM"}, fmt.Sprintf(
			"%s is the same as %s: snapshots need a stream of their own", kv("JETSNAP_SNAPSHOT_STREAM", c.SnapshotStream), kv("JETSNAP_STREAM", c.Stream))})
	}

	pattern, err := snapshotter.ParsePattern(c.SubjectPattern.String())
	if err != nil {
		add(&problem{[]string{"JETSNAP_SUBJECT_PATTERN"}, fmt.Sprintf("%s: %v", kv("JETSNAP_SUBJECT_PATTERN", c.SubjectPattern.String()), err)})
	}
	prefixErr := checkPrefix(c.SnapshotPrefix)
	add(prefixErr)
	if err == nil && prefixErr == nil {
		snaps := c.SnapshotPrefix + ".>"
		if subjectsOverlap(pattern.Filter(), snaps) {
			add(&problem{[]string{"JETSNAP_SNAPSHOT_PREFIX", "JETSNAP_SUBJECT_PATTERN"}, fmt.Sprintf(
				"%s overlaps %s: snapshot subjects (%s) must not match event subjects (%s); choose another prefix",
				kv("JETSNAP_SNAPSHOT_PREFIX", c.SnapshotPrefix), kv("JETSNAP_SUBJECT_PATTERN", pattern.String()), snaps, pattern.Filter())})
		}
	}

	add(checkRange("JETSNAP_KEEP", c.Keep, 1, 0))
	add(checkRange("JETSNAP_SNAPSHOT_REPLICAS", c.SnapshotReplicas, 1, maxReplicas))
	add(checkOneOf("JETSNAP_STRATEGY", c.Strategy, "interval", "version", "hybrid"))
	add(checkRange("JETSNAP_EVERY", c.Every, 1, 0))
	minErr := checkRange("JETSNAP_MIN_EVENTS", c.MinEvents, 1, 0)
	maxErr := checkRange("JETSNAP_MAX_EVENTS", c.MaxEvents, 1, 0)
	add(minErr)
	add(maxErr)
	if minErr == nil && maxErr == nil && c.MinEvents > c.MaxEvents {
		add(&problem{[]string{"JETSNAP_MIN_EVENTS", "JETSNAP_MAX_EVENTS"}, fmt.Sprintf(
			"%s is greater than %s: MIN_EVENTS must be <= MAX_EVENTS",
			kv("JETSNAP_MIN_EVENTS", strconv.Itoa(c.MinEvents)), kv("JETSNAP_MAX_EVENTS", strconv.Itoa(c.MaxEvents)))})
	}
	if c.MaxAge < 0 {
		add(&problem{[]string{"JETSNAP_MAX_AGE"}, fmt.Sprintf("%s is negative: use 0 to turn it off, or a duration such as 5m", kv("JETSNAP_MAX_AGE", c.MaxAge.String()))})
	}
	for _, t := range c.OnTypes {
		if t == "" || strings.TrimSpace(t) != t {
			add(&problem{[]string{"JETSNAP_ON_TYPES"}, fmt.Sprintf("%s has an empty entry or one with spaces around it (%q): list event types separated by commas", kv("JETSNAP_ON_TYPES", strings.Join(c.OnTypes, ",")), t)})
			break
		}
	}
	add(checkRange("JETSNAP_WORKERS", c.Workers, 1, maxWorkers))

	add(checkNotEmpty("JETSNAP_SCRIPTS_DIR", c.ScriptsDir))
	scriptErr := checkPositive("JETSNAP_SCRIPT_TIMEOUT", c.ScriptTimeout)
	add(scriptErr)
	add(checkRange("JETSNAP_MAX_STATE_BYTES", c.MaxStateBytes, 1, maxStateBytesCap))

	ackErr := checkPositive("JETSNAP_ACK_WAIT", c.AckWait)
	add(ackErr)
	if ackErr == nil && scriptErr == nil && c.AckWait <= c.ScriptTimeout {
		add(&problem{[]string{"JETSNAP_ACK_WAIT", "JETSNAP_SCRIPT_TIMEOUT"}, fmt.Sprintf(
			"%s is not longer than %s: an event that makes its actor due is acked only after the capture, so ACK_WAIT must be longer than SCRIPT_TIMEOUT",
			kv("JETSNAP_ACK_WAIT", c.AckWait.String()), kv("JETSNAP_SCRIPT_TIMEOUT", c.ScriptTimeout.String()))})
	}
	add(checkRange("JETSNAP_MAX_ACK_PENDING", c.MaxAckPending, 1, 0))
	add(checkRange("JETSNAP_BUFFER_BYTES", c.BufferBytes, 0, 0))

	add(checkNotEmpty("JETSNAP_DATA_DIR", c.DataDir))
	add(checkHostPort("JETSNAP_EMBEDDED_LISTEN", c.EmbeddedListen))
	add(checkHostPort("JETSNAP_HTTP_ADDR", c.HTTPAddr))
	add(checkOneOf("JETSNAP_ACK_MODE", c.AckMode, "batch", "each"))
	add(checkOneOf("JETSNAP_LOG_FORMAT", c.LogFormat, "json", "text"))
	add(checkOneOf("JETSNAP_LOG_LEVEL", c.LogLevel, "debug", "info", "warn", "error"))
	add(checkPositive("JETSNAP_SHUTDOWN_TIMEOUT", c.ShutdownTimeout))
	return ps
}

// problems checks the connection settings. Messages never include secrets.
func (n NATS) problems() []problem {
	var ps []problem
	if n.URL != "" {
		for _, u := range strings.Split(n.URL, ",") {
			if strings.TrimSpace(u) == "" {
				ps = append(ps, newProblem([]string{"NATS_URL"}, "%s has an empty entry: list server URLs separated by commas, e.g. nats://a:4222,nats://b:4222", kv("NATS_URL", redactURLs(n.URL))))
				break
			}
		}
	}
	if n.Password != "" && n.User == "" {
		ps = append(ps, newProblem([]string{"NATS_PASSWORD", "NATS_USER"}, "NATS_PASSWORD is set but NATS_USER is not: set both, or neither"))
	}
	if (n.Cert == "") != (n.Key == "") {
		ps = append(ps, newProblem([]string{"NATS_CERT", "NATS_KEY"}, "%s and %s: a TLS client certificate needs its key, set both or neither", kv("NATS_CERT", n.Cert), kv("NATS_KEY", n.Key)))
	}
	var auth []string
	for _, a := range []struct{ name, value string }{
		{"NATS_CREDS", n.Creds}, {"NATS_NKEY", n.NKey}, {"NATS_USER", n.User}, {"NATS_TOKEN", n.Token},
	} {
		if a.value != "" {
			auth = append(auth, a.name)
		}
	}
	if len(auth) > 1 {
		set := strings.Join(auth[:len(auth)-1], ", ") + " and " + auth[len(auth)-1] + " are all set"
		if len(auth) == 2 {
			set = auth[0] + " and " + auth[1] + " are both set"
		}
		ps = append(ps, newProblem(auth, "%s: use only one of NATS_CREDS, NATS_NKEY, NATS_USER/NATS_PASSWORD, NATS_TOKEN", set))
	}
	return ps
}

// parseProblem says why a variable could not be read.
func parseProblem(pe *envconfig.ParseError, def string) problem {
	vars := []string{pe.KeyName}
	if pe.Value == "" {
		return newProblem(vars, "%s is set but empty: unset it to use the default %s, or give a value", pe.KeyName, orNone(def))
	}
	name := kv(pe.KeyName, pe.Value)
	switch pe.TypeName {
	case "time.Duration":
		return newProblem(vars, "%s is not a duration: write a number with a unit, such as %s, 500ms or 1m", name, orNone(def))
	case "int":
		if errors.Is(pe.Err, strconv.ErrRange) {
			return newProblem(vars, "%s is out of range: use a whole number such as %s", name, orNone(def))
		}
		return newProblem(vars, "%s is not a whole number: use e.g. %s", name, orNone(def))
	}
	return newProblem(vars, "%s: %v", name, pe.Err)
}

func checkRange(name string, v, lo, hi int) *problem {
	switch {
	case v < lo && hi > 0:
		return &problem{[]string{name}, fmt.Sprintf("%s is too small: it must be between %d and %d%s", kv(name, strconv.Itoa(v)), lo, hi, defaultHint(name))}
	case v < lo:
		return &problem{[]string{name}, fmt.Sprintf("%s is too small: it must be at least %d%s", kv(name, strconv.Itoa(v)), lo, defaultHint(name))}
	case hi > 0 && v > hi:
		return &problem{[]string{name}, fmt.Sprintf("%s is too large: it must be between %d and %d%s", kv(name, strconv.Itoa(v)), lo, hi, defaultHint(name))}
	}
	return nil
}

func checkPositive(name string, d time.Duration) *problem {
	if d <= 0 {
		return &problem{[]string{name}, fmt.Sprintf("%s must be a positive duration, such as 2s or 1m%s", kv(name, d.String()), defaultHint(name))}
	}
	return nil
}

func checkOneOf(name, v string, allowed ...string) *problem {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return &problem{[]string{name}, fmt.Sprintf("%s is not known: use one of %s%s", kv(name, v), strings.Join(allowed, ", "), defaultHint(name))}
}

func checkNotEmpty(name, v string) *problem {
	if strings.TrimSpace(v) == "" {
		return &problem{[]string{name}, fmt.Sprintf("%s is empty: unset it to use the default %s, or give a value", name, orNone(defaultOf(name)))}
	}
	return nil
}

// checkName checks a stream or consumer name as JetStream does.
func checkName(name, v, what string) *problem {
	if p := checkNotEmpty(name, v); p != nil {
		return p
	}
	if strings.ContainsAny(v, ".*>/\\") || strings.IndexFunc(v, isSpaceOrControl) >= 0 {
		return &problem{[]string{name}, fmt.Sprintf("%s is not a valid %s name: it cannot contain whitespace, '.', '*', '>', '/' or '\\'", kv(name, v), what)}
	}
	return nil
}

// checkPrefix checks the snapshot subject prefix: one or more literal tokens.
func checkPrefix(v string) *problem {
	const name = "JETSNAP_SNAPSHOT_PREFIX"
	if p := checkNotEmpty(name, v); p != nil {
		return p
	}
	for _, tok := range strings.Split(v, ".") {
		if tok == "" || strings.ContainsAny(tok, "*>") || strings.IndexFunc(tok, isSpaceOrControl) >= 0 {
			return &problem{[]string{name}, fmt.Sprintf("%s is not a subject prefix: use literal tokens separated by dots, e.g. snapshots or app.snapshots", kv(name, v))}
		}
	}
	return nil
}

func checkHostPort(name, v string) *problem {
	_, port, err := net.SplitHostPort(v)
	if err == nil {
		if n, perr := strconv.Atoi(port); perr != nil || n < 0 || n > 65535 {
			err = fmt.Errorf("port %q is not a number from 0 to 65535", port)
		}
	}
	if err != nil {
		return &problem{[]string{name}, fmt.Sprintf("%s is not host:port (%v): use e.g. 127.0.0.1:4222 or :9464", kv(name, v), err)}
	}
	return nil
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// subjectsOverlap reports whether some subject matches both filters.
func subjectsOverlap(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; ; i++ {
		switch {
		case i < len(at) && at[i] == ">":
			return i < len(bt)
		case i < len(bt) && bt[i] == ">":
			return i < len(at)
		case i == len(at) || i == len(bt):
			return len(at) == len(bt)
		case at[i] != "*" && bt[i] != "*" && at[i] != bt[i]:
			return false
		}
	}
}

// kv formats a setting as NAME=value, quoting the value when it would
// otherwise be ambiguous.
func kv(name, value string) string {
	if value == "" || strings.IndexFunc(value, func(r rune) bool { return isSpaceOrControl(r) || r == '"' || r == '\'' }) >= 0 {
		return name + "=" + strconv.Quote(value)
	}
	return name + "=" + value
}

// defaultHint is " (default X)" for a variable with a default.
func defaultHint(name string) string {
	if def := defaultOf(name); def != "" {
		return " (default " + def + ")"
	}
	return ""
}

func orNone(def string) string {
	if def == "" {
		return `""`
	}
	return def
}
