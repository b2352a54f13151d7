package protocol

import (
	"errors"
	"fmt"
)

// ErrUnknownType is returned by Unmarshal for a message type this version
// does not define. The server answers such a frame with ERROR CodeProtocol
// and closes the connection.
var ErrUnknownType = errors.New("protocol: unknown message type")

// Message is a typed protocol message. Marshal returns its payload; it never
// fails because every str field is repaired on the way out (a NUL byte
// becomes U+FFFD, and more than MaxString bytes are cut at a UTF-8
// boundary), so no payload of this version can exceed MaxPayload.
type Message interface {
	Type() MsgType
	Marshal() []byte
}

// Hello is the first message on every connection (client → server).
type Hello struct {
	MinVersion     uint16 // lowest protocol version the client speaks
	MaxVersion     uint16 // highest protocol version the client speaks
	PID            int32  // backend process id; must equal the SO_PEERCRED pid
	BackendStartUS int64  // backend start time, µs since the Unix epoch
	Client         string // free text naming the client, e.g. "plcoordinator-c/1"
}

// Welcome answers Hello (server → client).
type Welcome struct {
	Version    uint16 // chosen protocol version: the highest common one
	MaxPayload uint32 // largest payload the server accepts
	Instance   string // coordinator instance id
	ServerPID  int32  // pid of the coordinator process
}

// Acquire asks for a container of a runtime for this session
// (client → server).
type Acquire struct {
	RuntimeID   string // runtime id from the PL/Container configuration
	Role        string // current role name
	Database    string // current database name
	DatabaseOID uint32 // current database OID
	SegIndex    int32  // Greenplum content id; -1 on the coordinator and on PostgreSQL
	Flags       uint32 // bit 0 AcquireWantFD; other bits 0
	TimeoutMS   uint32 // how long the coordinator may take; 0 = server default
}

// Acquired answers Acquire (server → client). When the frame has FlagFD set,
// a connected socket to the container travels with it.
type Acquired struct {
	ContainerID   string // Docker container id
	Address       string // "unix:/abs/path" or "tcp:127.0.0.1:port"
	Reused        bool   // this session had the container already
	Prewarmed     bool   // the container came from the prewarmed pool
	WaitMS        uint32 // time the request spent in the coordinator
	ClientVersion string // PING version of the container's client when the fd is sent after a PING handshake, else ""
}

// Release gives back this session's container of one runtime
// (client → server).
type Release struct {
	RuntimeID string // runtime id passed to Acquire
}

// ReleaseAll gives back all of this session's containers and cancels an
// Acquire in flight (client → server). It has no fields.
type ReleaseAll struct{}

// Released answers Release and ReleaseAll (server → client).
type Released struct {
	Count uint32 // containers released
}

// Reload asks the coordinator to re-read its configuration
// (client → server). It has no fields.
type Reload struct{}

// Reloaded answers Reload (server → client).
type Reloaded struct {
	Runtimes uint32 // runtimes configured after the reload
	Message  string // human-readable summary
}

// Status asks for a status document (client → server). It has no fields.
type Status struct{}

// StatusReply answers Status (server → client).
type StatusReply struct {
	JSON string // status document, a JSON object of at most MaxText bytes
}

// StatsReset asks the coordinator to zero its counters (client → server);
// the reply is Done.
type StatsReset struct{}

// Done is the reply to a request that returns nothing (server → client).
type Done struct{}

// Type returns TypeStatsReset.
func (StatsReset) Type() MsgType { return TypeStatsReset }

// Type returns TypeDone.
func (Done) Type() MsgType { return TypeDone }

// Marshal returns the empty STATS_RESET payload.
func (StatsReset) Marshal() []byte { return []byte{} }

// Marshal returns the empty DONE payload.
func (Done) Marshal() []byte { return []byte{} }

