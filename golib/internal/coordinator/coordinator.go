package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plcoordinator/plcoordinator/golib/internal/cache"
	"github.com/plcoordinator/plcoordinator/golib/internal/config"
	"github.com/plcoordinator/plcoordinator/golib/internal/dockerx"
	"github.com/plcoordinator/plcoordinator/golib/internal/protocol"
	"github.com/plcoordinator/plcoordinator/golib/internal/server"
	"github.com/plcoordinator/plcoordinator/golib/internal/status"
)

// dockerCallTimeout bounds every Docker API call.
const dockerCallTimeout = 30 * time.Second

// Coordinator wires the socket server, the configuration and the
// container cache together. It implements server.Handler.
type Coordinator struct {
	settings Settings
	log      *status.Logger
	panics   *status.Panics
	counters status.Counters

	docker  *dockerx.Client            // plcoordinator.docker_host
	remotes map[string]*dockerx.Client // remote_docker engines, by endpoint
	cache   *cache.Cache
	srv     *server.Server
	ln      *net.UnixListener

	cfg    atomic.Pointer[config.Config]
	cfgMu  sync.Mutex // serialises reloads
	meta   sync.Mutex // guards settings (written by the main loop) and the fields below
	loaded time.Time
	errAt  time.Time
	errMsg string
	bump   atomic.Uint64

	// Publishing: dirty wakes the main loop; waiters of a version block
	// until the main loop has copied it to shared memory.
	dirty     chan struct{}
	reloads   chan chan<- reloadResult
	pubMu     sync.Mutex
	published uint64
	pubCh     chan struct{}
}

// publishWait bounds how long a request waits for its effect to reach
// shared memory before answering.
const publishWait = 250 * time.Millisecond

// New builds a coordinator; Start brings it up.
func New(s Settings, log *status.Logger, panics *status.Panics) (*Coordinator, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	d, err := dockerx.New(dockerx.Options{Host: s.DockerHost, CallTimeout: dockerCallTimeout})
	if err != nil {
		return nil, fmt.Errorf("docker client for %q: %w", s.DockerHost, err)
	}
	generation := cache.NewName()
	c := &Coordinator{settings: s, log: log, panics: panics, docker: d, remotes: map[string]*dockerx.Client{},
		dirty: make(chan struct{}, 1), pubCh: make(chan struct{}), reloads: make(chan chan<- reloadResult)}
	c.cache = cache.New(d, cache.Options{
		Instance:           s.Instance,
		Generation:         generation,
		ContainersDir:      s.ContainersDir(),
		MaxContainers:      s.MaxContainers,
		MaxParallelCreates: s.MaxParallelCreates,
		AcquireTimeout:     s.AcquireTimeout,
		CheckInterval:      s.CheckInterval,
		Hardening:          s.Hardening,
		SegIndex:           s.SegIndex,
		Log:                log,
		Counters:           &c.counters,
		Panics:             panics,
		OnChange:           c.changed,
	})
	// WELCOME names the generation too: a client that reconnects and sees
	// another one knows that its containers are gone.
	c.srv = server.New(c, server.Options{Instance: s.Instance + "/" + generation, Log: log})
	return c, nil
}

