package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sampleMessages returns one value of every message type, with negative
// numbers, empty, non-ASCII and maximum-length strings.
func sampleMessages() []Message {
	long := strings.Repeat("x", MaxString)
	return []Message{
		Hello{MinVersion: 1, MaxVersion: 3, PID: 4242, BackendStartUS: -1, Client: "plcoordinator-c/1"},
		Welcome{Version: 1, MaxPayload: MaxPayload, Instance: "seg-1-6000", ServerPID: 77},
		Acquire{RuntimeID: "plc_python3", Role: "rôle", Database: "", DatabaseOID: 0xFFFFFFFF, SegIndex: -1, Flags: AcquireWantFD, TimeoutMS: 1},
		Acquired{ContainerID: long, Address: "tcp:127.0.0.1:8080", Reused: true, Prewarmed: false, WaitMS: 12, ClientVersion: "1.2"},
		Release{RuntimeID: "plc_r"},
		ReleaseAll{},
		Released{Count: 3},
		Reload{},
		Reloaded{Runtimes: 2, Message: "reloaded"},
		Status{},
		StatusReply{JSON: `{"containers":[]}`},
		DebugPanic{},
		ErrorMsg{Code: CodeSessionConflict, Message: "m", Detail: long, Hint: "日本"},
	}
}

func TestReadWriteFrame_RoundTripAllMessages(t *testing.T) {
	t.Parallel()
	msgs := sampleMessages()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()

	go func() {
		for i, m := range msgs {
			if err := WriteFrame(a, NewFrame(uint32(i+1), m)); err != nil {
				t.Errorf("write %s: %v", m.Type(), err)
				return
			}
		}
	}()

	buf := make([]byte, MaxPayload)
	for i, want := range msgs {
		f, err := ReadFrame(b, buf)
		require.NoError(t, err)
		assert.Equal(t, uint32(i+1), f.RequestID)
		assert.Equal(t, want.Type(), f.Type)
		assert.Equal(t, uint8(0), f.Flags)
		assert.Equal(t, int(f.Length), len(f.Payload))
		got, err := Unmarshal(f.Type, f.Payload)
		require.NoError(t, err, want.Type().String())
		assert.Equal(t, want, got)
	}
}

func TestReadFrame_Oversize(t *testing.T) {
	t.Parallel()
	hdr := Header{Length: MaxPayload + 1, RequestID: 9, Type: TypeAcquire}.Append(nil)
	body := bytes.Repeat([]byte{0xAB}, 100)
	r := bytes.NewReader(append(hdr, body...))

	f, err := ReadFrame(r, nil)
	require.ErrorIs(t, err, ErrFrameTooLarge)
	assert.Equal(t, uint32(9), f.RequestID, "header is returned so the request id can be echoed")
	assert.Nil(t, f.Payload)
	assert.Equal(t, len(body), r.Len(), "the body must not be read")

	err = WriteFrame(io.Discard, Frame{Header: Header{Type: TypeStatusReply}, Payload: make([]byte, MaxPayload+1)})
	require.ErrorIs(t, err, ErrFrameTooLarge)

	// A payload of exactly MaxPayload is fine.
	var w bytes.Buffer
	require.NoError(t, WriteFrame(&w, Frame{Header: Header{Type: TypeStatusReply}, Payload: make([]byte, MaxPayload)}))
	f, err = ReadFrame(&w, nil)
	require.NoError(t, err)
	assert.Len(t, f.Payload, MaxPayload)
}

func TestReadFrame_OversizeDoesNotAllocateBody(t *testing.T) {
	hdr := Header{Length: 0xFFFFFFFF, Type: TypeHello}.Append(nil)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n = 100
	for range n {
		_, err := ReadFrame(bytes.NewReader(hdr), nil)
		require.ErrorIs(t, err, ErrFrameTooLarge)
	}
	runtime.ReadMemStats(&after)
	perCall := (after.TotalAlloc - before.TotalAlloc) / n
	assert.Less(t, perCall, uint64(1024), "bytes allocated per oversize ReadFrame")
}

