package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/plcoordinator/plcoordinator/golib/internal/protocol"
	"github.com/plcoordinator/plcoordinator/golib/internal/status"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("server: closed")

// errClientFD answers a client frame with FlagFD set: only ACQUIRED may
// carry a descriptor (PROTOCOL.md, Frames).
var errClientFD = &protocol.ErrorMsg{Code: protocol.CodeProtocol, Message: "a client frame must not set FlagFD"}

// Handler gives requests their meaning. Acquire may block (a container
// start); its context ends when the session ends or sends RELEASE_ALL.
// Errors of type *protocol.ErrorMsg reach the client as they are; any
// other error becomes CodeInternal.
type Handler interface {
	Acquire(ctx context.Context, sess *Session, req protocol.Acquire) (protocol.Acquired, *os.File, error)
	Release(sess *Session, runtimeID string) (uint32, error)
	ReleaseAll(sess *Session) uint32
	SessionEnded(sess *Session)
	Reload(ctx context.Context) (protocol.Reloaded, error)
	Status() string
	StatsReset()
	DebugPanic() error
}

// Options configure a Server.
type Options struct {
	MaxConns int            // connections beyond this are closed at once
	Instance string         // sent in WELCOME
	Log      *status.Logger // required
	// UID is the only peer uid accepted; New sets it to the effective uid.
	UID int
}

// Session is one backend's connection.
type Session struct {
	PID         int32
	StartUS     int64 // backend start, µs since the Unix epoch
	ConnectedAt time.Time

	ctx    context.Context
	cancel context.CancelFunc
	conn   *net.UnixConn

	mu            sync.Mutex
	lastRequest   string
	lastRequestAt time.Time
	acquires      map[*acquireCall]struct{} // ACQUIREs whose reply is not written yet
	outstanding   int                       // ACQUIREs the client still waits for
}

// acquireCall is one ACQUIRE in flight.
type acquireCall struct {
	cancel context.CancelFunc
	done   chan struct{} // closed once the reply is written (or given up)
}

// cancelAcquires cancels the session's ACQUIREs in flight and waits until
// each has written its reply.
func (sess *Session) cancelAcquires() {
	sess.mu.Lock()
	calls := make([]*acquireCall, 0, len(sess.acquires))
	for call := range sess.acquires {
		call.cancel()
		calls = append(calls, call)
	}
	sess.mu.Unlock()
	for _, call := range calls {
		<-call.done
	}
}

// Context ends when the session ends.
func (s *Session) Context() context.Context { return s.ctx }

// SessionInfo describes a session for plcoordinator.requesters.
type SessionInfo struct {
	PID           int32
	StartUS       int64
	ConnectedAt   time.Time
	LastRequest   string
	LastRequestAt time.Time
}

// Server serves backend connections.
type Server struct {
	h       Handler
	opts    Options
	limited *limitedLog
	// frameTimeout is the per-frame read deadline and the write deadline
	// of a reply: protocol.FrameTimeout, shorter in tests.
	frameTimeout time.Duration

	mu       sync.Mutex
	ln       *net.UnixListener
	conns    map[*net.UnixConn]struct{}
	sessions map[int32]*Session
	closed   bool
	wg       sync.WaitGroup
}

// New returns a server for h.
func New(h Handler, opts Options) *Server {
	if opts.MaxConns <= 0 {
		opts.MaxConns = 4096
	}
	if opts.UID == 0 {
		opts.UID = os.Geteuid()
	}
	return &Server{
		h:            h,
		opts:         opts,
		limited:      newLimitedLog(opts.Log),
		frameTimeout: protocol.FrameTimeout,
		conns:        map[*net.UnixConn]struct{}{},
		sessions:     map[int32]*Session{},
	}
}

