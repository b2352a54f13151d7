//go:build integration

package integration

// Helpers of the monitoring, fault and security scenarios (issues 6 and
// 8): docker inspect, the check that plcoordinator.containers, Docker and
// the socket directories agree, crash-restart waits, a counting Docker
// proxy the server can reach, and process memory.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plcoordinator/plcoordinator/test/internal/dockerproxy"
)

// Labels the coordinator puts on its containers (golib/internal/cache).
const (
	labelInstance   = "plcoordinator.instance"
	labelGeneration = "plcoordinator.generation"
	labelBackendPID = "plcoordinator.backend_pid"
	labelRuntime    = "plcoordinator.runtime"
	labelName       = "plcoordinator.name"
)

// inspected is the part of `docker inspect` the tests look at.
type inspected struct {
	ID     string `json:"Id"`
	Name   string
	Config struct {
		Labels map[string]string
		Env    []string
	}
	State struct {
		Status    string
		Running   bool
		OOMKilled bool
		ExitCode  int
	}
	HostConfig struct {
		CapDrop     []string
		CapAdd      []string
		SecurityOpt []string
		PidsLimit   *int64
		NetworkMode string
		Privileged  bool
		Memory      int64
		MemorySwap  int64
		Binds       []string
	}
}

// dockerInspect inspects the containers that still exist among ids, by
// full id. Missing ones are simply absent from the map.
func dockerInspect(ids ...string) (map[string]inspected, error) {
	out := map[string]inspected{}
	if len(ids) == 0 {
		return out, nil
	}
	cmd := exec.Command("docker", append([]string{"inspect", "--type", "container"}, ids...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	var list []inspected
	if jerr := json.Unmarshal(stdout, &list); jerr != nil {
		return nil, fmt.Errorf("docker inspect: %v (%v): %s", err, jerr, stderr.String())
	}
	for _, c := range list {
		out[c.ID] = c
	}
	return out, nil
}

// inspectOne inspects one container; it fails the test if it is missing.
func inspectOne(t *testing.T, id string) inspected {
	t.Helper()
	m, err := dockerInspect(id)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := m[id]
	if !ok {
		t.Fatalf("container %s does not exist", short(id))
	}
	return c
}

// containerRows reads plcoordinator.containers as a superuser, with the
// database's oid (for the databaseid label) and the container's directory
// name (the plcoordinator.name label) added.
func (c *cluster) containerRowsErr() ([]Row, error) {
	rows, err := c.rowsErr(`SELECT v.*, d.oid::text AS dboid
		FROM plcoordinator.containers v LEFT JOIN pg_database d ON d.datname = v.database`)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		name := ""
		if p, ok := strings.CutPrefix(r.Str("address"), "unix:"); ok {
			name = filepath.Base(filepath.Dir(p))
		}
		r["name"] = &name
	}
	return rows, nil
}

// containerRows is containerRowsErr that fails the test.
func (c *cluster) containerRows(t *testing.T) []Row {
	t.Helper()
	rows, err := c.containerRowsErr()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// rowOf returns the view's row of a container id, or nil.
func rowOf(rows []Row, id string) Row {
	for _, r := range rows {
		if r.Str("container_id") == id {
			return r
		}
	}
	return nil
}

// socketDirs lists the per-container directories under socket_dir/c.
func (c *cluster) socketDirs() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(c.socketDir, "c"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names, nil
}

// consistency is what checkConsistent found.
type consistency struct {
	rows    []Row
	docker  map[string]inspected // by id
	notes   []string             // facts worth a log line, not failures
	lastErr error
}

// consistencyErr compares plcoordinator.containers with Docker and with
// the socket directories:
//   - every container labelled with the instance is a row of the view
//     (matched by its plcoordinator.name label and the row's directory), so
//     nothing beyond the view's containers exists: no leak;
//   - every row with a container id that is not stopping exists in Docker
//     with that id, and its labels, state, exit code and OOM flag agree;
//   - every socket directory belongs to a row, and every row that is not
//     starting or stopping has its directory.
func (c *cluster) consistencyErr() (*consistency, error) {
	rows, err := c.containerRowsErr()
	if err != nil {
		return nil, err
	}
	ids, err := c.containers()
	if err != nil {
		return nil, err
	}
	docker, err := dockerInspect(ids...)
	if err != nil {
		return nil, err
	}
	dirs, err := c.socketDirs()
	if err != nil {
		return nil, err
	}
	res := &consistency{rows: rows, docker: docker}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	byName := map[string]Row{}
	for _, r := range rows {
		byName[r.Str("name")] = r
	}
	byID := map[string]inspected{}
	for _, d := range docker {
		byID[d.ID] = d
		r := byName[d.Config.Labels[labelName]]
		if r == nil {
			bad("container %s (%s, %s) is not in plcoordinator.containers", short(d.ID), d.Config.Labels[labelName], d.State.Status)
			continue
		}
		if id := r.Str("container_id"); id != "" && id != d.ID {
			bad("row %s shows container %s, Docker's container with its name is %s", r.Str("name"), short(id), short(d.ID))
			continue
		}
		if note := rowMatchesDocker(c, r, d, bad); note != "" {
			res.notes = append(res.notes, note)
		}
	}
	for _, r := range rows {
		id, st := r.Str("container_id"), r.Str("state")
		if id != "" && st != "stopping" {
			if _, ok := byID[id]; !ok {
				bad("row %s (%s) lists container %s, which Docker does not know", r.Str("name"), st, short(id))
			}
		}
	}
	dirSet := map[string]bool{}
	for _, d := range dirs {
		dirSet[d] = true
		if byName[d] == nil {
			bad("socket directory %s belongs to no container of the view", d)
		}
	}
	for _, r := range rows {
		if st := r.Str("state"); st != "starting" && st != "stopping" && !dirSet[r.Str("name")] {
			bad("row %s (%s) has no socket directory", r.Str("name"), st)
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return res, errors.New(strings.Join(problems, "; "))
	}
	return res, nil
}

// rowMatchesDocker compares one row with its container. It returns a note
// for a container made for the prewarm pool and then handed to a session:
// Docker labels cannot change, so it keeps the pool's labels.
func rowMatchesDocker(c *cluster, r Row, d inspected, bad func(string, ...any)) string {
	l := d.Config.Labels
	name := r.Str("name")
	want := map[string]string{labelInstance: c.instance, labelRuntime: r.Str("runtime_id"), labelName: name,
		"dbid": "-1", "segindex": "-1"}
	note := ""
	if l[labelBackendPID] == "0" {
		// Created for the prewarm pool.
		want["owner"], want["databaseid"] = "", "0"
		if r.Str("state") != "prewarmed" && r.Str("state") != "starting" {
			note = fmt.Sprintf("container %s was prewarmed and then given to pid %s (owner %s): its Docker labels still say backend_pid 0, owner \"\"",
				short(d.ID), r.Str("backend_pid"), r.Str("owner"))
		}
	} else {
		want[labelBackendPID] = r.Str("backend_pid")
		want["owner"] = r.Str("owner")
		want["databaseid"] = r.Str("dboid")
	}
	for k, v := range want {
		if got, ok := l[k]; !ok || got != v {
			bad("container %s: label %s = %q, want %q (view row %v)", short(d.ID), k, got, v, r)
		}
	}
	if l[labelGeneration] == "" {
		bad("container %s has no %s label", short(d.ID), labelGeneration)
	}
	st := r.Str("state")
	switch st {
	case "in use", "idle", "ready", "prewarmed":
		if !d.State.Running {
			bad("container %s is %q in the view but %s in Docker (exit %d, OOM %t)", short(d.ID), st, d.State.Status,
				d.State.ExitCode, d.State.OOMKilled)
		}
		if !r.IsNull("exit_code") || r.Bool("oom_killed") {
			bad("running container %s: view exit_code %q, oom_killed %q", short(d.ID), r.Str("exit_code"), r.Str("oom_killed"))
		}
	case "exited":
		if d.State.Running {
			bad("container %s is exited in the view but running in Docker", short(d.ID))
		}
		if r.IsNull("exit_code") || int(r.Int("exit_code")) != d.State.ExitCode {
			bad("container %s: view exit_code %q, Docker's %d", short(d.ID), r.Str("exit_code"), d.State.ExitCode)
		}
		if r.Bool("oom_killed") != d.State.OOMKilled {
			bad("container %s: view oom_killed %t, Docker's OOMKilled %t", short(d.ID), r.Bool("oom_killed"), d.State.OOMKilled)
		}
	case "starting", "stopping":
	default:
		bad("container %s: unknown state %q", short(d.ID), st)
	}
	return note
}

// checkConsistent waits until consistencyErr finds nothing (transient
// differences, such as a die event on its way, settle within the timeout)
// and returns the last comparison. Notes are logged once.
func (c *cluster) checkConsistent(t *testing.T, timeout time.Duration) *consistency {
	t.Helper()
	var last *consistency
	eventually(t, timeout, func() error {
		res, err := c.consistencyErr()
		if res != nil {
			last = res
		}
		return err
	})
	c.logNotes(t, last.notes)
	return last
}

// logNotes logs each note once per cluster.
func (c *cluster) logNotes(t *testing.T, notes []string) {
	t.Helper()
	c.notesMu.Lock()
	defer c.notesMu.Unlock()
	if c.notes == nil {
		c.notes = map[string]bool{}
	}
	for _, n := range notes {
		if !c.notes[n] {
			c.notes[n] = true
			t.Logf("note: %s", n)
		}
	}
}

// checkAfterScenario is what every fault scenario asserts at its end, with
// the server running: the view, Docker and the socket directories agree
// (so no container or directory exists beyond the view's), the view holds
// exactly want containers, and, unless crashAllowed, PostgreSQL never
// crash-restarted.
func (c *cluster) checkAfterScenario(t *testing.T, want int, crashAllowed bool) {
	t.Helper()
	var res *consistency
	eventually(t, 15*time.Second, func() error {
		r, err := c.consistencyErr()
		if err != nil {
			return err
		}
		res = r
		if len(r.rows) != want || len(r.docker) != want {
			return fmt.Errorf("%d containers in the view and %d in Docker, want %d", len(r.rows), len(r.docker), want)
		}
		return nil
	})
	c.logNotes(t, res.notes)
	if !crashAllowed {
		c.assertNoCrashRestart(t)
	}
}

// assertNoCrashRestart fails if PostgreSQL crash-restarted.
func (c *cluster) assertNoCrashRestart(t *testing.T) {
	t.Helper()
	if log := c.logText(); strings.Contains(log, crashRestartMsg) {
		i := strings.Index(log, crashRestartMsg)
		t.Errorf("the server log contains %q: the cluster was crash-restarted\n%s", crashRestartMsg,
			tail(log[:min(len(log), i+200)], 15))
	}
}

// reinitCount counts the crash restarts in the server log.
func (c *cluster) reinitCount() int {
	return strings.Count(c.logText(), "all server processes terminated; reinitializing")
}

// awaitCrashRestart waits for a crash restart after the log held before
// of them, then until the server accepts connections again; it returns
// that moment.
func (c *cluster) awaitCrashRestart(t *testing.T, before int) time.Time {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		if c.reinitCount() == before {
			return fmt.Errorf("no crash restart in the log yet")
		}
		return nil
	})
	return c.waitAccepting(t, 30*time.Second)
}

// waitOldGone waits until none of old exists and no socket directory is
// left that the view does not own, at most limit after since; it logs how
// long that took.
func (c *cluster) waitOldGone(t *testing.T, since time.Time, limit time.Duration, old []string) {
	t.Helper()
	err := poll(limit-time.Since(since), func() error {
		all, err := c.containers()
		if err != nil {
			return err
		}
		var left []string
		for _, id := range all {
			for _, o := range old {
				if id == o {
					left = append(left, short(id))
				}
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("old containers remain: %v", left)
		}
		return nil
	})
	if err != nil {
		out, _ := exec.Command("docker", "ps", "-a", "--filter", "label=plcoordinator.instance="+c.instance).CombinedOutput()
		t.Fatalf("%s after the server accepted connections again: %v\n%s", limit, err, out)
	}
	t.Logf("old containers gone %s after the server accepted connections again", time.Since(since).Round(time.Millisecond))
}

// startAgain starts a stopped server (same data directory, port and log).
func (c *cluster) startAgain(t *testing.T) time.Time {
	t.Helper()
	if out, err := c.pgctl("start", "-w", "-t", "60", "-l", c.logFile); err != nil {
		t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, tail(c.logText(), 30))
	}
	return time.Now()
}

// vmRSSkB reads VmRSS (kB) of a process.
func vmRSSkB(t *testing.T, pid int) int64 { return procStatus(t, pid, "VmRSS") }

// dockerProxy is a dockerproxy.Proxy on a Unix socket the server (OS user
// postgres) can use. Make it before newCluster, so that it outlives the
// cluster's shutdown, which removes containers through it.
type dockerProxy struct {
	*dockerproxy.Proxy
	sock string
	mu   sync.Mutex
	up   bool
}

func newDockerProxy(t *testing.T) *dockerProxy {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "plci-px.")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := &dockerProxy{sock: filepath.Join(dir, "docker.sock")}
	p.Proxy = dockerproxy.New("unix", p.sock, dockerproxy.DefaultEngine)
	t.Cleanup(func() {
		p.Cut()
		os.RemoveAll(dir)
	})
	p.Start(t)
	return p
}

// Start (re)opens the proxy socket, mode 0666.
func (p *dockerProxy) Start(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.up {
		return
	}
	_ = os.Remove(p.sock)
	if err := p.Proxy.Start(); err != nil {
		t.Fatalf("docker proxy: %v", err)
	}
	if err := os.Chmod(p.sock, 0o666); err != nil {
		t.Fatal(err)
	}
	p.up = true
}

// Cut makes the engine unreachable through the proxy.
func (p *dockerProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Proxy.Cut()
	p.up = false
}

// restoreAtEnd makes sure the proxy is up when the cluster stops (register
// it after newCluster: cleanups run last-in first-out).
func (p *dockerProxy) restoreAtEnd(t *testing.T) {
	t.Cleanup(func() { p.Start(t) })
}

// diffByPath describes the requests counted between two ByPath snapshots.
func diffByPath(before, after map[string]int64) string {
	var parts []string
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			parts = append(parts, fmt.Sprintf("%s ×%d", k, d))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
