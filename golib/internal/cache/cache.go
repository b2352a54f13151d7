package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/plcoordinator/plcoordinator/golib/internal/config"
	"github.com/plcoordinator/plcoordinator/golib/internal/dockerx"
	"github.com/plcoordinator/plcoordinator/golib/internal/status"
)

// Docker is the subset of *dockerx.Client the cache uses.
type Docker interface {
	Create(ctx context.Context, s dockerx.Spec) (string, error)
	Start(ctx context.Context, id string) error
	Inspect(ctx context.Context, id string) (dockerx.State, error)
	Remove(ctx context.Context, id string) error
	List(ctx context.Context, labels map[string]string) ([]dockerx.Summary, error)
	Logs(ctx context.Context, id string, tail int) (string, error)
	Events(ctx context.Context, labels map[string]string) (<-chan dockerx.Event, <-chan error)
	MemoryUsage(ctx context.Context, id string) (uint64, error)
	Ping(ctx context.Context) (string, error)
}

// Labels the coordinator puts on its containers, next to PL/Container's
// own (owner, dbid, databaseid, segindex). The reconciler trusts only
// LabelInstance and LabelGeneration.
const (
	LabelInstance   = "plcoordinator.instance"
	LabelGeneration = "plcoordinator.generation"
	LabelBackendPID = "plcoordinator.backend_pid"
	LabelRuntime    = "plcoordinator.runtime"
	LabelName       = "plcoordinator.name"
)

// Container states shown in plcoordinator.containers.
const (
	StateStarting  = "starting"
	StateReady     = "ready"
	StateInUse     = "in use"
	StateIdle      = "idle"
	StatePrewarmed = "prewarmed"
	StateStopping  = "stopping"
	StateExited    = "exited"
)

// Options configure a Cache.
type Options struct {
	Instance           string        // value of LabelInstance
	Generation         string        // value of LabelGeneration, new for every coordinator start
	ContainersDir      string        // root of the per-container socket directories
	MaxContainers      int           // plcoordinator.max_container_number
	MaxParallelCreates int           // plcoordinator.max_parallel_creates
	AcquireTimeout     time.Duration // longest wait for a free slot
	CheckInterval      time.Duration // sweep period
	MemoryInterval     time.Duration // memory refresh period; 0 = default
	Hardening          bool          // apply dockerx hardening
	SegIndex           int           // Greenplum content id, -1 on PostgreSQL
	ShutdownTimeout    time.Duration
	Log                *status.Logger
	Counters           *status.Counters
	Panics             *status.Panics
	// OnChange is called, with the cache locked, whenever the published
	// state changed; it must not block.
	OnChange func()
}

// Backend is a Docker engine containers run on. The default backend is
// the engine of plcoordinator.docker_host; remote ones come from
// <backend type="remote_docker"> in the runtime configuration.
type Backend struct {
	Name   string
	Docker Docker
	// Remote containers are reached over TCP, as PL/Container does for
	// remote_docker: the client listens on 8080, published on the engine
	// host's loopback; the backend connects to Host and that port.
	Remote bool
	Host   string
}

// Key identifies a session: a backend pid and its start time, so a reused
// pid is not mistaken for the old session.
type Key struct {
	PID     int32
	StartUS int64
}

// Request asks for a container of Runtime for a session.
type Request struct {
	Session     Key
	Runtime     *config.Runtime
	Role        string
	Database    string
	DatabaseOID uint32
	WantConn    bool // hand over a connected, pinged socket when possible
}

// Grant is the answer to a Request.
type Grant struct {
	ID            string
	Address       string // "unix:<path>" or "tcp:<ip>:<port>"
	Reused        bool
	Prewarmed     bool
	Conn          *os.File // connected socket handed to the backend, or nil
	ClientVersion string
}

// Errors returned by Acquire.
var (
	// ErrLimit: no slot became free within the acquire timeout.
	ErrLimit = errors.New("cache: container limit reached")
	// ErrCancelled: the session ended or released everything meanwhile.
	ErrCancelled = errors.New("cache: acquire cancelled")
	// ErrClosed: the cache is shutting down.
	ErrClosed = errors.New("cache: closed")
)

// LimitError says which limit was hit.
type LimitError struct {
	Limit   int
	Runtime string // set for a per-runtime limit
	Waited  time.Duration
}

