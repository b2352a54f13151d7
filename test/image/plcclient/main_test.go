package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The ping of a 2.4.0 QE, spelled out byte by byte (reference §4.3).
var ping240 = []byte{0x50, 0x05, 0x00, 0x00, 0x00, 0x32, 0x2E, 0x34, 0x2E, 0x30}

// TestMain lets a test re-execute the test binary as the real command, to
// check exit codes and signal handling of a separate process.
func TestMain(m *testing.M) {
	if os.Getenv("PLCCLIENT_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// syncBuffer collects the log output of a run.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// instance is run executing in a goroutine.
type instance struct {
	t        *testing.T
	out      *syncBuffer
	started  time.Time
	listened chan string // address passed to OnListen
	cancel   context.CancelFunc
	exited   chan struct{}
	code     int
}

// baseEnv is a UDS configuration in a fresh temporary socket directory.
func baseEnv(t *testing.T) map[string]string {
	return map[string]string{
		"USE_CONTAINER_NETWORK": "false",
		"PLC_SOCKET_DIR":        t.TempDir(),
		"EXECUTOR_UID":          strconv.Itoa(os.Getuid()),
		"EXECUTOR_GID":          strconv.Itoa(os.Getgid()),
		"DB_USER_NAME":          "tester",
		"DB_NAME":               "testdb",
		"DB_QE_PID":             "4242",
		"PLC_ACCEPT_TIMEOUT_MS": "5000",
	}
}

func start(t *testing.T, env map[string]string) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{
		t:        t,
		out:      &syncBuffer{},
		started:  time.Now(),
		listened: make(chan string, 1),
		cancel:   cancel,
		exited:   make(chan struct{}),
	}
	go func() {
		defer close(in.exited)
		in.code = run(ctx, options{
			Getenv:   func(k string) string { return env[k] },
			Out:      in.out,
			OnListen: func(_, addr string) { in.listened <- addr },
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-in.exited:
		case <-time.After(5 * time.Second):
			t.Errorf("run did not return after cancel")
		}
		if t.Failed() {
			t.Logf("client log:\n%s", in.out.String())
		}
	})
	return in
}

// waitListen returns the listening address.
func (in *instance) waitListen() string {
	in.t.Helper()
	select {
	case a := <-in.listened:
		return a
	case <-in.exited:
		in.t.Fatalf("run exited with %d before listening:\n%s", in.code, in.out.String())
	case <-time.After(5 * time.Second):
		in.t.Fatalf("not listening after 5s:\n%s", in.out.String())
	}
	return ""
}

// wait returns the exit code, failing if run does not return within d.
func (in *instance) wait(d time.Duration) int {
	in.t.Helper()
	select {
	case <-in.exited:
		return in.code
	case <-time.After(d):
		in.t.Fatalf("run still running after %v:\n%s", d, in.out.String())
	}
	return -1
}

func (in *instance) requireLog(substr string) {
	in.t.Helper()
	if !strings.Contains(in.out.String(), substr) {
		in.t.Errorf("log does not contain %q:\n%s", substr, in.out.String())
	}
}

func dialUnix(t *testing.T, path string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		t.Fatalf("connect %s: %v", path, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// exchange sends req and reads exactly len(want) bytes.
func exchange(t *testing.T, c net.Conn, req, want []byte) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write(req); err != nil {
		t.Fatalf("send: %v", err)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read reply: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("reply % X, want % X", got, want)
	}
}

// expectClosedWithoutData checks that the peer closes without sending a byte.
func expectClosedWithoutData(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("expected EOF, got %v after % X", err, b)
	}
	if len(b) != 0 {
		t.Fatalf("expected no reply, got % X", b)
	}
}

func TestPingReplyBytes(t *testing.T) {
	env := baseEnv(t)
	in := start(t, env)
	path := in.waitListen()
	if want := filepath.Join(env["PLC_SOCKET_DIR"], socketName); path != want {
		t.Fatalf("socket path %q, want %q", path, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o666 {
		t.Errorf("socket mode %v, want socket 0666", fi.Mode())
	}

	c := dialUnix(t, path)
	if got := encodePing("2.4.0"); !bytes.Equal(got, ping240) {
		t.Fatalf("encodePing(2.4.0) = % X", got)
	}
	exchange(t, c, ping240, ping240)
	for i := 0; i < 3; i++ { // every further PING gets the same reply
		exchange(t, c, ping240, ping240)
	}
	_ = c.Close()
	if code := in.wait(3 * time.Second); code != exitEnded {
		t.Fatalf("exit code %d after EOF, want %d", code, exitEnded)
	}
	in.requireLog("EOF")
	in.requireLog("answered 4 PINGs in total")
}

func TestVersionPrefix(t *testing.T) {
	cases := []struct {
		name, own, sent string
		ok              bool
	}{
		{"same", "2.4.0", "2.4.0", true},
		{"received_longer", "2.4.0", "2.4.0-gp7", true},
		{"own_shorter", "2.4", "2.4.0", true},
		{"received_shorter", "2.4.0", "2.4", false},
		{"different", "2.4.0", "2.3.9", false},
		{"empty_received", "2.4.0", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := baseEnv(t)
			if tc.own != defaultVersion {
				env["PLC_VERSION"] = tc.own
			}
			in := start(t, env)
			c := dialUnix(t, in.waitListen())
			if tc.ok {
				exchange(t, c, encodePing(tc.sent), encodePing(tc.own))
				return
			}
			if _, err := c.Write(encodePing(tc.sent)); err != nil {
				t.Fatal(err)
			}
			expectClosedWithoutData(t, c)
			if code := in.wait(3 * time.Second); code != exitEnded {
				t.Fatalf("exit code %d, want %d", code, exitEnded)
			}
			in.requireLog("version mismatch")
		})
	}
}

func TestSecondConnectionRefused(t *testing.T) {
	in := start(t, baseEnv(t))
	path := in.waitListen()
	c := dialUnix(t, path)
	// A completed handshake proves the one connection has been accepted.
	exchange(t, c, ping240, ping240)

	c2, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		_ = c2.Close()
		t.Fatal("second connection succeeded, want refused")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("second connection: %v, want ECONNREFUSED", err)
	}
	// The socket file stays (the stock client never removes it) and the
	// first connection is unaffected.
	if _, err := os.Stat(path); err != nil {
		t.Errorf("socket file: %v", err)
	}
	exchange(t, c, ping240, ping240)
}

func TestAcceptTimeout(t *testing.T) {
	env := baseEnv(t)
	env["PLC_ACCEPT_TIMEOUT_MS"] = "200"
	in := start(t, env)
	path := in.waitListen()
	code := in.wait(3 * time.Second)
	elapsed := time.Since(in.started)
	if code != exitEnded {
		t.Fatalf("exit code %d, want %d", code, exitEnded)
	}
	if elapsed < 200*time.Millisecond {
		t.Errorf("exited after %v, before the 200ms accept timeout", elapsed)
	}
	in.requireLog("no client connected within 200ms")
	if _, err := net.DialTimeout("unix", path, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("connect after timeout: %v, want ECONNREFUSED", err)
	}
}

func TestListenLate(t *testing.T) {
	env := baseEnv(t)
	env["PLC_FAULT"] = "listen_late:400"
	path := filepath.Join(env["PLC_SOCKET_DIR"], socketName)
	in := start(t, env)

	time.Sleep(150 * time.Millisecond)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket exists 150ms into a 400ms listen_late (stat err %v)", err)
	}
	in.waitListen()
	if elapsed := time.Since(in.started); elapsed < 400*time.Millisecond {
		t.Fatalf("listening after %v, want >= 400ms", elapsed)
	}
	exchange(t, dialUnix(t, path), ping240, ping240)
}

