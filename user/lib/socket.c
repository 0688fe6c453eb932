// SPDX-License-Identifier: Apache-2.0
/*
 * The socket API: the Ossuary handshake on a connected stream fd, the
 * hand-over of the record layer to the kernel (TCP_ULP "ossuary"), and
 * the userspace record layer on the same fd when the module is absent.
 *
 * Built on the public filter API only; the two things it needs from the
 * core that the filter API does not give (the traffic secrets, and a
 * place to keep per-connection socket state) come through
 * socket_internal.h.
 *
 * Rules kept here:
 *  - The handshake never reads past its last record: it reads a 4-byte
 *    header, then exactly the body length, and only while the core still
 *    wants input. Whatever follows stays in the socket for the kernel.
 *  - EINTR is retried; partial writes are kept and finished later;
 *    EAGAIN becomes OSSUARY_ERR_WOULD_BLOCK.
 *  - No SIGPIPE: sends use MSG_NOSIGNAL.
 *  - Userspace mode, non-blocking fd: ossuary_write() returns the count
 *    of plaintext accepted; its ciphertext may still be buffered here.
 *    ossuary_write(conn, fd, NULL, 0) pushes that buffered ciphertext,
 *    and any control record the core owes (a KEY_UPDATE or RESET the
 *    application asked for), and returns 0 once none is left,
 *    OSSUARY_ERR_WOULD_BLOCK otherwise.
 *    ossuary_read() may hold opened plaintext the socket no longer
 *    shows as readable: an event loop reads until WOULD_BLOCK.
 *  - ossuary_offload() is for a fresh channel: once the userspace layer
 *    has read from or sealed onto the fd it is refused (OSSUARY_ERR_STATE),
 *    so the outcome never depends on how much a read happened to buffer.
 *  - ossuary_handshake_fd() on an O_NONBLOCK fd makes one step and
 *    returns OSSUARY_ERR_WOULD_BLOCK; ossuary_handshake_step() says what
 *    to poll for.
 *  - One connection is used by one thread at a time (reads and writes
 *    share the output queue: a read may have to send a reply).
 *  - Any stream fd works; sockets get MSG_NOSIGNAL/MSG_DONTWAIT, other
 *    fds (pipes) fall back to read/write and block if they are blocking.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <sodium.h>

#include "ossuary.h"
#include "uapi/linux/ossuary.h"
#include "socket_internal.h"
#include "tcp_ulp.h"

#define HDR_LEN OSSUARY_HEADER_LEN
/* Plaintext sealed per round of ossuary_write(): bounds what is buffered. */
#define WRITE_CHUNK (4 * OSSUARY_MAX_PLAINTEXT)
#define OUT_CAP (4 * OSSUARY_MAX_RECORD + 4096)
#define IN_CAP (2 * OSSUARY_MAX_RECORD)

struct ossuary_sock {
	int kernel;	/* offloaded: the fd seals and opens */
	int broken;	/* offload failed after the ULP attached: fd unusable */
	int used;	/* the userspace record layer has moved bytes */
	int rd_end;	/* latched read end: 0 none, 1 clean EOF, < 0 error */
	int wr_err;	/* latched transport write error */
	int shut_queued; /* DISCONNECT(0) is in out */
	int shut_done;	/* ... and the write side is shut down */
	int peer_judged; /* the peer's first record header was checked */

	/* Handshake: the one record being read, header then exact body. */
	int rec_bad;	/* header that cannot start a valid record */
	size_t rec_have, rec_fed, rec_need;
	uint8_t rec[OSSUARY_MAX_RECORD];

	/* Ciphertext produced but not yet written. */
	size_t out_off, out_len;
	uint8_t out[OUT_CAP];

	/* Userspace mode: ciphertext read but not yet opened. */
	size_t in_len;
	uint8_t in[IN_CAP];

	/* Userspace mode: plaintext opened but not yet delivered. */
	size_t plain_off, plain_len;
	uint8_t plain[OSSUARY_MAX_PLAINTEXT];
};

/* ---- state ---- */

static void sock_destroy(struct ossuary_sock *s)
{
	if (!s)
		return;
	sodium_memzero(s, sizeof(*s));
	free(s);
}

