//go:build integration

package integration

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/plcoordinator/plcoordinator/test/internal/dockerproxy"
)

// TestRemote_DockerOverTCP: a remote_docker backend, here the local engine
// behind a loopback TCP endpoint. Its containers have networking, publish
// the client's port 8080 on 127.0.0.1 only, and are reached over TCP; the
// coordinator pings them and hands the connection over.
func TestRemote_DockerOverTCP(t *testing.T) {
	track(t)
	proxy := dockerproxy.New("tcp", "127.0.0.1:0", dockerproxy.DefaultEngine)
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	// Registered before the cluster: closes after the cluster's cleanup,
	// which needs the engine to remove the containers.
	t.Cleanup(func() { _ = proxy.Close() })
	host, port, _ := strings.Cut(proxy.Addr(), ":")

	c := newCluster(t, clusterOpts{
		backends: fmt.Sprintf("  <backend name=\"remote\" type=\"remote_docker\"><address>%s</address><port>%s</port></backend>\n",
			host, port),
		runtimes: []runtimeSpec{{id: "plc_remote", settings: `enable_network="yes" roles="postgres"`, backend: "remote"}},
	})
	a := c.conn(t)
	r := mustRow(t, a, "SELECT * FROM plcoordinator.acquire('plc_remote')")
	if !strings.HasPrefix(r.Str("address"), "tcp:127.0.0.1:") {
		t.Errorf("address %q, want tcp:127.0.0.1:<port>", r.Str("address"))
	}
	if !r.Bool("connected") {
		t.Errorf("a remote container is always handed over connected")
	}
	p := mustRow(t, a, "SELECT * FROM plcoordinator.ping('plc_remote')")
	if p.Str("client_version") != "2.4.0" || p.Str("container_id") != r.Str("container_id") {
		t.Errorf("ping: %v", p)
	}
	if proxy.Requests() == 0 {
		t.Errorf("the remote backend's engine was not used")
	}

	// The port is published on loopback only, and the client runs with
	// USE_CONTAINER_NETWORK=true.
	b, err := exec.Command("docker", "inspect", "--format",
		`{{json .HostConfig.PortBindings}} {{range .Config.Env}}{{.}} {{end}}`, r.Str("container_id")).CombinedOutput()
	out := string(b)
	if err != nil {
		t.Fatalf("docker inspect: %v: %s", err, out)
	}
	if !strings.Contains(out, `"HostIp":"127.0.0.1"`) || strings.Contains(out, "0.0.0.0") {
		t.Errorf("port bindings: %s", out)
	}
	if !strings.Contains(out, "USE_CONTAINER_NETWORK=true") {
		t.Errorf("environment: %s", out)
	}

	// The local runtime still runs on the default engine, over its socket.
	l := acquire(t, a, plcTestRuntime)
	if !strings.HasPrefix(l.Str("address"), "unix:") {
		t.Errorf("local address %q", l.Str("address"))
	}
	mustExec(t, a, "SELECT plcoordinator.release_all()")
}

// TestWorker_DockerHostReload: a new plcoordinator.docker_host applies at
// a reload, without a restart; containers already made stay on (and are
// removed through) the old engine endpoint.
func TestWorker_DockerHostReload(t *testing.T) {
	track(t)
	first := newDockerProxy(t)
	second := newDockerProxy(t)
	c := newCluster(t, clusterOpts{gucs: []string{
		fmt.Sprintf("plcoordinator.docker_host = '%s'", first.Host()),
		"plcoordinator.check_loop_interval = 3600",
	}})
	a := c.conn(t)
	w := c.workerPID(t)
	old := acquire(t, a, plcTestRuntime).Str("container_id")

	mustExec(t, a, fmt.Sprintf("ALTER SYSTEM SET plcoordinator.docker_host = '%s'", second.Host()))
	mustExec(t, a, "SELECT plcoordinator.reload_config()")
	before := second.Requests()
	b := c.conn(t)
	if id := acquire(t, b, plcTestRuntime).Str("container_id"); id == old {
		t.Errorf("session b got session a's container")
	}
	if second.Requests() == before {
		t.Errorf("the new docker_host was not used")
	}
	if got := c.workerPID(t); got != w {
		t.Errorf("the worker restarted (pid %d, was %d)", got, w)
	}
	firstBefore := first.Requests()
	a.Close()
	waitGone(t, 10*time.Second, old)
	if first.Requests() == firstBefore {
		t.Errorf("the old container was not removed through the old endpoint")
	}
}
