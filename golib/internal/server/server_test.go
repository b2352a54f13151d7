package server

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/plcoordinator/plcoordinator/golib/internal/protocol"
	"github.com/plcoordinator/plcoordinator/golib/internal/status"
)

const (
	testInstance     = "test-instance"
	testFrameTimeout = 200 * time.Millisecond
	waitFor          = 3 * time.Second
	tick             = 5 * time.Millisecond
)

// fakeHandler is a hand-written Handler that records what the server asks.
type fakeHandler struct {
	mu          sync.Mutex
	ended       []*Session
	releaseAlls int
	log         []string // "acquire returned", "session ended", in order

	// acquire, when set, replaces the default reply.
	acquire func(ctx context.Context, sess *Session, req protocol.Acquire) (protocol.Acquired, *os.File, error)
	// started receives when an ACQUIRE reaches the handler (if not nil).
	started chan struct{}
	// acquireCtxErr is ctx.Err() when the last ACQUIRE returned.
	acquireCtxErr error
	releaseErr    error
	reloadErr     error
	panicErr      error
	releaseAllN   uint32
	statsResets   int
}

var _ Handler = (*fakeHandler)(nil)

func (h *fakeHandler) note(s string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.log = append(h.log, s)
}

func (h *fakeHandler) Acquire(ctx context.Context, sess *Session, req protocol.Acquire) (protocol.Acquired, *os.File, error) {
	if h.started != nil {
		h.started <- struct{}{}
	}
	var (
		a   protocol.Acquired
		f   *os.File
		err error
	)
	if h.acquire != nil {
		a, f, err = h.acquire(ctx, sess, req)
	} else {
		a = protocol.Acquired{ContainerID: "c-" + req.RuntimeID, Address: "unix:/tmp/x"}
	}
	h.mu.Lock()
	h.acquireCtxErr = ctx.Err()
	h.mu.Unlock()
	h.note("acquire returned")
	return a, f, err
}

func (h *fakeHandler) Release(sess *Session, runtimeID string) (uint32, error) {
	if h.releaseErr != nil {
		return 0, h.releaseErr
	}
	return 1, nil
}

func (h *fakeHandler) ReleaseAll(sess *Session) uint32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.releaseAlls++
	return h.releaseAllN
}

func (h *fakeHandler) SessionEnded(sess *Session) {
	h.mu.Lock()
	h.ended = append(h.ended, sess)
	h.mu.Unlock()
	h.note("session ended")
}

func (h *fakeHandler) Reload(ctx context.Context) (protocol.Reloaded, error) {
	if h.reloadErr != nil {
		return protocol.Reloaded{}, h.reloadErr
	}
	return protocol.Reloaded{Runtimes: 3, Message: "reloaded"}, nil
}

func (h *fakeHandler) Status() string { return `{"ok":true}` }

func (h *fakeHandler) StatsReset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.statsResets++
}

func (h *fakeHandler) DebugPanic() error { return h.panicErr }

func (h *fakeHandler) endedCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ended)
}

func (h *fakeHandler) events() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.log...)
}

// blockingAcquire makes ACQUIRE wait for its context, then answer as the
// coordinator does for a cancelled acquire, a little late.
func (h *fakeHandler) blockingAcquire() {
	h.started = make(chan struct{}, 4)
	h.acquire = func(ctx context.Context, sess *Session, req protocol.Acquire) (protocol.Acquired, *os.File, error) {
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond)
		return protocol.Acquired{}, nil, &protocol.ErrorMsg{Code: protocol.CodeStartFailed, Message: "acquire cancelled by release_all"}
	}
}

func (h *fakeHandler) waitStarted(t *testing.T) {
	t.Helper()
	select {
	case <-h.started:
	case <-time.After(waitFor):
		t.Fatal("ACQUIRE did not reach the handler")
	}
}

// testServer is a server listening in a temporary directory.
type testServer struct {
	s     *Server
	path  string
	serve chan error // Serve's result
}

