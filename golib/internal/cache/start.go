package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/plcoordinator/plcoordinator/golib/internal/config"
	"github.com/plcoordinator/plcoordinator/golib/internal/dockerx"
)

// PLCVersion is the version PL/Container's clients expect in the PING
// handshake.
const PLCVersion = "2.4.0"

// SocketName is the file PL/Container's clients listen on inside the
// directory mounted at /tmp/plcontainer.
const SocketName = "unix.domain.socket.shared.file"

// Retry policy for transient Docker errors on create and start.
const (
	dockerAttempts  = 3
	dockerBackoff   = 100 * time.Millisecond
	logTailLines    = 20
	readyPollMin    = time.Millisecond
	readyPollMax    = 20 * time.Millisecond
	pingTimeout     = 10 * time.Second
	removeAttempts  = 4
	removeCallLimit = 30 * time.Second
)

// SpecParams are the inputs of a container's create body.
type SpecParams struct {
	Runtime    *config.Runtime
	Name       string // short id: container name suffix and LabelName
	Dir        string // host directory mounted at /tmp/plcontainer
	Owner      string // role name: PL/Container's owner label, DB_USER_NAME
	Database   string
	DBOID      uint32
	BackendPID int32
	Instance   string
	Generation string
	SegIndex   int
	Hardened   bool
	Remote     bool // TCP on 8080 instead of the socket directory
}

// Spec builds the Docker create body of e's container; c.mu is held.
func (c *Cache) Spec(e *entry) dockerx.Spec {
	return ContainerSpec(SpecParams{Runtime: e.runtime, Name: e.name, Dir: e.dir, Owner: e.owner,
		Database: e.database, DBOID: e.dbOID, BackendPID: e.session.PID, Instance: c.opts.Instance,
		Generation: c.opts.Generation, SegIndex: c.opts.SegIndex, Hardened: c.opts.Hardening,
		Remote: e.be.Remote})
}

// ContainerSpec builds a container's Docker create body: what PL/Container
// does (command, environment, binds, limits, labels), plus the
// coordinator's labels. The benchmark's raw baseline uses it too.
func ContainerSpec(p SpecParams) dockerx.Spec {
	rt := p.Runtime
	binds := make([]string, 0, len(rt.SharedDirs)+1)
	for _, d := range rt.SharedDirs {
		mode := "rw"
		if d.ReadOnly {
			mode = "ro"
		}
		binds = append(binds, d.Host+":"+d.Container+":"+mode)
	}
	cgroup := ""
	if !p.Remote {
		binds = append(binds, p.Dir+":/tmp/plcontainer:rw")
		cgroup = cgroupParent(rt)
	}

	devices := make([]dockerx.Device, 0, len(rt.Devices))
	for _, d := range rt.Devices {
		dev := dockerx.Device{Driver: d.Driver, DeviceIDs: d.DeviceIDs, Capabilities: d.Capabilities}
		if d.All {
			dev.Count = -1
			dev.DeviceIDs = nil
		}
		devices = append(devices, dev)
	}

	seg := strconv.Itoa(p.SegIndex)
	return dockerx.Spec{
		Name:  "plcoord-" + p.Name,
		Image: rt.Image,
		Cmd:   []string{rt.Command},
		Env: []string{
			"EXECUTOR_UID=" + strconv.Itoa(os.Geteuid()),
			"EXECUTOR_GID=" + strconv.Itoa(os.Getegid()),
			"DB_USER_NAME=" + p.Owner,
			"DB_NAME=" + p.Database,
			"DB_QE_PID=" + strconv.Itoa(int(p.BackendPID)),
			"USE_CONTAINER_NETWORK=" + strconv.FormatBool(p.Remote),
		},
		Labels: map[string]string{
			"owner":         p.Owner,
			"dbid":          seg,
			"databaseid":    strconv.FormatUint(uint64(p.DBOID), 10),
			"segindex":      seg,
			LabelInstance:   p.Instance,
			LabelGeneration: p.Generation,
			LabelBackendPID: strconv.Itoa(int(p.BackendPID)),
			LabelRuntime:    rt.ID,
			LabelName:       p.Name,
		},
		MemoryBytes:    rt.MemoryMB << 20,
		CPUShares:      rt.CPUShare,
		Network:        rt.EnableNetwork || p.Remote,
		PublishTCP8080: p.Remote,
		Logging:        rt.UseContainerLogging,
		Binds:          binds,
		CgroupParent:   cgroup,
		Devices:        devices,
		Hardened:       p.Hardened,
	}
}