static void rec_reset(struct ossuary_sock *s)
{
	s->rec_have = 0;
	s->rec_fed = 0;
	s->rec_need = HDR_LEN;
	s->rec_bad = 0;
}

static struct ossuary_sock *sock_state(OssuaryConnection *conn, int *err)
{
	struct ossuary_sock *s = ossuary__sock_get(conn);
	int r;

	if (s)
		return s;
	s = calloc(1, sizeof(*s));
	if (!s) {
		*err = OSSUARY_ERR_NO_MEMORY;
		return NULL;
	}
	rec_reset(s);
	r = ossuary__sock_attach(conn, s, sock_destroy);
	if (r < 0) {
		free(s);
		*err = r;
		return NULL;
	}
	return s;
}

/* ---- transport ---- */

static int would_block(int e)
{
	return e == EAGAIN || e == EWOULDBLOCK;
}

static ssize_t io_send(int fd, const void *buf, size_t len, int dontwait)
{
	ssize_t n;

	for (;;) {
		n = send(fd, buf, len, MSG_NOSIGNAL | (dontwait ? MSG_DONTWAIT : 0));
		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		return n;
	}
}

static ssize_t io_recv(int fd, void *buf, size_t len, int dontwait)
{
	ssize_t n;

	for (;;) {
		n = recv(fd, buf, len, dontwait ? MSG_DONTWAIT : 0);
		if (n < 0 && errno == ENOTSOCK)
			n = read(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		return n;
	}
}

/*
 * A failed call on an offloaded socket. The module latches its receive
 * errors (kernel/rx.c): EBADMSG a record did not open, EPROTO a bad
 * header or value, ECONNRESET the peer's DISCONNECT(reason != 0) or
 * RESET, EPIPE a FIN without DISCONNECT(0). errno is left as it was.
 */
static int errno_code(int rx)
{
	if (would_block(errno))
		return OSSUARY_ERR_WOULD_BLOCK;
	if (!rx)
		return OSSUARY_ERR_IO;
	switch (errno) {
	case EBADMSG:
		return OSSUARY_ERR_DECRYPT;
	case EPROTO:
		return OSSUARY_ERR_PROTOCOL;
	case ECONNRESET:
		return OSSUARY_ERR_DISCONNECTED;
	case EPIPE:
		return OSSUARY_ERR_TRUNCATED;
	default:
		return OSSUARY_ERR_IO;
	}
}

/* ---- the output queue ---- */

static size_t out_pending(const struct ossuary_sock *s)
{
	return s->out_len - s->out_off;
}

/* Room at the tail of out, compacting first. */
static uint8_t *out_tail(struct ossuary_sock *s, size_t *room)
{
	if (s->out_off) {
		size_t n = out_pending(s);

		memmove(s->out, s->out + s->out_off, n);
		s->out_off = 0;
		s->out_len = n;
	}
	*room = sizeof(s->out) - s->out_len;
	return s->out + s->out_len;
}

/* Write out the queue. OSSUARY_OK once empty. */
static int out_drain(struct ossuary_sock *s, int fd, int dontwait)
{
	while (out_pending(s)) {
		ssize_t n = io_send(fd, s->out + s->out_off, out_pending(s),
				    dontwait);

		if (n < 0)
			return would_block(errno) ? OSSUARY_ERR_WOULD_BLOCK
						  : OSSUARY_ERR_IO;
		if (n == 0) {
			errno = EIO;
			return OSSUARY_ERR_IO;
		}
		s->out_off += (size_t)n;
	}
	s->out_off = 0;
	s->out_len = 0;
	return OSSUARY_OK;
}

/* Queue what the core owes the peer (replies, RESET, DISCONNECT). */
static void out_take_owed(OssuaryConnection *conn, struct ossuary_sock *s)
{
	size_t room;
	uint8_t *p = out_tail(s, &room);
	ssize_t n;

	if (room == 0)
		return;
	n = ossuary_flush(conn, p, room);
	if (n > 0 && (size_t)n <= room)
		s->out_len += (size_t)n;
}

/* Best effort, never blocking: send what the core owes now. */
static void out_pump(OssuaryConnection *conn, struct ossuary_sock *s, int fd)
{
	int r;

	out_take_owed(conn, s);
	r = out_drain(s, fd, 1);
	if (r < 0 && r != OSSUARY_ERR_WOULD_BLOCK && !s->wr_err)
		s->wr_err = r;
}

/* ---- handshake ---- */

static int hs_failed(int d)
{
	return d < 0 && d != OSSUARY_ERR_UNTRUSTED_SERVER;
}

/* The handshake failed: push out what the core owes (DISCONNECT), once. */
static int hs_fail(OssuaryConnection *conn, struct ossuary_sock *s, int fd,
		   int err)
{
	size_t room, len;
	uint8_t *p = out_tail(s, &room);

	len = room;
	if (ossuary_send_handshake(conn, p, &len) >= 0 && len <= room)
		s->out_len += len;
	out_take_owed(conn, s);
	(void)out_drain(s, fd, 1);
	rec_reset(s);
	return err;
}

/*
 * Read more of the current handshake record: the header, then exactly
 * the body. Bytes the userspace layer already holds (after a RESET)
 * come first. 1 on progress, 0 at end of file, or a negative code.
 */
static int hs_read(struct ossuary_sock *s, int fd)
{
	size_t want = s->rec_need - s->rec_have;
	ssize_t n;

	if (s->in_len) {
		n = (ssize_t)(want < s->in_len ? want : s->in_len);
		memcpy(s->rec + s->rec_have, s->in, (size_t)n);
		memmove(s->in, s->in + n, s->in_len - (size_t)n);
		s->in_len -= (size_t)n;
	} else {
		n = io_recv(fd, s->rec + s->rec_have, want, 1);
		if (n < 0)
			return would_block(errno) ? OSSUARY_ERR_WOULD_BLOCK
						  : OSSUARY_ERR_IO;
		if (n == 0)
			return 0;
	}
	s->rec_have += (size_t)n;
	if (s->rec_need == HDR_LEN && s->rec_have == HDR_LEN) {
		size_t body = ((size_t)s->rec[2] << 8) | s->rec[3];

		/* Checked from the header alone: never buffer a bad body. */
		if (s->rec[0] != OSSUARY_WIRE_VERSION || body > OSSUARY_MAX_BODY)
			s->rec_bad = 1;
		else
			s->rec_need = HDR_LEN + body;
	}
	return 1;
}

static int hs_step(OssuaryConnection *conn, struct ossuary_sock *s, int fd,
		   short *ev)
{
	for (;;) {
		size_t room, len;
		uint8_t *p;
		int d, r;

		if (out_pending(s)) {
			r = out_drain(s, fd, 1);
			if (r == OSSUARY_ERR_WOULD_BLOCK)
				*ev = POLLOUT;
			if (r < 0)
				return r;
		}

		d = ossuary_handshake_done(conn);
		if (hs_failed(d))
			return hs_fail(conn, s, fd, d);
		if (d == OSSUARY_ERR_UNTRUSTED_SERVER)
			return d;

		/* What the core wants to send next (even when done: the
		 * client's last record may be owed after it completes). */
		p = out_tail(s, &room);
		len = room;
		r = ossuary_send_handshake(conn, p, &len);
		if (r >= 0 && len > 0 && len <= room) {
			s->out_len += len;
			continue;
		}
		if (r < 0) {
			d = ossuary_handshake_done(conn);
			if (hs_failed(d))
				return hs_fail(conn, s, fd, d);
		}
		if (d == 1)
			return OSSUARY_OK;

		/* Give the core the bytes of the record read so far. */
		if (s->rec_fed < s->rec_have) {
			len = s->rec_have - s->rec_fed;
			r = ossuary_recv_handshake(conn, s->rec + s->rec_fed,
						   &len);
			if (r < 0 && r != OSSUARY_ERR_WOULD_BLOCK &&
			    r != OSSUARY_ERR_UNTRUSTED_SERVER) {
				d = ossuary_handshake_done(conn);
				return hs_fail(conn, s, fd, hs_failed(d) ? d : r);
			}
			if (len > s->rec_have - s->rec_fed)
				len = 0;
			s->rec_fed += len;
			if (s->rec_bad)
				return hs_fail(conn, s, fd, OSSUARY_ERR_PROTOCOL);
			if (s->rec_fed == s->rec_have && s->rec_have == s->rec_need)
				rec_reset(s);
			if (len > 0 || r == OSSUARY_ERR_UNTRUSTED_SERVER)
				continue;
		}
		if (s->rec_bad)
			return hs_fail(conn, s, fd, OSSUARY_ERR_PROTOCOL);
		if (s->rec_have == s->rec_need && s->rec_have > 0)
			/* A whole record the core neither took nor refused. */
			return hs_fail(conn, s, fd, OSSUARY_ERR_STATE);

		r = hs_read(s, fd);
		if (r == OSSUARY_ERR_WOULD_BLOCK) {
			*ev = POLLIN;
			return r;
		}
		if (r < 0)
			return r;
		/*
		 * The peer's very first bytes on this fd: something that is
		 * no Ossuary peer at all (an HTTP server, an echo service)
		 * shows from its first byte on, long before a whole header.
		 */
		if (r > 0 && !s->peer_judged && !s->used) {
			r = ossuary__peer_check(conn, s->rec, s->rec_have);
			if (r < 0)
				return hs_fail(conn, s, fd, r);
			s->peer_judged = s->rec_have >= HDR_LEN;
			r = 1;
		}
		if (r == 0) {
			int e = ossuary_recv_eof(conn);

			d = ossuary_handshake_done(conn);
			if (hs_failed(d))
				e = d;
			else if (e >= 0 || e == OSSUARY_ERR_EOF)
				e = OSSUARY_ERR_TRUNCATED;
			return hs_fail(conn, s, fd, e);
		}
	}
}

int ossuary_handshake_step(OssuaryConnection *conn, int fd, short *wait_events)
{
	struct ossuary_sock *s;
	short ev = 0;
	int err = OSSUARY_ERR_INVALID, r;

	if (wait_events)
		*wait_events = 0;
	if (!conn || fd < 0)
		return OSSUARY_ERR_INVALID;
	s = sock_state(conn, &err);
	if (!s)
		return err;
	if (s->kernel || s->broken)
		return ossuary_handshake_done(conn) == 1 ? OSSUARY_OK
							 : OSSUARY_ERR_STATE;
	r = hs_step(conn, s, fd, &ev);
	if (wait_events)
		*wait_events = ev;
	return r;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ossuary_handshake_fd(OssuaryConnection *conn, int fd, int timeout_ms)
{
	int64_t deadline = 0;
	int fl, r;

	if (!conn || fd < 0)
		return OSSUARY_ERR_INVALID;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return OSSUARY_ERR_IO;
	if (timeout_ms >= 0)
		deadline = now_ms() + timeout_ms;
	for (;;) {
		struct pollfd pfd;
		short ev = 0;
		int wait = -1;

		r = ossuary_handshake_step(conn, fd, &ev);
		/* A non-blocking fd is the caller's to poll. */
		if (r != OSSUARY_ERR_WOULD_BLOCK || (fl & O_NONBLOCK))
			return r;
		for (;;) {
			if (timeout_ms >= 0) {
				int64_t left = deadline - now_ms();

				if (left <= 0)
					return OSSUARY_ERR_TIMEOUT;
				wait = left > INT_MAX ? INT_MAX : (int)left;
			}
			pfd.fd = fd;
			pfd.events = ev;
			pfd.revents = 0;
			r = poll(&pfd, 1, wait);
			if (r > 0)
				break;
			if (r < 0 && errno != EINTR)
				return OSSUARY_ERR_IO;
		}
	}
}

/* ---- offload ---- */

static int install_dir(int fd, int optname, const uint8_t secret[32],
		       uint64_t seq)
{
	struct ossuary_crypto_info info;
	int r, e;

	memset(&info, 0, sizeof(info));
	info.version = OSSUARY_VERSION_2;
	info.cipher = OSSUARY_CIPHER_CHACHA20_POLY1305;
	info.seq = seq;
	memcpy(info.secret, secret, sizeof(info.secret));
	r = setsockopt(fd, SOL_OSSUARY, optname, &info, sizeof(info));
	e = errno;
	sodium_memzero(&info, sizeof(info));
	errno = e;
	return r;
}

/* 0 for a TCP socket (IPv4 or IPv6), else the errno that says why not. */
static int fd_is_tcp(int fd)
{
	int domain = 0, proto = 0;
	socklen_t len = sizeof(domain);

	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
		return errno == ENOTSOCK ? ENOTSOCK : 0; /* unknown: let TCP_ULP say */
	len = sizeof(proto);
	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) < 0)
		return 0;
	if ((domain != AF_INET && domain != AF_INET6) || proto != IPPROTO_TCP)
		return EOPNOTSUPP;
	return 0;
}

