package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Row names.
const (
	rowRaw      = "a  raw: create+start+socket file"
	rowRawPing  = "a+ raw + connect + PING"
	rowCold     = "b  cold acquire, new session"
	rowColdNoHO = "b' cold acquire, handoff=false"
	rowPrewarm  = "c  prewarmed acquire, new session"
	rowPrewarmQ = "cq c, pool full and no removal running"
	rowPrewarmN = "cn cq, no replacement started meanwhile"
	rowFirstQ   = "c1 cq split: new session, SELECT 1"
	rowFirstC   = "c2   then release_all (1st coordinator call)"
	rowPrewarm2 = "c3   then prewarmed acquire"
	rowWarm     = "d  warm acquire, same session"
	rowTracked  = "f  acquire while filling to 200 (32 at once)"
)

func rowConc(n int, prewarm bool) string {
	if prewarm {
		return fmt.Sprintf("e  %d concurrent sessions, prewarm 16", n)
	}
	return fmt.Sprintf("e  %d concurrent sessions, prewarm 0", n)
}

type grant struct {
	id                         string
	reused, prewarmed, handoff bool
}

// acquire runs plcoordinator.acquire in one round trip (simple protocol)
// and returns the query's latency.
func acquire(ctx context.Context, conn *pgx.Conn, runtime string, handoff bool) (grant, time.Duration, error) {
	var g grant
	q := fmt.Sprintf("SELECT container_id, reused, prewarmed, connected FROM plcoordinator.acquire('%s', %t)",
		runtime, handoff)
	t0 := time.Now()
	err := conn.QueryRow(ctx, q, pgx.QueryExecModeSimpleProtocol).Scan(&g.id, &g.reused, &g.prewarmed, &g.handoff)
	return g, time.Since(t0), err
}

// count runs a count(*) over plcoordinator.containers.
func (b *bench) count(ctx context.Context, where string) (int, error) {
	var n int
	err := b.mon.QueryRow(ctx, "SELECT count(*) FROM plcoordinator.containers WHERE "+where).Scan(&n)
	return n, err
}

