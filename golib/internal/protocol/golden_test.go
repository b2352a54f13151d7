package protocol

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// goldenFrames lists the frames in testdata/golden with the values
// documented in testdata/golden/README. The C client checks the same files.
var goldenFrames = []struct {
	file string
	id   uint32
	msg  Message
}{
	{"hello.hex", 1, Hello{MinVersion: 1, MaxVersion: 1, PID: 12345, BackendStartUS: 1700000000000000, Client: "plcoordinator-c/1"}},
	{"welcome.hex", 1, Welcome{Version: 1, MaxPayload: 65536, Instance: "seg0-5432", ServerPID: 4321}},
	{"acquire.hex", 2, Acquire{RuntimeID: "plc_python3", Role: "gpadmin", Database: "postgres", DatabaseOID: 16384, SegIndex: -1, Flags: AcquireWantFD, TimeoutMS: 30000}},
	{"acquired.hex", 2, Acquired{ContainerID: "3f2a9c1b7d4e", Address: "unix:/tmp/plcoordinator/3f2a9c1b7d4e.sock", Reused: false, Prewarmed: true, WaitMS: 250, ClientVersion: ""}},
	{"release.hex", 3, Release{RuntimeID: "plc_python3"}},
	{"release_all.hex", 4, ReleaseAll{}},
	{"released.hex", 4, Released{Count: 2}},
	{"reload.hex", 5, Reload{}},
	{"reloaded.hex", 5, Reloaded{Runtimes: 3, Message: "3 runtimes loaded"}},
	{"status.hex", 6, Status{}},
	{"status_reply.hex", 6, StatusReply{JSON: `{"state":"ready"}`}},
	{"error.hex", 7, ErrorMsg{Code: CodeUnknownRuntime, Message: `runtime "plc_r" is not configured`, Detail: "", Hint: "Check the runtime ids in the PL/Container configuration file."}},
	{"debug_panic.hex", 8, DebugPanic{}},
}

// Golden HELLO and ACQUIRE written out by hand: header, then one field per
// line. They must equal the files, which must equal the encoder's output.
const (
	goldenHelloHex = `
00 00 00 23 00 00 00 01 01 00 00 00
00 01
00 01
00 00 30 39
00 06 0a 24 18 1e 40 00
00 11 70 6c 63 6f 6f 72 64 69 6e 61 74 6f 72 2d 63 2f 31`

	goldenAcquireHex = `
00 00 00 30 00 00 00 02 10 00 00 00
00 0b 70 6c 63 5f 70 79 74 68 6f 6e 33
00 07 67 70 61 64 6d 69 6e
00 08 70 6f 73 74 67 72 65 73
00 00 40 00
ff ff ff ff
00 00 00 01
00 00 75 30`
)

// decodeHex reads the golden file format: hex digit pairs, whitespace
// ignored.
func decodeHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	require.NoError(tb, err)
	return b
}

func readGolden(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "golden", name))
	require.NoError(t, err)
	return decodeHex(t, string(raw))
}

func TestGolden_Encode(t *testing.T) {
	t.Parallel()
	for _, g := range goldenFrames {
		t.Run(g.file, func(t *testing.T) {
			t.Parallel()
			var w bytes.Buffer
			require.NoError(t, WriteFrame(&w, NewFrame(g.id, g.msg)))
			assert.Equal(t, hex.EncodeToString(readGolden(t, g.file)), hex.EncodeToString(w.Bytes()))
		})
	}
}

func TestGolden_Decode(t *testing.T) {
	t.Parallel()
	for _, g := range goldenFrames {
		t.Run(g.file, func(t *testing.T) {
			t.Parallel()
			r := bytes.NewReader(readGolden(t, g.file))
			f, err := ReadFrame(r, nil)
			require.NoError(t, err)
			assert.Zero(t, r.Len(), "one frame per file")
			assert.Equal(t, g.id, f.RequestID)
			assert.Equal(t, g.msg.Type(), f.Type)
			got, err := Unmarshal(f.Type, f.Payload)
			require.NoError(t, err)
			assert.Equal(t, g.msg, got)
		})
	}
}

func TestGolden_HandWritten(t *testing.T) {
	t.Parallel()
	assert.Equal(t, decodeHex(t, goldenHelloHex), readGolden(t, "hello.hex"))
	assert.Equal(t, decodeHex(t, goldenAcquireHex), readGolden(t, "acquire.hex"))
}

func TestGolden_NoStrayFiles(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.hex"))
	require.NoError(t, err)
	listed := map[string]bool{}
	for _, g := range goldenFrames {
		listed[g.file] = true
	}
	for _, f := range files {
		assert.True(t, listed[filepath.Base(f)], "%s has no entry in goldenFrames", f)
	}
	assert.Len(t, files, len(goldenFrames))
}

func TestGolden_FileFormat(t *testing.T) {
	t.Parallel()
	for _, g := range goldenFrames {
		raw, err := os.ReadFile(filepath.Join("testdata", "golden", g.file))
		require.NoError(t, err)
		s := string(raw)
		assert.True(t, strings.HasSuffix(s, "\n"), g.file)
		assert.Equal(t, strings.ToLower(s), s, g.file)
		lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
		assert.Len(t, strings.Fields(lines[0]), HeaderSize, "%s: first line is the header", g.file)
	}
}

// TestGolden_ProtocolDocExample keeps the worked example in PROTOCOL.md in
// step with hello.hex.
func TestGolden_ProtocolDocExample(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("PROTOCOL.md")
	require.NoError(t, err)
	raw, err := os.ReadFile(filepath.Join("testdata", "golden", "hello.hex"))
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		assert.Contains(t, string(doc), line)
	}
}
