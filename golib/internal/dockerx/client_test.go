package dockerx

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeAPIVersion is the version the fake engine announces, the one of the
// Docker 20.10 engines PL/Container runs on.
const fakeAPIVersion = "1.41"

// versionPrefix matches the "/v1.xx" prefix of versioned API paths.
var versionPrefix = regexp.MustCompile(`^/v[0-9.]+`)

// fakeEngine is a minimal Engine API served over TCP on 127.0.0.1. Its
// handler sees the path without the version prefix; the prefix seen last
// is recorded.
type fakeEngine struct {
	srv *httptest.Server

	mu          sync.Mutex
	lastVersion string
	lastQuery   url.Values
	lastHeader  http.Header
}

// newFakeEngine serves handle for every versioned request and answers
// /_ping itself.
func newFakeEngine(t *testing.T, handle http.HandlerFunc) *fakeEngine {
	t.Helper()
	f := &fakeEngine{}
	f.srv = httptest.NewServer(f.handler(handle))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeEngine) handler(handle http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.lastHeader = r.Header.Clone()
		f.mu.Unlock()
		if r.URL.Path == "/_ping" {
			w.Header().Set("Api-Version", fakeAPIVersion)
			w.Header().Set("Ostype", "linux")
			_, _ = w.Write([]byte("OK"))
			return
		}
		f.mu.Lock()
		f.lastVersion = versionPrefix.FindString(r.URL.Path)
		f.lastQuery = r.URL.Query()
		f.mu.Unlock()
		r.URL.Path = versionPrefix.ReplaceAllString(r.URL.Path, "")
		handle(w, r)
	})
}

func (f *fakeEngine) host() string {
	return "tcp://" + f.srv.Listener.Addr().String()
}

func (f *fakeEngine) query() url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastQuery
}

func (f *fakeEngine) header() http.Header {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastHeader
}

func (f *fakeEngine) version() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastVersion
}

// client returns a Client for the fake engine with a short call timeout.
func (f *fakeEngine) client(t *testing.T) *Client {
	t.Helper()
	c, err := New(Options{Host: f.host(), CallTimeout: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// apiError writes an Engine API error response.
func apiError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func TestNew_invalid(t *testing.T) {
	cases := []struct {
		name string
		opts Options
	}{
		{"no scheme", Options{Host: "/var/run/docker.sock"}},
		{"http scheme", Options{Host: "http://127.0.0.1:2375"}},
		{"ssh scheme", Options{Host: "ssh://user@host"}},
		{"tcp without port", Options{Host: "tcp://127.0.0.1"}},
		{"tls on unix", Options{Host: "unix:///var/run/docker.sock", TLSVerify: true}},
		{"cert without key", Options{Host: "tcp://127.0.0.1:2376", TLSCert: "cert.pem"}},
		{"missing ca", Options{Host: "tcp://127.0.0.1:2376", TLSCA: "/nonexistent/ca.pem", TLSVerify: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			require.Error(t, err)
		})
	}
}

func TestNew_defaults(t *testing.T) {
	c, err := New(Options{})
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, DefaultHost, c.Host())
	assert.Equal(t, DefaultCallTimeout, c.callTimeout)
}

// TestPing_negotiates asserts that Ping reports the engine's older API
// version and that later calls use it.
func TestPing_negotiates(t *testing.T) {
	f := newFakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, []any{})
	})
	c := f.client(t)
	v, err := c.Ping(context.Background())
	require.NoError(t, err)
	assert.Equal(t, fakeAPIVersion, v)

	_, err = c.List(context.Background(), nil)
	require.NoError(t, err)
	assert.Equal(t, "/v"+fakeAPIVersion, f.version())
	assert.Equal(t, userAgent, f.header().Get("User-Agent"))
}

// TestNegotiation_withoutPing asserts that the first call negotiates by
// itself.
func TestNegotiation_withoutPing(t *testing.T) {
	f := newFakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, []any{})
	})
	_, err := f.client(t).List(context.Background(), nil)
	require.NoError(t, err)
	assert.Equal(t, "/v"+fakeAPIVersion, f.version())
}

