//go:build integration

package integration

// Monitoring (issue 6): plcoordinator.containers against docker inspect,
// views that never call Docker, exact stats, visibility by role.

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestMonitor_ContainersMatchDocker: plcoordinator.containers agrees with
// docker inspect (id, labels, state, OOMKilled, exit code) after normal
// use (in use, idle, prewarmed, taken from the pool), after an OOM kill
// right after the handshake, and after an external docker kill of an idle
// container; after each death the session's next acquire gets a fresh
// container. (Also issue 8's "container killed from outside" and "killed
// by OOM" scenarios.)
func TestMonitor_ContainersMatchDocker(t *testing.T) {
	track(t)
	c := newCluster(t, clusterOpts{
		gucs: []string{"plcoordinator.check_loop_interval = 1"},
		runtimes: []runtimeSpec{
			{id: "plc_oom", memoryMB: 64, fault: "oom_after_ping"},
			{id: "plc_pre", coordinator: `prewarm="1"`},
		}})
	oid := c.row(t, "SELECT oid::text AS oid FROM pg_database WHERE datname = 'postgres'").Str("oid")

	// Normal use.
	a, b, p := c.conn(t), c.conn(t), c.conn(t)
	idA := acquire(t, a, plcTestRuntime).Str("container_id")
	idB := acquire(t, b, plcTestRuntime).Str("container_id")
	if n := mustRow(t, b, "SELECT plcoordinator.release('plc_test') AS n").Int("n"); n != 1 {
		t.Errorf("release returned %d, want 1", n)
	}
	prewarmed := func() string {
		t.Helper()
		var id string
		eventually(t, 15*time.Second, func() error {
			rows, err := c.rowsErr("SELECT container_id FROM plcoordinator.containers WHERE runtime_id = 'plc_pre' AND state = 'prewarmed'")
			if err != nil {
				return err
			}
			if len(rows) != 1 {
				return fmt.Errorf("%d prewarmed plc_pre containers, want 1", len(rows))
			}
			id = rows[0].Str("container_id")
			return nil
		})
		return id
	}
	pool := prewarmed()
	rp := acquire(t, p, "plc_pre")
	idP := rp.Str("container_id")
	if !rp.Bool("prewarmed") || idP != pool {
		t.Errorf("acquire of plc_pre: %v, want the prewarmed container %s", rp, short(pool))
	}
	pool2 := prewarmed()
	if pool2 == pool {
		t.Fatalf("the pool was not refilled")
	}

	res := c.checkConsistent(t, 10*time.Second)
	for _, x := range []struct {
		who   string
		id    string
		pid   int
		state string
	}{{"a", idA, a.PID(), "in use"}, {"b", idB, b.PID(), "idle"}, {"p", idP, p.PID(), "in use"}, {"pool", pool2, 0, "prewarmed"}} {
		r := rowOf(res.rows, x.id)
		if r == nil {
			t.Errorf("%s: container %s is not in the view", x.who, short(x.id))
			continue
		}
		d := res.docker[x.id]
		if r.Str("state") != x.state {
			t.Errorf("%s: state %q, want %q", x.who, r.Str("state"), x.state)
		}
		if !d.State.Running || d.State.Status != "running" {
			t.Errorf("%s: Docker state %s, want running", x.who, d.State.Status)
		}
		if r.IsNull("ready_ms") || r.IsNull("created_at") || !strings.HasSuffix(r.Str("address"), "/unix.domain.socket.shared.file") {
			t.Errorf("%s: incomplete row %v", x.who, r)
		}
		if x.pid == 0 {
			if !r.IsNull("backend_pid") || !r.IsNull("owner") || r.Int("uses") != 0 {
				t.Errorf("%s: prewarmed row %v, want no backend_pid, no owner, 0 uses", x.who, r)
			}
			continue
		}
		if r.Int("backend_pid") != int64(x.pid) || r.Str("owner") != pgOSUser || r.Str("database") != "postgres" || r.Int("uses") != 1 ||
			r.IsNull("last_used") {
			t.Errorf("%s: row %v, want backend_pid %d, owner and database postgres, 1 use", x.who, r, x.pid)
		}
		if x.who == "p" {
			continue // a pool container keeps the pool's labels (note logged by checkConsistent)
		}
		l := d.Config.Labels
		for k, v := range map[string]string{"owner": pgOSUser, "dbid": "-1", "segindex": "-1", "databaseid": oid,
			labelInstance: c.instance, labelBackendPID: fmt.Sprint(x.pid), labelRuntime: plcTestRuntime} {
			if l[k] != v {
				t.Errorf("%s: label %s = %q, want %q", x.who, k, l[k], v)
			}
		}
	}
	// The sweep (every second) fills in memory use without the view asking Docker.
	eventually(t, 10*time.Second, func() error {
		r, err := c.rowErr(fmt.Sprintf("SELECT memory_kb FROM plcoordinator.containers WHERE container_id = %s", lit(idA)))
		if err != nil {
			return err
		}
		if r.IsNull("memory_kb") || r.Int("memory_kb") <= 0 {
			return fmt.Errorf("memory_kb of %s is %q", short(idA), r.Str("memory_kb"))
		}
		return nil
	})

	// An OOM kill right after the handshake.
	o := c.conn(t)
	ro := acquire(t, o, "plc_oom")
	idO := ro.Str("container_id")
	if !ro.Bool("connected") {
		t.Errorf("plc_oom: acquire did not hand over a connected socket: %v", ro)
	}
	waitDied := func(id string, oom bool) {
		t.Helper()
		eventually(t, 15*time.Second, func() error {
			r, err := c.rowErr(fmt.Sprintf("SELECT state, oom_killed, exit_code FROM plcoordinator.containers WHERE container_id = %s", lit(id)))
			if err != nil {
				return err
			}
			if r.Str("state") != "exited" || r.Bool("oom_killed") != oom || r.Str("exit_code") != "137" {
				return fmt.Errorf("row of %s: %v, want exited, oom_killed %t, exit_code 137", short(id), r, oom)
			}
			return nil
		})
		d := inspectOne(t, id)
		if d.State.Status != "exited" || d.State.ExitCode != 137 || d.State.OOMKilled != oom {
			t.Errorf("docker inspect %s: %s, exit %d, OOMKilled %t; want exited, 137, %t", short(id), d.State.Status,
				d.State.ExitCode, d.State.OOMKilled, oom)
		}
		s, err := c.rowErr(fmt.Sprintf(`SELECT "UP_TIME" AS up FROM plcoordinator.containers_summary() WHERE "CONTAINER_ID" = %s`, lit(id)))
		if err != nil {
			t.Errorf("containers_summary: %v", err)
		} else if s.Str("up") != "Exited (137)" {
			t.Errorf("containers_summary UP_TIME of %s = %q, want \"Exited (137)\"", short(id), s.Str("up"))
		}
		c.checkConsistent(t, 5*time.Second)
	}
	waitDied(idO, true)
	ro2 := acquire(t, o, "plc_oom")
	if ro2.Str("container_id") == idO || ro2.Bool("reused") {
		t.Errorf("acquire after the OOM kill: %v, want a fresh container (not %s)", ro2, short(idO))
	}
	waitGone(t, 10*time.Second, idO)
	mustRow(t, o, "SELECT plcoordinator.release_all() AS n") // the new one goes the same way

	// docker kill of the idle container of b (issue 8: killed from outside).
	if out, err := exec.Command("docker", "kill", idB).CombinedOutput(); err != nil {
		t.Fatalf("docker kill: %v\n%s", err, out)
	}
	waitDied(idB, false)
	rb := acquire(t, b, plcTestRuntime)
	if rb.Str("container_id") == idB || rb.Bool("reused") {
		t.Errorf("acquire after docker kill: %v, want a fresh container (not %s)", rb, short(idB))
	}
	waitGone(t, 10*time.Second, idB)

	// a, b, p and the pool; nothing else.
	c.checkAfterScenario(t, 4, false)
}