// Start follows the seed's order: open the socket, load the
// configuration, start the cache, serve.
func (c *Coordinator) Start() error {
	ln, err := server.Listen(c.settings.SocketDir, c.settings.SocketPath())
	if err != nil {
		return err
	}
	c.ln = ln
	if err := server.PrivateDir(c.settings.ContainersDir()); err != nil {
		return err
	}
	if _, err := c.reload(); err != nil {
		c.log.Warnf("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if v, err := c.docker.Ping(ctx); err != nil {
		c.log.Warnf("Docker engine at %s is not reachable yet: %v", c.settings.DockerHost, err)
	} else {
		c.log.Infof("Docker engine at %s answers (API %s)", c.settings.DockerHost, v)
	}
	if err := c.cache.Run(); err != nil {
		return err
	}
	c.panics.Go("socket server", func() {
		if err := c.srv.Serve(ln); err != nil && !errors.Is(err, server.ErrServerClosed) {
			panic(fmt.Sprintf("socket server stopped: %v", err))
		}
	})
	return nil
}

// Stop ends every session and removes every container, within ctx.
func (c *Coordinator) Stop(ctx context.Context) {
	if c.srv != nil {
		_ = c.srv.Close()
	}
	if c.cache != nil {
		c.cache.Close(ctx)
	}
	if c.docker != nil {
		_ = c.docker.Close()
	}
	// The socket is gone with the listener; leave no empty directories.
	_ = os.Remove(c.settings.ContainersDir())
	_ = os.Remove(c.settings.SocketDir)
	for _, d := range c.remotes {
		_ = d.Close()
	}
}

// ShutdownTimeout bounds Stop.
func (c *Coordinator) ShutdownTimeout() time.Duration {
	return max(c.settings.ShutdownTimeout, time.Second)
}

// current returns the settings for goroutines other than the main loop,
// which alone changes them (under c.meta).
func (c *Coordinator) current() Settings {
	c.meta.Lock()
	defer c.meta.Unlock()
	return c.settings
}

// reloadResult is the outcome of a reload done by the main loop.
type reloadResult struct {
	cfg *config.Config
	err error
}

// ReloadRequests delivers reload_config() calls to the main loop, which
// re-reads postgresql.conf (only it may) before the runtime file.
func (c *Coordinator) ReloadRequests() <-chan chan<- reloadResult { return c.reloads }

// ApplySettings takes the reloadable GUCs after a SIGHUP or a
// reload_config() call and re-reads the configuration file.
func (c *Coordinator) ApplySettings(s Settings) (*config.Config, error) {
	if s.DockerHost != c.settings.DockerHost {
		d, err := dockerx.New(dockerx.Options{Host: s.DockerHost, CallTimeout: dockerCallTimeout})
		if err != nil {
			c.log.Warnf("plcoordinator.docker_host %q: %v; keeping %q", s.DockerHost, err, c.settings.DockerHost)
			s.DockerHost = c.settings.DockerHost
		} else {
			c.log.Infof("plcoordinator.docker_host is now %s; existing containers stay on %s until removed",
				s.DockerHost, c.settings.DockerHost)
			// The old client still serves its containers' removals.
			c.remotes["docker_host "+c.settings.DockerHost] = c.docker
			c.docker = d
			c.cache.SetDefaultDocker(d)
		}
	}
	c.cache.SetTunables(cache.Tunables{AcquireTimeout: s.AcquireTimeout, MaxParallelCreates: s.MaxParallelCreates,
		CheckInterval: s.CheckInterval, Hardening: s.Hardening})
	// Postmaster settings (max_container_number, socket_dir, test hooks)
	// cannot change while the server runs.
	s.MaxContainers, s.SocketDir, s.TestHooks = c.settings.MaxContainers, c.settings.SocketDir, c.settings.TestHooks
	c.meta.Lock()
	c.settings = s
	c.meta.Unlock()
	cfg, err := c.reload()
	if err != nil {
		c.log.Warnf("%v", err)
	}
	return cfg, err
}

// reload loads the configuration file. A broken file never replaces a
// good one.
func (c *Coordinator) reload() (*config.Config, error) {
	c.cfgMu.Lock()
	defer c.cfgMu.Unlock()
	cfg, err := config.Load(c.settings.ConfigFile)
	now := time.Now()
	c.meta.Lock()
	defer c.meta.Unlock()
	defer c.touch()
	if err != nil {
		c.errAt = now
		c.errMsg = err.Error()
		return nil, fmt.Errorf("configuration rejected, keeping the previous runtimes: %w", err)
	}
	c.cfg.Store(cfg)
	c.loaded = now
	c.errMsg, c.errAt = "", time.Time{}
	c.cache.SetBackends(c.backends(cfg))
	c.cache.SetRuntimes(cfg.Runtimes)
	if cfg.Missing {
		c.log.Infof("configuration file %s does not exist: no runtimes are defined", cfg.Path)
	} else {
		c.log.Infof("loaded %d runtime(s) from %s", len(cfg.Runtimes), cfg.Path)
	}
	return cfg, nil
}

// backends maps the configuration's backends to engines. A docker (local)
// backend is the engine of plcoordinator.docker_host, whatever its
// <address> says (PL/Container ignores it too). A remote_docker backend is
// reached over TCP; its clients are kept for the coordinator's life, since
// containers may still run on an engine a new configuration dropped.
// Called with cfgMu held.
func (c *Coordinator) backends(cfg *config.Config) map[string]*cache.Backend {
	out := map[string]*cache.Backend{}
	for name, b := range cfg.Backends {
		if b.Type != config.BackendRemoteDocker {
			if name != config.DefaultBackendName {
				out[name] = &cache.Backend{Name: name, Docker: c.docker}
			}
			continue
		}
		host := b.Address
		if b.AddSegmentIndex {
			host = fmt.Sprintf("%d.%s", c.settings.SegIndex+1, b.Address)
		}
		o := dockerx.Options{Host: "tcp://" + net.JoinHostPort(host, strconv.Itoa(b.Port)),
			TLSCA: b.TLSCA, TLSCert: b.TLSCert, TLSKey: b.TLSKey, TLSVerify: b.TLSVerify,
			Username: b.Username, Password: b.Password, CallTimeout: dockerCallTimeout}
		key := fmt.Sprintf("%+v", o)
		d := c.remotes[key]
		if d == nil {
			var err error
			if d, err = dockerx.New(o); err != nil {
				// Its runtimes fail with this error rather than run elsewhere.
				c.log.Warnf("backend %q: %v", name, err)
				out[name] = &cache.Backend{Name: name, Docker: &unusable{err}, Remote: true, Host: host}
				continue
			}
			c.remotes[key] = d
		}
		out[name] = &cache.Backend{Name: name, Docker: d, Remote: true, Host: host}
	}
	return out
}

// unusable is the engine of a backend whose client could not be built
// (say, an unreadable TLS file): every call fails with that error.
type unusable struct{ err error }

func (u *unusable) Create(context.Context, dockerx.Spec) (string, error) { return "", u.err }
func (u *unusable) Start(context.Context, string) error                  { return u.err }
func (u *unusable) Inspect(context.Context, string) (dockerx.State, error) {
	return dockerx.State{}, u.err
}
func (u *unusable) Remove(context.Context, string) error { return u.err }
func (u *unusable) List(context.Context, map[string]string) ([]dockerx.Summary, error) {
	return nil, u.err
}
func (u *unusable) Logs(context.Context, string, int) (string, error)   { return "", u.err }
func (u *unusable) MemoryUsage(context.Context, string) (uint64, error) { return 0, u.err }
func (u *unusable) Ping(context.Context) (string, error)                { return "", u.err }
func (u *unusable) Events(ctx context.Context, _ map[string]string) (<-chan dockerx.Event, <-chan error) {
	errs := make(chan error, 1)
	errs <- u.err
	return nil, errs
}

// Version changes whenever the snapshot may have changed.
func (c *Coordinator) Version() uint64 { return c.cache.Version() + c.bump.Load() }

// changed wakes the main loop to publish; never blocks.
func (c *Coordinator) changed() {
	select {
	case c.dirty <- struct{}{}:
	default:
	}
}

// touch records a change outside the cache.
func (c *Coordinator) touch() {
	c.bump.Add(1)
	c.changed()
}

// Dirty is readable when there is something new to publish.
func (c *Coordinator) Dirty() <-chan struct{} { return c.dirty }

// Published tells waiters that version v is in shared memory.
func (c *Coordinator) Published(v uint64) {
	c.pubMu.Lock()
	if v > c.published {
		c.published = v
		close(c.pubCh)
		c.pubCh = make(chan struct{})
	}
	c.pubMu.Unlock()
}

// syncPublished waits until what the caller changed is visible in the
// views, so that a backend reading plcoordinator.containers right after
// acquire sees its container. Bounded by publishWait.
func (c *Coordinator) syncPublished() {
	v := c.Version()
	timer := time.NewTimer(publishWait)
	defer timer.Stop()
	c.pubMu.Lock()
	for c.published < v {
		ch := c.pubCh
		c.pubMu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			return
		}
		c.pubMu.Lock()
	}
	c.pubMu.Unlock()
}

