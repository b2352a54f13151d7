// Command plcclient is a stand-in for PL/Container's stock language client.
//
// It is the only program in the test runtime image plcoordinator-test-client
// (see ../README.md). It behaves like the stock client as far as container
// management can observe: it listens on the shared unix domain socket (or on
// TCP port 8080 when USE_CONTAINER_NETWORK=true), waits a bounded time for
// one connection, accepts exactly one, expects a PING carrying a compatible
// version, answers with its own PING and then ends with exit code 1 when the
// peer goes away. Unlike the stock client it answers every further PING, so
// tests can measure round trips, and it can misbehave on request (PLC_FAULT).
//
// Every exit path goes through run, which returns the exit code; main only
// wires the process environment, stdout and SIGTERM into it.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	defaultVersion       = "2.4.0"
	defaultSocketDir     = "/tmp/plcontainer"
	socketName           = "unix.domain.socket.shared.file"
	defaultTCPAddr       = "0.0.0.0:8080"
	defaultAcceptTimeout = 20 * time.Second

	msgPing       byte = 'P'
	maxVersionLen      = 1024     // largest PING payload accepted
	oomChunk           = 16 << 20 // bytes allocated per step of the oom fault
)

// Exit codes. The stock client ends with 1 whatever happened; the others
// exist only so that tests can tell the image's own conditions apart.
const (
	exitSignal = 0 // SIGTERM or SIGINT (docker stop)
	exitEnded  = 1 // any stock-like end: EOF, timeout, mismatch, bad message
	exitUsage  = 2 // a PLC_* variable has an invalid value
	exitCrash  = 3 // fault crash_at_start
)

// options is everything run takes from its surroundings.
type options struct {
	Getenv func(string) string // environment lookup, os.Getenv in main
	Out    io.Writer           // log destination, os.Stdout in main
	// OnListen, when set, is called once the listener is ready, with
	// "unix" and the socket path or "tcp" and the bound address.
	OnListen func(network, address string)
}

// faults holds the parsed PLC_FAULT setting.
type faults struct {
	crashAtStart bool          // exit 3 before doing anything
	neverListen  bool          // never create a listener
	listenLate   time.Duration // delay before listening
	exitAfter    time.Duration // exit 1 this long after start
	oom          bool          // allocate memory forever instead of listening
	oomAfterPing bool          // answer the first PING, then allocate forever
	noReply      bool          // read the first PING but never answer
}

// config is the parsed environment.
type config struct {
	dbUser, dbName, qePID string
	uid, gid              int // -1 when not given
	useTCP                bool
	socketDir             string
	tcpAddr               string
	acceptTimeout         time.Duration
	version               string
	faultSpec             string
	faults                faults
}

// usageError marks configuration errors in the PLC_* test knobs.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	// As PID 1 in a container the process gets no default SIGTERM action,
	// so without this handler docker stop would wait and then SIGKILL.
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sigs
		cancel(fmt.Errorf("received signal %v", s))
	}()
	os.Exit(run(ctx, options{Getenv: faultFileEnv(os.Getenv, faultFile), Out: os.Stdout}))
}

// faultFile lets a runtime configuration select a fault without an
// environment variable (the coordinator sets the container's environment):
// mount a directory holding a file "fault" at /plcfault with a
// <shared_directory>. PLC_FAULT in the environment wins.
const faultFile = "/plcfault/fault"