int ossuary_offload(OssuaryConnection *conn, int fd, unsigned int flags)
{
	static const char ulp[] = "ossuary";
	uint8_t tx[OSSUARY_SECRET_LEN], rx[OSSUARY_SECRET_LEN];
	uint64_t tx_seq = 0, rx_seq = 0;
	struct ossuary_sock *s;
	int err = OSSUARY_ERR_INVALID, r, e;

	if (!conn || fd < 0 || (flags & ~(unsigned int)OSSUARY_OFFLOAD_FALLBACK))
		return OSSUARY_ERR_INVALID;
	s = sock_state(conn, &err);
	if (!s)
		return err;
	if (s->kernel)
		return OSSUARY_MODE_KERNEL;
	if (s->broken || ossuary_handshake_done(conn) != 1)
		return OSSUARY_ERR_STATE;
	/* Once the userspace layer has read, the kernel would miss bytes. */
	if (s->used || s->in_len || s->plain_len || s->rec_have)
		return OSSUARY_ERR_STATE;
	/* Anything the core still owes goes out first, as userspace sealed it. */
	out_take_owed(conn, s);
	r = out_drain(s, fd, 0);
	if (r < 0)
		return r;

	/*
	 * The kernel record layer is a TCP ULP: on any other stream (a unix
	 * socketpair, a pipe) it cannot be had, module or not, and that is
	 * what FALLBACK is for. errno says which (ENOTSOCK, EOPNOTSUPP).
	 */
	e = fd_is_tcp(fd);
	if (e) {
		errno = e;
		return (flags & OSSUARY_OFFLOAD_FALLBACK) ? OSSUARY_MODE_USERSPACE
							 : OSSUARY_ERR_NO_KERNEL;
	}
	r = ossuary__export_traffic(conn, tx, &tx_seq, rx, &rx_seq);
	if (r < 0)
		goto out;
	if (setsockopt(fd, SOL_TCP, TCP_ULP, ulp, sizeof(ulp)) < 0) {
		e = errno;
		if (e == ENOENT || e == ENOPROTOOPT)
			r = (flags & OSSUARY_OFFLOAD_FALLBACK) ? OSSUARY_MODE_USERSPACE
							       : OSSUARY_ERR_NO_KERNEL;
		else
			r = OSSUARY_ERR_IO;
		errno = e;
		goto out;
	}
	/* From here the ULP owns the socket: a failure leaves it unusable. */
	if (install_dir(fd, OSSUARY_TX, tx, tx_seq) < 0 ||
	    install_dir(fd, OSSUARY_RX, rx, rx_seq) < 0) {
		s->broken = 1;
		r = OSSUARY_ERR_IO;
		goto out;
	}
	s->kernel = 1;
	r = OSSUARY_MODE_KERNEL;
out:
	e = errno;
	sodium_memzero(tx, sizeof(tx));
	sodium_memzero(rx, sizeof(rx));
	errno = e;
	return r;
}