// DebugPanic asks the coordinator to panic, as a test hook; the server
// honours it only when enabled by configuration (client → server). It has no
// fields.
type DebugPanic struct{}

// ErrorMsg is the error reply to any request (server → client). *ErrorMsg
// implements error, so Client returns it directly.
type ErrorMsg struct {
	Code    ErrorCode // see the Code constants
	Message string    // primary message, lower case, no trailing period
	Detail  string    // optional detail sentence, may be ""
	Hint    string    // optional hint sentence, may be ""
}

// Error returns "protocol: remote error <Code>: <Message>".
func (e *ErrorMsg) Error() string {
	return fmt.Sprintf("protocol: remote error %s: %s", e.Code, e.Message)
}

// CodeOf returns the code of the *ErrorMsg in err's chain, if any.
func CodeOf(err error) (ErrorCode, bool) {
	var em *ErrorMsg
	if errors.As(err, &em) {
		return em.Code, true
	}
	return 0, false
}

// Type returns TypeHello.
func (Hello) Type() MsgType { return TypeHello }

// Type returns TypeWelcome.
func (Welcome) Type() MsgType { return TypeWelcome }

// Type returns TypeAcquire.
func (Acquire) Type() MsgType { return TypeAcquire }

// Type returns TypeAcquired.
func (Acquired) Type() MsgType { return TypeAcquired }

// Type returns TypeRelease.
func (Release) Type() MsgType { return TypeRelease }

// Type returns TypeReleaseAll.
func (ReleaseAll) Type() MsgType { return TypeReleaseAll }

// Type returns TypeReleased.
func (Released) Type() MsgType { return TypeReleased }

// Type returns TypeReload.
func (Reload) Type() MsgType { return TypeReload }

// Type returns TypeReloaded.
func (Reloaded) Type() MsgType { return TypeReloaded }

// Type returns TypeStatus.
func (Status) Type() MsgType { return TypeStatus }

// Type returns TypeStatusReply.
func (StatusReply) Type() MsgType { return TypeStatusReply }

// Type returns TypeDebugPanic.
func (DebugPanic) Type() MsgType { return TypeDebugPanic }

// Type returns TypeError.
func (ErrorMsg) Type() MsgType { return TypeError }

// Marshal returns the HELLO payload.
func (m Hello) Marshal() []byte {
	e := encoder{b: make([]byte, 0, 18+len(m.Client))}
	e.u16(m.MinVersion)
	e.u16(m.MaxVersion)
	e.i32(m.PID)
	e.i64(m.BackendStartUS)
	e.str(m.Client)
	return e.b
}

// Marshal returns the WELCOME payload.
func (m Welcome) Marshal() []byte {
	e := encoder{b: make([]byte, 0, 12+len(m.Instance))}
	e.u16(m.Version)
	e.u32(m.MaxPayload)
	e.str(m.Instance)
	e.i32(m.ServerPID)
	return e.b
}

// Marshal returns the ACQUIRE payload.
func (m Acquire) Marshal() []byte {
	e := encoder{b: make([]byte, 0, 22+len(m.RuntimeID)+len(m.Role)+len(m.Database))}
	e.str(m.RuntimeID)
	e.str(m.Role)
	e.str(m.Database)
	e.u32(m.DatabaseOID)
	e.i32(m.SegIndex)
	e.u32(m.Flags)
	e.u32(m.TimeoutMS)
	return e.b
}

// Marshal returns the ACQUIRED payload.
func (m Acquired) Marshal() []byte {
	e := encoder{b: make([]byte, 0, 12+len(m.ContainerID)+len(m.Address)+len(m.ClientVersion))}
	e.str(m.ContainerID)
	e.str(m.Address)
	e.bool(m.Reused)
	e.bool(m.Prewarmed)
	e.u32(m.WaitMS)
	e.str(m.ClientVersion)
	return e.b
}

