//go:build integration

package integration

// The fault suite (issue 8): whatever fails — a backend, the coordinator,
// the postmaster, the Docker engine, many sessions churning — no
// container, socket directory or slot leaks, and the cluster never
// crash-restarts because of plcoordinator. Each scenario ends with
// checkAfterScenario (the view, Docker and the socket directories agree,
// nothing beyond the expected containers exists, no crash restart unless
// the scenario killed a server process with -9). The external docker kill
// and the OOM kill are covered by TestMonitor_ContainersMatchDocker;
// pg_cancel_backend and statement_timeout during an acquire by
// TestSession_CancelDuringSlowStart and
// TestSession_StatementTimeoutDuringSlowStart; kill -9 of a backend or of
// the worker holding live containers by crashRestart (session_test.go).

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// lateRuntime listens 3 s after start: its starts stay in flight long
// enough to kill something meanwhile.
var lateRuntime = runtimeSpec{id: "plc_late", fault: "listen_late:3000"}

// startingRows counts the view's rows of a runtime in state starting.
func (c *cluster) startingRows(runtime string) (int, error) {
	r, err := c.rowErr(fmt.Sprintf("SELECT count(*) AS n FROM plcoordinator.containers WHERE runtime_id = %s AND state = 'starting'", lit(runtime)))
	if err != nil {
		return 0, err
	}
	return int(r.Int("n")), nil
}

// asyncQuery runs sql on conn in a goroutine; the channel gets its error.
func asyncQuery(conn *PgConn, sql string, timeout time.Duration) <-chan error {
	ch := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_, err := conn.Query(ctx, sql)
		ch <- err
	}()
	return ch
}

// killedSessionError checks the error a session got when the server
// crash-restarted under it: PostgreSQL's 57P02 ("terminating connection
// because of crash of another server process"), plcoordinator's own
// connection error when the backend noticed the dead coordinator first,
// or a dropped connection.
func killedSessionError(t *testing.T, who string, err error) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s: the query succeeded across the crash restart", who)
	case sqlState(err) == "57P02" || sqlState(err) == "57P01":
		t.Logf("%s: PostgreSQL ended the session: %v", who, err)
	case (sqlState(err) == "08006" || sqlState(err) == "57P03") && strings.Contains(err.Error(), "plcoordinator"):
		// The backend saw the coordinator go before the postmaster's
		// SIGQUIT reached it.
		t.Logf("%s: plcoordinator's error: %v", who, err)
	case sqlState(err) != "":
		t.Errorf("%s: %v, want 57P02, a plcoordinator connection error (08006, 57P03) or a closed connection", who, err)
	default:
		t.Logf("%s: connection dropped: %v", who, err)
	}
}

