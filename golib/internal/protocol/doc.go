// Package protocol implements the wire format spoken between PostgreSQL
// backends and the plcoordinator background worker over a Unix stream socket.
//
// A connection carries frames: a 12-byte big-endian header (payload length,
// request id, message type, flags, reserved) followed by a payload of at most
// MaxPayload bytes. Typed messages (Hello, Acquire, ErrorMsg, ...) encode to
// and decode from payloads with Marshal and the UnmarshalXxx functions. The
// byte layout, the session rules and the error-code table are specified in
// PROTOCOL.md next to this file; the C client in the backend implements the
// same document, and the vectors in testdata/golden hold both sides together.
//
// The framing functions work on any io.Reader or io.Writer. WriteFrameFD and
// ReadFrameFD additionally move one file descriptor with a frame over a
// *net.UnixConn (SCM_RIGHTS). Client is a small Go client for tests and
// benchmarks that talk to the coordinator directly.
package protocol
