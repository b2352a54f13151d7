package cache_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/plcoordinator/plcoordinator/golib/internal/cache"
	"github.com/plcoordinator/plcoordinator/golib/internal/config"
	"github.com/plcoordinator/plcoordinator/golib/internal/dockerx"
	"github.com/plcoordinator/plcoordinator/golib/internal/status"
)

const (
	testInstance   = "test-instance"
	testGeneration = "gen-current"
	waitFor        = 3 * time.Second
	tick           = 5 * time.Millisecond
)

// harness is a cache on a fake engine.
type harness struct {
	d      *fakeDocker
	c      *cache.Cache
	ctr    *status.Counters
	dir    string // ContainersDir
	panics *status.Panics
}

// newHarness builds a cache with small limits and timeouts; opt adjusts the
// options and prepare the fake engine before the cache starts. With run the
// background work is started; without, tests drive Reconcile themselves.
// The cache is closed when the test ends.
func newHarness(t *testing.T, run bool, opt func(*cache.Options), prepare ...func(*fakeDocker)) *harness {
	t.Helper()
	// Socket paths are limited to 108 bytes, too short for t.TempDir().
	root, err := os.MkdirTemp("/tmp", "plc")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	h := &harness{d: newFakeDocker(), ctr: &status.Counters{}, dir: filepath.Join(root, "c"), panics: status.NewPanics()}
	opts := cache.Options{
		Instance:           testInstance,
		Generation:         testGeneration,
		ContainersDir:      h.dir,
		MaxContainers:      4,
		MaxParallelCreates: 4,
		AcquireTimeout:     2 * time.Second,
		CheckInterval:      time.Hour,
		ShutdownTimeout:    5 * time.Second,
		Log:                status.NewLogger(4096),
		Counters:           h.ctr,
		Panics:             h.panics,
	}
	if opt != nil {
		opt(&opts)
	}
	for _, p := range prepare {
		p(h.d)
	}
	h.c = cache.New(h.d, opts)
	t.Cleanup(h.d.Shutdown)
	if run {
		require.NoError(t, h.c.Run())
	} else {
		require.NoError(t, os.MkdirAll(h.dir, 0o700))
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.c.Close(ctx)
		select {
		case err := <-h.panics.C():
			t.Errorf("recovered panic: %v", err)
		default:
		}
	})
	return h
}

func testRuntime(id, image string) *config.Runtime {
	return &config.Runtime{ID: id, Image: image, Command: "/clientdir/pyclient.sh", MemoryMB: 64, CPUShare: 1024,
		Backend: config.DefaultBackendName, StartTimeout: 2 * time.Second}
}

func session(n int64) cache.Key { return cache.Key{PID: int32(os.Getpid()), StartUS: n} }

func (h *harness) acquire(t *testing.T, k cache.Key, rt *config.Runtime) cache.Grant {
	t.Helper()
	g, err := h.c.Acquire(context.Background(), cache.Request{Session: k, Runtime: rt, Role: "alice", Database: "db"})
	require.NoError(t, err)
	return g
}

type result struct {
	g   cache.Grant
	err error
}

func (h *harness) acquireAsync(ctx context.Context, req cache.Request) <-chan result {
	ch := make(chan result, 1)
	go func() {
		g, err := h.c.Acquire(ctx, req)
		ch <- result{g, err}
	}()
	return ch
}

func wait(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(waitFor):
		t.Fatal("acquire did not return")
		return result{}
	}
}

// states counts the cache's containers by state.
func (h *harness) states() map[string]int {
	out := map[string]int{}
	for _, c := range h.c.Snapshot() {
		out[c.State]++
	}
	return out
}

func (h *harness) row(id string) (status.Container, bool) {
	for _, c := range h.c.Snapshot() {
		if c.ID == id {
			return c, true
		}
	}
	return status.Container{}, false
}

// waitQueued waits until n requests in total have queued for a slot.
func (h *harness) waitQueued(t *testing.T, n int64) {
	t.Helper()
	require.Eventually(t, func() bool { return h.ctr.QueueWaits.Load() >= n }, waitFor, tick)
}

// waitEmpty waits until the cache forgot every container and the engine
// has none left.
func (h *harness) waitEmpty(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool { return len(h.c.Snapshot()) == 0 && len(h.d.Live()) == 0 }, waitFor, tick)
}