func TestStaleSocketReplaced(t *testing.T) {
	env := baseEnv(t)
	env["PLC_FAULT"] = "listen_late:300"
	path := filepath.Join(env["PLC_SOCKET_DIR"], socketName)
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	_ = stale.Close()

	in := start(t, env)
	if _, err := net.DialTimeout("unix", path, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("connect to stale socket: %v, want ECONNREFUSED", err)
	}
	in.waitListen()
	exchange(t, dialUnix(t, path), ping240, ping240)
	in.requireLog("removed stale socket")
}

// TestSocketFileImpliesListening polls for the socket file as a coordinator
// would and connects the moment it appears: that connect must never fail.
func TestSocketFileImpliesListening(t *testing.T) {
	for i := 0; i < 20; i++ {
		env := baseEnv(t)
		path := filepath.Join(env["PLC_SOCKET_DIR"], socketName)
		in := start(t, env)
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, err := os.Stat(path); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("socket never appeared")
			}
		}
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatalf("round %d: connect right after the file appeared: %v", i, err)
		}
		exchange(t, c, ping240, ping240)
		_ = c.Close()
		if code := in.wait(3 * time.Second); code != exitEnded {
			t.Fatalf("exit code %d, want %d", code, exitEnded)
		}
		entries, _ := os.ReadDir(env["PLC_SOCKET_DIR"])
		if len(entries) != 1 {
			t.Fatalf("socket dir holds %d entries, want only the socket", len(entries))
		}
	}
}

func TestSocketDirCreated(t *testing.T) {
	env := baseEnv(t)
	dir := filepath.Join(env["PLC_SOCKET_DIR"], "a", "plcontainer")
	env["PLC_SOCKET_DIR"] = dir
	in := start(t, env)
	in.waitListen()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("created socket dir has mode %v, want 0700", fi.Mode().Perm())
	}
}

