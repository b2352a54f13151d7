package coordinator

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/plcoordinator/plcoordinator/golib/internal/protocol"
	"github.com/plcoordinator/plcoordinator/golib/internal/status"
)

// fakeHost records what Run asks of the C side.
type fakeHost struct {
	mu        sync.Mutex
	logs      []string
	states    []State
	address   string
	signals   uint32
	settings  Settings
	reloads   int
	published int
	ready     chan struct{}
}

func newFakeHost(s Settings) *fakeHost { return &fakeHost{settings: s, ready: make(chan struct{})} }

func (h *fakeHost) Log(level status.Level, message string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.logs = append(h.logs, message)
}

func (h *fakeHost) TakeSignals() uint32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.signals
	h.signals = 0
	return s
}

func (h *fakeHost) ReloadSettings() (Settings, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reloads++
	return h.settings, nil
}

func (h *fakeHost) SetState(state State, address string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.states = append(h.states, state)
	if state == StateReady {
		h.address = address
		close(h.ready)
	}
}

func (h *fakeHost) Publish(*status.Snapshot) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.published++
}

func (h *fakeHost) logText() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.logs, "\n")
}

// harness runs Run in a goroutine with pipes for the signal and
// postmaster file descriptors.
type harness struct {
	host   *fakeHost
	sigW   *os.File
	pmW    *os.File
	result chan int
}

func testSettings(t *testing.T) Settings {
	dir, err := os.MkdirTemp("", "plcc")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return Settings{
		MaxContainers: 4, CheckInterval: time.Hour, AcquireTimeout: time.Second, MaxParallelCreates: 1,
		ShutdownTimeout: time.Second, ConfigFile: filepath.Join(dir, "plcontainer_configuration.xml"),
		// No engine answers here: the coordinator must come up anyway.
		DockerHost: "unix://" + filepath.Join(dir, "no-docker.sock"),
		SocketDir:  filepath.Join(dir, "s"), DataDir: dir, Instance: "test-1", SegIndex: -1,
	}
}

func startRun(t *testing.T, s Settings) *harness {
	sigR, sigW, err := os.Pipe()
	require.NoError(t, err)
	pmR, pmW, err := os.Pipe()
	require.NoError(t, err)
	h := &harness{host: newFakeHost(s), sigW: sigW, pmW: pmW, result: make(chan int, 1)}
	go func() { h.result <- Run(h.host, s, int(sigR.Fd()), int(pmR.Fd())) }()
	t.Cleanup(func() { _ = pmW.Close() })
	return h
}

func (h *harness) signal(t *testing.T, bits uint32) {
	h.host.mu.Lock()
	h.host.signals |= bits
	h.host.mu.Unlock()
	_, err := h.sigW.Write(make([]byte, 8))
	require.NoError(t, err)
}

func (h *harness) waitReady(t *testing.T) {
	select {
	case <-h.host.ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("never ready; log:\n%s", h.host.logText())
	}
}

func (h *harness) wait(t *testing.T) int {
	select {
	case code := <-h.result:
		return code
	case <-time.After(10 * time.Second):
		t.Fatalf("Run did not return; log:\n%s", h.host.logText())
		return -1
	}
}

func TestRun_ReadyThenSIGTERM(t *testing.T) {
	s := testSettings(t)
	h := startRun(t, s)
	h.waitReady(t)
	assert.Equal(t, "unix:"+s.SocketPath(), h.host.address)
	fi, err := os.Stat(s.SocketDir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), "socket directory is private")
	assert.Contains(t, h.host.logText(), "does not exist: no runtimes are defined")

	// A client can talk to it.
	c, err := protocol.Dial(s.SocketPath())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = c.Hello(ctx, protocol.Hello{})
	require.NoError(t, err)
	doc, err := c.Status(ctx)
	require.NoError(t, err)
	var st struct {
		Runtimes   []json.RawMessage `json:"runtimes"`
		Requesters []json.RawMessage `json:"requesters"`
	}
	require.NoError(t, json.Unmarshal([]byte(doc), &st))
	assert.Empty(t, st.Runtimes)
	assert.Len(t, st.Requesters, 1)
	_, _, err = c.Acquire(ctx, protocol.Acquire{RuntimeID: "nope"})
	code, _ := protocol.CodeOf(err)
	assert.Equal(t, protocol.CodeUnknownRuntime, code)
	_ = c.Close()

	h.signal(t, SigTerm)
	assert.Equal(t, ExitRestart, h.wait(t), "SIGTERM asks to be restarted, as PostgreSQL's workers do")
	assert.Equal(t, []State{StateReady, StateStopping}, h.host.states)
	_, err = os.Stat(s.SocketPath())
	assert.True(t, os.IsNotExist(err), "the socket is removed")
}

func TestRun_PostmasterDeath(t *testing.T) {
	h := startRun(t, testSettings(t))
	h.waitReady(t)
	require.NoError(t, h.pmW.Close())
	assert.Equal(t, ExitRestart, h.wait(t))
	assert.Contains(t, h.host.logText(), "postmaster died")
}

func TestRun_SIGHUPReloadsSettingsAndFile(t *testing.T) {
	s := testSettings(t)
	h := startRun(t, s)
	h.waitReady(t)
	require.NoError(t, os.WriteFile(s.ConfigFile, []byte(`<configuration><runtime><id>r1</id>
		<image>i</image><command>/c</command></runtime></configuration>`), 0o600))
	h.signal(t, SigHup)
	require.Eventually(t, func() bool { return strings.Contains(h.host.logText(), "loaded 1 runtime(s)") },
		5*time.Second, 10*time.Millisecond)
	h.host.mu.Lock()
	assert.Equal(t, 1, h.host.reloads)
	h.host.mu.Unlock()

	// A broken file is rejected and the runtime stays.
	require.NoError(t, os.WriteFile(s.ConfigFile, []byte(`<configuration><runtime>`), 0o600))
	h.signal(t, SigHup)
	require.Eventually(t, func() bool { return strings.Contains(h.host.logText(), "keeping the previous runtimes") },
		5*time.Second, 10*time.Millisecond)
	h.signal(t, SigTerm)
	h.wait(t)
}

func TestRun_PanicEndsWithRestart(t *testing.T) {
	s := testSettings(t)
	s.TestHooks = true
	h := startRun(t, s)
	h.waitReady(t)
	c, err := protocol.Dial(s.SocketPath())
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = c.Hello(ctx, protocol.Hello{})
	require.NoError(t, err)
	_, _, err = c.Do(ctx, protocol.DebugPanic{})
	require.NoError(t, err)
	assert.Equal(t, ExitRestart, h.wait(t), "a recovered panic restarts the worker, never the cluster")
	assert.Contains(t, h.host.logText(), "plcoordinator.debug_panic() was called")
}

func TestRun_RefusesATooLongSocketDir(t *testing.T) {
	s := testSettings(t)
	s.SocketDir = "/tmp/" + strings.Repeat("x", 90)
	h := startRun(t, s)
	assert.Equal(t, ExitRestart, h.wait(t))
	assert.Empty(t, h.host.states, "never ready")
	assert.Contains(t, h.host.logText(), "is too long")
}
