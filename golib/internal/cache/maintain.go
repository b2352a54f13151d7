package cache

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/plcoordinator/plcoordinator/golib/internal/dockerx"
)

// Tunables of the background work.
const (
	removeWorkers = 2
	// creationGrace protects containers of the current generation whose
	// create response may still be on its way from being taken for orphans.
	creationGrace = 30 * time.Second
	// deadGrace is how long a container that died under its session stays
	// visible (state "exited", with its exit code and OOM flag) before the
	// sweep removes it; the session's next acquire replaces it sooner.
	deadGrace       = 60 * time.Second
	eventsRetryMin  = 100 * time.Millisecond
	eventsRetryMax  = 10 * time.Second
	prewarmRetryMin = time.Second
	prewarmRetryMax = 60 * time.Second
	inspectWorkers  = 4
	memoryWorkers   = 1
	memoryInterval  = 5 * time.Second
)

// backoff is an exponential delay that resets on success.
type backoff struct {
	delay time.Duration
	until time.Time
}

func (b *backoff) fail(min, max time.Duration) {
	if b.delay == 0 {
		b.delay = min
	} else {
		b.delay = minDur(b.delay*2, max)
	}
	b.until = time.Now().Add(b.delay)
}

func minDur(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

// Run starts the background work: removals, Docker events, the sweep and
// the prewarm pool. It first removes what an earlier coordinator left.
func (c *Cache) Run() error {
	if err := os.MkdirAll(c.opts.ContainersDir, 0o700); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.stop = cancel
	for i := 0; i < removeWorkers; i++ {
		c.goLoop("removal worker", func() { c.removeWorker(ctx) })
	}
	c.mu.Lock()
	c.runCtx = ctx
	for _, d := range c.dockersLocked() {
		c.watchLocked(d)
	}
	c.mu.Unlock()
	c.goLoop("sweep", func() { c.sweepLoop(ctx) })
	c.goLoop("memory", func() { c.memoryLoop(ctx) })
	c.goLoop("prewarm", func() { c.prewarmLoop(ctx) })
	return nil
}

func (c *Cache) goLoop(name string, fn func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer c.opts.Panics.Recover(name)
		fn()
	}()
}

// watchLocked follows the events of engine d, once Run has started.
func (c *Cache) watchLocked(d Docker) {
	if c.runCtx == nil || c.watched[d] {
		return
	}
	c.watched[d] = true
	ctx := c.runCtx
	c.goLoop("docker events", func() { c.watchEvents(ctx, d) })
}

// watchEvents marks containers that die or run out of memory as soon as
// Docker says so.
func (c *Cache) watchEvents(ctx context.Context, d Docker) {
	delay := eventsRetryMin
	for ctx.Err() == nil {
		evs, errs := d.Events(ctx, map[string]string{LabelInstance: c.opts.Instance})
		ok := true
		for ok {
			select {
			case ev, open := <-evs:
				if !open {
					ok = false
					break
				}
				delay = eventsRetryMin
				c.onEvent(ev)
			case err := <-errs:
				if err != nil && ctx.Err() == nil {
					c.log.Debugf("docker events stream ended: %v", err)
				}
				ok = false
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return
		}
		delay = minDur(delay*2, eventsRetryMax)
	}
}

func (c *Cache) onEvent(ev dockerx.Event) {
	if ev.Action != "die" && ev.Action != "oom" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[ev.Labels[LabelName]]
	if e == nil || e.id != ev.ID {
		return
	}
	if ev.Action == "oom" {
		e.oom = true
	} else {
		c.markDeadLocked(e, int32(ev.ExitCode))
	}
	c.changedLocked()
}

// markDeadLocked records a container's end. A prewarmed one is replaced
// at once; one bound to a session stays visible until the session acquires
// again, ends, or deadGrace passes.
func (c *Cache) markDeadLocked(e *entry, exitCode int32) {
	if e.exited {
		return
	}
	e.exited = true
	e.exitCode = exitCode
	e.diedAt = time.Now()
	if e.conn != nil {
		e.conn.Close()
		e.conn = nil
	}
	if e.state == StatePrewarmed {
		c.prewarmFailedLocked(e.runtime.ID)
		c.removeLocked(e)
	}
}

// sweepLoop runs the periodic checks every CheckInterval.
func (c *Cache) sweepLoop(ctx context.Context) {
	c.Reconcile(ctx)
	t := time.NewTicker(c.checkInterval())
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.sweep(ctx)
		case <-c.retune:
			t.Reset(c.checkInterval())
		case <-ctx.Done():
			return
		}
	}
}

// checkInterval is the sweep period now.
func (c *Cache) checkInterval() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opts.CheckInterval
}