func TestSocketOwner(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("chown to another user needs root")
	}
	env := baseEnv(t)
	env["EXECUTOR_UID"] = "12345"
	env["EXECUTOR_GID"] = "23456"
	in := start(t, env)
	fi, err := os.Stat(in.waitListen())
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 12345 || st.Gid != 23456 {
		t.Errorf("socket owned by %d:%d, want 12345:23456", st.Uid, st.Gid)
	}
}

func TestBadMessages(t *testing.T) {
	le := func(n int32) []byte {
		return []byte{byte(n), byte(n >> 8), byte(n >> 16), byte(n >> 24)}
	}
	cases := []struct {
		name      string
		handshake bool
		send      []byte
		log       string
	}{
		{"first_not_ping", false, []byte("C\x00\x00\x00\x00"), "unexpected message type 67"},
		{"length_too_big", false, append([]byte{'P'}, le(2000)...), "out of range"},
		{"length_negative", false, append([]byte{'P'}, le(-1)...), "out of range"},
		{"truncated", false, []byte{'P', 5, 0}, "truncated PING length"},
		{"call_after_ping", true, []byte("C\x03\x00\x00\x00abc"), "unexpected message type 67"},
		{"eof_before_ping", false, nil, "EOF"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := start(t, baseEnv(t))
			c := dialUnix(t, in.waitListen())
			if tc.handshake {
				exchange(t, c, ping240, ping240)
			}
			if tc.send != nil {
				if _, err := c.Write(tc.send); err != nil {
					t.Fatal(err)
				}
			}
			if tc.name == "truncated" || tc.name == "eof_before_ping" {
				_ = c.(*net.UnixConn).CloseWrite()
			}
			expectClosedWithoutData(t, c)
			if code := in.wait(3 * time.Second); code != exitEnded {
				t.Fatalf("exit code %d, want %d", code, exitEnded)
			}
			in.requireLog(tc.log)
		})
	}
}

func TestNoReply(t *testing.T) {
	env := baseEnv(t)
	env["PLC_FAULT"] = "no_reply"
	in := start(t, env)
	c := dialUnix(t, in.waitListen())
	if _, err := c.Write(ping240); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	n, err := c.Read(make([]byte, 16))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %d bytes, err %v; want a timeout", n, err)
	}
	_ = c.Close()
	if code := in.wait(3 * time.Second); code != exitEnded {
		t.Fatalf("exit code %d, want %d", code, exitEnded)
	}
	in.requireLog("fault no_reply")
}

func TestExitAfter(t *testing.T) {
	t.Run("connected", func(t *testing.T) {
		env := baseEnv(t)
		env["PLC_FAULT"] = "exit_after:400"
		in := start(t, env)
		c := dialUnix(t, in.waitListen())
		exchange(t, c, ping240, ping240)
		code := in.wait(3 * time.Second)
		if elapsed := time.Since(in.started); elapsed < 400*time.Millisecond {
			t.Errorf("exited after %v, want >= 400ms", elapsed)
		}
		if code != exitEnded {
			t.Fatalf("exit code %d, want %d", code, exitEnded)
		}
		expectClosedWithoutData(t, c)
	})
	t.Run("never_listening", func(t *testing.T) {
		env := baseEnv(t)
		env["PLC_FAULT"] = "never_listen,exit_after:200"
		in := start(t, env)
		if code := in.wait(3 * time.Second); code != exitEnded {
			t.Fatalf("exit code %d, want %d", code, exitEnded)
		}
		in.requireLog("fault exit_after")
	})
}

func TestCrashAtStart(t *testing.T) {
	env := baseEnv(t)
	dir := filepath.Join(env["PLC_SOCKET_DIR"], "sub")
	env["PLC_SOCKET_DIR"] = dir
	env["PLC_FAULT"] = "crash_at_start"
	in := start(t, env)
	if code := in.wait(time.Second); code != exitCrash {
		t.Fatalf("exit code %d, want %d", code, exitCrash)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket dir was created (stat err %v)", err)
	}
}

func TestNeverListen(t *testing.T) {
	env := baseEnv(t)
	env["PLC_FAULT"] = "never_listen"
	env["PLC_ACCEPT_TIMEOUT_MS"] = "100"
	in := start(t, env)
	time.Sleep(300 * time.Millisecond)
	entries, err := os.ReadDir(env["PLC_SOCKET_DIR"])
	if err != nil || len(entries) != 0 {
		t.Fatalf("socket dir entries %v (err %v), want none", entries, err)
	}
	in.cancel()
	if code := in.wait(time.Second); code != exitSignal {
		t.Fatalf("exit code %d after cancel, want %d", code, exitSignal)
	}
}