int ossuary_mode(const OssuaryConnection *conn)
{
	const struct ossuary_sock *s;
	int d;

	if (!conn)
		return OSSUARY_ERR_INVALID;
	s = ossuary__sock_get(conn);
	if (s && s->kernel)
		return OSSUARY_MODE_KERNEL;
	if (s && s->broken)
		return OSSUARY_ERR_STATE;
	d = ossuary_handshake_done(conn);
	if (d == 1)
		return OSSUARY_MODE_USERSPACE;
	/* A failed connection says why; a paused one is still handshaking. */
	return d < 0 && d != OSSUARY_ERR_UNTRUSTED_SERVER ? d
							 : OSSUARY_MODE_HANDSHAKE;
}

/* ---- data ---- */

ssize_t ossuary_write(OssuaryConnection *conn, int fd, const void *buf,
		      size_t len)
{
	const uint8_t *in = buf;
	struct ossuary_sock *s;
	size_t done = 0;
	int err = OSSUARY_ERR_INVALID, r;

	if (!conn || fd < 0 || (!buf && len))
		return OSSUARY_ERR_INVALID;
	s = sock_state(conn, &err);
	if (!s)
		return err;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	if (s->kernel) {
		ssize_t n = io_send(fd, buf, len, 0);

		return n < 0 ? errno_code(0) : n;
	}
	if (s->broken)
		return OSSUARY_ERR_STATE;
	if (s->wr_err)
		return s->wr_err;
	if (s->shut_queued && len)
		return OSSUARY_ERR_STATE;

	if (len == 0)
		out_take_owed(conn, s); /* e.g. a KEY_UPDATE or RESET just queued */
	r = out_drain(s, fd, 0);
	if (r < 0) {
		if (r != OSSUARY_ERR_WOULD_BLOCK)
			s->wr_err = r;
		return r;
	}
	if (len == 0)
		return 0;
	while (done < len) {
		size_t take = len - done, room, olen;
		uint8_t *p;
		ssize_t n;

		/* out is empty here: owed control records go first. */
		out_take_owed(conn, s);
		p = out_tail(s, &room);
		if (take > WRITE_CHUNK)
			take = WRITE_CHUNK;
		olen = room;
		n = ossuary_send_data(conn, in + done, take, p, &olen);
		if (n < 0 || (size_t)n > take || olen > room) {
			if (out_pending(s))
				(void)out_drain(s, fd, 0);
			if (done)
				return (ssize_t)done;
			return n < 0 ? n : OSSUARY_ERR_STATE;
		}
		s->out_len += olen;
		done += (size_t)n;
		s->used = 1;
		r = out_drain(s, fd, 0);
		if (r == OSSUARY_ERR_WOULD_BLOCK)
			return (ssize_t)done; /* the rest stays buffered */
		if (r < 0) {
			s->wr_err = r;
			return done ? (ssize_t)done : r;
		}
		if (n == 0)
			return done ? (ssize_t)done : OSSUARY_ERR_STATE;
	}
	return (ssize_t)done;
}

