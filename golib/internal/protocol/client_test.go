//go:build unix

package protocol

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// listen returns an abstract Unix socket named after the test (no file to
// clean up) and serves each accepted connection with handle.
func listen(t *testing.T, handle func(c *net.UnixConn)) string {
	t.Helper()
	addr := "@plcoordinator-protocol/" + t.Name()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
	require.NoError(t, err)
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return addr
}

// fakeCoordinator is a minimal in-test server speaking the session rules of
// PROTOCOL.md, enough to exercise Client.
type fakeCoordinator struct {
	t         *testing.T
	container *net.UnixConn // handed out on ACQUIRE with AcquireWantFD
	slowSeen  chan struct{} // receives when an ACQUIRE of "slow" starts waiting
}

func (s *fakeCoordinator) serve(c *net.UnixConn) {
	var wmu sync.Mutex
	send := func(id uint32, m Message) {
		wmu.Lock()
		defer wmu.Unlock()
		_ = WriteFrame(c, NewFrame(id, m))
	}
	var (
		cancel   chan struct{} // closed by RELEASE_ALL to cancel a slow ACQUIRE
		inFlight sync.WaitGroup
		held     uint32
	)
	defer func() {
		if cancel != nil {
			close(cancel)
		}
		inFlight.Wait()
	}()
	buf := make([]byte, MaxPayload)
	for first := true; ; first = false {
		f, err := ReadFrameDeadline(c, buf, FrameTimeout)
		if err != nil {
			return
		}
		if first && f.Type != TypeHello {
			send(f.RequestID, ErrorMsg{Code: CodeProtocol, Message: "expected HELLO"})
			return
		}
		switch f.Type {
		case TypeHello:
			h, err := UnmarshalHello(f.Payload)
			v, ok := NegotiateVersion(h.MinVersion, h.MaxVersion)
			if err != nil || !ok {
				send(f.RequestID, ErrorMsg{Code: CodeVersion, Message: "no common protocol version"})
				return
			}
			send(f.RequestID, Welcome{Version: v, MaxPayload: MaxPayload, Instance: "fake", ServerPID: int32(os.Getpid())})
		case TypeAcquire:
			a, err := UnmarshalAcquire(f.Payload)
			if !assert.NoError(s.t, err) {
				return
			}
			switch a.RuntimeID {
			case "unknown":
				send(f.RequestID, ErrorMsg{Code: CodeUnknownRuntime, Message: "runtime \"unknown\" is not configured", Hint: "Check the configuration."})
			case "slow":
				cancel = make(chan struct{})
				inFlight.Add(1)
				go func(id uint32, cancel chan struct{}) {
					defer inFlight.Done()
					s.slowSeen <- struct{}{}
					<-cancel
					send(id, ErrorMsg{Code: CodeStartFailed, Message: "acquire cancelled by release_all"})
				}(f.RequestID, cancel)
			default:
				held++
				m := Acquired{ContainerID: "c-" + a.RuntimeID, Address: "unix:/tmp/" + a.RuntimeID, WaitMS: 1}
				if a.Flags&AcquireWantFD != 0 && s.container != nil {
					file, err := s.container.File()
					if !assert.NoError(s.t, err) {
						return
					}
					wmu.Lock()
					err = WriteFrameFD(c, NewFrame(f.RequestID, m), int(file.Fd()))
					wmu.Unlock()
					file.Close()
					assert.NoError(s.t, err)
				} else {
					send(f.RequestID, m)
				}
			}
		case TypeRelease:
			held--
			send(f.RequestID, Released{Count: 1})
		case TypeReleaseAll:
			if cancel != nil {
				close(cancel)
				cancel = nil
			}
			inFlight.Wait() // the ACQUIRE's reply goes first
			send(f.RequestID, Released{Count: held})
			held = 0
		case TypeReload:
			send(f.RequestID, Reloaded{Runtimes: 2, Message: "ok"})
		case TypeStatus:
			send(f.RequestID, StatusReply{JSON: `{"state":"ready"}`})
		case TypeDebugPanic:
			send(f.RequestID, ErrorMsg{Code: CodePermission, Message: "debug hooks are disabled"})
		default:
			send(f.RequestID, ErrorMsg{Code: CodeProtocol, Message: "unexpected " + f.Type.String()})
			return
		}
	}
}

func newFake(t *testing.T) (*fakeCoordinator, string) {
	s := &fakeCoordinator{t: t, slowSeen: make(chan struct{}, 1)}
	return s, listen(t, s.serve)
}