func startServer(t *testing.T, h Handler, opts Options) *testServer {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "s")
	ln, err := Listen(dir, path)
	require.NoError(t, err)
	opts.Instance = testInstance
	opts.Log = status.NewLogger(1024)
	ts := &testServer{s: New(h, opts), path: path, serve: make(chan error, 1)}
	ts.s.frameTimeout = testFrameTimeout
	go func() { ts.serve <- ts.s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, ts.s.Shutdown(ctx))
		select {
		case err := <-ts.serve:
			assert.ErrorIs(t, err, ErrServerClosed)
		case <-time.After(waitFor):
			t.Error("Serve did not return after Shutdown")
		}
	})
	return ts
}

// client dials and says HELLO; zero fields of h are filled in by
// protocol.Client (this process's pid and start).
func (ts *testServer) client(t *testing.T, h protocol.Hello) (*protocol.Client, protocol.Welcome) {
	t.Helper()
	c, err := protocol.Dial(ts.path)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	w, err := c.Hello(context.Background(), h)
	require.NoError(t, err)
	return c, w
}

// raw dials without any handshake.
func (ts *testServer) raw(t *testing.T) *net.UnixConn {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: ts.path, Net: "unix"})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t *testing.T, c net.Conn, id uint32, m protocol.Message) {
	t.Helper()
	require.NoError(t, protocol.WriteFrame(c, protocol.NewFrame(id, m)))
}

func recv(t *testing.T, c net.Conn) protocol.Frame {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(waitFor)))
	f, err := protocol.ReadFrame(c, nil)
	require.NoError(t, err)
	return f
}

// rawHello does the handshake on a raw connection.
func rawHello(t *testing.T, c net.Conn, start int64) {
	t.Helper()
	send(t, c, 1, protocol.Hello{MinVersion: 1, MaxVersion: 1, PID: int32(os.Getpid()), BackendStartUS: start, Client: "test"})
	f := recv(t, c)
	require.Equal(t, protocol.TypeWelcome, f.Type)
}

func errorCode(t *testing.T, f protocol.Frame) protocol.ErrorCode {
	t.Helper()
	require.Equal(t, protocol.TypeError, f.Type, "want an ERROR frame")
	em, err := protocol.UnmarshalError(f.Payload)
	require.NoError(t, err)
	return em.Code
}

// readUntilClosed reads frames until the server closes the connection,
// within limit, and returns them and how long the close took.
func readUntilClosed(t *testing.T, c net.Conn, limit time.Duration) ([]protocol.Frame, time.Duration) {
	t.Helper()
	t0 := time.Now()
	require.NoError(t, c.SetReadDeadline(t0.Add(limit)))
	var frames []protocol.Frame
	for {
		f, err := protocol.ReadFrame(c, nil)
		if err != nil {
			require.True(t, errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
				errors.Is(err, syscall.ECONNRESET), "want the connection closed, got %v", err)
			return frames, time.Since(t0)
		}
		frames = append(frames, f)
	}
}

func codeOf(t *testing.T, err error) protocol.ErrorCode {
	t.Helper()
	code, ok := protocol.CodeOf(err)
	require.True(t, ok, "want a protocol ERROR, got %v", err)
	return code
}

func TestServer_HelloWelcome(t *testing.T) {
	t.Parallel()
	h := &fakeHandler{}
	ts := startServer(t, h, Options{})
	c, w := ts.client(t, protocol.Hello{BackendStartUS: 42})

	assert.Equal(t, uint16(protocol.Version), w.Version)
	assert.Equal(t, uint32(protocol.MaxPayload), w.MaxPayload)
	assert.Equal(t, testInstance, w.Instance)
	assert.Equal(t, int32(os.Getpid()), w.ServerPID)

	sessions := ts.s.Sessions()
	require.Len(t, sessions, 1)
	assert.Equal(t, int32(os.Getpid()), sessions[0].PID)
	assert.EqualValues(t, 42, sessions[0].StartUS)
	assert.Empty(t, sessions[0].LastRequest)

	ctx := context.Background()
	js, err := c.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, `{"ok":true}`, js)
	a, fd, err := c.Acquire(ctx, protocol.Acquire{RuntimeID: "python", SegIndex: -1})
	require.NoError(t, err)
	assert.Nil(t, fd)
	assert.Equal(t, "c-python", a.ContainerID)
	n, err := c.Release(ctx, "python")
	require.NoError(t, err)
	assert.EqualValues(t, 1, n)
	r, err := c.Reload(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 3, r.Runtimes)
	assert.Equal(t, "RELOAD", ts.s.Sessions()[0].LastRequest)
	f, _, err := c.Do(ctx, protocol.StatsReset{})
	require.NoError(t, err)
	assert.Equal(t, protocol.TypeDone, f.Type)
	h.mu.Lock()
	assert.Equal(t, 1, h.statsResets)
	h.mu.Unlock()
	assert.Zero(t, h.endedCount())
}