func TestReadFrame_BadHeader(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		patch func(b []byte)
	}{
		{"flags:unknown_bit", func(b []byte) { b[9] = 0x02 }},
		{"flags:high_bit", func(b []byte) { b[9] = 0x80 }},
		{"flags:fd_plus_unknown", func(b []byte) { b[9] = FlagFD | 0x04 }},
		{"reserved:low", func(b []byte) { b[11] = 1 }},
		{"reserved:high", func(b []byte) { b[10] = 0x80 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := NewFrame(5, Release{RuntimeID: "r"}).Header.Append(nil)
			b = append(b, Release{RuntimeID: "r"}.Marshal()...)
			tc.patch(b)
			f, err := ReadFrame(bytes.NewReader(b), nil)
			require.ErrorIs(t, err, ErrBadHeader)
			assert.Equal(t, uint32(5), f.RequestID)
		})
	}
}

func TestReadFrame_FlagFDIsValidHeader(t *testing.T) {
	t.Parallel()
	b := Header{RequestID: 1, Type: TypeAcquired, Flags: FlagFD}.Append(nil)
	f, err := ReadFrame(bytes.NewReader(b), nil)
	require.NoError(t, err)
	assert.Equal(t, uint8(FlagFD), f.Flags)
}

func TestWriteFrame_RejectsFlags(t *testing.T) {
	t.Parallel()
	var w bytes.Buffer
	err := WriteFrame(&w, Frame{Header: Header{Type: TypeAcquired, Flags: FlagFD}})
	require.ErrorIs(t, err, ErrBadHeader)
	assert.Zero(t, w.Len())
}

func TestWriteFrame_IgnoresLengthField(t *testing.T) {
	t.Parallel()
	var w bytes.Buffer
	require.NoError(t, WriteFrame(&w, Frame{Header: Header{Length: 999, Type: TypeRelease}, Payload: []byte{0, 0}}))
	assert.Equal(t, uint32(2), binary.BigEndian.Uint32(w.Bytes()))
}

func TestReadFrame_EOF(t *testing.T) {
	t.Parallel()
	full := append(Header{Length: 4, Type: TypeReleased}.Append(nil), 0, 0, 0, 1)
	cases := []struct {
		name    string
		in      []byte
		wantEOF bool // clean io.EOF rather than io.ErrUnexpectedEOF
	}{
		{"empty", nil, true},
		{"partial_header", full[:5], false},
		{"header_only", full[:HeaderSize], false},
		{"partial_payload", full[:HeaderSize+2], false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ReadFrame(bytes.NewReader(tc.in), nil)
			if tc.wantEOF {
				assert.Equal(t, io.EOF, err)
			} else {
				assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
			}
		})
	}
}

func TestReadFrame_BufferReuse(t *testing.T) {
	var w bytes.Buffer
	require.NoError(t, WriteFrame(&w, NewFrame(1, Release{RuntimeID: "abc"})))
	wire := w.Bytes()

	buf := make([]byte, 64)
	f, err := ReadFrame(bytes.NewReader(wire), buf)
	require.NoError(t, err)
	assert.Same(t, &buf[0], &f.Payload[0], "payload aliases a large enough buffer")

	small := make([]byte, 2)
	f, err = ReadFrame(bytes.NewReader(wire), small)
	require.NoError(t, err)
	assert.Len(t, f.Payload, 5)

	allocs := testing.AllocsPerRun(100, func() {
		if _, err := ReadFrame(bytes.NewReader(wire), buf); err != nil {
			t.Fatal(err)
		}
	})
	assert.LessOrEqual(t, allocs, 1.0, "only the bytes.Reader may allocate")
}