func (e *LimitError) Error() string {
	if e.Runtime != "" {
		return fmt.Sprintf("runtime %q already has its maximum of %d containers", e.Runtime, e.Limit)
	}
	return fmt.Sprintf("all %d container slots are in use (waited %s)", e.Limit, e.Waited.Round(time.Millisecond))
}

func (e *LimitError) Unwrap() error { return ErrLimit }

// StartError describes a container that did not become ready.
type StartError struct {
	Runtime  string
	ID       string
	Timeout  time.Duration // > 0 when the start timed out
	Status   string        // Docker's state of the container when it failed
	ExitCode int
	OOM      bool
	Logs     string
	Err      error // the Docker error, if a call failed
}

func (e *StartError) Error() string {
	switch {
	case e.Err != nil:
		return fmt.Sprintf("container for runtime %q could not be started: %v", e.Runtime, e.Err)
	case e.Timeout > 0:
		return fmt.Sprintf("container for runtime %q was not ready within %s", e.Runtime, e.Timeout)
	case e.OOM:
		return fmt.Sprintf("container for runtime %q was killed for running out of memory while starting", e.Runtime)
	default:
		return fmt.Sprintf("container for runtime %q exited with code %d while starting", e.Runtime, e.ExitCode)
	}
}

func (e *StartError) Unwrap() error { return e.Err }

// entry is one container the cache owns.
type entry struct {
	name     string // short random id: directory and container name
	id       string // Docker id, "" until created
	be       *Backend
	runtime  *config.Runtime
	session  Key // zero for a prewarmed container
	owner    string
	database string
	dbOID    uint32
	state    string
	dir      string // "" for a remote container
	address  string

	created  time.Time
	lastUsed time.Time
	readyMS  int32
	uses     int64
	memKB    int64

	ready    chan struct{} // closed when the start finished
	startErr error
	cancel   bool // removal requested while starting
	wantConn bool

	conn          *os.File // connected socket held for a hand-off
	clientVersion string

	exited   bool
	exitCode int32
	oom      bool
	diedAt   time.Time
	stale    bool // its runtime changed or was removed: remove when released

	removeFailed bool // Docker did not remove it: the sweep tries again
}

func (e *entry) prewarm() bool { return e.session == Key{} }

// waiter is a request queued for a free slot.
type waiter struct {
	ch      chan struct{}
	granted bool
}

// Cache owns every container of the coordinator.
type Cache struct {
	def  *Backend // plcoordinator.docker_host
	opts Options
	log  *status.Logger
	ctr  *status.Counters

	creating  int        // containers being created, at most opts.MaxParallelCreates
	createsCV *sync.Cond // signalled when creating goes down or the limit up
	retune    chan struct{}
	removals  chan *entry

	mu        sync.Mutex
	entries   map[string]*entry         // by name
	sessions  map[Key]map[string]*entry // session → runtime id → entry
	waiters   []*waiter
	reserved  int
	runtimes  map[string]*config.Runtime
	backends  map[string]*Backend // by name, besides the default
	watched   map[Docker]bool     // engines whose events are followed
	runCtx    context.Context     // set by Run
	prewarmBo map[string]*backoff
	closed    bool
	version   uint64
	reachable bool

	kick chan struct{}
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// New returns a cache; Run starts its background work.
func New(d Docker, opts Options) *Cache {
	if opts.MaxParallelCreates < 1 {
		opts.MaxParallelCreates = 1
	}
	c := &Cache{
		def:       &Backend{Name: config.DefaultBackendName, Docker: d},
		opts:      opts,
		log:       opts.Log,
		ctr:       opts.Counters,
		retune:    make(chan struct{}, 1),
		removals:  make(chan *entry, 4*opts.MaxContainers+16),
		entries:   map[string]*entry{},
		sessions:  map[Key]map[string]*entry{},
		runtimes:  map[string]*config.Runtime{},
		backends:  map[string]*Backend{},
		watched:   map[Docker]bool{},
		prewarmBo: map[string]*backoff{},
		kick:      make(chan struct{}, 1),
		reachable: true,
	}
	c.createsCV = sync.NewCond(&c.mu)
	return c
}

// Tunables are the settings a reload may change while the cache runs.
type Tunables struct {
	AcquireTimeout     time.Duration
	MaxParallelCreates int
	CheckInterval      time.Duration
	Hardening          bool
}

// SetTunables applies reloaded settings: new waits, creates and sweeps use
// them; containers already created keep their options.
func (c *Cache) SetTunables(t Tunables) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.opts.AcquireTimeout = t.AcquireTimeout
	c.opts.MaxParallelCreates = max(t.MaxParallelCreates, 1)
	c.opts.CheckInterval = t.CheckInterval
	c.opts.Hardening = t.Hardening
	c.createsCV.Broadcast()
	select {
	case c.retune <- struct{}{}:
	default:
	}
}

