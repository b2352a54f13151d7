package protocol

import (
	"fmt"
	"time"
)

// Version is the highest protocol version this package speaks.
const Version = 1

// MinVersion is the lowest protocol version this package speaks.
const MinVersion = 1

// MaxPayload is the largest payload, in bytes, a frame may carry. The header
// is not included.
const MaxPayload = 65536

// HeaderSize is the size of the frame header in bytes.
const HeaderSize = 12

// MaxText is the largest number of bytes a text field (u32 length) may
// hold: a whole payload less its length prefix.
const MaxText = MaxPayload - 4

// MaxString is the largest number of bytes a str field may hold.
const MaxString = 4096

// FrameTimeout is the per-frame deadline: once the first header byte of a
// frame has arrived, the rest of the frame must arrive within this time or
// the connection is closed. Idle connections have no deadline.
const FrameTimeout = 5 * time.Second

// FlagFD is the header flag (bit 0) saying that one file descriptor travels
// with the frame as SCM_RIGHTS ancillary data. All other flag bits must be 0.
const FlagFD = 1

// flagsKnown is the set of flag bits defined in this version.
const flagsKnown = FlagFD

// AcquireWantFD is the Acquire.Flags bit (bit 0) asking the coordinator to
// hand over the connected container socket with SCM_RIGHTS when it can.
const AcquireWantFD = 1

// MsgType identifies the message a frame carries (header offset 8).
type MsgType uint8

// Message types of protocol version 1.
const (
	TypeHello       MsgType = 0x01 // client → server, first frame
	TypeWelcome     MsgType = 0x02 // server → client, reply to HELLO
	TypeDone        MsgType = 0x03 // server → client, reply to STATS_RESET and DEBUG_PANIC
	TypeAcquire     MsgType = 0x10 // client → server
	TypeAcquired    MsgType = 0x11 // server → client, reply to ACQUIRE
	TypeRelease     MsgType = 0x12 // client → server
	TypeReleaseAll  MsgType = 0x13 // client → server
	TypeReleased    MsgType = 0x14 // server → client, reply to RELEASE and RELEASE_ALL
	TypeReload      MsgType = 0x20 // client → server
	TypeReloaded    MsgType = 0x21 // server → client, reply to RELOAD
	TypeStatus      MsgType = 0x22 // client → server
	TypeStatusReply MsgType = 0x23 // server → client, reply to STATUS
	TypeStatsReset  MsgType = 0x24 // client → server
	TypeDebugPanic  MsgType = 0x7E // client → server, test hook
	TypeError       MsgType = 0x7F // server → client, reply to any request
)

// String returns the protocol name of t, such as "ACQUIRE", or
// "MsgType(0x42)" for a type this version does not define.
func (t MsgType) String() string {
	if n := t.name(); n != "" {
		return n
	}
	return fmt.Sprintf("MsgType(0x%02X)", uint8(t))
}

// Known reports whether t is a message type defined by this version.
func (t MsgType) Known() bool {
	return t.name() != ""
}

// name returns the protocol name of t, or "" if t is not defined.
func (t MsgType) name() string {
	switch t {
	case TypeHello:
		return "HELLO"
	case TypeWelcome:
		return "WELCOME"
	case TypeAcquire:
		return "ACQUIRE"
	case TypeAcquired:
		return "ACQUIRED"
	case TypeRelease:
		return "RELEASE"
	case TypeReleaseAll:
		return "RELEASE_ALL"
	case TypeReleased:
		return "RELEASED"
	case TypeReload:
		return "RELOAD"
	case TypeReloaded:
		return "RELOADED"
	case TypeStatus:
		return "STATUS"
	case TypeStatusReply:
		return "STATUS_REPLY"
	case TypeDebugPanic:
		return "DEBUG_PANIC"
	case TypeDone:
		return "DONE"
	case TypeStatsReset:
		return "STATS_RESET"
	case TypeError:
		return "ERROR"
	}
	return ""
}