func TestReadFrameDeadline(t *testing.T) {
	t.Parallel()
	t.Run("idle_has_no_deadline_then_frame", func(t *testing.T) {
		t.Parallel()
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		go func() {
			time.Sleep(150 * time.Millisecond) // longer than the frame timeout below
			_ = WriteFrame(a, NewFrame(3, Release{RuntimeID: "r"}))
		}()
		f, err := ReadFrameDeadline(b, nil, 50*time.Millisecond)
		require.NoError(t, err)
		assert.Equal(t, TypeRelease, f.Type)
	})
	t.Run("stalled_frame_times_out", func(t *testing.T) {
		t.Parallel()
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		wire := append(Header{Length: 2, RequestID: 1, Type: TypeRelease}.Append(nil), 0, 0)
		go func() { _, _ = a.Write(wire[:3]) }() // then nothing more
		start := time.Now()
		_, err := ReadFrameDeadline(b, nil, 50*time.Millisecond)
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		assert.Less(t, time.Since(start), 2*time.Second)
	})
	t.Run("clean_eof", func(t *testing.T) {
		t.Parallel()
		a, b := net.Pipe()
		defer b.Close()
		a.Close()
		_, err := ReadFrameDeadline(b, nil, time.Second)
		assert.Equal(t, io.EOF, err)
	})
}

func TestUnmarshal_ShortPayload(t *testing.T) {
	t.Parallel()
	for _, m := range sampleMessages() {
		p := m.Marshal()
		if len(p) == 0 {
			continue
		}
		t.Run(m.Type().String(), func(t *testing.T) {
			t.Parallel()
			// Every proper prefix is short, whichever field it cuts.
			for n := 0; n < len(p); n += max(1, len(p)/97) {
				_, err := Unmarshal(m.Type(), p[:n])
				require.ErrorIs(t, err, ErrShortPayload, "prefix of %d bytes", n)
			}
		})
	}
}

func TestUnmarshal_ShortPayloadNamesField(t *testing.T) {
	t.Parallel()
	p := Acquire{RuntimeID: "r"}.Marshal()
	_, err := UnmarshalAcquire(p[:len(p)-1])
	require.ErrorIs(t, err, ErrShortPayload)
	assert.EqualError(t, err, "protocol: short payload: ACQUIRE.timeout_ms")
}

func TestUnmarshal_TrailingBytesIgnored(t *testing.T) {
	t.Parallel()
	for _, m := range sampleMessages() {
		p := append(m.Marshal(), 0xDE, 0xAD, 0xBE, 0xEF, 0x00, 0x10)
		got, err := Unmarshal(m.Type(), p)
		require.NoError(t, err, m.Type().String())
		assert.Equal(t, m, got)
	}
}

func TestUnmarshal_BadStrings(t *testing.T) {
	t.Parallel()
	tooLong := binary.BigEndian.AppendUint16(nil, MaxString+1)
	tooLong = append(tooLong, make([]byte, MaxString+1)...)
	_, err := UnmarshalRelease(tooLong)
	require.ErrorIs(t, err, ErrStringTooLong)

	_, err = UnmarshalRelease([]byte{0, 3, 'a', 0, 'b'})
	require.ErrorIs(t, err, ErrBadString)

	// A length that runs past the payload is short, not too long.
	_, err = UnmarshalRelease([]byte{0, 10, 'a'})
	require.ErrorIs(t, err, ErrShortPayload)
}

func TestUnmarshal_UnknownType(t *testing.T) {
	t.Parallel()
	m, err := Unmarshal(MsgType(0x42), nil)
	require.ErrorIs(t, err, ErrUnknownType)
	assert.Nil(t, m)
	m, err = Unmarshal(TypeHello, nil)
	require.ErrorIs(t, err, ErrShortPayload)
	assert.Nil(t, m, "a failed decode yields a nil Message")
}

func TestUnmarshal_BoolIsNonZero(t *testing.T) {
	t.Parallel()
	p := Acquired{}.Marshal()
	p[4], p[5] = 7, 0xFF // reused, prewarmed after two empty strings
	m, err := UnmarshalAcquired(p)
	require.NoError(t, err)
	assert.True(t, m.Reused)
	assert.True(t, m.Prewarmed)
}