// Serve accepts connections on l until Shutdown or Close.
func (s *Server) Serve(l *net.UnixListener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.ln = l
	s.mu.Unlock()

	backoff := time.Millisecond
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) {
				s.limited.Warnf("accept", "accept failed, retrying: %v", err)
				time.Sleep(backoff)
				backoff = min(backoff*2, time.Second)
				continue
			}
			return fmt.Errorf("server: accept: %w", err)
		}
		backoff = time.Millisecond
		if !s.track(c) {
			c.Close()
			continue
		}
		go s.serveConn(c)
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// track registers c unless the server is closed or full. It counts c in
// s.wg under s.mu, so that Shutdown, which sets closed under s.mu, waits
// for every connection it did not refuse.
func (s *Server) track(c *net.UnixConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if len(s.conns) >= s.opts.MaxConns {
		s.limited.Warnf("maxconns", "refused a connection: %d connections are open", len(s.conns))
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

// Shutdown stops accepting, ends every session and waits for their
// handlers to finish, or for ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeAll()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops accepting and closes every connection without waiting.
func (s *Server) Close() error {
	s.closeAll()
	return nil
}

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed && s.ln != nil {
		s.ln.Close()
	}
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
}

// Sessions lists the connected sessions, by pid.
func (s *Server) Sessions() []SessionInfo {
	s.mu.Lock()
	out := make([]SessionInfo, 0, len(s.sessions))
	for _, sess := range s.sessions {
		sess.mu.Lock()
		out = append(out, SessionInfo{PID: sess.PID, StartUS: sess.StartUS, ConnectedAt: sess.ConnectedAt,
			LastRequest: sess.lastRequest, LastRequestAt: sess.lastRequestAt})
		sess.mu.Unlock()
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out
}

// conn is the write side of one connection.
type conn struct {
	c       *net.UnixConn
	mu      sync.Mutex
	timeout time.Duration // write deadline of one frame
}

func (w *conn) send(id uint32, m protocol.Message, fd *os.File) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	f := protocol.NewFrame(id, m)
	if err := w.c.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
		return err
	}
	if fd != nil {
		return protocol.WriteFrameFD(w.c, f, int(fd.Fd()))
	}
	return protocol.WriteFrame(w.c, f)
}

func (w *conn) sendError(id uint32, err error) error {
	var em *protocol.ErrorMsg
	if !errors.As(err, &em) {
		em = &protocol.ErrorMsg{Code: protocol.CodeInternal, Message: err.Error()}
	}
	return w.send(id, *em, nil)
}

// serveConn runs one connection from HELLO to its end.
func (s *Server) serveConn(c *net.UnixConn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	w := &conn{c: c, timeout: s.frameTimeout}

	cred, err := peerCred(c)
	if err != nil || int(cred.Uid) != s.opts.UID {
		uid := -1
		if cred != nil {
			uid = int(cred.Uid)
		}
		s.limited.Warnf("peer", "rejected a connection from uid %d: only the database user (uid %d) may connect", uid, s.opts.UID)
		return
	}

	sess, id, err := s.hello(c, w, cred)
	if err != nil {
		if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrDeadlineExceeded) {
			s.limited.Warnf("hello", "closed a connection from pid %d: %v", cred.Pid, err)
			_ = w.sendError(id, err)
		}
		return
	}
	defer s.endSession(sess)

	buf := make([]byte, 4096)
	for {
		f, err := protocol.ReadFrameDeadline(c, buf, s.frameTimeout)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.limited.Warnf("frame", "closed the connection of pid %d: %v", sess.PID, err)
				// A frame not complete within the deadline is closed
				// without a reply (PROTOCOL.md, Limits and deadlines).
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					_ = w.sendError(f.RequestID, &protocol.ErrorMsg{Code: protocol.CodeProtocol, Message: err.Error()})
				}
			}
			return
		}
		if f.Flags&protocol.FlagFD != 0 {
			_ = w.sendError(f.RequestID, errClientFD)
			s.limited.Warnf("frame", "closed the connection of pid %d: %s frame with FlagFD", sess.PID, f.Type)
			return
		}
		if !s.dispatch(sess, w, f) {
			return
		}
	}
}

