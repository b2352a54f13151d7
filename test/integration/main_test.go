//go:build integration

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Paths and names the harness depends on.
const (
	pgBin     = "/usr/lib/postgresql/15/bin"
	testImage = "plcoordinator-test-client:latest"
	pgOSUser  = "postgres"
)

var (
	// skipReason is set by TestMain when the environment cannot run the
	// tests; every test then skips with it.
	skipReason string
	// repoRoot is the module root (the tests run in test/integration).
	repoRoot string
	// abuseBin is the raw-socket helper built by TestMain.
	abuseBin string
	// pgUID and pgGID are the ids of the postgres OS user.
	pgUID, pgGID int

	resultsMu sync.Mutex
	results   []result
	// leaks holds, by test name, the containers and socket directories
	// the cluster cleanups found left behind (see recordLeaks).
	leaks = map[string]int{}
)

type result struct {
	name     string
	status   string
	duration time.Duration
	leaked   int // containers + socket directories left; -1 if the test made no cluster
}

// recordLeaks adds n leftovers (containers and socket directories found
// by a cluster's cleanup) to the test's count in the summary.
func recordLeaks(t *testing.T, n int) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	leaks[t.Name()] += n
}

// track records the test's result for the summary and skips it when the
// environment is unusable. Call it first in every test: its cleanup runs
// last, after the cluster's checks.
func track(t *testing.T) {
	t.Helper()
	start := time.Now()
	t.Cleanup(func() {
		status := "PASS"
		switch {
		case t.Skipped():
			status = "SKIP"
		case t.Failed():
			status = "FAIL"
		}
		resultsMu.Lock()
		leaked, ok := leaks[t.Name()]
		if !ok {
			leaked = -1
		}
		results = append(results, result{t.Name(), status, time.Since(start), leaked})
		resultsMu.Unlock()
	})
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

func TestMain(m *testing.M) {
	start := time.Now()
	var cleanup func()
	skipReason, cleanup = prepare()
	if skipReason != "" {
		fmt.Fprintf(os.Stderr, "integration: SKIPPING every test: %s\n", skipReason)
	}
	code := m.Run()
	if cleanup != nil {
		cleanup()
	}
	printSummary(time.Since(start))
	os.Exit(code)
}

// prepare checks the environment, builds the test image and the abuse
// helper. It returns a reason to skip everything, or "".
func prepare() (string, func()) {
	wd, err := os.Getwd()
	if err != nil {
		return "cannot get the working directory: " + err.Error(), nil
	}
	repoRoot = filepath.Clean(filepath.Join(wd, "..", ".."))
	if os.Geteuid() != 0 {
		return "the integration tests must run as root (they start PostgreSQL as the OS user postgres with runuser)", nil
	}
	for _, f := range []string{"initdb", "pg_ctl", "postgres", "pg_config"} {
		if _, err := os.Stat(filepath.Join(pgBin, f)); err != nil {
			return fmt.Sprintf("PostgreSQL 15 binaries are missing (%s/%s); install postgresql-15", pgBin, f), nil
		}
	}
	if _, err := exec.LookPath("runuser"); err != nil {
		return "runuser is missing", nil
	}
	u, err := user.Lookup(pgOSUser)
	if err != nil {
		return "OS user postgres does not exist", nil
	}
	fmt.Sscan(u.Uid, &pgUID)
	fmt.Sscan(u.Gid, &pgGID)
	if _, err := exec.LookPath("docker"); err != nil {
		return "the docker CLI is missing", nil
	}
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		return "the Docker engine does not answer: " + strings.TrimSpace(string(out)), nil
	}
	// The server runs as postgres, which must reach the Docker socket.
	if out, err := exec.Command("runuser", "-u", pgOSUser, "--", "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		return "the OS user postgres cannot use Docker (add it to the docker group): " + strings.TrimSpace(string(out)), nil
	}
	libdir, err := exec.Command(filepath.Join(pgBin, "pg_config"), "--pkglibdir").Output()
	if err != nil {
		return "pg_config --pkglibdir failed: " + err.Error(), nil
	}
	for _, f := range []string{"plcoordinator.so", "plcoordinator_go.so"} {
		if _, err := os.Stat(filepath.Join(strings.TrimSpace(string(libdir)), f)); err != nil {
			return fmt.Sprintf("%s is not installed; run make -s && make -s install first", f), nil
		}
	}

	goTool := "go"
	if _, err := exec.LookPath(goTool); err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	cmd := exec.Command(filepath.Join(repoRoot, "test/image/build.sh"), "--if-missing")
	cmd.Env = append(os.Environ(), "GO="+goTool)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Sprintf("building the test image failed: %v\n%s", err, out), nil
	}

	binDir, err := os.MkdirTemp("/tmp", "plci-bin.")
	if err != nil {
		return "cannot create a temp dir: " + err.Error(), nil
	}
	cleanup := func() { os.RemoveAll(binDir) }
	if err := os.Chmod(binDir, 0o755); err != nil {
		return "chmod: " + err.Error(), cleanup
	}
	abuseBin = filepath.Join(binDir, "plci-abuse")
	cmd = exec.Command(goTool, "build", "-o", abuseBin, "./test/integration/abuse")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Sprintf("building the abuse helper failed: %v\n%s", err, out), cleanup
	}
	return "", cleanup
}

func printSummary(total time.Duration) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	if len(results) == 0 {
		return
	}
	width := len("TEST")
	for _, r := range results {
		width = max(width, len(r.name))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-*s  %-6s  %6s  %9s\n", width, "TEST", "RESULT", "LEAKED", "DURATION")
	fmt.Fprintf(&b, "%s\n", strings.Repeat("-", width+27))
	counts := map[string]int{}
	leakedTotal := 0
	for _, r := range results {
		counts[r.status]++
		leaked := "-"
		if r.leaked >= 0 {
			leaked = fmt.Sprint(r.leaked)
			leakedTotal += r.leaked
		}
		fmt.Fprintf(&b, "%-*s  %-6s  %6s  %8.1fs\n", width, r.name, r.status, leaked, r.duration.Seconds())
	}
	fmt.Fprintf(&b, "%s\n", strings.Repeat("-", width+27))
	fmt.Fprintf(&b, "%d passed, %d failed, %d skipped; %d container(s) and socket directories leaked; total %.1fs\n",
		counts["PASS"], counts["FAIL"], counts["SKIP"], leakedTotal, total.Seconds())
	fmt.Fprintf(&b, "LEAKED: containers of the test's instance plus socket directories left after its server stopped (- = no server)\n")
	fmt.Print(b.String())
	// go test shows a passing package's output only with -v: test/run.sh
	// asks for the table in a file.
	if path := os.Getenv("PLCI_SUMMARY"); path != "" {
		_ = os.WriteFile(path, []byte(b.String()), 0o644)
	}
}