// TestFault_KillBackendDuringStartAndIdle: kill -9 of a backend whose
// container is still starting, then of a backend whose container is idle.
// Each makes PostgreSQL restart everything; the old containers and their
// directories are gone within check_loop_interval + 5 s of the server
// accepting connections again.
func TestFault_KillBackendDuringStartAndIdle(t *testing.T) {
	track(t)
	c := newCluster(t, clusterOpts{gucs: []string{"plcoordinator.check_loop_interval = 1"},
		runtimes: []runtimeSpec{lateRuntime}})
	const limit = 6 * time.Second // check_loop_interval + 5 s

	// While its container starts.
	a := c.conn(t)
	errc := asyncQuery(a, "SELECT * FROM plcoordinator.acquire('plc_late')", time.Minute)
	eventually(t, 10*time.Second, func() error {
		ids, err := c.containersOf(a.PID())
		if err != nil {
			return err
		}
		n, err := c.startingRows("plc_late")
		if err != nil {
			return err
		}
		if len(ids) == 0 || n != 1 {
			return fmt.Errorf("pid %d: %d containers in Docker, %d starting in the view", a.PID(), len(ids), n)
		}
		return nil
	})
	old, err := c.containers()
	if err != nil {
		t.Fatal(err)
	}
	before := c.reinitCount()
	if err := syscall.Kill(a.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err == nil {
		t.Errorf("the killed backend's acquire succeeded")
	}
	accepting := c.awaitCrashRestart(t, before)
	c.waitOldGone(t, accepting, limit, old)
	c.waitReady(t, 15*time.Second)
	c.checkAfterScenario(t, 0, true)

	// While its container is idle.
	b := c.conn(t)
	id := acquire(t, b, plcTestRuntime).Str("container_id")
	mustExec(t, b, "SELECT plcoordinator.release('plc_test')")
	if st := rowOf(c.containerRows(t), id); st == nil || st.Str("state") != "idle" {
		t.Fatalf("container %s: row %v, want idle", short(id), st)
	}
	before = c.reinitCount()
	if err := syscall.Kill(b.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	accepting = c.awaitCrashRestart(t, before)
	c.waitOldGone(t, accepting, limit, []string{id})
	c.waitReady(t, 15*time.Second)

	// The slow runtime works again.
	acquire(t, c.conn(t), "plc_late")
	c.checkAfterScenario(t, 1, true)
}

// TestFault_KillCoordinatorDuringStarts: kill -9 of the worker while two
// sessions hold containers (one in use, one idle) and four sessions wait
// for slow starts. PostgreSQL restarts everything: the waiting sessions
// get PostgreSQL's error at once, new sessions acquire again, and within
// check_loop_interval + 5 s nothing of the old coordinator is left: its
// containers (started or still being created) and their directories.
func TestFault_KillCoordinatorDuringStarts(t *testing.T) {
	track(t)
	c := newCluster(t, clusterOpts{gucs: []string{"plcoordinator.check_loop_interval = 1"},
		runtimes: []runtimeSpec{lateRuntime}})
	l1, l2 := c.conn(t), c.conn(t)
	acquire(t, l1, plcTestRuntime)
	acquire(t, l2, plcTestRuntime)
	mustExec(t, l2, "SELECT plcoordinator.release('plc_test')")

	const starters = 4
	errcs := make([]<-chan error, starters)
	for i := range errcs {
		errcs[i] = asyncQuery(c.conn(t), "SELECT * FROM plcoordinator.acquire('plc_late')", time.Minute)
	}
	eventually(t, 10*time.Second, func() error {
		n, err := c.startingRows("plc_late")
		if err != nil {
			return err
		}
		ids, err := dockerIDs("label=plcoordinator.instance="+c.instance, "label=plcoordinator.runtime=plc_late")
		if err != nil {
			return err
		}
		if n != starters || len(ids) < 2 {
			return fmt.Errorf("%d plc_late containers starting in the view, %d in Docker", n, len(ids))
		}
		return nil
	})
	old, err := c.containers()
	if err != nil {
		t.Fatal(err)
	}
	w := c.workerPID(t)
	before := c.reinitCount()
	killed := time.Now()
	if err := syscall.Kill(w, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i, ch := range errcs {
		select {
		case err := <-ch:
			killedSessionError(t, fmt.Sprintf("starter %d (after %s)", i, time.Since(killed).Round(time.Millisecond)), err)
		case <-time.After(30 * time.Second):
			t.Fatalf("starter %d still waits 30 s after the worker was killed", i)
		}
	}
	accepting := c.awaitCrashRestart(t, before)
	c.waitOldGone(t, accepting, 6*time.Second, old)
	// The old sessions are gone with the restart; new ones acquire again,
	// right away (acquire waits for a restarting coordinator).
	var wg sync.WaitGroup
	errs := make([]error, starters)
	for i := range errs {
		conn := c.conn(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rt := "plc_late"
			if i%2 == 1 {
				rt = plcTestRuntime
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, errs[i] = conn.QueryRow(ctx, "SELECT * FROM plcoordinator.acquire("+lit(rt)+")")
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Errorf("acquires after the restart: %v", err)
	}
	if n := c.row(t, "SELECT orphans_removed FROM plcoordinator.stats").Int("orphans_removed"); n == 0 {
		t.Errorf("stats.orphans_removed = 0 after the new worker removed the old containers")
	}
	c.checkAfterScenario(t, starters, true)
}

// TestFault_ImmediateShutdownThenStart: pg_ctl stop -m immediate with live
// containers ends the worker at once (SIGQUIT); after pg_ctl start the
// new worker's reconciler removes the old containers and directories
// within check_loop_interval + 5 s. No crash restart is logged.
func TestFault_ImmediateShutdownThenStart(t *testing.T) {
	track(t)
	c := newCluster(t, clusterOpts{gucs: []string{"plcoordinator.check_loop_interval = 1"}})
	a, b := c.conn(t), c.conn(t)
	ids := []string{acquire(t, a, plcTestRuntime).Str("container_id"), acquire(t, b, plcTestRuntime).Str("container_id")}
	mustExec(t, b, "SELECT plcoordinator.release('plc_test')")
	if d, err := c.stop("immediate"); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("immediate shutdown took %s", d.Round(time.Millisecond))
	}
	left, _ := c.containers()
	dirs, _ := c.socketDirs()
	t.Logf("after the immediate shutdown: %d container(s) and %d socket director(ies) remain", len(left), len(dirs))

	accepting := c.startAgain(t)
	c.waitOldGone(t, accepting, 6*time.Second, ids)
	c.waitReady(t, 15*time.Second)
	id := acquire(t, c.conn(t), plcTestRuntime).Str("container_id")
	for _, o := range ids {
		if id == o {
			t.Errorf("a new session got the old container %s", short(o))
		}
	}
	c.checkAfterScenario(t, 1, false)
}

// TestFault_DockerUnreachable: the Docker engine is cut off (a proxy in
// front of it closes): the status view says so within a sweep, a new
// session's acquire fails fast with 58030 and a message naming the
// engine, a session's own idle container still serves it, the worker
// stays up; when the engine is back everything recovers, and the
// container of a session that ended during the cut (its removal failed)
// is removed by the reconciler.
func TestFault_DockerUnreachable(t *testing.T) {
	track(t)
	px := newDockerProxy(t)
	const sweep = 2 * time.Second
	c := newCluster(t, clusterOpts{gucs: []string{
		"plcoordinator.docker_host = " + lit(px.Host()),
		"plcoordinator.check_loop_interval = 2",
	}})
	px.restoreAtEnd(t)
	w := c.workerPID(t)
	a := c.conn(t)
	idA := acquire(t, a, plcTestRuntime).Str("container_id")
	mustExec(t, a, "SELECT plcoordinator.release('plc_test')")
	// A session that ends while the engine is cut off: its container
	// cannot be removed then.
	gone, err := c.connectErr()
	if err != nil {
		t.Fatal(err)
	}
	idGone := acquire(t, gone, plcTestRuntime).Str("container_id")
	if !c.status(t).Bool("docker_reachable") {
		t.Fatalf("docker_reachable is false before the cut")
	}

	px.Cut()
	cut := time.Now()
	eventually(t, sweep+3*time.Second, func() error {
		st, err := c.rowErr("SELECT docker_reachable FROM plcoordinator.status")
		if err != nil {
			return err
		}
		if st.Bool("docker_reachable") {
			return errors.New("docker_reachable is still true")
		}
		return nil
	})
	t.Logf("docker_reachable false %s after the cut", time.Since(cut).Round(time.Millisecond))

	gone.Close()
	b := c.conn(t)
	start := time.Now()
	e := queryErr(t, b, "SELECT * FROM plcoordinator.acquire('plc_test')")
	took := time.Since(start)
	t.Logf("acquire while cut off: %v (%s)", e, took.Round(time.Millisecond))
	if e.Code != "58030" {
		t.Errorf("SQLSTATE %s, want 58030", e.Code)
	}
	if took > 5*time.Second {
		t.Errorf("the acquire failed after %s, want < 5 s", took)
	}
	if !strings.Contains(e.Message+e.Detail+e.Hint, px.sock) {
		t.Errorf("the error does not name the engine %s: %v", px.Host(), e)
	}
	// The session's own container needs no Docker call.
	if r := acquire(t, a, plcTestRuntime); r.Str("container_id") != idA || !r.Bool("reused") {
		t.Errorf("warm acquire while cut off: %v, want %s reused", r, short(idA))
	}
	if got := c.workerPID(t); got != w {
		t.Errorf("worker pid %d while the engine is cut off, want %d", got, w)
	}
	if st := c.status(t); st.Str("state") != "ready" {
		t.Errorf("state %q while the engine is cut off", st.Str("state"))
	}
	// The failed start leaves no socket directory. The container of the
	// session that ended during the cut could not be removed: it still
	// exists, so it keeps its row (stopping), its slot and its directory.
	eventually(t, 5*time.Second, func() error {
		dirs, err := c.socketDirs()
		if err != nil {
			return err
		}
		if len(dirs) != 2 {
			return fmt.Errorf("socket directories %v, want %s's and %s's", dirs, short(idA), short(idGone))
		}
		r, err := c.rowErr(fmt.Sprintf("SELECT state FROM plcoordinator.containers WHERE container_id = %s", lit(idGone)))
		if err != nil {
			return err
		}
		if r.Str("state") != "stopping" {
			return fmt.Errorf("the ended session's container is %q in the view, want stopping", r.Str("state"))
		}
		return nil
	})
	if ok, _ := containerExists(idGone); !ok {
		t.Errorf("container %s of the session that ended during the cut is gone, but Docker was unreachable", short(idGone))
	}

	px.Start(t)
	back := time.Now()
	eventually(t, sweep+3*time.Second, func() error {
		st, err := c.rowErr("SELECT docker_reachable FROM plcoordinator.status")
		if err != nil {
			return err
		}
		if !st.Bool("docker_reachable") {
			return errors.New("docker_reachable is still false")
		}
		return nil
	})
	t.Logf("docker_reachable true %s after the engine came back", time.Since(back).Round(time.Millisecond))
	idB := acquire(t, b, plcTestRuntime).Str("container_id")
	if idB == idA {
		t.Errorf("session b got session a's container")
	}
	if got := c.workerPID(t); got != w {
		t.Errorf("worker pid %d after the engine came back, want %d", got, w)
	}
	if n := c.row(t, "SELECT docker_errors FROM plcoordinator.stats").Int("docker_errors"); n == 0 {
		t.Errorf("stats.docker_errors = 0 after a failed start")
	}
	// The container of the session that ended during the cut is removed
	// at the first sweep after the engine is back, and its directory with it.
	waitGone(t, 2*sweep+5*time.Second, idGone)
	t.Logf("container %s of the session that ended during the cut removed %s after the engine came back",
		short(idGone), time.Since(back).Round(time.Millisecond))
	// An external kill shows up in the view again.
	if out, err := exec.Command("docker", "kill", idB).CombinedOutput(); err != nil {
		t.Fatalf("docker kill: %v\n%s", err, out)
	}
	eventually(t, sweep+12*time.Second, func() error {
		r, err := c.rowErr(fmt.Sprintf("SELECT state FROM plcoordinator.containers WHERE container_id = %s", lit(idB)))
		if err != nil {
			return err
		}
		if r.Str("state") != "exited" {
			return fmt.Errorf("state %q", r.Str("state"))
		}
		return nil
	})
	c.checkAfterScenario(t, 2, false)
}

// TestFault_Churn: 2 000 cycles from 16 parallel workers; each cycle
// connects, acquires, and either calls release_all or just disconnects.
// Afterwards nothing is left, the worker kept its pid, and its VmRSS grew
// by less than 64 MB.
func TestFault_Churn(t *testing.T) {
	track(t)
	const (
		cycles  = 2000
		workers = 16
	)
	c := newCluster(t, clusterOpts{gucs: []string{
		"plcoordinator.max_container_number = 48",
		"plcoordinator.max_parallel_creates = 8",
	}})
	w := c.workerPID(t)
	mustExec(t, c.conn(t), "SELECT plcoordinator.stats_reset()")
	rss0 := vmRSSkB(t, w)

	var next, failed atomic.Int64
	var errMu sync.Mutex
	var firstErrs []string
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= cycles {
					return
				}
				err := func() error {
					conn, err := c.connectErr()
					if err != nil {
						return fmt.Errorf("connect: %w", err)
					}
					defer conn.Close()
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					if _, err := conn.QueryRow(ctx, "SELECT * FROM plcoordinator.acquire('plc_test')"); err != nil {
						return fmt.Errorf("acquire: %w", err)
					}
					if i%2 == 0 {
						if _, err := conn.QueryRow(ctx, "SELECT plcoordinator.release_all()"); err != nil {
							return fmt.Errorf("release_all: %w", err)
						}
					}
					return nil
				}()
				if err != nil {
					failed.Add(1)
					errMu.Lock()
					if len(firstErrs) < 5 {
						firstErrs = append(firstErrs, fmt.Sprintf("cycle %d: %v", i, err))
					}
					errMu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	t.Logf("%d cycles from %d workers in %s (%.1f cycles/s), %d failed", cycles, workers, took.Round(time.Millisecond),
		float64(cycles)/took.Seconds(), failed.Load())
	if failed.Load() > 0 {
		t.Errorf("%d cycle(s) failed, first: %v", failed.Load(), firstErrs)
	}

	// Every session ended: nothing may remain.
	drained := time.Now()
	eventually(t, 30*time.Second, func() error {
		ids, err := c.containers()
		if err != nil {
			return err
		}
		dirs, err := c.socketDirs()
		if err != nil {
			return err
		}
		rows, err := c.rowsErr("SELECT 1 FROM plcoordinator.containers")
		if err != nil {
			return err
		}
		if len(ids)+len(dirs)+len(rows) > 0 {
			return fmt.Errorf("%d containers, %d socket directories, %d view rows remain", len(ids), len(dirs), len(rows))
		}
		return nil
	})
	t.Logf("everything removed %s after the last cycle", time.Since(drained).Round(time.Millisecond))
	rss1 := vmRSSkB(t, w)
	t.Logf("worker VmRSS: %d kB at start, %d kB at the end (%+d kB)", rss0, rss1, rss1-rss0)
	if rss1 >= rss0+64<<10 {
		t.Errorf("worker VmRSS grew from %d kB to %d kB (≥ 64 MB)", rss0, rss1)
	}
	if got := c.workerPID(t); got != w {
		t.Errorf("worker pid %d, want %d", got, w)
	}
	st := c.row(t, "SELECT * FROM plcoordinator.stats")
	t.Logf("stats: %v", st)
	if st.Int("cold_starts") != cycles || st.Int("start_failures") != 0 || st.Int("orphans_removed") != 0 {
		t.Errorf("stats: cold_starts %d (want %d), start_failures %d, orphans_removed %d (want 0)",
			st.Int("cold_starts"), cycles, st.Int("start_failures"), st.Int("orphans_removed"))
	}
	if took > 4*time.Minute {
		t.Errorf("the churn took %s, want < 4 min", took.Round(time.Second))
	}
	c.checkAfterScenario(t, 0, false)
}
