/*-------------------------------------------------------------------------
 *
 * client.c
 *		The backend side of plcoordinator: one persistent connection to the
 *		coordinator per session, acquire/release requests, and the
 *		PL/Container PING handshake with a container.
 *
 * The connection is opened on first use and kept until the session ends;
 * the coordinator treats its end as the end of the session and removes the
 * session's containers.  Every wait goes through WaitLatchOrSocket, so a
 * query waiting for a container stays cancellable.  When a wait is
 * interrupted (cancel, statement_timeout, termination) the client sends
 * release_all and drops the connection before re-throwing: the coordinator
 * then removes every container of the session, including starts still in
 * flight, which is PL/Container's rule for CTRL+C.
 *
 * Copyright (c) 2026, plcoordinator authors
 *
 * IDENTIFICATION
 *		bgworker/client.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "plcoordinator.h"
#include "plcoordinator_proto.h"

/* Bounds of the waits that have no server-side timeout of their own. */
#define PLCOORD_REQUEST_TIMEOUT_MS	30000
#define PLCOORD_ACQUIRE_SLACK_MS	120000
#define PLCOORD_RESTART_WAIT_MS		5000

/* Containers this session holds a connection to, by runtime. */
#define PLCOORD_MAX_HELD	64
typedef struct PlcoordHeld
{
	char		runtime_id[PLCOORD_NAME_LEN];
	char		container_id[PLCOORD_CONTAINER_ID_LEN];
	int			fd;
} PlcoordHeld;

static PlcoordHeld plcoord_held[PLCOORD_MAX_HELD];
static int	plcoord_nheld = 0;

static int	coord_sock = -1;
static uint32_t coord_next_request = 1;

/* A reply frame; payload is palloc'd in the current context. */
typedef struct PlcoordReply
{
	PlcpHeader	header;
	uint8_t    *payload;
	int			fd;				/* received with SCM_RIGHTS, or -1 */
} PlcoordReply;

static void coord_close(bool release_all);
static void coord_connect(void);

/*
 * plcoord_wait_socket
 *		Waits until sock is readable or writable, the deadline passes, or an
 *		interrupt arrives (CHECK_FOR_INTERRUPTS may throw).  Returns false
 *		on timeout.
 */
static bool
plcoord_wait_socket(int sock, int event, TimestampTz deadline)
{
	long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
	int			rc;

	if (left <= 0)
		return false;
	rc = WaitLatchOrSocket(MyLatch,
						   WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH | event,
						   sock, left, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	return (rc & WL_TIMEOUT) == 0 || TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline) > 0;
}

/* Outcome of an I/O step on the coordinator connection. */
typedef enum PlcoordIO
{
	PLCOORD_IO_OK,
	PLCOORD_IO_LOST,			/* peer closed or reset; errno says how */
	PLCOORD_IO_TIMEOUT
} PlcoordIO;

/*
 * coord_send_all
 *		Writes len bytes to the coordinator socket before the deadline.
 */