// faultFileEnv wraps getenv so that PLC_FAULT falls back to the content of
// path.
func faultFileEnv(getenv func(string) string, path string) func(string) string {
	return func(key string) string {
		v := getenv(key)
		if key != "PLC_FAULT" || v != "" {
			return v
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
}

// run executes the client and returns the process exit code. Cancelling ctx
// plays the role of SIGTERM: run returns exitSignal promptly.
func run(ctx context.Context, o options) int {
	start := time.Now()
	lg := &logger{w: o.Out, start: start}
	defer lg.close()

	cfg, warnings, err := parseConfig(o.Getenv)
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			lg.printf("invalid configuration: %v; exiting with code %d", err, exitUsage)
			return exitUsage
		}
		lg.printf("%v; exiting with code %d", err, exitEnded)
		return exitEnded
	}
	lg.printf("starting: version %q, db user %q, db %q, qe pid %q, executor uid %d gid %d, %s, accept timeout %v, faults %q, running as uid %d",
		cfg.version, cfg.dbUser, cfg.dbName, cfg.qePID, cfg.uid, cfg.gid,
		cfg.endpoint(), cfg.acceptTimeout, cfg.faultSpec, os.Getuid())
	for _, w := range warnings {
		lg.printf("warning: %s", w)
	}
	if cfg.faults.crashAtStart {
		lg.printf("fault crash_at_start: exiting with code %d", exitCrash)
		return exitCrash
	}

	c := &client{cfg: cfg, log: lg, onListen: o.OnListen, stop: make(chan struct{})}
	defer c.shutdown()
	done := make(chan int, 1)
	go func() { done <- c.main() }()

	var deadline <-chan time.Time
	if d := cfg.faults.exitAfter; d > 0 {
		t := time.NewTimer(time.Until(start.Add(d)))
		defer t.Stop()
		deadline = t.C
	}
	select {
	case code := <-done:
		return code
	case <-ctx.Done():
		lg.printf("%v; exiting with code %d", context.Cause(ctx), exitSignal)
		return exitSignal
	case <-deadline:
		lg.printf("fault exit_after: %v since start; exiting with code %d", cfg.faults.exitAfter, exitEnded)
		return exitEnded
	}
}

// endpoint describes where the client listens, for the start-up line.
func (cfg *config) endpoint() string {
	if cfg.useTCP {
		return "tcp " + cfg.tcpAddr
	}
	return "unix " + filepath.Join(cfg.socketDir, socketName)
}

// parseConfig reads the environment. Errors in the stock variables are plain
// errors (the stock client exits 1 on them); errors in PLC_* are usageErrors.
func parseConfig(getenv func(string) string) (config, []string, error) {
	var warnings []string
	cfg := config{
		dbUser:        getenv("DB_USER_NAME"),
		dbName:        getenv("DB_NAME"),
		qePID:         getenv("DB_QE_PID"),
		uid:           -1,
		gid:           -1,
		socketDir:     defaultSocketDir,
		tcpAddr:       defaultTCPAddr,
		acceptTimeout: defaultAcceptTimeout,
		version:       defaultVersion,
		faultSpec:     getenv("PLC_FAULT"),
	}

	switch v := getenv("USE_CONTAINER_NETWORK"); v {
	case "true":
		cfg.useTCP = true
	case "false":
	case "":
		warnings = append(warnings, "USE_CONTAINER_NETWORK is not set, using the unix domain socket")
	default:
		return cfg, nil, fmt.Errorf("USE_CONTAINER_NETWORK must be \"true\" or \"false\", got %q", v)
	}

	for _, id := range []struct {
		name string
		dst  *int
	}{{"EXECUTOR_UID", &cfg.uid}, {"EXECUTOR_GID", &cfg.gid}} {
		v := getenv(id.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return cfg, nil, fmt.Errorf("%s must be a non-negative integer, got %q", id.name, v)
		}
		*id.dst = n
	}
	if !cfg.useTCP && (cfg.uid < 0 || cfg.gid < 0) {
		warnings = append(warnings, "EXECUTOR_UID or EXECUTOR_GID is not set, the socket keeps the owner it is created with")
	}

	if v := getenv("PLC_VERSION"); v != "" {
		cfg.version = v
	}
	if v := getenv("PLC_SOCKET_DIR"); v != "" {
		cfg.socketDir = v
	}
	if v := getenv("PLC_TCP_ADDR"); v != "" {
		cfg.tcpAddr = v
	}
	if v := getenv("PLC_ACCEPT_TIMEOUT_MS"); v != "" {
		d, err := parseMillis(v)
		if err != nil || d == 0 {
			return cfg, nil, usageError{fmt.Sprintf("PLC_ACCEPT_TIMEOUT_MS must be a positive number of milliseconds, got %q", v)}
		}
		cfg.acceptTimeout = d
	}
	f, err := parseFaults(cfg.faultSpec)
	if err != nil {
		return cfg, nil, err
	}
	cfg.faults = f
	return cfg, warnings, nil
}