// sweep finds sessions whose backend is gone, idle and dead containers to
// remove, refreshes inspect data, and reconciles with Docker.
func (c *Cache) sweep(ctx context.Context) {
	now := time.Now()
	c.mu.Lock()
	for k, m := range c.sessions {
		if !alive(k.PID) {
			c.ctr.SessionsReaped.Add(1)
			for _, e := range m {
				c.removeLocked(e)
			}
		}
	}
	for _, e := range c.entries {
		switch {
		case e.removeFailed:
			e.removeFailed = false
			c.queueRemovalLocked(e)
		case e.exited && now.Sub(e.diedAt) > deadGrace:
			c.removeLocked(e)
		case e.state == StateIdle && e.runtime.IdleTimeout > 0 && now.Sub(e.lastUsed) > e.runtime.IdleTimeout:
			c.removeLocked(e)
		}
	}
	c.mu.Unlock()

	c.inspectAll(ctx)
	c.Reconcile(ctx)
}

// alive reports whether a process exists (signal 0).
func alive(pid int32) bool {
	err := unix.Kill(int(pid), 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// liveEntries lists the containers that run as far as the cache knows.
func (c *Cache) liveEntries() []*entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*entry
	for _, e := range c.entries {
		if e.id != "" && !e.exited && e.state != StateStarting && e.state != StateStopping {
			out = append(out, e)
		}
	}
	return out
}

// forEach runs fn on every entry with at most n at a time.
func (c *Cache) forEach(entries []*entry, n int, name string, fn func(*entry)) {
	work := make(chan *entry)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.opts.Panics.Recover(name)
			for e := range work {
				fn(e)
			}
		}()
	}
	for _, e := range entries {
		work <- e
	}
	close(work)
	wg.Wait()
}

// inspectAll catches containers that ended without an event (the events
// usually tell first): one list per engine finds them, and only those are
// inspected for their exit code and OOM flag, so that the views show them
// without calling Docker.
func (c *Cache) inspectAll(ctx context.Context) {
	live := c.liveEntries()
	running := map[string]bool{}
	listed := map[Docker]bool{}
	var ended []*entry
	for _, e := range live {
		if !listed[e.be.Docker] {
			listed[e.be.Docker] = true
			list, err := e.be.Docker.List(ctx, map[string]string{LabelInstance: c.opts.Instance})
			if err != nil {
				c.setReachable(!dockerx.IsUnreachable(err))
				return
			}
			for _, s := range list {
				running[s.ID] = s.State == "running"
			}
		}
		if !running[e.id] {
			ended = append(ended, e)
		}
	}
	c.forEach(ended, inspectWorkers, "inspect", func(e *entry) { c.inspectOne(ctx, e) })
}

func (c *Cache) inspectOne(ctx context.Context, e *entry) {
	st, err := e.be.Docker.Inspect(ctx, e.id)
	if err != nil {
		if dockerx.IsNotFound(err) {
			c.mu.Lock()
			c.markDeadLocked(e, -1)
			c.changedLocked()
			c.mu.Unlock()
		} else {
			c.setReachable(!dockerx.IsUnreachable(err))
		}
		return
	}
	c.setReachable(true)
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.OOMKilled && !e.oom {
		e.oom = true
		c.changedLocked()
	}
	if !st.Running && st.Status != "created" && !e.exited {
		c.markDeadLocked(e, int32(st.ExitCode))
		c.changedLocked()
	}
}

// memoryLoop refreshes the containers' memory use for the views. Docker's
// stats call takes about a second, so it runs apart from the sweep, which
// must stay quick, one call at a time to keep the coordinator and dockerd
// nearly idle: every Options.MemoryInterval, by default every sweep but
// at most every memoryInterval.
func (c *Cache) memoryLoop(ctx context.Context) {
	period := func() time.Duration {
		if c.opts.MemoryInterval > 0 {
			return c.opts.MemoryInterval
		}
		return max(c.checkInterval(), memoryInterval)
	}
	t := time.NewTimer(period())
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		t.Reset(period())
		c.forEach(c.liveEntries(), memoryWorkers, "memory", func(e *entry) {
			mem, err := e.be.Docker.MemoryUsage(ctx, e.id)
			if err != nil || mem == 0 {
				return
			}
			c.mu.Lock()
			if kb := int64(mem / 1024); kb != e.memKB {
				e.memKB = kb
				c.changedLocked()
			}
			c.mu.Unlock()
		})
	}
}

// Reconcile removes containers labelled with this instance that the cache
// does not own: all those of earlier generations, and those of this
// generation older than creationGrace (a create whose answer was lost),
// never one created after the pass began. It also removes socket
// directories nobody owns.
func (c *Cache) Reconcile(ctx context.Context) {
	c.mu.Lock()
	dockers := c.dockersLocked()
	c.mu.Unlock()
	for _, d := range dockers {
		c.reconcileEngine(ctx, d)
	}
	c.removeStrayDirs()
}