static PlcoordIO
coord_send_all(const uint8_t *buf, size_t len, TimestampTz deadline)
{
	while (len > 0)
	{
		ssize_t		n = send(coord_sock, buf, len, MSG_NOSIGNAL);

		if (n > 0)
		{
			buf += n;
			len -= n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		{
			if (!plcoord_wait_socket(coord_sock, WL_SOCKET_WRITEABLE, deadline))
				return PLCOORD_IO_TIMEOUT;
			continue;
		}
		return PLCOORD_IO_LOST;
	}
	return PLCOORD_IO_OK;
}

/*
 * coord_recv_all
 *		Reads exactly len bytes, picking up a descriptor passed alongside.
 *		*received counts the bytes read so far.
 */
static PlcoordIO
coord_recv_all(uint8_t *buf, size_t len, int *fd, size_t *received, TimestampTz deadline)
{
	while (len > 0)
	{
		struct msghdr msg;
		struct iovec iov;
		union
		{
			struct cmsghdr align;
			char		buf[CMSG_SPACE(sizeof(int))];
		}			control;
		ssize_t		n;

		memset(&msg, 0, sizeof(msg));
		iov.iov_base = buf;
		iov.iov_len = len;
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = control.buf;
		msg.msg_controllen = sizeof(control.buf);

		n = recvmsg(coord_sock, &msg, MSG_CMSG_CLOEXEC);
		if (n > 0)
		{
			struct cmsghdr *cmsg;

			for (cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL; cmsg = CMSG_NXTHDR(&msg, cmsg))
			{
				if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS)
				{
					int			passed;

					memcpy(&passed, CMSG_DATA(cmsg), sizeof(int));
					if (*fd >= 0)
						close(passed);
					else
						*fd = passed;
				}
			}
			buf += n;
			len -= n;
			*received += n;
			continue;
		}
		if (n == 0)
		{
			errno = ECONNRESET;
			return PLCOORD_IO_LOST;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
		{
			if (!plcoord_wait_socket(coord_sock, WL_SOCKET_READABLE, deadline))
				return PLCOORD_IO_TIMEOUT;
			continue;
		}
		return PLCOORD_IO_LOST;
	}
	return PLCOORD_IO_OK;
}

/*
 * coord_recv
 *		Reads one frame; *received tells whether any of it arrived.
 */
static PlcoordIO
coord_recv(PlcoordReply *reply, size_t *received, TimestampTz deadline)
{
	uint8_t		header[PLCP_HEADER_SIZE];
	PlcoordIO	io;

	reply->fd = -1;
	reply->payload = NULL;
	io = coord_recv_all(header, sizeof(header), &reply->fd, received, deadline);
	if (io != PLCOORD_IO_OK)
		return io;
	if (!plcp_parse_header(header, &reply->header))
	{
		coord_close(false);
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("plcoordinator sent a malformed frame header")));
	}
	reply->payload = palloc(reply->header.length + 1);
	return coord_recv_all(reply->payload, reply->header.length, &reply->fd, received, deadline);
}

/*
 * plcoord_sqlstate
 *		The SQLSTATE of a coordinator error code (PROTOCOL.md).
 */
static int
plcoord_sqlstate(uint16_t code)
{
	switch (code)
	{
		case PLCP_ERR_PROTOCOL:
		case PLCP_ERR_VERSION:
			return ERRCODE_PROTOCOL_VIOLATION;
		case PLCP_ERR_UNKNOWN_RUNTIME:
			return ERRCODE_UNDEFINED_OBJECT;
		case PLCP_ERR_PERMISSION:
			return ERRCODE_INSUFFICIENT_PRIVILEGE;
		case PLCP_ERR_NOT_READY:
			return ERRCODE_CANNOT_CONNECT_NOW;
		case PLCP_ERR_LIMIT:
			return ERRCODE_CONFIGURATION_LIMIT_EXCEEDED;
		case PLCP_ERR_START_TIMEOUT:
			return ERRCODE_SYSTEM_ERROR;
		case PLCP_ERR_START_FAILED:
			return ERRCODE_EXTERNAL_ROUTINE_EXCEPTION;
		case PLCP_ERR_DOCKER:
			return ERRCODE_IO_ERROR;
		case PLCP_ERR_SESSION_CONFLICT:
			return ERRCODE_OBJECT_IN_USE;
		case PLCP_ERR_CONFIG_INVALID:
			return ERRCODE_CONFIG_FILE_ERROR;
		case PLCP_ERR_SHUTTING_DOWN:
			return ERRCODE_ADMIN_SHUTDOWN;
		default:
			return ERRCODE_INTERNAL_ERROR;
	}
}

static char *
plcoord_pstrdup(PlcpString s)
{
	return pnstrdup(s.data, s.len);
}

/*
 * coord_raise_error
 *		Raises an ERROR frame as a PostgreSQL error with its SQLSTATE,
 *		detail and hint.
 */