// waitFor polls count(where) every 5 ms until ok(n), for at most timeout.
func (b *bench) waitFor(ctx context.Context, what, where string, ok func(int) bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		n, err := b.count(ctx, where)
		if err != nil {
			return err
		}
		if ok(n) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: still %d containers (%s) after %s", what, n, where, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// drained waits until no container but prewarmed ones is left.
func (b *bench) drained(ctx context.Context) error {
	return b.waitFor(ctx, "waiting for removals", "state <> 'prewarmed'", func(n int) bool { return n == 0 }, 2*time.Minute)
}

func (b *bench) prewarmedAtLeast(ctx context.Context, n int) error {
	return b.waitFor(ctx, "waiting for the prewarm pool",
		fmt.Sprintf("state = 'prewarmed' AND runtime_id = '%s'", rtWarm), func(have int) bool { return have >= n }, 2*time.Minute)
}

// setPool rewrites the runtime file with bench_warm's pool (see
// runtimeConfig) and reloads; it returns once the coordinator shows the
// new setting and, for a pool, once it is full and nothing else runs.
func (b *bench) setPool(ctx context.Context, n int, capped bool) error {
	if err := b.cl.WriteConfig(runtimeConfig(n, capped)); err != nil {
		return err
	}
	var msg string
	if err := b.mon.QueryRow(ctx, "SELECT plcoordinator.reload_config()").Scan(&msg); err != nil {
		return fmt.Errorf("reload_config: %w", err)
	}
	wantMax := 0
	if capped {
		wantMax = n
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var pool, limit int
		if err := b.mon.QueryRow(ctx, "SELECT prewarm, max_containers FROM plcoordinator.runtimes WHERE runtime_id = $1",
			rtWarm).Scan(&pool, &limit); err != nil {
			return err
		}
		if pool == n && limit == wantMax {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s has prewarm %d, max_containers %d after a reload (%s)", rtWarm, pool, limit, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n == 0 {
		return b.waitFor(ctx, "waiting for the pool to go", "true", func(n int) bool { return n == 0 }, 2*time.Minute)
	}
	if err := b.drained(ctx); err != nil {
		return err
	}
	return b.prewarmedAtLeast(ctx, n)
}

type coldTiming struct {
	latency time.Duration
	readyMS int           // the coordinator's create→ready (ready_ms)
	engine  time.Duration // engine's Created → State.StartedAt
}

// coldSample opens a session, acquires a container of bench_cold, reads
// the coordinator's and the engine's view of its start (not timed), ends
// the session and waits until the container is gone.
func (b *bench) coldSample(ctx context.Context, handoff bool) (ct coldTiming, err error) {
	conn, err := b.cl.Conn(ctx)
	if err != nil {
		return ct, err
	}
	defer func() {
		conn.Close(context.Background())
		if derr := b.drained(ctx); err == nil {
			err = derr
		}
	}()
	g, lat, err := acquire(ctx, conn, rtCold, handoff)
	if err != nil {
		return ct, err
	}
	if g.reused || g.prewarmed || g.handoff != handoff {
		return ct, fmt.Errorf("cold acquire answered reused=%t prewarmed=%t connected=%t", g.reused, g.prewarmed, g.handoff)
	}
	ct.latency = lat
	deadline := time.Now().Add(2 * time.Second)
	for {
		var ready *int
		if err := b.mon.QueryRow(ctx, "SELECT ready_ms FROM plcoordinator.containers WHERE container_id = $1", g.id).
			Scan(&ready); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return ct, err
		}
		if ready != nil {
			ct.readyMS = *ready
			break
		}
		if time.Now().After(deadline) {
			return ct, fmt.Errorf("container %s: no ready_ms in plcoordinator.containers", g.id[:12])
		}
		time.Sleep(5 * time.Millisecond)
	}
	created, started, err := b.eng.times(ctx, g.id)
	if err != nil {
		return ct, err
	}
	ct.engine = started.Sub(created)
	return ct, nil
}

// coldVersusRaw measures a, a+, b and b' in interleaved rounds, after a
// warm-up that also provides the raw baseline's create body.
func (b *bench) coldVersusRaw(ctx context.Context) error {
	conn, err := b.cl.Conn(ctx)
	if err != nil {
		return err
	}
	g, _, err := acquire(ctx, conn, rtCold, true)
	if err == nil {
		var insp map[string]json.RawMessage
		if insp, err = b.eng.inspectRaw(ctx, g.id); err == nil {
			b.tmpl, err = newTemplate(insp)
		}
	}
	conn.Close(context.Background())
	if err != nil {
		return err
	}
	if err := b.drained(ctx); err != nil {
		return err
	}
	// Warm-up, not recorded.
	if _, err := b.rawSample(ctx, -1); err != nil {
		return err
	}
	if _, err := b.coldSample(ctx, true); err != nil {
		return err
	}

	// The coordinator's own create/start/ready percentiles, for the b and
	// b' containers only (older builds have no stats_reset: ignored).
	_, resetErr := b.mon.Exec(ctx, "SELECT plcoordinator.stats_reset()")

	var raw, rawPing, rawCreate, rawStart, rawWait, rawPingOnly, rawEngine []time.Duration
	var cold, coldNoHO, coldReady, coldNoHOReady, coldEngine, coldOutside, coldNoHOOutside []time.Duration
	for i := 0; i < *flagN; i++ {
		for k := 0; k < 3; k++ {
			switch (i + k) % 3 { // rotate the order from round to round
			case 0:
				rt, err := b.rawSample(ctx, i)
				if err != nil {
					return err
				}
				raw, rawPing = append(raw, rt.ready), append(rawPing, rt.ping)
				rawCreate, rawStart = append(rawCreate, rt.create), append(rawStart, rt.start-rt.create)
				rawWait, rawPingOnly = append(rawWait, rt.ready-rt.start), append(rawPingOnly, rt.ping-rt.ready)
				rawEngine = append(rawEngine, rt.engine)
			case 1:
				ct, err := b.coldSample(ctx, true)
				if err != nil {
					return err
				}
				ready := time.Duration(ct.readyMS) * time.Millisecond
				cold, coldReady = append(cold, ct.latency), append(coldReady, ready)
				coldEngine, coldOutside = append(coldEngine, ct.engine), append(coldOutside, ct.latency-ready)
			case 2:
				ct, err := b.coldSample(ctx, false)
				if err != nil {
					return err
				}
				ready := time.Duration(ct.readyMS) * time.Millisecond
				coldNoHO, coldNoHOReady = append(coldNoHO, ct.latency), append(coldNoHOReady, ready)
				coldNoHOOutside = append(coldNoHOOutside, ct.latency-ready)
			}
		}
		if (i+1)%10 == 0 {
			b.logf("  round %d/%d", i+1, *flagN)
		}
	}
	b.res.add(summarize(rowRaw, raw))
	b.res.add(summarize(rowRawPing, rawPing))
	b.res.add(summarize(rowCold, cold))
	b.res.add(summarize(rowColdNoHO, coldNoHO))
	bd := b.res.Breakdown
	bd["a: create call"] = summarize("", rawCreate).P50
	bd["a: start call"] = summarize("", rawStart).P50
	bd["a: start returned -> socket file"] = summarize("", rawWait).P50
	bd["a: engine Created -> StartedAt"] = summarize("", rawEngine).P50
	bd["a+: connect + PING"] = summarize("", rawPingOnly).P50
	bd["b: coordinator ready_ms (incl. connect + PING)"] = summarize("", coldReady).P50
	bd["b: engine Created -> StartedAt"] = summarize("", coldEngine).P50
	bd["b: latency - ready_ms (SQL, backend, protocol, hand-off)"] = summarize("", coldOutside).P50
	bd["b': coordinator ready_ms"] = summarize("", coldNoHOReady).P50
	bd["b': latency - ready_ms"] = summarize("", coldNoHOOutside).P50
	if resetErr == nil {
		st, err := b.stats(ctx)
		if err != nil {
			return err
		}
		for key, name := range map[string]string{
			"create_p50_ms": "b+b': coordinator's create call (stats)",
			"start_p50_ms":  "b+b': coordinator's start call (stats)",
			"ready_p50_ms":  "b+b': coordinator's ready (stats)",
		} {
			if v, ok := st[key].(float64); ok {
				bd[name] = v
			}
		}
	}
	return nil
}

// prewarmed measures c: bench_warm keeps 2 containers and before each
// sample (not timed) at least one must be ready, so the replacement of the
// previous one is usually still starting. Two more series find where c's
// time goes, each sample taken with the engine quiet (pool full, no
// removal running): cq is c again; c1..c3 split it into a new session's
// first query, its first coordinator call (which opens the session's
// coordinator connection) and then the prewarmed acquire; cn is cq with
// max_containers = prewarm, so that the acquire starts no replacement
// container while it runs.
func (b *bench) prewarmed(ctx context.Context) error {
	if err := b.setPool(ctx, 2, false); err != nil {
		return err
	}
	busy := func(ctx context.Context) error { return b.prewarmedAtLeast(ctx, 1) }
	quiet := func(ctx context.Context) error {
		if err := b.drained(ctx); err != nil {
			return err
		}
		return b.prewarmedAtLeast(ctx, 2)
	}
	// sample opens a session and runs the statements; the last one is the
	// acquire, which must be served from the pool.
	sample := func(wait func(context.Context) error, stmts ...string) ([]time.Duration, bool, error) {
		if err := wait(ctx); err != nil {
			return nil, false, err
		}
		conn, err := b.cl.Conn(ctx)
		if err != nil {
			return nil, false, err
		}
		defer conn.Close(context.Background())
		var lat []time.Duration
		for _, q := range stmts {
			t0 := time.Now()
			if _, err := conn.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); err != nil {
				return nil, false, err
			}
			lat = append(lat, time.Since(t0))
		}
		g, d, err := acquire(ctx, conn, rtWarm, true)
		return append(lat, d), g.prewarmed, err
	}
	series := func(wait func(context.Context) error, names []string, stmts ...string) error {
		lat := make([][]time.Duration, len(names))
		misses := 0
		for i := -1; i < *flagNC; i++ { // i == -1: warm-up
			l, hit, err := sample(wait, stmts...)
			switch {
			case err != nil:
				return err
			case i < 0:
			case !hit:
				misses++
			default:
				for k := range l {
					lat[k] = append(lat[k], l[k])
				}
			}
		}
		for k, name := range names {
			row := summarize(name, lat[k])
			if k == len(names)-1 {
				row.Failures = misses
				if misses > 0 {
					row.Note = fmt.Sprintf("%d acquires were not served from the pool", misses)
				}
			}
			b.res.add(row)
		}
		return nil
	}
	if err := series(busy, []string{rowPrewarm}); err != nil {
		return err
	}
	if err := series(quiet, []string{rowPrewarmQ}); err != nil {
		return err
	}
	if err := series(quiet, []string{rowFirstQ, rowFirstC, rowPrewarm2},
		"SELECT 1", "SELECT plcoordinator.release_all()"); err != nil {
		return err
	}
	if err := b.setPool(ctx, 2, true); err != nil {
		return err
	}
	if err := series(quiet, []string{rowPrewarmN}); err != nil {
		return err
	}
	if err := b.setPool(ctx, 0, false); err != nil {
		return err
	}
	return b.drained(ctx)
}

