// Package dockerproxy is a test helper: an HTTP reverse proxy in front of
// the local Docker engine. Tests point plcoordinator.docker_host (or a
// remote_docker backend) at it to count the coordinator's Docker API calls,
// to cut the engine off and bring it back, or to reach the local engine
// over loopback TCP as if it were remote.
package dockerproxy

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultEngine is the socket of the local Docker engine.
const DefaultEngine = "/var/run/docker.sock"

// Proxy forwards Docker API requests to an engine socket.
type Proxy struct {
	network, addr string
	engine        string

	requests atomic.Int64

	mu     sync.Mutex
	ln     net.Listener
	srv    *http.Server
	conns  map[net.Conn]struct{}
	byPath map[string]int64
}

// New returns a proxy that will listen on network/addr ("unix" and a
// socket path, or "tcp" and "127.0.0.1:0") and forward to engine.
func New(network, addr, engine string) *Proxy {
	return &Proxy{network: network, addr: addr, engine: engine, conns: map[net.Conn]struct{}{},
		byPath: map[string]int64{}}
}

// Start listens and serves until Cut or Close.
func (p *Proxy) Start() error {
	ln, err := net.Listen(p.network, p.addr)
	if err != nil {
		return err
	}
	if p.network == "tcp" {
		p.addr = ln.Addr().String()
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(&url.URL{Scheme: "http", Host: "docker"})
			r.Out.Host = "docker"
		},
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", p.engine)
			},
			DisableCompression: true,
		},
		FlushInterval: -1, // event streams pass through at once
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p.requests.Add(1)
			p.mu.Lock()
			p.byPath[r.Method+" "+r.URL.Path]++
			p.mu.Unlock()
			rp.ServeHTTP(w, r)
		}),
		ConnState: func(c net.Conn, s http.ConnState) {
			p.mu.Lock()
			defer p.mu.Unlock()
			switch s {
			case http.StateNew:
				p.conns[c] = struct{}{}
			case http.StateClosed, http.StateHijacked:
				delete(p.conns, c)
			}
		},
		ReadHeaderTimeout: 10 * time.Second,
	}
	p.mu.Lock()
	p.ln, p.srv = ln, srv
	p.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
	return nil
}

// Host is the docker_host value that reaches the proxy.
func (p *Proxy) Host() string {
	if p.network == "unix" {
		return "unix://" + p.addr
	}
	return "tcp://" + p.addr
}

// Addr is the listening address (host:port for TCP).
func (p *Proxy) Addr() string { return p.addr }

// Requests is the number of API requests forwarded so far.
func (p *Proxy) Requests() int64 { return p.requests.Load() }

// ByPath returns the request counts by "METHOD /path".
func (p *Proxy) ByPath() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int64, len(p.byPath))
	for k, v := range p.byPath {
		out[k] = v
	}
	return out
}

// Cut makes the engine unreachable: the listener goes away and every open
// connection is dropped. Start brings it back on the same address.
func (p *Proxy) Cut() {
	p.mu.Lock()
	srv := p.srv
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.srv, p.ln = nil, nil
	p.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
	for _, c := range conns {
		_ = c.Close()
	}
}

// Close stops the proxy.
func (p *Proxy) Close() error {
	p.Cut()
	return nil
}