// SetDefaultDocker replaces the engine of the default backend (a new
// plcoordinator.docker_host). Containers on the old engine stay on it
// until they are removed.
func (c *Cache) SetDefaultDocker(d Docker) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.def = &Backend{Name: config.DefaultBackendName, Docker: d}
	c.watchLocked(d)
}

// Version changes whenever the published state may have changed.
func (c *Cache) Version() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.version
}

func (c *Cache) changedLocked() {
	c.version++
	if c.opts.OnChange != nil {
		c.opts.OnChange()
	}
}

// NewName returns a fresh short random id.
func NewName() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// countLocked is how many slots are taken: every container but the ones
// already gone from Docker, plus slots granted to waiters.
func (c *Cache) countLocked() int {
	return len(c.entries) + c.reserved
}

func (c *Cache) runtimeCountLocked(id string) int {
	n := 0
	for _, e := range c.entries {
		if e.runtime.ID == id {
			n++
		}
	}
	return n
}

// Acquire returns the session's container of req.Runtime, starting or
// reusing one.
func (c *Cache) Acquire(ctx context.Context, req Request) (Grant, error) {
	t0 := time.Now()
	c.ctr.Requests.Add(1)
	g, err := c.acquire(ctx, req)
	if err == nil {
		c.ctr.Acquire.Observe(time.Since(t0))
	}
	return g, err
}

func (c *Cache) acquire(ctx context.Context, req Request) (Grant, error) {
	rt := req.Runtime
	c.mu.Lock()
	for {
		if c.closed {
			c.mu.Unlock()
			return Grant{}, ErrClosed
		}
		e := c.sessions[req.Session][rt.ID]
		if e == nil {
			break
		}
		if e.state == StateStarting {
			ch := e.ready
			c.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return Grant{}, ErrCancelled
			}
			c.mu.Lock()
			if e.startErr != nil {
				err := e.startErr
				c.mu.Unlock()
				return Grant{}, err
			}
			continue
		}
		if e.exited || e.stale || e.state == StateStopping {
			// A dead or outdated container is replaced by a new one.
			c.removeLocked(e)
			break
		}
		e.state = StateInUse
		e.uses++
		e.lastUsed = time.Now()
		c.changedLocked()
		c.ctr.WarmHits.Add(1)
		g := Grant{ID: e.id, Address: e.address, Reused: true, ClientVersion: e.clientVersion}
		c.mu.Unlock()
		return g, nil
	}

	if req.WantConn {
		if e := c.takePrewarmedLocked(rt, req); e != nil {
			g := Grant{ID: e.id, Address: e.address, Prewarmed: true, Conn: e.conn, ClientVersion: e.clientVersion}
			e.conn = nil
			c.ctr.PrewarmHits.Add(1)
			c.mu.Unlock()
			c.kickPrewarm()
			return g, nil
		}
	}

	if err := c.reserveLocked(ctx, rt); err != nil {
		c.mu.Unlock()
		return Grant{}, err
	}
	if c.sessions[req.Session][rt.ID] != nil {
		// Another request of the session got its container while this one
		// waited for a slot: pass the slot on and share that container.
		c.grantLocked()
		c.mu.Unlock()
		return c.acquire(ctx, req)
	}
	e := c.newEntryLocked(rt, req.Session)
	e.owner, e.database, e.dbOID, e.wantConn = req.Role, req.Database, req.DatabaseOID, req.WantConn
	c.bindLocked(e, req.Session)
	c.mu.Unlock()

	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer c.opts.Panics.Recover("container start")
		c.start(e)
	}()

	select {
	case <-e.ready:
	case <-ctx.Done():
		c.mu.Lock()
		c.removeLocked(e)
		c.mu.Unlock()
		return Grant{}, ErrCancelled
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if e.startErr != nil {
		return Grant{}, e.startErr
	}
	if e.cancel || e.state == StateStopping {
		return Grant{}, ErrCancelled
	}
	e.state = StateInUse
	e.uses++
	e.lastUsed = time.Now()
	c.changedLocked()
	g := Grant{ID: e.id, Address: e.address, Conn: e.conn, ClientVersion: e.clientVersion}
	e.conn = nil
	return g, nil
}

