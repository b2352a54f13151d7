//go:build integration

package integration

// Process-level tests of the coordinator worker (issue 2).

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const crashRestartMsg = "terminating any other active server processes"

// TestWorker_ReadyAndThreads: ready within 5 s of start; the published
// address is a listening socket in a 0700 directory owned by postgres; the
// postmaster and backends have one thread, the worker more.
func TestWorker_ReadyAndThreads(t *testing.T) {
	track(t)
	c := newCluster(t, clusterOpts{})
	if c.readyAfter > 5*time.Second {
		t.Errorf("coordinator ready %s after pg_ctl start, want < 5s", c.readyAfter)
	}
	t.Logf("ready %s after pg_ctl start", c.readyAfter.Round(time.Millisecond))

	st := c.status(t)
	if st.Str("state") != "ready" {
		t.Fatalf("state = %q, want ready", st.Str("state"))
	}
	addr := st.Str("address")
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		t.Fatalf("address %q is not unix:<path>", addr)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatalf("address %s: %v", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("%s is not a socket: %v", path, fi.Mode())
	}
	conn, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		t.Errorf("connect to %s: %v", path, err)
	} else {
		conn.Close()
	}
	dir := filepath.Dir(path)
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("socket directory %s has mode %o, want 0700", dir, di.Mode().Perm())
	}
	if uid := int(di.Sys().(*syscall.Stat_t).Uid); uid != pgUID {
		t.Errorf("socket directory %s is owned by uid %d, want postgres (%d)", dir, uid, pgUID)
	}

	pm := c.postmasterPID(t)
	if n := threads(t, pm); n != 1 {
		t.Errorf("postmaster (pid %d) has %d threads, want 1", pm, n)
	}
	w := c.workerPID(t)
	if n := threads(t, w); n <= 1 {
		t.Errorf("worker (pid %d) has %d threads, want > 1 (the Go runtime)", w, n)
	}
	sess := c.conn(t)
	// Use the coordinator from this backend too: it must stay single-threaded.
	acquire(t, sess, plcTestRuntime)
	if n := threads(t, sess.PID()); n != 1 {
		t.Errorf("backend (pid %d) has %d threads, want 1", sess.PID(), n)
	}
	var others []int
	for _, p := range childrenOf(pm) {
		if p != w && threads(t, p) != 1 {
			others = append(others, p)
		}
	}
	if len(others) > 0 {
		t.Errorf("postmaster children other than the worker with more than one thread: %v", others)
	}
}

// TestWorker_TerminateRestarts: pg_terminate_backend(worker) makes it clean
// up (its containers go), exit 1 and come back with a new pid, without a
// crash restart of the cluster.
func TestWorker_TerminateRestarts(t *testing.T) {
	track(t)
	c := newCluster(t, clusterOpts{})
	sess := c.conn(t)
	id := acquire(t, sess, plcTestRuntime).Str("container_id")
	old := c.workerPID(t)
	oldGen := c.status(t).Int("generation")

	r := c.row(t, fmt.Sprintf("SELECT pg_terminate_backend(%d) AS ok", old))
	if !r.Bool("ok") {
		t.Fatalf("pg_terminate_backend(%d) returned false", old)
	}
	eventually(t, 15*time.Second, func() error {
		st, err := c.rowErr("SELECT * FROM plcoordinator.status")
		if err != nil {
			return err
		}
		if st.Str("state") != "ready" || st.Int("pid") == int64(old) || st.IsNull("pid") {
			return fmt.Errorf("status %v", st)
		}
		return nil
	})
	if processAlive(old) {
		t.Errorf("old worker pid %d still runs", old)
	}
	if gen := c.status(t).Int("generation"); gen <= oldGen {
		t.Errorf("generation %d after the restart, want > %d", gen, oldGen)
	}
	waitGone(t, 10*time.Second, id)
	log := c.logText()
	want := fmt.Sprintf(`background worker "plcoordinator" (PID %d) exited with exit code 1`, old)
	if !strings.Contains(log, want) {
		t.Errorf("server log lacks %q", want)
	}
	if strings.Contains(log, crashRestartMsg) {
		t.Errorf("server log contains %q: the cluster was crash-restarted", crashRestartMsg)
	}
	// The old worker removed its container itself on SIGTERM; the new
	// worker's reconciler must not have had to.
	if strings.Contains(log, "removed orphaned container "+short(id)) {
		t.Errorf("container %s was removed by the next worker's reconciler, not by the terminated worker", short(id))
	}
	if n := c.row(t, "SELECT orphans_removed FROM plcoordinator.stats").Int("orphans_removed"); n != 0 {
		t.Errorf("the new worker removed %d orphaned container(s); the terminated worker should have removed its own", n)
	}
	// The new worker serves a new session.
	acquire(t, c.conn(t), plcTestRuntime)
}

