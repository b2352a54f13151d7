package status

import (
	"fmt"
	"runtime/debug"
)

// Panics collects panics recovered in goroutines. A recovered panic is
// fatal for the coordinator: the main loop stops and the worker exits 1,
// so PostgreSQL restarts the worker alone instead of the whole cluster.
type Panics struct {
	ch chan error
}

// NewPanics returns an empty collector.
func NewPanics() *Panics { return &Panics{ch: make(chan error, 1)} }

// C delivers the first recovered panic.
func (p *Panics) C() <-chan error { return p.ch }

// Go runs fn in a new goroutine that recovers a panic into p.
func (p *Panics) Go(name string, fn func()) {
	go func() {
		defer p.Recover(name)
		fn()
	}()
}

// Recover must be deferred directly; it turns a panic into a report.
func (p *Panics) Recover(name string) {
	if r := recover(); r != nil {
		err := fmt.Errorf("panic in %s: %v\n%s", name, r, debug.Stack())
		select {
		case p.ch <- err:
		default:
		}
	}
}