// newEntryLocked adds a starting container; its slot must be reserved.
func (c *Cache) newEntryLocked(rt *config.Runtime, session Key) *entry {
	name := NewName()
	e := &entry{
		name:    name,
		be:      c.backendLocked(rt),
		runtime: rt,
		session: session,
		state:   StateStarting,
		created: time.Now(),
		readyMS: -1,
		memKB:   -1,
		ready:   make(chan struct{}),
	}
	if !e.be.Remote {
		e.dir = filepath.Join(c.opts.ContainersDir, name)
		e.address = "unix:" + filepath.Join(e.dir, SocketName)
	}
	c.entries[name] = e
	c.changedLocked()
	return e
}

func (c *Cache) bindLocked(e *entry, k Key) {
	e.session = k
	m := c.sessions[k]
	if m == nil {
		m = map[string]*entry{}
		c.sessions[k] = m
	}
	m[e.runtime.ID] = e
}

func (c *Cache) unbindLocked(e *entry) {
	if e.prewarm() {
		return
	}
	if m := c.sessions[e.session]; m != nil && m[e.runtime.ID] == e {
		delete(m, e.runtime.ID)
		if len(m) == 0 {
			delete(c.sessions, e.session)
		}
	}
}

// reserveLocked waits, in arrival order, until a slot is free for rt.
// It may drop and retake c.mu.
func (c *Cache) reserveLocked(ctx context.Context, rt *config.Runtime) error {
	if rt.MaxContainers > 0 && c.runtimeCountLocked(rt.ID) >= rt.MaxContainers {
		if !c.evictPrewarmedLocked(rt.ID) {
			return &LimitError{Limit: rt.MaxContainers, Runtime: rt.ID}
		}
	}
	if len(c.waiters) == 0 && c.countLocked() < c.opts.MaxContainers {
		return nil
	}
	// Prewarmed containers are the first to give way to a real request,
	// then the idle container used longest ago (its session gets a new
	// one when it asks again).
	if !c.evictPrewarmedLocked("") {
		c.evictIdleLocked()
	}

	w := &waiter{ch: make(chan struct{})}
	c.waiters = append(c.waiters, w)
	c.ctr.QueueWaits.Add(1)
	c.grantLocked()
	t0 := time.Now()
	timer := time.NewTimer(c.opts.AcquireTimeout)
	defer timer.Stop()
	c.mu.Unlock()
	var err error
	select {
	case <-w.ch:
	case <-timer.C:
		err = &LimitError{Limit: c.opts.MaxContainers, Waited: time.Since(t0)}
		c.ctr.QueueTimeouts.Add(1)
	case <-ctx.Done():
		err = ErrCancelled
	}
	c.mu.Lock()
	if err == nil && c.closed {
		// Close woke every waiter.
		err = ErrClosed
	}
	if w.granted {
		c.reserved--
		if err != nil {
			c.grantLocked()
		}
		return err
	}
	for i, x := range c.waiters {
		if x == w {
			c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
			break
		}
	}
	return err
}

// grantLocked hands free slots to waiters in order.
func (c *Cache) grantLocked() {
	for len(c.waiters) > 0 && c.countLocked() < c.opts.MaxContainers {
		w := c.waiters[0]
		c.waiters = c.waiters[1:]
		w.granted = true
		c.reserved++
		close(w.ch)
	}
}

// takePrewarmedLocked binds a ready prewarmed container of rt to the
// request's session.
func (c *Cache) takePrewarmedLocked(rt *config.Runtime, req Request) *entry {
	for _, e := range c.entries {
		if e.state == StatePrewarmed && e.runtime.ID == rt.ID && !e.stale && !e.exited && e.conn != nil {
			e.owner, e.database, e.dbOID = req.Role, req.Database, req.DatabaseOID
			e.state = StateInUse
			e.uses++
			e.lastUsed = time.Now()
			c.bindLocked(e, req.Session)
			c.changedLocked()
			return e
		}
	}
	return nil
}