func TestCache_ColdThenWarm(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true, nil)
	rt := testRuntime("python", "img")

	g1 := h.acquire(t, session(1), rt)
	assert.False(t, g1.Reused)
	assert.False(t, g1.Prewarmed)
	assert.Nil(t, g1.Conn)
	assert.Len(t, g1.ID, 64)
	assert.True(t, strings.HasPrefix(g1.Address, "unix:"+h.dir+"/"), g1.Address)
	assert.True(t, strings.HasSuffix(g1.Address, "/"+cache.SocketName), g1.Address)

	assert.Equal(t, 1, h.c.Release(session(1), "python"))
	assert.Equal(t, map[string]int{cache.StateIdle: 1}, h.states())

	g2 := h.acquire(t, session(1), rt)
	assert.True(t, g2.Reused)
	assert.Equal(t, g1.ID, g2.ID)
	assert.Equal(t, g1.Address, g2.Address)

	assert.Equal(t, 1, h.d.Calls("Create"))
	assert.Equal(t, 1, h.d.Calls("Start"))
	st := h.ctr.Stats()
	assert.EqualValues(t, 2, st.Requests)
	assert.EqualValues(t, 1, st.ColdStarts)
	assert.EqualValues(t, 1, st.WarmHits)
	assert.EqualValues(t, 1, st.Releases)
	assert.EqualValues(t, 0, st.StartFailures)

	row, ok := h.row(g1.ID)
	require.True(t, ok)
	assert.Equal(t, cache.StateInUse, row.State)
	assert.EqualValues(t, 2, row.Uses)
	assert.Equal(t, int32(os.Getpid()), row.BackendPID)
	assert.GreaterOrEqual(t, row.ReadyMS, int32(0))

	specs := h.d.Specs()
	require.Len(t, specs, 1)
	s := specs[0]
	assert.Equal(t, "img", s.Image)
	assert.Equal(t, testInstance, s.Labels[cache.LabelInstance])
	assert.Equal(t, testGeneration, s.Labels[cache.LabelGeneration])
	assert.Equal(t, "python", s.Labels[cache.LabelRuntime])
	assert.Equal(t, "alice", s.Labels["owner"])
	assert.Contains(t, s.Env, "DB_USER_NAME=alice")
	require.NotEmpty(t, s.Binds)
	assert.True(t, strings.HasSuffix(s.Binds[len(s.Binds)-1], ":/tmp/plcontainer:rw"))
}

func TestCache_SessionsGetOwnContainers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true, nil)
	rt := testRuntime("python", "img")

	g1 := h.acquire(t, session(1), rt)
	g2 := h.acquire(t, session(2), rt)
	assert.NotEqual(t, g1.ID, g2.ID)
	assert.NotEqual(t, g1.Address, g2.Address)
	assert.False(t, g2.Reused)
	assert.Equal(t, 2, h.d.Calls("Create"))
	assert.Equal(t, map[cache.Key]int{session(1): 1, session(2): 1}, h.c.Sessions())
	assert.EqualValues(t, 2, h.ctr.ColdStarts.Load())
	assert.EqualValues(t, 0, h.ctr.WarmHits.Load())
}

func TestCache_ConcurrentCheckout(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		full bool // the cache is full, so every request queues first
	}{
		{name: "free slots"},
		{name: "queued behind a full cache", full: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, true, func(o *cache.Options) { o.MaxContainers = 2 })
			h.d.SetLatency("Create", 100*time.Millisecond)
			rt := testRuntime("python", "img")
			if tc.full {
				h.acquire(t, session(100), rt)
				h.acquire(t, session(101), rt)
			}
			creates := h.d.Calls("Create")

			const n = 5
			var chans []<-chan result
			for i := 0; i < n; i++ {
				chans = append(chans, h.acquireAsync(context.Background(), cache.Request{Session: session(1), Runtime: rt}))
			}
			if tc.full {
				h.waitQueued(t, n)
				h.c.ReleaseAll(session(100))
				h.c.ReleaseAll(session(101))
			}
			fresh := 0
			var id string
			for _, ch := range chans {
				r := wait(t, ch)
				require.NoError(t, r.err)
				if id == "" {
					id = r.g.ID
				}
				assert.Equal(t, id, r.g.ID)
				if !r.g.Reused {
					fresh++
				}
			}
			assert.Equal(t, 1, fresh, "exactly one request starts the container")
			assert.Equal(t, creates+1, h.d.Calls("Create"), "one create for the session")
			assert.Equal(t, map[cache.Key]int{session(1): 1}, h.c.Sessions())
			h.waitEmptyExcept(t, 1)
			assert.EqualValues(t, n-1, h.ctr.WarmHits.Load())
		})
	}
}

// waitEmptyExcept waits until the cache and the engine hold exactly n
// containers.
func (h *harness) waitEmptyExcept(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return len(h.c.Snapshot()) == n && len(h.d.Live()) == n }, waitFor, tick)
}

