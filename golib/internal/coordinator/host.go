package coordinator

import "github.com/plcoordinator/plcoordinator/golib/internal/status"

// State is the coordinator state published in shared memory; the values
// match PlcoordState in include/plcoordinator_abi.h.
type State int32

// Coordinator states.
const (
	StateUninitialized State = 0
	StateStarting      State = 1
	StateReady         State = 2
	StateStopping      State = 3
)

// Signal bits returned by Host.TakeSignals (PLCOORD_SIG_*).
const (
	SigTerm uint32 = 0x1
	SigHup  uint32 = 0x2
)

// Host is what the C shim provides to the main loop. Every method must be
// called from the goroutine running Run, which sits on PostgreSQL's main
// thread; the C side refuses calls from anywhere else.
type Host interface {
	Log(level status.Level, message string)
	TakeSignals() uint32
	ReloadSettings() (Settings, error)
	SetState(state State, address string)
	Publish(snap *status.Snapshot)
}
