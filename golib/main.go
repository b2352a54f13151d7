// Command plcoordinator_go is the c-shared library the coordinator worker
// dlopen()s. This package holds only the exported entry points and the
// conversions between C and Go; everything else lives in internal/.
package main

/*
#cgo CFLAGS: -I${SRCDIR}/../include
#include <stdlib.h>
#include "plcoordinator_abi.h"

static int call_log(const PlcoordCallbacks *cb, int level, const char *msg) { return cb->log(level, msg); }
static uint32_t call_take_signals(const PlcoordCallbacks *cb) { return cb->take_signals(); }
static int call_reload_settings(const PlcoordCallbacks *cb, PlcoordSettings *out) { return cb->reload_settings(out); }
static int call_set_state(const PlcoordCallbacks *cb, int32_t state, const char *address) { return cb->set_state(state, address); }
static int call_publish(const PlcoordCallbacks *cb, const PlcoordSnapshot *snap) { return cb->publish(snap); }
*/
import "C"

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/plcoordinator/plcoordinator/golib/internal/coordinator"
	"github.com/plcoordinator/plcoordinator/golib/internal/status"
)

func main() {}

// PlcoordAbiVersion lets the worker check that it loaded a library built
// for the same include/plcoordinator_abi.h.
//
//export PlcoordAbiVersion
func PlcoordAbiVersion() C.int32_t { return C.PLCOORD_ABI_VERSION }

// PlcoordMain runs the coordinator until it stops. It is called once, on
// PostgreSQL's main thread, and returns 1 to be restarted.
//
//export PlcoordMain
func PlcoordMain(args *C.PlcoordStartArgs) (rc C.int32_t) {
	h := &cHost{cb: args.callbacks}
	defer func() {
		if r := recover(); r != nil {
			h.Log(status.Warning, fmt.Sprintf("panic in PlcoordMain: %v", r))
			rc = coordinator.ExitRestart
		}
	}()
	s := goSettings(&args.settings)
	return C.int32_t(coordinator.Run(h, s, int(args.signal_fd), int(args.postmaster_fd)))
}

// cHost implements coordinator.Host on the C callback table.
type cHost struct {
	cb   *C.PlcoordCallbacks
	rows unsafe.Pointer // C array reused between publishes
	nrow int
	rts  unsafe.Pointer
	nrts int
}

func (h *cHost) Log(level status.Level, message string) {
	msg := C.CString(message)
	defer C.free(unsafe.Pointer(msg))
	C.call_log(h.cb, C.int(level), msg)
}

func (h *cHost) TakeSignals() uint32 { return uint32(C.call_take_signals(h.cb)) }

func (h *cHost) ReloadSettings() (coordinator.Settings, error) {
	var out C.PlcoordSettings
	if C.call_reload_settings(h.cb, &out) != 0 {
		return coordinator.Settings{}, errors.New("the configuration file could not be processed (see the server log)")
	}
	return goSettings(&out), nil
}

func (h *cHost) SetState(state coordinator.State, address string) {
	addr := C.CString(address)
	defer C.free(unsafe.Pointer(addr))
	C.call_set_state(h.cb, C.int32_t(state), addr)
}