func TestCache_Limit(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		runtimeMax  int
		wantRuntime string
		wantLimit   int
		wantWait    bool
	}{
		{name: "instance limit waits then fails", wantLimit: 2, wantWait: true},
		{name: "runtime limit fails at once", runtimeMax: 1, wantRuntime: "python", wantLimit: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const timeout = 200 * time.Millisecond
			h := newHarness(t, true, func(o *cache.Options) { o.MaxContainers = 2; o.AcquireTimeout = timeout })
			rt := testRuntime("python", "img")
			rt.MaxContainers = tc.runtimeMax
			other := testRuntime("r", "img")
			h.acquire(t, session(1), rt)
			h.acquire(t, session(2), other)

			t0 := time.Now()
			_, err := h.c.Acquire(context.Background(), cache.Request{Session: session(3), Runtime: rt})
			waited := time.Since(t0)
			require.Error(t, err)
			assert.ErrorIs(t, err, cache.ErrLimit)
			var le *cache.LimitError
			require.ErrorAs(t, err, &le)
			assert.Equal(t, tc.wantLimit, le.Limit)
			assert.Equal(t, tc.wantRuntime, le.Runtime)
			st := h.ctr.Stats()
			if tc.wantWait {
				assert.GreaterOrEqual(t, waited, timeout)
				assert.GreaterOrEqual(t, le.Waited, timeout)
				assert.Less(t, waited, timeout+time.Second)
				assert.EqualValues(t, 1, st.QueueWaits)
				assert.EqualValues(t, 1, st.QueueTimeouts)
			} else {
				assert.Less(t, waited, timeout)
				assert.EqualValues(t, 0, st.QueueWaits)
			}
			assert.Equal(t, 2, h.d.Calls("Create"))
			assert.Len(t, h.c.Snapshot(), 2)
		})
	}
}

func TestCache_QueueIsFIFO(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true, func(o *cache.Options) { o.MaxContainers = 1; o.AcquireTimeout = 10 * time.Second })
	rt := testRuntime("python", "img")
	h.acquire(t, session(100), rt)

	served := make(chan int64, 3)
	for i := int64(1); i <= 3; i++ {
		go func() {
			_, err := h.c.Acquire(context.Background(), cache.Request{Session: session(i), Runtime: rt})
			if err == nil {
				served <- i
			} else {
				served <- -i
			}
		}()
		h.waitQueued(t, i) // arrival order is the order of the loop
	}
	select {
	case i := <-served:
		t.Fatalf("waiter %d served while the cache is full", i)
	case <-time.After(50 * time.Millisecond):
	}

	holder := int64(100)
	for want := int64(1); want <= 3; want++ {
		h.c.ReleaseAll(session(holder))
		select {
		case got := <-served:
			require.Equal(t, want, got, "waiters are served in arrival order")
		case <-time.After(waitFor):
			t.Fatalf("waiter %d not served", want)
		}
		select {
		case got := <-served:
			t.Fatalf("waiter %d served too, with one free slot", got)
		case <-time.After(30 * time.Millisecond):
		}
		holder = want
	}
	assert.EqualValues(t, 3, h.ctr.QueueWaits.Load())
	assert.EqualValues(t, 0, h.ctr.QueueTimeouts.Load())
}

func TestCache_CancelWhileQueued(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	h := newHarness(t, true, func(o *cache.Options) { o.MaxContainers = 1; o.AcquireTimeout = timeout })
	rt := testRuntime("python", "img")
	h.acquire(t, session(100), rt)

	ctx, cancel := context.WithCancel(context.Background())
	ch := h.acquireAsync(ctx, cache.Request{Session: session(1), Runtime: rt})
	h.waitQueued(t, 1)
	cancel()
	r := wait(t, ch)
	assert.ErrorIs(t, r.err, cache.ErrCancelled)
	assert.Equal(t, 1, h.d.Calls("Create"))

	// The slot count is unchanged: one container fits, no more, no less.
	h.c.ReleaseAll(session(100))
	h.waitEmpty(t)
	h.acquire(t, session(2), rt)
	assert.EqualValues(t, 1, h.ctr.QueueWaits.Load(), "a free slot is granted without queueing")
	_, err := h.c.Acquire(context.Background(), cache.Request{Session: session(3), Runtime: rt})
	assert.ErrorIs(t, err, cache.ErrLimit, "the cancelled waiter left no extra slot")
	assert.EqualValues(t, 1, h.ctr.QueueTimeouts.Load())
}

func TestCache_ReleaseAllDuringStart(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		method string // the Docker call in flight when the session releases
		cancel bool   // cancel the request's context instead of ReleaseAll
	}{
		{name: "during create", method: "Create"},
		{name: "during start", method: "Start"},
		{name: "context cancelled during create", method: "Create", cancel: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, true, nil)
			h.d.SetLatency(tc.method, 300*time.Millisecond)
			rt := testRuntime("python", "img")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ch := h.acquireAsync(ctx, cache.Request{Session: session(1), Runtime: rt})
			require.Eventually(t, func() bool { return h.d.Calls(tc.method) == 1 }, waitFor, tick)

			if tc.cancel {
				cancel()
			} else {
				assert.Equal(t, 1, h.c.ReleaseAll(session(1)))
			}
			require.Eventually(t, func() bool { return len(h.c.Sessions()) == 0 }, waitFor, tick)
			r := wait(t, ch)
			assert.ErrorIs(t, r.err, cache.ErrCancelled)

			h.waitEmpty(t)
			assert.Len(t, h.d.Removed(), 1, "the container is removed once Docker answers")
			entries, err := os.ReadDir(h.dir)
			require.NoError(t, err)
			assert.Empty(t, entries, "socket directory removed")
			assert.EqualValues(t, 0, h.ctr.StartFailures.Load())
		})
	}
}