// warm measures d: one session, one cold acquire (not timed), then the
// same acquire again and again.
func (b *bench) warm(ctx context.Context) error {
	conn, err := b.cl.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, _, err := acquire(ctx, conn, rtCold, true); err != nil {
		return err
	}
	lat := make([]time.Duration, 0, *flagWarm)
	for i := 0; i < *flagWarm; i++ {
		g, d, err := acquire(ctx, conn, rtCold, true)
		if err != nil {
			return err
		}
		if !g.reused {
			return errors.New("a repeated acquire was not a warm hit")
		}
		lat = append(lat, d)
	}
	b.res.add(summarize(rowWarm, lat))
	conn.Close(context.Background())
	return b.drained(ctx)
}

// openSessions opens n sessions at once.
func (b *bench) openSessions(ctx context.Context, n int) ([]*pgx.Conn, error) {
	conns := make([]*pgx.Conn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() { conns[i], errs[i] = b.cl.Conn(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		closeSessions(conns)
		return nil, err
	}
	return conns, nil
}

func closeSessions(conns []*pgx.Conn) {
	var wg sync.WaitGroup
	for _, c := range conns {
		if c != nil {
			wg.Go(func() { c.Close(context.Background()) })
		}
	}
	wg.Wait()
}

type burst struct {
	lat        []time.Duration
	failures   int
	prewarmed  int
	wall       time.Duration
	firstError string
}

// acquireAll lets every session acquire once, all released at the same
// moment, and waits for all.
func acquireAll(ctx context.Context, conns []*pgx.Conn, runtime string) burst {
	lat := make([]time.Duration, len(conns))
	errs := make([]error, len(conns))
	pre := make([]bool, len(conns))
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			<-gate
			var g grant
			g, lat[i], errs[i] = acquire(ctx, c, runtime, true)
			pre[i] = g.prewarmed
		})
	}
	t0 := time.Now()
	close(gate)
	wg.Wait()
	r := burst{wall: time.Since(t0)}
	for i := range conns {
		if errs[i] != nil {
			r.failures++
			if r.firstError == "" {
				r.firstError = errs[i].Error()
			}
			continue
		}
		r.lat = append(r.lat, lat[i])
		if pre[i] {
			r.prewarmed++
		}
	}
	return r
}

