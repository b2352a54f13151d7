// Command abuse misuses the plcoordinator socket the way a broken or
// hostile local process of the database OS user could, for the integration
// test TestSession_RawSocketAbuse. It runs as that user (runuser -u
// postgres), because the coordinator only talks to processes of its own
// uid.
//
// It speaks just enough of golib/internal/protocol/PROTOCOL.md to build
// frames (that package is internal to golib and cannot be imported here):
// a 12-byte big-endian header (length u32, request id u32, type u8, flags
// u8, reserved u16), HELLO = min u16, max u16, pid i32, backend_start_us
// i64, client str; ERROR = code u16, message str, detail str, hint str; str
// = u16 length + bytes.
//
// Every case prints one JSON line {"case", "ok", "detail"}; the exit code is
// 0 when every case was run (ok or not), 2 on a usage error.
//
// Usage: abuse -socket /path/coordinator.sock [-flood 200]
package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

const (
	typeHello   = 0x01
	typeWelcome = 0x02
	typeAcquire = 0x10
	typeStatus  = 0x22
	typeError   = 0x7F

	codeProtocol        = 1
	codeVersion         = 2
	codePermission      = 4
	codeSessionConflict = 10

	frameTimeout = 5 * time.Second
)

var socket string

type result struct {
	Case   string `json:"case"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

var outMu sync.Mutex

func report(name string, ok bool, format string, args ...any) {
	outMu.Lock()
	defer outMu.Unlock()
	b, _ := json.Marshal(result{name, ok, fmt.Sprintf(format, args...)})
	fmt.Println(string(b))
}

func main() {
	flag.StringVar(&socket, "socket", "", "coordinator socket path")
	flood := flag.Int("flood", 200, "connections opened at once")
	flag.Parse()
	if socket == "" {
		fmt.Fprintln(os.Stderr, "abuse: -socket is required")
		os.Exit(2)
	}

	// Cases that never establish a session run at the same time.
	var wg sync.WaitGroup
	for name, fn := range map[string]func() (bool, string){
		"garbage":          garbage,
		"acquire_first":    acquireFirst,
		"huge_length":      hugeLength,
		"truncated_hello":  truncatedHello,
		"wrong_version":    wrongVersion,
		"foreign_pid":      foreignPID,
		"flood_idle":       func() (bool, string) { return floodIdle(*flood) },
		"slow_hello_bytes": slowHello,
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, detail := fn()
			report(name, ok, "%s", detail)
		}()
	}
	wg.Wait()

	// Cases with a session of this pid run one after the other: a second
	// session of the same pid would end or conflict with the first.
	for _, c := range []struct {
		name string
		fn   func() (bool, string)
	}{
		{"truncated_in_session", truncatedInSession},
		{"flood_hello", func() (bool, string) { return floodHello(*flood) }},
		{"still_serving", stillServing},
	} {
		ok, detail := c.fn()
		report(c.name, ok, "%s", detail)
	}
}

func dial() (*net.UnixConn, error) {
	c, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return c.(*net.UnixConn), nil
}

func header(length, id uint32, typ, flags byte) []byte {
	h := make([]byte, 12)
	binary.BigEndian.PutUint32(h[0:4], length)
	binary.BigEndian.PutUint32(h[4:8], id)
	h[8] = typ
	h[9] = flags
	return h
}

func putStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

var startUS = time.Now().UnixMicro()

func hello(id uint32, minV, maxV uint16, pid int32, start int64) []byte {
	var p []byte
	p = binary.BigEndian.AppendUint16(p, minV)
	p = binary.BigEndian.AppendUint16(p, maxV)
	p = binary.BigEndian.AppendUint32(p, uint32(pid))
	p = binary.BigEndian.AppendUint64(p, uint64(start))
	p = putStr(p, "plci-abuse/1")
	return append(header(uint32(len(p)), id, typeHello, 0), p...)
}

type frame struct {
	typ     byte
	id      uint32
	payload []byte
}

// errorCode returns the code of an ERROR frame, or -1.
func (f frame) errorCode() int {
	if f.typ != typeError || len(f.payload) < 2 {
		return -1
	}
	return int(binary.BigEndian.Uint16(f.payload))
}

func (f frame) String() string {
	if f.typ == typeError {
		msg := ""
		if len(f.payload) >= 4 {
			n := int(binary.BigEndian.Uint16(f.payload[2:4]))
			if 4+n <= len(f.payload) {
				msg = string(f.payload[4 : 4+n])
			}
		}
		return fmt.Sprintf("ERROR code %d %q", f.errorCode(), msg)
	}
	return fmt.Sprintf("frame type 0x%02x id %d (%d bytes)", f.typ, f.id, len(f.payload))
}

func readFrame(c net.Conn, timeout time.Duration) (frame, error) {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	h := make([]byte, 12)
	if _, err := io.ReadFull(c, h); err != nil {
		return frame{}, err
	}
	n := binary.BigEndian.Uint32(h[0:4])
	if n > 1<<20 {
		return frame{}, fmt.Errorf("reply length %d", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c, p); err != nil {
		return frame{}, err
	}
	return frame{typ: h[8], id: binary.BigEndian.Uint32(h[4:8]), payload: p}, nil
}

// closedByServer reports whether err means the server closed the
// connection (EOF or reset), as opposed to our read timing out.
func closedByServer(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return err != nil
}

// expectClose reads until the server closes the connection. It fails on a
// WELCOME, on a frame other than an ERROR with one of the wanted codes
// (none wanted: any ERROR is fine), and when the close takes longer than
// within. It returns how long the close took.
func expectClose(c net.Conn, within time.Duration, codes ...int) (bool, string, time.Duration) {
	start := time.Now()
	var seen []string
	for {
		f, err := readFrame(c, within-time.Since(start)+100*time.Millisecond)
		d := time.Since(start)
		if err != nil {
			if !closedByServer(err) {
				return false, fmt.Sprintf("the connection was still open after %s (frames: %v)", d.Round(time.Millisecond), seen), d
			}
			if len(codes) > 0 && len(seen) == 0 {
				return false, fmt.Sprintf("closed after %s without the ERROR %v", d.Round(time.Millisecond), codes), d
			}
			return true, fmt.Sprintf("closed after %s (%v; frames: %v)", d.Round(time.Millisecond), err, seen), d
		}
		seen = append(seen, f.String())
		if f.typ == typeWelcome {
			return false, "got a WELCOME", d
		}
		if f.typ != typeError {
			return false, "unexpected " + f.String(), d
		}
		if len(codes) > 0 {
			match := false
			for _, code := range codes {
				match = match || f.errorCode() == code
			}
			if !match {
				return false, fmt.Sprintf("%s, want code %v", f, codes), d
			}
		}
	}
}

// garbage: a header with an unknown type, bad flags and reserved bits.
func garbage() (bool, string) {
	c, err := dial()
	if err != nil {
		return false, err.Error()
	}
	defer c.Close()
	msg := []byte{0, 0, 0, 8, 0, 0, 0, 7, 0x99, 0xff, 0xff, 0xff, 'g', 'a', 'r', 'b', 'a', 'g', 'e', '!'}
	if _, err := c.Write(msg); err != nil {
		return false, err.Error()
	}
	ok, detail, _ := expectClose(c, 2*time.Second)
	return ok, detail
}

// acquireFirst: a well-formed ACQUIRE before HELLO.
func acquireFirst() (bool, string) {
	c, err := dial()
	if err != nil {
		return false, err.Error()
	}
	defer c.Close()
	var p []byte
	for _, s := range []string{"plc_test", "postgres", "postgres"} {
		p = putStr(p, s)
	}
	p = binary.BigEndian.AppendUint32(p, 5)
	p = binary.BigEndian.AppendUint32(p, 0xffffffff)
	p = binary.BigEndian.AppendUint32(p, 0)
	p = binary.BigEndian.AppendUint32(p, 0)
	if _, err := c.Write(append(header(uint32(len(p)), 3, typeAcquire, 0), p...)); err != nil {
		return false, err.Error()
	}
	ok, detail, _ := expectClose(c, 2*time.Second, codeProtocol)
	return ok, detail
}

// hugeLength: a HELLO header announcing 2 GiB; the server must give up at
// once instead of waiting for (or allocating) the payload.
func hugeLength() (bool, string) {
	c, err := dial()
	if err != nil {
		return false, err.Error()
	}
	defer c.Close()
	if _, err := c.Write(header(0x7fffffff, 1, typeHello, 0)); err != nil {
		return false, err.Error()
	}
	ok, detail, _ := expectClose(c, 2*time.Second)
	return ok, detail
}

// truncatedHello: half a header, then silence. The server must close within
// its 5 s frame deadline (and not much earlier: that would cut slow but
// legitimate writers).
func truncatedHello() (bool, string) {
	c, err := dial()
	if err != nil {
		return false, err.Error()
	}
	defer c.Close()
	if _, err := c.Write(hello(1, 1, 1, int32(os.Getpid()), startUS)[:6]); err != nil {
		return false, err.Error()
	}
	ok, detail, d := expectClose(c, frameTimeout+3*time.Second)
	if ok && d < frameTimeout-500*time.Millisecond {
		return false, "closed too early: " + detail
	}
	return ok, detail
}

// slowHello: a HELLO written a few bytes at a time, well within the frame
// deadline, must still be accepted (then the connection is closed by us).
func slowHello() (bool, string) {
	c, err := dial()
	if err != nil {
		return false, err.Error()
	}
	defer c.Close()
	// A pid that is not ours: the server must read the whole frame first,
	// then answer Permission. Using our own pid would start a session that
	// the session cases below would collide with.
	msg := hello(1, 1, 1, int32(os.Getpid())+1000000, startUS)
	for i := 0; i < len(msg); i += 8 {
		if _, err := c.Write(msg[i:min(i+8, len(msg))]); err != nil {
			return false, err.Error()
		}
		time.Sleep(300 * time.Millisecond)
	}
	f, err := readFrame(c, 3*time.Second)
	if err != nil {
		return false, "no answer to a slowly written HELLO: " + err.Error()
	}
	if f.errorCode() != codePermission {
		return false, "slow HELLO with a foreign pid: got " + f.String()
	}
	return true, "answered " + f.String()
}

// wrongVersion: HELLO offering only version 99.
func wrongVersion() (bool, string) {
	c, err := dial()
	if err != nil {
		return false, err.Error()
	}
	defer c.Close()
	if _, err := c.Write(hello(9, 99, 99, int32(os.Getpid()), startUS)); err != nil {
		return false, err.Error()
	}
	ok, detail, _ := expectClose(c, 2*time.Second, codeVersion)
	return ok, detail
}

// foreignPID: HELLO claiming the pid of another process (1, init).
func foreignPID() (bool, string) {
	c, err := dial()
	if err != nil {
		return false, err.Error()
	}
	defer c.Close()
	if _, err := c.Write(hello(4, 1, 1, 1, startUS)); err != nil {
		return false, err.Error()
	}
	ok, detail, _ := expectClose(c, 2*time.Second, codePermission)
	return ok, detail
}

// floodIdle: n connections opened at once that never say anything; the
// server must accept them all and close each after the HELLO deadline.
func floodIdle(n int) (bool, string) {
	conns := make([]*net.UnixConn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conns[i], errs[i] = dial()
		}()
	}
	wg.Wait()
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
		} else {
			defer conns[i].Close()
		}
	}
	if failed > 0 {
		return false, fmt.Sprintf("%d of %d connects failed, first: %v", failed, n, firstErr(errs))
	}
	// Every one of them is closed by the server within the deadline.
	closed := make([]bool, n)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, _, _ := expectClose(c, frameTimeout+3*time.Second)
			closed[i] = ok
		}()
	}
	wg.Wait()
	open := 0
	for _, ok := range closed {
		if !ok {
			open++
		}
	}
	if open > 0 {
		return false, fmt.Sprintf("%d of %d idle connections were not closed within %s", open, n, frameTimeout+3*time.Second)
	}
	return true, fmt.Sprintf("%d idle connections accepted and closed", n)
}

func firstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// truncatedInSession: a proper session, then 3 bytes of a frame and
// silence; the server closes within the frame deadline.
func truncatedInSession() (bool, string) {
	c, err := dial()
	if err != nil {
		return false, err.Error()
	}
	defer c.Close()
	if _, err := c.Write(hello(1, 1, 1, int32(os.Getpid()), startUS)); err != nil {
		return false, err.Error()
	}
	f, err := readFrame(c, 5*time.Second)
	if err != nil || f.typ != typeWelcome {
		return false, fmt.Sprintf("HELLO: %v %v", f, err)
	}
	if _, err := c.Write(header(0, 2, typeStatus, 0)[:3]); err != nil {
		return false, err.Error()
	}
	ok, detail, d := expectClose(c, frameTimeout+3*time.Second)
	if ok && d < frameTimeout-500*time.Millisecond {
		return false, "closed too early: " + detail
	}
	return ok, detail
}

// floodHello: n connections at once, each sending a HELLO for this process:
// exactly one session is welcomed, every other connection gets
// SessionConflict and is closed.
func floodHello(n int) (bool, string) {
	type outcome struct {
		welcome  bool
		conflict bool
		other    string
	}
	outs := make([]outcome, n)
	conns := make([]*net.UnixConn, n)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dial()
			if err != nil {
				outs[i].other = err.Error()
				return
			}
			conns[i] = c
			<-gate
			if _, err := c.Write(hello(1, 1, 1, int32(os.Getpid()), startUS+1)); err != nil {
				outs[i].other = err.Error()
				return
			}
			f, err := readFrame(c, 10*time.Second)
			switch {
			case err != nil:
				outs[i].other = err.Error()
			case f.typ == typeWelcome:
				outs[i].welcome = true
			case f.errorCode() == codeSessionConflict:
				outs[i].conflict = true
				if _, err := readFrame(c, 3*time.Second); !closedByServer(err) {
					outs[i].other = "not closed after SessionConflict"
					outs[i].conflict = false
				}
			default:
				outs[i].other = f.String()
			}
		}()
	}
	close(gate)
	wg.Wait()
	var welcomes, conflicts int
	others := map[string]int{}
	for _, o := range outs {
		switch {
		case o.welcome:
			welcomes++
		case o.conflict:
			conflicts++
		default:
			others[o.other]++
		}
	}
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	detail := fmt.Sprintf("%d WELCOME, %d SessionConflict, others %v", welcomes, conflicts, others)
	return welcomes == 1 && conflicts == n-1, detail
}

// stillServing: after all that, a normal session gets its STATUS answered.
func stillServing() (bool, string) {
	var last string
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		ok, detail := statusOnce()
		if ok {
			return true, detail
		}
		last = detail
		time.Sleep(100 * time.Millisecond)
	}
	return false, last
}

func statusOnce() (bool, string) {
	c, err := dial()
	if err != nil {
		return false, err.Error()
	}
	defer c.Close()
	if _, err := c.Write(hello(1, 1, 1, int32(os.Getpid()), startUS+2)); err != nil {
		return false, err.Error()
	}
	f, err := readFrame(c, 5*time.Second)
	if err != nil || f.typ != typeWelcome {
		return false, fmt.Sprintf("HELLO: %v %v", f, err)
	}
	if _, err := c.Write(header(0, 2, typeStatus, 0)); err != nil {
		return false, err.Error()
	}
	f, err = readFrame(c, 5*time.Second)
	if err != nil || f.typ != typeStatus+1 {
		return false, fmt.Sprintf("STATUS: %v %v", f, err)
	}
	return true, fmt.Sprintf("STATUS answered with %d bytes", len(f.payload))
}