// Marshal returns the RELEASE payload.
func (m Release) Marshal() []byte {
	e := encoder{b: make([]byte, 0, 2+len(m.RuntimeID))}
	e.str(m.RuntimeID)
	return e.b
}

// Marshal returns the empty RELEASE_ALL payload.
func (ReleaseAll) Marshal() []byte { return []byte{} }

// Marshal returns the RELEASED payload.
func (m Released) Marshal() []byte {
	e := encoder{b: make([]byte, 0, 4)}
	e.u32(m.Count)
	return e.b
}

// Marshal returns the empty RELOAD payload.
func (Reload) Marshal() []byte { return []byte{} }

// Marshal returns the RELOADED payload.
func (m Reloaded) Marshal() []byte {
	e := encoder{b: make([]byte, 0, 6+len(m.Message))}
	e.u32(m.Runtimes)
	e.str(m.Message)
	return e.b
}

// Marshal returns the empty STATUS payload.
func (Status) Marshal() []byte { return []byte{} }

// Marshal returns the STATUS_REPLY payload.
func (m StatusReply) Marshal() []byte {
	e := encoder{b: make([]byte, 0, 4+len(m.JSON))}
	e.text(m.JSON)
	return e.b
}

// Marshal returns the empty DEBUG_PANIC payload.
func (DebugPanic) Marshal() []byte { return []byte{} }

// Marshal returns the ERROR payload.
func (m ErrorMsg) Marshal() []byte {
	e := encoder{b: make([]byte, 0, 8+len(m.Message)+len(m.Detail)+len(m.Hint))}
	e.u16(uint16(m.Code))
	e.str(m.Message)
	e.str(m.Detail)
	e.str(m.Hint)
	return e.b
}

// UnmarshalHello decodes a HELLO payload. Like every UnmarshalXxx function
// it ignores bytes after the known fields, returns an error wrapping
// ErrShortPayload when the payload ends early, ErrStringTooLong for a str
// longer than MaxString and ErrBadString for a str containing NUL. The
// result does not alias p.
func UnmarshalHello(p []byte) (Hello, error) {
	d := decoder{p: p, msg: TypeHello}
	m := Hello{
		MinVersion:     d.u16("min_version"),
		MaxVersion:     d.u16("max_version"),
		PID:            d.i32("pid"),
		BackendStartUS: d.i64("backend_start_us"),
		Client:         d.str("client"),
	}
	if d.err != nil {
		return Hello{}, d.err
	}
	return m, nil
}

// UnmarshalWelcome decodes a WELCOME payload (see UnmarshalHello).
func UnmarshalWelcome(p []byte) (Welcome, error) {
	d := decoder{p: p, msg: TypeWelcome}
	m := Welcome{
		Version:    d.u16("version"),
		MaxPayload: d.u32("max_payload"),
		Instance:   d.str("instance"),
		ServerPID:  d.i32("server_pid"),
	}
	if d.err != nil {
		return Welcome{}, d.err
	}
	return m, nil
}

// UnmarshalAcquire decodes an ACQUIRE payload (see UnmarshalHello).
func UnmarshalAcquire(p []byte) (Acquire, error) {
	d := decoder{p: p, msg: TypeAcquire}
	m := Acquire{
		RuntimeID:   d.str("runtime_id"),
		Role:        d.str("role"),
		Database:    d.str("database"),
		DatabaseOID: d.u32("database_oid"),
		SegIndex:    d.i32("segindex"),
		Flags:       d.u32("flags"),
		TimeoutMS:   d.u32("timeout_ms"),
	}
	if d.err != nil {
		return Acquire{}, d.err
	}
	return m, nil
}

// UnmarshalAcquired decodes an ACQUIRED payload (see UnmarshalHello).
func UnmarshalAcquired(p []byte) (Acquired, error) {
	d := decoder{p: p, msg: TypeAcquired}
	m := Acquired{
		ContainerID:   d.str("container_id"),
		Address:       d.str("address"),
		Reused:        d.bool("reused"),
		Prewarmed:     d.bool("prewarmed"),
		WaitMS:        d.u32("wait_ms"),
		ClientVersion: d.str("client_version"),
	}
	if d.err != nil {
		return Acquired{}, d.err
	}
	return m, nil
}