func TestServer_HelloRejected(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		first protocol.Message
		want  protocol.ErrorCode
	}{
		{name: "pid of another process", want: protocol.CodePermission,
			first: protocol.Hello{MinVersion: 1, MaxVersion: 1, PID: int32(os.Getpid()) + 1, BackendStartUS: 1}},
		{name: "only newer versions", want: protocol.CodeVersion,
			first: protocol.Hello{MinVersion: 2, MaxVersion: 3, PID: int32(os.Getpid()), BackendStartUS: 1}},
		{name: "empty version range", want: protocol.CodeVersion,
			first: protocol.Hello{MinVersion: 1, MaxVersion: 0, PID: int32(os.Getpid()), BackendStartUS: 1}},
		{name: "request before HELLO", want: protocol.CodeProtocol, first: protocol.Status{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := &fakeHandler{}
			ts := startServer(t, h, Options{})
			c := ts.raw(t)
			send(t, c, 7, tc.first)
			frames, _ := readUntilClosed(t, c, waitFor)
			require.Len(t, frames, 1, "one ERROR, then the connection is closed")
			assert.EqualValues(t, 7, frames[0].RequestID)
			assert.Equal(t, tc.want, errorCode(t, frames[0]))
			assert.Empty(t, ts.s.Sessions())
			assert.Zero(t, h.endedCount(), "no session was started")

			// The same rejection through protocol.Client.
			pc, err := protocol.Dial(ts.path)
			require.NoError(t, err)
			defer pc.Close()
			if hello, ok := tc.first.(protocol.Hello); ok {
				_, err = pc.Hello(context.Background(), hello)
			} else {
				_, err = pc.Status(context.Background())
			}
			assert.Equal(t, tc.want, codeOf(t, err))
		})
	}
}

func TestServer_SessionConflict(t *testing.T) {
	t.Parallel()
	h := &fakeHandler{}
	ts := startServer(t, h, Options{})
	first, _ := ts.client(t, protocol.Hello{BackendStartUS: 1})

	c := ts.raw(t)
	send(t, c, 1, protocol.Hello{MinVersion: 1, MaxVersion: 1, PID: int32(os.Getpid()), BackendStartUS: 1})
	frames, _ := readUntilClosed(t, c, waitFor)
	require.Len(t, frames, 1)
	assert.Equal(t, protocol.CodeSessionConflict, errorCode(t, frames[0]))

	// The first connection is untouched.
	_, err := first.Status(context.Background())
	assert.NoError(t, err)
	require.Len(t, ts.s.Sessions(), 1)
	assert.EqualValues(t, 1, ts.s.Sessions()[0].StartUS)
	assert.Zero(t, h.endedCount())
}

func TestServer_PIDReused(t *testing.T) {
	t.Parallel()
	h := &fakeHandler{}
	ts := startServer(t, h, Options{})
	old, _ := ts.client(t, protocol.Hello{BackendStartUS: 1})
	fresh, _ := ts.client(t, protocol.Hello{BackendStartUS: 2})

	require.Eventually(t, func() bool { return h.endedCount() == 1 }, waitFor, tick)
	h.mu.Lock()
	assert.EqualValues(t, 1, h.ended[0].StartUS, "the old backend's session ended")
	h.mu.Unlock()
	_, err := old.Status(context.Background())
	assert.Error(t, err, "the old connection is closed")
	_, err = fresh.Status(context.Background())
	assert.NoError(t, err)
	require.Len(t, ts.s.Sessions(), 1)
	assert.EqualValues(t, 2, ts.s.Sessions()[0].StartUS)
}