// viewQueries read every monitoring view.
var viewQueries = []string{
	"SELECT * FROM plcoordinator.status",
	"SELECT * FROM plcoordinator.containers",
	"SELECT * FROM plcoordinator.requesters",
	"SELECT * FROM plcoordinator.runtimes",
	"SELECT * FROM plcoordinator.stats",
	"SELECT * FROM plcoordinator.containers_summary()",
}

// TestMonitor_ViewsMakeNoDockerCalls: with the sweep off, reading every
// view 1 000 times while 16 sessions acquire and release (warm) makes no
// Docker API call (counted by a proxy in front of the engine), and neither
// the views nor the acquires stall; the worker keeps its pid.
func TestMonitor_ViewsMakeNoDockerCalls(t *testing.T) {
	track(t)
	px := newDockerProxy(t)
	c := newCluster(t, clusterOpts{gucs: []string{
		"plcoordinator.docker_host = " + lit(px.Host()),
		"plcoordinator.check_loop_interval = 3600",
	}})
	if px.Requests() == 0 {
		t.Fatalf("the coordinator made no request through the proxy %s", px.Host())
	}
	w := c.workerPID(t)

	const sessions = 16
	conns := make([]*PgConn, sessions)
	ids := make([]string, sessions)
	for i := range conns {
		conns[i] = c.conn(t)
	}
	var wg sync.WaitGroup
	errs := make([]error, sessions)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			r, err := conns[i].QueryRow(ctx, "SELECT * FROM plcoordinator.acquire('plc_test')")
			if err == nil {
				ids[i] = r.Str("container_id")
				_, err = conns[i].QueryRow(ctx, "SELECT plcoordinator.release('plc_test')")
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("cold acquires: %v", err)
	}
	cold := px.Requests()
	// Whatever the starts left in flight settles first.
	eventually(t, 10*time.Second, func() error {
		n := px.Requests()
		time.Sleep(time.Second)
		if m := px.Requests(); m != n {
			return fmt.Errorf("the request count still moves (%d → %d)", n, m)
		}
		return nil
	})
	before, beforePaths := px.Requests(), px.ByPath()
	t.Logf("Docker requests: %d up to the 16 cold starts, %d before the measured phase", cold, before)

	stop := make(chan struct{})
	var cycles atomic.Int64
	var maxAcquire atomic.Int64 // µs
	loopErrs := make([]error, sessions)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			for {
				select {
				case <-stop:
					return
				default:
				}
				t0 := time.Now()
				r, err := conns[i].QueryRow(ctx, "SELECT * FROM plcoordinator.acquire('plc_test')")
				if err != nil {
					loopErrs[i] = fmt.Errorf("session %d acquire: %w", i, err)
					return
				}
				us := time.Since(t0).Microseconds()
				for {
					m := maxAcquire.Load()
					if us <= m || maxAcquire.CompareAndSwap(m, us) {
						break
					}
				}
				if r.Str("container_id") != ids[i] || !r.Bool("reused") {
					loopErrs[i] = fmt.Errorf("session %d: warm acquire returned %v, want container %s reused", i, r, short(ids[i]))
					return
				}
				if _, err := conns[i].QueryRow(ctx, "SELECT plcoordinator.release('plc_test')"); err != nil {
					loopErrs[i] = fmt.Errorf("session %d release: %w", i, err)
					return
				}
				cycles.Add(1)
			}
		}()
	}

	reader := c.conn(t)
	const reads = 1000
	lat := make([]time.Duration, 0, reads)
	var readErr error
	phase := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	for i := 0; i < reads && readErr == nil; i++ {
		q := viewQueries[i%len(viewQueries)]
		t0 := time.Now()
		rows, err := reader.Query(ctx, q)
		lat = append(lat, time.Since(t0))
		switch {
		case err != nil:
			readErr = fmt.Errorf("read %d (%s): %w", i, q, err)
		case strings.Contains(q, "containers") && len(rows) != sessions:
			readErr = fmt.Errorf("read %d (%s): %d rows, want %d", i, q, len(rows), sessions)
		case strings.Contains(q, "status") && rows[0].Str("state") != "ready":
			readErr = fmt.Errorf("read %d: status %v", i, rows[0])
		}
	}
	cancel()
	took := time.Since(phase)
	close(stop)
	wg.Wait()
	after, afterPaths := px.Requests(), px.ByPath()

	if readErr != nil {
		t.Error(readErr)
	}
	if err := errors.Join(loopErrs...); err != nil {
		t.Error(err)
	}
	slices.Sort(lat)
	p99 := lat[len(lat)*99/100]
	t.Logf("%d view reads in %s (p50 %s, p99 %s, max %s) next to %d warm acquire/release cycles (slowest acquire %s)",
		len(lat), took.Round(time.Millisecond), lat[len(lat)/2].Round(time.Microsecond), p99.Round(time.Microsecond),
		lat[len(lat)-1].Round(time.Microsecond), cycles.Load(), time.Duration(maxAcquire.Load())*time.Microsecond)
	if after != before {
		t.Errorf("%d Docker API request(s) during the measured phase: %s", after-before, diffByPath(beforePaths, afterPaths))
	}
	if cycles.Load() < sessions {
		t.Errorf("only %d acquire/release cycles ran next to the reads", cycles.Load())
	}
	if max := lat[len(lat)-1]; max > 2*time.Second {
		t.Errorf("a view read took %s: the views stalled", max)
	}
	if m := time.Duration(maxAcquire.Load()) * time.Microsecond; m > 2*time.Second {
		t.Errorf("a warm acquire took %s while the views were read", m)
	}
	if got := c.workerPID(t); got != w {
		t.Errorf("worker pid %d, want %d", got, w)
	}
	c.checkAfterScenario(t, sessions, false)
}

