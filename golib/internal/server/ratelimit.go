package server

import (
	"sync"
	"time"

	"github.com/plcoordinator/plcoordinator/golib/internal/status"
)

// logEvery is how often one kind of complaint about a client is logged; a
// flood of bad connections must not flood the server log.
const logEvery = 10 * time.Second

// limitedLog logs each kind of event at most once per logEvery and says
// how many were suppressed in between.
type limitedLog struct {
	log        *status.Logger
	mu         sync.Mutex
	last       map[string]time.Time
	suppressed map[string]int
}

func newLimitedLog(log *status.Logger) *limitedLog {
	return &limitedLog{log: log, last: map[string]time.Time{}, suppressed: map[string]int{}}
}

// Warnf logs a warning of the given kind unless one was logged recently.
func (l *limitedLog) Warnf(kind, format string, args ...any) {
	l.mu.Lock()
	now := time.Now()
	if t, ok := l.last[kind]; ok && now.Sub(t) < logEvery {
		l.suppressed[kind]++
		l.mu.Unlock()
		return
	}
	n := l.suppressed[kind]
	l.last[kind] = now
	l.suppressed[kind] = 0
	l.mu.Unlock()
	if n > 0 {
		format += " (%d similar messages suppressed)"
		args = append(args, n)
	}
	l.log.Warnf(format, args...)
}