// reconcileEngine is Reconcile for one engine.
func (c *Cache) reconcileEngine(ctx context.Context, d Docker) {
	began := time.Now()
	list, err := d.List(ctx, map[string]string{LabelInstance: c.opts.Instance})
	if err != nil {
		c.setReachable(!dockerx.IsUnreachable(err))
		c.log.Debugf("reconcile: listing containers: %v", err)
		return
	}
	c.setReachable(true)
	// The entries are read after the list: a container created meanwhile
	// either is not listed or has its entry already.
	c.mu.Lock()
	owned := make(map[string]bool, len(c.entries))
	for _, e := range c.entries {
		if e.id != "" {
			owned[e.id] = true
		}
		owned[e.name] = true
	}
	c.mu.Unlock()

	for _, s := range list {
		if owned[s.ID] || owned[s.Labels[LabelName]] {
			continue
		}
		current := s.Labels[LabelGeneration] == c.opts.Generation
		if current && s.Created.After(began.Add(-creationGrace)) {
			continue
		}
		if err := d.Remove(ctx, s.ID); err != nil {
			c.log.Warnf("reconcile: could not remove orphaned container %s: %v", shortID(s.ID), err)
			continue
		}
		c.ctr.OrphansRemoved.Add(1)
		c.log.Infof("removed orphaned container %s (generation %s)", shortID(s.ID), s.Labels[LabelGeneration])
	}
}

// removeStrayDirs removes the socket directories no entry owns. An entry
// exists before its directory is made, and the directories are listed
// before the entries are read, so a directory without an entry at that
// point is nobody's: an earlier coordinator's, or a removal that failed.
func (c *Cache) removeStrayDirs() {
	dirs, err := os.ReadDir(c.opts.ContainersDir)
	if err != nil {
		return
	}
	var stray []string
	c.mu.Lock()
	for _, d := range dirs {
		if _, ok := c.entries[d.Name()]; !ok {
			stray = append(stray, d.Name())
		}
	}
	c.mu.Unlock()
	for _, name := range stray {
		_ = os.RemoveAll(filepath.Join(c.opts.ContainersDir, name))
	}
}

// kickPrewarm wakes the prewarm loop.
func (c *Cache) kickPrewarm() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *Cache) prewarmFailedLocked(runtime string) {
	b := c.prewarmBo[runtime]
	if b == nil {
		b = &backoff{}
		c.prewarmBo[runtime] = b
	}
	b.fail(prewarmRetryMin, prewarmRetryMax)
}

// prewarmLoop keeps each runtime's prewarm target of fresh containers,
// within the instance limit and never ahead of waiting requests. A runtime
// whose containers fail is retried with a growing delay, so a broken image
// cannot spin.
func (c *Cache) prewarmLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-c.kick:
		case <-t.C:
		case <-ctx.Done():
			return
		}
		for _, e := range c.prewarmNeeded() {
			// start keeps the runtime's backoff.
			c.goLoop("prewarm start", func() { c.start(e) })
		}
	}
}

// prewarmNeeded creates the entries of the prewarmed containers to start.
func (c *Cache) prewarmNeeded() []*entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	have := map[string]int{}
	for _, e := range c.entries {
		if !e.prewarm() && e.state == StateStarting {
			// Refilling the pool never competes with a session's cold
			// start for the create slots; the pool waits until it ends.
			return nil
		}
		if e.prewarm() && !e.exited && (e.state == StatePrewarmed || e.state == StateStarting) {
			have[e.runtime.ID]++
		}
	}
	var out []*entry
	now := time.Now()
	for _, rt := range c.runtimes {
		if rt.Prewarm <= 0 {
			continue
		}
		if b := c.prewarmBo[rt.ID]; b != nil && now.Before(b.until) {
			continue
		}
		for have[rt.ID] < rt.Prewarm && len(c.waiters) == 0 && c.countLocked() < c.opts.MaxContainers &&
			(rt.MaxContainers == 0 || c.runtimeCountLocked(rt.ID) < rt.MaxContainers) {
			e := c.newEntryLocked(rt, Key{})
			out = append(out, e)
			have[rt.ID]++
		}
	}
	return out
}

// Close removes every container the cache owns, within ctx, and stops the
// background work.
func (c *Cache) Close(ctx context.Context) {
	c.mu.Lock()
	c.closed = true
	var all []*entry
	for _, e := range c.entries {
		c.unbindLocked(e)
		if e.state == StateStarting {
			e.cancel = true
			continue
		}
		if e.state != StateStopping {
			e.state = StateStopping
			all = append(all, e)
		}
	}
	for _, w := range c.waiters {
		close(w.ch)
	}
	c.waiters = nil
	c.changedLocked()
	c.mu.Unlock()

	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, e := range all {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			defer c.opts.Panics.Recover("shutdown removal")
			c.destroy(e)
		}()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		c.wg.Wait()
		close(done)
	}()
	if c.stop != nil {
		// Removal workers must finish the queue first; starts in flight
		// remove their containers themselves.
		go func() {
			for {
				c.mu.Lock()
				n := len(c.entries)
				c.mu.Unlock()
				if n == 0 || ctx.Err() != nil {
					c.stop()
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	select {
	case <-done:
	case <-ctx.Done():
		c.log.Warnf("shutdown: gave up waiting for container removals: %v", ctx.Err())
	}
	c.removeStrayDirs()
	// Whatever is left (Docker unreachable, starts still waiting on it) the
	// next coordinator's reconciler removes: other generations go at once.
}
