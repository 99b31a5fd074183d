package config

import (
	"fmt"
	"log/slog"
	"reflect"
	"strings"
)

// redacted replaces a secret wherever settings are printed.
const redacted = "[redacted]"

// LogValue shows the connection settings without secrets: the password and
// token are replaced, and so is any user info written into NATS_URL. Unset
// settings are left out.
func (n NATS) LogValue() slog.Value {
	var attrs []slog.Attr
	for _, a := range n.shown() {
		attrs = append(attrs, slog.String(a[0], a[1]))
	}
	return slog.GroupValue(attrs...)
}

// String shows the connection settings without secrets, as LogValue does:
// "url=nats://a:4222 user=app password=[redacted]", or "embedded" when
// nothing is set.
func (n NATS) String() string {
	shown := n.shown()
	if len(shown) == 0 {
		return "embedded"
	}
	parts := make([]string, len(shown))
	for i, a := range shown {
		parts[i] = a[0] + "=" + a[1]
	}
	return strings.Join(parts, " ")
}

// GoString keeps %#v from printing secrets.
func (n NATS) GoString() string { return "config.NATS{" + n.String() + "}" }

// shown lists the set fields as key/value pairs, secrets redacted.
func (n NATS) shown() [][2]string {
	var out [][2]string
	for _, f := range []struct {
		key, value string
		secret     bool
	}{
		{"url", redactURLs(n.URL), false},
		{"creds", n.Creds, false},
		{"nkey", n.NKey, false},
		{"user", n.User, false},
		{"password", n.Password, true},
		{"token", n.Token, true},
		{"cert", n.Cert, false},
		{"key", n.Key, false},
		{"ca", n.CA, false},
	} {
		switch {
		case f.value == "":
		case f.secret:
			out = append(out, [2]string{f.key, redacted})
		default:
			out = append(out, [2]string{f.key, f.value})
		}
	}
	return out
}

// redactURLs hides the user info of each URL in a comma-separated list:
// nats://app:secret@host:4222 becomes nats://app:[redacted]@host:4222 and
// nats://token@host becomes nats://[redacted]@host.
func redactURLs(list string) string {
	if !strings.Contains(list, "@") {
		return list
	}
	urls := strings.Split(list, ",")
	for i, u := range urls {
		urls[i] = redactURL(u)
	}
	return strings.Join(urls, ",")
}

func redactURL(u string) string {
	scheme, rest := "", u
	if i := strings.Index(u, "://"); i >= 0 {
		scheme, rest = u[:i+3], u[i+3:]
	}
	authority, path := rest, ""
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		authority, path = rest[:j], rest[j:]
	}
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return u
	}
	userinfo, host := authority[:at], authority[at+1:]
	if user, _, ok := strings.Cut(userinfo, ":"); ok {
		return scheme + user + ":" + redacted + "@" + host + path
	}
	return scheme + redacted + "@" + host + path
}

// LogValue shows every setting, keyed by its variable name in lower case
// without JETSNAP_ (min_events, subject_pattern, ...), and the connection
// under "nats" without secrets.
func (c Config) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.Bool("embedded", c.Embedded()),
		slog.Any("nats", c.NATS),
	}
	v := reflect.ValueOf(c)
	for i := range v.NumField() {
		f := v.Type().Field(i)
		name := f.Tag.Get("envconfig")
		if name == "" {
			continue
		}
		key := strings.ToLower(strings.TrimPrefix(name, Prefix))
		switch val := v.Field(i).Interface().(type) {
		case fmt.Stringer:
			attrs = append(attrs, slog.String(key, val.String()))
		default:
			attrs = append(attrs, slog.Any(key, val))
		}
	}
	return slog.GroupValue(attrs...)
}