static void
coord_raise_error(PlcoordReply *reply)
{
	PlcpError	e;

	if (reply->header.type != PLCP_ERROR ||
		!plcp_decode_error(reply->payload, reply->header.length, &e))
	{
		coord_close(false);
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("plcoordinator sent an unexpected message of type %d",
						reply->header.type)));
	}
	ereport(ERROR,
			(errcode(plcoord_sqlstate(e.code)),
			 errmsg("%s", plcoord_pstrdup(e.message)),
			 e.detail.len > 0 ? errdetail("%s", plcoord_pstrdup(e.detail)) : 0,
			 e.hint.len > 0 ? errhint("%s", plcoord_pstrdup(e.hint)) : 0));
}

/*
 * coord_close
 *		Drops the coordinator connection.  With release_all, first tells the
 *		coordinator (best effort, never blocking) to release every container
 *		of this session; closing alone has the same effect once the
 *		coordinator sees the end of the connection.
 */
static void
coord_close(bool release_all)
{
	int			i;

	if (coord_sock < 0)
		return;
	if (release_all)
	{
		uint8_t		buf[PLCP_HEADER_SIZE];
		PlcpWriter	w = {buf, 0, sizeof(buf), false};

		plcp_begin(&w, PLCP_RELEASE_ALL, coord_next_request++);
		if (plcp_finish(&w))
			(void) send(coord_sock, buf, w.len, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	close(coord_sock);
	ReleaseExternalFD();
	coord_sock = -1;

	/* The coordinator removes the containers: their sockets are useless. */
	for (i = 0; i < plcoord_nheld; i++)
		if (plcoord_held[i].fd >= 0)
		{
			close(plcoord_held[i].fd);
			ReleaseExternalFD();
		}
	plcoord_nheld = 0;
}

/*
 * coord_exchange
 *		Sends one request frame and reads its reply.  An interrupt while
 *		waiting ends the session's coordinator connection with release_all
 *		before the error propagates.  A connection found dead before any
 *		reply byte arrived means the coordinator restarted (and removed this
 *		session's containers): with may_retry the request is sent once more
 *		on a new connection.
 */
static void
coord_exchange(PlcpWriter *w, PlcoordReply *reply, int timeout_ms, bool may_retry)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	volatile PlcoordIO io = PLCOORD_IO_OK;
	size_t		received = 0;
	int			save_errno;

	if (!plcp_finish(w))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("plcoordinator request is too large")));

	PG_TRY();
	{
		io = coord_send_all(w->data, w->len, deadline);
		if (io == PLCOORD_IO_OK)
			io = coord_recv(reply, &received, deadline);
	}
	PG_CATCH();
	{
		coord_close(true);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (io == PLCOORD_IO_OK)
		return;
	save_errno = errno;
	if (io == PLCOORD_IO_TIMEOUT)
	{
		coord_close(true);
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("plcoordinator did not answer within %d ms", timeout_ms),
				 errhint("Check the server log for coordinator problems.")));
	}
	coord_close(false);
	if (may_retry && received == 0)
	{
		coord_connect();
		coord_exchange(w, reply, timeout_ms, false);
		return;
	}
	errno = save_errno;
	ereport(ERROR,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 errmsg("lost the connection to plcoordinator: %m"),
			 errhint("The coordinator restarted; this session's containers are gone. The next call reconnects.")));
}

/*
 * coord_connect
 *		Opens the session's connection on first use: connect to the address
 *		published in shared memory, then HELLO/WELCOME.
 */
