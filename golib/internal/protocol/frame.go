package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// ParseHeader decodes the header in the first HeaderSize bytes of b and
// validates it. It returns ErrBadHeader for unknown flag bits or a non-zero
// reserved field and ErrFrameTooLarge for a length above MaxPayload; in both
// cases the decoded Header is returned too, so that a server can echo its
// request id in an ERROR reply before closing the connection.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, want %d", ErrBadHeader, len(b), HeaderSize)
	}
	h := Header{
		Length:    binary.BigEndian.Uint32(b[0:4]),
		RequestID: binary.BigEndian.Uint32(b[4:8]),
		Type:      MsgType(b[8]),
		Flags:     b[9],
	}
	if h.Flags&^flagsKnown != 0 {
		return h, fmt.Errorf("%w: unknown flags 0x%02x", ErrBadHeader, h.Flags)
	}
	if r := binary.BigEndian.Uint16(b[10:12]); r != 0 {
		return h, fmt.Errorf("%w: reserved field 0x%04x", ErrBadHeader, r)
	}
	if h.Length > MaxPayload {
		return h, fmt.Errorf("%w: length %d exceeds %d", ErrFrameTooLarge, h.Length, MaxPayload)
	}
	return h, nil
}

// Append appends the wire form of h (reserved field 0) to b and returns the
// extended slice. It does not validate h.
func (h Header) Append(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, h.Length)
	b = binary.BigEndian.AppendUint32(b, h.RequestID)
	return append(b, byte(h.Type), h.Flags, 0, 0)
}

// NewFrame returns the frame carrying m with the given request id.
func NewFrame(requestID uint32, m Message) Frame {
	p := m.Marshal()
	return Frame{
		Header:  Header{Length: uint32(len(p)), RequestID: requestID, Type: m.Type()},
		Payload: p,
	}
}

// ReadFrame reads one frame from r and validates its header (see
// ParseHeader).
//
// buf is scratch space: when cap(buf) is at least the payload length (and at
// least HeaderSize) the returned Payload aliases buf and ReadFrame allocates
// nothing; otherwise a payload of exactly Length bytes is allocated. A
// caller that passes a buffer of MaxPayload bytes never allocates. The body
// of an oversized frame is not read.
//
// ReadFrame returns io.EOF, unwrapped, when r ends cleanly before the first
// header byte, and an error wrapping io.ErrUnexpectedEOF when it ends inside
// a frame. On a header error the returned Frame carries the decoded header.
func ReadFrame(r io.Reader, buf []byte) (Frame, error) {
	hb := headerScratch(buf)
	if n, err := io.ReadFull(r, hb); err != nil {
		if n == 0 && err == io.EOF {
			return Frame{}, io.EOF
		}
		return Frame{}, fmt.Errorf("protocol: reading frame header: %w", err)
	}
	return readBody(r, hb, buf)
}

// ReadFrameDeadline reads one frame from c like ReadFrame and enforces the
// per-frame deadline: it waits for the first header byte without a deadline
// of its own, then requires the rest of the frame within timeout (normally
// FrameTimeout). It leaves c with no read deadline. A timeout error wraps
// os.ErrDeadlineExceeded. To interrupt an idle wait, close c.
func ReadFrameDeadline(c net.Conn, buf []byte, timeout time.Duration) (Frame, error) {
	hb := headerScratch(buf)
	for {
		n, err := c.Read(hb[:1])
		if n == 1 {
			break
		}
		if err == io.EOF {
			return Frame{}, io.EOF
		}
		if err != nil {
			return Frame{}, fmt.Errorf("protocol: reading frame header: %w", err)
		}
	}
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return Frame{}, fmt.Errorf("protocol: setting frame deadline: %w", err)
	}
	f, err := readRest(c, hb, buf)
	if derr := c.SetReadDeadline(time.Time{}); derr != nil && err == nil {
		err = fmt.Errorf("protocol: clearing frame deadline: %w", derr)
	}
	return f, err
}

// readRest reads header bytes 1..HeaderSize-1 into hb and then the body.
func readRest(r io.Reader, hb, buf []byte) (Frame, error) {
	if _, err := io.ReadFull(r, hb[1:]); err != nil {
		return Frame{}, fmt.Errorf("protocol: reading frame header: %w", eofUnexpected(err))
	}
	return readBody(r, hb, buf)
}

// readBody validates the header in hb and reads the payload into buf or a
// fresh slice.
func readBody(r io.Reader, hb, buf []byte) (Frame, error) {
	h, err := ParseHeader(hb)
	if err != nil {
		return Frame{Header: h}, err
	}
	var p []byte
	if int(h.Length) <= cap(buf) {
		p = buf[:h.Length]
	} else {
		p = make([]byte, h.Length)
	}
	if _, err := io.ReadFull(r, p); err != nil {
		return Frame{Header: h}, fmt.Errorf("protocol: reading %s payload: %w", h.Type, eofUnexpected(err))
	}
	return Frame{Header: h, Payload: p}, nil
}

// headerScratch returns HeaderSize bytes to read a header into, reusing buf
// when it is large enough. The header is parsed before the payload
// overwrites it.
func headerScratch(buf []byte) []byte {
	if cap(buf) >= HeaderSize {
		return buf[:HeaderSize]
	}
	return make([]byte, HeaderSize)
}

// eofUnexpected turns io.EOF into io.ErrUnexpectedEOF: inside a frame, the
// end of the stream is always unexpected.
func eofUnexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// appendFrame validates f for sending and returns its wire form with the
// given flags. Length is taken from len(f.Payload); f.Length is ignored.
func appendFrame(f Frame, flags uint8) ([]byte, error) {
	if len(f.Payload) > MaxPayload {
		return nil, fmt.Errorf("%w: payload %d bytes exceeds %d", ErrFrameTooLarge, len(f.Payload), MaxPayload)
	}
	h := f.Header
	h.Length = uint32(len(f.Payload))
	h.Flags = flags
	b := make([]byte, 0, HeaderSize+len(f.Payload))
	b = h.Append(b)
	return append(b, f.Payload...), nil
}

// WriteFrame writes f to w with a single Write call. The length written is
// len(f.Payload); f.Length is ignored. WriteFrame never sends a file
// descriptor, so f.Flags must be 0 (use WriteFrameFD); otherwise it returns
// ErrBadHeader. A payload above MaxPayload yields ErrFrameTooLarge and
// nothing is written.
func WriteFrame(w io.Writer, f Frame) error {
	if f.Flags != 0 {
		return fmt.Errorf("%w: WriteFrame cannot send flags 0x%02x", ErrBadHeader, f.Flags)
	}
	b, err := appendFrame(f, 0)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("protocol: writing %s frame: %w", f.Type, err)
	}
	return nil
}