// hello reads and checks the first frame and registers the session.
func (s *Server) hello(c *net.UnixConn, w *conn, cred *unix.Ucred) (*Session, uint32, error) {
	buf := make([]byte, 512)
	if err := c.SetReadDeadline(time.Now().Add(s.frameTimeout)); err != nil {
		return nil, 0, err
	}
	f, err := protocol.ReadFrame(c, buf)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, 0, err
		}
		// On a header error f carries the header: echo its request id.
		return nil, f.RequestID, &protocol.ErrorMsg{Code: protocol.CodeProtocol, Message: err.Error()}
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		return nil, f.RequestID, err
	}
	if f.Flags&protocol.FlagFD != 0 {
		return nil, f.RequestID, errClientFD
	}
	if f.Type != protocol.TypeHello {
		return nil, f.RequestID, &protocol.ErrorMsg{Code: protocol.CodeProtocol,
			Message: fmt.Sprintf("expected HELLO, got %s", f.Type)}
	}
	h, err := protocol.UnmarshalHello(f.Payload)
	if err != nil {
		return nil, f.RequestID, &protocol.ErrorMsg{Code: protocol.CodeProtocol, Message: err.Error()}
	}
	if h.MinVersion > protocol.Version || h.MaxVersion < protocol.MinVersion || h.MinVersion > h.MaxVersion {
		return nil, f.RequestID, &protocol.ErrorMsg{Code: protocol.CodeVersion,
			Message: fmt.Sprintf("protocol versions %d..%d are not supported", h.MinVersion, h.MaxVersion),
			Detail:  fmt.Sprintf("The coordinator speaks versions %d..%d.", protocol.MinVersion, protocol.Version),
			Hint:    "Install plcoordinator.so and plcoordinator_go.so from the same build and restart the server."}
	}
	if h.PID != cred.Pid {
		return nil, f.RequestID, &protocol.ErrorMsg{Code: protocol.CodePermission,
			Message: fmt.Sprintf("HELLO claims pid %d but the connection comes from pid %d", h.PID, cred.Pid)}
	}

	ctx, cancel := context.WithCancel(context.Background())
	sess := &Session{PID: h.PID, StartUS: h.BackendStartUS, ConnectedAt: time.Now(), ctx: ctx, cancel: cancel,
		acquires: map[*acquireCall]struct{}{}}
	s.mu.Lock()
	if old, taken := s.sessions[h.PID]; taken {
		if old.StartUS == h.BackendStartUS {
			s.mu.Unlock()
			cancel()
			return nil, f.RequestID, &protocol.ErrorMsg{Code: protocol.CodeSessionConflict,
				Message: fmt.Sprintf("backend %d already has a coordinator connection", h.PID),
				Hint:    "A backend keeps one connection for its session."}
		}
		// The pid was reused by a new backend: the old session is over.
		old.conn.Close()
		delete(s.sessions, h.PID)
	}
	sess.conn = c
	s.sessions[h.PID] = sess
	s.mu.Unlock()

	welcome := protocol.Welcome{Version: protocol.Version, MaxPayload: protocol.MaxPayload,
		Instance: s.opts.Instance, ServerPID: int32(os.Getpid())}
	if err := w.send(f.RequestID, welcome, nil); err != nil {
		s.endSession(sess)
		return nil, f.RequestID, err
	}
	return sess, f.RequestID, nil
}

// endSession forgets the session and tells the handler once its ACQUIREs
// in flight have ended, so that nothing they obtained outlives the session.
func (s *Server) endSession(sess *Session) {
	sess.cancel()
	s.mu.Lock()
	if s.sessions[sess.PID] == sess {
		delete(s.sessions, sess.PID)
	}
	s.mu.Unlock()
	sess.cancelAcquires()
	s.h.SessionEnded(sess)
}

func (sess *Session) note(req protocol.MsgType) {
	sess.mu.Lock()
	sess.lastRequest = req.String()
	sess.lastRequestAt = time.Now()
	sess.mu.Unlock()
}

