//go:build integration

package integration

// A minimal PostgreSQL client (frontend/backend protocol 3.0, simple query
// protocol, trust authentication, Unix socket only). It is all these tests
// need: text results, SQLSTATEs with detail and hint, query cancellation.
// It keeps the test package free of extra module dependencies.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// PgError is an ErrorResponse from the server.
type PgError struct {
	Severity string
	Code     string // SQLSTATE
	Message  string
	Detail   string
	Hint     string
}

func (e *PgError) Error() string {
	s := fmt.Sprintf("%s: %s (SQLSTATE %s)", e.Severity, e.Message, e.Code)
	if e.Detail != "" {
		s += "; DETAIL: " + e.Detail
	}
	if e.Hint != "" {
		s += "; HINT: " + e.Hint
	}
	return s
}

// sqlState returns the SQLSTATE of err, or "" if it is not a *PgError.
func sqlState(err error) string {
	var pe *PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// Row is one result row: column name → value (nil for NULL).
type Row map[string]*string

// Str returns a column as text ("" for NULL); it panics on an unknown
// column so that a typo fails loudly.
func (r Row) Str(col string) string {
	v, ok := r[col]
	if !ok {
		panic(fmt.Sprintf("no column %q in row %v", col, r.String()))
	}
	if v == nil {
		return ""
	}
	return *v
}

// IsNull reports whether a column is NULL.
func (r Row) IsNull(col string) bool {
	v, ok := r[col]
	if !ok {
		panic(fmt.Sprintf("no column %q in row %v", col, r.String()))
	}
	return v == nil
}

// Int returns a column as an integer (0 for NULL).
func (r Row) Int(col string) int64 {
	s := r.Str(col)
	if s == "" {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		panic(fmt.Sprintf("column %q = %q is not an integer", col, s))
	}
	return n
}

// Bool returns a column as a boolean (false for NULL).
func (r Row) Bool(col string) bool { return r.Str(col) == "t" }

func (r Row) String() string {
	parts := make([]string, 0, len(r))
	for k, v := range r {
		if v == nil {
			parts = append(parts, k+"=NULL")
		} else {
			parts = append(parts, k+"="+*v)
		}
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// PgConn is one session.
type PgConn struct {
	path   string // socket path, for cancel requests
	c      net.Conn
	r      *bufio.Reader
	pid    int32
	secret int32

	mu     sync.Mutex // one query at a time
	broken error
}

// pgSocketPath is the server's Unix socket in dir for port.
func pgSocketPath(dir string, port int) string {
	return fmt.Sprintf("%s/.s.PGSQL.%d", dir, port)
}

// pgConnect opens a session as user on database db.
func pgConnect(ctx context.Context, path, user, db string) (*PgConn, error) {
	d := net.Dialer{}
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	pc := &PgConn{path: path, c: c, r: bufio.NewReader(c)}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	}
	if err := pc.startup(user, db); err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return pc, nil
}

func (pc *PgConn) startup(user, db string) error {
	var body []byte
	body = binary.BigEndian.AppendUint32(body, 196608) // protocol 3.0
	for _, kv := range [][2]string{{"user", user}, {"database", db}, {"application_name", "plci"}} {
		body = append(body, kv[0]...)
		body = append(body, 0)
		body = append(body, kv[1]...)
		body = append(body, 0)
	}
	body = append(body, 0)
	msg := binary.BigEndian.AppendUint32(nil, uint32(len(body)+4))
	if _, err := pc.c.Write(append(msg, body...)); err != nil {
		return err
	}
	var startErr error
	for {
		t, payload, err := pc.read()
		if err != nil {
			if startErr != nil {
				return startErr
			}
			return err
		}
		switch t {
		case 'R':
			if len(payload) < 4 || binary.BigEndian.Uint32(payload) != 0 {
				return fmt.Errorf("pgwire: authentication method %v is not supported (use trust)", payload)
			}
		case 'K':
			pc.pid = int32(binary.BigEndian.Uint32(payload[0:4]))
			pc.secret = int32(binary.BigEndian.Uint32(payload[4:8]))
		case 'E':
			startErr = parseError(payload)
			return startErr
		case 'Z':
			return nil
		}
	}
}

// PID is the backend's process id.
func (pc *PgConn) PID() int { return int(pc.pid) }

func (pc *PgConn) read() (byte, []byte, error) {
	var head [5]byte
	if _, err := io.ReadFull(pc.r, head[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(head[1:5])
	if n < 4 || n > 64<<20 {
		return 0, nil, fmt.Errorf("pgwire: bad message length %d", n)
	}
	payload := make([]byte, n-4)
	if _, err := io.ReadFull(pc.r, payload); err != nil {
		return 0, nil, err
	}
	return head[0], payload, nil
}

func parseError(p []byte) *PgError {
	e := &PgError{}
	for len(p) > 0 && p[0] != 0 {
		field := p[0]
		p = p[1:]
		i := 0
		for i < len(p) && p[i] != 0 {
			i++
		}
		v := string(p[:i])
		if i < len(p) {
			p = p[i+1:]
		} else {
			p = nil
		}
		switch field {
		case 'V':
			e.Severity = v
		case 'S':
			if e.Severity == "" {
				e.Severity = v
			}
		case 'C':
			e.Code = v
		case 'M':
			e.Message = v
		case 'D':
			e.Detail = v
		case 'H':
			e.Hint = v
		}
	}
	return e
}

// Cancel sends a CancelRequest for the query running in this session.
func (pc *PgConn) Cancel() error {
	c, err := net.DialTimeout("unix", pc.path, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	msg := binary.BigEndian.AppendUint32(nil, 16)
	msg = binary.BigEndian.AppendUint32(msg, 80877102)
	msg = binary.BigEndian.AppendUint32(msg, uint32(pc.pid))
	msg = binary.BigEndian.AppendUint32(msg, uint32(pc.secret))
	_, err = c.Write(msg)
	if err == nil {
		// The server closes the connection once it has read the request.
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.Copy(io.Discard, c)
	}
	return err
}

// Query runs sql (simple query protocol; several statements allowed) and
// returns the rows of the last statement that produced rows. When ctx ends
// first, the query is cancelled and the server's answer (normally SQLSTATE
// 57014) is returned.
func (pc *PgConn) Query(ctx context.Context, sql string) ([]Row, error) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.broken != nil {
		return nil, fmt.Errorf("pgwire: connection is broken: %w", pc.broken)
	}
	body := append([]byte(sql), 0)
	msg := append([]byte{'Q'}, binary.BigEndian.AppendUint32(nil, uint32(len(body)+4))...)
	if _, err := pc.c.Write(append(msg, body...)); err != nil {
		pc.broken = err
		return nil, err
	}

	// Cancel on ctx; a hard socket deadline guards against a hung server.
	// A cancel request must never outlive its query: it would cancel the
	// next one, so the watcher checks under a lock that this query still
	// runs.
	var (
		doneMu sync.Mutex
		done   bool
	)
	stop := make(chan struct{})
	defer func() {
		doneMu.Lock()
		done = true
		doneMu.Unlock()
		close(stop)
	}()
	go func() {
		select {
		case <-ctx.Done():
			doneMu.Lock()
			defer doneMu.Unlock()
			if !done {
				_ = pc.Cancel()
				_ = pc.c.SetReadDeadline(time.Now().Add(30 * time.Second))
			}
		case <-stop:
		}
	}()
	defer pc.c.SetReadDeadline(time.Time{})

	var (
		cols   []string
		rows   []Row
		cur    []Row
		qerr   *PgError
		gotRow bool
	)
	for {
		t, p, err := pc.read()
		if err != nil {
			pc.broken = err
			if qerr != nil {
				return nil, qerr
			}
			return nil, err
		}
		switch t {
		case 'T':
			n := int(binary.BigEndian.Uint16(p[0:2]))
			p = p[2:]
			cols = make([]string, n)
			for i := 0; i < n; i++ {
				j := 0
				for p[j] != 0 {
					j++
				}
				cols[i] = string(p[:j])
				p = p[j+1+18:]
			}
			cur = []Row{}
			gotRow = true
		case 'D':
			n := int(binary.BigEndian.Uint16(p[0:2]))
			p = p[2:]
			row := Row{}
			for i := 0; i < n; i++ {
				l := int32(binary.BigEndian.Uint32(p[0:4]))
				p = p[4:]
				name := fmt.Sprintf("col%d", i)
				if i < len(cols) {
					name = cols[i]
				}
				if l < 0 {
					row[name] = nil
					continue
				}
				v := string(p[:l])
				row[name] = &v
				p = p[l:]
			}
			cur = append(cur, row)
		case 'C':
			if gotRow {
				rows = cur
			}
		case 'E':
			qerr = parseError(p)
			if qerr.Severity == "FATAL" || qerr.Severity == "PANIC" {
				pc.broken = qerr
			}
		case 'Z':
			if qerr != nil {
				return nil, qerr
			}
			return rows, nil
		}
	}
}

// QueryRow runs sql and returns its only row.
func (pc *PgConn) QueryRow(ctx context.Context, sql string) (Row, error) {
	rows, err := pc.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	if len(rows) != 1 {
		return nil, fmt.Errorf("pgwire: %q returned %d rows, want 1", sql, len(rows))
	}
	return rows[0], nil
}

// Exec runs sql and ignores its rows.
func (pc *PgConn) Exec(ctx context.Context, sql string) error {
	_, err := pc.Query(ctx, sql)
	return err
}

// Close ends the session (Terminate, then close).
func (pc *PgConn) Close() error {
	_ = pc.c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = pc.c.Write([]byte{'X', 0, 0, 0, 4})
	return pc.c.Close()
}

// lit quotes s as an SQL string literal.
func lit(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
