package protocol

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// readFrameAllocLimit is what one ReadFrame call without a buffer may
// allocate: the header and the largest payload, plus a little for errors.
const readFrameAllocLimit = HeaderSize + MaxPayload + 1024

// FuzzReadFrame feeds arbitrary bytes to ReadFrame and every decoder. It
// must never panic, never return a payload longer than MaxPayload, never
// allocate more than readFrameAllocLimit per frame, and every successful
// decode must survive Marshal and decode again unchanged.
func FuzzReadFrame(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "golden", "*.hex"))
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(decodeHex(f, string(raw)))
	}
	f.Add([]byte{})
	f.Add(Header{Length: MaxPayload + 1, Type: TypeHello}.Append(nil))
	f.Add(Header{Length: 0xFFFFFFFF, Type: TypeAcquire, Flags: 0xFF}.Append(nil))
	f.Add(append(Header{Length: 4, Type: TypeRelease}.Append(nil), 0xFF, 0xFF, 'a', 'b'))
	f.Add(append(Header{Length: 3, Type: TypeError}.Append(nil), 0, 1, 0))

	buf := make([]byte, MaxPayload)
	f.Fuzz(func(t *testing.T, data []byte) {
		// With a MaxPayload buffer nothing is allocated for payloads.
		r := bytes.NewReader(data)
		for {
			fr, err := ReadFrame(r, buf)
			if err != nil {
				break
			}
			if len(fr.Payload) > 0 && &fr.Payload[0] != &buf[0] {
				t.Fatalf("payload of %d bytes does not alias the buffer", len(fr.Payload))
			}
			checkDecoders(t, fr)
		}

		// Without a buffer, one frame allocates at most its own size.
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		fr, err := ReadFrame(bytes.NewReader(data), nil)
		runtime.ReadMemStats(&after)
		if d := after.TotalAlloc - before.TotalAlloc; d > readFrameAllocLimit {
			t.Fatalf("ReadFrame allocated %d bytes, limit %d", d, readFrameAllocLimit)
		}
		if err == nil && uint32(len(fr.Payload)) != fr.Length {
			t.Fatalf("payload %d bytes, header says %d", len(fr.Payload), fr.Length)
		}
	})
}

// checkDecoders runs every decoder over the frame's payload and checks that
// successful decodes round-trip.
func checkDecoders(t *testing.T, fr Frame) {
	t.Helper()
	if len(fr.Payload) > MaxPayload {
		t.Fatalf("payload %d bytes exceeds MaxPayload", len(fr.Payload))
	}
	if m, err := Unmarshal(fr.Type, fr.Payload); err == nil {
		roundTrip(t, m)
	} else if m != nil {
		t.Fatalf("Unmarshal(%s) returned %v with error %v", fr.Type, m, err)
	}
	p := fr.Payload
	decoders := []func() (Message, error){
		func() (Message, error) { return typed(UnmarshalHello(p)) },
		func() (Message, error) { return typed(UnmarshalWelcome(p)) },
		func() (Message, error) { return typed(UnmarshalAcquire(p)) },
		func() (Message, error) { return typed(UnmarshalAcquired(p)) },
		func() (Message, error) { return typed(UnmarshalRelease(p)) },
		func() (Message, error) { return typed(UnmarshalReleased(p)) },
		func() (Message, error) { return typed(UnmarshalReloaded(p)) },
		func() (Message, error) { return typed(UnmarshalStatusReply(p)) },
		func() (Message, error) { return typed(UnmarshalError(p)) },
	}
	for _, dec := range decoders {
		if m, err := dec(); err == nil {
			roundTrip(t, m)
		}
	}
}

// roundTrip checks that m encodes within the limits and decodes back to m.
func roundTrip(t *testing.T, m Message) {
	t.Helper()
	p := m.Marshal()
	if len(p) > MaxPayload {
		t.Fatalf("%s marshals to %d bytes", m.Type(), len(p))
	}
	again, err := Unmarshal(m.Type(), p)
	if err != nil {
		t.Fatalf("%s: re-decode: %v", m.Type(), err)
	}
	if again != m {
		t.Fatalf("%s: round trip changed %#v to %#v", m.Type(), m, again)
	}
}