// parseMillis parses a non-negative decimal number of milliseconds.
func parseMillis(s string) (time.Duration, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > int64(time.Duration(1<<62)/time.Millisecond) {
		return 0, fmt.Errorf("bad milliseconds %q", s)
	}
	return time.Duration(n) * time.Millisecond, nil
}

// parseFaults parses PLC_FAULT: a comma-separated list of fault names, the
// timed ones written name:<ms>.
func parseFaults(spec string) (faults, error) {
	var f faults
	if strings.TrimSpace(spec) == "" {
		return f, nil
	}
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		name, arg, hasArg := strings.Cut(item, ":")
		timed := name == "listen_late" || name == "exit_after"
		if timed != hasArg {
			if timed {
				return f, usageError{fmt.Sprintf("PLC_FAULT %q needs a duration: %s:<ms>", item, name)}
			}
			return f, usageError{fmt.Sprintf("PLC_FAULT %q takes no argument", item)}
		}
		var d time.Duration
		if timed {
			var err error
			if d, err = parseMillis(arg); err != nil {
				return f, usageError{fmt.Sprintf("PLC_FAULT %q: %v", item, err)}
			}
		}
		switch name {
		case "crash_at_start":
			f.crashAtStart = true
		case "never_listen":
			f.neverListen = true
		case "listen_late":
			f.listenLate = d
		case "exit_after":
			f.exitAfter = d
		case "oom":
			f.oom = true
		case "oom_after_ping":
			f.oomAfterPing = true
		case "no_reply":
			f.noReply = true
		default:
			return f, usageError{fmt.Sprintf("PLC_FAULT: unknown fault %q", name)}
		}
	}
	return f, nil
}

// logger writes one line per event, prefixed "plcclient:" and the time since
// start. After close it drops everything, so a goroutine still unwinding
// after run returned cannot write to a destination that is gone.
type logger struct {
	mu     sync.Mutex
	w      io.Writer
	start  time.Time
	closed bool
}

func (l *logger) printf(format string, args ...any) {
	line := fmt.Sprintf("plcclient: [+%dms] %s\n", time.Since(l.start).Milliseconds(), fmt.Sprintf(format, args...))
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		_, _ = io.WriteString(l.w, line)
	}
}

func (l *logger) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}

// client is one run of the server side. Its main goroutine owns the protocol;
// shutdown, called when run returns, closes the listener and connection so
// that goroutine unblocks and ends.
type client struct {
	cfg      config
	log      *logger
	onListen func(network, address string)

	mu      sync.Mutex
	stopped bool
	closers []io.Closer
	stop    chan struct{} // closed by shutdown

	ballast [][]byte // memory held by the oom faults
}

// track registers x to be closed by shutdown. If shutdown already happened it
// closes x at once and returns false.
func (c *client) track(x io.Closer) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		_ = x.Close()
		return false
	}
	c.closers = append(c.closers, x)
	return true
}

func (c *client) isStopped() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopped
}

func (c *client) shutdown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.stopped = true
	close(c.stop)
	for _, x := range c.closers {
		_ = x.Close()
	}
}

// sleep waits d and reports false if shutdown came first.
func (c *client) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.stop:
		return false
	}
}