func dialHello(t *testing.T, addr string) *Client {
	t.Helper()
	c, err := Dial(addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	w, err := c.Hello(t.Context(), Hello{})
	require.NoError(t, err)
	require.Equal(t, uint16(Version), w.Version)
	return c
}

func TestClient_Session(t *testing.T) {
	t.Parallel()
	s, addr := newFake(t)
	srvEnd, cliEnd := socketPair(t)
	s.container = cliEnd
	ctx := t.Context()
	c := dialHello(t, addr)

	got, file, err := c.Acquire(ctx, Acquire{RuntimeID: "py", Role: "r", Database: "d", SegIndex: -1, Flags: AcquireWantFD})
	require.NoError(t, err)
	require.NotNil(t, file)
	assert.Equal(t, "c-py", got.ContainerID)
	_, err = file.Write([]byte("ping"))
	require.NoError(t, err)
	require.NoError(t, file.Close())
	b := make([]byte, 4)
	_, err = io.ReadFull(srvEnd, b)
	require.NoError(t, err)
	assert.Equal(t, "ping", string(b))

	got, file, err = c.Acquire(ctx, Acquire{RuntimeID: "r"})
	require.NoError(t, err)
	assert.Nil(t, file)
	assert.Equal(t, "unix:/tmp/r", got.Address)

	_, _, err = c.Acquire(ctx, Acquire{RuntimeID: "unknown"})
	var em *ErrorMsg
	require.ErrorAs(t, err, &em)
	assert.Equal(t, CodeUnknownRuntime, em.Code)
	assert.Equal(t, "Check the configuration.", em.Hint)

	n, err := c.Release(ctx, "r")
	require.NoError(t, err)
	assert.Equal(t, uint32(1), n)
	n, err = c.ReleaseAll(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint32(1), n)

	rl, err := c.Reload(ctx)
	require.NoError(t, err)
	assert.Equal(t, Reloaded{Runtimes: 2, Message: "ok"}, rl)
	js, err := c.Status(ctx)
	require.NoError(t, err)
	assert.JSONEq(t, `{"state":"ready"}`, js)

	f, _, err := c.Do(ctx, DebugPanic{})
	code, ok := CodeOf(err)
	assert.True(t, ok)
	assert.Equal(t, CodePermission, code)
	assert.Equal(t, TypeError, f.Type)

	_, _, err = c.Acquire(ctx, Acquire{RuntimeID: "bad\x00id"})
	require.ErrorIs(t, err, ErrBadString, "rejected before sending")

	require.NoError(t, c.Close())
	_, err = c.Status(ctx)
	require.ErrorIs(t, err, ErrClientClosed)
}

func TestClient_ReleaseAllCancelsAcquire(t *testing.T) {
	t.Parallel()
	s, addr := newFake(t)
	c := dialHello(t, addr)
	ctx := t.Context()

	acqErr := make(chan error, 1)
	go func() {
		_, _, err := c.Acquire(ctx, Acquire{RuntimeID: "slow"})
		acqErr <- err
	}()
	<-s.slowSeen

	n, err := c.ReleaseAll(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)

	err = <-acqErr
	var em *ErrorMsg
	require.ErrorAs(t, err, &em)
	assert.Equal(t, CodeStartFailed, em.Code)
	assert.Equal(t, "acquire cancelled by release_all", em.Message)
}

func TestClient_ContextCancelDiscardsLateReply(t *testing.T) {
	t.Parallel()
	s, addr := newFake(t)
	c := dialHello(t, addr)

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	_, _, err := c.Acquire(ctx, Acquire{RuntimeID: "slow"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	<-s.slowSeen

	// The late ACQUIRE reply arrives before RELEASED and must be dropped
	// without disturbing the session.
	_, err = c.ReleaseAll(t.Context())
	require.NoError(t, err)
	_, err = c.Status(t.Context())
	require.NoError(t, err)
}

func TestClient_VersionRefused(t *testing.T) {
	t.Parallel()
	_, addr := newFake(t)
	c, err := Dial(addr)
	require.NoError(t, err)
	defer c.Close()

	_, err = c.Hello(t.Context(), Hello{MinVersion: 2, MaxVersion: 9})
	code, ok := CodeOf(err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, CodeVersion, code)

	// The server closed the connection after the ERROR.
	_, err = c.Status(t.Context())
	require.Error(t, err)
}

func TestClient_UnsolicitedErrorEndsSession(t *testing.T) {
	t.Parallel()
	addr := listen(t, func(c *net.UnixConn) {
		if _, err := ReadFrame(c, nil); err != nil {
			return
		}
		_ = WriteFrame(c, NewFrame(0, ErrorMsg{Code: CodeShuttingDown, Message: "coordinator is shutting down"}))
	})
	c, err := Dial(addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Hello(t.Context(), Hello{})
	code, ok := CodeOf(err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, CodeShuttingDown, code)
}

func TestClient_WrongReplyType(t *testing.T) {
	t.Parallel()
	addr := listen(t, func(c *net.UnixConn) {
		f, err := ReadFrame(c, nil)
		if err != nil {
			return
		}
		_ = WriteFrame(c, NewFrame(f.RequestID, Released{}))
		_, _ = ReadFrame(c, nil)
	})
	c, err := Dial(addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Hello(t.Context(), Hello{})
	require.ErrorContains(t, err, "got RELEASED in reply to HELLO")
}

func TestClient_CloseWakesWaiters(t *testing.T) {
	t.Parallel()
	s, addr := newFake(t)
	c := dialHello(t, addr)
	acqErr := make(chan error, 1)
	go func() {
		_, _, err := c.Acquire(context.Background(), Acquire{RuntimeID: "slow"})
		acqErr <- err
	}()
	<-s.slowSeen
	require.NoError(t, c.Close())
	select {
	case err := <-acqErr:
		assert.True(t, errors.Is(err, ErrClientClosed), "%v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("Acquire still waiting after Close")
	}
}

func TestClient_DialMissing(t *testing.T) {
	t.Parallel()
	_, err := Dial("@plcoordinator-protocol/nobody-listens/" + t.Name())
	require.Error(t, err)
}