// UnmarshalRelease decodes a RELEASE payload (see UnmarshalHello).
func UnmarshalRelease(p []byte) (Release, error) {
	d := decoder{p: p, msg: TypeRelease}
	m := Release{RuntimeID: d.str("runtime_id")}
	if d.err != nil {
		return Release{}, d.err
	}
	return m, nil
}

// UnmarshalReleased decodes a RELEASED payload (see UnmarshalHello).
func UnmarshalReleased(p []byte) (Released, error) {
	d := decoder{p: p, msg: TypeReleased}
	m := Released{Count: d.u32("count")}
	if d.err != nil {
		return Released{}, d.err
	}
	return m, nil
}

// UnmarshalReloaded decodes a RELOADED payload (see UnmarshalHello).
func UnmarshalReloaded(p []byte) (Reloaded, error) {
	d := decoder{p: p, msg: TypeReloaded}
	m := Reloaded{Runtimes: d.u32("runtimes"), Message: d.str("message")}
	if d.err != nil {
		return Reloaded{}, d.err
	}
	return m, nil
}

// UnmarshalStatusReply decodes a STATUS_REPLY payload (see UnmarshalHello).
func UnmarshalStatusReply(p []byte) (StatusReply, error) {
	d := decoder{p: p, msg: TypeStatusReply}
	m := StatusReply{JSON: d.text("json")}
	if d.err != nil {
		return StatusReply{}, d.err
	}
	return m, nil
}

// UnmarshalError decodes an ERROR payload (see UnmarshalHello). Codes this
// version does not define are returned as they are.
func UnmarshalError(p []byte) (ErrorMsg, error) {
	d := decoder{p: p, msg: TypeError}
	m := ErrorMsg{
		Code:    ErrorCode(d.u16("code")),
		Message: d.str("message"),
		Detail:  d.str("detail"),
		Hint:    d.str("hint"),
	}
	if d.err != nil {
		return ErrorMsg{}, d.err
	}
	return m, nil
}

// Unmarshal decodes the payload of a message of type t into its typed value
// (Hello, Acquire, ReleaseAll, ... — values, not pointers). Messages without
// fields accept any payload. A type this version does not define yields
// ErrUnknownType.
func Unmarshal(t MsgType, p []byte) (Message, error) {
	switch t {
	case TypeHello:
		return typed(UnmarshalHello(p))
	case TypeWelcome:
		return typed(UnmarshalWelcome(p))
	case TypeAcquire:
		return typed(UnmarshalAcquire(p))
	case TypeAcquired:
		return typed(UnmarshalAcquired(p))
	case TypeRelease:
		return typed(UnmarshalRelease(p))
	case TypeReleaseAll:
		return ReleaseAll{}, nil
	case TypeReleased:
		return typed(UnmarshalReleased(p))
	case TypeReload:
		return Reload{}, nil
	case TypeReloaded:
		return typed(UnmarshalReloaded(p))
	case TypeStatus:
		return Status{}, nil
	case TypeStatusReply:
		return typed(UnmarshalStatusReply(p))
	case TypeDebugPanic:
		return DebugPanic{}, nil
	case TypeStatsReset:
		return StatsReset{}, nil
	case TypeDone:
		return Done{}, nil
	case TypeError:
		return typed(UnmarshalError(p))
	}
	return nil, fmt.Errorf("%w: %s", ErrUnknownType, t)
}

// typed converts a typed decode result to Unmarshal's, so that a failed
// decode yields a nil Message.
func typed[M Message](m M, err error) (Message, error) {
	if err != nil {
		return nil, err
	}
	return m, nil
}