func TestBasicAuth(t *testing.T) {
	f := newFakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, []any{})
	})
	cases := []struct {
		name, user, pass string
		want             bool
	}{
		{"both", "gpadmin", "secret", true},
		{"user only", "gpadmin", "", false},
		{"none", "", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(Options{Host: f.host(), Username: tc.user, Password: tc.pass})
			require.NoError(t, err)
			defer c.Close()
			_, err = c.List(context.Background(), nil)
			require.NoError(t, err)
			req := &http.Request{Header: f.header()}
			u, p, ok := req.BasicAuth()
			assert.Equal(t, tc.want, ok)
			if tc.want {
				assert.Equal(t, tc.user, u)
				assert.Equal(t, tc.pass, p)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	f := &fakeEngine{}
	f.srv = httptest.NewUnstartedServer(f.handler(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, []any{})
	}))
	// The failing handshakes below are expected; keep them out of the log.
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw}), 0o600))

	t.Run("verified", func(t *testing.T) {
		c, err := New(Options{Host: f.host(), TLSCA: ca, TLSVerify: true})
		require.NoError(t, err)
		defer c.Close()
		v, err := c.Ping(context.Background())
		require.NoError(t, err)
		assert.Equal(t, fakeAPIVersion, v)
	})
	t.Run("unknown authority", func(t *testing.T) {
		c, err := New(Options{Host: f.host(), TLSVerify: true})
		require.NoError(t, err)
		defer c.Close()
		_, err = c.Ping(context.Background())
		require.Error(t, err)
		assert.False(t, IsTransient(err), "a certificate problem does not go away: %v", err)
		assert.False(t, IsUnreachable(err), "%v", err)
	})
	t.Run("unverified", func(t *testing.T) {
		c, err := New(Options{Host: f.host(), TLSCA: ca})
		require.NoError(t, err)
		defer c.Close()
		_, err = c.Ping(context.Background())
		require.NoError(t, err)
	})
	t.Run("plain http to tls", func(t *testing.T) {
		c, err := New(Options{Host: f.host(), CallTimeout: 2 * time.Second})
		require.NoError(t, err)
		defer c.Close()
		_, err = c.Ping(context.Background())
		require.Error(t, err)
	})
}

// TestClassify_status asserts the classification of engine error statuses
// as the Docker client reports them.
func TestClassify_status(t *testing.T) {
	cases := []struct {
		status                              int
		msg                                 string
		notFound, conflict, transient, down bool
	}{
		{http.StatusNotFound, "No such container: x", true, false, false, false},
		{http.StatusConflict, "Conflict. The container name is already in use", false, true, false, false},
		{http.StatusBadRequest, "invalid reference format", false, false, false, false},
		{http.StatusForbidden, "forbidden", false, false, false, false},
		{http.StatusInternalServerError, "driver failed", false, false, true, false},
		{http.StatusNotImplemented, "not implemented", false, false, false, false},
		{http.StatusServiceUnavailable, "unavailable", false, false, true, false},
		{http.StatusBadGateway, "bad gateway", false, false, true, false},
		{http.StatusGatewayTimeout, "gateway timeout", false, false, true, false},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			f := newFakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
				apiError(w, tc.status, tc.msg)
			})
			_, err := f.client(t).Inspect(context.Background(), "x")
			require.Error(t, err)
			err = fmt.Errorf("caller: %w", err)
			assert.Equal(t, tc.notFound, IsNotFound(err), "IsNotFound(%v)", err)
			assert.Equal(t, tc.conflict, IsConflict(err), "IsConflict(%v)", err)
			assert.Equal(t, tc.transient, IsTransient(err), "IsTransient(%v)", err)
			assert.Equal(t, tc.down, IsUnreachable(err), "IsUnreachable(%v)", err)
			assert.Contains(t, err.Error(), "dockerx: inspect x:")
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
}

