package cache_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/plcoordinator/plcoordinator/golib/internal/cache"
	"github.com/plcoordinator/plcoordinator/golib/internal/dockerx"
)

var _ cache.Docker = (*fakeDocker)(nil)

// Errors the fake can inject. They are built so that dockerx's classifiers
// see them as the real client's errors would be seen.
var (
	// errTransient is a dropped connection: IsTransient, not IsUnreachable.
	errTransient = fmt.Errorf("fake docker: %w", syscall.ECONNRESET)
	// errUnreachable is a failed dial: IsUnreachable (and IsTransient).
	errUnreachable = fmt.Errorf("fake docker: %w",
		&net.OpError{Op: "dial", Net: "unix", Err: &net.AddrError{Err: "connection refused", Addr: "/var/run/docker.sock"}})
	// errPermanent is neither: an engine rejection such as a missing image.
	errPermanent = errors.New("fake docker: no such image")
)

func notFound(id string) error {
	return fmt.Errorf("fake docker: no such container %s: %w", id, cerrdefs.ErrNotFound)
}

// imageBehavior is how the fake PL/Container client in an image behaves.
type imageBehavior struct {
	// Exit: the container exits with ExitCode right after Start, before
	// its client listens. A "die" event is sent unless SilentExit.
	Exit       bool
	ExitCode   int
	OOM        bool
	SilentExit bool
	// NoSocket: the client never creates its socket.
	NoSocket bool
	// NoPing: the client listens but never answers PING.
	NoPing bool
	// SocketDelay: the socket appears this long after Start.
	SocketDelay time.Duration
}

// fakeContainer is one container of the fake engine.
type fakeContainer struct {
	ID       string
	Name     string
	Image    string
	Labels   map[string]string
	Created  time.Time
	Status   string // "created", "running", "exited"
	ExitCode int
	OOM      bool

	dir   string // host side of the /tmp/plcontainer bind
	ln    net.Listener
	conns []net.Conn
}

// fakeDocker is a hand-written cache.Docker: an in-memory engine whose
// containers "run" a fake PL/Container client that listens on a real Unix
// socket in the container's bind-mounted directory and answers PING.
type fakeDocker struct {
	mu         sync.Mutex
	calls      map[string]int
	latency    map[string]time.Duration // per method
	errs       map[string][]error       // per method, one consumed per call
	behavior   map[string]imageBehavior // by image
	containers map[string]*fakeContainer
	removed    []string // ids, in removal order
	specs      []dockerx.Spec
	seq        int
	events     chan dockerx.Event
	closed     bool
}

func newFakeDocker() *fakeDocker {
	return &fakeDocker{
		calls:      map[string]int{},
		latency:    map[string]time.Duration{},
		errs:       map[string][]error{},
		behavior:   map[string]imageBehavior{},
		containers: map[string]*fakeContainer{},
		events:     make(chan dockerx.Event, 1024),
	}
}

// SetLatency makes every call of method take d.
func (f *fakeDocker) SetLatency(method string, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.latency[method] = d
}

// FailNext makes the next len(errs) calls of method fail with errs in turn.
func (f *fakeDocker) FailNext(method string, errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[method] = append(f.errs[method], errs...)
}

// SetBehavior sets how containers of image behave.
func (f *fakeDocker) SetBehavior(image string, b imageBehavior) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.behavior[image] = b
}

// Calls returns how often method was called.
func (f *fakeDocker) Calls(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

// Removed returns the ids removed so far.
func (f *fakeDocker) Removed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.removed...)
}

// Specs returns the specs passed to Create.
func (f *fakeDocker) Specs() []dockerx.Spec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]dockerx.Spec(nil), f.specs...)
}

// Live returns the ids of the containers that exist.
func (f *fakeDocker) Live() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return mapsKeys(f.containers)
}

// Container returns a copy of the container's public fields, or nil.
func (f *fakeDocker) Container(id string) *fakeContainer {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.containers[id]
	if c == nil {
		return nil
	}
	return &fakeContainer{ID: c.ID, Name: c.Name, Image: c.Image, Labels: maps.Clone(c.Labels),
		Created: c.Created, Status: c.Status, ExitCode: c.ExitCode, OOM: c.OOM, dir: c.dir}
}

