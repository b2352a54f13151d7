package protocol

import (
	"errors"
	"fmt"
)

var (
	// ErrFrameTooLarge is returned when a frame header announces, or a caller
	// tries to send, a payload longer than MaxPayload. The connection must be
	// closed: the body was not read, so the stream is no longer in sync.
	ErrFrameTooLarge = errors.New("protocol: frame too large")

	// ErrShortPayload is returned by the UnmarshalXxx functions when a payload
	// ends before all known fields of the message have been read.
	ErrShortPayload = errors.New("protocol: short payload")

	// ErrBadHeader is returned when a frame header has unknown flag bits or a
	// non-zero reserved field, or when a frame is sent with flags that the
	// chosen write function cannot honour.
	ErrBadHeader = errors.New("protocol: bad frame header")

	// ErrStringTooLong is returned when a str field announces more than
	// MaxString bytes.
	ErrStringTooLong = errors.New("protocol: string too long")

	// ErrBadString is returned when a str field contains a NUL byte, which the
	// C side could not represent.
	ErrBadString = errors.New("protocol: string contains NUL byte")

	// ErrBadFD is returned by ReadFrameFD and WriteFrameFD when the file
	// descriptors travelling with a frame do not match its FlagFD bit:
	// FlagFD without a descriptor, a descriptor without FlagFD, more than one
	// descriptor, or truncated ancillary data.
	ErrBadFD = errors.New("protocol: file descriptor does not match frame flags")

	// ErrClientClosed is returned by Client methods after Close, or after the
	// connection failed.
	ErrClientClosed = errors.New("protocol: client closed")
)

// fieldError wraps a sentinel with the message and field it concerns, for
// example "protocol: short payload: ACQUIRE.timeout_ms".
func fieldError(sentinel error, msg MsgType, field string) error {
	return fmt.Errorf("%w: %s.%s", sentinel, msg, field)
}
