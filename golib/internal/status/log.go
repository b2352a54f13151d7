package status

import (
	"fmt"
	"sync/atomic"
)

// Level is the severity of a log record; the values match PLCOORD_LOG_*.
type Level int

// Log levels.
const (
	Debug   Level = 0
	Info    Level = 1
	Warning Level = 2
)

// Record is one line for the server log.
type Record struct {
	Level   Level
	Message string
}

// Logger queues records for the main loop. It is safe for concurrent use
// and never blocks.
type Logger struct {
	ch      chan Record
	dropped atomic.Int64
}

// NewLogger returns a logger whose queue holds up to size records.
func NewLogger(size int) *Logger {
	return &Logger{ch: make(chan Record, size)}
}

// Records is the channel the main loop drains.
func (l *Logger) Records() <-chan Record { return l.ch }

// Dropped returns how many records were lost to a full queue and resets
// the count.
func (l *Logger) Dropped() int64 { return l.dropped.Swap(0) }

func (l *Logger) put(level Level, format string, args ...any) {
	select {
	case l.ch <- Record{Level: level, Message: fmt.Sprintf(format, args...)}:
	default:
		l.dropped.Add(1)
	}
}

// Debugf queues a DEBUG1 record.
func (l *Logger) Debugf(format string, args ...any) { l.put(Debug, format, args...) }

// Infof queues a LOG record.
func (l *Logger) Infof(format string, args ...any) { l.put(Info, format, args...) }

// Warnf queues a WARNING record.
func (l *Logger) Warnf(format string, args ...any) { l.put(Warning, format, args...) }