func TestServer_BadFrames(t *testing.T) {
	t.Parallel()
	huge := protocol.Header{Length: protocol.MaxPayload + 1, RequestID: 9, Type: protocol.TypeStatus}.Append(nil)
	badFlags := protocol.Header{RequestID: 9, Type: protocol.TypeStatus, Flags: 0x80}.Append(nil)
	fdFlag := protocol.Header{RequestID: 9, Type: protocol.TypeStatus, Flags: protocol.FlagFD}.Append(nil)
	unknown := protocol.Header{RequestID: 9, Type: 0x42}.Append(nil)
	serverType := protocol.NewFrame(9, protocol.Released{Count: 1})
	serverTypeBytes := append(serverType.Header.Append(nil), serverType.Payload...)
	shortAcquire := protocol.Header{Length: 1, RequestID: 9, Type: protocol.TypeAcquire}.Append(nil)
	cases := []struct {
		name      string
		hello     bool // complete the handshake first
		bytes     []byte
		wantError bool   // an ERROR Protocol comes before the close
		wantID    uint32 // its request id, echoed from the header
	}{
		// "GET " is a length above MaxPayload; "/ HT" the request id.
		{name: "garbage before HELLO", bytes: []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), wantError: true, wantID: 0x2f204854},
		{name: "garbage in session", hello: true, bytes: []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), wantError: true, wantID: 0x2f204854},
		{name: "FlagFD on HELLO", wantError: true, wantID: 9, bytes: func() []byte {
			f := protocol.NewFrame(9, protocol.Hello{MinVersion: 1, MaxVersion: 1, PID: int32(os.Getpid()), BackendStartUS: 5})
			f.Flags = protocol.FlagFD
			return append(f.Header.Append(nil), f.Payload...)
		}()},
		{name: "huge length", hello: true, bytes: huge, wantError: true, wantID: 9},
		{name: "unknown flags", hello: true, bytes: badFlags, wantError: true, wantID: 9},
		{name: "FlagFD from a client", hello: true, bytes: fdFlag, wantError: true, wantID: 9},
		{name: "unknown type", hello: true, bytes: unknown, wantError: true, wantID: 9},
		{name: "server message type", hello: true, bytes: serverTypeBytes, wantError: true, wantID: 9},
		{name: "short payload", hello: true, bytes: append(shortAcquire, 0), wantError: true, wantID: 9},
		{name: "second HELLO", hello: true, wantError: true, wantID: 9, bytes: func() []byte {
			f := protocol.NewFrame(9, protocol.Hello{MinVersion: 1, MaxVersion: 1, PID: int32(os.Getpid()), BackendStartUS: 5})
			return append(f.Header.Append(nil), f.Payload...)
		}()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := &fakeHandler{}
			ts := startServer(t, h, Options{})
			c := ts.raw(t)
			if tc.hello {
				rawHello(t, c, 5)
			}
			_, err := c.Write(tc.bytes)
			require.NoError(t, err)
			frames, _ := readUntilClosed(t, c, waitFor)
			if tc.wantError {
				require.Len(t, frames, 1)
				assert.Equal(t, protocol.CodeProtocol, errorCode(t, frames[0]))
				assert.Equal(t, tc.wantID, frames[0].RequestID)
			}
			if tc.hello {
				require.Eventually(t, func() bool { return h.endedCount() == 1 }, waitFor, tick)
			}

			// The server still serves others.
			other, _ := ts.client(t, protocol.Hello{BackendStartUS: 6})
			_, err = other.Status(context.Background())
			assert.NoError(t, err)
			assert.LessOrEqual(t, h.endedCount(), 1)
		})
	}
}