func (h *cHost) Publish(snap *status.Snapshot) {
	var cs C.PlcoordSnapshot
	rows := h.rowBuffer(len(snap.Containers))
	for i, c := range snap.Containers {
		r := &rows[i]
		setString(r.container_id[:], c.ID)
		setString(r.runtime_id[:], c.Runtime)
		setString(r.owner[:], c.Owner)
		setString(r.database[:], c.Database)
		setString(r.state[:], c.State)
		setString(r.address[:], c.Address)
		r.backend_pid = C.int32_t(c.BackendPID)
		r.ready_ms = C.int32_t(c.ReadyMS)
		r.created_at_us = C.int64_t(unixMicros(c.CreatedAt))
		r.last_used_us = C.int64_t(unixMicros(c.LastUsed))
		r.uses = C.int64_t(c.Uses)
		r.memory_kb = C.int64_t(c.MemoryKB)
		r.exit_code = C.int32_t(c.ExitCode)
		r.oom_killed = C.bool(c.OOMKilled)
	}
	rts := h.runtimeBuffer(len(snap.Runtimes))
	for i, rt := range snap.Runtimes {
		setString(rts[i].runtime_id[:], rt.ID)
		rts[i].user_control = C.bool(rt.UserControl)
		setString(rts[i].roles[:], rt.Roles)
	}
	if len(rows) > 0 {
		cs.rows = &rows[0]
	}
	cs.nrows = C.int32_t(len(rows))
	if len(rts) > 0 {
		cs.runtimes = &rts[0]
	}
	cs.nruntimes = C.int32_t(len(snap.Runtimes)) // C keeps the first PLCOORD_MAX_RUNTIMES
	cs.docker_reachable = C.bool(snap.DockerReachable)
	cs.config_loaded_at_us = C.int64_t(unixMicros(snap.ConfigLoadedAt))
	cs.config_error_at_us = C.int64_t(unixMicros(snap.ConfigErrorAt))
	setString(cs.config_error[:], snap.ConfigError)
	st := &snap.Stats
	cs.stats = C.PlcoordStats{
		requests: C.int64_t(st.Requests), warm_hits: C.int64_t(st.WarmHits), prewarm_hits: C.int64_t(st.PrewarmHits),
		cold_starts: C.int64_t(st.ColdStarts), start_failures: C.int64_t(st.StartFailures),
		docker_errors: C.int64_t(st.DockerErrors), docker_unreachable: C.int64_t(st.DockerUnreachable),
		docker_transient: C.int64_t(st.DockerTransient), docker_not_found: C.int64_t(st.DockerNotFound),
		docker_other: C.int64_t(st.DockerOther), releases: C.int64_t(st.Releases),
		sessions_reaped: C.int64_t(st.SessionsReaped), orphans_removed: C.int64_t(st.OrphansRemoved),
		queue_waits: C.int64_t(st.QueueWaits), queue_timeouts: C.int64_t(st.QueueTimeouts),
		acquire_p50_ms: C.double(st.Acquire.P50), acquire_p95_ms: C.double(st.Acquire.P95),
		acquire_p99_ms: C.double(st.Acquire.P99), create_p50_ms: C.double(st.Create.P50),
		create_p95_ms: C.double(st.Create.P95), create_p99_ms: C.double(st.Create.P99),
		start_p50_ms: C.double(st.Start.P50), start_p95_ms: C.double(st.Start.P95),
		start_p99_ms: C.double(st.Start.P99), ready_p50_ms: C.double(st.Ready.P50),
		ready_p95_ms: C.double(st.Ready.P95), ready_p99_ms: C.double(st.Ready.P99),
	}
	doc := C.CString(snap.StatusJSON)
	defer C.free(unsafe.Pointer(doc))
	cs.status_json = doc
	cs.status_json_len = C.int32_t(len(snap.StatusJSON))
	C.call_publish(h.cb, &cs)
}

// rowBuffer returns a C array of n rows, reusing the previous one when it
// is large enough. C memory, because C must not keep Go pointers.
func (h *cHost) rowBuffer(n int) []C.PlcoordContainerRow {
	if n > h.nrow {
		C.free(h.rows)
		h.rows = C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof(C.PlcoordContainerRow{})))
		h.nrow = n
	}
	if n == 0 {
		return nil
	}
	rows := unsafe.Slice((*C.PlcoordContainerRow)(h.rows), n)
	clear(rows)
	return rows
}

func (h *cHost) runtimeBuffer(n int) []C.PlcoordRuntimeRow {
	if n > C.PLCOORD_MAX_RUNTIMES {
		n = C.PLCOORD_MAX_RUNTIMES
	}
	if n > h.nrts {
		C.free(h.rts)
		h.rts = C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof(C.PlcoordRuntimeRow{})))
		h.nrts = n
	}
	if n == 0 {
		return nil
	}
	rts := unsafe.Slice((*C.PlcoordRuntimeRow)(h.rts), n)
	clear(rts)
	return rts
}

func goSettings(s *C.PlcoordSettings) coordinator.Settings {
	return coordinator.Settings{
		MaxContainers:      int(s.max_container_number),
		CheckInterval:      time.Duration(s.check_loop_interval_s) * time.Second,
		AcquireTimeout:     time.Duration(s.acquire_timeout_ms) * time.Millisecond,
		MaxParallelCreates: int(s.max_parallel_creates),
		ShutdownTimeout:    time.Duration(s.shutdown_timeout_ms) * time.Millisecond,
		TestHooks:          bool(s.enable_test_hooks),
		Hardening:          bool(s.container_hardening),
		ConfigFile:         C.GoString(&s.config_file[0]),
		DockerHost:         C.GoString(&s.docker_host[0]),
		SocketDir:          C.GoString(&s.socket_dir[0]),
		DataDir:            C.GoString(&s.data_dir[0]),
		Instance:           C.GoString(&s.instance[0]),
		SegIndex:           int(s.segindex),
	}
}

// setString copies s into a fixed C char array, truncated and terminated.
func setString(dst []C.char, s string) {
	n := min(len(s), len(dst)-1)
	for i := 0; i < n; i++ {
		dst[i] = C.char(s[i])
	}
	dst[n] = 0
}

func unixMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}