// Snapshot is what the main loop publishes to shared memory.
func (c *Coordinator) Snapshot() *status.Snapshot {
	s := &status.Snapshot{
		Containers:      c.cache.Snapshot(),
		DockerReachable: c.cache.Reachable(),
		Stats:           c.counters.Stats(),
		StatusJSON:      c.Status(),
	}
	if cfg := c.cfg.Load(); cfg != nil {
		for _, id := range cfg.Order {
			rt := cfg.Runtimes[id]
			s.Runtimes = append(s.Runtimes, status.RuntimeAccess{ID: id, UserControl: rt.UserControl(),
				Roles: strings.Join(rt.Roles, ",")})
		}
	}
	c.meta.Lock()
	s.ConfigLoadedAt, s.ConfigErrorAt, s.ConfigError = c.loaded, c.errAt, c.errMsg
	c.meta.Unlock()
	return s
}

// Acquire implements server.Handler.
func (c *Coordinator) Acquire(ctx context.Context, sess *server.Session, req protocol.Acquire) (protocol.Acquired, *os.File, error) {
	t0 := time.Now()
	cfg := c.cfg.Load()
	var rt *config.Runtime
	if cfg != nil {
		rt = cfg.Runtimes[req.RuntimeID]
	}
	if rt == nil {
		return protocol.Acquired{}, nil, &protocol.ErrorMsg{Code: protocol.CodeUnknownRuntime,
			Message: fmt.Sprintf("runtime %q is not defined in the configuration", req.RuntimeID),
			Hint:    "Check plcoordinator.runtimes; after editing the file run SELECT plcoordinator.reload_config()."}
	}
	g, err := c.cache.Acquire(ctx, cache.Request{
		Session:     cache.Key{PID: sess.PID, StartUS: sess.StartUS},
		Runtime:     rt,
		Role:        req.Role,
		Database:    req.Database,
		DatabaseOID: req.DatabaseOID,
		WantConn:    req.Flags&protocol.AcquireWantFD != 0,
	})
	// Success or failure, what the acquire changed (its container, the
	// counters) is in the views before the backend hears back.
	c.syncPublished()
	if err != nil {
		return protocol.Acquired{}, nil, c.requestError(rt, err)
	}
	return protocol.Acquired{ContainerID: g.ID, Address: g.Address, Reused: g.Reused, Prewarmed: g.Prewarmed,
		WaitMS: uint32(time.Since(t0).Milliseconds()), ClientVersion: g.ClientVersion}, g.Conn, nil
}

