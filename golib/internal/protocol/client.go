//go:build unix

package protocol

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// ClientName is the HELLO client string Client sends by default.
const ClientName = "plcoordinator-go/1"

// processStartUS stands in for the backend start time in a Go client's
// HELLO: it is fixed for the life of the process, as a backend's is.
var processStartUS = time.Now().UnixMicro()

// Client is a small Go client of the coordinator, used by integration tests
// and benchmarks. It keeps one connection, like a backend session. Its
// methods are safe for concurrent use; as the protocol requires, callers
// send one request at a time, except that ReleaseAll may be called while an
// Acquire is waiting (it cancels that Acquire). A server ERROR reply is
// returned as *ErrorMsg.
type Client struct {
	conn *net.UnixConn

	wmu sync.Mutex // serializes frame writes

	mu      sync.Mutex
	nextID  uint32                // last request id used; ids skip 0
	pending map[uint32]chan reply // waiting calls by request id; nil channel = caller gave up
	err     error                 // why the connection stopped, once it has

	done chan struct{} // closed when the read loop has stopped
}

// reply is one received frame with its descriptor (-1 if none).
type reply struct {
	f  Frame
	fd int
}

// Dial connects to the coordinator socket at path ("@name" for an abstract
// socket) and returns a Client. The first call must be Hello.
func Dial(path string) (*Client, error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("protocol: dial %s: %w", path, err)
	}
	return NewClient(c), nil
}

// NewClient returns a Client speaking over conn, which it then owns.
func NewClient(conn *net.UnixConn) *Client {
	c := &Client{
		conn:    conn,
		pending: make(map[uint32]chan reply),
		done:    make(chan struct{}),
	}
	go c.readLoop()
	return c
}

// Close closes the connection, which ends the session: the coordinator
// releases all of its containers. Waiting calls return ErrClientClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.err == nil {
		c.err = ErrClientClosed
	}
	c.mu.Unlock()
	err := c.conn.Close()
	<-c.done
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Hello performs the handshake. Zero fields of h are filled in: the version
// range becomes [MinVersion, Version], PID the calling process, BackendStartUS
// the process start and Client ClientName. It fails if the server picks a
// version outside the range.
func (c *Client) Hello(ctx context.Context, h Hello) (Welcome, error) {
	if h.MinVersion == 0 && h.MaxVersion == 0 {
		h.MinVersion, h.MaxVersion = MinVersion, Version
	}
	if h.PID == 0 {
		h.PID = int32(os.Getpid())
	}
	if h.BackendStartUS == 0 {
		h.BackendStartUS = processStartUS
	}
	if h.Client == "" {
		h.Client = ClientName
	}
	r, err := c.call(ctx, h, TypeWelcome)
	if err != nil {
		return Welcome{}, err
	}
	w, err := UnmarshalWelcome(r.f.Payload)
	if err != nil {
		return Welcome{}, c.fail(err)
	}
	if w.Version < h.MinVersion || w.Version > h.MaxVersion {
		return Welcome{}, c.fail(fmt.Errorf("protocol: server chose version %d outside [%d, %d]", w.Version, h.MinVersion, h.MaxVersion))
	}
	return w, nil
}

// Acquire asks for a container. When a descriptor comes with the reply
// (a.Flags has AcquireWantFD and the server could hand it over) it is
// returned as an *os.File the caller must close; otherwise the file is nil.
// Strings that would not travel unchanged are rejected before sending.
func (c *Client) Acquire(ctx context.Context, a Acquire) (Acquired, *os.File, error) {
	for _, s := range []string{a.RuntimeID, a.Role, a.Database} {
		if err := CheckString(s); err != nil {
			return Acquired{}, nil, err
		}
	}
	r, err := c.call(ctx, a, TypeAcquired)
	if err != nil {
		return Acquired{}, nil, err
	}
	m, err := UnmarshalAcquired(r.f.Payload)
	if err != nil {
		closeFDs([]int{r.fd})
		return Acquired{}, nil, c.fail(err)
	}
	var f *os.File
	if r.fd >= 0 {
		f = os.NewFile(uintptr(r.fd), "plcoordinator-container:"+m.ContainerID)
	}
	return m, f, nil
}

// Release gives back this session's container of runtimeID and returns how
// many containers were released.
func (c *Client) Release(ctx context.Context, runtimeID string) (uint32, error) {
	if err := CheckString(runtimeID); err != nil {
		return 0, err
	}
	return c.released(ctx, Release{RuntimeID: runtimeID})
}

// ReleaseAll gives back all of this session's containers, cancelling an
// Acquire in flight, and returns how many were released.
func (c *Client) ReleaseAll(ctx context.Context) (uint32, error) {
	return c.released(ctx, ReleaseAll{})
}

func (c *Client) released(ctx context.Context, m Message) (uint32, error) {
	r, err := c.call(ctx, m, TypeReleased)
	if err != nil {
		return 0, err
	}
	rel, err := UnmarshalReleased(r.f.Payload)
	if err != nil {
		return 0, c.fail(err)
	}
	return rel.Count, nil
}

