//go:build integration

package integration

// The harness: throwaway PostgreSQL 15 clusters with plcoordinator
// preloaded, run as the OS user postgres, each with its own socket
// directory and runtime configuration, checked for leaked containers and
// socket directories when the test ends.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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

// runtimeSpec is one extra <runtime> of the configuration file.
type runtimeSpec struct {
	id          string
	image       string // default testImage
	command     string // default /plcclient
	memoryMB    int    // default 128
	settings    string // more attributes of <setting .../>, e.g. `roles="admins"`
	fault       string // content of the fault file mounted at /plcfault; "" = none
	coordinator string // attributes of <coordinator .../>, e.g. `start_timeout="2"`
	backend     string // name of a <backend> declared in clusterOpts.backends
}

// clusterOpts configure newCluster.
type clusterOpts struct {
	noPreload   bool          // leave shared_preload_libraries empty
	noExtension bool          // do not CREATE EXTENSION
	gucs        []string      // extra postgresql.conf lines, e.g. "plcoordinator.check_loop_interval = 1"
	runtimes    []runtimeSpec // besides plc_test
	backends    string        // top-level <backend> elements of the runtime configuration
	// shutdownTimeout is plcoordinator.shutdown_timeout (default 5 s); the
	// cleanup waits this long for the containers to go.
	shutdownTimeout time.Duration
}

// cluster is one running PostgreSQL instance.
type cluster struct {
	t          *testing.T
	opts       clusterOpts
	dir        string // /tmp/plci.NNN, owned by postgres
	dataDir    string
	socketDir  string // plcoordinator.socket_dir (short)
	logFile    string
	configFile string // the runtime configuration in the data directory
	port       int
	instance   string // plcoordinator.instance label value

	startedAt  time.Time     // just before pg_ctl start
	readyAfter time.Duration // from startedAt until state ready

	notesMu sync.Mutex
	notes   map[string]bool // notes already logged (checkConsistent)
}

const plcTestRuntime = "plc_test"

// newCluster initialises, configures and starts a cluster; t.Cleanup
// stops it and checks that nothing of it is left behind.
func newCluster(t *testing.T, opts clusterOpts) *cluster {
	t.Helper()
	if opts.shutdownTimeout == 0 {
		opts.shutdownTimeout = 5 * time.Second
	}
	dir, err := os.MkdirTemp("/tmp", "plci.")
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, opts: opts, dir: dir, dataDir: filepath.Join(dir, "data"),
		socketDir: filepath.Join(dir, "s"), logFile: filepath.Join(dir, "server.log")}
	c.configFile = filepath.Join(c.dataDir, "plcontainer_configuration.xml")
	if len(c.socketDir) >= 40 {
		t.Fatalf("socket dir %q is too long", c.socketDir)
	}
	if err := os.Chown(dir, pgUID, pgGID); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.cleanup)

	if out, err := c.asPostgres(filepath.Join(pgBin, "initdb"), "-D", c.dataDir, "-A", "trust", "-U", pgOSUser,
		"--no-sync", "-E", "UTF8", "--locale=C"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	c.writeRuntimeConfig(c.configFile, opts.runtimes)

	var lastErr error
	for attempt := 0; attempt < 4; attempt++ {
		c.port = pickPort()
		c.writeConf()
		c.startedAt = time.Now()
		out, err := c.pgctl("start", "-w", "-t", "60", "-l", c.logFile)
		if err == nil {
			lastErr = nil
			break
		}
		lastErr = fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, tail(c.logText(), 30))
		if !strings.Contains(c.logText(), "in use") && !strings.Contains(c.logText(), "lock file") {
			break
		}
	}
	if lastErr != nil {
		t.Fatal(lastErr)
	}
	c.instance = c.instanceFromControlData()

	if !opts.noPreload && !opts.noExtension {
		conn := c.connect(t)
		// Committed to WAL at once (the cluster runs with synchronous_commit
		// off): a crash restart soon after must not lose the extension.
		mustExec(t, conn, "SET synchronous_commit = on; CREATE EXTENSION plcoordinator")
		row := mustRow(t, conn, "SELECT plcoordinator.wait_until_ready(30000) AS ok")
		c.readyAfter = time.Since(c.startedAt)
		if !row.Bool("ok") {
			t.Fatalf("the coordinator was not ready within 30 s:\n%s", tail(c.logText(), 40))
		}
		if got := c.instanceLabel(t); got != c.instance {
			t.Errorf("instance label from SQL %q differs from pg_controldata's %q", got, c.instance)
		}
		conn.Close()
	}
	return c
}