// requestError maps cache errors to protocol errors (and so SQLSTATEs).
func (c *Coordinator) requestError(rt *config.Runtime, err error) error {
	var le *cache.LimitError
	var se *cache.StartError
	switch {
	case errors.As(err, &le):
		return &protocol.ErrorMsg{Code: protocol.CodeLimit, Message: "too many containers: " + le.Error(),
			Hint: "Raise plcoordinator.max_container_number (needs a restart) or the runtime's max_containers, " +
				"or end idle sessions."}
	case errors.Is(err, cache.ErrCancelled):
		return &protocol.ErrorMsg{Code: protocol.CodeStartFailed, Message: "acquire cancelled by release_all"}
	case errors.Is(err, cache.ErrClosed):
		return &protocol.ErrorMsg{Code: protocol.CodeShuttingDown, Message: "the coordinator is shutting down"}
	case errors.As(err, &se):
		if se.Err != nil {
			code := protocol.CodeDocker
			host := c.current().DockerHost
			hint := "Check that the Docker engine at " + host + " is running and that the image exists."
			if dockerx.IsUnreachable(se.Err) {
				hint = "The Docker engine at " + host + " cannot be reached; check that it runs and that the database user may use its socket."
			}
			return &protocol.ErrorMsg{Code: code, Message: se.Error(), Hint: hint}
		}
		detail := fmt.Sprintf("Exit code %d, OOM killed: %t.", se.ExitCode, se.OOM)
		if se.Status == "running" || se.Status == "created" {
			detail = fmt.Sprintf("The container was still %s, and its client had not created its socket.", se.Status)
		}
		if se.Logs != "" {
			detail += " Last log lines:\n" + se.Logs
		}
		if se.Timeout > 0 {
			return &protocol.ErrorMsg{Code: protocol.CodeStartTimeout, Message: se.Error(), Detail: detail,
				Hint: "Check the image and command of the runtime, or raise its start_timeout."}
		}
		return &protocol.ErrorMsg{Code: protocol.CodeStartFailed, Message: se.Error(), Detail: detail,
			Hint: "Enable use_container_logging for the runtime to keep the container's output."}
	}
	return &protocol.ErrorMsg{Code: protocol.CodeInternal, Message: err.Error()}
}