func TestCache_StartFailure(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		behavior imageBehavior
		wantOOM  bool
	}{
		{name: "exit seen in event", behavior: imageBehavior{Exit: true, ExitCode: 3}},
		{name: "exit seen by inspect", behavior: imageBehavior{Exit: true, ExitCode: 3, SilentExit: true}},
		{name: "oom killed", behavior: imageBehavior{Exit: true, ExitCode: 137, OOM: true}, wantOOM: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, true, nil)
			h.d.SetBehavior("broken", tc.behavior)
			rt := testRuntime("python", "broken")

			t0 := time.Now()
			_, err := h.c.Acquire(context.Background(), cache.Request{Session: session(1), Runtime: rt})
			require.Error(t, err)
			assert.Less(t, time.Since(t0), time.Second, "a dead container fails before the start timeout")
			var se *cache.StartError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, "python", se.Runtime)
			assert.Equal(t, tc.behavior.ExitCode, se.ExitCode)
			assert.Equal(t, tc.wantOOM, se.OOM)
			assert.Zero(t, se.Timeout)
			assert.NoError(t, se.Err)
			assert.Equal(t, "fake client: last words", se.Logs)
			require.NotEmpty(t, se.ID)

			h.waitEmpty(t)
			assert.Equal(t, []string{se.ID}, h.d.Removed())
			assert.Empty(t, h.c.Sessions())
			assert.EqualValues(t, 1, h.ctr.StartFailures.Load())
		})
	}
}

func TestCache_StartTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true, nil)
	h.d.SetBehavior("mute", imageBehavior{NoSocket: true})
	rt := testRuntime("python", "mute")
	rt.StartTimeout = 300 * time.Millisecond

	t0 := time.Now()
	_, err := h.c.Acquire(context.Background(), cache.Request{Session: session(1), Runtime: rt})
	elapsed := time.Since(t0)
	var se *cache.StartError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, rt.StartTimeout, se.Timeout)
	assert.GreaterOrEqual(t, elapsed, rt.StartTimeout)
	assert.Less(t, elapsed, rt.StartTimeout+time.Second)
	assert.Contains(t, se.Error(), "not ready within")
	h.waitEmpty(t)
	assert.Equal(t, []string{se.ID}, h.d.Removed())
	assert.EqualValues(t, 1, h.ctr.StartFailures.Load())
}

func TestCache_DockerErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		method        string
		errs          []error
		wantErr       error // nil: the acquire succeeds
		wantCalls     int
		wantReachable bool
		fast          bool // must fail without retry delays
	}{
		{name: "transient create retried", method: "Create", errs: []error{errTransient}, wantCalls: 2, wantReachable: true},
		{name: "transient start retried", method: "Start", errs: []error{errTransient, errTransient}, wantCalls: 3, wantReachable: true},
		{name: "transient create gives up", method: "Create", errs: []error{errTransient, errTransient, errTransient},
			wantErr: errTransient, wantCalls: 3, wantReachable: true},
		{name: "unreachable fails fast", method: "Create", errs: []error{errUnreachable},
			wantErr: errUnreachable, wantCalls: 1, fast: true},
		{name: "permanent error not retried", method: "Create", errs: []error{errPermanent},
			wantErr: errPermanent, wantCalls: 1, wantReachable: true, fast: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// The background reconcile must not report the engine
			// reachable behind the test's back: its List waits.
			h := newHarness(t, true, nil, func(d *fakeDocker) { d.SetLatency("List", time.Minute) })
			h.d.FailNext(tc.method, tc.errs...)
			rt := testRuntime("python", "img")

			t0 := time.Now()
			g, err := h.c.Acquire(context.Background(), cache.Request{Session: session(1), Runtime: rt})
			elapsed := time.Since(t0)
			assert.Equal(t, tc.wantCalls, h.d.Calls(tc.method))
			assert.Equal(t, tc.wantReachable, h.c.Reachable())
			assert.EqualValues(t, min(len(tc.errs), tc.wantCalls), h.ctr.DockerErrors.Load())
			if tc.wantErr == nil {
				require.NoError(t, err)
				assert.NotEmpty(t, g.ID)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.wantErr)
			var se *cache.StartError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, dockerx.IsUnreachable(tc.wantErr), dockerx.IsUnreachable(err))
			if tc.fast {
				assert.Less(t, elapsed, 90*time.Millisecond, "no retry delay")
			}
			h.waitEmpty(t)
			assert.Empty(t, h.c.Sessions())

			// The next successful call makes the engine reachable again.
			h.acquire(t, session(2), rt)
			assert.True(t, h.c.Reachable())
		})
	}
}