// TestClassify_unreachable covers engines that cannot be reached at all.
func TestClassify_unreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedPort := l.Addr().String()
	require.NoError(t, l.Close())

	for _, host := range []string{
		"unix:///nonexistent.sock",
		"unix://" + filepath.Join(t.TempDir(), "missing.sock"),
		"tcp://" + closedPort,
	} {
		t.Run(host, func(t *testing.T) {
			c, err := New(Options{Host: host, CallTimeout: 2 * time.Second})
			require.NoError(t, err)
			defer c.Close()
			start := time.Now()
			_, err = c.Ping(context.Background())
			require.Error(t, err)
			assert.Less(t, time.Since(start), 2*time.Second)
			assert.True(t, IsUnreachable(err), "IsUnreachable(%v)", err)
			assert.True(t, IsTransient(err), "IsTransient(%v)", err)
			assert.False(t, IsNotFound(err))

			_, err = c.Create(context.Background(), Spec{Image: "img"})
			require.Error(t, err)
			assert.True(t, IsUnreachable(err), "IsUnreachable(%v)", err)

			_, err = c.Inspect(context.Background(), "x")
			require.Error(t, err)
			assert.True(t, IsUnreachable(err), "IsUnreachable(%v)", err)
		})
	}
}

// TestClassify_brokenConnection asserts that an engine that drops the
// connection mid-request is transient but reachable.
func TestClassify_brokenConnection(t *testing.T) {
	f := newFakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	})
	_, err := f.client(t).Inspect(context.Background(), "x")
	require.Error(t, err)
	assert.True(t, IsTransient(err), "IsTransient(%v)", err)
	assert.False(t, IsUnreachable(err), "IsUnreachable(%v)", err)
}

// TestCallTimeout asserts that a wedged engine is abandoned after the call
// timeout and that this is transient.
func TestCallTimeout(t *testing.T) {
	release := make(chan struct{})
	f := newFakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	c, err := New(Options{Host: f.host(), CallTimeout: 300 * time.Millisecond})
	require.NoError(t, err)
	defer c.Close()

	start := time.Now()
	_, err = c.Inspect(context.Background(), "x")
	require.Error(t, err)
	assert.Less(t, time.Since(start), 2*time.Second)
	assert.True(t, IsTransient(err), "IsTransient(%v)", err)
	assert.False(t, IsUnreachable(err), "IsUnreachable(%v)", err)

	// A cancellation by the caller is not transient.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = c.Inspect(ctx, "x")
	require.Error(t, err)
	assert.False(t, IsTransient(err), "IsTransient(%v)", err)
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassify_synthetic(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", err)) }
	dial := &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", errors.New("no such file or directory"))}
	read := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", errors.New("connection reset by peer"))}
	cases := []struct {
		name                                string
		err                                 error
		notFound, conflict, transient, down bool
	}{
		{"nil", nil, false, false, false, false},
		{"plain", errors.New("boom"), false, false, false, false},
		{"not found", wrap(cerrdefs.ErrNotFound), true, false, false, false},
		{"conflict", wrap(cerrdefs.ErrConflict), false, true, false, false},
		{"io eof", wrap(io.EOF), false, false, true, false},
		{"unexpected eof", wrap(io.ErrUnexpectedEOF), false, false, true, false},
		{"econnreset", wrap(syscall.ECONNRESET), false, false, true, false},
		{"econnrefused", wrap(syscall.ECONNREFUSED), false, false, true, false},
		{"internal", wrap(cerrdefs.ErrInternal), false, false, true, false},
		{"unavailable", wrap(cerrdefs.ErrUnavailable), false, false, true, false},
		{"deadline", wrap(context.DeadlineExceeded), false, false, true, false},
		{"canceled", wrap(context.Canceled), false, false, false, false},
		{"net timeout", wrap(timeoutErr{}), false, false, true, false},
		{"dial error", wrap(&url.Error{Op: "Get", URL: "http://x", Err: dial}), false, false, true, true},
		{"read error", wrap(&url.Error{Op: "Get", URL: "http://x", Err: read}), false, false, false, false},
		{"permission", wrap(&net.OpError{Op: "dial", Net: "unix", Err: os.ErrPermission}), false, false, false, true},
		{"invalid spec", wrap(ErrInvalidSpec), false, false, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.notFound, IsNotFound(tc.err), "IsNotFound")
			assert.Equal(t, tc.conflict, IsConflict(tc.err), "IsConflict")
			assert.Equal(t, tc.transient, IsTransient(tc.err), "IsTransient")
			assert.Equal(t, tc.down, IsUnreachable(tc.err), "IsUnreachable")
		})
	}
}