// asPostgres runs a command as the OS user postgres in the cluster dir.
func (c *cluster) asPostgres(args ...string) ([]byte, error) {
	cmd := exec.Command("runuser", append([]string{"-u", pgOSUser, "--"}, args...)...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd.CombinedOutput()
}

func (c *cluster) pgctl(args ...string) ([]byte, error) {
	return c.asPostgres(append([]string{filepath.Join(pgBin, "pg_ctl"), "-D", c.dataDir}, args...)...)
}

// pickPort returns a port in 20000–40000 that nothing listens on.
func pickPort() int {
	for {
		p := 20000 + rand.IntN(20000)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		l.Close()
		if _, err := os.Stat(fmt.Sprintf("/tmp/.s.PGSQL.%d", p)); err == nil {
			continue
		}
		return p
	}
}

// writeConf appends the test settings to postgresql.conf (replacing an
// earlier append, so that a port retry rewrites them).
func (c *cluster) writeConf() {
	t := c.t
	path := filepath.Join(c.dataDir, "postgresql.conf")
	base, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const marker = "\n# --- plcoordinator integration test ---\n"
	if i := strings.Index(string(base), marker); i >= 0 {
		base = base[:i]
	}
	var b strings.Builder
	b.Write(base)
	b.WriteString(marker)
	fmt.Fprintf(&b, "port = %d\n", c.port)
	fmt.Fprintf(&b, "listen_addresses = ''\n")
	fmt.Fprintf(&b, "unix_socket_directories = '%s'\n", c.dir)
	fmt.Fprintf(&b, "logging_collector = off\n")
	fmt.Fprintf(&b, "log_line_prefix = '%%m [%%p] '\n")
	fmt.Fprintf(&b, "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
	if !c.opts.noPreload {
		fmt.Fprintf(&b, "shared_preload_libraries = 'plcoordinator'\n")
		fmt.Fprintf(&b, "plcoordinator.socket_dir = '%s'\n", c.socketDir)
		fmt.Fprintf(&b, "plcoordinator.shutdown_timeout = %d\n", c.opts.shutdownTimeout.Milliseconds())
	}
	for _, g := range c.opts.gucs {
		b.WriteString(g + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, pgUID, pgGID); err != nil {
		t.Fatal(err)
	}
}

// writeRuntimeConfig writes a configuration with plc_test plus extra
// runtimes to path (owned by postgres). Fault files go to
// <dir>/f/<runtime>/fault, mounted read-only at /plcfault.
func (c *cluster) writeRuntimeConfig(path string, extra []runtimeSpec) {
	t := c.t
	var b strings.Builder
	b.WriteString("<?xml version=\"1.0\" ?>\n<configuration>\n")
	for _, rt := range append([]runtimeSpec{{id: plcTestRuntime}}, extra...) {
		if rt.image == "" {
			rt.image = testImage
		}
		if rt.command == "" {
			rt.command = "/plcclient"
		}
		if rt.memoryMB == 0 {
			rt.memoryMB = 128
		}
		fmt.Fprintf(&b, "  <runtime>\n    <id>%s</id>\n    <image>%s</image>\n    <command>%s</command>\n", rt.id, rt.image, rt.command)
		if rt.fault != "" {
			fdir := filepath.Join(c.dir, "f", rt.id)
			if err := os.MkdirAll(fdir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(fdir, "fault"), []byte(rt.fault+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "    <shared_directory host=\"%s\" container=\"/plcfault\" access=\"ro\"/>\n", fdir)
		}
		fmt.Fprintf(&b, "    <setting memory_mb=\"%d\"/>\n", rt.memoryMB)
		if rt.settings != "" {
			fmt.Fprintf(&b, "    <setting %s/>\n", rt.settings)
		}
		if rt.coordinator != "" {
			fmt.Fprintf(&b, "    <coordinator %s/>\n", rt.coordinator)
		}
		if rt.backend != "" {
			fmt.Fprintf(&b, "    <backend name=\"%s\"/>\n", rt.backend)
		}
		b.WriteString("  </runtime>\n")
	}
	b.WriteString(c.opts.backends)
	b.WriteString("</configuration>\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, pgUID, pgGID); err != nil {
		t.Fatal(err)
	}
}

// instanceFromControlData is "<system identifier>-<port>" read with
// pg_controldata, usable even when the server is down.
func (c *cluster) instanceFromControlData() string {
	out, err := c.asPostgres(filepath.Join(pgBin, "pg_controldata"), "-D", c.dataDir)
	if err != nil {
		c.t.Fatalf("pg_controldata: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "Database system identifier" {
			return strings.TrimSpace(v) + "-" + strconv.Itoa(c.port)
		}
	}
	c.t.Fatalf("pg_controldata printed no system identifier:\n%s", out)
	return ""
}

// instanceLabel asks the server for its plcoordinator.instance label.
func (c *cluster) instanceLabel(t *testing.T) string {
	return c.row(t, "SELECT system_identifier::text || '-' || current_setting('port') AS i FROM pg_control_system()").Str("i")
}

// connectErr opens a session as postgres on database postgres.
func (c *cluster) connectErr() (*PgConn, error) { return c.connectAsErr(pgOSUser) }

// connectAsErr opens a session as a database role on database postgres.
func (c *cluster) connectAsErr(role string) (*PgConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return pgConnect(ctx, pgSocketPath(c.dir, c.port), role, "postgres")
}

// connectAs opens a session as role that t.Cleanup closes.
func (c *cluster) connectAs(t *testing.T, role string) *PgConn {
	t.Helper()
	conn, err := c.connectAsErr(role)
	if err != nil {
		t.Fatalf("connect as %s: %v", role, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// connect opens a session that t.Cleanup closes (before the cluster
// stops, since it is registered later).
func (c *cluster) connect(t *testing.T) *PgConn {
	t.Helper()
	conn, err := c.connectErr()
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// conn is connect for the test that owns the cluster.
func (c *cluster) conn(t *testing.T) *PgConn { return c.connect(t) }

// row runs a one-row query on a fresh session.
func (c *cluster) row(t *testing.T, sql string) Row {
	t.Helper()
	conn, err := c.connectErr()
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close()
	return mustRow(t, conn, sql)
}

// onNewSession runs fn on a fresh session with a 30 s deadline.
func (c *cluster) onNewSession(fn func(ctx context.Context, conn *PgConn) error) error {
	conn, err := c.connectErr()
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return fn(ctx, conn)
}

// rowErr is row without failing the test.
func (c *cluster) rowErr(sql string) (r Row, err error) {
	err = c.onNewSession(func(ctx context.Context, conn *PgConn) error {
		r, err = conn.QueryRow(ctx, sql)
		return err
	})
	return r, err
}

// rowsErr runs a query on a fresh session.
func (c *cluster) rowsErr(sql string) (rows []Row, err error) {
	err = c.onNewSession(func(ctx context.Context, conn *PgConn) error {
		rows, err = conn.Query(ctx, sql)
		return err
	})
	return rows, err
}

// status is the one row of plcoordinator.status.
func (c *cluster) status(t *testing.T) Row {
	t.Helper()
	return c.row(t, "SELECT * FROM plcoordinator.status")
}

// waitReady waits until the coordinator is ready.
func (c *cluster) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, func() error {
		r, err := c.rowErr(fmt.Sprintf("SELECT plcoordinator.wait_until_ready(%d) AS ok", min(timeout, time.Second).Milliseconds()))
		if err != nil {
			return err
		}
		if !r.Bool("ok") {
			return errors.New("not ready")
		}
		return nil
	})
}

// workerPID is the coordinator worker's pid (from plcoordinator.status).
func (c *cluster) workerPID(t *testing.T) int {
	t.Helper()
	r := c.status(t)
	if r.IsNull("pid") {
		t.Fatalf("plcoordinator.status has no pid: %v", r)
	}
	return int(r.Int("pid"))
}

// postmasterPID is the first line of postmaster.pid.
func (c *cluster) postmasterPID(t *testing.T) int {
	t.Helper()
	pid, err := c.postmasterPIDErr()
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func (c *cluster) postmasterPIDErr() (int, error) {
	b, err := os.ReadFile(filepath.Join(c.dataDir, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(line))
}

// logText is the server log so far.
func (c *cluster) logText() string {
	b, _ := os.ReadFile(c.logFile)
	return string(b)
}

// containers lists the ids of this instance's containers (running or not).
func (c *cluster) containers() ([]string, error) {
	return dockerIDs("label=plcoordinator.instance=" + c.instance)
}

// containersOf lists this instance's containers made for a backend pid.
func (c *cluster) containersOf(pid int) ([]string, error) {
	return dockerIDs("label=plcoordinator.instance="+c.instance, "label=plcoordinator.backend_pid="+strconv.Itoa(pid))
}

// dockerIDs runs docker ps -aq with the filters.
func dockerIDs(filters ...string) ([]string, error) {
	args := []string{"ps", "-aq", "--no-trunc"}
	for _, f := range filters {
		args = append(args, "--filter", f)
	}
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("docker ps: %v: %s", err, out)
	}
	return strings.Fields(string(out)), nil
}

// containerExists reports whether Docker still knows a container.
func containerExists(id string) (bool, error) {
	ids, err := dockerIDs("id=" + id)
	if err != nil {
		return false, err
	}
	return len(ids) > 0, nil
}

// waitGone waits until none of ids exists; it returns how long that took.
func waitGone(t *testing.T, timeout time.Duration, ids ...string) time.Duration {
	t.Helper()
	start := time.Now()
	eventually(t, timeout, func() error {
		var left []string
		for _, id := range ids {
			ok, err := containerExists(id)
			if err != nil {
				return err
			}
			if ok {
				left = append(left, short(id))
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("containers still exist: %v", left)
		}
		return nil
	})
	return time.Since(start)
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// procStatus reads a numeric field of /proc/<pid>/status ("Threads",
// "VmRSS"), without its unit.
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s line for pid %d", field, pid)
	return 0
}

// threads is the number of threads of a process.
func threads(t *testing.T, pid int) int { return int(procStatus(t, pid, "Threads")) }

// processAlive reports whether pid exists (and is not a zombie).
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// eventually polls fn at short intervals until it returns nil, and fails
// the test with fn's last error after timeout.
func eventually(t *testing.T, timeout time.Duration, fn func() error) {
	t.Helper()
	if err := poll(timeout, fn); err != nil {
		t.Fatalf("not within %s: %v", timeout, err)
	}
}

// poll is eventually without a test: it returns fn's last error.
func poll(timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	interval := 10 * time.Millisecond
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(interval)
		interval = min(interval*2, 100*time.Millisecond)
	}
}

func mustExec(t *testing.T, conn *PgConn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func mustRow(t *testing.T, conn *PgConn, sql string) Row {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := conn.QueryRow(ctx, sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return r
}

// queryErr runs sql expecting an error and returns it.
func queryErr(t *testing.T, conn *PgConn, sql string) *PgError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	_, err := conn.Query(ctx, sql)
	if err == nil {
		t.Fatalf("%s: succeeded, want an error", sql)
	}
	var pe *PgError
	if !errors.As(err, &pe) {
		t.Fatalf("%s: %v, want a server error", sql, err)
	}
	return pe
}

// acquire runs plcoordinator.acquire on conn.
func acquire(t *testing.T, conn *PgConn, runtime string) Row {
	t.Helper()
	return mustRow(t, conn, "SELECT * FROM plcoordinator.acquire("+lit(runtime)+")")
}

// running reports whether the postmaster runs.
func (c *cluster) running() bool {
	pid, err := c.postmasterPIDErr()
	return err == nil && processAlive(pid)
}

// stop shuts the server down (fast; immediate if that does not finish)
// and returns how long pg_ctl took.
func (c *cluster) stop(mode string) (time.Duration, error) {
	if !c.running() {
		return 0, nil
	}
	start := time.Now()
	out, err := c.pgctl("stop", "-m", mode, "-w", "-t", "30")
	d := time.Since(start)
	if err != nil {
		return d, fmt.Errorf("pg_ctl stop -m %s: %v\n%s", mode, err, out)
	}
	return d, nil
}

// kill ends a server that pg_ctl could not stop: SIGQUIT to the
// postmaster, then SIGKILL to it and its children.
func (c *cluster) kill() {
	pm, err := c.postmasterPIDErr()
	if err != nil || !processAlive(pm) {
		return
	}
	_ = syscall.Kill(pm, syscall.SIGQUIT)
	if poll(10*time.Second, func() error {
		if processAlive(pm) {
			return errors.New("alive")
		}
		return nil
	}) == nil {
		return
	}
	for _, p := range childrenOf(pm) {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	_ = syscall.Kill(pm, syscall.SIGKILL)
}

// childrenOf lists the pids whose parent is pid.
func childrenOf(pid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}

// cleanup stops the server and checks that its containers and socket
// directories are gone; whatever leaked is removed after the complaint.
//
// It stops with -m fast (immediate only if fast fails): an immediate stop
// sends SIGQUIT, which ends the worker at once by PostgreSQL's design, so
// its containers would stay until the next start's reconciler; fast is the
// shutdown that must leave nothing behind, and takes about 100 ms.
func (c *cluster) cleanup() {
	t := c.t
	if _, err := c.stop("fast"); err != nil {
		t.Errorf("fast shutdown failed: %v", err)
		if _, err := c.stop("immediate"); err != nil {
			t.Errorf("%v", err)
		}
	}
	c.kill()

	leaked := 0
	defer func() { recordLeaks(t, leaked) }()
	if c.instance != "" {
		var left []string
		err := poll(c.opts.shutdownTimeout+2*time.Second, func() error {
			ids, err := c.containers()
			if err != nil {
				return err
			}
			left = ids
			if len(ids) > 0 {
				return fmt.Errorf("%d container(s) left", len(ids))
			}
			return nil
		})
		if err != nil {
			out, _ := exec.Command("docker", "ps", "-a", "--filter", "label=plcoordinator.instance="+c.instance).CombinedOutput()
			t.Errorf("containers of instance %s remain after the server stopped: %v\n%s", c.instance, err, out)
			leaked += len(left)
			if len(left) > 0 {
				_ = exec.Command("docker", append([]string{"rm", "-f"}, left...)...).Run()
			}
		}
	}
	if ents, err := os.ReadDir(filepath.Join(c.socketDir, "c")); err == nil && len(ents) > 0 {
		names := make([]string, len(ents))
		for i, e := range ents {
			names[i] = e.Name()
		}
		t.Errorf("socket directories remain under %s/c: %v", c.socketDir, names)
		leaked += len(ents)
	}
	if t.Failed() {
		t.Logf("server log (%s), last lines:\n%s", c.logFile, tail(c.logText(), 60))
	}
	if os.Getenv("PLCI_KEEP") == "" {
		os.RemoveAll(c.dir)
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitAccepting waits until a new session can run a query (after a crash
// restart) and returns when that first succeeded.
func (c *cluster) waitAccepting(t *testing.T, timeout time.Duration) time.Time {
	t.Helper()
	eventually(t, timeout, func() error {
		_, err := c.rowErr("SELECT 1 AS one")
		return err
	})
	return time.Now()
}