// concurrency measures e: 16 and 64 new sessions acquiring at once, with
// prewarm 0 (bench_cold) and with a pool of 16 (bench_warm, full before
// each burst). Sessions stay open until every acquire has returned.
func (b *bench) concurrency(ctx context.Context) error {
	run := func(n int, prewarm bool) error {
		rt := rtCold
		if prewarm {
			rt = rtWarm
			if err := b.prewarmedAtLeast(ctx, 16); err != nil {
				return err
			}
		}
		conns, err := b.openSessions(ctx, n)
		if err != nil {
			return err
		}
		r := acquireAll(ctx, conns, rt)
		closeSessions(conns)
		row := summarize(rowConc(n, prewarm), r.lat)
		row.Failures = r.failures
		row.Throughput = float64(len(r.lat)) / r.wall.Seconds()
		row.Note = fmt.Sprintf("%d served from the pool; wall %.0f ms", r.prewarmed, float64(r.wall.Microseconds())/1000)
		if r.firstError != "" {
			row.Note += "; first error: " + r.firstError
		}
		b.res.add(row)
		b.logf("  %s: %d ok, %d failed, %.1f acquires/s", row.Name, len(r.lat), r.failures, row.Throughput)
		return b.drained(ctx)
	}
	for _, n := range []int{16, 64} {
		if err := run(n, false); err != nil {
			return err
		}
	}
	if err := b.setPool(ctx, 16, false); err != nil {
		return err
	}
	for _, n := range []int{16, 64} {
		if err := run(n, true); err != nil {
			return err
		}
	}
	return b.setPool(ctx, 0, false)
}