func TestStart_alreadyStarted(t *testing.T) {
	f := newFakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotModified)
	})
	require.NoError(t, f.client(t).Start(context.Background(), "abc"))
}

func TestRemove(t *testing.T) {
	cases := []struct {
		name    string
		status  int
		msg     string
		wantErr bool
	}{
		{"removed", http.StatusNoContent, "", false},
		{"not found", http.StatusNotFound, "No such container: abc", false},
		{"in progress", http.StatusConflict, "removal of container abc is already in progress", false},
		{"other conflict", http.StatusConflict, "You cannot remove a running container", true},
		{"server error", http.StatusInternalServerError, "driver failed", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodDelete || r.URL.Path != "/containers/abc" {
					apiError(w, http.StatusBadRequest, "unexpected "+r.Method+" "+r.URL.Path)
					return
				}
				if tc.status == http.StatusNoContent {
					w.WriteHeader(tc.status)
					return
				}
				apiError(w, tc.status, tc.msg)
			})
			err := f.client(t).Remove(context.Background(), "abc")
			if tc.wantErr {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, "1", f.query().Get("force"))
			assert.Equal(t, "1", f.query().Get("v"))
		})
	}
}

func TestEmptyID(t *testing.T) {
	f := newFakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusBadRequest, "should not be called")
	})
	c := f.client(t)
	ctx := context.Background()
	err := c.Remove(ctx, "")
	require.Error(t, err, "an empty id must not look like a successful removal")
	assert.False(t, IsNotFound(err))
	require.Error(t, c.Start(ctx, ""))
	require.Error(t, c.Kill(ctx, ""))
	_, err = c.Inspect(ctx, "")
	require.Error(t, err)
	_, err = c.Logs(ctx, "", 10)
	require.Error(t, err)
	_, err = c.MemoryUsage(ctx, "")
	require.Error(t, err)
}

func TestCreate_body(t *testing.T) {
	var body map[string]any
	f := newFakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/containers/create" {
			apiError(w, http.StatusBadRequest, "unexpected path")
			return
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		w.WriteHeader(http.StatusCreated)
		writeJSON(w, map[string]any{"Id": strings.Repeat("a", 64)})
	})
	c := f.client(t)
	s := plcSpec()
	s.Name = "plc-test"
	id, err := c.Create(context.Background(), s)
	require.NoError(t, err)
	assert.Equal(t, strings.Repeat("a", 64), id)
	assert.Equal(t, "plc-test", f.query().Get("name"))
	assert.Equal(t, s.Image, body["Image"])
	assert.Equal(t, true, body["NetworkDisabled"])

	_, err = c.Create(context.Background(), Spec{})
	require.ErrorIs(t, err, ErrInvalidSpec)
}

func TestCreate_missingImage(t *testing.T) {
	f := newFakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "No such image: python39.alpine:latest")
	})
	_, err := f.client(t).Create(context.Background(), plcSpec())
	require.Error(t, err)
	assert.True(t, IsNotFound(err))
	assert.Contains(t, err.Error(), "dockerx: create python39.alpine:latest:")
}