// dispatch handles one request; false closes the connection.
func (s *Server) dispatch(sess *Session, w *conn, f protocol.Frame) bool {
	sess.note(f.Type)
	id := f.RequestID
	sess.mu.Lock()
	busy := sess.outstanding > 0
	sess.mu.Unlock()
	if busy && f.Type != protocol.TypeReleaseAll {
		// Session rule 6: only RELEASE_ALL may join an outstanding ACQUIRE.
		_ = w.sendError(id, &protocol.ErrorMsg{Code: protocol.CodeProtocol,
			Message: fmt.Sprintf("%s sent while an ACQUIRE is outstanding", f.Type)})
		s.limited.Warnf("type", "closed the connection of pid %d: %s sent while an ACQUIRE is outstanding", sess.PID, f.Type)
		return false
	}
	switch f.Type {
	case protocol.TypeAcquire:
		req, err := protocol.UnmarshalAcquire(f.Payload)
		if err != nil {
			_ = w.sendError(id, &protocol.ErrorMsg{Code: protocol.CodeProtocol, Message: err.Error()})
			return false
		}
		ctx, cancel := context.WithCancel(sess.ctx)
		call := &acquireCall{cancel: cancel, done: make(chan struct{})}
		sess.mu.Lock()
		sess.acquires[call] = struct{}{}
		sess.outstanding++
		sess.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				sess.mu.Lock()
				delete(sess.acquires, call)
				sess.mu.Unlock()
				close(call.done)
				cancel()
			}()
			s.acquire(ctx, sess, w, id, req)
		}()
	case protocol.TypeRelease:
		req, err := protocol.UnmarshalRelease(f.Payload)
		if err != nil {
			_ = w.sendError(id, &protocol.ErrorMsg{Code: protocol.CodeProtocol, Message: err.Error()})
			return false
		}
		n, err := s.h.Release(sess, req.RuntimeID)
		if err != nil {
			return w.sendError(id, err) == nil
		}
		return w.send(id, protocol.Released{Count: n}, nil) == nil
	case protocol.TypeReleaseAll:
		// Session rule 7: the cancelled ACQUIRE is answered first, and
		// whatever it obtained is counted and released here.
		sess.cancelAcquires()
		n := s.h.ReleaseAll(sess)
		return w.send(id, protocol.Released{Count: n}, nil) == nil
	case protocol.TypeReload:
		r, err := s.h.Reload(sess.ctx)
		if err != nil {
			return w.sendError(id, err) == nil
		}
		return w.send(id, r, nil) == nil
	case protocol.TypeStatus:
		return w.send(id, protocol.StatusReply{JSON: s.h.Status()}, nil) == nil
	case protocol.TypeStatsReset:
		s.h.StatsReset()
		return w.send(id, protocol.Done{}, nil) == nil
	case protocol.TypeDebugPanic:
		if err := s.h.DebugPanic(); err != nil {
			return w.sendError(id, err) == nil
		}
		return w.send(id, protocol.Done{}, nil) == nil
	default:
		_ = w.sendError(id, &protocol.ErrorMsg{Code: protocol.CodeProtocol,
			Message: fmt.Sprintf("unexpected message %s", f.Type)})
		s.limited.Warnf("type", "closed the connection of pid %d: unexpected message %s", sess.PID, f.Type)
		return false
	}
	return true
}

// acquire runs one ACQUIRE and writes its reply.
func (s *Server) acquire(ctx context.Context, sess *Session, w *conn, id uint32, req protocol.Acquire) {
	resp, fd, err := s.h.Acquire(ctx, sess, req)
	// The client may send its next request as soon as it has the reply.
	sess.mu.Lock()
	sess.outstanding--
	sess.mu.Unlock()
	if err != nil {
		_ = w.sendError(id, err)
		return
	}
	if fd != nil {
		defer fd.Close()
	}
	if err := w.send(id, resp, fd); err != nil {
		s.limited.Warnf("reply", "could not answer pid %d: %v", sess.PID, err)
	}
}

// peerCred reads SO_PEERCRED (socket(7)): the pid and the effective uid
// and gid of the process that connected.
func peerCred(c *net.UnixConn) (*unix.Ucred, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, cerr
}
