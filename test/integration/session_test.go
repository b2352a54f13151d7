//go:build integration

package integration

// Sessions, limits and cleanup (issues 4 and 5).

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestSession_ReuseAndPing: the same session gets its container back
// (reused); another session gets another one; ping works with the
// coordinator's hand-off and with the backend connecting itself.
func TestSession_ReuseAndPing(t *testing.T) {
	track(t)
	c := newCluster(t, clusterOpts{})
	a := c.conn(t)
	first := acquire(t, a, plcTestRuntime)
	if first.Bool("reused") {
		t.Errorf("first acquire: reused = true")
	}
	if !strings.HasPrefix(first.Str("address"), "unix:") {
		t.Errorf("address %q is not unix:<path>", first.Str("address"))
	}
	second := acquire(t, a, plcTestRuntime)
	if second.Str("container_id") != first.Str("container_id") {
		t.Errorf("second acquire in the same session: container %s, want %s", short(second.Str("container_id")), short(first.Str("container_id")))
	}
	if !second.Bool("reused") {
		t.Errorf("second acquire in the same session: reused = false")
	}

	b := c.conn(t)
	other := acquire(t, b, plcTestRuntime)
	if other.Str("container_id") == first.Str("container_id") {
		t.Errorf("a new session got the other session's container %s", short(other.Str("container_id")))
	}
	if other.Bool("reused") {
		t.Errorf("a new session's first acquire: reused = true")
	}

	// The containers carry their session's backend pid.
	for _, s := range []struct {
		conn *PgConn
		id   string
	}{{a, first.Str("container_id")}, {b, other.Str("container_id")}} {
		ids, err := c.containersOf(s.conn.PID())
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != 1 || ids[0] != s.id {
			t.Errorf("containers labelled with backend pid %d: %v, want [%s]", s.conn.PID(), ids, short(s.id))
		}
	}

	p := mustRow(t, a, "SELECT * FROM plcoordinator.ping('plc_test')")
	if p.Str("client_version") != "2.4.0" {
		t.Errorf("ping: client_version %q, want 2.4.0", p.Str("client_version"))
	}
	if p.Str("container_id") != first.Str("container_id") || !p.Bool("reused") {
		t.Errorf("ping in session a: %v, want container %s reused", p, short(first.Str("container_id")))
	}

	// Without hand-off the backend connects to the container itself.
	cs := c.conn(t)
	p = mustRow(t, cs, "SELECT * FROM plcoordinator.ping('plc_test', false)")
	if p.Str("client_version") != "2.4.0" {
		t.Errorf("ping without hand-off: client_version %q, want 2.4.0", p.Str("client_version"))
	}
	if p.Bool("reused") {
		t.Errorf("ping without hand-off in a new session: reused = true")
	}
	// A second ping on the same connection (the client accepts only one).
	p2 := mustRow(t, cs, "SELECT * FROM plcoordinator.ping('plc_test', false)")
	if p2.Str("container_id") != p.Str("container_id") || p2.Str("client_version") != "2.4.0" {
		t.Errorf("second ping without hand-off: %v, want container %s", p2, short(p.Str("container_id")))
	}
	acq := mustRow(t, c.conn(t), "SELECT * FROM plcoordinator.acquire('plc_test', false)")
	if acq.Bool("connected") {
		t.Errorf("acquire(handoff => false) returned connected = true")
	}
}