// main runs the client lifecycle and returns the exit code.
func (c *client) main() int {
	f := c.cfg.faults
	if f.oom {
		c.log.printf("fault oom: allocating memory in %d MiB chunks without listening", oomChunk>>20)
		return c.eatMemory()
	}
	if f.neverListen {
		c.log.printf("fault never_listen: not creating a listener")
		<-c.stop
		return exitSignal
	}
	if f.listenLate > 0 {
		c.log.printf("fault listen_late: waiting %v before listening", f.listenLate)
		if !c.sleep(f.listenLate) {
			return exitSignal
		}
	}

	var ln net.Listener
	var addr string
	var err error
	if c.cfg.useTCP {
		ln, addr, err = c.listenTCP()
	} else {
		ln, addr, err = c.listenUnix()
	}
	if err != nil {
		if c.isStopped() {
			return exitSignal
		}
		c.log.printf("cannot listen: %v; exiting with code %d", err, exitEnded)
		return exitEnded
	}
	network := "unix"
	if c.cfg.useTCP {
		network = "tcp"
	}
	c.log.printf("listening on %s %s; waiting up to %v for a connection", network, addr, c.cfg.acceptTimeout)
	if c.onListen != nil {
		c.onListen(network, addr)
	}

	conn, code := c.acceptOne(ln)
	if conn == nil {
		return code
	}
	return c.serve(conn)
}

// listenUnix creates the shared socket. It binds and listens under a hidden
// temporary name, sets owner and mode, and only then renames the socket to
// its published name, so the published file never exists without a
// listener behind it.
func (c *client) listenUnix() (net.Listener, string, error) {
	dir := c.cfg.socketDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	final := filepath.Join(dir, socketName)
	switch err := os.Remove(final); {
	case err == nil:
		c.log.printf("removed stale socket %s", final)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, "", fmt.Errorf("remove stale socket: %w", err)
	}

	tmp := filepath.Join(dir, fmt.Sprintf(".plcclient.%d.sock", os.Getpid()))
	_ = os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, "", err
	}
	// Like the stock client, leave the socket file behind on close.
	ln.SetUnlinkOnClose(false)
	if !c.track(ln) {
		_ = os.Remove(tmp)
		return nil, "", net.ErrClosed
	}
	fail := func(err error) (net.Listener, string, error) {
		_ = ln.Close()
		_ = os.Remove(tmp)
		return nil, "", err
	}
	if c.cfg.uid >= 0 || c.cfg.gid >= 0 {
		if err := os.Chown(tmp, c.cfg.uid, c.cfg.gid); err != nil {
			return fail(err)
		}
	}
	if err := os.Chmod(tmp, 0o666); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fail(err)
	}
	return ln, final, nil
}

func (c *client) listenTCP() (net.Listener, string, error) {
	// An IPv4 address such as the default 0.0.0.0 binds IPv4 only, as the
	// stock client does; plain "tcp" would make Go listen dual-stack.
	network := "tcp"
	if host, _, err := net.SplitHostPort(c.cfg.tcpAddr); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.To4() != nil {
			network = "tcp4"
		}
	}
	ln, err := net.Listen(network, c.cfg.tcpAddr)
	if err != nil {
		return nil, "", err
	}
	if !c.track(ln) {
		return nil, "", net.ErrClosed
	}
	return ln, ln.Addr().String(), nil
}

// acceptOne waits for the single connection and closes the listener right
// after, so that any further connect is refused. On failure it returns a nil
// connection and the exit code.
func (c *client) acceptOne(ln net.Listener) (net.Conn, int) {
	if dl, ok := ln.(interface{ SetDeadline(time.Time) error }); ok {
		_ = dl.SetDeadline(time.Now().Add(c.cfg.acceptTimeout))
	}
	conn, err := ln.Accept()
	_ = ln.Close()
	switch {
	case err == nil:
	case c.isStopped():
		return nil, exitSignal
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.log.printf("no client connected within %v; exiting with code %d", c.cfg.acceptTimeout, exitEnded)
		return nil, exitEnded
	default:
		c.log.printf("accept failed: %v; exiting with code %d", err, exitEnded)
		return nil, exitEnded
	}
	if !c.track(conn) {
		return nil, exitSignal
	}
	peer := "local peer"
	if a := conn.RemoteAddr(); a != nil && a.String() != "" && a.String() != "@" {
		peer = a.String()
	}
	c.log.printf("accepted a connection from %s; listener closed", peer)
	return conn, 0
}

