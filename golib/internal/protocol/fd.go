//go:build unix

package protocol

import (
	"errors"
	"fmt"
	"io"
	"net"

	"golang.org/x/sys/unix"
)

// maxRecvFDs is how many descriptors ReadFrameFD makes room for. Only one is
// legal; the extra room lets it see, close and report a misbehaving sender
// instead of having the kernel truncate silently.
const maxRecvFDs = 4

// WriteFrameFD writes f to c with FlagFD set and fd attached as SCM_RIGHTS
// ancillary data to the sendmsg call that carries the frame's first byte.
// The length written is len(f.Payload); f.Length is ignored and f.Flags may
// only be 0 or FlagFD. fd stays open in the caller; the receiver gets its
// own descriptor for the same open file.
func WriteFrameFD(c *net.UnixConn, f Frame, fd int) error {
	if fd < 0 {
		return fmt.Errorf("%w: invalid descriptor %d", ErrBadFD, fd)
	}
	if f.Flags&^FlagFD != 0 {
		return fmt.Errorf("%w: unknown flags 0x%02x", ErrBadHeader, f.Flags)
	}
	b, err := appendFrame(f, FlagFD)
	if err != nil {
		return err
	}
	n, _, err := c.WriteMsgUnix(b, unix.UnixRights(fd), nil)
	if err != nil {
		return fmt.Errorf("protocol: writing %s frame with descriptor: %w", f.Type, err)
	}
	// A stream socket may accept only part of the frame; the descriptor
	// went with the first byte, so the rest is plain data.
	if n < len(b) {
		if _, err := c.Write(b[n:]); err != nil {
			return fmt.Errorf("protocol: writing %s frame: %w", f.Type, err)
		}
	}
	return nil
}

// ReadFrameFD reads one frame from c like ReadFrame and also collects the
// file descriptor that travels with it. It reads the header with recvmsg
// (ReadMsgUnix), where the kernel delivers the SCM_RIGHTS data, and then
// exactly the payload, never beyond the frame. It returns the descriptor, or
// -1 when the frame has no FlagFD; the caller owns a returned descriptor
// (it is close-on-exec on Linux). A descriptor that does not match the
// header's FlagFD bit is closed and ErrBadFD is returned; the connection
// should then be closed. On any error no descriptor is left open.
func ReadFrameFD(c *net.UnixConn, buf []byte) (Frame, int, error) {
	hb := headerScratch(buf)
	oob := make([]byte, unix.CmsgSpace(maxRecvFDs*4))
	var fds []int
	truncated := false
	for got := 0; got < HeaderSize; {
		n, oobn, flags, _, err := c.ReadMsgUnix(hb[got:], oob)
		got += n
		if oobn > 0 {
			rights, perr := parseRights(oob[:oobn])
			fds = append(fds, rights...)
			if perr != nil {
				closeFDs(fds)
				return Frame{}, -1, perr
			}
		}
		if flags&unix.MSG_CTRUNC != 0 {
			truncated = true
		}
		if err != nil {
			closeFDs(fds)
			if got == 0 && errors.Is(err, io.EOF) {
				return Frame{}, -1, io.EOF
			}
			return Frame{}, -1, fmt.Errorf("protocol: reading frame header: %w", eofUnexpected(err))
		}
	}
	h, err := ParseHeader(hb)
	if err == nil {
		err = checkFDs(h, fds, truncated)
	}
	if err != nil {
		closeFDs(fds)
		return Frame{Header: h}, -1, err
	}
	f, err := readBody(c, hb, buf)
	if err != nil {
		closeFDs(fds)
		return f, -1, err
	}
	if len(fds) == 0 {
		return f, -1, nil
	}
	return f, fds[0], nil
}

// checkFDs verifies that exactly one descriptor came with a FlagFD frame
// and none with any other.
func checkFDs(h Header, fds []int, truncated bool) error {
	switch {
	case truncated:
		return fmt.Errorf("%w: ancillary data truncated on %s frame", ErrBadFD, h.Type)
	case h.Flags&FlagFD != 0 && len(fds) != 1:
		return fmt.Errorf("%w: %s frame has FlagFD and %d descriptors", ErrBadFD, h.Type, len(fds))
	case h.Flags&FlagFD == 0 && len(fds) != 0:
		return fmt.Errorf("%w: %s frame without FlagFD has %d descriptors", ErrBadFD, h.Type, len(fds))
	}
	return nil
}

// parseRights returns every descriptor in the SCM_RIGHTS messages of oob.
// On error it returns the descriptors found so far, for the caller to close.
func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("protocol: parsing ancillary data: %w", err)
	}
	var fds []int
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_RIGHTS {
			continue
		}
		rights, err := unix.ParseUnixRights(&m)
		if err != nil {
			return fds, fmt.Errorf("protocol: parsing SCM_RIGHTS: %w", err)
		}
		fds = append(fds, rights...)
	}
	return fds, nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		_ = unix.Close(fd)
	}
}