// Reload asks the coordinator to re-read its configuration.
func (c *Client) Reload(ctx context.Context) (Reloaded, error) {
	r, err := c.call(ctx, Reload{}, TypeReloaded)
	if err != nil {
		return Reloaded{}, err
	}
	m, err := UnmarshalReloaded(r.f.Payload)
	if err != nil {
		return Reloaded{}, c.fail(err)
	}
	return m, nil
}

// Status returns the coordinator's status document (JSON).
func (c *Client) Status(ctx context.Context) (string, error) {
	r, err := c.call(ctx, Status{}, TypeStatusReply)
	if err != nil {
		return "", err
	}
	m, err := UnmarshalStatusReply(r.f.Payload)
	if err != nil {
		return "", c.fail(err)
	}
	return m.JSON, nil
}

// Do sends m unchanged and returns the reply frame, whatever its type, for
// tests of unusual requests (DebugPanic, misuse). The payload is the
// client's own copy. A descriptor that came with the reply is returned as a
// file the caller must close. An ERROR reply is returned as the frame and
// an *ErrorMsg.
func (c *Client) Do(ctx context.Context, m Message) (Frame, *os.File, error) {
	r, err := c.call(ctx, m, 0)
	if err != nil {
		return r.f, nil, err
	}
	var f *os.File
	if r.fd >= 0 {
		f = os.NewFile(uintptr(r.fd), "plcoordinator-reply")
	}
	return r.f, f, nil
}

// call sends m with a fresh request id and waits for the reply. If want is
// not 0 the reply must have that type or be an ERROR; an ERROR reply is
// returned as *ErrorMsg together with the frame. A descriptor is kept only
// for replies of type want (or any type when want is 0).
func (c *Client) call(ctx context.Context, m Message, want MsgType) (reply, error) {
	ch := make(chan reply, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return reply{fd: -1}, err
	}
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()

	c.wmu.Lock()
	err := WriteFrame(c.conn, NewFrame(id, m))
	c.wmu.Unlock()
	if err != nil {
		// A partial frame leaves the stream out of sync.
		return reply{fd: -1}, c.fail(err)
	}

	var r reply
	select {
	case r = <-ch:
	case <-c.done:
		select {
		case r = <-ch:
		default:
			return reply{fd: -1}, c.stopErr()
		}
	case <-ctx.Done():
		c.mu.Lock()
		if _, ok := c.pending[id]; ok {
			c.pending[id] = nil // the read loop discards the late reply
			c.mu.Unlock()
			return reply{fd: -1}, ctx.Err()
		}
		c.mu.Unlock()
		r = <-ch // delivered while we were giving up; the reply wins
	}

	if r.f.Type == TypeError {
		closeFDs(fdList(r.fd))
		em, err := UnmarshalError(r.f.Payload)
		if err != nil {
			return reply{f: r.f, fd: -1}, c.fail(err)
		}
		return reply{f: r.f, fd: -1}, &em
	}
	if want != 0 && r.f.Type != want {
		closeFDs(fdList(r.fd))
		return reply{f: r.f, fd: -1}, c.fail(fmt.Errorf("protocol: got %s in reply to %s", r.f.Type, m.Type()))
	}
	return r, nil
}

// readLoop receives frames and hands each to the call waiting for its
// request id, until the connection fails or is closed.
func (c *Client) readLoop() {
	defer close(c.done)
	buf := make([]byte, MaxPayload)
	for {
		f, fd, err := ReadFrameFD(c.conn, buf)
		if err != nil {
			c.fail(fmt.Errorf("protocol: client connection: %w", err))
			return
		}
		f.Payload = append([]byte(nil), f.Payload...)
		c.mu.Lock()
		ch, ok := c.pending[f.RequestID]
		delete(c.pending, f.RequestID)
		c.mu.Unlock()
		switch {
		case ok && ch != nil:
			ch <- reply{f: f, fd: fd}
		case ok:
			closeFDs(fdList(fd)) // the caller gave up on this request
		default:
			closeFDs(fdList(fd))
			if f.Type == TypeError {
				// An ERROR with request id 0 (or a stray id) ends the
				// session; report it to every waiting call.
				if em, derr := UnmarshalError(f.Payload); derr == nil {
					c.fail(&em)
					return
				}
			}
			c.fail(fmt.Errorf("protocol: unexpected %s with request id %d", f.Type, f.RequestID))
			return
		}
	}
}

// fail records err as the reason the connection stopped (the first reason
// wins), closes the connection so the read loop ends, and returns the
// recorded reason.
func (c *Client) fail(err error) error {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	err = c.err
	c.mu.Unlock()
	_ = c.conn.Close()
	return err
}

// stopErr returns why the connection stopped.
func (c *Client) stopErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		return ErrClientClosed
	}
	return c.err
}

func fdList(fd int) []int {
	if fd < 0 {
		return nil
	}
	return []int{fd}
}
