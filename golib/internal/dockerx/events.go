package dockerx

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/events"
)

// eventsReplay is how far back Events asks the engine to replay. The engine
// registers a subscriber only after it has sent the response headers, so
// without a replay an event between "Events returned" and "engine
// subscribed" would be lost. Consumers therefore see events up to one second
// older than the subscription and must treat them idempotently.
const eventsReplay = time.Second

// eventsBuffer is the capacity of the channel Events returns.
const eventsBuffer = 64

// attrsNotLabels are the attributes the engine adds to container events
// beside the container labels.
var attrsNotLabels = []string{"name", "image", "exitCode", "signal", "execID", "execDuration"}

// Event is one container event.
type Event struct {
	// ID is the full container id.
	ID string
	// Action is the event action: "create", "start", "die", "oom", "kill",
	// "destroy", and so on.
	Action string
	// ExitCode is the main process's exit status; it is set for "die"
	// events only.
	ExitCode int
	// Labels are the container labels the engine attaches to the event
	// (its own attributes such as name, image and exitCode removed).
	Labels map[string]string
	// Time is when the engine recorded the event.
	Time time.Time
}

// errSubscribeTimeout ends a subscription the engine did not accept within
// the call timeout.
var errSubscribeTimeout = fmt.Errorf("dockerx: events: subscribe: %w", context.DeadlineExceeded)

// Events subscribes to the events of containers carrying every label in
// labels (an empty value matches any value). Events returns once the
// engine has accepted the subscription, or failed to within the call
// timeout; after that the stream has no timeout. The event channel is
// closed when ctx ends (without an error) or after one error has been sent
// on the error channel (the engine went away, for example); the error
// channel is closed right after. Callers resubscribe after an error.
func (c *Client) Events(ctx context.Context, labels map[string]string) (<-chan Event, <-chan error) {
	out := make(chan Event, eventsBuffer)
	errc := make(chan error, 1)

	f := labelFilters(labels)
	f.Add("type", string(events.ContainerEventType))
	since := time.Now().Add(-eventsReplay)
	opts := events.ListOptions{
		Since:   fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()),
		Filters: f,
	}

	sub, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(c.callTimeout, func() { cancel(errSubscribeTimeout) })
	// The client's Events blocks until the engine has answered.
	msgs, errs := c.api.Events(sub, opts)
	timer.Stop()

	go func() {
		defer close(errc)
		defer close(out)
		defer cancel(nil)
		defer func() {
			// A panic must never leave the library: report it as the
			// stream's error instead.
			if r := recover(); r != nil {
				select {
				case errc <- fmt.Errorf("dockerx: events: panic: %v", r):
				default: // an error is already queued
				}
			}
		}()
		for {
			select {
			case m := <-msgs:
				select {
				case out <- toEvent(m):
				case <-sub.Done():
					endEvents(ctx, sub, errc)
					return
				}
			case err, ok := <-errs:
				if ok {
					endEventsErr(ctx, sub, errc, err)
				}
				return
			case <-sub.Done():
				endEvents(ctx, sub, errc)
				return
			}
		}
	}()
	return out, errc
}

// endEvents reports why the subscription context ended: nothing when the
// caller cancelled, a timeout when the engine never accepted.
func endEvents(ctx, sub context.Context, errc chan<- error) {
	if ctx.Err() != nil {
		return
	}
	if cause := context.Cause(sub); cause != nil && !errors.Is(cause, context.Canceled) {
		errc <- cause
	}
}

// endEventsErr reports a stream error unless the caller's context ended.
func endEventsErr(ctx, sub context.Context, errc chan<- error, err error) {
	if ctx.Err() != nil {
		return
	}
	if errors.Is(context.Cause(sub), errSubscribeTimeout) {
		errc <- errSubscribeTimeout
		return
	}
	errc <- fmt.Errorf("dockerx: events: %w", err)
}

// toEvent converts an engine event.
func toEvent(m events.Message) Event {
	ev := Event{
		ID:     m.Actor.ID,
		Action: string(m.Action),
		Time:   time.Unix(0, m.TimeNano),
	}
	if m.TimeNano == 0 {
		ev.Time = time.Unix(m.Time, 0)
	}
	if code, ok := m.Actor.Attributes["exitCode"]; ok {
		ev.ExitCode, _ = strconv.Atoi(code)
	}
	if len(m.Actor.Attributes) > 0 {
		ev.Labels = maps.Clone(m.Actor.Attributes)
		for _, k := range attrsNotLabels {
			delete(ev.Labels, k)
		}
	}
	return ev
}
