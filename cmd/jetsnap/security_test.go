package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// jetsnapPermissions are the minimum permissions README.md (Security)
// lists for jetsnap's user, with the default names: stream EVENTS, durable
// jetsnap, stream SNAPSHOTS on snapshots.>, service jetsnap.
func jetsnapPermissions() *server.Permissions {
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			"$JS.API.STREAM.INFO.EVENTS",
			"$JS.API.CONSUMER.CREATE.EVENTS.jetsnap", "$JS.API.CONSUMER.CREATE.EVENTS.jetsnap.>",
			"$JS.API.CONSUMER.INFO.EVENTS.jetsnap",
			"$JS.API.CONSUMER.MSG.NEXT.EVENTS.jetsnap",
			"$JS.API.CONSUMER.RESET.EVENTS.jetsnap", "$JS.API.CONSUMER.UNPIN.EVENTS.jetsnap",
			"$JS.ACK.EVENTS.jetsnap.>",
			"$JS.API.DIRECT.GET.EVENTS",
			"$JS.API.STREAM.INFO.SNAPSHOTS", "$JS.API.STREAM.CREATE.SNAPSHOTS", "$JS.API.STREAM.UPDATE.SNAPSHOTS",
			"$JS.API.STREAM.PURGE.SNAPSHOTS",
			"$JS.API.DIRECT.GET.SNAPSHOTS.>",
			"snapshots.>",
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>", "jetsnap.>", "$SRV.>"}},
		Response:  &server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute},
	}
}

// testPKI is a self-signed CA and the certificates it signs, as PEM files.
type testPKI struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "jetsnap test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", keyDER)
	}
	p := testPKI{ca: write("ca.pem", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

// TestRunSecurity: jetsnap connects with TLS (its own CA, a client
// certificate) and each kind of credentials, works with only the
// permissions README.md lists, and never logs a secret.
func TestRunSecurity(t *testing.T) {
	const password, adminPassword = "s3cret-Passw0rd", "admin-Passw0rd"
	pki := newPKI(t)
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	seedFile := filepath.Join(t.TempDir(), "jetsnap.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := runNATS(t, -1, t.TempDir(), func(o *server.Options) {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: pki.serverCert, KeyFile: pki.serverKey, CaFile: pki.ca, Verify: true})
		if err != nil {
			t.Fatal(err)
		}
		o.TLSConfig, o.TLS, o.TLSVerify, o.TLSTimeout = tc, true, true, 5
		o.Users = []*server.User{
			{Username: "jetsnap", Password: password, Permissions: jetsnapPermissions()},
			{Username: "admin", Password: adminPassword},
		}
		o.Nkeys = []*server.NkeyUser{{Nkey: pub, Permissions: jetsnapPermissions()}}
	})
	url := "tls://127.0.0.1:" + strconv.Itoa(srv.Addr().(*net.TCPAddr).Port)
	tlsEnv := map[string]string{"NATS_CA": pki.ca, "NATS_CERT": pki.clientCert, "NATS_KEY": pki.clientKey}
	with := func(env map[string]string) map[string]string {
		out := map[string]string{}
		for _, m := range []map[string]string{tlsEnv, env} {
			for k, v := range m {
				out[k] = v
			}
		}
		return out
	}
	js := publisher(t, url, nats.UserInfo("admin", adminPassword), nats.RootCAs(pki.ca), nats.ClientCert(pki.clientCert, pki.clientKey))
	// Any of these in a log line would be a leak, or a missing permission.
	leaks := regexp.MustCompile(`(?i)` + regexp.QuoteMeta(password) + `|` + regexp.QuoteMeta(string(seed)) + `|permission|authorization violation`)

	t.Run("user and password, client certificate", func(t *testing.T) {
		r := startRun(t, with(map[string]string{"NATS_URL": url, "NATS_USER": "jetsnap", "NATS_PASSWORD": password}))
		waitFor(t, 10*time.Second, "/readyz 200", func() bool { return r.ready(t) })
		deposit(t, js, []string{"account.7"}, 10)
		waitFor(t, 10*time.Second, "a snapshot at 10", func() bool { v, b := balance(js.Conn(), "account.7"); return v == 10 && b == 10 })
		// The service answers, replying under the response permission only.
		m, err := js.Conn().Request("jetsnap.state.account.7", nil, 5*time.Second)
		if err != nil || m.Header.Get("Jetsnap-Version") != "10" {
			t.Errorf("jetsnap.state.account.7: %v %v", err, m)
		}
		if code := r.stop(t); code != 0 {
			t.Errorf("exit %d", code)
		}
		if loc := leaks.FindStringIndex(r.logs.String()); loc != nil {
			t.Errorf("the logs show %q:\n%s", r.logs.String()[loc[0]:loc[1]], r.logs)
		}
		if !strings.Contains(r.logs.String(), `"password":"[redacted]"`) {
			t.Errorf("the start-up log does not show the password redacted:\n%s", r.logs)
		}
	})
	t.Run("password in NATS_URL", func(t *testing.T) {
		u := strings.Replace(url, "tls://", "tls://jetsnap:"+password+"@", 1)
		r := startRun(t, with(map[string]string{"NATS_URL": u}))
		waitFor(t, 10*time.Second, "/readyz 200", func() bool { return r.ready(t) })
		r.stop(t)
		if loc := leaks.FindStringIndex(r.logs.String()); loc != nil {
			t.Errorf("the logs show %q:\n%s", r.logs.String()[loc[0]:loc[1]], r.logs)
		}
	})
	t.Run("nkey", func(t *testing.T) {
		r := startRun(t, with(map[string]string{"NATS_URL": url, "NATS_NKEY": seedFile}))
		waitFor(t, 10*time.Second, "/readyz 200", func() bool { return r.ready(t) })
		r.stop(t)
		if loc := leaks.FindStringIndex(r.logs.String()); loc != nil {
			t.Errorf("the logs show %q:\n%s", r.logs.String()[loc[0]:loc[1]], r.logs)
		}
	})
	for _, c := range []struct {
		name, want string
		env        map[string]string
	}{
		{"wrong password", "Authorization Violation", with(map[string]string{"NATS_URL": url, "NATS_USER": "jetsnap", "NATS_PASSWORD": "not-" + password})},
		{"server not trusted without NATS_CA", "certificate signed by unknown authority",
			map[string]string{"NATS_URL": url, "NATS_USER": "jetsnap", "NATS_PASSWORD": password, "NATS_CERT": pki.clientCert, "NATS_KEY": pki.clientKey}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := startRun(t, c.env)
			select {
			case code := <-r.exit:
				r.exit <- code
				if code != 1 || !strings.Contains(r.logs.String(), c.want) || strings.Contains(r.logs.String(), password) {
					t.Errorf("exit %d, want 1 and %q in the logs, without the password:\n%s", code, c.want, r.logs)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("still running:\n%s", r.logs)
			}
		})
	}

	t.Run("token", func(t *testing.T) {
		const token = "t0ken-s3cret"
		srv := runNATS(t, -1, t.TempDir(), func(o *server.Options) { o.Authorization = token })
		publisher(t, srv.ClientURL(), nats.Token(token))
		r := startRun(t, map[string]string{"NATS_URL": srv.ClientURL(), "NATS_TOKEN": token})
		waitFor(t, 10*time.Second, "/readyz 200", func() bool { return r.ready(t) })
		r.stop(t)
		if strings.Contains(r.logs.String(), token) {
			t.Errorf("the logs show the token:\n%s", r.logs)
		}
	})
}