static void
coord_connect(void)
{
	struct sockaddr_un sun;
	int32_t		state;
	char		address[PLCOORD_ADDRESS_LEN];
	uint8_t		buf[256];
	PlcpWriter	w = {buf, 0, sizeof(buf), false};
	PlcoordReply reply;
	PlcpWelcome welcome;

	if (coord_sock >= 0)
		return;

	/* A coordinator that is restarting is worth a short wait. */
	(void) plcoord_wait_for_state(PLCOORD_STATE_READY,
								  Min(plcoord_acquire_timeout, PLCOORD_RESTART_WAIT_MS));
	plcoord_shmem_lock(false);
	state = plcoord_shared->state;
	strlcpy(address, plcoord_shared->address, sizeof(address));
	plcoord_shmem_unlock();

	if (state != PLCOORD_STATE_READY || strncmp(address, "unix:", 5) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_CANNOT_CONNECT_NOW),
				 errmsg("plcoordinator is not ready"),
				 errdetail("The coordinator state is \"%s\".",
						   state == PLCOORD_STATE_STARTING ? "starting" :
						   state == PLCOORD_STATE_STOPPING ? "stopping" : "uninitialized"),
				 errhint("Check the server log; plcoordinator.wait_until_ready() waits for it.")));

	if (strlen(address + 5) >= sizeof(sun.sun_path))
		elog(ERROR, "plcoordinator socket path is too long: \"%s\"", address + 5);

	if (!AcquireExternalFD())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("out of file descriptors for the plcoordinator connection")));

	coord_sock = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (coord_sock < 0)
	{
		ReleaseExternalFD();
		ereport(ERROR, (errcode_for_socket_access(),
						errmsg("could not create socket: %m")));
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strlcpy(sun.sun_path, address + 5, sizeof(sun.sun_path));
	if (connect(coord_sock, (struct sockaddr *) &sun, sizeof(sun)) != 0)
	{
		int			save_errno = errno;

		coord_close(false);
		errno = save_errno;
		ereport(ERROR,
				(errcode(ERRCODE_CANNOT_CONNECT_NOW),
				 errmsg("could not connect to plcoordinator at \"%s\": %m", address + 5),
				 errhint("Check that the coordinator is running (SELECT * FROM plcoordinator.status).")));
	}

	plcp_begin(&w, PLCP_HELLO, coord_next_request++);
	plcp_put_u16(&w, PLCP_VERSION);
	plcp_put_u16(&w, PLCP_VERSION);
	plcp_put_i32(&w, MyProcPid);
	plcp_put_i64(&w, (int64_t) MyStartTime * 1000000);
	plcp_put_str(&w, "plcoordinator-c/1");
	coord_exchange(&w, &reply, PLCOORD_REQUEST_TIMEOUT_MS, false);
	if (reply.header.type != PLCP_WELCOME)
	{
		PG_TRY();
		{
			coord_raise_error(&reply);
		}
		PG_CATCH();
		{
			coord_close(false);
			PG_RE_THROW();
		}
		PG_END_TRY();
	}
	if (!plcp_decode_welcome(reply.payload, reply.header.length, &welcome) ||
		welcome.version != PLCP_VERSION)
	{
		coord_close(false);
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("plcoordinator protocol mismatch"),
				 errdetail("The client speaks version %d.", PLCP_VERSION),
				 errhint("Install plcoordinator.so and plcoordinator_go.so from the same build and restart the server.")));
	}
}

/*
 * coord_call
 *		Connects if needed, sends the frame in w, and returns the reply;
 *		an ERROR reply is raised.  expect is the reply type wanted.
 */
static void
coord_call(PlcpWriter *w, uint8_t expect, PlcoordReply *reply, int timeout_ms)
{
	coord_exchange(w, reply, timeout_ms, true);
	if (reply->header.type != expect)
	{
		if (reply->fd >= 0)
			close(reply->fd);
		coord_raise_error(reply);
	}
}

#define COORD_BEGIN(w, buf, type) \
	do { \
		coord_connect(); \
		plcp_begin((w), (type), coord_next_request++); \
	} while (0)

static PlcoordHeld *
plcoord_find_held(const char *runtime_id)
{
	int			i;

	for (i = 0; i < plcoord_nheld; i++)
		if (strcmp(plcoord_held[i].runtime_id, runtime_id) == 0)
			return &plcoord_held[i];
	return NULL;
}

static void
plcoord_forget_held(const char *runtime_id)
{
	PlcoordHeld *h = plcoord_find_held(runtime_id);

	if (h == NULL)
		return;
	if (h->fd >= 0)
	{
		close(h->fd);
		ReleaseExternalFD();
	}
	*h = plcoord_held[--plcoord_nheld];
}

