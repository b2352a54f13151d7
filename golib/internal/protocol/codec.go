package protocol

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"
)

// CheckString reports whether s may be sent as a str field unchanged: at
// most MaxString bytes (ErrStringTooLong) and no NUL byte (ErrBadString).
// Marshal never fails; it repairs such strings instead (see Marshal on each
// message), so callers that must not send altered values check first.
func CheckString(s string) error {
	if len(s) > MaxString {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrStringTooLong, len(s), MaxString)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return ErrBadString
	}
	return nil
}

// sanitizeString makes s sendable: each NUL byte becomes U+FFFD and the
// result is cut to at most MaxString bytes without splitting a UTF-8
// sequence.
func sanitizeString(s string) string { return sanitize(s, MaxString) }

// sanitizeText is sanitizeString for text fields.
func sanitizeText(s string) string { return sanitize(s, MaxText) }

func sanitize(s string, limit int) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	if len(s) <= limit {
		return s
	}
	cut := limit
	for i := 0; i < utf8.UTFMax && cut > 0 && !utf8.RuneStart(s[cut]); i++ {
		cut--
	}
	return s[:cut]
}

// encoder appends big-endian fields to a payload.
type encoder struct {
	b []byte
}

func (e *encoder) u8(v uint8)   { e.b = append(e.b, v) }
func (e *encoder) u16(v uint16) { e.b = binary.BigEndian.AppendUint16(e.b, v) }
func (e *encoder) u32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *encoder) i32(v int32)  { e.u32(uint32(v)) }
func (e *encoder) i64(v int64)  { e.b = binary.BigEndian.AppendUint64(e.b, uint64(v)) }

func (e *encoder) bool(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

// text writes a u32-length string (the "text" field type) of at most
// MaxText bytes.
func (e *encoder) text(s string) {
	s = sanitizeText(s)
	e.u32(uint32(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) str(s string) {
	s = sanitizeString(s)
	e.u16(uint16(len(s)))
	e.b = append(e.b, s...)
}

// decoder reads big-endian fields from a payload. The first error sticks;
// later reads return zero values. Bytes left after the known fields are
// ignored, which is how newer minor versions append fields.
type decoder struct {
	p   []byte
	msg MsgType
	err error
}

// take consumes n bytes, or records ErrShortPayload naming field.
func (d *decoder) take(n int, field string) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.p) < n {
		d.err = fieldError(ErrShortPayload, d.msg, field)
		return nil
	}
	b := d.p[:n:n]
	d.p = d.p[n:]
	return b
}

func (d *decoder) u8(field string) uint8 {
	if b := d.take(1, field); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) u16(field string) uint16 {
	if b := d.take(2, field); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (d *decoder) u32(field string) uint32 {
	if b := d.take(4, field); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (d *decoder) i32(field string) int32 { return int32(d.u32(field)) }

func (d *decoder) i64(field string) int64 {
	if b := d.take(8, field); b != nil {
		return int64(binary.BigEndian.Uint64(b))
	}
	return 0
}

// bool reads a u8 flag; senders write 0 or 1, any non-zero value is true.
func (d *decoder) bool(field string) bool { return d.u8(field) != 0 }

// text reads a u32-length string of at most MaxText bytes.
func (d *decoder) text(field string) string {
	n := d.u32(field)
	return d.chars(int(n), MaxText, field)
}

// str reads a u16-length string of at most MaxString bytes.
func (d *decoder) str(field string) string {
	n := d.u16(field)
	return d.chars(int(n), MaxString, field)
}

// chars reads the n bytes of a string field whose length was just read.
func (d *decoder) chars(n, limit int, field string) string {
	if d.err != nil {
		return ""
	}
	if n > limit {
		d.err = fmt.Errorf("%w: %s.%s is %d bytes, limit %d", ErrStringTooLong, d.msg, field, n, limit)
		return ""
	}
	b := d.take(n, field)
	if d.err != nil {
		return ""
	}
	if bytes.IndexByte(b, 0) >= 0 {
		d.err = fieldError(ErrBadString, d.msg, field)
		return ""
	}
	return string(b)
}
