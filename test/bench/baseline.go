package main

// The raw baseline creates containers with exactly the options the
// coordinator uses: the create body is rebuilt from the inspection of a
// container the coordinator created (Config plus HostConfig: command,
// environment, limits, hardening, binds, logging, network), with only the
// name, the socket directory bind and the labels changed. The labels name
// a different instance, so the coordinator's reconciler and event stream
// never see these containers. (cache.ContainerSpec would be the other way,
// but golib/internal/... is not importable from test/.)

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const (
	socketName   = "unix.domain.socket.shared.file" // the client's socket in /tmp/plcontainer
	plcVersion   = "2.4.0"
	labelBench   = "plcoordinator.bench" // run id, for cleanup
	readyPoll    = 500 * time.Microsecond
	readyTimeout = 30 * time.Second
)

type template struct {
	config map[string]any // Config of the inspection, without Hostname
	host   map[string]any // HostConfig
	labels map[string]any
	binds  []any
	bindAt int // index of the /tmp/plcontainer bind
}

// newTemplate takes the create body apart from a coordinator container's
// inspection.
func newTemplate(insp map[string]json.RawMessage) (*template, error) {
	t := &template{}
	if err := json.Unmarshal(insp["Config"], &t.config); err != nil {
		return nil, fmt.Errorf("inspect Config: %w", err)
	}
	if err := json.Unmarshal(insp["HostConfig"], &t.host); err != nil {
		return nil, fmt.Errorf("inspect HostConfig: %w", err)
	}
	delete(t.config, "Hostname") // the engine's default is the id
	t.labels, _ = t.config["Labels"].(map[string]any)
	t.binds, _ = t.host["Binds"].([]any)
	t.bindAt = -1
	for i, bd := range t.binds {
		if s, _ := bd.(string); strings.Contains(s, ":/tmp/plcontainer:") {
			t.bindAt = i
		}
	}
	if t.labels == nil || t.bindAt < 0 {
		return nil, errors.New("the coordinator's container has no labels or no /tmp/plcontainer bind")
	}
	return t, nil
}

// body is the create body of a raw container with socket directory dir.
func (t *template) body(dir, name, runID string) []byte {
	labels := maps.Clone(t.labels)
	labels["plcoordinator.instance"] = "bench-" + runID
	labels["plcoordinator.generation"] = runID
	labels["plcoordinator.name"] = name
	labels[labelBench] = runID
	binds := append([]any(nil), t.binds...)
	binds[t.bindAt] = dir + ":/tmp/plcontainer:rw"
	host := maps.Clone(t.host)
	host["Binds"] = binds
	cfg := maps.Clone(t.config)
	cfg["Labels"] = labels
	cfg["HostConfig"] = host
	b, _ := json.Marshal(cfg)
	return b
}

type rawTiming struct {
	create, start, ready, ping time.Duration // from the create call
	engine                     time.Duration // engine's Created → State.StartedAt
}

// rawSample creates and starts one container, waits for its socket file,
// connects and pings (a+), and removes it (not timed).
func (b *bench) rawSample(ctx context.Context, i int) (rt rawTiming, err error) {
	name := b.runID + "-" + strconv.Itoa(i)
	dir := filepath.Join(b.rawDir, strconv.Itoa(i))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return rt, err
	}
	defer os.RemoveAll(dir)
	if err := os.Chown(dir, b.pgUID, b.pgGID); err != nil {
		return rt, err
	}
	body := b.tmpl.body(dir, name, b.runID)

	t0 := time.Now()
	id, err := b.eng.create(ctx, "plcbench-"+name, body)
	if err != nil {
		return rt, err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if rerr := b.eng.remove(rctx, id); err == nil {
			err = rerr
		}
	}()
	rt.create = time.Since(t0)
	if err := b.eng.start(ctx, id); err != nil {
		return rt, err
	}
	rt.start = time.Since(t0)
	sock := filepath.Join(dir, socketName)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Since(t0) > readyTimeout {
			return rt, fmt.Errorf("raw container %s: no socket after %s", id[:12], readyTimeout)
		}
		if err := ctx.Err(); err != nil {
			return rt, err
		}
		time.Sleep(readyPoll)
	}
	rt.ready = time.Since(t0)
	if err := ping(sock); err != nil {
		return rt, fmt.Errorf("raw container %s: %w", id[:12], err)
	}
	rt.ping = time.Since(t0)
	created, started, err := b.eng.times(ctx, id)
	if err != nil {
		return rt, err
	}
	rt.engine = started.Sub(created)
	return rt, nil
}

// ping connects to a client's socket and does PL/Container's PING
// handshake: 'P', int32 little-endian length, version; the reply has the
// same layout.
func ping(sock string) error {
	conn, err := net.DialTimeout("unix", sock, 10*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	msg := make([]byte, 5+len(plcVersion))
	msg[0] = 'P'
	binary.LittleEndian.PutUint32(msg[1:5], uint32(len(plcVersion)))
	copy(msg[5:], plcVersion)
	if _, err := conn.Write(msg); err != nil {
		return err
	}
	head := make([]byte, 5)
	if _, err := io.ReadFull(conn, head); err != nil {
		return fmt.Errorf("PING: %w", err)
	}
	n := binary.LittleEndian.Uint32(head[1:5])
	if head[0] != 'P' || n > 1024 {
		return fmt.Errorf("PING: unexpected reply %q", head)
	}
	v := make([]byte, n)
	if _, err := io.ReadFull(conn, v); err != nil {
		return fmt.Errorf("PING: %w", err)
	}
	if !strings.HasPrefix(string(v), plcVersion) {
		return fmt.Errorf("PING: version %q", v)
	}
	return nil
}
