package dockerx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
)

// maxLogBytes bounds what Logs returns, whatever the number of lines.
const maxLogBytes = 1 << 20

// errEmptyID is returned for an empty container id. Without this check the
// Docker client reports it as "not found", which Remove would treat as
// success.
var errEmptyID = errors.New("empty container id")

// State is the part of a container inspection the coordinator uses (§2.5 of
// the reference, plus timestamps and the published port).
type State struct {
	// ID is the full container id.
	ID string
	// Status is "created", "running", "paused", "restarting", "removing",
	// "exited" or "dead".
	Status string
	// Running is true while the main process runs (also when paused).
	Running bool
	// ExitCode is the exit status of the main process once it ended.
	ExitCode int
	// OOMKilled is true when the kernel OOM killer ended the container;
	// the stock clients exit with 1 in every other case, so this is the
	// only reliable failure signal.
	OOMKilled bool
	// Error is the engine's start error, if any.
	Error string
	// Pid is the host pid of the main process, 0 when not running.
	Pid int
	// StartedAt, FinishedAt and CreatedAt are zero when unset.
	StartedAt, FinishedAt, CreatedAt time.Time
	// Labels are the container labels.
	Labels map[string]string
	// HostPort is the host port 8080/tcp is published on at 127.0.0.1, or
	// 0 when the port is not published (or the container is not running).
	HostPort int
}

// Summary is one entry of List.
type Summary struct {
	// ID is the full container id.
	ID string
	// State is the machine-readable state ("running", "exited", ...).
	State string
	// Status is the human-readable status ("Up 2 minutes").
	Status string
	// Labels are the container labels.
	Labels map[string]string
	// Created is the creation time, with second precision.
	Created time.Time
}

// Create creates (but does not start) a container and returns its full id.
// A missing image is reported as IsNotFound; images are never pulled.
func (c *Client) Create(ctx context.Context, s Spec) (string, error) {
	cfg, hc, err := toCreateConfig(s)
	if err != nil {
		return "", fmt.Errorf("dockerx: create %s: %w", s.Image, err)
	}
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	resp, err := c.api.ContainerCreate(ctx, cfg, hc, nil, nil, s.Name)
	if err != nil {
		return "", fmt.Errorf("dockerx: create %s: %w", s.Image, err)
	}
	return resp.ID, nil
}

// Start starts a created container. Starting a running container succeeds
// (the engine answers 304 Not Modified).
func (c *Client) Start(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("dockerx: start: %w", errEmptyID)
	}
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	if err := c.api.ContainerStart(ctx, id, container.StartOptions{}); err != nil && !cerrdefs.IsNotModified(err) {
		return fmt.Errorf("dockerx: start %s: %w", shortID(id), err)
	}
	return nil
}

// Inspect returns the container's state. An unknown id is IsNotFound.
func (c *Client) Inspect(ctx context.Context, id string) (State, error) {
	if id == "" {
		return State{}, fmt.Errorf("dockerx: inspect: %w", errEmptyID)
	}
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	resp, err := c.api.ContainerInspect(ctx, id)
	if err != nil {
		return State{}, fmt.Errorf("dockerx: inspect %s: %w", shortID(id), err)
	}
	return toState(resp), nil
}

// toState extracts State from an inspect response; every nested part of
// the response may be missing.
func toState(r container.InspectResponse) State {
	var st State
	if r.ContainerJSONBase != nil {
		st.ID = r.ID
		st.CreatedAt = parseTime(r.Created)
		if s := r.State; s != nil {
			st.Status = s.Status
			st.Running = s.Running
			st.ExitCode = s.ExitCode
			st.OOMKilled = s.OOMKilled
			st.Error = s.Error
			st.Pid = s.Pid
			st.StartedAt = parseTime(s.StartedAt)
			st.FinishedAt = parseTime(s.FinishedAt)
		}
	}
	if r.Config != nil {
		st.Labels = maps.Clone(r.Config.Labels)
	}
	if r.NetworkSettings != nil {
		st.HostPort = hostPort(r.NetworkSettings.Ports)
	}
	return st
}

// hostPort returns the host port 8080/tcp is bound to on 127.0.0.1.
// Bindings on other addresses are ignored: the coordinator never connects
// to them.
func hostPort(ports nat.PortMap) int {
	for _, b := range ports[nat.Port(Port)] {
		if b.HostIP != publishHostIP {
			continue
		}
		if p, err := strconv.Atoi(b.HostPort); err == nil && p > 0 {
			return p
		}
	}
	return 0
}

// parseTime parses an engine timestamp; the engine reports unset times as
// "0001-01-01T00:00:00Z", which parses to the zero time.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.IsZero() {
		return time.Time{}
	}
	return t
}

// Remove force-removes a container and its anonymous volumes. A container
// that does not exist, or whose removal is already in progress, counts as
// removed.
func (c *Client) Remove(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("dockerx: remove: %w", errEmptyID)
	}
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	err := c.api.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	switch {
	case err == nil, IsNotFound(err):
		return nil
	case IsConflict(err) && strings.Contains(err.Error(), "already in progress"):
		// The engine has no separate error class for a concurrent removal;
		// its message is "removal of container <id> is already in progress".
		return nil
	}
	return fmt.Errorf("dockerx: remove %s: %w", shortID(id), err)
}