func TestCache_PrewarmHandOff(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true, nil)
	rt := testRuntime("python", "img")
	rt.Prewarm = 2
	h.c.SetRuntimes(map[string]*config.Runtime{"python": rt})
	require.Eventually(t, func() bool { return h.states()[cache.StatePrewarmed] == 2 }, waitFor, tick)
	for _, s := range h.d.Specs() {
		assert.Equal(t, "0", s.Labels[cache.LabelBackendPID], "a prewarmed container has no session yet")
	}

	g, err := h.c.Acquire(context.Background(), cache.Request{Session: session(1), Runtime: rt, WantConn: true})
	require.NoError(t, err)
	require.NotNil(t, g.Conn)
	defer g.Conn.Close()
	assert.True(t, g.Prewarmed)
	assert.False(t, g.Reused)
	assert.Equal(t, cache.PLCVersion, g.ClientVersion)
	st := h.ctr.Stats()
	assert.EqualValues(t, 1, st.PrewarmHits)
	assert.EqualValues(t, 0, st.ColdStarts)

	// The pool is refilled.
	require.Eventually(t, func() bool {
		s := h.states()
		return s[cache.StatePrewarmed] == 2 && s[cache.StateInUse] == 1
	}, waitFor, tick)
	assert.Equal(t, 3, h.d.Calls("Create"))

	// A second acquire of the session reuses its container.
	g2, err := h.c.Acquire(context.Background(), cache.Request{Session: session(1), Runtime: rt, WantConn: true})
	require.NoError(t, err)
	assert.Equal(t, g.ID, g2.ID)
	assert.True(t, g2.Reused)
	assert.Nil(t, g2.Conn)
}

func TestCache_PrewarmGivesWay(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		starting bool // the pool is still starting when the requests come
	}{
		{name: "ready pool"},
		{name: "pool still starting", starting: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, true, func(o *cache.Options) { o.MaxContainers = 2; o.AcquireTimeout = 2 * time.Second })
			rt := testRuntime("python", "img")
			rt.Prewarm = 2
			if tc.starting {
				h.d.SetLatency("Start", 300*time.Millisecond)
			}
			h.c.SetRuntimes(map[string]*config.Runtime{"python": rt})
			if tc.starting {
				require.Eventually(t, func() bool { return h.d.Calls("Start") == 2 }, waitFor, tick)
			} else {
				require.Eventually(t, func() bool { return h.states()[cache.StatePrewarmed] == 2 }, waitFor, tick)
			}

			// Requests without WantConn cannot use a prewarmed container;
			// the pool must make room for them.
			t0 := time.Now()
			c1 := h.acquireAsync(context.Background(), cache.Request{Session: session(1), Runtime: rt})
			c2 := h.acquireAsync(context.Background(), cache.Request{Session: session(2), Runtime: rt})
			for _, ch := range []<-chan result{c1, c2} {
				r := wait(t, ch)
				require.NoError(t, r.err)
				assert.False(t, r.g.Prewarmed)
			}
			assert.Less(t, time.Since(t0), 1500*time.Millisecond)
			h.waitEmptyExcept(t, 2)
			assert.Equal(t, map[string]int{cache.StateInUse: 2}, h.states())
			assert.EqualValues(t, 0, h.ctr.QueueTimeouts.Load())
		})
	}
}

func TestCache_PrewarmBackoff(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true, nil)
	h.d.SetBehavior("broken", imageBehavior{Exit: true, ExitCode: 1})
	rt := testRuntime("python", "broken")
	rt.Prewarm = 2
	h.c.SetRuntimes(map[string]*config.Runtime{"python": rt})

	require.Eventually(t, func() bool { return h.d.Calls("Create") >= 2 }, waitFor, tick)
	time.Sleep(2500 * time.Millisecond)
	creates := h.d.Calls("Create")
	assert.LessOrEqual(t, creates, 6, "a failing prewarm backs off instead of spinning")
	assert.GreaterOrEqual(t, h.ctr.StartFailures.Load(), int64(2))
	assert.Zero(t, h.states()[cache.StatePrewarmed])
}