func TestMarshal_RepairsStrings(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   string
		want string
	}{
		{"nul", "a\x00b", "a\uFFFDb"},
		{"exact_max", strings.Repeat("a", MaxString), strings.Repeat("a", MaxString)},
		{"ascii_over", strings.Repeat("a", MaxString+10), strings.Repeat("a", MaxString)},
		// 4095 ASCII bytes then a 3-byte rune: cutting at 4096 would split it.
		{"rune_boundary", strings.Repeat("a", MaxString-1) + "€€", strings.Repeat("a", MaxString-1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := UnmarshalRelease(Release{RuntimeID: tc.in}.Marshal())
			require.NoError(t, err)
			assert.Equal(t, tc.want, m.RuntimeID)
		})
	}
	// A text field holds a whole payload's worth.
	long := strings.Repeat("a", MaxText+10)
	m, err := UnmarshalStatusReply(StatusReply{JSON: long}.Marshal())
	require.NoError(t, err)
	assert.Len(t, m.JSON, MaxText)
	require.ErrorIs(t, CheckString(strings.Repeat("a", MaxString+1)), ErrStringTooLong)
	require.ErrorIs(t, CheckString("a\x00"), ErrBadString)
	require.NoError(t, CheckString(strings.Repeat("a", MaxString)))
}

func TestMarshal_LargestPayloadFits(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", MaxString) // twice MaxString bytes before repair
	em := ErrorMsg{Code: CodeInternal, Message: long, Detail: long, Hint: long}
	assert.LessOrEqual(t, len(em.Marshal()), MaxPayload)
	assert.NoError(t, WriteFrame(io.Discard, NewFrame(1, em)))
}

func TestMsgType_String(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "RELEASE_ALL", TypeReleaseAll.String())
	assert.Equal(t, "ERROR", TypeError.String())
	assert.Equal(t, "MsgType(0x42)", MsgType(0x42).String())
	assert.True(t, TypeDebugPanic.Known())
	assert.False(t, MsgType(0).Known())
	assert.True(t, TypeReleaseAll.IsRequest())
	assert.False(t, TypeAcquired.IsRequest())
	for _, m := range sampleMessages() {
		assert.True(t, m.Type().Known(), m.Type().String())
	}
}

func TestErrorCode_SQLState(t *testing.T) {
	t.Parallel()
	want := map[ErrorCode][2]string{
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
	for c := ErrorCode(1); c <= 13; c++ {
		assert.Equal(t, want[c][0], c.String())
		assert.Equal(t, want[c][1], c.SQLState(), c.String())
	}
	assert.Equal(t, "ErrorCode(0)", ErrorCode(0).String())
	assert.Equal(t, "XX000", ErrorCode(99).SQLState())
}

func TestErrorMsg_IsError(t *testing.T) {
	t.Parallel()
	var err error = &ErrorMsg{Code: CodeLimit, Message: "too many containers"}
	wrapped := errors.Join(errors.New("acquire"), err)
	code, ok := CodeOf(wrapped)
	assert.True(t, ok)
	assert.Equal(t, CodeLimit, code)
	assert.Equal(t, "protocol: remote error Limit: too many containers", err.Error())
	_, ok = CodeOf(io.EOF)
	assert.False(t, ok)
}

func TestNegotiateVersion(t *testing.T) {
	t.Parallel()
	cases := []struct {
		lo, hi uint16
		want   uint16
		ok     bool
	}{
		{1, 1, 1, true},
		{1, 5, 1, true},
		{0, 1, 1, true},
		{2, 5, 0, false},
		{0, 0, 0, false},
		{3, 1, 0, false},
	}
	for _, tc := range cases {
		v, ok := NegotiateVersion(tc.lo, tc.hi)
		assert.Equal(t, tc.ok, ok, "[%d,%d]", tc.lo, tc.hi)
		assert.Equal(t, tc.want, v, "[%d,%d]", tc.lo, tc.hi)
	}
}
