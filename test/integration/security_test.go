//go:build integration

package integration

// Security checks (issue 8): private directories, container hardening,
// exclusive containers, no access for other OS users.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// hardenedCaps is what a hardened container keeps (golib/internal/dockerx).
var hardenedCaps = []string{"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"}

// checkPrivateDir: a directory of mode 0700 owned by postgres.
func checkPrivateDir(t *testing.T, dir string) {
	t.Helper()
	fi, err := os.Lstat(dir)
	if err != nil {
		t.Errorf("%s: %v", dir, err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || fi.Mode().Perm() != 0o700 || int(st.Uid) != pgUID {
		t.Errorf("%s: mode %v, uid %d; want a directory, 0700, owned by postgres (%d)", dir, fi.Mode(), st.Uid, pgUID)
	}
}

// capNames normalises capability names (the engine may add CAP_).
func capNames(caps []string) []string {
	out := make([]string, len(caps))
	for i, c := range caps {
		out[i] = strings.TrimPrefix(strings.ToUpper(c), "CAP_")
	}
	slices.Sort(out)
	return out
}

// TestSecurity_DirsHardeningExclusive: socket_dir, its c/ and every
// per-container directory are 0700 and owned by postgres; another OS user
// cannot even reach the coordinator socket; every container runs with the
// documented hardening (CapDrop ALL, CapAdd exactly CHOWN DAC_OVERRIDE
// FOWNER SETUID SETGID, no-new-privileges, PidsLimit 256, no swap beyond
// the memory limit, network none unless enable_network, never
// privileged); and no two sessions ever receive the same container —
// concurrent cold starts, prewarmed containers, and containers that
// other sessions released.
func TestSecurity_DirsHardeningExclusive(t *testing.T) {
	track(t)
	c := newCluster(t, clusterOpts{runtimes: []runtimeSpec{
		{id: "plc_net", settings: `enable_network="yes"`},
		{id: "plc_pre", coordinator: `prewarm="2"`},
	}})

	// 12 sessions at once: 8 on plc_test, 3 on plc_pre (two from the
	// pool), 1 on plc_net.
	type grant struct {
		session int
		runtime string
		id      string
	}
	var (
		mu     sync.Mutex
		grants []grant
		wg     sync.WaitGroup
	)
	poolFull := func() {
		t.Helper()
		eventually(t, 15*time.Second, func() error {
			r, err := c.rowErr("SELECT count(*) AS n FROM plcoordinator.containers WHERE state = 'prewarmed'")
			if err != nil {
				return err
			}
			if r.Int("n") != 2 {
				return fmt.Errorf("%d prewarmed containers, want 2", r.Int("n"))
			}
			return nil
		})
	}
	poolFull()
	conns := make([]*PgConn, 12)
	errs := make([]error, len(conns))
	for i := range conns {
		conns[i] = c.conn(t)
	}
	rtOf := func(i int) string {
		switch {
		case i < 8:
			return plcTestRuntime
		case i < 11:
			return "plc_pre"
		}
		return "plc_net"
	}
	for i, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			r, err := conn.QueryRow(ctx, "SELECT * FROM plcoordinator.acquire("+lit(rtOf(i))+")")
			if err != nil {
				errs[i] = err
				return
			}
			mu.Lock()
			grants = append(grants, grant{i, rtOf(i), r.Str("container_id")})
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	owner := map[string]int{}
	exclusive := func(g grant) {
		t.Helper()
		if s, ok := owner[g.id]; ok && s != g.session {
			t.Errorf("container %s was given to session %d and to session %d", short(g.id), s, g.session)
		}
		owner[g.id] = g.session
	}
	for _, g := range grants {
		exclusive(g)
	}

	// Directories.
	checkPrivateDir(t, c.socketDir)
	checkPrivateDir(t, filepath.Join(c.socketDir, "c"))
	dirs, err := c.socketDirs()
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < len(conns) {
		t.Errorf("%d per-container directories for %d containers", len(dirs), len(conns))
	}
	for _, d := range dirs {
		checkPrivateDir(t, filepath.Join(c.socketDir, "c", d))
	}

	// Another OS user cannot reach the coordinator socket (the directory
	// is private); root is refused by SO_PEERCRED (TestSession_RawSocketAbuse).
	sock := strings.TrimPrefix(c.status(t).Str("address"), "unix:")
	if perl, err := exec.LookPath("perl"); err != nil {
		t.Logf("perl is missing: skipping the connect as user nobody")
	} else {
		cmd := exec.Command("runuser", "-u", "nobody", "--", perl, "-MSocket", "-e",
			`socket(S, PF_UNIX, SOCK_STREAM, 0) or die "socket: $!"; `+
				`if (connect(S, pack_sockaddr_un($ARGV[0]))) { print "connected\n"; exit 0 } print "$!\n"; exit 1`, sock)
		cmd.Dir = "/"
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "Permission denied") {
			t.Errorf("connect to %s as nobody: %v: %s, want Permission denied", sock, err, out)
		}
	}

	// Hardening of every container.
	poolFull()
	res := c.checkConsistent(t, 10*time.Second)
	if len(res.docker) != len(conns)+2 {
		t.Errorf("%d containers in Docker, want %d (12 sessions + the refilled pool)", len(res.docker), len(conns)+2)
	}
	for id, d := range res.docker {
		h := d.HostConfig
		rt := d.Config.Labels[labelRuntime]
		if got := capNames(h.CapDrop); !slices.Equal(got, []string{"ALL"}) {
			t.Errorf("%s (%s): CapDrop %v, want [ALL]", short(id), rt, h.CapDrop)
		}
		if got := capNames(h.CapAdd); !slices.Equal(got, hardenedCaps) {
			t.Errorf("%s (%s): CapAdd %v, want %v", short(id), rt, h.CapAdd, hardenedCaps)
		}
		if !slices.Contains(h.SecurityOpt, "no-new-privileges") && !slices.Contains(h.SecurityOpt, "no-new-privileges:true") {
			t.Errorf("%s (%s): SecurityOpt %v lacks no-new-privileges", short(id), rt, h.SecurityOpt)
		}
		if h.PidsLimit == nil || *h.PidsLimit != 256 {
			t.Errorf("%s (%s): PidsLimit %v, want 256", short(id), rt, h.PidsLimit)
		}
		if h.Privileged {
			t.Errorf("%s (%s): privileged", short(id), rt)
		}
		if h.Memory != 128<<20 || h.MemorySwap != h.Memory {
			t.Errorf("%s (%s): Memory %d, MemorySwap %d; want both 128 MiB", short(id), rt, h.Memory, h.MemorySwap)
		}
		if rt == "plc_net" {
			if h.NetworkMode == "none" {
				t.Errorf("%s (%s): NetworkMode none with enable_network", short(id), rt)
			}
		} else if h.NetworkMode != "none" {
			t.Errorf("%s (%s): NetworkMode %q, want none", short(id), rt, h.NetworkMode)
		}
		for _, b := range h.Binds {
			if strings.HasSuffix(b, ":/tmp/plcontainer:rw") && !strings.HasPrefix(b, filepath.Join(c.socketDir, "c")+"/") {
				t.Errorf("%s (%s): socket bind %s is outside %s/c", short(id), rt, b, c.socketDir)
			}
		}
	}

	// Released containers stay with their session: 8 sessions release,
	// 8 new sessions acquire, and none gets one of the released ones.
	for i := 0; i < 8; i++ {
		mustExec(t, conns[i], "SELECT plcoordinator.release('plc_test')")
	}
	fresh := make([]*PgConn, 8)
	for i := range fresh {
		fresh[i] = c.conn(t)
	}
	grants = nil
	for i, conn := range fresh {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			r, err := conn.QueryRow(ctx, "SELECT * FROM plcoordinator.acquire('plc_test')")
			if err != nil {
				errs[i] = err
				return
			}
			mu.Lock()
			grants = append(grants, grant{100 + i, plcTestRuntime, r.Str("container_id")})
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, g := range grants {
		exclusive(g)
	}
	// And the first sessions still get their own back.
	for i := 0; i < 8; i++ {
		r := acquire(t, conns[i], plcTestRuntime)
		exclusive(grant{i, plcTestRuntime, r.Str("container_id")})
		if !r.Bool("reused") {
			t.Errorf("session %d did not get its released container back: %v", i, r)
		}
	}
	c.checkAfterScenario(t, len(conns)+len(fresh)+2, false)
}