func TestCache_SetRuntimes(t *testing.T) {
	t.Parallel()
	changed := testRuntime("python", "img:v2")
	cases := []struct {
		name        string
		next        map[string]*config.Runtime
		wantRemoved bool
	}{
		{name: "changed runtime", next: map[string]*config.Runtime{"python": changed}, wantRemoved: true},
		{name: "removed runtime", next: map[string]*config.Runtime{}, wantRemoved: true},
		{name: "equal runtime", next: map[string]*config.Runtime{"python": testRuntime("python", "img")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, true, nil)
			rt := testRuntime("python", "img")
			h.c.SetRuntimes(map[string]*config.Runtime{"python": rt})
			idle := h.acquire(t, session(1), rt)
			h.c.Release(session(1), "python")
			busy := h.acquire(t, session(2), rt)

			h.c.SetRuntimes(tc.next)
			if !tc.wantRemoved {
				time.Sleep(50 * time.Millisecond)
				assert.Empty(t, h.d.Removed())
				h.c.Release(session(2), "python")
				time.Sleep(50 * time.Millisecond)
				assert.Empty(t, h.d.Removed())
				assert.True(t, h.acquire(t, session(1), rt).Reused)
				return
			}
			require.Eventually(t, func() bool { return len(h.d.Removed()) == 1 }, waitFor, tick,
				"the idle container goes at once")
			assert.Equal(t, []string{idle.ID}, h.d.Removed())
			row, ok := h.row(busy.ID)
			require.True(t, ok, "the container in use stays")
			assert.Equal(t, cache.StateInUse, row.State)

			assert.Equal(t, 1, h.c.Release(session(2), "python"))
			require.Eventually(t, func() bool { return len(h.d.Removed()) == 2 }, waitFor, tick,
				"the container in use goes when released")
			h.waitEmpty(t)

			if nrt := tc.next["python"]; nrt != nil {
				g := h.acquire(t, session(2), nrt)
				assert.False(t, g.Reused)
				assert.Equal(t, "img:v2", h.d.Container(g.ID).Image)
			}
		})
	}
}

func TestCache_Reconcile(t *testing.T) {
	t.Parallel()
	h := newHarness(t, false, nil)
	rt := testRuntime("python", "img")
	owned := h.acquire(t, session(1), rt)

	now := time.Now()
	labels := func(gen, name string) map[string]string {
		return map[string]string{cache.LabelInstance: testInstance, cache.LabelGeneration: gen, cache.LabelName: name}
	}
	oldGen := h.d.AddContainer(labels("gen-old", "aaaaaaaaaaaa"), now)
	young := h.d.AddContainer(labels(testGeneration, "bbbbbbbbbbbb"), now)
	orphan := h.d.AddContainer(labels(testGeneration, "cccccccccccc"), now.Add(-time.Minute))
	foreign := h.d.AddContainer(map[string]string{cache.LabelInstance: "other", cache.LabelGeneration: "x"},
		now.Add(-time.Hour))

	oldDir := filepath.Join(h.dir, "dddddddddddd")
	youngDir := filepath.Join(h.dir, "eeeeeeeeeeee")
	require.NoError(t, os.Mkdir(oldDir, 0o700))
	require.NoError(t, os.Mkdir(youngDir, 0o700))
	require.NoError(t, os.Chtimes(oldDir, now.Add(-time.Hour), now.Add(-time.Hour)))

	h.c.Reconcile(context.Background())

	assert.ElementsMatch(t, []string{oldGen, orphan}, h.d.Removed())
	assert.ElementsMatch(t, []string{owned.ID, young, foreign}, h.d.Live())
	assert.EqualValues(t, 2, h.ctr.OrphansRemoved.Load())
	assert.NoDirExists(t, oldDir, "unknown socket directory removed")
	assert.NoDirExists(t, youngDir, "a directory without an entry is nobody's, however young")
	assert.FileExists(t, strings.TrimPrefix(owned.Address, "unix:"), "the owned container keeps its socket")
	assert.True(t, h.c.Reachable())

	// Docker unreachable: nothing is removed, and the cache says so.
	h.d.FailNext("List", errUnreachable)
	h.c.Reconcile(context.Background())
	assert.False(t, h.c.Reachable())
	assert.Len(t, h.d.Removed(), 2)
}

func TestCache_DeadContainerReplaced(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true, nil)
	rt := testRuntime("python", "img")
	g1 := h.acquire(t, session(1), rt)
	h.d.Die(g1.ID, 137, true)
	require.Eventually(t, func() bool {
		row, ok := h.row(g1.ID)
		return ok && row.State == cache.StateExited && row.ExitCode == 137 && row.OOMKilled
	}, waitFor, tick)

	g2 := h.acquire(t, session(1), rt)
	assert.NotEqual(t, g1.ID, g2.ID)
	assert.False(t, g2.Reused)
	require.Eventually(t, func() bool { return len(h.d.Removed()) == 1 }, waitFor, tick)
	assert.Equal(t, g1.ID, h.d.Removed()[0])
}