// evictPrewarmedLocked removes one prewarmed container (of runtime, or of
// any runtime if ""). Reports whether it found one.
func (c *Cache) evictPrewarmedLocked(runtime string) bool {
	for _, e := range c.entries {
		if e.state == StatePrewarmed && (runtime == "" || e.runtime.ID == runtime) {
			c.removeLocked(e)
			return true
		}
	}
	return false
}

// evictIdleLocked removes the least recently used idle container.
func (c *Cache) evictIdleLocked() {
	var lru *entry
	for _, e := range c.entries {
		if e.state == StateIdle && (lru == nil || e.lastUsed.Before(lru.lastUsed)) {
			lru = e
		}
	}
	if lru != nil {
		c.removeLocked(lru)
	}
}

// Release marks the session's container of runtimeID idle; a container
// whose runtime changed meanwhile is removed instead.
func (c *Cache) Release(k Key, runtimeID string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.sessions[k][runtimeID]
	if e == nil {
		return 0
	}
	c.ctr.Releases.Add(1)
	if e.stale || e.exited {
		c.removeLocked(e)
		return 1
	}
	if e.state == StateInUse {
		e.state = StateIdle
		e.lastUsed = time.Now()
		c.changedLocked()
	}
	return 1
}

// ReleaseAll removes every container of the session, starts in flight
// included.
func (c *Cache) ReleaseAll(k Key) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, e := range c.sessions[k] {
		c.removeLocked(e)
		n++
	}
	if n > 0 {
		c.ctr.Releases.Add(int64(n))
	}
	return n
}

// SessionEnded removes the session's containers.
func (c *Cache) SessionEnded(k Key) { c.ReleaseAll(k) }

// SetRuntimes installs a new configuration: new requests use the new
// definitions; idle containers of changed or removed runtimes go now, the
// ones in use when released.
func (c *Cache) SetRuntimes(rts map[string]*config.Runtime) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runtimes = rts
	for _, e := range c.entries {
		nrt := rts[e.runtime.ID]
		if nrt != nil && nrt.Equal(e.runtime) && c.backendLocked(nrt) == e.be {
			continue
		}
		e.stale = true
		if e.state == StateIdle || e.state == StatePrewarmed {
			c.removeLocked(e)
		}
	}
	c.changedLocked()
	c.kickPrewarm()
}

// SetBackends installs the engines of the configuration's backends (the
// default one is always the cache's own). Call it before SetRuntimes:
// containers whose backend changed are treated as changed runtimes.
func (c *Cache) SetBackends(bs map[string]*Backend) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.backends = bs
	for _, b := range bs {
		c.watchLocked(b.Docker)
	}
}

// backendLocked is the backend a runtime's containers run on.
func (c *Cache) backendLocked(rt *config.Runtime) *Backend {
	if b := c.backends[rt.Backend]; b != nil {
		return b
	}
	return c.def
}

// dockersLocked lists each engine once.
func (c *Cache) dockersLocked() []Docker {
	out := []Docker{c.def.Docker}
	seen := map[Docker]bool{c.def.Docker: true}
	for _, b := range c.backends {
		if !seen[b.Docker] {
			seen[b.Docker] = true
			out = append(out, b.Docker)
		}
	}
	return out
}

// Sessions returns how many containers each session holds.
func (c *Cache) Sessions() map[Key]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[Key]int, len(c.sessions))
	for k, m := range c.sessions {
		out[k] = len(m)
	}
	return out
}

// Reachable reports whether the last contact with Docker succeeded.
func (c *Cache) Reachable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reachable
}

func (c *Cache) setReachable(ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reachable != ok {
		c.reachable = ok
		c.changedLocked()
	}
}

// Snapshot returns the rows of plcoordinator.containers.
func (c *Cache) Snapshot() []status.Container {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]status.Container, 0, len(c.entries))
	for _, e := range c.entries {
		st := e.state
		if e.exited && st != StateStopping {
			st = StateExited
		}
		exit := int32(-1)
		if e.exited {
			exit = e.exitCode
		}
		out = append(out, status.Container{
			ID: e.id, Runtime: e.runtime.ID, Owner: e.owner, Database: e.database, State: st,
			Address: e.address, BackendPID: e.session.PID, ReadyMS: e.readyMS, CreatedAt: e.created,
			LastUsed: e.lastUsed, Uses: e.uses, MemoryKB: e.memKB, ExitCode: exit, OOMKilled: e.oom,
		})
	}
	return out
}
