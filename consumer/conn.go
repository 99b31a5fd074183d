package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ConnConfig holds the connection settings, named as the NATS tools name
// them (NATS_URL, NATS_CREDS, ...).
type ConnConfig struct {
	URL      string // comma-separated server URLs
	Creds    string // credentials file
	NKey     string // nkey seed file
	User     string
	Password string
	Token    string
	Cert     string // client certificate file
	Key      string // client key file
	CA       string // CA file to verify the server
	Name     string // connection name shown by the server, default "jetsnap"
}

// Connect connects to NATS. It fails when no server answers at start; once
// connected it reconnects forever, so an outage of any length is survived.
func Connect(cfg ConnConfig, log *slog.Logger) (*nats.Conn, error) {
	if cfg.Name == "" {
		cfg.Name = "jetsnap"
	}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err == nil {
				return // closed on purpose
			}
			log.Warn("disconnected from NATS; reconnecting", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Warn("NATS async error", "subject", subject, "err", err)
		}),
	}
	if cfg.Creds != "" {
		opts = append(opts, nats.UserCredentials(cfg.Creds))
	}
	if cfg.NKey != "" {
		opt, err := nats.NkeyOptionFromSeed(cfg.NKey)
		if err != nil {
			return nil, fmt.Errorf("consumer: NATS_NKEY %s: %w", cfg.NKey, err)
		}
		opts = append(opts, opt)
	}
	if cfg.User != "" || cfg.Password != "" {
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.Token != "" {
		opts = append(opts, nats.Token(cfg.Token))
	}
	if cfg.Cert != "" || cfg.Key != "" {
		if cfg.Cert == "" || cfg.Key == "" {
			return nil, errors.New("consumer: NATS_CERT and NATS_KEY go together: set both or neither")
		}
		opts = append(opts, nats.ClientCert(cfg.Cert, cfg.Key))
	}
	if cfg.CA != "" {
		opts = append(opts, nats.RootCAs(cfg.CA))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("consumer: connect to NATS_URL %s: %w", redact(cfg.URL), err)
	}
	return nc, nil
}

// redact hides passwords in URLs such as nats://user:secret@host.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		if at := strings.LastIndex(u, "@"); at >= 0 {
			if scheme := strings.Index(u, "://"); scheme >= 0 && scheme < at {
				parts[i] = u[:scheme+3] + "[redacted]" + u[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}

// EmbeddedConfig describes the embedded nats-server.
type EmbeddedConfig struct {
	Listen  string // host:port; port -1 picks a free one
	DataDir string // JetStream store
}

// StartEmbedded starts an in-process nats-server with JetStream and waits
// until it accepts connections. The caller shuts it down.
func StartEmbedded(cfg EmbeddedConfig) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("consumer: JETSNAP_EMBEDDED_LISTEN %q is not host:port: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("consumer: JETSNAP_EMBEDDED_LISTEN %q: port %q is not a number", cfg.Listen, portStr)
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "jetsnap-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.DataDir,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer: embedded nats-server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("consumer: embedded nats-server did not start listening on %s; is the port in use? Set JETSNAP_EMBEDDED_LISTEN", cfg.Listen)
	}
	return srv, nil
}

// StreamSubject is the subject an EVENTS stream created by jetsnap stores:
// the consumer's filter itself (events.*.*). A stream on a wider subject
// (events.>) makes the server match every delivery against the filter,
// which measured five times the server's CPU per event (jetsnap bench
// --stream-subject).
func StreamSubject(filter string) string { return filter }

// EnsureEventStream creates the EVENTS stream if it does not exist (file
// storage, direct gets allowed). An existing stream is left unchanged. Only
// the embedded mode and the demo use it: against an external server the
// producers own the stream.
func EnsureEventStream(ctx context.Context, js jetstream.JetStream, name string, subjects ...string) error {
	_, err := js.Stream(ctx, name)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("consumer: look up stream %q: %w", name, err)
	}
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        name,
		Description: "events (created by jetsnap's embedded mode)",
		Subjects:    subjects,
		Storage:     jetstream.FileStorage,
		AllowDirect: true,
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("consumer: create stream %q on %v: %w", name, subjects, err)
	}
	return nil
}
