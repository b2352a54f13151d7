/*-------------------------------------------------------------------------
 *
 * golden.c
 *		Checks the C codec (bgworker/proto.c) against the golden frames of
 *		golib/internal/protocol/testdata/golden, which the Go codec is
 *		tested against too: what the backend sends must be byte for byte
 *		what Go expects, and what Go sends must decode to the same values.
 *
 *		Usage: golden <golden directory>
 *
 * Copyright (c) 2026, plcoordinator authors
 *
 * IDENTIFICATION
 *		test/protocol/golden.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plcoordinator_proto.h"

static const char *golden_dir;
static int	failures = 0;
static int	checks = 0;

/* Reads a golden file: hex byte pairs, white space ignored. */
static size_t
read_golden(const char *name, uint8_t *out, size_t cap)
{
	char		path[1024];
	FILE	   *f;
	size_t		n = 0;
	int			c,
				hi = -1;

	snprintf(path, sizeof(path), "%s/%s", golden_dir, name);
	f = fopen(path, "r");
	if (f == NULL)
	{
		perror(path);
		exit(2);
	}
	while ((c = fgetc(f)) != EOF)
	{
		int			v;

		if (c >= '0' && c <= '9')
			v = c - '0';
		else if (c >= 'a' && c <= 'f')
			v = c - 'a' + 10;
		else
			continue;
		if (hi < 0)
			hi = v;
		else
		{
			if (n < cap)
				out[n++] = (uint8_t) (hi << 4 | v);
			hi = -1;
		}
	}
	fclose(f);
	return n;
}

static void
check(int ok, const char *what)
{
	checks++;
	if (!ok)
	{
		failures++;
		printf("FAIL: %s\n", what);
	}
}

static int
str_is(PlcpString s, const char *want)
{
	return s.len == strlen(want) && memcmp(s.data, want, s.len) == 0;
}

/* Compares an encoded frame with a golden file. */
static void
check_encoded(const char *name, PlcpWriter *w)
{
	uint8_t		want[4096];
	size_t		n = read_golden(name, want, sizeof(want));
	char		what[256];

	snprintf(what, sizeof(what), "%s: C encoding equals the golden frame", name);
	check(plcp_finish(w) && w->len == n && memcmp(w->data, want, n) == 0, what);
}

/* Reads a golden frame and checks its header; returns the payload. */
static const uint8_t *
golden_payload(const char *name, uint8_t *buf, size_t cap, uint8_t type,
			   uint32_t request_id, uint32_t *len)
{
	size_t		n = read_golden(name, buf, cap);
	PlcpHeader	h;
	char		what[256];

	snprintf(what, sizeof(what), "%s: header parses", name);
	check(n >= PLCP_HEADER_SIZE && plcp_parse_header(buf, &h) &&
		  h.type == type && h.request_id == request_id &&
		  h.length == n - PLCP_HEADER_SIZE, what);
	*len = (uint32_t) (n - PLCP_HEADER_SIZE);
	return buf + PLCP_HEADER_SIZE;
}