func TestServer_TruncatedFrame(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		hello bool
	}{
		{name: "truncated HELLO"},
		{name: "truncated frame in session", hello: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := &fakeHandler{}
			ts := startServer(t, h, Options{})
			c := ts.raw(t)
			if tc.hello {
				rawHello(t, c, 5)
				// An idle session has no deadline.
				time.Sleep(2 * testFrameTimeout)
			}
			f := protocol.NewFrame(2, protocol.Release{RuntimeID: "python"})
			_, err := c.Write(append(f.Header.Append(nil), f.Payload...)[:5])
			require.NoError(t, err)

			frames, took := readUntilClosed(t, c, waitFor)
			assert.Empty(t, frames, "closed without a reply")
			assert.GreaterOrEqual(t, took, testFrameTimeout-20*time.Millisecond)
			assert.Less(t, took, testFrameTimeout+time.Second)
			if tc.hello {
				require.Eventually(t, func() bool { return h.endedCount() == 1 }, waitFor, tick)
			}
		})
	}
}

func TestServer_EOFEndsSessionOnce(t *testing.T) {
	t.Parallel()
	h := &fakeHandler{}
	ts := startServer(t, h, Options{})
	c, _ := ts.client(t, protocol.Hello{BackendStartUS: 1})
	require.NoError(t, c.Close())

	require.Eventually(t, func() bool { return h.endedCount() == 1 }, waitFor, tick)
	time.Sleep(50 * time.Millisecond)
	assert.Equal(t, 1, h.endedCount())
	assert.Empty(t, ts.s.Sessions())
	select {
	case <-h.ended[0].Context().Done():
	default:
		t.Error("the session's context is not done")
	}
}

func TestServer_ReleaseAllCancelsAcquire(t *testing.T) {
	t.Parallel()
	h := &fakeHandler{releaseAllN: 1}
	h.blockingAcquire()
	ts := startServer(t, h, Options{})
	c := ts.raw(t)
	rawHello(t, c, 1)

	send(t, c, 2, protocol.Acquire{RuntimeID: "python", SegIndex: -1})
	h.waitStarted(t)
	send(t, c, 3, protocol.ReleaseAll{})

	// Session rule 7: the ACQUIRE's reply comes first, then RELEASED.
	f := recv(t, c)
	assert.EqualValues(t, 2, f.RequestID)
	assert.Equal(t, protocol.CodeStartFailed, errorCode(t, f))
	f = recv(t, c)
	assert.EqualValues(t, 3, f.RequestID)
	require.Equal(t, protocol.TypeReleased, f.Type)
	rel, err := protocol.UnmarshalReleased(f.Payload)
	require.NoError(t, err)
	assert.EqualValues(t, 1, rel.Count)

	h.mu.Lock()
	assert.ErrorIs(t, h.acquireCtxErr, context.Canceled)
	assert.Equal(t, 1, h.releaseAlls)
	h.mu.Unlock()
	assert.Zero(t, h.endedCount(), "RELEASE_ALL does not end the session")

	// The session goes on.
	send(t, c, 4, protocol.Status{})
	f = recv(t, c)
	assert.EqualValues(t, 4, f.RequestID)
	assert.Equal(t, protocol.TypeStatusReply, f.Type)
}

func TestServer_ReleaseAllCancelsAcquireClient(t *testing.T) {
	t.Parallel()
	h := &fakeHandler{releaseAllN: 1}
	h.blockingAcquire()
	ts := startServer(t, h, Options{})
	c, _ := ts.client(t, protocol.Hello{BackendStartUS: 1})

	done := make(chan error, 1)
	go func() {
		_, _, err := c.Acquire(context.Background(), protocol.Acquire{RuntimeID: "python", SegIndex: -1})
		done <- err
	}()
	h.waitStarted(t)
	n, err := c.ReleaseAll(context.Background())
	require.NoError(t, err)
	assert.EqualValues(t, 1, n)
	select {
	case err := <-done:
		assert.Equal(t, protocol.CodeStartFailed, codeOf(t, err))
	case <-time.After(waitFor):
		t.Fatal("ACQUIRE not answered")
	}
}