// Kill sends SIGKILL to the container's main process. A container that is
// not running is IsConflict; an unknown one IsNotFound.
func (c *Client) Kill(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("dockerx: kill: %w", errEmptyID)
	}
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	if err := c.api.ContainerKill(ctx, id, "KILL"); err != nil {
		return fmt.Errorf("dockerx: kill %s: %w", shortID(id), err)
	}
	return nil
}

// List returns all containers, running or not, that carry every label in
// labels. An entry with an empty value matches containers that have the
// label with any value. An empty map lists every container.
func (c *Client) List(ctx context.Context, labels map[string]string) ([]Summary, error) {
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	list, err := c.api.ContainerList(ctx, container.ListOptions{All: true, Filters: labelFilters(labels)})
	if err != nil {
		return nil, fmt.Errorf("dockerx: list: %w", err)
	}
	out := make([]Summary, 0, len(list))
	for _, s := range list {
		out = append(out, Summary{
			ID:      s.ID,
			State:   s.State,
			Status:  s.Status,
			Labels:  s.Labels,
			Created: time.Unix(s.Created, 0),
		})
	}
	return out, nil
}

// labelFilters turns a label map into "label" filters ("k=v", or "k" for
// an empty value).
func labelFilters(labels map[string]string) filters.Args {
	args := filters.NewArgs()
	for k, v := range labels {
		if v == "" {
			args.Add("label", k)
		} else {
			args.Add("label", k+"="+v)
		}
	}
	return args
}

// Logs returns up to the last tail lines of the container's stdout and
// stderr, interleaved in the order they were written. A tail of zero or
// less asks for everything. At most the last 1 MiB is returned. A container
// whose log driver cannot be read back (driver "none", Spec.Logging false)
// yields "" and no error.
func (c *Client) Logs(ctx context.Context, id string, tail int) (string, error) {
	if id == "" {
		return "", fmt.Errorf("dockerx: logs: %w", errEmptyID)
	}
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	t := "all"
	if tail > 0 {
		t = strconv.Itoa(tail)
	}
	rc, err := c.api.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: t})
	if err != nil {
		// The engine answers 501 Not Implemented ("configured logging
		// driver does not support reading") for drivers such as "none".
		if cerrdefs.IsNotImplemented(err) {
			return "", nil
		}
		return "", fmt.Errorf("dockerx: logs %s: %w", shortID(id), err)
	}
	defer rc.Close()
	// Containers are created without a TTY, so the stream is multiplexed;
	// both halves go to the same buffer, which keeps frame order.
	w := &tailBuffer{max: maxLogBytes}
	if _, err := stdcopy.StdCopy(w, w, rc); err != nil {
		return "", fmt.Errorf("dockerx: logs %s: %w", shortID(id), err)
	}
	return w.String(), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if len(b.buf) > 2*b.max {
		// Keep one byte more than needed so String can tell whether the
		// cut falls on a line boundary.
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.max-1:]...)
	}
	return len(p), nil
}

// String returns the kept bytes. When older output was dropped, a partial
// first line is dropped too.
func (b *tailBuffer) String() string {
	if len(b.buf) <= b.max {
		return string(b.buf)
	}
	cut := len(b.buf) - b.max
	kept := b.buf[cut:]
	if b.buf[cut-1] != '\n' {
		if i := bytes.IndexByte(kept, '\n'); i >= 0 {
			kept = kept[i+1:]
		}
	}
	return string(kept)
}

// MemoryUsage returns the container's current memory use in bytes, as
// "docker stats" shows it: usage minus the inactive page cache the kernel
// reclaims before it invokes the OOM killer. It asks for a single sample
// (stream=false, one-shot, so the engine does not wait a second for a
// second CPU sample), but every call still makes the engine read the
// container's cgroup files and serialise a full stats document: a few
// milliseconds on an idle local engine, far more on a busy or remote one.
// Use it only for periodic inspection, never on a request path. A container
// that is not running reports 0.
func (c *Client) MemoryUsage(ctx context.Context, id string) (uint64, error) {
	if id == "" {
		return 0, fmt.Errorf("dockerx: stats: %w", errEmptyID)
	}
	ctx, cancel := c.callCtx(ctx)
	defer cancel()
	r, err := c.api.ContainerStatsOneShot(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("dockerx: stats %s: %w", shortID(id), err)
	}
	defer r.Body.Close()
	var st container.StatsResponse
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&st); err != nil {
		return 0, fmt.Errorf("dockerx: stats %s: decode: %w", shortID(id), err)
	}
	return workingSet(st.MemoryStats), nil
}

// workingSet subtracts the inactive file cache from the usage. cgroup v1
// reports it as total_inactive_file, cgroup v2 as inactive_file.
func workingSet(m container.MemoryStats) uint64 {
	inactive, ok := m.Stats["total_inactive_file"]
	if !ok {
		inactive = m.Stats["inactive_file"]
	}
	if inactive < m.Usage {
		return m.Usage - inactive
	}
	return m.Usage
}

// shortID shortens a 64-hex container id for error messages.
func shortID(id string) string {
	if len(id) == 64 {
		return id[:12]
	}
	return id
}
