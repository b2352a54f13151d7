// Command bench is plcoordinator's benchmark (issue 7; "make bench", which
// runs test/bench/run.sh). In one run, on one Docker engine and the test
// runtime image, it measures:
//
//	a   raw baseline: Docker API create + start until the client's socket
//	    file exists (polled every 0.5 ms), with the create body of a
//	    container the coordinator made (see baseline.go); a+ adds connect
//	    and PING
//	b   cold acquire through SQL from a new session (prewarm 0), and b'
//	    the same without the connected hand-off
//	c   prewarmed acquire through SQL from a new session (prewarm 2); cq,
//	    cn and c1..c3 take it apart with the engine quiet
//	d   warm acquire: the same session again
//	e   16 and 64 concurrent new sessions, prewarm 16 and prewarm 0
//	f   the worker's RSS with 200 tracked containers, and its CPU use while
//	    idle for 10 s (empty and with the 200 containers)
//
// a, b and b' are interleaved round by round so that drift of the engine
// affects all three alike; each sample starts only after the previous
// container is gone. It prints a table, the ratios and the targets, and
// writes the same numbers to -out as JSON. It must run as root and leaves
// no server, container or directory behind, also when interrupted.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/plcoordinator/plcoordinator/test/internal/pgcluster"
)

const (
	image         = "plcoordinator-test-client:latest"
	rtCold        = "bench_cold" // prewarm 0
	rtWarm        = "bench_warm" // prewarm set per phase
	maxContainers = 256
	batch         = 32 // sessions opened at once for f
)

var (
	flagOut     = flag.String("out", "test/bench/results.json", "JSON results file")
	flagN       = flag.Int("n", 40, "samples of a, a+, b and b' (issue 7 asks for at least 20)")
	flagNC      = flag.Int("nc", 100, "samples of c and of each of its two breakdown series")
	flagWarm    = flag.Int("warm", 2000, "samples of d")
	flagTracked = flag.Int("tracked", 200, "containers tracked for the RSS measurement")
	flagIdle    = flag.Duration("idle", 10*time.Second, "idle window of the CPU measurement")
	flagTimeout = flag.Duration("timeout", 9*time.Minute, "give up (and clean up) after this long")
	flagPhases  = flag.String("phases", "ab,c,d,e,f", "phases to run (for studying one of them)")
)

type bench struct {
	res       *Results
	runID     string
	eng       *engine
	cl        *pgcluster.Cluster
	mon       *pgx.Conn // monitoring session: views, reloads
	workerPID int
	rawDir    string // short temp dir for the raw baseline's socket dirs
	tmpl      *template
	pgUID     int
	pgGID     int
	t0        time.Time
}

func main() {
	flag.Parse()
	b := &bench{
		runID: fmt.Sprintf("%d%d", os.Getpid(), time.Now().Unix()%100000),
		t0:    time.Now(),
		res: &Results{StartedAt: time.Now().UTC(), Host: map[string]string{}, Settings: map[string]string{},
			Ratios: map[string]float64{}, Breakdown: map[string]float64{}},
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *flagTimeout)
	defer cancel()

	err := b.run(ctx)
	if err != nil {
		b.res.Error = err.Error()
	}
	b.res.DurationS = time.Since(b.t0).Seconds()
	if l, err := os.ReadFile("/proc/loadavg"); err == nil {
		b.res.Host["loadavg_at_end"] = strings.Join(strings.Fields(string(l))[:3], " ")
	}
	b.evaluate()
	b.res.print(os.Stdout)
	if werr := b.res.write(*flagOut); werr != nil {
		fmt.Fprintf(os.Stderr, "bench: writing %s: %v\n", *flagOut, werr)
		os.Exit(1)
	}
	abs, _ := filepath.Abs(*flagOut)
	fmt.Printf("\nresults: %s (%.0f s)\n", abs, b.res.DurationS)
	if err != nil {
		os.Exit(1)
	}
}

func (b *bench) logf(format string, args ...any) {
	d := time.Since(b.t0).Round(time.Second)
	fmt.Fprintf(os.Stderr, "bench [%02d:%02d] %s\n", int(d.Minutes()), int(d.Seconds())%60, fmt.Sprintf(format, args...))
}