/*
 * plcoord_remember_held
 *		Keeps a connected container socket for the session, replacing the
 *		one of an earlier container of the same runtime.
 */
static void
plcoord_remember_held(const char *runtime_id, const char *container_id, int fd)
{
	PlcoordHeld *h = plcoord_find_held(runtime_id);

	if (h != NULL && strcmp(h->container_id, container_id) == 0 && h->fd == fd)
		return;
	plcoord_forget_held(runtime_id);
	if (plcoord_nheld >= PLCOORD_MAX_HELD)
	{
		close(fd);
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a session can hold at most %d containers", PLCOORD_MAX_HELD)));
	}
	if (!AcquireExternalFD())
	{
		close(fd);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("out of file descriptors for container connections")));
	}
	h = &plcoord_held[plcoord_nheld++];
	strlcpy(h->runtime_id, runtime_id, sizeof(h->runtime_id));
	strlcpy(h->container_id, container_id, sizeof(h->container_id));
	h->fd = fd;
}

/*
 * plcoord_held_fd
 *		The session's connected socket to container_id of runtime_id, or -1.
 */
int
plcoord_held_fd(const char *runtime_id, const char *container_id)
{
	PlcoordHeld *h = plcoord_find_held(runtime_id);

	if (h == NULL || strcmp(h->container_id, container_id) != 0)
		return -1;
	return h->fd;
}

/*
 * plcoord_acquire
 *		Asks the coordinator for a container of runtime_id.  With
 *		PLCOORD_ACQUIRE_WANT_FD the coordinator may hand over a connected,
 *		already pinged socket (out->fd), which the session then keeps.
 */
void
plcoord_acquire(const char *runtime_id, uint32_t flags, PlcoordContainer *out)
{
	uint8_t		buf[1024];
	PlcpWriter	w = {buf, 0, sizeof(buf), false};
	PlcoordReply reply;
	PlcpAcquired a;
	char	   *role = GetUserNameFromId(GetUserId(), false);
	char	   *database = get_database_name(MyDatabaseId);

	plcoord_check_runtime_access(runtime_id);

	COORD_BEGIN(&w, buf, PLCP_ACQUIRE);
	plcp_put_str(&w, runtime_id);
	plcp_put_str(&w, role);
	plcp_put_str(&w, database ? database : "");
	plcp_put_u32(&w, MyDatabaseId);
	plcp_put_i32(&w, PLCOORD_SEGINDEX);
	plcp_put_u32(&w, flags);
	plcp_put_u32(&w, 0);
	coord_call(&w, PLCP_ACQUIRED, &reply, plcoord_acquire_timeout + PLCOORD_ACQUIRE_SLACK_MS);

	if (!plcp_decode_acquired(reply.payload, reply.header.length, &a))
	{
		if (reply.fd >= 0)
			close(reply.fd);
		coord_close(true);
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("plcoordinator sent a malformed acquire reply")));
	}
	memset(out, 0, sizeof(*out));
	plcp_copy(a.container_id, out->container_id, sizeof(out->container_id));
	plcp_copy(a.address, out->address, sizeof(out->address));
	plcp_copy(a.client_version, out->client_version, sizeof(out->client_version));
	out->reused = a.reused;
	out->prewarmed = a.prewarmed;
	out->wait_ms = a.wait_ms;
	out->fd = -1;
	if (reply.fd >= 0)
	{
		plcoord_remember_held(runtime_id, out->container_id, reply.fd);
		out->fd = reply.fd;
	}
	else
		out->fd = plcoord_held_fd(runtime_id, out->container_id);
}

/*
 * plcoord_release
 *		Gives the session's container of runtime_id back (it stays with the
 *		session, idle).  Returns how many containers were released.
 */
uint32_t
plcoord_release(const char *runtime_id)
{
	uint8_t		buf[256];
	PlcpWriter	w = {buf, 0, sizeof(buf), false};
	PlcoordReply reply;
	uint32_t	count = 0;

	COORD_BEGIN(&w, buf, PLCP_RELEASE);
	plcp_put_str(&w, runtime_id);
	coord_call(&w, PLCP_RELEASED, &reply, PLCOORD_REQUEST_TIMEOUT_MS);
	(void) plcp_decode_u32(reply.payload, reply.header.length, &count);
	return count;
}