// cgroupParent places a runtime with a Greenplum resource group under its
// cgroup, as PL/Container does.
func cgroupParent(rt *config.Runtime) string {
	if rt.ResourceGroupID == "" {
		return ""
	}
	return "/gpdb/" + rt.ResourceGroupID
}

// start creates and starts e's container and waits until it is ready. It
// always closes e.ready; on failure the container is removed and
// e.startErr says why.
func (c *Cache) start(e *entry) {
	c.mu.Lock()
	for c.creating >= c.opts.MaxParallelCreates {
		c.createsCV.Wait()
	}
	c.creating++
	c.mu.Unlock()
	err := c.create(e)
	c.mu.Lock()
	c.creating--
	c.createsCV.Signal()
	c.mu.Unlock()
	switch {
	case err != nil:
	case e.be.Remote:
		// Over TCP the engine's port proxy accepts before the client
		// listens: only a PING proves readiness, and it takes the
		// client's one connection, which is then handed over.
		err = c.waitRemote(e)
	default:
		err = c.waitReady(e)
		if err == nil && (e.wantConn || e.prewarm()) {
			err = c.connect(e)
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	close(e.ready)
	if err != nil {
		e.startErr = err
		e.state = StateReady // no longer starting: removable
		if !errors.Is(err, ErrCancelled) {
			c.ctr.StartFailures.Add(1)
			c.log.Warnf("%v", err)
			if e.prewarm() {
				// Before the removal is queued: its end kicks the
				// prewarm loop, which must see the backoff.
				c.prewarmFailedLocked(e.runtime.ID)
			}
		}
		c.removeLocked(e)
	} else {
		e.readyMS = int32(time.Since(e.created).Milliseconds())
		c.ctr.Ready.Observe(time.Since(e.created))
		if !e.prewarm() {
			c.ctr.ColdStarts.Add(1)
		}
		if e.prewarm() {
			e.state = StatePrewarmed
			delete(c.prewarmBo, e.runtime.ID)
		} else {
			e.state = StateReady
		}
		// A prewarmed container whose runtime changed meanwhile, or that
		// is needed for room by queued requests, goes at once; nothing
		// else would remove it.
		if e.cancel || e.prewarm() && (e.stale || len(c.waiters) > 0) {
			c.removeLocked(e)
		}
	}
	c.changedLocked()
}

// create runs create and start with retries on transient errors.
func (c *Cache) create(e *entry) error {
	if e.dir != "" {
		if err := os.Mkdir(e.dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return &StartError{Runtime: e.runtime.ID, Err: fmt.Errorf("creating socket directory: %w", err)}
		}
	}
	c.mu.Lock()
	spec := c.Spec(e)
	c.mu.Unlock()
	var id string
	t0 := time.Now()
	err := c.retry(func(ctx context.Context) error {
		var err error
		id, err = e.be.Docker.Create(ctx, spec)
		return err
	})
	c.ctr.Create.Observe(time.Since(t0))
	if err != nil {
		return &StartError{Runtime: e.runtime.ID, Err: err}
	}
	c.mu.Lock()
	e.id = id
	cancelled := e.cancel
	c.changedLocked()
	c.mu.Unlock()
	if cancelled {
		return ErrCancelled
	}
	t0 = time.Now()
	if err := c.retry(func(ctx context.Context) error { return e.be.Docker.Start(ctx, id) }); err != nil {
		return &StartError{Runtime: e.runtime.ID, ID: id, Err: err}
	}
	c.ctr.Start.Observe(time.Since(t0))
	return nil
}

// retry calls fn up to dockerAttempts times while it fails transiently.
func (c *Cache) retry(fn func(ctx context.Context) error) error {
	var err error
	for attempt := 0; attempt < dockerAttempts; attempt++ {
		if attempt > 0 {
			time.Sleep(dockerBackoff << (2 * (attempt - 1)))
		}
		err = fn(context.Background())
		if err == nil {
			c.setReachable(true)
			return nil
		}
		c.dockerError(err)
		if dockerx.IsUnreachable(err) {
			c.setReachable(false)
			return err
		}
		if !dockerx.IsTransient(err) {
			return err
		}
	}
	return err
}

// waitReady polls for the client's socket file: its appearance means the
// client listens. The container is never connected to here, because
// PL/Container's client accepts exactly one connection. A container that
// dies meanwhile (the events goroutine marks it) fails at once.
func (c *Cache) waitReady(e *entry) error {
	sock := filepath.Join(e.dir, SocketName)
	timeout := e.runtime.StartTimeout
	deadline := time.Now().Add(timeout)
	poll := readyPollMin
	nextInspect := time.Now().Add(250 * time.Millisecond)
	for {
		if _, err := os.Stat(sock); err == nil {
			return nil
		}
		c.mu.Lock()
		exited, cancelled := e.exited, e.cancel
		c.mu.Unlock()
		if cancelled {
			return ErrCancelled
		}
		if exited || time.Now().After(nextInspect) {
			st, err := e.be.Docker.Inspect(context.Background(), e.id)
			if err == nil && !st.Running && st.Status != "created" {
				return c.startFailure(e, st, 0)
			}
			nextInspect = time.Now().Add(250 * time.Millisecond)
		}
		if time.Now().After(deadline) {
			st, _ := e.be.Docker.Inspect(context.Background(), e.id)
			return c.startFailure(e, st, timeout)
		}
		time.Sleep(poll)
		poll = min(poll*2, readyPollMax)
	}
}

// startFailure builds the error for a container that did not come up,
// with its exit code, OOM flag and last log lines.
func (c *Cache) startFailure(e *entry, st dockerx.State, timeout time.Duration) error {
	logs, _ := e.be.Docker.Logs(context.Background(), e.id, logTailLines)
	return &StartError{Runtime: e.runtime.ID, ID: e.id, Timeout: timeout, Status: st.Status,
		ExitCode: st.ExitCode, OOM: st.OOMKilled, Logs: strings.TrimSpace(logs)}
}

// connect opens the container's socket and completes PL/Container's PING
// handshake; the connected socket is kept in e.conn for a hand-off.
func (c *Cache) connect(e *entry) error {
	conn, err := net.DialTimeout("unix", strings.TrimPrefix(e.address, "unix:"), pingTimeout)
	if err != nil {
		return &StartError{Runtime: e.runtime.ID, ID: e.id, Err: fmt.Errorf("connecting to the container: %w", err)}
	}
	return c.handshake(e, conn)
}

// handshake pings over conn and keeps a duplicate of it in e.conn.
func (c *Cache) handshake(e *entry, conn net.Conn) error {
	defer conn.Close()
	version, err := Ping(conn, pingTimeout)
	if err != nil {
		return &StartError{Runtime: e.runtime.ID, ID: e.id, Err: fmt.Errorf("PING handshake: %w", err)}
	}
	fc, ok := conn.(interface{ File() (*os.File, error) })
	if !ok {
		return &StartError{Runtime: e.runtime.ID, ID: e.id, Err: fmt.Errorf("cannot hand over a %T", conn)}
	}
	f, err := fc.File() // a blocking duplicate the backend can own
	if err != nil {
		return &StartError{Runtime: e.runtime.ID, ID: e.id, Err: err}
	}
	c.mu.Lock()
	e.conn, e.clientVersion = f, version
	c.mu.Unlock()
	return nil
}

// waitRemote waits for a remote container: running with its port
// published, then answering the PING over TCP. A container that exits
// fails at once; the whole wait is bounded by the start timeout.
func (c *Cache) waitRemote(e *entry) error {
	timeout := e.runtime.StartTimeout
	deadline := time.Now().Add(timeout)
	poll := readyPollMin
	var last error
	for {
		c.mu.Lock()
		cancelled := e.cancel
		c.mu.Unlock()
		if cancelled {
			return ErrCancelled
		}
		st, err := e.be.Docker.Inspect(context.Background(), e.id)
		switch {
		case err != nil:
			last = err
		case !st.Running && st.Status != "created":
			return c.startFailure(e, st, 0)
		case st.HostPort > 0:
			addr := net.JoinHostPort(e.be.Host, strconv.Itoa(st.HostPort))
			c.mu.Lock()
			e.address = "tcp:" + addr
			c.mu.Unlock()
			conn, err := net.DialTimeout("tcp", addr, time.Until(deadline))
			if err == nil {
				if err = c.handshake(e, conn); err == nil {
					return nil
				}
			}
			last = err
		}
		if time.Now().After(deadline) {
			st, _ := e.be.Docker.Inspect(context.Background(), e.id)
			se := c.startFailure(e, st, timeout).(*StartError)
			if se.Logs == "" && last != nil {
				se.Logs = last.Error()
			}
			return se
		}
		time.Sleep(poll)
		poll = min(poll*2, readyPollMax*5)
	}
}

// Ping does PL/Container's PING handshake on conn: 'P', int32 little-endian
// length, version bytes; the reply has the same layout and its version
// must start with PLCVersion. Returns the client's version.
func Ping(conn net.Conn, timeout time.Duration) (string, error) {
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	defer conn.SetDeadline(time.Time{})
	msg := make([]byte, 5+len(PLCVersion))
	msg[0] = 'P'
	binary.LittleEndian.PutUint32(msg[1:5], uint32(len(PLCVersion)))
	copy(msg[5:], PLCVersion)
	if _, err := conn.Write(msg); err != nil {
		return "", err
	}
	head := make([]byte, 5)
	if _, err := io.ReadFull(conn, head); err != nil {
		return "", err
	}
	n := binary.LittleEndian.Uint32(head[1:5])
	if head[0] != 'P' || n > 1024 {
		return "", fmt.Errorf("unexpected reply %q", head)
	}
	v := make([]byte, n)
	if _, err := io.ReadFull(conn, v); err != nil {
		return "", err
	}
	if !strings.HasPrefix(string(v), PLCVersion) {
		return "", fmt.Errorf("version mismatch (require %q but get %q)", PLCVersion, v)
	}
	return string(v), nil
}

// removeLocked takes e out of service and queues its removal. A container
// still starting is removed by its start goroutine once Docker answers.
func (c *Cache) removeLocked(e *entry) {
	c.unbindLocked(e)
	if e.state == StateStopping {
		return
	}
	if e.state == StateStarting {
		e.cancel = true
		// The start goroutine removes it when it finishes.
		select {
		case <-e.ready:
		default:
			c.changedLocked()
			return
		}
	}
	e.state = StateStopping
	c.changedLocked()
	c.queueRemovalLocked(e)
}

// queueRemovalLocked hands a stopping container to the removal workers.
func (c *Cache) queueRemovalLocked(e *entry) {
	select {
	case c.removals <- e:
	default:
		// The queue is full: remove in a goroutine of its own.
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer c.opts.Panics.Recover("container removal")
			c.destroy(e)
		}()
	}
}

// removeWorker drains the removal queue so that requests never wait for
// a removal.
func (c *Cache) removeWorker(ctx context.Context) {
	for {
		select {
		case e := <-c.removals:
			c.destroy(e)
		case <-ctx.Done():
			return
		}
	}
}

// destroy removes e's container and directory and frees its slot.
func (c *Cache) destroy(e *entry) {
	// The events goroutine may close the connection concurrently
	// (markDeadLocked), so it is taken under the lock.
	c.mu.Lock()
	conn := e.conn
	e.conn = nil
	c.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
	if e.id != "" {
		var err error
		for attempt := 0; attempt < removeAttempts; attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), removeCallLimit)
			err = e.be.Docker.Remove(ctx, e.id)
			cancel()
			if err == nil || dockerx.IsUnreachable(err) {
				break
			}
			time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
		}
		if err != nil {
			// The container still exists: it keeps its row (stopping)
			// and its slot, and the sweep tries again.
			c.dockerError(err)
			c.log.Warnf("could not remove container %s: %v (retried at the next sweep)", shortID(e.id), err)
			c.mu.Lock()
			e.removeFailed = true
			c.mu.Unlock()
			return
		}
	}
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
	c.mu.Lock()
	delete(c.entries, e.name)
	c.grantLocked()
	c.changedLocked()
	c.mu.Unlock()
	c.kickPrewarm()
}

// dockerError counts a failed Docker call by kind.
func (c *Cache) dockerError(err error) {
	c.ctr.DockerErrors.Add(1)
	switch {
	case dockerx.IsUnreachable(err):
		c.ctr.DockerUnreachable.Add(1)
	case dockerx.IsNotFound(err):
		c.ctr.DockerNotFound.Add(1)
	case dockerx.IsTransient(err):
		c.ctr.DockerTransient.Add(1)
	default:
		c.ctr.DockerOther.Add(1)
	}
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