func TestServer_EOFCancelsAcquire(t *testing.T) {
	t.Parallel()
	h := &fakeHandler{}
	h.blockingAcquire()
	ts := startServer(t, h, Options{})
	c := ts.raw(t)
	rawHello(t, c, 1)
	send(t, c, 2, protocol.Acquire{RuntimeID: "python", SegIndex: -1})
	h.waitStarted(t)
	require.NoError(t, c.Close())

	require.Eventually(t, func() bool { return h.endedCount() == 1 }, waitFor, tick)
	assert.Equal(t, []string{"acquire returned", "session ended"}, h.events(),
		"the session ends after its ACQUIRE, so nothing the ACQUIRE got outlives it")
	h.mu.Lock()
	assert.ErrorIs(t, h.acquireCtxErr, context.Canceled)
	h.mu.Unlock()
}

func TestServer_OneRequestAtATime(t *testing.T) {
	t.Parallel()
	h := &fakeHandler{}
	h.blockingAcquire()
	ts := startServer(t, h, Options{})
	c := ts.raw(t)
	rawHello(t, c, 1)
	send(t, c, 2, protocol.Acquire{RuntimeID: "python", SegIndex: -1})
	h.waitStarted(t)
	send(t, c, 3, protocol.Status{})

	frames, _ := readUntilClosed(t, c, waitFor)
	require.NotEmpty(t, frames)
	assert.EqualValues(t, 3, frames[0].RequestID)
	assert.Equal(t, protocol.CodeProtocol, errorCode(t, frames[0]))
	require.Eventually(t, func() bool { return h.endedCount() == 1 }, waitFor, tick)
}

func TestServer_AcquireHandsOverFD(t *testing.T) {
	t.Parallel()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	require.NoError(t, err)
	ours := os.NewFile(uintptr(fds[0]), "ours")
	defer ours.Close()
	h := &fakeHandler{}
	h.acquire = func(ctx context.Context, sess *Session, req protocol.Acquire) (protocol.Acquired, *os.File, error) {
		return protocol.Acquired{ContainerID: "c1", Address: "unix:/x", Prewarmed: true, ClientVersion: "2.4.0"},
			os.NewFile(uintptr(fds[1]), "theirs"), nil
	}
	ts := startServer(t, h, Options{})
	c, _ := ts.client(t, protocol.Hello{BackendStartUS: 1})

	a, f, err := c.Acquire(context.Background(), protocol.Acquire{RuntimeID: "python", Flags: protocol.AcquireWantFD})
	require.NoError(t, err)
	require.NotNil(t, f)
	defer f.Close()
	assert.True(t, a.Prewarmed)
	assert.Equal(t, "2.4.0", a.ClientVersion)

	// The descriptor is the other end of our socket pair.
	_, err = ours.Write([]byte("ping"))
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = io.ReadFull(f, buf)
	require.NoError(t, err)
	assert.Equal(t, "ping", string(buf))
}

func TestServer_HandlerErrors(t *testing.T) {
	t.Parallel()
	h := &fakeHandler{
		releaseErr: &protocol.ErrorMsg{Code: protocol.CodeUnknownRuntime, Message: "no such runtime"},
		reloadErr:  errors.New("disk on fire"),
		panicErr:   &protocol.ErrorMsg{Code: protocol.CodePermission, Message: "debug hook disabled"},
	}
	h.acquire = func(ctx context.Context, sess *Session, req protocol.Acquire) (protocol.Acquired, *os.File, error) {
		return protocol.Acquired{}, nil, &protocol.ErrorMsg{Code: protocol.CodeLimit, Message: "too many containers"}
	}
	ts := startServer(t, h, Options{})
	c, _ := ts.client(t, protocol.Hello{BackendStartUS: 1})
	ctx := context.Background()

	_, err := c.Release(ctx, "python")
	assert.Equal(t, protocol.CodeUnknownRuntime, codeOf(t, err))
	_, err = c.Reload(ctx)
	assert.Equal(t, protocol.CodeInternal, codeOf(t, err))
	_, _, err = c.Do(ctx, protocol.DebugPanic{})
	assert.Equal(t, protocol.CodePermission, codeOf(t, err))
	_, _, err = c.Acquire(ctx, protocol.Acquire{RuntimeID: "python"})
	assert.Equal(t, protocol.CodeLimit, codeOf(t, err))
	// None of these ends the session.
	_, err = c.Status(ctx)
	assert.NoError(t, err)
	assert.Zero(t, h.endedCount())
}