func TestInspect_mapping(t *testing.T) {
	id := strings.Repeat("b", 64)
	f := newFakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{
			"Id":      id,
			"Created": "2026-01-02T03:04:05.123456789Z",
			"State": map[string]any{
				"Status": "exited", "Running": false, "OOMKilled": true, "ExitCode": 137,
				"Error": "", "Pid": 0,
				"StartedAt":  "2026-01-02T03:04:06Z",
				"FinishedAt": "0001-01-01T00:00:00Z",
			},
			"Config": map[string]any{"Labels": map[string]string{"plcoordinator.owner": "x"}},
			"NetworkSettings": map[string]any{"Ports": map[string]any{
				"8080/tcp": []map[string]string{
					{"HostIp": "0.0.0.0", "HostPort": "1111"},
					{"HostIp": "127.0.0.1", "HostPort": "32768"},
				},
			}},
		})
	})
	st, err := f.client(t).Inspect(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, id, st.ID)
	assert.Equal(t, "exited", st.Status)
	assert.False(t, st.Running)
	assert.True(t, st.OOMKilled)
	assert.Equal(t, 137, st.ExitCode)
	assert.Equal(t, time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC), st.CreatedAt.UTC())
	assert.Equal(t, time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC), st.StartedAt.UTC())
	assert.True(t, st.FinishedAt.IsZero())
	assert.Equal(t, map[string]string{"plcoordinator.owner": "x"}, st.Labels)
	assert.Equal(t, 32768, st.HostPort, "only the loopback binding counts")
}

func TestInspect_sparse(t *testing.T) {
	f := newFakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"Id": "c"})
	})
	st, err := f.client(t).Inspect(context.Background(), "c")
	require.NoError(t, err)
	assert.Equal(t, State{ID: "c"}, st)
}

func TestList_filters(t *testing.T) {
	f := newFakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, []map[string]any{{
			"Id": "c1", "State": "running", "Status": "Up 1 second", "Created": 1700000000,
			"Labels": map[string]string{"a": "1", "b": "2"},
		}})
	})
	list, err := f.client(t).List(context.Background(), map[string]string{"a": "1", "b": ""})
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, Summary{
		ID: "c1", State: "running", Status: "Up 1 second",
		Labels: map[string]string{"a": "1", "b": "2"}, Created: time.Unix(1700000000, 0),
	}, list[0])

	q := f.query()
	assert.Equal(t, "1", q.Get("all"))
	var filt map[string]map[string]bool
	require.NoError(t, json.Unmarshal([]byte(q.Get("filters")), &filt))
	assert.Equal(t, map[string]map[string]bool{"label": {"a=1": true, "b": true}}, filt)
}

func TestLogs(t *testing.T) {
	f := newFakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.docker.multiplexed-stream")
		out := stdcopy.NewStdWriter(w, stdcopy.Stdout)
		errw := stdcopy.NewStdWriter(w, stdcopy.Stderr)
		_, _ = out.Write([]byte("one\n"))
		_, _ = errw.Write([]byte("two\n"))
		_, _ = out.Write([]byte("three\n"))
	})
	got, err := f.client(t).Logs(context.Background(), "c", 3)
	require.NoError(t, err)
	assert.Equal(t, "one\ntwo\nthree\n", got)
	q := f.query()
	assert.Equal(t, "3", q.Get("tail"))
	assert.Equal(t, "1", q.Get("stdout"))
	assert.Equal(t, "1", q.Get("stderr"))

	_, err = f.client(t).Logs(context.Background(), "c", 0)
	require.NoError(t, err)
	assert.Equal(t, "all", f.query().Get("tail"))
}

func TestLogs_notReadable(t *testing.T) {
	f := newFakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotImplemented, "configured logging driver does not support reading")
	})
	got, err := f.client(t).Logs(context.Background(), "c", 10)
	require.NoError(t, err)
	assert.Empty(t, got)
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 10}
	for i := range 20 {
		_, _ = fmt.Fprintf(b, "line%d\n", i)
	}
	assert.Equal(t, "line19\n", b.String())

	// A cut on a line boundary keeps the whole line.
	exact := &tailBuffer{max: 7}
	for i := range 20 {
		_, _ = fmt.Fprintf(exact, "line%02d\n", i)
	}
	assert.Equal(t, "line19\n", exact.String())

	small := &tailBuffer{max: 100}
	_, _ = small.Write([]byte("a\nb\n"))
	assert.Equal(t, "a\nb\n", small.String())
}

