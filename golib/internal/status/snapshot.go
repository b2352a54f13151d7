package status

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Container is one row of plcoordinator.containers.
type Container struct {
	ID         string
	Runtime    string
	Owner      string
	Database   string
	State      string // starting, ready, in use, idle, prewarmed, stopping
	Address    string
	BackendPID int32
	ReadyMS    int32 // -1 while starting
	CreatedAt  time.Time
	LastUsed   time.Time
	Uses       int64
	MemoryKB   int64 // -1 when unknown
	ExitCode   int32 // -1 while running
	OOMKilled  bool
}

// Stats are the counters of plcoordinator.stats.
type Stats struct {
	Requests, WarmHits, PrewarmHits, ColdStarts, StartFailures          int64
	DockerErrors, DockerUnreachable, DockerTransient, DockerNotFound    int64
	DockerOther                                                         int64
	Releases, SessionsReaped, OrphansRemoved, QueueWaits, QueueTimeouts int64
	Acquire, Create, Start, Ready                                       Percentiles // ms
}

// Percentiles of one latency, in milliseconds.
type Percentiles struct{ P50, P95, P99 float64 }

// RuntimeAccess is what a backend checks before asking for a runtime.
type RuntimeAccess struct {
	ID          string
	UserControl bool   // roles, network or devices: members of Roles only
	Roles       string // comma-separated
}

// Snapshot is everything published to shared memory at once.
type Snapshot struct {
	Containers      []Container
	Runtimes        []RuntimeAccess
	DockerReachable bool
	ConfigLoadedAt  time.Time
	ConfigErrorAt   time.Time
	ConfigError     string
	Stats           Stats
	StatusJSON      string // runtimes and requesters, for their views
}

// Counters are the coordinator's event counters; safe for concurrent use.
// ColdStarts counts containers started for a request (a failed start is a
// StartFailure only); Docker errors are counted in total and by kind.
type Counters struct {
	Requests, WarmHits, PrewarmHits, ColdStarts, StartFailures          atomic.Int64
	DockerErrors, DockerUnreachable, DockerTransient, DockerNotFound    atomic.Int64
	DockerOther                                                         atomic.Int64
	Releases, SessionsReaped, OrphansRemoved, QueueWaits, QueueTimeouts atomic.Int64
	// Acquire is request to answer; Create and Start the Docker calls;
	// Ready create to ready.
	Acquire, Create, Start, Ready Latencies
}

// counters lists every counter once, for Stats and Reset.
func (c *Counters) counters() []*atomic.Int64 {
	return []*atomic.Int64{&c.Requests, &c.WarmHits, &c.PrewarmHits, &c.ColdStarts, &c.StartFailures,
		&c.DockerErrors, &c.DockerUnreachable, &c.DockerTransient, &c.DockerNotFound, &c.DockerOther,
		&c.Releases, &c.SessionsReaped, &c.OrphansRemoved, &c.QueueWaits, &c.QueueTimeouts}
}

// Stats copies the counters.
func (c *Counters) Stats() Stats {
	v := c.counters()
	return Stats{
		Requests: v[0].Load(), WarmHits: v[1].Load(), PrewarmHits: v[2].Load(), ColdStarts: v[3].Load(),
		StartFailures: v[4].Load(), DockerErrors: v[5].Load(), DockerUnreachable: v[6].Load(),
		DockerTransient: v[7].Load(), DockerNotFound: v[8].Load(), DockerOther: v[9].Load(),
		Releases: v[10].Load(), SessionsReaped: v[11].Load(), OrphansRemoved: v[12].Load(),
		QueueWaits: v[13].Load(), QueueTimeouts: v[14].Load(),
		Acquire: c.Acquire.Percentiles(), Create: c.Create.Percentiles(), Start: c.Start.Percentiles(),
		Ready: c.Ready.Percentiles(),
	}
}

// Reset zeroes every counter (plcoordinator.stats_reset()).
func (c *Counters) Reset() {
	for _, v := range c.counters() {
		v.Store(0)
	}
	for _, l := range []*Latencies{&c.Acquire, &c.Create, &c.Start, &c.Ready} {
		l.Reset()
	}
}

// latencyWindow is how many recent samples the percentiles are taken over.
const latencyWindow = 2048

// Latencies keeps the most recent samples of one latency.
type Latencies struct {
	mu      sync.Mutex
	samples []float64
	next    int
}

// Observe records one duration.
func (l *Latencies) Observe(d time.Duration) {
	ms := float64(d) / float64(time.Millisecond)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.samples) < latencyWindow {
		l.samples = append(l.samples, ms)
		return
	}
	l.samples[l.next] = ms
	l.next = (l.next + 1) % latencyWindow
}

// Reset drops every sample.
func (l *Latencies) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.samples, l.next = nil, 0
}

// Percentiles returns p50, p95 and p99 in milliseconds (0 without samples).
func (l *Latencies) Percentiles() Percentiles {
	l.mu.Lock()
	s := append([]float64(nil), l.samples...)
	l.mu.Unlock()
	if len(s) == 0 {
		return Percentiles{}
	}
	sort.Float64s(s)
	at := func(p float64) float64 { return s[int(p*float64(len(s)-1)+0.5)] }
	return Percentiles{P50: at(0.50), P95: at(0.95), P99: at(0.99)}
}