// TestMonitor_StatsMatch: after stats_reset() the counters are exactly what
// the test did: 3 cold starts, 6 warm hits, 7 releases (6 release + one
// release_all of one container), 9 requests, nothing else; then one start
// failure.
func TestMonitor_StatsMatch(t *testing.T) {
	track(t)
	c := newCluster(t, clusterOpts{runtimes: []runtimeSpec{{id: "plc_crash", fault: "crash_at_start"}}})
	admin := c.conn(t)
	mustExec(t, admin, "SELECT plcoordinator.stats_reset()")
	zero := mustRow(t, admin, "SELECT * FROM plcoordinator.stats")
	for _, k := range []string{"requests", "warm_hits", "prewarm_hits", "cold_starts", "start_failures", "docker_errors",
		"releases", "sessions_reaped", "orphans_removed", "queue_waits", "queue_timeouts"} {
		if zero.Int(k) != 0 {
			t.Errorf("after stats_reset(): %s = %d", k, zero.Int(k))
		}
	}

	const n = 3
	var wg sync.WaitGroup
	errs := make([]error, n)
	conns := make([]*PgConn, n)
	for i := range conns {
		conns[i] = c.conn(t)
	}
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			for _, q := range []string{
				"SELECT * FROM plcoordinator.acquire('plc_test')", // cold
				"SELECT plcoordinator.release('plc_test')",
				"SELECT * FROM plcoordinator.acquire('plc_test')", // warm
				"SELECT plcoordinator.release('plc_test')",
				"SELECT * FROM plcoordinator.acquire('plc_test')", // warm
			} {
				if _, err := conns[i].Query(ctx, q); err != nil {
					errs[i] = fmt.Errorf("%s: %w", q, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := mustRow(t, conns[0], "SELECT plcoordinator.release_all() AS n").Int("n"); got != 1 {
		t.Errorf("release_all returned %d, want 1", got)
	}
	want := map[string]int64{"requests": 3 * n, "warm_hits": 2 * n, "cold_starts": n, "releases": 2*n + 1,
		"prewarm_hits": 0, "start_failures": 0, "docker_errors": 0, "sessions_reaped": 0, "orphans_removed": 0,
		"queue_waits": 0, "queue_timeouts": 0}
	check := func(want map[string]int64) Row {
		t.Helper()
		var st Row
		err := poll(3*time.Second, func() error {
			st = mustRow(t, admin, "SELECT * FROM plcoordinator.stats")
			for k, v := range want {
				if st.Int(k) != v {
					return fmt.Errorf("%s = %d, want %d", k, st.Int(k), v)
				}
			}
			return nil
		})
		if err != nil {
			t.Errorf("stats %v: %v", st, err)
		}
		return st
	}
	st := check(want)
	for _, k := range []string{"acquire_p50_ms", "acquire_p99_ms", "ready_p50_ms", "ready_p99_ms"} {
		if st.IsNull(k) || st.Str(k) == "0" {
			t.Errorf("%s = %q after %d cold starts", k, st.Str(k), n)
		}
	}
	t.Logf("stats: %v", st)

	// One failed start.
	queryErr(t, conns[1], "SELECT * FROM plcoordinator.acquire('plc_crash')")
	want["requests"]++
	want["start_failures"]++
	delete(want, "cold_starts") // a failed start is counted or not; logged below
	st = check(want)
	t.Logf("after a failed start: cold_starts = %d (was %d)", st.Int("cold_starts"), n)
}

// TestMonitor_Visibility: a role that is not superuser sees only the
// containers it owns in plcoordinator.containers and containers_summary();
// a superuser sees all of them.
func TestMonitor_Visibility(t *testing.T) {
	track(t)
	c := newCluster(t, clusterOpts{})
	mustExec(t, c.conn(t), "CREATE ROLE plci_alice LOGIN; CREATE ROLE plci_bob LOGIN; CREATE ROLE plci_carol LOGIN")
	alice, bob, carol, su := c.connectAs(t, "plci_alice"), c.connectAs(t, "plci_bob"), c.connectAs(t, "plci_carol"), c.conn(t)
	ids := map[string]string{}
	for role, conn := range map[string]*PgConn{"plci_alice": alice, "plci_bob": bob, pgOSUser: su} {
		ids[role] = acquire(t, conn, plcTestRuntime).Str("container_id")
	}
	for role, conn := range map[string]*PgConn{"plci_alice": alice, "plci_bob": bob, "plci_carol": carol} {
		rows, err := conn.Query(context.Background(), "SELECT container_id, owner FROM plcoordinator.containers")
		if err != nil {
			t.Fatalf("%s: %v", role, err)
		}
		sum, err := conn.Query(context.Background(), `SELECT "CONTAINER_ID" AS container_id, "OWNER" AS owner FROM plcoordinator.containers_summary()`)
		if err != nil {
			t.Fatalf("%s: containers_summary: %v", role, err)
		}
		for what, rs := range map[string][]Row{"containers": rows, "containers_summary": sum} {
			want := 1
			if role == "plci_carol" {
				want = 0
			}
			if len(rs) != want {
				t.Errorf("%s sees %d rows in %s, want %d: %v", role, len(rs), what, want, rs)
				continue
			}
			for _, r := range rs {
				if r.Str("owner") != role || r.Str("container_id") != ids[role] {
					t.Errorf("%s sees %v in %s, want its own container %s", role, r, what, short(ids[role]))
				}
			}
		}
		// The other views are readable by everybody.
		for _, q := range viewQueries {
			if _, err := conn.Query(context.Background(), q); err != nil {
				t.Errorf("%s: %s: %v", role, q, err)
			}
		}
	}
	rows := mustRows(t, su, "SELECT container_id, owner FROM plcoordinator.containers")
	if len(rows) != 3 {
		t.Errorf("the superuser sees %d containers, want 3: %v", len(rows), rows)
	}
	for role, id := range ids {
		if r := rowOf(rows, id); r == nil || r.Str("owner") != role {
			t.Errorf("the superuser does not see %s's container %s: %v", role, short(id), rows)
		}
	}
	if n := len(mustRows(t, su, "SELECT * FROM plcoordinator.containers_summary()")); n != 3 {
		t.Errorf("the superuser sees %d rows in containers_summary(), want 3", n)
	}
	// stats_reset is not for everybody.
	if e := queryErr(t, alice, "SELECT plcoordinator.stats_reset()"); e.Code != "42501" {
		t.Errorf("stats_reset() as plci_alice: %v, want 42501", e)
	}
	c.checkAfterScenario(t, 3, false)
}

// mustRows runs a query and returns its rows.
func mustRows(t *testing.T, conn *PgConn, sql string) []Row {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return rows
}
