//go:build integration

package dockerx

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The integration tests run against the local engine. They build their
// image from scratch (never pulling), label every container they create
// and remove it in t.Cleanup; TestMain fails the run if any labelled
// container is left over.

const (
	engineHost = "unix:///var/run/docker.sock"
	testImage  = "plcoordinator-dockerx-test:latest"
	// testLabel marks every container the tests create; its value is the
	// run id.
	testLabel = "plcoordinator.test.dockerx"
	// srcLabel on the image records the hash of the program and toolchain
	// it was built from, so later runs reuse it.
	srcLabel = "plcoordinator.test.dockerx.src"
)

// runID tells this run's containers apart from those of another run.
var runID = strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)

// testProgram is the only binary in the test image. Its first argument
// selects what it does.
const testProgram = `package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: prog sleep DURATION | exit CODE | oom | listen | status")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "sleep":
		d, err := time.ParseDuration(os.Args[2])
		if err != nil {
			os.Exit(2)
		}
		time.Sleep(d)
	case "exit":
		code, err := strconv.Atoi(os.Args[2])
		if err != nil {
			os.Exit(2)
		}
		os.Exit(code)
	case "oom":
		var hold [][]byte
		for {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			hold = append(hold, b)
			fmt.Println("allocated MiB:", len(hold))
		}
	case "listen":
		ln, err := net.Listen("tcp", ":8080")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		for {
			c, err := ln.Accept()
			if err != nil {
				continue
			}
			c.Write([]byte("ok\n"))
			c.Close()
		}
	case "status":
		data, err := os.ReadFile("/proc/self/status")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		for _, line := range strings.Split(string(data), "\n") {
			for _, key := range []string{"Uid:", "CapEff:", "CapBnd:", "NoNewPrivs:"} {
				if strings.HasPrefix(line, key) {
					fmt.Println(line)
				}
			}
		}
		// The engine reads stdout and stderr through separate pipes; the
		// pause keeps this line last in the log.
		time.Sleep(200 * time.Millisecond)
		fmt.Fprintln(os.Stderr, "status done")
	default:
		os.Exit(2)
	}
}
`

func TestMain(m *testing.M) {
	code := m.Run()
	if err := checkLeftovers(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		code = 1
	}
	os.Exit(code)
}

// checkLeftovers force-removes and reports any container that still
// carries the test label.
func checkLeftovers() error {
	c, err := New(Options{Host: engineHost})
	if err != nil {
		return err
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Ping(ctx); err != nil {
		return nil // the tests were skipped
	}
	left, err := c.List(ctx, map[string]string{testLabel: ""})
	if err != nil {
		return err
	}
	if len(left) == 0 {
		return nil
	}
	var ids []string
	for _, s := range left {
		ids = append(ids, shortID(s.ID))
		_ = c.Remove(ctx, s.ID)
	}
	return fmt.Errorf("containers left behind by the tests (now removed): %s", strings.Join(ids, " "))
}

// requireEngine returns a Client for the local engine or skips the test
// when the engine does not answer.
func requireEngine(t *testing.T) *Client {
	t.Helper()
	c, err := New(Options{Host: engineHost, CallTimeout: 30 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx); err != nil {
		t.Skipf("docker engine not available at %s: %v", engineHost, err)
	}
	return c
}

var (
	imageOnce sync.Once
	imageErr  error
)

// requireImage makes sure the test image exists, building it once per run.
func requireImage(t *testing.T, c *Client) {
	t.Helper()
	imageOnce.Do(func() { imageErr = buildImage(c, t.TempDir()) })
	require.NoError(t, imageErr, "building %s", testImage)
}

// buildImage compiles testProgram statically and imports it as a one-file
// image. An image from an earlier run built from the same source and
// toolchain is reused; an outdated one is replaced and removed.
func buildImage(c *Client, dir string) error {
	sum := sha256.Sum256([]byte(testProgram + runtime.Version() + runtime.GOARCH))
	hash := hex.EncodeToString(sum[:])[:16]

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	old, err := c.api.ImageInspect(ctx, testImage)
	switch {
	case err == nil && old.Config != nil && old.Config.Labels[srcLabel] == hash:
		return nil
	case err != nil && !IsNotFound(err):
		return err
	}

	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module dockerxtestprog\n\ngo 1.21\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(testProgram), 0o644); err != nil {
		return err
	}
	// "go test" puts its own toolchain first in PATH.
	goBin, err := exec.LookPath("go")
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", "prog", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOWORK=off", "GOTOOLCHAIN=local", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "prog"))
	if err != nil {
		return err
	}

	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	if err := tw.WriteHeader(&tar.Header{Name: "prog", Mode: 0o755, Size: int64(len(bin)), ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	if _, err := tw.Write(bin); err != nil {
		return err
	}
	// An empty /tmp, as the stock images have.
	if err := tw.WriteHeader(&tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777, ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}

	rc, err := c.api.ImageImport(ctx, image.ImportSource{Source: &layer, SourceName: "-"}, testImage, image.ImportOptions{
		Changes: []string{`ENTRYPOINT ["/prog"]`, "LABEL " + srcLabel + "=" + hash},
	})
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer rc.Close()
	if err := jsonStreamError(rc); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if old.ID != "" && old.Config != nil && old.Config.Labels[srcLabel] != "" {
		// The outdated image is ours (it carries srcLabel) and is now
		// untagged.
		_, _ = c.api.ImageRemove(ctx, old.ID, image.RemoveOptions{PruneChildren: true})
	}
	return nil
}

// jsonStreamError reads an engine progress stream and returns the first
// error it reports.
func jsonStreamError(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if msg.Error != "" {
			return fmt.Errorf("%s", msg.Error)
		}
	}
}