func TestCache_Close(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true, func(o *cache.Options) { o.MaxContainers = 8 })
	h.d.SetBehavior("slow", imageBehavior{SocketDelay: 5 * time.Second})
	rt := testRuntime("python", "img")
	pre := testRuntime("pre", "img")
	pre.Prewarm = 1
	h.c.SetRuntimes(map[string]*config.Runtime{"python": rt, "pre": pre})
	h.acquire(t, session(1), rt)
	h.acquire(t, session(2), rt)
	h.c.Release(session(2), "python")
	// The pool fills while no cold start runs; then one starts.
	require.Eventually(t, func() bool { return h.states()[cache.StatePrewarmed] == 1 }, waitFor, tick)
	starting := h.acquireAsync(context.Background(), cache.Request{Session: session(3), Runtime: testRuntime("slow", "slow")})
	require.Eventually(t, func() bool {
		s := h.states()
		return s[cache.StatePrewarmed] == 1 && s[cache.StateStarting] == 1
	}, waitFor, tick)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t0 := time.Now()
	h.c.Close(ctx)
	assert.Less(t, time.Since(t0), 3*time.Second)
	assert.Empty(t, h.d.Live(), "every container removed")
	assert.Empty(t, h.c.Snapshot())
	r := wait(t, starting)
	assert.Error(t, r.err)

	_, err := h.c.Acquire(context.Background(), cache.Request{Session: session(4), Runtime: rt})
	assert.ErrorIs(t, err, cache.ErrClosed)
}

func TestCache_CloseWakesWaiters(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true, func(o *cache.Options) { o.MaxContainers = 1; o.AcquireTimeout = 5 * time.Second })
	rt := testRuntime("python", "img")
	h.acquire(t, session(100), rt)
	ch := h.acquireAsync(context.Background(), cache.Request{Session: session(1), Runtime: rt})
	h.waitQueued(t, 1)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	h.c.Close(ctx)
	r := wait(t, ch)
	assert.ErrorIs(t, r.err, cache.ErrClosed)
	assert.NoError(t, ctx.Err(), "Close finished within its deadline")
	assert.Equal(t, 1, h.d.Calls("Create"), "no container is started after Close")
	assert.Empty(t, h.d.Live())
}

// TestCache_ConcurrentChurn runs many sessions against a small cache to let
// the race detector see the locking.
func TestCache_ConcurrentChurn(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true, func(o *cache.Options) { o.MaxContainers = 3; o.AcquireTimeout = 3 * time.Second })
	h.d.SetLatency("Create", 5*time.Millisecond)
	rts := []*config.Runtime{testRuntime("a", "img"), testRuntime("b", "img")}
	rts[1].Prewarm = 1
	h.c.SetRuntimes(map[string]*config.Runtime{"a": rts[0], "b": rts[1]})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := int64(1); i <= 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				rt := rts[(int(i)+j)%2]
				g, err := h.c.Acquire(context.Background(), cache.Request{Session: session(i), Runtime: rt, WantConn: j%2 == 0})
				if err != nil {
					errs <- err
					break
				}
				if g.Conn != nil {
					g.Conn.Close()
				}
				_ = h.c.Snapshot()
				if j%2 == 0 {
					h.c.Release(session(i), rt.ID)
				}
				h.c.ReleaseAll(session(i))
			}
			h.c.ReleaseAll(session(i))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("acquire: %v", err)
	}
	require.Eventually(t, func() bool { return len(h.c.Sessions()) == 0 }, waitFor, tick)
	require.Eventually(t, func() bool {
		return len(h.c.Snapshot()) <= 1 && len(h.d.Live()) == len(h.c.Snapshot())
	}, waitFor, tick, "only the prewarmed container is left: %+v, live %v", h.c.Snapshot(), h.d.Live())
}

func TestCache_ColdHandOff(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true, nil)
	rt := testRuntime("python", "img")
	g, err := h.c.Acquire(context.Background(), cache.Request{Session: session(1), Runtime: rt, WantConn: true})
	require.NoError(t, err)
	require.NotNil(t, g.Conn, "a cold start hands over its pinged connection too")
	defer g.Conn.Close()
	assert.False(t, g.Prewarmed)
	assert.Equal(t, cache.PLCVersion, g.ClientVersion)
	assert.EqualValues(t, 1, h.ctr.ColdStarts.Load())
}

func TestCache_PrewarmedDies(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true, nil)
	rt := testRuntime("python", "img")
	rt.Prewarm = 1
	h.c.SetRuntimes(map[string]*config.Runtime{"python": rt})
	require.Eventually(t, func() bool { return h.states()[cache.StatePrewarmed] == 1 }, waitFor, tick)
	id := h.c.Snapshot()[0].ID

	h.d.Die(id, 1, false)
	require.Eventually(t, func() bool { return len(h.d.Removed()) == 1 }, waitFor, tick)
	assert.Equal(t, id, h.d.Removed()[0])
	require.Eventually(t, func() bool { return h.states()[cache.StatePrewarmed] == 1 }, waitFor, tick,
		"a dead prewarmed container is replaced")
	assert.NotEqual(t, id, h.c.Snapshot()[0].ID)
	assert.Equal(t, 2, h.d.Calls("Create"))
}