// TestWorker_ReloadReachesWorker: pg_reload_conf() makes the worker read a
// new plcoordinator.config_file.
func TestWorker_ReloadReachesWorker(t *testing.T) {
	track(t)
	c := newCluster(t, clusterOpts{})
	other := filepath.Join(c.dir, "other.xml")
	c.writeRuntimeConfig(other, []runtimeSpec{{id: "plc_other"}})
	sess := c.conn(t)
	mustExec(t, sess, "ALTER SYSTEM SET plcoordinator.config_file = "+lit(other))
	mustExec(t, sess, "SELECT pg_reload_conf()")
	eventually(t, 10*time.Second, func() error {
		st, err := c.rowErr("SELECT config_file FROM plcoordinator.status")
		if err != nil {
			return err
		}
		if st.Str("config_file") != other {
			return fmt.Errorf("status.config_file = %q, want %q", st.Str("config_file"), other)
		}
		rows, err := c.rowsErr("SELECT runtime_id FROM plcoordinator.runtimes WHERE runtime_id = 'plc_other'")
		if err != nil {
			return err
		}
		if len(rows) != 1 {
			return errors.New("plcoordinator.runtimes does not list plc_other")
		}
		return nil
	})
	// And the new runtime works.
	acquire(t, c.conn(t), "plc_other")
}

// TestWorker_FastShutdown: pg_ctl stop -m fast with a live container takes
// < 2 s and removes the container.
func TestWorker_FastShutdown(t *testing.T) {
	track(t)
	c := newCluster(t, clusterOpts{})
	sess := c.conn(t)
	id := acquire(t, sess, plcTestRuntime).Str("container_id")
	w := c.workerPID(t)
	d, err := c.stop("fast")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fast shutdown took %s", d.Round(time.Millisecond))
	if d >= 2*time.Second {
		t.Errorf("fast shutdown took %s, want < 2s", d)
	}
	if ok, err := containerExists(id); err != nil || ok {
		t.Errorf("container %s exists after the shutdown (err %v)", short(id), err)
	}
	if processAlive(w) {
		t.Errorf("worker %d still runs after the shutdown", w)
	}
}

// TestWorker_DebugPanicRestarts: a Go panic ends the worker with exit code 1
// and it restarts alone.
func TestWorker_DebugPanicRestarts(t *testing.T) {
	track(t)
	c := newCluster(t, clusterOpts{gucs: []string{"plcoordinator.enable_test_hooks = on"}})
	sess := c.conn(t)
	id := acquire(t, sess, plcTestRuntime).Str("container_id")
	old := c.workerPID(t)
	mustExec(t, c.conn(t), "SELECT plcoordinator.debug_panic()")
	want := fmt.Sprintf(`background worker "plcoordinator" (PID %d) exited with exit code 1`, old)
	eventually(t, 15*time.Second, func() error {
		if !strings.Contains(c.logText(), want) {
			return fmt.Errorf("no %q in the log", want)
		}
		return nil
	})
	eventually(t, 15*time.Second, func() error {
		st, err := c.rowErr("SELECT * FROM plcoordinator.status")
		if err != nil {
			return err
		}
		if st.Str("state") != "ready" || st.IsNull("pid") || st.Int("pid") == int64(old) {
			return fmt.Errorf("status %v", st)
		}
		return nil
	})
	if strings.Contains(c.logText(), crashRestartMsg) {
		t.Errorf("server log contains %q: the cluster was crash-restarted", crashRestartMsg)
	}
	if !strings.Contains(c.logText(), "plcoordinator.debug_panic() was called") {
		t.Errorf("the panic is not in the server log")
	}
	// The container of the panicked worker does not survive it.
	waitGone(t, 10*time.Second, id)
	acquire(t, c.conn(t), plcTestRuntime)
}

// TestWorker_RequiresPreload: CREATE EXTENSION without
// shared_preload_libraries fails with 55000 and a hint.
func TestWorker_RequiresPreload(t *testing.T) {
	track(t)
	c := newCluster(t, clusterOpts{noPreload: true})
	e := queryErr(t, c.conn(t), "CREATE EXTENSION plcoordinator")
	if e.Code != "55000" {
		t.Errorf("SQLSTATE %s, want 55000: %v", e.Code, e)
	}
	if !strings.Contains(e.Message, "must be loaded via") || !strings.Contains(e.Message, "shared_preload_libraries") {
		t.Errorf("message %q lacks \"must be loaded via ... shared_preload_libraries\"", e.Message)
	}
	if !strings.Contains(e.Hint, "shared_preload_libraries") {
		t.Errorf("hint %q does not mention shared_preload_libraries", e.Hint)
	}
}

// TestWorker_DropDatabase: DROP DATABASE does not wait for the worker.
func TestWorker_DropDatabase(t *testing.T) {
	track(t)
	c := newCluster(t, clusterOpts{})
	sess := c.conn(t)
	start := time.Now()
	mustExec(t, sess, "SET statement_timeout = '20s'")
	mustExec(t, sess, "CREATE DATABASE plci_x")
	mustExec(t, sess, "DROP DATABASE plci_x")
	d := time.Since(start)
	t.Logf("CREATE + DROP DATABASE took %s", d.Round(time.Millisecond))
	if d > 5*time.Second {
		t.Errorf("CREATE + DROP DATABASE took %s, want < 5s", d)
	}
	if st := c.status(t); st.Str("state") != "ready" {
		t.Errorf("state %q after DROP DATABASE", st.Str("state"))
	}
}