func TestCancelWhileConnected(t *testing.T) {
	in := start(t, baseEnv(t))
	c := dialUnix(t, in.waitListen())
	exchange(t, c, ping240, ping240)
	in.cancel()
	if code := in.wait(time.Second); code != exitSignal {
		t.Fatalf("exit code %d after cancel, want %d", code, exitSignal)
	}
	expectClosedWithoutData(t, c)
}

func TestTCPMode(t *testing.T) {
	env := baseEnv(t)
	env["USE_CONTAINER_NETWORK"] = "true"
	env["PLC_TCP_ADDR"] = "127.0.0.1:0"
	in := start(t, env)
	addr := in.waitListen()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	exchange(t, c, ping240, ping240)
	exchange(t, c, ping240, ping240)
	if c2, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		_ = c2.Close()
		t.Error("second TCP connection succeeded, want refused")
	}
	entries, _ := os.ReadDir(env["PLC_SOCKET_DIR"])
	if len(entries) != 0 {
		t.Errorf("TCP mode created %d entries in the socket dir", len(entries))
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		key, value string
		code       int
	}{
		{"USE_CONTAINER_NETWORK", "yes", exitEnded},
		{"EXECUTOR_UID", "postgres", exitEnded},
		{"EXECUTOR_GID", "-1", exitEnded},
		{"PLC_ACCEPT_TIMEOUT_MS", "0", exitUsage},
		{"PLC_ACCEPT_TIMEOUT_MS", "1s", exitUsage},
		{"PLC_FAULT", "explode", exitUsage},
		{"PLC_FAULT", "listen_late", exitUsage},
		{"PLC_FAULT", "listen_late:-5", exitUsage},
		{"PLC_FAULT", "oom:100", exitUsage},
	}
	for _, tc := range cases {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			env := baseEnv(t)
			env[tc.key] = tc.value
			in := start(t, env)
			if code := in.wait(time.Second); code != tc.code {
				t.Fatalf("exit code %d, want %d", code, tc.code)
			}
		})
	}
}

func TestParseFaults(t *testing.T) {
	f, err := parseFaults(" listen_late:150, exit_after:2000,no_reply ")
	if err != nil {
		t.Fatal(err)
	}
	want := faults{listenLate: 150 * time.Millisecond, exitAfter: 2 * time.Second, noReply: true}
	if f != want {
		t.Fatalf("parseFaults = %+v, want %+v", f, want)
	}
}

// startProcess runs the test binary as the real command.
func startProcess(t *testing.T, env map[string]string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// Under -race the runtime sleeps 1s at exit unless told otherwise.
	cmd.Env = []string{"PLCCLIENT_TEST_RUN_MAIN=1", "GORACE=atexit_sleep_ms=0"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out := &syncBuffer{}
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, out
}

func exitCode(t *testing.T, cmd *exec.Cmd, out *syncBuffer) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("process did not exit:\n%s", out.String())
	}
	return cmd.ProcessState.ExitCode()
}

func TestProcessCrashAtStart(t *testing.T) {
	env := baseEnv(t)
	env["PLC_FAULT"] = "crash_at_start"
	cmd, out := startProcess(t, env)
	if code := exitCode(t, cmd, out); code != exitCrash {
		t.Fatalf("exit code %d, want %d:\n%s", code, exitCrash, out.String())
	}
	if !strings.HasPrefix(out.String(), "plcclient: ") {
		t.Errorf("log lines lack the plcclient: prefix:\n%s", out.String())
	}
}

func TestProcessSIGTERM(t *testing.T) {
	env := baseEnv(t)
	path := filepath.Join(env["PLC_SOCKET_DIR"], socketName)
	cmd, out := startProcess(t, env)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("socket never appeared:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	c := dialUnix(t, path)
	exchange(t, c, ping240, ping240)
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(t, cmd, out); code != exitSignal {
		t.Fatalf("exit code %d after SIGTERM, want %d:\n%s", code, exitSignal, out.String())
	}
	if d := time.Since(sent); d > time.Second {
		t.Errorf("took %v to exit after SIGTERM:\n%s", d, out.String())
	}
	if !strings.Contains(out.String(), "received signal terminated") {
		t.Errorf("log does not mention the signal:\n%s", out.String())
	}
}

func TestFaultFileEnv(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/fault"
	if err := os.WriteFile(path, []byte(" listen_late:5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	none := func(string) string { return "" }
	if got := faultFileEnv(none, path)("PLC_FAULT"); got != "listen_late:5" {
		t.Fatalf("fault from file: got %q", got)
	}
	env := func(k string) string {
		if k == "PLC_FAULT" {
			return "oom"
		}
		return ""
	}
	if got := faultFileEnv(env, path)("PLC_FAULT"); got != "oom" {
		t.Fatalf("environment must win: got %q", got)
	}
	if got := faultFileEnv(none, dir+"/missing")("PLC_FAULT"); got != "" {
		t.Fatalf("missing file: got %q", got)
	}
}