static ssize_t plain_copy(struct ossuary_sock *s, void *buf, size_t len)
{
	size_t n = s->plain_len - s->plain_off;

	if (n > len)
		n = len;
	memcpy(buf, s->plain + s->plain_off, n);
	s->plain_off += n;
	if (s->plain_off == s->plain_len) {
		sodium_memzero(s->plain, s->plain_len);
		s->plain_off = 0;
		s->plain_len = 0;
	}
	return (ssize_t)n;
}

ssize_t ossuary_read(OssuaryConnection *conn, int fd, void *buf, size_t len)
{
	struct ossuary_sock *s;
	int err = OSSUARY_ERR_INVALID, d;

	if (!conn || fd < 0 || (!buf && len))
		return OSSUARY_ERR_INVALID;
	s = sock_state(conn, &err);
	if (!s)
		return err;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	if (s->kernel) {
		ssize_t n = io_recv(fd, buf, len, 0);

		return n < 0 ? errno_code(1) : n;
	}
	if (s->broken)
		return OSSUARY_ERR_STATE;
	if (s->plain_len)
		return plain_copy(s, buf, len);
	if (s->rd_end)
		return s->rd_end > 0 ? 0 : s->rd_end;
	d = ossuary_handshake_done(conn);
	if (d == 0 || d == OSSUARY_ERR_UNTRUSTED_SERVER) {
		/* Not established: the core says whether that is a reset. */
		uint8_t z;
		size_t il = 0, ol = sizeof(z);
		ssize_t n = ossuary_recv_data(conn, NULL, &il, &z, &ol);

		return n < 0 ? n : OSSUARY_ERR_STATE;
	}
	if (d != 1)
		return d;
	if (len == 0)
		return 0;
	for (;;) {
		ssize_t n;

		if (s->in_len) {
			int direct = len >= OSSUARY_MAX_PLAINTEXT;
			uint8_t *o = direct ? buf : s->plain;
			size_t ilen = s->in_len;
			size_t olen = direct ? len : sizeof(s->plain);
			size_t ocap = olen;

			n = ossuary_recv_data(conn, s->in, &ilen, o, &olen);
			if (ilen > s->in_len)
				ilen = 0;
			memmove(s->in, s->in + ilen, s->in_len - ilen);
			s->in_len -= ilen;
			out_pump(conn, s, fd);
			if (n > 0) {
				if ((size_t)n > ocap)
					return OSSUARY_ERR_STATE;
				if (direct)
					return n;
				s->plain_off = 0;
				s->plain_len = (size_t)n;
				return plain_copy(s, buf, len);
			}
			if (n == OSSUARY_ERR_EOF) {
				s->rd_end = 1;
				return 0;
			}
			if (n < 0 && n != OSSUARY_ERR_WOULD_BLOCK)
				/* The core keeps its own state (a RESET may
				 * still recover the channel): no latch here. */
				return n;
			if (n == 0 && ilen > 0)
				continue; /* a control record, or empty DATA */
		}
		if (s->in_len == sizeof(s->in))
			return OSSUARY_ERR_PROTOCOL; /* core took nothing */
		n = io_recv(fd, s->in + s->in_len, sizeof(s->in) - s->in_len, 0);
		if (n < 0) {
			if (would_block(errno))
				return OSSUARY_ERR_WOULD_BLOCK;
			s->rd_end = OSSUARY_ERR_IO;
			return s->rd_end;
		}
		s->used = 1;
		if (n == 0) {
			int e = ossuary_recv_eof(conn);

			out_pump(conn, s, fd);
			if (e == OSSUARY_OK || e == OSSUARY_ERR_EOF) {
				s->rd_end = 1;
				return 0;
			}
			s->rd_end = e < 0 && e != OSSUARY_ERR_WOULD_BLOCK
					    ? e : OSSUARY_ERR_TRUNCATED;
			return s->rd_end;
		}
		s->in_len += (size_t)n;
	}
}