// TestLimit_MaxContainers: with max_container_number = 2 a third session
// waits acquire_timeout and gets 53400; a waiting request is served as
// soon as a holder ends.
func TestLimit_MaxContainers(t *testing.T) {
	track(t)
	c := newCluster(t, clusterOpts{gucs: []string{
		"plcoordinator.max_container_number = 2",
		"plcoordinator.acquire_timeout = 3000",
	}})
	a, b, third := c.conn(t), c.conn(t), c.conn(t)
	acquire(t, a, plcTestRuntime)
	acquire(t, b, plcTestRuntime)

	start := time.Now()
	e := queryErr(t, third, "SELECT * FROM plcoordinator.acquire('plc_test')")
	waited := time.Since(start)
	t.Logf("third session: %v after %s", e, waited.Round(time.Millisecond))
	if e.Code != "53400" {
		t.Errorf("SQLSTATE %s, want 53400: %v", e.Code, e)
	}
	if e.Hint == "" {
		t.Errorf("no hint with the limit error")
	}
	if waited < 2500*time.Millisecond || waited > 5*time.Second {
		t.Errorf("the third acquire failed after %s, want ≈3s (acquire_timeout)", waited)
	}

	// Now a waiting acquire is served when a holder session ends.
	type res struct {
		row Row
		err error
		d   time.Duration
	}
	done := make(chan res, 1)
	start = time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r, err := third.QueryRow(ctx, "SELECT * FROM plcoordinator.acquire('plc_test')")
		done <- res{r, err, time.Since(start)}
	}()
	eventually(t, 2*time.Second, func() error {
		rows, err := c.rowsErr(fmt.Sprintf("SELECT 1 FROM pg_stat_activity WHERE pid = %d AND state = 'active' AND wait_event_type = 'Extension'", third.PID()))
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return fmt.Errorf("session %d is not waiting on the coordinator", third.PID())
		}
		return nil
	})
	a.Close()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("the waiting acquire failed after %s: %v", r.d.Round(time.Millisecond), r.err)
		}
		t.Logf("the waiting acquire was served after %s", r.d.Round(time.Millisecond))
		if r.row.Bool("reused") {
			t.Errorf("the waiting session got reused = true")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the waiting acquire did not return within 20 s")
	}
	if n := c.row(t, "SELECT count(*) AS n FROM plcoordinator.containers").Int("n"); n > 2 {
		t.Errorf("%d containers with max_container_number = 2", n)
	}
}

// TestSession_TerminateBackendRemovesContainer: pg_terminate_backend of a
// holder removes its container within 2 s.
func TestSession_TerminateBackendRemovesContainer(t *testing.T) {
	track(t)
	c := newCluster(t, clusterOpts{})
	a := c.conn(t)
	id := acquire(t, a, plcTestRuntime).Str("container_id")
	start := time.Now()
	if !c.row(t, fmt.Sprintf("SELECT pg_terminate_backend(%d) AS ok", a.PID())).Bool("ok") {
		t.Fatal("pg_terminate_backend returned false")
	}
	eventually(t, 2*time.Second-time.Since(start), func() error {
		ok, err := containerExists(id)
		if err != nil {
			return err
		}
		if ok {
			return fmt.Errorf("container %s still exists", short(id))
		}
		return nil
	})
	t.Logf("container gone %s after pg_terminate_backend", time.Since(start).Round(time.Millisecond))
}

// crashRestart kills a process with SIGKILL while containers exist and
// checks that, within check_loop_interval (1 s) + 5 s of the server
// accepting connections again, none of the old containers remain.
func crashRestart(t *testing.T, victim func(c *cluster, a *PgConn) int) {
	c := newCluster(t, clusterOpts{gucs: []string{"plcoordinator.check_loop_interval = 1"}})
	a, b := c.conn(t), c.conn(t)
	ids := []string{acquire(t, a, plcTestRuntime).Str("container_id"), acquire(t, b, plcTestRuntime).Str("container_id")}
	mustRow(t, b, "SELECT * FROM plcoordinator.ping('plc_test')")
	pid := victim(c, a)
	before := c.reinitCount()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
	accepting := c.awaitCrashRestart(t, before)
	c.waitOldGone(t, accepting, 6*time.Second /* check_loop_interval + 5 s */, ids)
	// The coordinator is back and serves.
	c.waitReady(t, 15*time.Second)
	acquire(t, c.conn(t), plcTestRuntime)
	c.checkAfterScenario(t, 1, true)
}

// TestSession_KillBackendCrashRestart: kill -9 of a backend holding a
// container.
func TestSession_KillBackendCrashRestart(t *testing.T) {
	track(t)
	crashRestart(t, func(c *cluster, a *PgConn) int { return a.PID() })
}

// TestWorker_Kill9CrashRestart: kill -9 of the worker with live containers.
func TestWorker_Kill9CrashRestart(t *testing.T) {
	track(t)
	crashRestart(t, func(c *cluster, a *PgConn) int { return c.workerPID(t) })
}

// slowRuntime starts its client 5 s late.
var slowRuntime = runtimeSpec{id: "plc_slow", fault: "listen_late:5000"}

