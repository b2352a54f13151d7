//go:build unix

package protocol

import (
	"io"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// socketPair returns the two ends of a connected Unix stream socket pair.
func socketPair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

// pipe returns an os.Pipe whose ends are closed at cleanup.
func pipe(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// assertWorks writes through the received descriptor and reads the text
// back from the pipe, proving fd refers to the pipe's write end.
func assertWorks(t *testing.T, fd int, r *os.File, text string) {
	t.Helper()
	f := os.NewFile(uintptr(fd), "received")
	_, err := f.Write([]byte(text))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	got := make([]byte, len(text))
	_, err = io.ReadFull(r, got)
	require.NoError(t, err)
	assert.Equal(t, text, string(got))
}

func TestFD_PassPipeWriteEnd(t *testing.T) {
	t.Parallel()
	a, b := socketPair(t)
	pr, pw := pipe(t)

	want := Acquired{ContainerID: "c1", Address: "unix:/x", WaitMS: 5, ClientVersion: "plcontainer-2"}
	require.NoError(t, WriteFrameFD(a, NewFrame(7, want), int(pw.Fd())))
	require.NoError(t, pw.Close()) // the receiver holds its own copy

	f, fd, err := ReadFrameFD(b, make([]byte, MaxPayload))
	require.NoError(t, err)
	require.GreaterOrEqual(t, fd, 0)
	assert.Equal(t, uint8(FlagFD), f.Flags)
	assert.Equal(t, uint32(7), f.RequestID)
	got, err := UnmarshalAcquired(f.Payload)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	require.NoError(t, err)
	assert.NotZero(t, flags&unix.FD_CLOEXEC, "received descriptor is close-on-exec")

	assertWorks(t, fd, pr, "through the passed descriptor")
	n, err := pr.Read(make([]byte, 1))
	assert.Equal(t, 0, n)
	assert.Equal(t, io.EOF, err, "no copy of the write end is left open")
}

func TestFD_InterleavedFrames(t *testing.T) {
	t.Parallel()
	a, b := socketPair(t)
	pr1, pw1 := pipe(t)
	pr2, pw2 := pipe(t)

	// Queue everything before reading so the frames sit back to back in the
	// socket buffer; each descriptor must stay with its own frame.
	big := strings.Repeat("z", MaxString)
	require.NoError(t, WriteFrame(a, NewFrame(1, Released{Count: 1})))
	require.NoError(t, WriteFrameFD(a, NewFrame(2, Acquired{ContainerID: "one"}), int(pw1.Fd())))
	require.NoError(t, WriteFrameFD(a, NewFrame(3, Acquired{ContainerID: big, Address: big}), int(pw2.Fd())))
	require.NoError(t, WriteFrame(a, NewFrame(4, StatusReply{JSON: big})))

	buf := make([]byte, MaxPayload)
	f, fd, err := ReadFrameFD(b, buf)
	require.NoError(t, err)
	assert.Equal(t, uint32(1), f.RequestID)
	assert.Equal(t, -1, fd)

	f, fd, err = ReadFrameFD(b, buf)
	require.NoError(t, err)
	assert.Equal(t, uint32(2), f.RequestID)
	assertWorks(t, fd, pr1, "one")

	f, fd, err = ReadFrameFD(b, buf)
	require.NoError(t, err)
	assert.Equal(t, uint32(3), f.RequestID)
	assertWorks(t, fd, pr2, "two")

	f, fd, err = ReadFrameFD(b, buf)
	require.NoError(t, err)
	assert.Equal(t, uint32(4), f.RequestID)
	assert.Equal(t, -1, fd)

	require.NoError(t, a.Close())
	_, fd, err = ReadFrameFD(b, buf)
	assert.Equal(t, io.EOF, err)
	assert.Equal(t, -1, fd)
}

func TestFD_PlainReaderDropsDescriptor(t *testing.T) {
	t.Parallel()
	a, b := socketPair(t)
	pr, pw := pipe(t)
	require.NoError(t, WriteFrameFD(a, NewFrame(1, Acquired{}), int(pw.Fd())))
	require.NoError(t, pw.Close())

	f, err := ReadFrame(b, nil) // read(2) has no room for the rights
	require.NoError(t, err)
	assert.Equal(t, uint8(FlagFD), f.Flags)
	n, err := pr.Read(make([]byte, 1))
	assert.Equal(t, 0, n)
	assert.Equal(t, io.EOF, err, "the kernel closed the undelivered descriptor")
}

func TestFD_Mismatch(t *testing.T) {
	t.Parallel()
	payload := Acquired{ContainerID: "c"}.Marshal()
	wire := func(flags uint8) []byte {
		h := Header{Length: uint32(len(payload)), RequestID: 9, Type: TypeAcquired, Flags: flags}
		return append(h.Append(nil), payload...)
	}
	cases := []struct {
		name  string
		flags uint8
		nfds  int
	}{
		{"flag_without_fd", FlagFD, 0},
		{"fd_without_flag", 0, 1},
		{"two_fds", FlagFD, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := socketPair(t)
			pr, pw := pipe(t)
			var oob []byte
			if tc.nfds > 0 {
				fds := make([]int, tc.nfds)
				for i := range fds {
					fds[i] = int(pw.Fd())
				}
				oob = unix.UnixRights(fds...)
			}
			_, _, err := a.WriteMsgUnix(wire(tc.flags), oob, nil)
			require.NoError(t, err)
			require.NoError(t, pw.Close())

			f, fd, err := ReadFrameFD(b, nil)
			require.ErrorIs(t, err, ErrBadFD)
			assert.Equal(t, -1, fd)
			assert.Equal(t, uint32(9), f.RequestID)
			n, err := pr.Read(make([]byte, 1))
			assert.Equal(t, 0, n)
			assert.Equal(t, io.EOF, err, "received descriptors were closed")
		})
	}
}

func TestFD_BadHeaderClosesDescriptor(t *testing.T) {
	t.Parallel()
	a, b := socketPair(t)
	pr, pw := pipe(t)
	h := Header{Type: TypeAcquired, Flags: FlagFD | 0x10}
	_, _, err := a.WriteMsgUnix(h.Append(nil), unix.UnixRights(int(pw.Fd())), nil)
	require.NoError(t, err)
	require.NoError(t, pw.Close())

	_, fd, err := ReadFrameFD(b, nil)
	require.ErrorIs(t, err, ErrBadHeader)
	assert.Equal(t, -1, fd)
	n, err := pr.Read(make([]byte, 1))
	assert.Equal(t, 0, n)
	assert.Equal(t, io.EOF, err)
}

func TestWriteFrameFD_Rejects(t *testing.T) {
	t.Parallel()
	a, _ := socketPair(t)
	require.ErrorIs(t, WriteFrameFD(a, NewFrame(1, Acquired{}), -1), ErrBadFD)
	f := NewFrame(1, Acquired{})
	f.Flags = 0x40
	require.ErrorIs(t, WriteFrameFD(a, f, 0), ErrBadHeader)
	require.ErrorIs(t, WriteFrameFD(a, Frame{Payload: make([]byte, MaxPayload+1)}, 0), ErrFrameTooLarge)
}