func TestServer_MaxConns(t *testing.T) {
	t.Parallel()
	h := &fakeHandler{}
	ts := startServer(t, h, Options{MaxConns: 1})
	first, _ := ts.client(t, protocol.Hello{BackendStartUS: 1})

	extra := ts.raw(t)
	frames, _ := readUntilClosed(t, extra, waitFor)
	assert.Empty(t, frames, "an extra connection is closed at once")
	_, err := first.Status(context.Background())
	assert.NoError(t, err)

	require.NoError(t, first.Close())
	require.Eventually(t, func() bool { return h.endedCount() == 1 }, waitFor, tick)
	next, _ := ts.client(t, protocol.Hello{BackendStartUS: 2})
	_, err = next.Status(context.Background())
	assert.NoError(t, err)
}

func TestServer_PeerUID(t *testing.T) {
	t.Parallel()
	h := &fakeHandler{}
	ts := startServer(t, h, Options{UID: os.Geteuid() + 1})
	c := ts.raw(t)
	// The server may close before the HELLO is written: a broken pipe.
	_ = protocol.WriteFrame(c, protocol.NewFrame(1,
		protocol.Hello{MinVersion: 1, MaxVersion: 1, PID: int32(os.Getpid()), BackendStartUS: 1}))
	frames, _ := readUntilClosed(t, c, waitFor)
	for _, f := range frames {
		assert.NotEqual(t, protocol.TypeWelcome, f.Type)
	}
	assert.Empty(t, ts.s.Sessions())
	assert.Zero(t, h.endedCount())
}

func TestServer_Shutdown(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		shutdown bool // Shutdown (waits) rather than Close
	}{
		{name: "shutdown drains", shutdown: true},
		{name: "close is immediate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := &fakeHandler{}
			h.blockingAcquire()
			dir := t.TempDir()
			path := filepath.Join(dir, "s")
			ln, err := Listen(dir, path)
			require.NoError(t, err)
			s := New(h, Options{Log: status.NewLogger(64)})
			serveErr := make(chan error, 1)
			go func() { serveErr <- s.Serve(ln) }()
			ts := &testServer{s: s, path: path}

			c := ts.raw(t)
			rawHello(t, c, 1)
			send(t, c, 2, protocol.Acquire{RuntimeID: "python", SegIndex: -1})
			h.waitStarted(t)
			idle := ts.raw(t) // no HELLO yet

			if tc.shutdown {
				ctx, cancel := context.WithTimeout(context.Background(), waitFor)
				defer cancel()
				require.NoError(t, s.Shutdown(ctx))
				// Everything has finished when Shutdown returns.
				assert.Equal(t, 1, h.endedCount())
				assert.Equal(t, []string{"acquire returned", "session ended"}, h.events())
			} else {
				t0 := time.Now()
				require.NoError(t, s.Close())
				assert.Less(t, time.Since(t0), 40*time.Millisecond, "Close does not wait for the ACQUIRE")
			}
			select {
			case err := <-serveErr:
				assert.ErrorIs(t, err, ErrServerClosed)
			case <-time.After(waitFor):
				t.Fatal("Serve did not return")
			}
			readUntilClosed(t, c, waitFor)
			readUntilClosed(t, idle, waitFor)
			require.Eventually(t, func() bool { return h.endedCount() == 1 }, waitFor, tick)
			_, err = net.Dial("unix", path)
			assert.Error(t, err, "the listener is closed")
			assert.ErrorIs(t, s.Serve(ln), ErrServerClosed)
		})
	}
}