// TestSession_CancelDuringSlowStart: pg_cancel_backend during an acquire
// that waits on a slow container start leaves no container of the pid.
func TestSession_CancelDuringSlowStart(t *testing.T) {
	track(t)
	c := newCluster(t, clusterOpts{runtimes: []runtimeSpec{slowRuntime}})
	a := c.conn(t)
	pid := a.PID()
	errc := make(chan error, 1)
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		_, err := a.Query(ctx, "SELECT * FROM plcoordinator.acquire('plc_slow')")
		errc <- err
	}()
	// Cancel once the slow container exists.
	eventually(t, 10*time.Second, func() error {
		ids, err := c.containersOf(pid)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return fmt.Errorf("no container for pid %d yet", pid)
		}
		return nil
	})
	if !c.row(t, fmt.Sprintf("SELECT pg_cancel_backend(%d) AS ok", pid)).Bool("ok") {
		t.Fatal("pg_cancel_backend returned false")
	}
	cancelled := time.Now()
	var err error
	select {
	case err = <-errc:
	case <-time.After(30 * time.Second):
		t.Fatal("the cancelled acquire did not return within 30 s")
	}
	if sqlState(err) != "57014" {
		t.Fatalf("cancelled acquire: %v, want SQLSTATE 57014", err)
	}
	if d := time.Since(cancelled); d > 2*time.Second {
		t.Errorf("the acquire returned %s after the cancel", d)
	}
	t.Logf("acquire cancelled after %s", time.Since(start).Round(time.Millisecond))
	eventually(t, 3*time.Second-time.Since(cancelled), func() error {
		ids, err := c.containersOf(pid)
		if err != nil {
			return err
		}
		if len(ids) > 0 {
			return fmt.Errorf("containers of pid %d remain: %v", pid, ids)
		}
		return nil
	})
	// The session still works.
	r := acquire(t, a, plcTestRuntime)
	if r.Str("container_id") == "" {
		t.Errorf("no container after the cancel")
	}
}

// TestSession_StatementTimeoutDuringSlowStart: statement_timeout during a
// slow start behaves like a cancel.
func TestSession_StatementTimeoutDuringSlowStart(t *testing.T) {
	track(t)
	c := newCluster(t, clusterOpts{runtimes: []runtimeSpec{slowRuntime}})
	a := c.conn(t)
	pid := a.PID()
	mustExec(t, a, "SET statement_timeout = 500")
	start := time.Now()
	e := queryErr(t, a, "SELECT * FROM plcoordinator.acquire('plc_slow')")
	d := time.Since(start)
	if e.Code != "57014" {
		t.Fatalf("SQLSTATE %s, want 57014: %v", e.Code, e)
	}
	if d > 2*time.Second {
		t.Errorf("statement_timeout 500 ms fired after %s", d)
	}
	eventually(t, 3*time.Second, func() error {
		ids, err := c.containersOf(pid)
		if err != nil {
			return err
		}
		if len(ids) > 0 {
			return fmt.Errorf("containers of pid %d remain: %v", pid, ids)
		}
		return nil
	})
	mustExec(t, a, "RESET statement_timeout")
	acquire(t, a, plcTestRuntime)
}