// run sets up, runs every phase and always cleans up.
func (b *bench) run(ctx context.Context) (err error) {
	defer func() {
		if cerr := b.cleanup(err != nil); err == nil {
			err = cerr
		}
	}()
	if os.Geteuid() != 0 {
		return errors.New("must run as root (the server runs as postgres through runuser)")
	}
	u, err := user.Lookup(pgcluster.DefaultOSUser)
	if err != nil {
		return err
	}
	b.pgUID, _ = strconv.Atoi(u.Uid)
	b.pgGID, _ = strconv.Atoi(u.Gid)
	b.eng = newEngine("/var/run/docker.sock")
	if err := b.hostInfo(ctx); err != nil {
		return err
	}
	if b.rawDir, err = os.MkdirTemp("/tmp", "plcb."); err != nil {
		return err
	}

	b.logf("starting PostgreSQL with plcoordinator")
	settings := map[string]string{
		"max_connections":                    "300",
		"plcoordinator.max_container_number": strconv.Itoa(maxContainers),
		"plcoordinator.acquire_timeout":      "'60s'",
	}
	if b.cl, err = pgcluster.Start(ctx, pgcluster.Options{Config: runtimeConfig(0, false), Settings: settings}); err != nil {
		return err
	}
	if b.mon, err = b.cl.Conn(ctx); err != nil {
		return err
	}
	if b.workerPID, err = b.cl.WorkerPID(ctx); err != nil {
		return err
	}
	if err := b.recordSettings(ctx); err != nil {
		return err
	}

	phases := []struct {
		key, name string
		fn        func(context.Context) error
	}{
		{"ab", "a, a+, b, b': raw baseline and cold acquires, interleaved", b.coldVersusRaw},
		{"c", "c: prewarmed acquires", b.prewarmed},
		{"d", "d: warm acquires", b.warm},
		{"e", "e: concurrent sessions", b.concurrency},
		{"f", "f: resources of the worker", b.resources},
	}
	wanted := strings.Split(*flagPhases, ",")
	for _, p := range phases {
		if !slices.Contains(wanted, p.key) {
			continue
		}
		b.logf("phase %s", p.name)
		if err := p.fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	if err := b.coordinatorStats(ctx); err != nil {
		return err
	}
	return nil
}

// cleanup stops the server (fast: the coordinator removes its
// containers), records and removes whatever is left, and deletes the
// temporary directories. It runs on its own context: the run's may be
// cancelled already.
func (b *bench) cleanup(failed bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var errs []error
	if b.mon != nil {
		b.mon.Close(ctx)
	}
	if b.cl != nil {
		b.logf("stopping PostgreSQL (fast)")
		if err := b.cl.Stop("fast"); err != nil {
			errs = append(errs, err)
		}
		left, err := b.cl.RemainingContainers()
		errs = append(errs, err)
		b.res.Leftovers = left
		if failed {
			fmt.Fprintf(os.Stderr, "bench: server log tail:\n%s\n", tail(b.cl.Log(), 30))
		}
		errs = append(errs, b.cl.Close())
	}
	if b.eng != nil {
		ids, err := b.eng.list(ctx, labelBench, b.runID)
		errs = append(errs, err)
		for _, id := range ids {
			errs = append(errs, b.eng.remove(ctx, id))
		}
	}
	if b.rawDir != "" {
		errs = append(errs, os.RemoveAll(b.rawDir))
	}
	return errors.Join(errs...)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// runtimeConfig is the runtime file: bench_cold never prewarms,
// bench_warm keeps a pool of pool containers; capped limits bench_warm to
// pool containers in all, so that taking one from the pool starts no
// replacement until that one is gone.
func runtimeConfig(pool int, capped bool) string {
	rt := func(id string, prewarm, limit int) string {
		return fmt.Sprintf(`    <runtime>
        <id>%s</id>
        <image>%s</image>
        <command>/plcclient</command>
        <setting memory_mb="128"/>
        <coordinator prewarm="%d" max_containers="%d"/>
    </runtime>
`, id, image, prewarm, limit)
	}
	limit := 0
	if capped {
		limit = pool
	}
	return "<?xml version=\"1.0\" ?>\n<configuration>\n" + rt(rtCold, 0, 0) + rt(rtWarm, pool, limit) + "</configuration>\n"
}

func (b *bench) hostInfo(ctx context.Context) error {
	v, api, err := b.eng.version(ctx)
	if err != nil {
		return fmt.Errorf("the Docker engine does not answer: %w", err)
	}
	var img struct {
		ID string `json:"Id"`
	}
	if _, err := b.eng.call(ctx, "GET", "/images/"+image+"/json", nil, &img); err != nil {
		return fmt.Errorf("image %s: %w (run test/image/build.sh)", image, err)
	}
	h := b.res.Host
	h["cpus"] = strconv.Itoa(runtime.NumCPU())
	h["go"] = runtime.Version()
	h["docker"] = v + " (API " + api + ")"
	h["image"] = image + " " + img.ID
	if k, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h["kernel"] = strings.TrimSpace(string(k))
	}
	// The numbers are only worth something on an otherwise idle machine.
	if l, err := os.ReadFile("/proc/loadavg"); err == nil {
		h["loadavg_at_start"] = strings.Join(strings.Fields(string(l))[:3], " ")
	}
	var all []struct{}
	if _, err := b.eng.call(ctx, "GET", "/containers/json", nil, &all); err == nil {
		h["other_running_containers_at_start"] = strconv.Itoa(len(all))
		if len(all) > 0 {
			b.logf("WARNING: %d other containers are running; the numbers will be noisy", len(all))
		}
	}
	h["cgroup"] = "v1"
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		h["cgroup"] = "v2"
	}
	return nil
}