// deadPID returns the pid of a process that has exited.
func deadPID(t *testing.T) int32 {
	t.Helper()
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	return int32(cmd.Process.Pid)
}

func TestCache_Sweep(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true, func(o *cache.Options) {
		o.CheckInterval = 50 * time.Millisecond
		o.MemoryInterval = 50 * time.Millisecond
	})
	rt := testRuntime("python", "img")
	idleRt := testRuntime("idle", "img")
	idleRt.IdleTimeout = 100 * time.Millisecond
	gone := cache.Key{PID: deadPID(t), StartUS: 1}

	gGone := h.acquire(t, gone, rt)
	gLive := h.acquire(t, session(1), rt)
	gIdle := h.acquire(t, session(2), idleRt)
	h.c.Release(session(2), "idle")
	gExit := h.acquire(t, session(3), rt)
	h.d.Exit(gExit.ID, 2)

	require.Eventually(t, func() bool { return len(h.d.Removed()) == 2 }, waitFor, tick)
	assert.ElementsMatch(t, []string{gGone.ID, gIdle.ID}, h.d.Removed(),
		"the container of a backend that is gone and the idle one are removed")
	assert.EqualValues(t, 1, h.ctr.SessionsReaped.Load())
	row, ok := h.row(gLive.ID)
	require.True(t, ok)
	assert.Equal(t, cache.StateInUse, row.State)
	require.Eventually(t, func() bool {
		row, ok := h.row(gLive.ID)
		return ok && row.MemoryKB == 32<<10
	}, waitFor, tick, "the memory refresh reads the container's use")
	require.Eventually(t, func() bool {
		row, ok := h.row(gExit.ID)
		return ok && row.State == cache.StateExited && row.ExitCode == 2
	}, waitFor, tick, "inspect finds a container that exited without an event")
}

// TestCache_PrewarmYieldsToColdStarts: the pool is not refilled while a
// session's container starts.
func TestCache_PrewarmYieldsToColdStarts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true, nil)
	h.d.SetBehavior("slow", imageBehavior{SocketDelay: 300 * time.Millisecond})
	slow := testRuntime("slow", "slow")
	starting := h.acquireAsync(context.Background(), cache.Request{Session: session(1), Runtime: slow})
	require.Eventually(t, func() bool { return h.states()[cache.StateStarting] == 1 }, waitFor, tick)

	pre := testRuntime("pre", "img")
	pre.Prewarm = 2
	h.c.SetRuntimes(map[string]*config.Runtime{"slow": slow, "pre": pre})
	time.Sleep(100 * time.Millisecond)
	assert.Zero(t, h.states()[cache.StatePrewarmed], "no refill during a cold start")
	assert.Equal(t, 1, h.states()[cache.StateStarting])

	require.NoError(t, wait(t, starting).err)
	require.Eventually(t, func() bool { return h.states()[cache.StatePrewarmed] == 2 }, waitFor, tick,
		"the pool fills once the cold start is done")
}

// TestCache_IdleGivesWay: at the limit, the idle (released) container used
// longest ago is removed for a waiting request; containers in use are not.
func TestCache_IdleGivesWay(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true, func(o *cache.Options) { o.MaxContainers = 2; o.AcquireTimeout = 10 * time.Second })
	rt := testRuntime("python", "img")
	older := h.acquire(t, session(1), rt)
	h.acquire(t, session(2), rt)
	h.c.Release(session(1), rt.ID)
	h.c.Release(session(2), rt.ID)
	h.acquire(t, session(2), rt) // in use again

	g := h.acquire(t, session(3), rt)
	assert.NotEqual(t, older.ID, g.ID)
	assert.NotContains(t, h.d.Live(), older.ID, "the idle container of session 1 gave way")
	assert.EqualValues(t, 1, h.ctr.QueueWaits.Load())

	// Session 1 gets a new container when it asks again, once there is room.
	h.c.ReleaseAll(session(3))
	again := h.acquire(t, session(1), rt)
	assert.NotEqual(t, older.ID, again.ID)
	assert.False(t, again.Reused)
}

// TestCache_SetTunables: a reload's acquire timeout and create limit apply
// to the next requests.
func TestCache_SetTunables(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true, func(o *cache.Options) { o.MaxContainers = 1; o.AcquireTimeout = time.Minute })
	rt := testRuntime("python", "img")
	h.acquire(t, session(1), rt)
	h.c.SetTunables(cache.Tunables{AcquireTimeout: 50 * time.Millisecond, MaxParallelCreates: 2,
		CheckInterval: time.Hour})
	t0 := time.Now()
	_, err := h.c.Acquire(context.Background(), cache.Request{Session: session(2), Runtime: rt})
	require.ErrorIs(t, err, cache.ErrLimit)
	assert.Less(t, time.Since(t0), 5*time.Second, "the new, shorter timeout applied")
}
