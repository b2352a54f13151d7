/*-------------------------------------------------------------------------
 *
 * proto.c
 *		Encoder and decoder of the backend <-> coordinator frames
 *		(golib/internal/protocol/PROTOCOL.md).  Big-endian integers,
 *		u16-length strings, append-only fields.
 *
 * No PostgreSQL dependency: test/protocol links this file on its own to
 * check it against the Go implementation's golden frames.
 *
 * Copyright (c) 2026, plcoordinator authors
 *
 * IDENTIFICATION
 *		bgworker/proto.c
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "plcoordinator_proto.h"

static void
plcp_put_bytes(PlcpWriter *w, const void *src, size_t n)
{
	if (w->overflow || w->len + n > w->cap)
	{
		w->overflow = true;
		return;
	}
	memcpy(w->data + w->len, src, n);
	w->len += n;
}

void
plcp_put_u8(PlcpWriter *w, uint8_t v)
{
	plcp_put_bytes(w, &v, 1);
}

void
plcp_put_u16(PlcpWriter *w, uint16_t v)
{
	uint8_t		b[2] = {(uint8_t) (v >> 8), (uint8_t) v};

	plcp_put_bytes(w, b, 2);
}

void
plcp_put_u32(PlcpWriter *w, uint32_t v)
{
	uint8_t		b[4] = {(uint8_t) (v >> 24), (uint8_t) (v >> 16),
	(uint8_t) (v >> 8), (uint8_t) v};

	plcp_put_bytes(w, b, 4);
}

void
plcp_put_i32(PlcpWriter *w, int32_t v)
{
	plcp_put_u32(w, (uint32_t) v);
}

void
plcp_put_i64(PlcpWriter *w, int64_t v)
{
	plcp_put_u32(w, (uint32_t) ((uint64_t) v >> 32));
	plcp_put_u32(w, (uint32_t) v);
}

/*
 * plcp_put_str
 *		Appends a u16-length string; a string over PLCP_MAX_STRING bytes
 *		marks the frame as overflowed rather than being cut.
 */
void
plcp_put_str(PlcpWriter *w, const char *s)
{
	size_t		n = s ? strlen(s) : 0;

	if (n > PLCP_MAX_STRING)
	{
		w->overflow = true;
		return;
	}
	plcp_put_u16(w, (uint16_t) n);
	plcp_put_bytes(w, s, n);
}

/*
 * plcp_begin
 *		Starts a frame: a header whose length is filled in by plcp_finish.
 */
void
plcp_begin(PlcpWriter *w, uint8_t type, uint32_t request_id)
{
	w->len = 0;
	w->overflow = false;
	plcp_put_u32(w, 0);
	plcp_put_u32(w, request_id);
	plcp_put_u8(w, type);
	plcp_put_u8(w, 0);
	plcp_put_u16(w, 0);
}

/*
 * plcp_finish
 *		Writes the payload length into the header.  Returns false if the
 *		frame did not fit the buffer or the protocol's limits.
 */
bool
plcp_finish(PlcpWriter *w)
{
	size_t		payload;

	if (w->overflow || w->len < PLCP_HEADER_SIZE)
		return false;
	payload = w->len - PLCP_HEADER_SIZE;
	if (payload > PLCP_MAX_PAYLOAD)
		return false;
	w->data[0] = (uint8_t) (payload >> 24);
	w->data[1] = (uint8_t) (payload >> 16);
	w->data[2] = (uint8_t) (payload >> 8);
	w->data[3] = (uint8_t) payload;
	return true;
}

static uint32_t
plcp_be32(const uint8_t *b)
{
	return ((uint32_t) b[0] << 24) | ((uint32_t) b[1] << 16) |
		((uint32_t) b[2] << 8) | (uint32_t) b[3];
}

/*
 * plcp_parse_header
 *		Decodes a 12-byte header.  Unknown flag bits, a non-zero reserved
 *		field or an oversized length make it malformed.
 */