// Release implements server.Handler.
func (c *Coordinator) Release(sess *server.Session, runtimeID string) (uint32, error) {
	n := c.cache.Release(cache.Key{PID: sess.PID, StartUS: sess.StartUS}, runtimeID)
	c.syncPublished()
	return uint32(n), nil
}

// ReleaseAll implements server.Handler.
func (c *Coordinator) ReleaseAll(sess *server.Session) uint32 {
	n := c.cache.ReleaseAll(cache.Key{PID: sess.PID, StartUS: sess.StartUS})
	c.syncPublished()
	return uint32(n)
}

// SessionEnded implements server.Handler.
func (c *Coordinator) SessionEnded(sess *server.Session) {
	c.cache.SessionEnded(cache.Key{PID: sess.PID, StartUS: sess.StartUS})
	c.touch()
}

// Reload implements server.Handler: the main loop re-reads the settings
// and the file now; the reply says what happened.
func (c *Coordinator) Reload(ctx context.Context) (protocol.Reloaded, error) {
	done := make(chan reloadResult, 1)
	select {
	case c.reloads <- done:
	case <-ctx.Done():
		return protocol.Reloaded{}, ctx.Err()
	}
	var res reloadResult
	select {
	case res = <-done:
	case <-ctx.Done():
		return protocol.Reloaded{}, ctx.Err()
	}
	cfg, err := res.cfg, res.err
	c.syncPublished()
	if err != nil {
		msg := &protocol.ErrorMsg{Code: protocol.CodeConfigInvalid,
			Message: "invalid runtime configuration, the previous configuration stays in use",
			Hint:    "Fix the file and run SELECT plcoordinator.reload_config() again."}
		var ce *config.Error
		if errors.As(err, &ce) {
			lines := make([]string, len(ce.Problems))
			for i, p := range ce.Problems {
				lines[i] = p.String()
			}
			msg.Message = fmt.Sprintf("configuration file %q has %d problem(s), the previous configuration stays in use",
				ce.Path, len(ce.Problems))
			msg.Detail = strings.Join(lines, "\n")
		} else {
			msg.Detail = err.Error()
		}
		return protocol.Reloaded{}, msg
	}
	text := fmt.Sprintf("loaded %d runtime(s) from %s", len(cfg.Runtimes), cfg.Path)
	if cfg.Missing {
		text = fmt.Sprintf("configuration file %s does not exist: no runtimes are defined", cfg.Path)
	}
	return protocol.Reloaded{Runtimes: uint32(len(cfg.Runtimes)), Message: text}, nil
}

// StatsReset implements server.Handler (plcoordinator.stats_reset()).
func (c *Coordinator) StatsReset() {
	c.counters.Reset()
	c.touch()
	c.syncPublished()
}

// DebugPanic implements server.Handler: a test hook that panics in a
// goroutine when plcoordinator.enable_test_hooks is on.
func (c *Coordinator) DebugPanic() error {
	if !c.current().TestHooks {
		return &protocol.ErrorMsg{Code: protocol.CodePermission, Message: "test hooks are disabled",
			Hint: "Set plcoordinator.enable_test_hooks = on and restart the server (tests only)."}
	}
	c.panics.Go("debug panic", func() {
		time.Sleep(50 * time.Millisecond)
		panic("plcoordinator.debug_panic() was called")
	})
	return nil
}

