package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/plcoordinator/plcoordinator/golib/internal/config"
	"github.com/plcoordinator/plcoordinator/golib/internal/status"
)

// Exit codes of Run, as the worker passes them to proc_exit.
const (
	ExitStop    = 0 // unregister the worker
	ExitRestart = 1 // let the postmaster start it again
)

// housekeepingInterval is how often the main loop checks for dropped log
// records; publishing itself is driven by changes.
const housekeepingInterval = time.Second

// Run is the coordinator's main loop. It runs on PostgreSQL's main thread
// (the goroutine the C shim called into) and is the only code that calls
// host. It returns when the coordinator stops: on SIGTERM, on postmaster
// death, or after a fatal error such as a recovered panic.
func Run(host Host, s Settings, signalFD, postmasterFD int) (code int) {
	runtime.GOMAXPROCS(2)
	debug.SetGCPercent(100)
	debug.SetMemoryLimit(256 << 20)

	log := status.NewLogger(4096)
	panics := status.NewPanics()
	defer func() {
		if r := recover(); r != nil {
			host.Log(status.Warning, "coordinator main loop panicked: "+panicString(r))
			code = ExitRestart
		}
	}()

	signals := make(chan struct{}, 1)
	pmDead := make(chan struct{})
	panics.Go("signal reader", func() { readWakeups(os.NewFile(uintptr(signalFD), "plcoordinator-signals"), signals) })
	panics.Go("postmaster watch", func() { watchPostmaster(os.NewFile(uintptr(postmasterFD), "postmaster-watch"), pmDead) })

	c, err := New(s, log, panics)
	if err == nil {
		err = c.Start()
	}
	if err != nil {
		drainLogs(host, log)
		host.Log(status.Warning, "coordinator could not start: "+err.Error())
		if c != nil {
			c.Stop(context.Background())
		}
		return ExitRestart
	}
	publish := func() {
		v := c.Version()
		host.Publish(c.Snapshot())
		c.Published(v)
	}
	publish()
	host.SetState(StateReady, "unix:"+s.SocketPath())
	host.Log(status.Info, "coordinator ready on "+s.SocketPath())

	code = ExitRestart
	housekeeping := time.NewTicker(housekeepingInterval)
	defer housekeeping.Stop()
loop:
	for {
		select {
		case <-signals:
			bits := host.TakeSignals()
			if bits&SigHup != 0 {
				reloadSettings(host, c)
			}
			if bits&SigTerm != 0 {
				host.Log(status.Info, "received SIGTERM, shutting down")
				break loop
			}
		case <-pmDead:
			host.Log(status.Warning, "postmaster died, shutting down")
			break loop
		case err := <-panics.C():
			host.Log(status.Warning, "stopping after a fatal error: "+err.Error())
			break loop
		case rec := <-log.Records():
			host.Log(rec.Level, rec.Message)
		case <-c.Dirty():
			publish()
		case done := <-c.ReloadRequests():
			cfg, err := reloadSettings(host, c)
			done <- reloadResult{cfg: cfg, err: err}
		case <-housekeeping.C:
			if n := log.Dropped(); n > 0 {
				host.Log(status.Warning, fmt.Sprintf("log queue full: dropped %d records", n))
			}
		}
	}

	host.SetState(StateStopping, "")
	ctx, cancel := context.WithTimeout(context.Background(), c.ShutdownTimeout())
	defer cancel()
	done := make(chan struct{})
	panics.Go("shutdown", func() {
		defer close(done)
		c.Stop(ctx)
	})
	for {
		select {
		case <-done:
			drainLogs(host, log)
			publish()
			return code
		case <-c.Dirty():
			publish()
		case rec := <-log.Records():
			host.Log(rec.Level, rec.Message)
		case err := <-panics.C():
			host.Log(status.Warning, "panic during shutdown: "+err.Error())
			return code
		}
	}
}

// reloadSettings re-reads postgresql.conf through the host and applies
// it, the runtime configuration file included.
func reloadSettings(host Host, c *Coordinator) (*config.Config, error) {
	ns, err := host.ReloadSettings()
	if err != nil {
		host.Log(status.Warning, "could not reload settings: "+err.Error())
		return c.ApplySettings(c.settings)
	}
	return c.ApplySettings(ns)
}

// drainLogs writes every queued record.
func drainLogs(host Host, log *status.Logger) {
	for {
		select {
		case rec := <-log.Records():
			host.Log(rec.Level, rec.Message)
		default:
			return
		}
	}
}

// readWakeups turns eventfd readability into non-blocking sends on ch.
func readWakeups(f *os.File, ch chan<- struct{}) {
	buf := make([]byte, 8)
	for {
		if _, err := f.Read(buf); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// watchPostmaster closes dead when the postmaster's end of the pipe
// closes: reading the watch fd only ever returns EOF.
func watchPostmaster(f *os.File, dead chan<- struct{}) {
	buf := make([]byte, 1)
	for {
		_, err := f.Read(buf)
		if err == io.EOF {
			close(dead)
			return
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func panicString(r any) string {
	if err, ok := r.(error); ok {
		return err.Error()
	}
	if s, ok := r.(string); ok {
		return s
	}
	return "unknown panic"
}