func TestMemoryUsage(t *testing.T) {
	cases := []struct {
		name  string
		stats map[string]uint64
		want  uint64
	}{
		{"cgroup v1", map[string]uint64{"total_inactive_file": 1000, "inactive_file": 5}, 9000},
		{"cgroup v2", map[string]uint64{"inactive_file": 2000}, 8000},
		{"no cache figure", nil, 10000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, map[string]any{"memory_stats": map[string]any{"usage": 10000, "stats": tc.stats}})
			})
			got, err := f.client(t).MemoryUsage(context.Background(), "c")
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, "0", f.query().Get("stream"))
		})
	}
}

// TestEvents_stream asserts filtering, conversion and that cancelling the
// context closes both channels without an error.
func TestEvents_stream(t *testing.T) {
	f := newFakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		enc := json.NewEncoder(w)
		_ = enc.Encode(map[string]any{
			"Type": "container", "Action": "die", "timeNano": int64(1700000000123456789),
			"Actor": map[string]any{"ID": "c1", "Attributes": map[string]string{
				"exitCode": "3", "image": "img", "name": "n", "plcoordinator.owner": "x",
			}},
		})
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evc, errc := f.client(t).Events(ctx, map[string]string{"plcoordinator.owner": "x"})

	select {
	case ev := <-evc:
		assert.Equal(t, Event{
			ID: "c1", Action: "die", ExitCode: 3,
			Labels: map[string]string{"plcoordinator.owner": "x"},
			Time:   time.Unix(0, 1700000000123456789),
		}, ev)
	case err := <-errc:
		t.Fatalf("unexpected error: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}

	q := f.query()
	var filt map[string]map[string]bool
	require.NoError(t, json.Unmarshal([]byte(q.Get("filters")), &filt))
	assert.Equal(t, map[string]map[string]bool{"label": {"plcoordinator.owner=x": true}, "type": {"container": true}}, filt)
	assert.NotEmpty(t, q.Get("since"))

	cancel()
	assertClosed(t, evc, errc, false)
}

// TestEvents_engineGone asserts that a stream the engine ends yields one
// error and closes.
func TestEvents_engineGone(t *testing.T) {
	f := newFakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
	})
	evc, errc := f.client(t).Events(context.Background(), nil)
	assertClosed(t, evc, errc, true)
}

func TestEvents_unreachable(t *testing.T) {
	c, err := New(Options{Host: "unix:///nonexistent.sock", CallTimeout: time.Second})
	require.NoError(t, err)
	defer c.Close()
	evc, errc := c.Events(context.Background(), nil)
	select {
	case err := <-errc:
		assert.True(t, IsUnreachable(err), "IsUnreachable(%v)", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no error")
	}
	assertClosed(t, evc, errc, false)
}

// TestEvents_subscribeTimeout asserts that an engine that never answers the
// subscription ends it after the call timeout.
func TestEvents_subscribeTimeout(t *testing.T) {
	release := make(chan struct{})
	f := newFakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	c, err := New(Options{Host: f.host(), CallTimeout: 300 * time.Millisecond})
	require.NoError(t, err)
	defer c.Close()
	start := time.Now()
	evc, errc := c.Events(context.Background(), nil)
	select {
	case err := <-errc:
		assert.True(t, IsTransient(err), "IsTransient(%v)", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no error")
	}
	assert.Less(t, time.Since(start), 3*time.Second)
	assertClosed(t, evc, errc, false)
}

// assertClosed waits for both channels to close; with wantErr exactly one
// error must arrive first.
func assertClosed(t *testing.T, evc <-chan Event, errc <-chan error, wantErr bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	gotErr := false
	for errc != nil || evc != nil {
		select {
		case _, ok := <-evc:
			if !ok {
				evc = nil
			}
		case err, ok := <-errc:
			if !ok {
				errc = nil
				continue
			}
			require.False(t, gotErr, "second error %v", err)
			gotErr = true
		case <-deadline:
			t.Fatal("channels not closed")
		}
	}
	assert.Equal(t, wantErr, gotErr)
}