// IsRequest reports whether t is sent by the client (HELLO included).
func (t MsgType) IsRequest() bool {
	switch t {
	case TypeHello, TypeAcquire, TypeRelease, TypeReleaseAll, TypeReload, TypeStatus, TypeStatsReset, TypeDebugPanic:
		return true
	}
	return false
}

// Header is the fixed 12-byte frame header. On the wire it is laid out
// big-endian as follows; the reserved field is always 0 and is not kept.
type Header struct {
	Length    uint32  // offset 0: payload length in bytes, header excluded
	RequestID uint32  // offset 4: chosen by the client, echoed in the reply; 0 = none
	Type      MsgType // offset 8: message type
	Flags     uint8   // offset 9: bit 0 FlagFD; other bits must be 0
	// offset 10: u16 reserved, must be 0
}

// Frame is one header plus its payload. Payload may alias the buffer passed
// to ReadFrame.
type Frame struct {
	Header
	Payload []byte // Length bytes
}

// ErrorCode is the code carried by an ERROR message. The C client maps each
// code to a SQLSTATE; see SQLState.
type ErrorCode uint16

// Error codes of protocol version 1.
const (
	CodeProtocol        ErrorCode = 1  // malformed or unexpected frame; the connection is closed
	CodeVersion         ErrorCode = 2  // no common protocol version; the connection is closed
	CodeUnknownRuntime  ErrorCode = 3  // runtime_id is not configured
	CodePermission      ErrorCode = 4  // the caller may not use this runtime or request
	CodeNotReady        ErrorCode = 5  // the coordinator is starting or reconciling
	CodeLimit           ErrorCode = 6  // a container or session limit is reached
	CodeStartTimeout    ErrorCode = 7  // the container did not become ready in time
	CodeStartFailed     ErrorCode = 8  // the container could not be started, or the acquire was cancelled
	CodeDocker          ErrorCode = 9  // the Docker daemon failed or is unreachable
	CodeSessionConflict ErrorCode = 10 // another live connection exists for this backend pid
	CodeConfigInvalid   ErrorCode = 11 // the configuration file is invalid
	CodeShuttingDown    ErrorCode = 12 // the coordinator is stopping
	CodeInternal        ErrorCode = 13 // a bug or unexpected condition in the coordinator
)

var codeNames = [...]struct{ name, sqlstate string }{
	CodeProtocol:        {"Protocol", "08P01"},
	CodeVersion:         {"Version", "08P01"},
	CodeUnknownRuntime:  {"UnknownRuntime", "42704"},
	CodePermission:      {"Permission", "42501"},
	CodeNotReady:        {"NotReady", "57P03"},
	CodeLimit:           {"Limit", "53400"},
	CodeStartTimeout:    {"StartTimeout", "58000"},
	CodeStartFailed:     {"StartFailed", "38000"},
	CodeDocker:          {"Docker", "58030"},
	CodeSessionConflict: {"SessionConflict", "55006"},
	CodeConfigInvalid:   {"ConfigInvalid", "F0000"},
	CodeShuttingDown:    {"ShuttingDown", "57P01"},
	CodeInternal:        {"Internal", "XX000"},
}

// String returns the name of c, such as "UnknownRuntime", or
// "ErrorCode(99)" for a code this version does not define.
func (c ErrorCode) String() string {
	if int(c) < len(codeNames) && codeNames[c].name != "" {
		return codeNames[c].name
	}
	return fmt.Sprintf("ErrorCode(%d)", uint16(c))
}

// SQLState returns the SQLSTATE the C client raises for c. Codes this
// version does not define map to XX000 (internal_error).
func (c ErrorCode) SQLState() string {
	if int(c) < len(codeNames) && codeNames[c].sqlstate != "" {
		return codeNames[c].sqlstate
	}
	return "XX000"
}

// NegotiateVersion returns the highest version this package supports inside
// the client's range [lo, hi], and false when there is none (the server then
// answers ERROR CodeVersion and closes).
func NegotiateVersion(lo, hi uint16) (uint16, bool) {
	if lo > hi {
		return 0, false
	}
	v := min(hi, Version)
	if v < lo || v < MinVersion {
		return 0, false
	}
	return v, true
}