// testLabels returns the labels of a test container: the run label plus
// a per-test case label.
func testLabels(t *testing.T) map[string]string {
	return map[string]string{testLabel: runID, "plcoordinator.test.case": t.Name()}
}

// createContainer creates a labelled container from the test image and
// removes it when the test ends.
func createContainer(t *testing.T, c *Client, s Spec) string {
	t.Helper()
	s.Image = testImage
	if s.Labels == nil {
		s.Labels = testLabels(t)
	}
	s.Labels[testLabel] = runID
	id, err := c.Create(context.Background(), s)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, c.Remove(ctx, id))
	})
	return id
}

// startContainer creates and starts a container.
func startContainer(t *testing.T, c *Client, s Spec) string {
	t.Helper()
	id := createContainer(t, c, s)
	require.NoError(t, c.Start(context.Background(), id))
	return id
}

// waitExited polls until the container is no longer running.
func waitExited(t *testing.T, c *Client, id string) State {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := c.Inspect(context.Background(), id)
		require.NoError(t, err)
		if st.Status == "exited" || st.Status == "dead" {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s still %s", shortID(id), st.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func randomID(t *testing.T) string {
	b := make([]byte, 32)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// TestIntegration_createStartInspect covers the normal lifecycle of a
// hardened container and checks what the engine made of the spec.
func TestIntegration_createStartInspect(t *testing.T) {
	c := requireEngine(t)
	requireImage(t, c)
	ctx := context.Background()

	v, err := c.Ping(ctx)
	require.NoError(t, err)
	t.Logf("negotiated API version %s", v)

	labels := testLabels(t)
	id := startContainer(t, c, Spec{
		Cmd:         []string{"sleep", "120s"},
		Env:         []string{"EXECUTOR_UID=1000", "DB_NAME=testpy"},
		Labels:      labels,
		MemoryBytes: 64 << 20,
		CPUShares:   512,
		Binds:       []string{t.TempDir() + ":/tmp/plcontainer:rw"},
		Hardened:    true,
	})
	require.Len(t, id, 64)

	st, err := c.Inspect(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, id, st.ID)
	assert.Equal(t, "running", st.Status)
	assert.True(t, st.Running)
	assert.Positive(t, st.Pid)
	assert.False(t, st.OOMKilled)
	assert.False(t, st.StartedAt.IsZero())
	assert.True(t, st.FinishedAt.IsZero())
	assert.WithinDuration(t, time.Now(), st.CreatedAt, time.Minute)
	for k, v := range labels {
		assert.Equal(t, v, st.Labels[k], "label %s", k)
	}
	assert.Zero(t, st.HostPort)

	require.NoError(t, c.Start(ctx, id), "starting a running container succeeds")

	start := time.Now()
	mem, err := c.MemoryUsage(ctx, id)
	require.NoError(t, err)
	t.Logf("memory usage %d bytes, read in %v", mem, time.Since(start))
	assert.Positive(t, mem)
	assert.Less(t, mem, uint64(64<<20))

	logs, err := c.Logs(ctx, id, 10)
	require.NoError(t, err, "log driver none reads as empty")
	assert.Empty(t, logs)

	raw, err := c.api.ContainerInspect(ctx, id)
	require.NoError(t, err)
	hc := raw.HostConfig
	assert.Equal(t, []string{"ALL"}, []string(hc.CapDrop))
	assert.ElementsMatch(t, []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_SETGID", "CAP_SETUID"}, []string(hc.CapAdd))
	assert.Equal(t, []string{"no-new-privileges"}, hc.SecurityOpt)
	require.NotNil(t, hc.PidsLimit)
	assert.EqualValues(t, 256, *hc.PidsLimit)
	assert.EqualValues(t, 64<<20, hc.Memory)
	// Engines without swap accounting drop the swap limit (-1, with a
	// warning).
	assert.Contains(t, []int64{64 << 20, -1}, hc.MemorySwap)
	t.Logf("engine MemorySwap %d", hc.MemorySwap)
	assert.EqualValues(t, 512, hc.CPUShares)
	require.NotNil(t, hc.Init)
	assert.False(t, *hc.Init)
	assert.False(t, hc.Privileged)
	assert.False(t, hc.AutoRemove)
	assert.False(t, hc.ReadonlyRootfs)
	assert.Equal(t, "none", string(hc.NetworkMode))
	assert.Equal(t, "none", hc.LogConfig.Type)
	assert.True(t, raw.Config.NetworkDisabled)
	assert.Contains(t, raw.Config.Env, "DB_NAME=testpy")
	assert.Equal(t, []string{"/prog"}, []string(raw.Config.Entrypoint))
	assert.Equal(t, []string{"sleep", "120s"}, []string(raw.Config.Cmd))
}

// TestIntegration_hardenedProcess checks the capabilities and privileges
// the process really runs with, read back through Logs.
func TestIntegration_hardenedProcess(t *testing.T) {
	c := requireEngine(t)
	requireImage(t, c)
	id := startContainer(t, c, Spec{Cmd: []string{"status"}, Logging: true, Hardened: true})
	st := waitExited(t, c, id)
	require.Equal(t, 0, st.ExitCode)

	logs, err := c.Logs(context.Background(), id, 100)
	require.NoError(t, err)
	fields := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	// CHOWN(0) DAC_OVERRIDE(1) FOWNER(3) SETGID(6) SETUID(7) = 0xcb.
	assert.Equal(t, "00000000000000cb", fields["CapEff"], logs)
	assert.Equal(t, "00000000000000cb", fields["CapBnd"], logs)
	assert.Equal(t, "1", fields["NoNewPrivs"], logs)
	assert.True(t, strings.HasPrefix(fields["Uid"], "0"), "runs as root: %q", fields["Uid"])
	assert.Contains(t, logs, "status done", "stderr is included")

	last, err := c.Logs(context.Background(), id, 1)
	require.NoError(t, err)
	assert.Equal(t, "status done\n", last)
}

// TestIntegration_listByLabel asserts that List finds containers, started
// or not, by label value and by label presence.
func TestIntegration_listByLabel(t *testing.T) {
	c := requireEngine(t)
	requireImage(t, c)
	ctx := context.Background()
	group := randomID(t)[:12]
	a := createContainer(t, c, Spec{Cmd: []string{"sleep", "60s"}, Labels: map[string]string{"plcoordinator.test.group": group, "plcoordinator.test.role": "a"}})
	b := startContainer(t, c, Spec{Cmd: []string{"sleep", "60s"}, Labels: map[string]string{"plcoordinator.test.group": group, "plcoordinator.test.role": "b"}})

	got, err := c.List(ctx, map[string]string{"plcoordinator.test.group": group, "plcoordinator.test.role": "a"})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, a, got[0].ID)
	assert.Equal(t, "created", got[0].State)
	assert.Equal(t, "a", got[0].Labels["plcoordinator.test.role"])
	assert.Equal(t, runID, got[0].Labels[testLabel])
	assert.WithinDuration(t, time.Now(), got[0].Created, time.Minute)

	got, err = c.List(ctx, map[string]string{"plcoordinator.test.group": group, "plcoordinator.test.role": ""})
	require.NoError(t, err)
	ids := []string{}
	for _, s := range got {
		ids = append(ids, s.ID)
	}
	assert.ElementsMatch(t, []string{a, b}, ids)

	got, err = c.List(ctx, map[string]string{"plcoordinator.test.group": group, "plcoordinator.test.role": "c"})
	require.NoError(t, err)
	assert.Empty(t, got)
}

// TestIntegration_remove covers removal of a running container, repeated
// removal and unknown ids.
func TestIntegration_remove(t *testing.T) {
	c := requireEngine(t)
	requireImage(t, c)
	ctx := context.Background()
	id := startContainer(t, c, Spec{Cmd: []string{"sleep", "120s"}})

	require.NoError(t, c.Remove(ctx, id))
	_, err := c.Inspect(ctx, id)
	require.Error(t, err)
	assert.True(t, IsNotFound(err), "%v", err)
	require.NoError(t, c.Remove(ctx, id), "removing twice succeeds")
	require.NoError(t, c.Remove(ctx, randomID(t)), "removing an unknown id succeeds")
}

// TestIntegration_unknown asserts NotFound classification for unknown
// containers and images.
func TestIntegration_unknown(t *testing.T) {
	c := requireEngine(t)
	ctx := context.Background()
	unknown := randomID(t)

	_, err := c.Inspect(ctx, unknown)
	require.Error(t, err)
	assert.True(t, IsNotFound(err), "%v", err)
	assert.False(t, IsTransient(err))
	assert.False(t, IsUnreachable(err))

	err = c.Start(ctx, unknown)
	assert.True(t, IsNotFound(err), "%v", err)
	err = c.Kill(ctx, unknown)
	assert.True(t, IsNotFound(err), "%v", err)
	_, err = c.MemoryUsage(ctx, unknown)
	assert.True(t, IsNotFound(err), "%v", err)

	_, err = c.Create(ctx, Spec{Image: "plcoordinator-dockerx-test-missing:latest", Labels: testLabels(t)})
	require.Error(t, err)
	assert.True(t, IsNotFound(err), "a missing image is not pulled: %v", err)
}

// TestIntegration_nameConflict asserts that a duplicate name is a
// conflict.
func TestIntegration_nameConflict(t *testing.T) {
	c := requireEngine(t)
	requireImage(t, c)
	name := "plcoordinator-dockerx-test-" + randomID(t)[:12]
	createContainer(t, c, Spec{Name: name, Cmd: []string{"sleep", "1s"}})
	_, err := c.Create(context.Background(), Spec{Name: name, Image: testImage, Labels: testLabels(t)})
	require.Error(t, err)
	assert.True(t, IsConflict(err), "%v", err)
}

// TestIntegration_kill asserts that Kill stops a running container with
// SIGKILL and that killing it again is a conflict.
func TestIntegration_kill(t *testing.T) {
	c := requireEngine(t)
	requireImage(t, c)
	ctx := context.Background()
	id := startContainer(t, c, Spec{Cmd: []string{"sleep", "120s"}})
	require.NoError(t, c.Kill(ctx, id))
	st := waitExited(t, c, id)
	assert.Equal(t, 137, st.ExitCode)
	assert.False(t, st.OOMKilled)
	err := c.Kill(ctx, id)
	require.Error(t, err)
	assert.True(t, IsConflict(err), "%v", err)
}

// TestIntegration_eventsDie asserts that a container that exits produces
// a "die" event with its exit code.
func TestIntegration_eventsDie(t *testing.T) {
	c := requireEngine(t)
	requireImage(t, c)
	labels := testLabels(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	evc, errc := c.Events(ctx, labels)

	id := startContainer(t, c, Spec{Cmd: []string{"exit", "3"}, Labels: labels})
	var actions []string
	for {
		select {
		case ev, ok := <-evc:
			require.True(t, ok, "event stream closed")
			if ev.ID != id {
				continue
			}
			actions = append(actions, ev.Action)
			if ev.Action != "die" {
				continue
			}
			assert.Equal(t, 3, ev.ExitCode)
			assert.Equal(t, labels[testLabel], ev.Labels[testLabel])
			assert.NotContains(t, ev.Labels, "exitCode")
			assert.WithinDuration(t, time.Now(), ev.Time, time.Minute)
			assert.Contains(t, actions, "start")

			st, err := c.Inspect(context.Background(), id)
			require.NoError(t, err)
			assert.Equal(t, "exited", st.Status)
			assert.Equal(t, 3, st.ExitCode)
			assert.False(t, st.FinishedAt.IsZero())

			cancel()
			for range evc {
			}
			for err := range errc {
				t.Errorf("error after cancel: %v", err)
			}
			return
		case err := <-errc:
			t.Fatalf("events: %v", err)
		case <-ctx.Done():
			t.Fatalf("no die event; saw %v", actions)
		}
	}
}

// TestIntegration_oomKilled asserts that a container exceeding its memory
// limit is reported as OOM-killed.
func TestIntegration_oomKilled(t *testing.T) {
	c := requireEngine(t)
	requireImage(t, c)
	id := startContainer(t, c, Spec{Cmd: []string{"oom"}, MemoryBytes: 32 << 20, Hardened: true})
	st := waitExited(t, c, id)
	assert.True(t, st.OOMKilled, "%+v", st)
	assert.Equal(t, 137, st.ExitCode)
}

// TestIntegration_publish8080 asserts that 8080/tcp is published on
// 127.0.0.1 only and reachable there.
func TestIntegration_publish8080(t *testing.T) {
	c := requireEngine(t)
	requireImage(t, c)
	ctx := context.Background()
	id := startContainer(t, c, Spec{Cmd: []string{"listen"}, Network: true, PublishTCP8080: true, Hardened: true})

	st, err := c.Inspect(ctx, id)
	require.NoError(t, err)
	require.Positive(t, st.HostPort)

	raw, err := c.api.ContainerInspect(ctx, id)
	require.NoError(t, err)
	bindings := raw.NetworkSettings.Ports["8080/tcp"]
	require.NotEmpty(t, bindings)
	for _, b := range bindings {
		assert.Equal(t, "127.0.0.1", b.HostIP, "bound only on loopback: %+v", bindings)
	}
	for p, bs := range raw.NetworkSettings.Ports {
		for _, b := range bs {
			assert.NotEqual(t, "0.0.0.0", b.HostIP, "port %s published on all addresses", p)
		}
	}

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(st.HostPort))
	deadline := time.Now().Add(10 * time.Second)
	for {
		line, err := readLine(addr)
		if err == nil {
			assert.Equal(t, "ok", line)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("connect %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func readLine(addr string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}

// TestIntegration_unreachable asserts that a missing engine is reported
// as unreachable within the call timeout.
func TestIntegration_unreachable(t *testing.T) {
	const timeout = 2 * time.Second
	c, err := New(Options{Host: "unix:///nonexistent.sock", CallTimeout: timeout})
	require.NoError(t, err)
	defer c.Close()
	ctx := context.Background()

	calls := map[string]func() error{
		"ping":    func() error { _, err := c.Ping(ctx); return err },
		"create":  func() error { _, err := c.Create(ctx, Spec{Image: testImage}); return err },
		"inspect": func() error { _, err := c.Inspect(ctx, "x"); return err },
		"list":    func() error { _, err := c.List(ctx, nil); return err },
		"remove":  func() error { return c.Remove(ctx, "x") },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			err := call()
			require.Error(t, err)
			assert.Less(t, time.Since(start), timeout)
			assert.True(t, IsUnreachable(err), "%v", err)
			assert.True(t, IsTransient(err), "%v", err)
		})
	}
}