bool
plcp_parse_header(const uint8_t *buf, PlcpHeader *out)
{
	out->length = plcp_be32(buf);
	out->request_id = plcp_be32(buf + 4);
	out->type = buf[8];
	out->flags = buf[9];
	if (buf[10] != 0 || buf[11] != 0)
		return false;
	if ((out->flags & ~PLCP_FLAG_FD) != 0)
		return false;
	return out->length <= PLCP_MAX_PAYLOAD;
}

void
plcp_reader_init(PlcpReader *r, const uint8_t *data, size_t len)
{
	r->data = data;
	r->len = len;
	r->pos = 0;
	r->error = false;
}

static const uint8_t *
plcp_take(PlcpReader *r, size_t n)
{
	const uint8_t *p;

	if (r->error || r->len - r->pos < n)
	{
		r->error = true;
		return NULL;
	}
	p = r->data + r->pos;
	r->pos += n;
	return p;
}

uint8_t
plcp_get_u8(PlcpReader *r)
{
	const uint8_t *p = plcp_take(r, 1);

	return p ? p[0] : 0;
}

uint16_t
plcp_get_u16(PlcpReader *r)
{
	const uint8_t *p = plcp_take(r, 2);

	return p ? (uint16_t) ((p[0] << 8) | p[1]) : 0;
}

uint32_t
plcp_get_u32(PlcpReader *r)
{
	const uint8_t *p = plcp_take(r, 4);

	return p ? plcp_be32(p) : 0;
}

int32_t
plcp_get_i32(PlcpReader *r)
{
	return (int32_t) plcp_get_u32(r);
}

int64_t
plcp_get_i64(PlcpReader *r)
{
	uint64_t	hi = plcp_get_u32(r);
	uint64_t	lo = plcp_get_u32(r);

	return (int64_t) ((hi << 32) | lo);
}

PlcpString
plcp_get_str(PlcpReader *r)
{
	PlcpString	s = {"", 0};
	uint16_t	n = plcp_get_u16(r);
	const uint8_t *p;

	if (n > PLCP_MAX_STRING)
	{
		r->error = true;
		return s;
	}
	p = plcp_take(r, n);
	if (p == NULL)
		return s;
	s.data = (const char *) p;
	s.len = n;
	return s;
}

/*
 * Message decoders.  Fields beyond the known ones are ignored: later
 * minor versions append fields.
 */
bool
plcp_decode_welcome(const uint8_t *p, size_t len, PlcpWelcome *out)
{
	PlcpReader	r;

	plcp_reader_init(&r, p, len);
	out->version = plcp_get_u16(&r);
	out->max_payload = plcp_get_u32(&r);
	out->instance = plcp_get_str(&r);
	out->server_pid = plcp_get_i32(&r);
	return !r.error;
}

bool
plcp_decode_acquired(const uint8_t *p, size_t len, PlcpAcquired *out)
{
	PlcpReader	r;

	plcp_reader_init(&r, p, len);
	out->container_id = plcp_get_str(&r);
	out->address = plcp_get_str(&r);
	out->reused = plcp_get_u8(&r) != 0;
	out->prewarmed = plcp_get_u8(&r) != 0;
	out->wait_ms = plcp_get_u32(&r);
	out->client_version = plcp_get_str(&r);
	return !r.error;
}

bool
plcp_decode_error(const uint8_t *p, size_t len, PlcpError *out)
{
	PlcpReader	r;

	plcp_reader_init(&r, p, len);
	out->code = plcp_get_u16(&r);
	out->message = plcp_get_str(&r);
	out->detail = plcp_get_str(&r);
	out->hint = plcp_get_str(&r);
	return !r.error;
}

bool
plcp_decode_u32(const uint8_t *p, size_t len, uint32_t *out)
{
	PlcpReader	r;

	plcp_reader_init(&r, p, len);
	*out = plcp_get_u32(&r);
	return !r.error;
}

void
plcp_copy(PlcpString s, char *dst, size_t dstlen)
{
	size_t		n = s.len < dstlen - 1 ? s.len : dstlen - 1;

	memcpy(dst, s.data, n);
	dst[n] = '\0';
}