int
main(int argc, char **argv)
{
	uint8_t		buf[4096],
				in[4096];
	PlcpWriter	w = {buf, 0, sizeof(buf), false};
	const uint8_t *p;
	uint32_t	len,
				count;

	if (argc != 2)
	{
		fprintf(stderr, "usage: %s <golden directory>\n", argv[0]);
		return 2;
	}
	golden_dir = argv[1];

	/* Client to server: encode and compare. */
	plcp_begin(&w, PLCP_HELLO, 1);
	plcp_put_u16(&w, 1);
	plcp_put_u16(&w, 1);
	plcp_put_i32(&w, 12345);
	plcp_put_i64(&w, INT64_C(1700000000000000));
	plcp_put_str(&w, "plcoordinator-c/1");
	check_encoded("hello.hex", &w);

	plcp_begin(&w, PLCP_ACQUIRE, 2);
	plcp_put_str(&w, "plc_python3");
	plcp_put_str(&w, "gpadmin");
	plcp_put_str(&w, "postgres");
	plcp_put_u32(&w, 16384);
	plcp_put_i32(&w, -1);
	plcp_put_u32(&w, PLCP_ACQUIRE_WANT_FD);
	plcp_put_u32(&w, 30000);
	check_encoded("acquire.hex", &w);

	plcp_begin(&w, PLCP_RELEASE, 3);
	plcp_put_str(&w, "plc_python3");
	check_encoded("release.hex", &w);

	plcp_begin(&w, PLCP_RELEASE_ALL, 4);
	check_encoded("release_all.hex", &w);
	plcp_begin(&w, PLCP_RELOAD, 5);
	check_encoded("reload.hex", &w);
	plcp_begin(&w, PLCP_STATUS, 6);
	check_encoded("status.hex", &w);
	plcp_begin(&w, PLCP_DEBUG_PANIC, 8);
	check_encoded("debug_panic.hex", &w);

	/* Server to client: decode and compare the values. */
	{
		PlcpWelcome m;

		p = golden_payload("welcome.hex", in, sizeof(in), PLCP_WELCOME, 1, &len);
		check(plcp_decode_welcome(p, len, &m) && m.version == 1 &&
			  m.max_payload == 65536 && str_is(m.instance, "seg0-5432") &&
			  m.server_pid == 4321, "welcome.hex: values");
		check(!plcp_decode_welcome(p, len - 1, &m), "welcome.hex: short payload rejected");
	}
	{
		PlcpAcquired m;

		p = golden_payload("acquired.hex", in, sizeof(in), PLCP_ACQUIRED, 2, &len);
		check(plcp_decode_acquired(p, len, &m) && str_is(m.container_id, "3f2a9c1b7d4e") &&
			  str_is(m.address, "unix:/tmp/plcoordinator/3f2a9c1b7d4e.sock") &&
			  !m.reused && m.prewarmed && m.wait_ms == 250 &&
			  str_is(m.client_version, ""), "acquired.hex: values");
	}
	p = golden_payload("released.hex", in, sizeof(in), PLCP_RELEASED, 4, &len);
	check(plcp_decode_u32(p, len, &count) && count == 2, "released.hex: values");
	{
		PlcpReader r;
		PlcpString msg;

		p = golden_payload("reloaded.hex", in, sizeof(in), PLCP_RELOADED, 5, &len);
		plcp_reader_init(&r, p, len);
		count = plcp_get_u32(&r);
		msg = plcp_get_str(&r);
		check(!r.error && count == 3 && str_is(msg, "3 runtimes loaded"), "reloaded.hex: values");
	}
	{
		PlcpReader r;
		uint32_t	n;

		p = golden_payload("status_reply.hex", in, sizeof(in), PLCP_STATUS_REPLY, 6, &len);
		plcp_reader_init(&r, p, len);
		n = plcp_get_u32(&r);
		check(!r.error && n == len - 4 && memcmp(p + 4, "{\"state\":\"ready\"}", n) == 0,
			  "status_reply.hex: values");
	}
	{
		PlcpError m;

		p = golden_payload("error.hex", in, sizeof(in), PLCP_ERROR, 7, &len);
		check(plcp_decode_error(p, len, &m) && m.code == PLCP_ERR_UNKNOWN_RUNTIME &&
			  str_is(m.message, "runtime \"plc_r\" is not configured") && m.detail.len == 0 &&
			  str_is(m.hint, "Check the runtime ids in the PL/Container configuration file."),
			  "error.hex: values");
	}

	/* Headers the Go side rejects are rejected here too. */
	{
		uint8_t		h[PLCP_HEADER_SIZE] = {0, 1, 0, 1, 0, 0, 0, 1, PLCP_HELLO, 0, 0, 0};
		PlcpHeader	hdr;

		check(!plcp_parse_header(h, &hdr), "oversized length rejected");
		h[1] = 0;
		h[2] = 0;
		h[9] = 2;
		check(!plcp_parse_header(h, &hdr), "unknown flag rejected");
		h[9] = 0;
		h[11] = 1;
		check(!plcp_parse_header(h, &hdr), "non-zero reserved field rejected");
	}

	printf("%d passed, %d failed\n", checks - failures, failures);
	return failures == 0 ? 0 : 1;
}
