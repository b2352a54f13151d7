/*-------------------------------------------------------------------------
 *
 * plcoordinator_proto.h
 *		The backend <-> coordinator wire format, C side.
 *
 * golib/internal/protocol/PROTOCOL.md is the specification; the Go server
 * and this codec implement it, and test/protocol checks both against the
 * same golden frames.  Plain C, no PostgreSQL headers: the codec only
 * fills and parses caller-provided buffers.
 *
 * Copyright (c) 2026, plcoordinator authors
 *
 * IDENTIFICATION
 *		include/plcoordinator_proto.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PLCOORDINATOR_PROTO_H
#define PLCOORDINATOR_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PLCP_VERSION		1
#define PLCP_HEADER_SIZE	12
#define PLCP_MAX_PAYLOAD	65536
#define PLCP_MAX_STRING		4096
#define PLCP_FLAG_FD		0x1

/* Message types. */
#define PLCP_HELLO			0x01
#define PLCP_WELCOME		0x02
#define PLCP_DONE			0x03
#define PLCP_ACQUIRE		0x10
#define PLCP_ACQUIRED		0x11
#define PLCP_RELEASE		0x12
#define PLCP_RELEASE_ALL	0x13
#define PLCP_RELEASED		0x14
#define PLCP_RELOAD			0x20
#define PLCP_RELOADED		0x21
#define PLCP_STATUS			0x22
#define PLCP_STATUS_REPLY	0x23
#define PLCP_STATS_RESET	0x24
#define PLCP_DEBUG_PANIC	0x7E
#define PLCP_ERROR			0x7F

/* Error codes carried by PLCP_ERROR. */
#define PLCP_ERR_PROTOCOL			1
#define PLCP_ERR_VERSION			2
#define PLCP_ERR_UNKNOWN_RUNTIME	3
#define PLCP_ERR_PERMISSION			4
#define PLCP_ERR_NOT_READY			5
#define PLCP_ERR_LIMIT				6
#define PLCP_ERR_START_TIMEOUT		7
#define PLCP_ERR_START_FAILED		8
#define PLCP_ERR_DOCKER				9
#define PLCP_ERR_SESSION_CONFLICT	10
#define PLCP_ERR_CONFIG_INVALID		11
#define PLCP_ERR_SHUTTING_DOWN		12
#define PLCP_ERR_INTERNAL			13

/* Acquire flags. */
#define PLCP_ACQUIRE_WANT_FD	0x1

typedef struct PlcpHeader
{
	uint32_t	length;
	uint32_t	request_id;
	uint8_t		type;
	uint8_t		flags;
} PlcpHeader;

/* A string field: points into the decoded buffer, not NUL-terminated. */
typedef struct PlcpString
{
	const char *data;
	uint16_t	len;
} PlcpString;

/* A growing output buffer; the caller owns data (capacity cap). */
typedef struct PlcpWriter
{
	uint8_t    *data;
	size_t		len;
	size_t		cap;
	bool		overflow;
} PlcpWriter;

/* A cursor over a received payload. */
typedef struct PlcpReader
{
	const uint8_t *data;
	size_t		len;
	size_t		pos;
	bool		error;
} PlcpReader;

typedef struct PlcpWelcome
{
	uint16_t	version;
	uint32_t	max_payload;
	PlcpString	instance;
	int32_t		server_pid;
} PlcpWelcome;

typedef struct PlcpAcquired
{
	PlcpString	container_id;
	PlcpString	address;
	bool		reused;
	bool		prewarmed;
	uint32_t	wait_ms;
	PlcpString	client_version;
} PlcpAcquired;

typedef struct PlcpError
{
	uint16_t	code;
	PlcpString	message;
	PlcpString	detail;
	PlcpString	hint;
} PlcpError;

/* Frame building: begin, append fields, finish (fills in the length). */
extern void plcp_begin(PlcpWriter *w, uint8_t type, uint32_t request_id);
extern void plcp_put_u8(PlcpWriter *w, uint8_t v);
extern void plcp_put_u16(PlcpWriter *w, uint16_t v);
extern void plcp_put_u32(PlcpWriter *w, uint32_t v);
extern void plcp_put_i32(PlcpWriter *w, int32_t v);
extern void plcp_put_i64(PlcpWriter *w, int64_t v);
extern void plcp_put_str(PlcpWriter *w, const char *s);
extern bool plcp_finish(PlcpWriter *w);

/* Header parsing; returns false for a malformed header. */
extern bool plcp_parse_header(const uint8_t *buf, PlcpHeader *out);

/* Payload parsing; each returns false when the payload is too short. */
extern void plcp_reader_init(PlcpReader *r, const uint8_t *data, size_t len);
extern uint8_t plcp_get_u8(PlcpReader *r);
extern uint16_t plcp_get_u16(PlcpReader *r);
extern uint32_t plcp_get_u32(PlcpReader *r);
extern int32_t plcp_get_i32(PlcpReader *r);
extern int64_t plcp_get_i64(PlcpReader *r);
extern PlcpString plcp_get_str(PlcpReader *r);
extern bool plcp_decode_welcome(const uint8_t *p, size_t len, PlcpWelcome *out);
extern bool plcp_decode_acquired(const uint8_t *p, size_t len, PlcpAcquired *out);
extern bool plcp_decode_error(const uint8_t *p, size_t len, PlcpError *out);
extern bool plcp_decode_u32(const uint8_t *p, size_t len, uint32_t *out);

/* Copies a PlcpString into a NUL-terminated buffer (truncating). */
extern void plcp_copy(PlcpString s, char *dst, size_t dstlen);

#endif							/* PLCOORDINATOR_PROTO_H */