/*
 * plcoord_release_all
 *		Removes every container of this session.
 */
uint32_t
plcoord_release_all(void)
{
	uint8_t		buf[64];
	PlcpWriter	w = {buf, 0, sizeof(buf), false};
	PlcoordReply reply;
	uint32_t	count = 0;
	int			i;

	COORD_BEGIN(&w, buf, PLCP_RELEASE_ALL);
	coord_call(&w, PLCP_RELEASED, &reply, PLCOORD_REQUEST_TIMEOUT_MS);
	(void) plcp_decode_u32(reply.payload, reply.header.length, &count);
	for (i = plcoord_nheld - 1; i >= 0; i--)
		plcoord_forget_held(plcoord_held[i].runtime_id);
	return count;
}

/*
 * plcoord_reload
 *		Asks the coordinator to re-read the runtime configuration; returns
 *		its message, or raises the rejection with every problem.
 */
char *
plcoord_reload(uint32_t *nruntimes)
{
	uint8_t		buf[64];
	PlcpWriter	w = {buf, 0, sizeof(buf), false};
	PlcoordReply reply;
	PlcpReader	r;
	PlcpString	msg;

	COORD_BEGIN(&w, buf, PLCP_RELOAD);
	coord_call(&w, PLCP_RELOADED, &reply, PLCOORD_REQUEST_TIMEOUT_MS);
	plcp_reader_init(&r, reply.payload, reply.header.length);
	*nruntimes = plcp_get_u32(&r);
	msg = plcp_get_str(&r);
	return plcoord_pstrdup(msg);
}

/*
 * coord_simple
 *		A request without fields whose reply is DONE.
 */
static void
coord_simple(uint8_t type)
{
	uint8_t		buf[64];
	PlcpWriter	w = {buf, 0, sizeof(buf), false};
	PlcoordReply reply;

	COORD_BEGIN(&w, buf, type);
	coord_call(&w, PLCP_DONE, &reply, PLCOORD_REQUEST_TIMEOUT_MS);
}

/*
 * plcoord_stats_reset
 *		Zeroes the coordinator's counters (plcoordinator.stats).
 */
void
plcoord_stats_reset(void)
{
	coord_simple(PLCP_STATS_RESET);
}

/*
 * plcoord_debug_panic
 *		Test hook: makes the coordinator panic in a goroutine.
 */
void
plcoord_debug_panic(void)
{
	coord_simple(PLCP_DEBUG_PANIC);
}

/*
 * plcoord_connect_container
 *		Connects to a container's socket ("unix:<path>" or
 *		"tcp:<ip>:<port>"), retrying while the client is not listening yet
 *		(ENOENT, ECONNREFUSED) up to timeout_ms.  Returns the socket.
 */