func (b *bench) recordSettings(ctx context.Context) error {
	var version string
	if err := b.mon.QueryRow(ctx, "SELECT current_setting('server_version')").Scan(&version); err != nil {
		return err
	}
	b.res.Host["postgresql"] = version
	for _, name := range []string{"max_connections", "plcoordinator.max_container_number",
		"plcoordinator.max_parallel_creates", "plcoordinator.acquire_timeout",
		"plcoordinator.check_loop_interval", "plcoordinator.container_hardening"} {
		var v string
		if err := b.mon.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
			return err
		}
		b.res.Settings[name] = v
	}
	b.res.Settings["runtime"] = "memory_mb=128 cpu_share=1024 (default), image " + image
	b.res.Settings["samples"] = fmt.Sprintf("a/a+/b/b' %d each, c/cq/c1-c3 %d each, d %d, f %d containers, idle %s",
		*flagN, *flagNC, *flagWarm, *flagTracked, *flagIdle)
	return nil
}

// coordinatorStats keeps the coordinator's own counters and percentiles
// (since the reset at the start of the a/b rounds).
func (b *bench) coordinatorStats(ctx context.Context) (err error) {
	b.res.Stats, err = b.stats(ctx)
	return err
}

func (b *bench) stats(ctx context.Context) (map[string]any, error) {
	var js string
	if err := b.mon.QueryRow(ctx, "SELECT row_to_json(s)::text FROM plcoordinator.stats s").Scan(&js); err != nil {
		return nil, err
	}
	var m map[string]any
	err := json.Unmarshal([]byte(js), &m)
	return m, err
}

// evaluate computes the ratios and checks the targets of issue 7 with
// whatever was measured.
func (b *bench) evaluate() {
	r := b.res
	a, okA := r.row(rowRaw)
	ap, okAP := r.row(rowRawPing)
	c, okC := r.row(rowCold)
	cn, okCN := r.row(rowColdNoHO)
	p, okP := r.row(rowPrewarm)
	w, okW := r.row(rowWarm)
	target := func(name string, v float64, unit, goal string, limit float64) {
		t := Target{Name: name, Value: v, Unit: unit, Goal: goal, Met: v <= limit}
		if !t.Met {
			switch {
			case limit == 0:
				t.Margin = fmt.Sprintf("%g over", v)
			case unit == "":
				t.Margin = fmt.Sprintf("%.1f %% over", (v/limit-1)*100)
			default:
				t.Margin = fmt.Sprintf("%.3g %s over", v-limit, unit)
			}
		}
		r.Targets = append(r.Targets, t)
	}
	if okA && okC {
		r.Ratios["b/a p50"] = c.P50 / a.P50
		r.Ratios["b/a mean"] = c.Mean / a.Mean
		target("b/a p50", r.Ratios["b/a p50"], "", "<= 1.10", 1.10)
		target("b/a mean", r.Ratios["b/a mean"], "", "<= 1.10", 1.10)
	}
	if okAP && okC {
		r.Ratios["b/(a+) p50 (both connect + PING)"] = c.P50 / ap.P50
	}
	if okA && okCN {
		r.Ratios["b'/a p50 (neither connects)"] = cn.P50 / a.P50
	}
	if okA && okP {
		r.Ratios["a/c p50"] = a.P50 / p.P50
	}
	if okP {
		r.Ratios["c p99 ms"] = p.P99
		target("c p99", p.P99, "ms", "<= 5 ms", 5)
	}
	if okW {
		r.Ratios["d p99 ms"] = w.P99
		target("d p99", w.P99, "ms", "<= 1 ms", 1)
	}
	for _, on := range []bool{false, true} {
		if e, ok := r.row(rowConc(64, on)); ok {
			name := "failures, 64 sessions, prewarm 0"
			if on {
				name = "failures, 64 sessions, prewarm 16"
			}
			target(name, float64(e.Failures), "", "0", 0)
		}
	}
	if co := r.Coordinator; co.IdleWindowSecond > 0 && co.Tracked > 0 {
		target("idle CPU, empty", co.IdleCPUEmpty, "%", "<= 1 %", 1)
		target(fmt.Sprintf("idle CPU, %d containers", co.Tracked), co.IdleCPU200, "%", "<= 1 %", 1)
	}
}
