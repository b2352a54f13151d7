package status

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLogger_NeverBlocksAndCountsDrops(t *testing.T) {
	l := NewLogger(2)
	l.Infof("one %d", 1)
	l.Warnf("two")
	l.Debugf("three") // the queue is full: dropped, not blocked
	assert.Equal(t, Record{Level: Info, Message: "one 1"}, <-l.Records())
	assert.Equal(t, Record{Level: Warning, Message: "two"}, <-l.Records())
	assert.EqualValues(t, 1, l.Dropped())
	assert.EqualValues(t, 0, l.Dropped(), "Dropped resets the count")
}

func TestLatencies_Percentiles(t *testing.T) {
	var l Latencies
	assert.Equal(t, Percentiles{}, l.Percentiles(), "no samples")
	for i := 1; i <= 100; i++ {
		l.Observe(time.Duration(i) * time.Millisecond)
	}
	p := l.Percentiles()
	assert.InDelta(t, 50, p.P50, 1)
	assert.InDelta(t, 95, p.P95, 1)
	assert.InDelta(t, 99, p.P99, 1)
}

func TestLatencies_WindowKeepsTheMostRecent(t *testing.T) {
	var l Latencies
	for i := 0; i < latencyWindow; i++ {
		l.Observe(time.Second)
	}
	for i := 0; i < latencyWindow; i++ {
		l.Observe(time.Millisecond)
	}
	assert.InDelta(t, 1, l.Percentiles().P99, 0.01, "old samples are gone")
}

func TestCounters_StatsAndReset(t *testing.T) {
	var c Counters
	c.Requests.Add(3)
	c.ColdStarts.Add(1)
	c.Acquire.Observe(2 * time.Millisecond)
	s := c.Stats()
	assert.EqualValues(t, 3, s.Requests)
	assert.EqualValues(t, 1, s.ColdStarts)
	assert.InDelta(t, 2, s.Acquire.P50, 0.01)
	c.Reset()
	assert.Equal(t, Stats{}, c.Stats())
}

func TestPanics_RecoveredIntoAReport(t *testing.T) {
	p := NewPanics()
	p.Go("worker", func() { panic(errors.New("boom")) })
	select {
	case err := <-p.C():
		require.Error(t, err)
		assert.Contains(t, err.Error(), "panic in worker: boom")
	case <-time.After(5 * time.Second):
		t.Fatal("no panic report")
	}
}