// AddContainer puts a container into the fake engine as if someone else
// (an earlier coordinator) had created it.
func (f *fakeDocker) AddContainer(labels map[string]string, created time.Time) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	id := fmt.Sprintf("%064x", 0xf000+f.seq)
	f.containers[id] = &fakeContainer{ID: id, Name: "old", Image: "old", Labels: maps.Clone(labels),
		Created: created, Status: "running"}
	return id
}

// Die ends a running container, as its process exiting would, and sends
// the "die" event (and "oom" first when oom is set).
func (f *fakeDocker) Die(id string, code int, oom bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.containers[id]; c != nil {
		f.exitLocked(c, code, oom, true)
	}
}

func (f *fakeDocker) exitLocked(c *fakeContainer, code int, oom, event bool) {
	c.Status, c.ExitCode, c.OOM = "exited", code, oom
	f.stopClientLocked(c)
	if !event {
		return
	}
	if oom {
		f.pushLocked(dockerx.Event{ID: c.ID, Action: "oom", Labels: maps.Clone(c.Labels), Time: time.Now()})
	}
	f.pushLocked(dockerx.Event{ID: c.ID, Action: "die", ExitCode: code, Labels: maps.Clone(c.Labels), Time: time.Now()})
}

// Exit ends a running container without any event, as when the event
// stream missed it; only Inspect shows it.
func (f *fakeDocker) Exit(id string, code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.containers[id]; c != nil {
		f.exitLocked(c, code, false, false)
	}
}

// Push sends an event as the engine would.
func (f *fakeDocker) Push(ev dockerx.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pushLocked(ev)
}

func (f *fakeDocker) pushLocked(ev dockerx.Event) {
	select {
	case f.events <- ev:
	default: // a test that pushes 1024 unread events does not block the fake
	}
}

// Shutdown closes every fake client socket.
func (f *fakeDocker) Shutdown() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for _, c := range f.containers {
		f.stopClientLocked(c)
	}
}