// TestSession_ErrorCodes: each failure has its SQLSTATE.
func TestSession_ErrorCodes(t *testing.T) {
	track(t)
	c := newCluster(t, clusterOpts{
		// A backend waits for a restarting coordinator at most
		// acquire_timeout (up to 5 s); keep that shorter than the worker's
		// restart delay (1 s) so that not_ready can see the error.
		gucs: []string{"plcoordinator.acquire_timeout = 100"},
		runtimes: []runtimeSpec{
			{id: "plc_crash", fault: "crash_at_start"},
			{id: "plc_never", fault: "never_listen", coordinator: `start_timeout="2"`},
			{id: "plc_noimage", image: "plcoordinator-no-such-image:latest"},
			{id: "plc_roles", settings: `roles="plci_admins"`},
		}})
	a := c.conn(t)
	var checkOn func(t *testing.T, conn *PgConn, sql, want string) *PgError
	check := func(t *testing.T, sql, want string) *PgError {
		t.Helper()
		return checkOn(t, a, sql, want)
	}
	checkOn = func(t *testing.T, conn *PgConn, sql, want string) *PgError {
		t.Helper()
		start := time.Now()
		e := queryErr(t, conn, sql)
		t.Logf("%s → %v (%s)", sql, e, time.Since(start).Round(time.Millisecond))
		if e.Code != want {
			t.Errorf("SQLSTATE %s, want %s: %v", e.Code, want, e)
		}
		if e.Message == "" {
			t.Errorf("empty message")
		}
		return e
	}
	t.Run("unknown_runtime", func(t *testing.T) {
		check(t, "SELECT * FROM plcoordinator.acquire('plc_nope')", "42704")
	})
	t.Run("crash_at_start", func(t *testing.T) {
		e := check(t, "SELECT * FROM plcoordinator.acquire('plc_crash')", "38000")
		if !strings.Contains(e.Detail, "Exit code 3") {
			t.Errorf("detail %q lacks the exit code (3)", e.Detail)
		}
	})
	t.Run("never_listen", func(t *testing.T) {
		start := time.Now()
		check(t, "SELECT * FROM plcoordinator.acquire('plc_never')", "58000")
		if d := time.Since(start); d < 1500*time.Millisecond || d > 10*time.Second {
			t.Errorf("start timeout after %s, want ≈2s", d)
		}
	})
	t.Run("missing_image", func(t *testing.T) {
		check(t, "SELECT * FROM plcoordinator.acquire('plc_noimage')", "58030")
	})
	t.Run("permission_denied", func(t *testing.T) {
		mustExec(t, a, "CREATE ROLE plci_admins; CREATE ROLE plci_user LOGIN; CREATE ROLE plci_member LOGIN IN ROLE plci_admins")
		e := checkOn(t, c.connectAs(t, "plci_user"), "SELECT * FROM plcoordinator.acquire('plc_roles')", "42501")
		if !strings.Contains(e.Message, "plc_roles") {
			t.Errorf("message %q does not name the runtime", e.Message)
		}
		// A member of the runtime's role may use it.
		acquire(t, c.connectAs(t, "plci_member"), "plc_roles")
	})
	t.Run("no_container_left", func(t *testing.T) {
		eventually(t, 5*time.Second, func() error {
			ids, err := c.containersOf(a.PID())
			if err != nil {
				return err
			}
			if len(ids) > 0 {
				return fmt.Errorf("failed starts left containers: %v", ids)
			}
			return nil
		})
		// The session still works after all those errors.
		acquire(t, a, plcTestRuntime)
	})
	t.Run("not_ready", func(t *testing.T) {
		// While a terminated worker waits for its restart (bgw_restart_time
		// 1 s) the coordinator is not ready; the backend waits only
		// acquire_timeout (100 ms) for it.
		old := c.workerPID(t)
		if !c.row(t, fmt.Sprintf("SELECT pg_terminate_backend(%d) AS ok", old)).Bool("ok") {
			t.Fatal("pg_terminate_backend returned false")
		}
		eventually(t, 10*time.Second, func() error {
			st, err := c.rowErr("SELECT state FROM plcoordinator.status")
			if err != nil {
				return err
			}
			if st.Str("state") == "ready" {
				return fmt.Errorf("still ready")
			}
			return nil
		})
		e := checkOn(t, c.conn(t), "SELECT * FROM plcoordinator.acquire('plc_test')", "57P03")
		if e.Hint == "" {
			t.Errorf("no hint with the not-ready error")
		}
		c.waitReady(t, 15*time.Second)
	})
}

// TestSession_RequestersView: a session with a container shows in
// plcoordinator.requesters and disappears when it ends.
func TestSession_RequestersView(t *testing.T) {
	track(t)
	c := newCluster(t, clusterOpts{})
	a := c.conn(t)
	acquire(t, a, plcTestRuntime)
	q := fmt.Sprintf("SELECT * FROM plcoordinator.requesters WHERE pid = %d", a.PID())
	rows, err := c.rowsErr(q)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("requesters rows for pid %d: %v, want 1", a.PID(), rows)
	}
	if rows[0].Int("containers") != 1 {
		t.Errorf("containers = %d, want 1", rows[0].Int("containers"))
	}
	if rows[0].Str("last_request") != "ACQUIRE" {
		t.Errorf("last_request = %q, want ACQUIRE", rows[0].Str("last_request"))
	}
	if rows[0].IsNull("connected_at") {
		t.Errorf("connected_at is NULL")
	}
	a.Close()
	eventually(t, 5*time.Second, func() error {
		rows, err := c.rowsErr(q)
		if err != nil {
			return err
		}
		if len(rows) > 0 {
			return fmt.Errorf("pid %d still listed: %v", a.PID(), rows)
		}
		return nil
	})
}