// runtimeJSON is one row of plcoordinator.runtimes.
type runtimeJSON struct {
	ID                  string   `json:"runtime_id"`
	Image               string   `json:"image"`
	Command             string   `json:"command"`
	MemoryMB            int64    `json:"memory_mb"`
	CPUShare            int64    `json:"cpu_share"`
	UseContainerLogging bool     `json:"use_container_logging"`
	EnableNetwork       bool     `json:"enable_network"`
	Roles               []string `json:"roles"`
	ResourceGroupID     *string  `json:"resource_group_id"`
	SharedDirs          []string `json:"shared_directories"`
	Devices             []string `json:"device_requests"`
	Backend             string   `json:"backend"`
	Prewarm             int      `json:"prewarm"`
	IdleTimeoutS        int      `json:"idle_timeout_s"`
	MaxContainers       int      `json:"max_containers"`
	Reuse               bool     `json:"reuse_across_sessions"`
	StartTimeoutS       int      `json:"start_timeout_s"`
}

type requesterJSON struct {
	PID           int32      `json:"pid"`
	ConnectedAt   time.Time  `json:"connected_at"`
	Containers    int        `json:"containers"`
	LastRequest   string     `json:"last_request"`
	LastRequestAt *time.Time `json:"last_request_at"`
}

// Status implements server.Handler: the document behind the runtimes and
// requesters views.
func (c *Coordinator) Status() string {
	doc := struct {
		Runtimes   []runtimeJSON   `json:"runtimes"`
		Requesters []requesterJSON `json:"requesters"`
		Truncated  bool            `json:"truncated,omitempty"`
	}{Runtimes: []runtimeJSON{}, Requesters: []requesterJSON{}}
	if cfg := c.cfg.Load(); cfg != nil {
		for _, id := range cfg.Order {
			doc.Runtimes = append(doc.Runtimes, toRuntimeJSON(cfg.Runtimes[id]))
		}
	}
	held := c.cache.Sessions()
	for _, s := range c.srv.Sessions() {
		r := requesterJSON{PID: s.PID, ConnectedAt: s.ConnectedAt, LastRequest: s.LastRequest,
			Containers: held[cache.Key{PID: s.PID, StartUS: s.StartUS}]}
		if !s.LastRequestAt.IsZero() {
			t := s.LastRequestAt
			r.LastRequestAt = &t
		}
		doc.Requesters = append(doc.Requesters, r)
	}
	for {
		b, _ := json.Marshal(doc)
		if len(b) <= protocol.MaxText || (len(doc.Requesters) == 0 && len(doc.Runtimes) == 0) {
			return string(b)
		}
		doc.Truncated = true
		if len(doc.Requesters) > 0 {
			doc.Requesters = doc.Requesters[:len(doc.Requesters)/2]
		} else {
			doc.Runtimes = doc.Runtimes[:len(doc.Runtimes)/2]
		}
	}
}

func toRuntimeJSON(rt *config.Runtime) runtimeJSON {
	r := runtimeJSON{ID: rt.ID, Image: rt.Image, Command: rt.Command, MemoryMB: rt.MemoryMB, CPUShare: rt.CPUShare,
		UseContainerLogging: rt.UseContainerLogging, EnableNetwork: rt.EnableNetwork, Roles: rt.Roles,
		Backend: rt.Backend, Prewarm: rt.Prewarm, IdleTimeoutS: int(rt.IdleTimeout / time.Second),
		MaxContainers: rt.MaxContainers, Reuse: rt.ReuseAcrossSessions, StartTimeoutS: int(rt.StartTimeout / time.Second),
		SharedDirs: []string{}, Devices: []string{}}
	if rt.Roles == nil {
		r.Roles = []string{}
	}
	if rt.ResourceGroupID != "" {
		id := rt.ResourceGroupID
		r.ResourceGroupID = &id
	}
	for _, d := range rt.SharedDirs {
		mode := "rw"
		if d.ReadOnly {
			mode = "ro"
		}
		r.SharedDirs = append(r.SharedDirs, d.Host+":"+d.Container+":"+mode)
	}
	for _, d := range rt.Devices {
		ids := "all"
		if !d.All {
			ids = strings.Join(d.DeviceIDs, ",")
		}
		s := fmt.Sprintf("type=%s devices=%s capabilities=%s", d.Capabilities[len(d.Capabilities)-1], ids,
			strings.Join(d.Capabilities, ","))
		if d.Driver != "" {
			s += " driver=" + d.Driver
		}
		r.Devices = append(r.Devices, s)
	}
	sort.Strings(r.Roles)
	return r
}