// resources measures f: the worker's CPU while idle and empty, then fills
// it with -tracked sessions holding one container each and measures RSS
// and idle CPU again.
func (b *bench) resources(ctx context.Context) error {
	c := &b.res.Coordinator
	c.IdleWindowSecond = flagIdle.Seconds()
	dockerd := findProcess("dockerd")
	if err := sleep(ctx, 2*time.Second); err != nil { // let the last removals settle
		return err
	}
	var err error
	if c.IdleCPUEmpty, c.DockerdCPUEmpty, err = b.idleCPU(ctx, dockerd); err != nil {
		return err
	}
	if c.RSSKBEmpty, _, err = memory(b.workerPID); err != nil {
		return err
	}

	var conns []*pgx.Conn
	defer func() { closeSessions(conns) }()
	var lat []time.Duration
	failures, firstErr := 0, ""
	for len(conns) < *flagTracked {
		n := min(batch, *flagTracked-len(conns))
		part, err := b.openSessions(ctx, n)
		if err != nil {
			return err
		}
		conns = append(conns, part...)
		r := acquireAll(ctx, part, rtCold)
		lat = append(lat, r.lat...)
		failures += r.failures
		if firstErr == "" {
			firstErr = r.firstError
		}
	}
	row := summarize(rowTracked, lat)
	row.Failures = failures
	if firstErr != "" {
		row.Note = "first error: " + firstErr
	}
	b.res.add(row)
	if c.Tracked, err = b.count(ctx, "state = 'in use'"); err != nil {
		return err
	}
	b.logf("  %d containers in use; idle for %s", c.Tracked, *flagIdle)
	if err := sleep(ctx, 2*time.Second); err != nil {
		return err
	}
	if c.IdleCPU200, c.DockerdCPU200, err = b.idleCPU(ctx, dockerd); err != nil {
		return err
	}
	if c.RSSKB200, c.HWMKB, err = memory(b.workerPID); err != nil {
		return err
	}
	// The sweep (check_loop_interval) inspects every container and fills
	// memory_kb: proof that the idle window included its work.
	if c.Inspected, err = b.count(ctx, "memory_kb IS NOT NULL"); err != nil {
		return err
	}
	closeSessions(conns)
	conns = nil
	return b.drained(ctx)
}

// idleCPU returns the CPU use of the worker and of dockerd (0 if pid is
// 0) over the idle window, in percent of one core.
func (b *bench) idleCPU(ctx context.Context, dockerd int) (worker, engine float64, err error) {
	w0, err := cpuTicks(b.workerPID)
	if err != nil {
		return 0, 0, err
	}
	d0, _ := cpuTicks(dockerd)
	t0 := time.Now()
	if err := sleep(ctx, *flagIdle); err != nil {
		return 0, 0, err
	}
	w1, err := cpuTicks(b.workerPID)
	if err != nil {
		return 0, 0, err
	}
	d1, _ := cpuTicks(dockerd)
	secs := time.Since(t0).Seconds()
	return float64(w1-w0) / clockTicks / secs * 100, float64(d1-d0) / clockTicks / secs * 100, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// cpuTicks returns utime+stime of a process (all its threads).
func cpuTicks(pid int) (int64, error) {
	if pid == 0 {
		return 0, nil
	}
	s, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(s), ')')
	f := strings.Fields(string(s[i+1:])) // f[0] is the state, field 3
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too short", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return ut + st, nil
}

// memory returns VmRSS and VmHWM of a process in kB.
func memory(pid int) (rss, hwm int64, err error) {
	s, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(s), "\n") {
		name, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		switch name {
		case "VmRSS":
			rss = kb
		case "VmHWM":
			hwm = kb
		}
	}
	return rss, hwm, nil
}

// findProcess returns the pid of the first process named comm, or 0.
func findProcess(comm string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if c, err := os.ReadFile("/proc/" + e.Name() + "/comm"); err == nil && strings.TrimSpace(string(c)) == comm {
			return pid
		}
	}
	return 0
}
