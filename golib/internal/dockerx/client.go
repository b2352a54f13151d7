package dockerx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/docker/docker/client"
)

// DefaultHost is the engine address used when Options.Host is empty. It is
// the socket PL/Container hard-codes for local engines.
const DefaultHost = "unix:///var/run/docker.sock"

// DefaultCallTimeout bounds a single Engine API call when Options.CallTimeout
// is not set (nomad uses the same floor for its per-call contexts).
const DefaultCallTimeout = 30 * time.Second

// maxDialTimeout caps the time spent establishing a connection, like
// PL/Container's 10 s CURLOPT_CONNECTTIMEOUT. It is shorter than the call
// timeout so that an engine that does not answer the dial is reported as
// unreachable rather than as a plain deadline.
const maxDialTimeout = 10 * time.Second

// userAgent is sent with every request so engine logs name the caller.
const userAgent = "plcoordinator-dockerx"

// Options configures a Client. Nothing is read from the environment: inside
// the PostgreSQL background worker the Go side sees an empty environment, so
// every setting must be passed explicitly.
type Options struct {
	// Host is the engine address: "unix:///path/to/docker.sock" or
	// "tcp://host:port". Empty means DefaultHost.
	Host string

	// TLSCA is a PEM file with the CA certificates that sign the engine's
	// server certificate. Only valid for tcp hosts.
	TLSCA string

	// TLSCert and TLSKey are a PEM client certificate and its key, for
	// engines started with --tlsverify. Both or neither must be set.
	TLSCert string
	TLSKey  string

	// TLSVerify enables TLS and verifies the server certificate (against
	// TLSCA, or the system roots when TLSCA is empty). When it is false but
	// one of the TLS files is set, TLS is used without verifying the server,
	// which is what "docker --tls" does.
	TLSVerify bool

	// Username and Password enable HTTP basic authentication on every
	// request, for remote engines behind an authenticating proxy. As in
	// PL/Container the header is only sent when both are set. Without TLS
	// the credentials travel in clear text.
	Username string
	Password string

	// CallTimeout bounds every API call that is not a stream. Zero or
	// negative means DefaultCallTimeout.
	CallTimeout time.Duration
}

// Client talks to one Docker engine. It is safe for concurrent use. It is
// the only type in the project that holds a github.com/docker/docker client;
// consumers depend on small interfaces that *Client satisfies.
type Client struct {
	api         *client.Client
	host        string
	callTimeout time.Duration
}

// New returns a Client for o.Host. It does not contact the engine; use Ping
// for that. The Engine API version is negotiated on the first request, so
// old engines (such as 20.10, API 1.41) work with this newer client.
func New(o Options) (*Client, error) {
	host := o.Host
	if host == "" {
		host = DefaultHost
	}
	timeout := o.CallTimeout
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	proto, addr, ok := strings.Cut(host, "://")
	if !ok || addr == "" {
		return nil, fmt.Errorf("dockerx: host %q: want unix:///path or tcp://host:port", host)
	}
	switch proto {
	case "unix":
	case "tcp":
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("dockerx: host %q: %w", host, err)
		}
	default:
		return nil, fmt.Errorf("dockerx: host %q: unsupported scheme %q (want unix or tcp)", host, proto)
	}

	tlsCfg, err := tlsConfig(o)
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil && proto != "tcp" {
		return nil, fmt.Errorf("dockerx: host %q: TLS options need a tcp:// host", host)
	}

	dialTimeout := min(maxDialTimeout, timeout/2)
	tr := &http.Transport{
		MaxIdleConns:        6,
		IdleConnTimeout:     30 * time.Second,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: dialTimeout,
	}
	opts := []client.Opt{
		client.WithHTTPClient(&http.Client{Transport: tr, CheckRedirect: client.CheckRedirect}),
		client.WithHost(host),
		// WithHost installed the library's dialer and, for tcp, a proxy
		// lookup from the environment. Replace both: the Engine API is never
		// reached through an HTTP proxy, and the dial timeout must stay
		// below the call timeout.
		func(*client.Client) error {
			tr.Proxy = nil
			tr.DialContext = dialer(proto, addr, dialTimeout)
			return nil
		},
		client.WithAPIVersionNegotiation(),
		client.WithUserAgent(userAgent),
	}
	if o.Username != "" && o.Password != "" {
		cred := base64.StdEncoding.EncodeToString([]byte(o.Username + ":" + o.Password))
		opts = append(opts, client.WithHTTPHeaders(map[string]string{"Authorization": "Basic " + cred}))
	}
	api, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("dockerx: host %q: %w", host, err)
	}
	return &Client{api: api, host: host, callTimeout: timeout}, nil
}

// dialer returns a DialContext function that ignores the address the HTTP
// transport asks for and connects to the engine instead.
func dialer(proto, addr string, timeout time.Duration) func(context.Context, string, string) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		return d.DialContext(ctx, proto, addr)
	}
}

// tlsConfig builds the client TLS configuration, or returns nil when no TLS
// option is set.
func tlsConfig(o Options) (*tls.Config, error) {
	if !o.TLSVerify && o.TLSCA == "" && o.TLSCert == "" && o.TLSKey == "" {
		return nil, nil
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: !o.TLSVerify, //nolint:gosec // explicit "--tls without --tlsverify" mode, documented on Options.TLSVerify
	}
	if o.TLSCA != "" {
		pem, err := os.ReadFile(o.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("dockerx: tls ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("dockerx: tls ca %s: no PEM certificate found", o.TLSCA)
		}
		cfg.RootCAs = pool
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, errors.New("dockerx: tls: client certificate and key must be set together")
	}
	if o.TLSCert != "" {
		pair, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("dockerx: tls client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// Close releases idle connections. Calls in flight are not interrupted.
func (c *Client) Close() error {
	return c.api.Close()
}

// Host returns the engine address the Client talks to.
func (c *Client) Host() string {
	return c.host
}

// Ping checks that the engine answers and returns the API version the
// client will use from now on: the lower of the engine's version and the
// newest version this library knows.
func (c *Client) Ping(ctx context.Context) (string, error) {
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	p, err := c.api.Ping(ctx)
	if err != nil {
		return "", fmt.Errorf("dockerx: ping %s: %w", c.host, err)
	}
	c.api.NegotiateAPIVersionPing(p)
	return c.api.ClientVersion(), nil
}

// callCtx derives the per-call context: a wedged engine must never block a
// caller longer than the call timeout (nomad's dockerAPIQueryContext).
func (c *Client) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.callTimeout)
}