int
plcoord_connect_container(const char *address, int timeout_ms)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	struct sockaddr_storage ss;
	socklen_t	sslen;
	int			family;
	long		backoff_ms = 5;

	memset(&ss, 0, sizeof(ss));
	if (strncmp(address, "unix:", 5) == 0)
	{
		struct sockaddr_un *sun = (struct sockaddr_un *) &ss;

		if (strlen(address + 5) >= sizeof(sun->sun_path))
			ereport(ERROR,
					(errcode(ERRCODE_NAME_TOO_LONG),
					 errmsg("container socket path is too long: \"%s\"", address + 5)));
		sun->sun_family = AF_UNIX;
		strlcpy(sun->sun_path, address + 5, sizeof(sun->sun_path));
		sslen = sizeof(*sun);
		family = AF_UNIX;
	}
	else if (strncmp(address, "tcp:", 4) == 0)
	{
		struct sockaddr_in *sin = (struct sockaddr_in *) &ss;
		char		host[64];
		const char *colon = strrchr(address + 4, ':');

		if (colon == NULL || colon - (address + 4) >= (long) sizeof(host))
			elog(ERROR, "malformed container address \"%s\"", address);
		memcpy(host, address + 4, colon - (address + 4));
		host[colon - (address + 4)] = '\0';
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16) atoi(colon + 1));
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			elog(ERROR, "malformed container address \"%s\"", address);
		sslen = sizeof(*sin);
		family = AF_INET;
	}
	else
		elog(ERROR, "unknown container address \"%s\"", address);

	for (;;)
	{
		int			fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int			save_errno;

		if (fd < 0)
			ereport(ERROR, (errcode_for_socket_access(),
							errmsg("could not create socket: %m")));
		if (connect(fd, (struct sockaddr *) &ss, sslen) == 0)
			return fd;
		save_errno = errno;
		close(fd);
		if (save_errno != ENOENT && save_errno != ECONNREFUSED && save_errno != EAGAIN)
		{
			errno = save_errno;
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("could not connect to container at \"%s\": %m", address)));
		}
		if (TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline) <= 0)
		{
			errno = save_errno;
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("could not connect to container at \"%s\" within %d ms: %m",
							address, timeout_ms),
					 errhint("Check the container's logs.")));
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 backoff_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		backoff_ms = Min(backoff_ms * 2, 100);
	}
}

/*
 * plcoord_io
 *		Sends or receives exactly len bytes on a blocking container socket,
 *		in slices of 100 ms so that interrupts are served.
 */
static void
plcoord_io(int fd, bool sending, char *buf, size_t len, TimestampTz deadline)
{
	while (len > 0)
	{
		ssize_t		n;

		n = sending ? send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT) :
			recv(fd, buf, len, MSG_DONTWAIT);
		if (n > 0)
		{
			buf += n;
			len -= n;
			continue;
		}
		if (n == 0)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("the container closed the connection during the PING handshake")));
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("PING handshake with the container failed: %m")));
		if (!plcoord_wait_socket(fd, sending ? WL_SOCKET_WRITEABLE : WL_SOCKET_READABLE, deadline))
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("the container did not answer the PING handshake in time")));
	}
}

/*
 * plcoord_ping_fd
 *		PL/Container's PING handshake on a connected container socket: 'P',
 *		int32 little-endian length, the version bytes; the reply has the
 *		same layout and its version must start with ours.
 */
void
plcoord_ping_fd(int fd, int timeout_ms, char *version_out, size_t version_len)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	const char *version = PLCOORD_PLC_VERSION;
	uint32_t	n = strlen(version);
	char		msg[5 + 64];
	char		head[5];
	char		reply[256];
	uint32_t	rlen;

	msg[0] = 'P';
	msg[1] = (char) (n & 0xff);
	msg[2] = (char) ((n >> 8) & 0xff);
	msg[3] = (char) ((n >> 16) & 0xff);
	msg[4] = (char) ((n >> 24) & 0xff);
	memcpy(msg + 5, version, n);
	plcoord_io(fd, true, msg, 5 + n, deadline);

	plcoord_io(fd, false, head, 5, deadline);
	rlen = (uint8) head[1] | ((uint8) head[2] << 8) | ((uint8) head[3] << 16) |
		((uint32) (uint8) head[4] << 24);
	if (head[0] != 'P' || rlen >= sizeof(reply))
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("the container answered the PING with an unexpected message")));
	plcoord_io(fd, false, reply, rlen, deadline);
	reply[rlen] = '\0';
	if (strncmp(reply, version, n) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("version mismatch (require '%s' but get '%s')", version, reply)));
	strlcpy(version_out, reply, version_len);
}

/*
 * plcoord_adopt_container_fd
 *		Records a container socket the session connected to itself.
 */
void
plcoord_adopt_container_fd(const char *runtime_id, const char *container_id, int fd)
{
	plcoord_remember_held(runtime_id, container_id, fd);
}

/*
 * plcoord_forget_container
 *		Closes the session's connection to a runtime's container.
 */
void
plcoord_forget_container(const char *runtime_id)
{
	plcoord_forget_held(runtime_id);
}
