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
	Requests, WarmHits, PrewarmHits, ColdStarts, StartFailures, DockerErrors int64
	Releases, SessionsReaped, OrphansRemoved, QueueWaits, QueueTimeouts      int64
	AcquireP50, AcquireP95, AcquireP99                                       float64 // ms
	ReadyP50, ReadyP95, ReadyP99                                             float64 // ms
}

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
	Requesters      int
	DockerReachable bool
	ConfigLoadedAt  time.Time
	ConfigErrorAt   time.Time
	ConfigError     string
	Stats           Stats
}

// Counters are the coordinator's event counters; safe for concurrent use.
type Counters struct {
	Requests, WarmHits, PrewarmHits, ColdStarts, StartFailures, DockerErrors atomic.Int64
	Releases, SessionsReaped, OrphansRemoved, QueueWaits, QueueTimeouts      atomic.Int64
	Acquire, Ready                                                           Latencies
}

// Stats copies the counters.
func (c *Counters) Stats() Stats {
	s := Stats{
		Requests: c.Requests.Load(), WarmHits: c.WarmHits.Load(), PrewarmHits: c.PrewarmHits.Load(),
		ColdStarts: c.ColdStarts.Load(), StartFailures: c.StartFailures.Load(), DockerErrors: c.DockerErrors.Load(),
		Releases: c.Releases.Load(), SessionsReaped: c.SessionsReaped.Load(), OrphansRemoved: c.OrphansRemoved.Load(),
		QueueWaits: c.QueueWaits.Load(), QueueTimeouts: c.QueueTimeouts.Load(),
	}
	s.AcquireP50, s.AcquireP95, s.AcquireP99 = c.Acquire.Percentiles()
	s.ReadyP50, s.ReadyP95, s.ReadyP99 = c.Ready.Percentiles()
	return s
}

// Reset zeroes every counter (plcoordinator.stats_reset()).
func (c *Counters) Reset() {
	for _, v := range []*atomic.Int64{&c.Requests, &c.WarmHits, &c.PrewarmHits, &c.ColdStarts, &c.StartFailures,
		&c.DockerErrors, &c.Releases, &c.SessionsReaped, &c.OrphansRemoved, &c.QueueWaits, &c.QueueTimeouts} {
		v.Store(0)
	}
	c.Acquire.Reset()
	c.Ready.Reset()
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
	ms := float64(d.Microseconds()) / 1000
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
func (l *Latencies) Percentiles() (p50, p95, p99 float64) {
	l.mu.Lock()
	s := append([]float64(nil), l.samples...)
	l.mu.Unlock()
	if len(s) == 0 {
		return 0, 0, 0
	}
	sort.Float64s(s)
	at := func(p float64) float64 { return s[int(p*float64(len(s)-1)+0.5)] }
	return at(0.50), at(0.95), at(0.99)
}