// TestSession_RawSocketAbuse: garbage, huge lengths, truncated frames,
// wrong versions, foreign pids, floods and a foreign uid on the socket,
// next to 50 acquire/release_all cycles that must all succeed; the worker
// keeps its pid.
func TestSession_RawSocketAbuse(t *testing.T) {
	track(t)
	c := newCluster(t, clusterOpts{})
	w := c.workerPID(t)
	path := strings.TrimPrefix(c.status(t).Str("address"), "unix:")

	// The SQL loop.
	loop := c.conn(t)
	var wg sync.WaitGroup
	var loopErrs []string
	var cycles int
	var loopTook time.Duration
	stopLoop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		defer func() { loopTook = time.Since(start) }()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		// At least 50 cycles, and on until the helper is done, so that the
		// loop overlaps every abuse case.
		for i := 0; ; i++ {
			if i >= 50 {
				select {
				case <-stopLoop:
					return
				default:
				}
			}
			if _, err := loop.QueryRow(ctx, "SELECT * FROM plcoordinator.acquire('plc_test')"); err != nil {
				loopErrs = append(loopErrs, fmt.Sprintf("cycle %d acquire: %v", i, err))
			}
			if _, err := loop.QueryRow(ctx, "SELECT plcoordinator.release_all()"); err != nil {
				loopErrs = append(loopErrs, fmt.Sprintf("cycle %d release_all: %v", i, err))
			}
			cycles++
			if len(loopErrs) > 0 && i >= 50 {
				return
			}
		}
	}()

	// Root (uid 0) is not the database user: connect works (root passes
	// the directory permissions) but the server closes without WELCOME.
	wg.Add(1)
	var rootErr error
	go func() {
		defer wg.Done()
		rootErr = rootRejected(path)
	}()

	// The rest runs as postgres.
	cmd := exec.Command("runuser", "-u", pgOSUser, "--", abuseBin, "-socket", path, "-flood", "200")
	helperStart := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("abuse helper ran %s", time.Since(helperStart).Round(time.Millisecond))
	close(stopLoop)
	wg.Wait()
	if err != nil {
		t.Fatalf("abuse helper: %v\n%s", err, out)
	}

	seen := 0
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		var r struct {
			Case   string `json:"case"`
			OK     bool   `json:"ok"`
			Detail string `json:"detail"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Errorf("helper output %q: %v", sc.Text(), err)
			continue
		}
		seen++
		if r.OK {
			t.Logf("%-22s ok: %s", r.Case, r.Detail)
		} else {
			t.Errorf("%-22s FAILED: %s", r.Case, r.Detail)
		}
	}
	if seen != 11 {
		t.Errorf("the helper reported %d cases, want 11:\n%s", seen, out)
	}
	if rootErr != nil {
		t.Errorf("uid 0: %v", rootErr)
	}
	t.Logf("SQL loop: %d acquire/release_all cycles in %s", cycles, loopTook.Round(time.Millisecond))
	if cycles < 50 || len(loopErrs) > 0 {
		t.Errorf("SQL loop: %d cycles (want ≥ 50), errors: %v", cycles, loopErrs)
	}
	if got := c.workerPID(t); got != w {
		t.Errorf("worker pid %d, want %d (it restarted)", got, w)
	}
	if strings.Contains(c.logText(), crashRestartMsg) {
		t.Errorf("the cluster was crash-restarted")
	}
	log := c.logText()
	if !strings.Contains(log, "rejected a connection from uid 0") {
		t.Errorf("the rejected uid 0 connection is not in the server log")
	}
	// Bad clients are logged, but rate-limited.
	if n := strings.Count(log, "closed a connection from pid"); n > 20 {
		t.Errorf("%d log lines \"closed a connection from pid\": the complaints are not rate-limited", n)
	}
}

// rootRejected connects as root, sends a HELLO and expects the connection
// to be closed without a WELCOME (an ERROR Permission first is allowed).
func rootRejected(path string) error {
	conn, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return fmt.Errorf("connect: %v (root must be able to connect and be rejected by SO_PEERCRED)", err)
	}
	defer conn.Close()
	// HELLO from this process, version 1.
	hello := []byte{0, 0, 0, 0x18, 0, 0, 0, 1, 0x01, 0, 0, 0,
		0, 1, 0, 1}
	pid := uint32(syscall.Getpid())
	hello = append(hello, byte(pid>>24), byte(pid>>16), byte(pid>>8), byte(pid))
	hello = append(hello, 0, 0, 0, 0, 0, 0, 0, 1) // backend_start_us
	hello = append(hello, 0, 6, 'r', 'o', 'o', 't', '/', '1')
	_, _ = conn.Write(hello) // may fail if already closed
	_ = conn.SetReadDeadline(time.Now().Add(8 * time.Second))
	buf := make([]byte, 4096)
	var got []byte
	for {
		n, err := conn.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			var ne net.Error
			if ok := errors.As(err, &ne); ok && ne.Timeout() {
				return fmt.Errorf("the connection stayed open (received %d bytes)", len(got))
			}
			break
		}
	}
	if len(got) >= 12 && got[8] == 0x02 {
		return fmt.Errorf("root got a WELCOME")
	}
	if len(got) >= 12 && got[8] != 0x7F {
		return fmt.Errorf("root got a frame of type 0x%02x", got[8])
	}
	return nil
}