/* ---- closing ---- */

static int shut_wr(int fd)
{
	if (shutdown(fd, SHUT_WR) < 0 && errno != ENOTSOCK && errno != ENOTCONN)
		return OSSUARY_ERR_IO;
	return OSSUARY_OK;
}

int ossuary_shutdown(OssuaryConnection *conn, int fd)
{
	struct ossuary_sock *s;
	int err = OSSUARY_ERR_INVALID, r;

	if (!conn || fd < 0)
		return OSSUARY_ERR_INVALID;
	s = sock_state(conn, &err);
	if (!s)
		return err;
	if (s->shut_done)
		return OSSUARY_OK;
	if (s->kernel) {
		/*
		 * The module seals DISCONNECT(0) ahead of the FIN itself; when
		 * it cannot queue it within SO_SNDTIMEO the call fails with
		 * EAGAIN and is retried.
		 */
		do
			r = shutdown(fd, SHUT_WR);
		while (r < 0 && errno == EINTR);
		if (r < 0)
			return errno_code(0);
		s->shut_done = 1;
		return OSSUARY_OK;
	}
	if (s->broken)
		return OSSUARY_ERR_STATE;
	if (!s->shut_queued) {
		if (ossuary_handshake_done(conn) != 1)
			return OSSUARY_ERR_STATE;
		if (s->wr_err)
			return s->wr_err;
		/* Queue it behind any buffered data, then push both. */
		out_take_owed(conn, s);
		r = ossuary_disconnect(conn, OSSUARY_DISCONNECT_CLEAN);
		if (r < 0)
			return r;
		out_take_owed(conn, s);
		s->shut_queued = 1;
	}
	r = out_drain(s, fd, 0);
	if (r < 0) {
		if (r != OSSUARY_ERR_WOULD_BLOCK)
			s->wr_err = r;
		return r;
	}
	r = shut_wr(fd);
	if (r == OSSUARY_OK)
		s->shut_done = 1;
	return r;
}