// call counts a call, waits its latency (or ctx) and returns the next
// injected error.
func (f *fakeDocker) call(ctx context.Context, method string) error {
	f.mu.Lock()
	f.calls[method]++
	lat := f.latency[method]
	var err error
	if q := f.errs[method]; len(q) > 0 {
		err, f.errs[method] = q[0], q[1:]
	}
	f.mu.Unlock()
	if lat > 0 {
		t := time.NewTimer(lat)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

func (f *fakeDocker) Create(ctx context.Context, s dockerx.Spec) (string, error) {
	if err := f.call(ctx, "Create"); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	id := fmt.Sprintf("%064x", f.seq)
	c := &fakeContainer{ID: id, Name: s.Name, Image: s.Image, Labels: maps.Clone(s.Labels),
		Created: time.Now(), Status: "created"}
	for _, b := range s.Binds {
		if dir, ok := strings.CutSuffix(b, ":/tmp/plcontainer:rw"); ok {
			c.dir = dir
		}
	}
	f.containers[id] = c
	f.specs = append(f.specs, s)
	return id, nil
}

func (f *fakeDocker) Start(ctx context.Context, id string) error {
	if err := f.call(ctx, "Start"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.containers[id]
	if c == nil {
		return notFound(id)
	}
	b := f.behavior[c.Image]
	if b.Exit {
		f.exitLocked(c, b.ExitCode, b.OOM, !b.SilentExit)
		return nil
	}
	c.Status = "running"
	if b.NoSocket || c.dir == "" {
		return nil
	}
	if b.SocketDelay > 0 {
		go func() {
			time.Sleep(b.SocketDelay)
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.containers[id] == c && c.Status == "running" {
				f.listenLocked(c, b)
			}
		}()
		return nil
	}
	return f.listenLocked(c, b)
}

// listenLocked starts the fake PL/Container client: a listening socket in
// the container's directory that takes connections and answers PING.
func (f *fakeDocker) listenLocked(c *fakeContainer, b imageBehavior) error {
	if f.closed {
		return nil
	}
	ln, err := net.Listen("unix", filepath.Join(c.dir, cache.SocketName))
	if err != nil {
		return fmt.Errorf("fake client: %w", err)
	}
	c.ln = ln
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			if c.ln != ln {
				f.mu.Unlock()
				conn.Close()
				return
			}
			c.conns = append(c.conns, conn)
			f.mu.Unlock()
			go servePing(conn, !b.NoPing)
		}
	}()
	return nil
}

// servePing answers PL/Container's PING ('P', int32 LE length, version)
// and then holds the connection until it is closed.
func servePing(conn net.Conn, answer bool) {
	defer conn.Close()
	if answer {
		head := make([]byte, 5)
		if _, err := io.ReadFull(conn, head); err != nil {
			return
		}
		n := binary.LittleEndian.Uint32(head[1:])
		if head[0] != 'P' || n > 1024 {
			return
		}
		if _, err := io.ReadFull(conn, make([]byte, n)); err != nil {
			return
		}
		reply := []byte{'P', 0, 0, 0, 0}
		binary.LittleEndian.PutUint32(reply[1:], uint32(len(cache.PLCVersion)))
		if _, err := conn.Write(append(reply, cache.PLCVersion...)); err != nil {
			return
		}
	}
	_, _ = io.Copy(io.Discard, conn)
}

func (f *fakeDocker) stopClientLocked(c *fakeContainer) {
	if c.ln != nil {
		c.ln.Close()
		c.ln = nil
	}
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}

func (f *fakeDocker) Inspect(ctx context.Context, id string) (dockerx.State, error) {
	if err := f.call(ctx, "Inspect"); err != nil {
		return dockerx.State{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.containers[id]
	if c == nil {
		return dockerx.State{}, notFound(id)
	}
	return dockerx.State{ID: id, Status: c.Status, Running: c.Status == "running", ExitCode: c.ExitCode,
		OOMKilled: c.OOM}, nil
}

// Remove force-removes like dockerx: an unknown id is not an error, and a
// running container dies first (with a "die" event, as the engine sends).
func (f *fakeDocker) Remove(ctx context.Context, id string) error {
	if err := f.call(ctx, "Remove"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.containers[id]
	if c == nil {
		return nil
	}
	if c.Status == "running" {
		f.exitLocked(c, 137, false, true)
	}
	f.stopClientLocked(c)
	delete(f.containers, id)
	f.removed = append(f.removed, id)
	return nil
}

func (f *fakeDocker) List(ctx context.Context, labels map[string]string) ([]dockerx.Summary, error) {
	if err := f.call(ctx, "List"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []dockerx.Summary
	for _, c := range f.containers {
		match := true
		for k, v := range labels {
			if got, ok := c.Labels[k]; !ok || v != "" && got != v {
				match = false
			}
		}
		if match {
			out = append(out, dockerx.Summary{ID: c.ID, State: c.Status, Labels: maps.Clone(c.Labels),
				Created: c.Created.Truncate(time.Second)})
		}
	}
	return out, nil
}

func (f *fakeDocker) Logs(ctx context.Context, id string, tail int) (string, error) {
	if err := f.call(ctx, "Logs"); err != nil {
		return "", err
	}
	return "fake client: last words\n", nil
}

// Events returns the fake's one event stream; tests push into it with Die
// and Push. The error channel never fires.
func (f *fakeDocker) Events(ctx context.Context, labels map[string]string) (<-chan dockerx.Event, <-chan error) {
	_ = f.call(ctx, "Events")
	return f.events, make(chan error)
}

func (f *fakeDocker) MemoryUsage(ctx context.Context, id string) (uint64, error) {
	if err := f.call(ctx, "MemoryUsage"); err != nil {
		return 0, err
	}
	return 32 << 20, nil
}

func (f *fakeDocker) Ping(ctx context.Context) (string, error) {
	if err := f.call(ctx, "Ping"); err != nil {
		return "", err
	}
	return "1.47", nil
}

func mapsKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