// serve runs the conversation on the accepted connection.
func (c *client) serve(conn net.Conn) int {
	r := bufio.NewReader(conn)
	own := c.cfg.version
	reply := encodePing(own)

	got, code, ok := c.readPing(r, "first message")
	if !ok {
		return code
	}
	if !strings.HasPrefix(got, own) {
		c.log.printf("version mismatch: received PING version %q does not start with own version %q; exiting with code %d without reply",
			got, own, exitEnded)
		return exitEnded
	}
	if c.cfg.faults.noReply {
		c.log.printf("fault no_reply: received PING version %q, not answering", got)
		n, err := io.Copy(io.Discard, r)
		if c.isStopped() {
			return exitSignal
		}
		c.log.printf("peer closed the connection after %d more bytes (%v); exiting with code %d", n, errOrEOF(err), exitEnded)
		return exitEnded
	}
	if _, err := conn.Write(reply); err != nil {
		if c.isStopped() {
			return exitSignal
		}
		c.log.printf("cannot send PING reply: %v; exiting with code %d", err, exitEnded)
		return exitEnded
	}
	c.log.printf("handshake done: received PING version %q, replied %q", got, own)
	if c.cfg.faults.oomAfterPing {
		c.log.printf("fault oom_after_ping: allocating memory in %d MiB chunks, connection kept open", oomChunk>>20)
		return c.eatMemory()
	}

	for n := 2; ; n++ {
		got, code, ok := c.readPing(r, "message")
		if !ok {
			c.log.printf("answered %d PINGs in total", n-1)
			return code
		}
		if _, err := conn.Write(reply); err != nil {
			if c.isStopped() {
				return exitSignal
			}
			c.log.printf("cannot send PING reply: %v; exiting with code %d", err, exitEnded)
			return exitEnded
		}
		// Log sparsely so that round-trip measurements are not dominated by logging.
		if n <= 10 || n%1000 == 0 {
			c.log.printf("answered PING #%d (received version %q)", n, got)
		}
	}
}

// readPing reads one message that must be a PING and returns its version.
// When ok is false the message has been logged and code is the exit code.
func (c *client) readPing(r *bufio.Reader, what string) (version string, code int, ok bool) {
	fail := func(format string, args ...any) (string, int, bool) {
		if c.isStopped() {
			return "", exitSignal, false
		}
		c.log.printf("%s; exiting with code %d", fmt.Sprintf(format, args...), exitEnded)
		return "", exitEnded, false
	}
	t, err := r.ReadByte()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fail("peer closed the connection (EOF) while waiting for the %s", what)
		}
		return fail("receive error while waiting for the %s: %v", what, err)
	}
	if t != msgPing {
		return fail("unexpected message type %d / %q in the %s, only PING (%q) is served", t, rune(t), what, rune(msgPing))
	}
	var lenBuf [4]byte
	if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
		return fail("truncated PING length: %v", errOrEOF(err))
	}
	n := int32(binary.LittleEndian.Uint32(lenBuf[:]))
	if n < 0 || n > maxVersionLen {
		return fail("PING version length %d out of range 0..%d", n, maxVersionLen)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return fail("truncated PING version: %v", errOrEOF(err))
	}
	return string(buf), 0, true
}

// encodePing builds a PING message: 'P', int32 little-endian length, bytes.
func encodePing(version string) []byte {
	b := make([]byte, 5, 5+len(version))
	b[0] = msgPing
	binary.LittleEndian.PutUint32(b[1:5], uint32(len(version)))
	return append(b, version...)
}

func errOrEOF(err error) error {
	if err == nil {
		return io.EOF
	}
	return err
}

// eatMemory allocates oomChunk-sized blocks and writes to every page of each,
// so that the memory is really resident, until the process is killed (or
// shutdown is called, in tests).
func (c *client) eatMemory() int {
	page := os.Getpagesize()
	for {
		select {
		case <-c.stop:
			return exitSignal
		default:
		}
		b := make([]byte, oomChunk)
		for i := 0; i < len(b); i += page {
			b[i] = 1
		}
		c.ballast = append(c.ballast, b)
		c.log.printf("fault oom: %d MiB allocated and touched", len(c.ballast)*(oomChunk>>20))
	}
}
