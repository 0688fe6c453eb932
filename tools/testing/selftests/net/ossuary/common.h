/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the ossuary selftests: loopback socket pairs, ULP
 * attach, key install, and I/O with deadlines so that no test can hang.
 * Everything is static: each test program includes this once.
 */
#ifndef OSSUARY_SELFTEST_COMMON_H
#define OSSUARY_SELFTEST_COMMON_H

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "uapi/linux/ossuary.h"

#ifndef TCP_ULP
#define TCP_ULP 31
#endif
#ifndef SOL_TCP
#define SOL_TCP 6
#endif

#define OSS_ULP_NAME	"ossuary"
#define OSS_IO_TIMEOUT_S	5	/* SO_RCVTIMEO / SO_SNDTIMEO on every socket */

/*
 * The errno a read returns when the peer's FIN arrives without a
 * DISCONNECT(0) before it, as the uapi header documents it. Without the
 * macro the truncation tests fail and say so: an undocumented errno is a
 * bug of the contract.
 */
#ifdef OSSUARY_TRUNCATED_ERRNO
#define OSS_TRUNC_ERRNO OSSUARY_TRUNCATED_ERRNO
#else
#define OSS_TRUNC_ERRNO (-1)	/* not documented in the uapi header */
#endif

/*
 * The errno of a protocol error (bad version, unknown type, illegal length
 * for the type, bad value, record where none may come), detected from the
 * header or the opened record. The module documents EPROTO (kernel/rx.c);
 * a record that fails to open is EBADMSG, a peer's error DISCONNECT or
 * RESET is ECONNRESET.
 */
#ifdef OSSUARY_PROTO_ERRNO
#define OSS_PROTO_ERRNO OSSUARY_PROTO_ERRNO
#else
#define OSS_PROTO_ERRNO EPROTO
#endif

static inline const char *oss_family_name(int family)
{
	return family == AF_INET ? "IPv4" : "IPv6";
}

static inline void oss_set_timeouts(int fd, int seconds)
{
	struct timeval tv = { .tv_sec = seconds };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/*
 * Connected TCP pair over loopback. *client is the connecting end,
 * *server the accepted one. mapped: an AF_INET6 socket talking to
 * ::ffff:127.0.0.1 (IPv4 under an IPv6 socket). Returns 0 or -errno.
 */
/*
 * A connected loopback pair; rcvbuf, when not 0, is both ends' SO_RCVBUF
 * from before the handshake, so that the window TCP offers is that small
 * from the start.
 */
static inline int oss_tcp_pair_rcvbuf(int family, bool mapped, int rcvbuf,
				      int *client, int *server)
{
	struct sockaddr_storage ss = {};
	socklen_t len;
	int lfd, cfd, sfd, one = 1, err;

	*client = *server = -1;
	lfd = socket(mapped ? AF_INET6 : family, SOCK_STREAM, 0);
	if (lfd < 0)
		return -errno;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (rcvbuf)
		setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (family == AF_INET) {
		struct sockaddr_in *a = (void *)&ss;

		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (void *)&ss;

		a->sin6_family = AF_INET6;
		if (mapped)
			inet_pton(AF_INET6, "::ffff:127.0.0.1", &a->sin6_addr);
		else
			a->sin6_addr = in6addr_loopback;
		len = sizeof(*a);
	}
	if (mapped) {
		/* listen on :: (dual stack) so that the mapped peer reaches it */
		struct sockaddr_in6 any = { .sin6_family = AF_INET6,
					    .sin6_addr = IN6ADDR_ANY_INIT };
		int zero = 0;

		setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
		if (bind(lfd, (void *)&any, sizeof(any)))
			goto err_l;
	} else if (bind(lfd, (void *)&ss, len)) {
		goto err_l;
	}
	if (listen(lfd, 8))
		goto err_l;
	{
		struct sockaddr_storage bound;
		socklen_t blen = sizeof(bound);

		if (getsockname(lfd, (void *)&bound, &blen))
			goto err_l;
		if (family == AF_INET)
			((struct sockaddr_in *)&ss)->sin_port =
				((struct sockaddr_in *)&bound)->sin_port;
		else
			((struct sockaddr_in6 *)&ss)->sin6_port =
				((struct sockaddr_in6 *)&bound)->sin6_port;
	}
	cfd = socket(mapped ? AF_INET6 : family, SOCK_STREAM, 0);
	if (cfd < 0)
		goto err_l;
	if (rcvbuf)
		setsockopt(cfd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (connect(cfd, (void *)&ss, len)) {
		err = -errno;
		close(cfd);
		close(lfd);
		return err;
	}
	sfd = accept(lfd, NULL, NULL);
	if (sfd < 0) {
		err = -errno;
		close(cfd);
		close(lfd);
		return err;
	}
	close(lfd);
	oss_set_timeouts(cfd, OSS_IO_TIMEOUT_S);
	oss_set_timeouts(sfd, OSS_IO_TIMEOUT_S);
	*client = cfd;
	*server = sfd;
	return 0;
err_l:
	err = -errno;
	close(lfd);
	return err;
}

static inline int oss_tcp_pair_ex(int family, bool mapped, int *client,
				  int *server)
{
	return oss_tcp_pair_rcvbuf(family, mapped, 0, client, server);
}

static inline int oss_tcp_pair(int family, int *client, int *server)
{
	return oss_tcp_pair_ex(family, false, client, server);
}

/* setsockopt(TCP_ULP, "ossuary"): 0 or -errno */
static inline int oss_attach(int fd)
{
	if (setsockopt(fd, SOL_TCP, TCP_ULP, OSS_ULP_NAME, sizeof(OSS_ULP_NAME)))
		return -errno;
	return 0;
}

/* Is "ossuary" listed in tcp_available_ulp? 1 yes, 0 no, -1 unreadable */
static inline int oss_ulp_listed(void)
{
	char buf[512], *tok, *save;
	size_t n;
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r");

	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	for (tok = strtok_r(buf, " \t\n", &save); tok;
	     tok = strtok_r(NULL, " \t\n", &save))
		if (!strcmp(tok, OSS_ULP_NAME))
			return 1;
	return 0;
}

static inline void oss_crypto_info(struct ossuary_crypto_info *ci,
				   const uint8_t secret[32], uint64_t seq)
{
	memset(ci, 0, sizeof(*ci));
	ci->version = OSSUARY_VERSION_2;
	ci->cipher = OSSUARY_CIPHER_CHACHA20_POLY1305;
	ci->seq = seq;
	memcpy(ci->secret, secret, OSSUARY_SECRET_LEN);
}

/* Install one direction (OSSUARY_TX or OSSUARY_RX): 0 or -errno */
static inline int oss_install(int fd, int dir, const uint8_t secret[32],
			      uint64_t seq)
{
	struct ossuary_crypto_info ci;
	int ret;

	oss_crypto_info(&ci, secret, seq);
	ret = setsockopt(fd, SOL_OSSUARY, dir, &ci, sizeof(ci));
	memset(&ci, 0, sizeof(ci));
	return ret ? -errno : 0;
}

static inline int oss_state(int fd, int dir, struct ossuary_dir_state *st)
{
	socklen_t len = sizeof(*st);

	memset(st, 0, sizeof(*st));
	if (getsockopt(fd, SOL_OSSUARY, dir, st, &len))
		return -errno;
	return len == sizeof(*st) ? 0 : -EMSGSIZE;
}

/* Deterministic test secrets: byte i = base + i */
static inline void oss_secret(uint8_t s[32], uint8_t base)
{
	for (int i = 0; i < 32; i++)
		s[i] = (uint8_t)(base + i);
}

/* The fixtures' traffic secrets: A seals client -> server, B the reverse */
static inline const uint8_t *oss_secret_a(void)
{
	static uint8_t s[32];

	oss_secret(s, 0xa0);
	return s;
}

static inline const uint8_t *oss_secret_b(void)
{
	static uint8_t s[32];

	oss_secret(s, 0x50);
	return s;
}

static inline void oss_fill(void *buf, size_t len, unsigned int seed)
{
	uint8_t *p = buf;
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

/* Write all of buf (blocking socket); returns len or -errno */
static inline ssize_t oss_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t done = 0;

	while (done < len) {
		ssize_t n = send(fd, p + done, len - done, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += n;
	}
	return done;
}

/*
 * Read exactly len bytes, or until EOF/error. Returns bytes read; on error
 * with nothing read returns -errno. *err gets the errno that stopped a
 * short read (0 for EOF).
 */
static inline ssize_t oss_read_full(int fd, void *buf, size_t len, int *err)
{
	uint8_t *p = buf;
	size_t done = 0;

	if (err)
		*err = 0;
	while (done < len) {
		ssize_t n = recv(fd, p + done, len - done, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (err)
				*err = errno;
			return done ? (ssize_t)done : -errno;
		}
		if (n == 0)
			break;
		done += n;
	}
	return done;
}

/* Wait (poll) for readability up to ms milliseconds: revents or 0 */
static inline int oss_wait_in(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, ms) <= 0)
		return 0;
	return p.revents;
}

static inline void oss_msleep(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/*
 * Wait (up to ms) until TCP's peer acknowledged every byte written on
 * fd: they are all in the peer's receive queue then.  0, or -errno.
 */
static inline int oss_wait_acked(int fd, int ms)
{
	for (int i = 0; i < ms; i++) {
		int n = -1;

		if (ioctl(fd, SIOCOUTQ, &n))
			return -errno;
		if (!n)
			return 0;
		oss_msleep(1);
	}
	return -ETIMEDOUT;
}

static inline int oss_set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -1;
	return fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

static inline int oss_nodelay(int fd)
{
	int one = 1;

	return setsockopt(fd, SOL_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Wait for a child; returns its exit status (0..255) or 255 on signal */
static inline int oss_wait_child(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		return 255;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 255;
}

static inline void oss_close_pair(int *a, int *b)
{
	if (*a >= 0)
		close(*a);
	if (*b >= 0)
		close(*b);
	*a = *b = -1;
}

/*
 * The `ossuary` fixture: a loopback pair, both ends offloaded. *fd (the
 * client) seals with secret A and opens with B, *cfd (the server) the
 * reverse. Returns 0, or -errno with *step naming the call that failed
 * and both descriptors closed (-1).
 */
static inline int oss_offloaded_pair(int family, int *fd, int *cfd,
				     const char **step)
{
	int ret;

	*step = "loopback pair";
	ret = oss_tcp_pair(family, fd, cfd);
	if (ret)
		return ret;
	*step = "attach client";
	ret = oss_attach(*fd);
	if (!ret) {
		*step = "attach server";
		ret = oss_attach(*cfd);
	}
	if (!ret) {
		*step = "client TX";
		ret = oss_install(*fd, OSSUARY_TX, oss_secret_a(), 0);
	}
	if (!ret) {
		*step = "server RX";
		ret = oss_install(*cfd, OSSUARY_RX, oss_secret_a(), 0);
	}
	if (!ret) {
		*step = "server TX";
		ret = oss_install(*cfd, OSSUARY_TX, oss_secret_b(), 0);
	}
	if (!ret) {
		*step = "client RX";
		ret = oss_install(*fd, OSSUARY_RX, oss_secret_b(), 0);
	}
	if (ret)
		oss_close_pair(fd, cfd);
	return ret;
}

/*
 * Nagle off on both ends, then the ULP and the test keys on *kfd; on
 * failure both are closed and *step names what failed.
 */
static inline int oss_offload_pair(int *kfd, int *pfd, const char **step)
{
	int ret;

	oss_nodelay(*pfd);
	oss_nodelay(*kfd);
	*step = "attach";
	ret = oss_attach(*kfd);
	if (!ret) {
		*step = "TX";
		ret = oss_install(*kfd, OSSUARY_TX, oss_secret_a(), 0);
	}
	if (!ret) {
		*step = "RX";
		ret = oss_install(*kfd, OSSUARY_RX, oss_secret_b(), 0);
	}
	if (ret)
		oss_close_pair(kfd, pfd);
	return ret;
}

/*
 * The `raw` fixture: *kfd offloaded (TX secret A, RX secret B), *pfd a
 * plain TCP socket for the test's own record layer (wire.c); both with
 * TCP_NODELAY and 3 s timeouts. Returns as oss_offloaded_pair().
 */
static inline int oss_raw_pair(int family, int *kfd, int *pfd,
			       const char **step)
{
	int ret;

	*step = "loopback pair";
	ret = oss_tcp_pair(family, kfd, pfd);
	if (ret)
		return ret;
	oss_set_timeouts(*kfd, 3);
	oss_set_timeouts(*pfd, 3);
	return oss_offload_pair(kfd, pfd, step);
}

/*
 * The value of one "NAME VALUE" or "NAME: VALUE ..." line of a /proc
 * file (ossuary_stat, meminfo), by exact name; -1 if absent.
 */
static inline long long oss_proc_value(const char *path, const char *want)
{
	char line[256], name[128];
	long long v, found = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%127[^: \t]%*[: \t]%lld", name, &v) == 2 &&
		    !strcmp(name, want))
			found = v;
	fclose(f);
	return found;
}

/* One counter of /proc/net/ossuary_stat by exact name; -1 if absent */
static inline long long oss_stat_get(const char *want)
{
	return oss_proc_value("/proc/net/ossuary_stat", want);
}


/*
 * An unlinked file of len bytes under dir (/tmp: tmpfs in the test VM)
 * filled by oss_fill(seed). Returns the descriptor, or -errno.
 */
static inline int oss_tmpfile(const char *dir, size_t len, unsigned int seed)
{
	char path[256];
	uint8_t *buf = malloc(65536);
	size_t done = 0;
	int fd, err;

	if (!buf)
		return -ENOMEM;
	snprintf(path, sizeof(path), "%s/ossuary-st-XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0) {
		err = -errno;
		free(buf);
		return err;
	}
	unlink(path);
	/* the same bytes as oss_fill(seed) over the whole length */
	{
		uint32_t x = seed * 2654435761u + 1;

		while (done < len) {
			size_t n = len - done < 65536 ? len - done : 65536;

			for (size_t i = 0; i < n; i++) {
				x ^= x << 13;
				x ^= x >> 17;
				x ^= x << 5;
				buf[i] = (uint8_t)x;
			}
			if (pwrite(fd, buf, n, done) != (ssize_t)n) {
				err = errno ? -errno : -EIO;
				close(fd);
				free(buf);
				return err;
			}
			done += n;
		}
	}
	free(buf);
	return fd;
}

/*
 * sendfile() until count bytes went from *off or the file ended (a 0
 * return). Returns the bytes sent, or -errno if nothing was.
 */
static inline ssize_t oss_sendfile_all(int sock, int file, off_t *off,
				       size_t count)
{
	size_t done = 0;

	while (done < count) {
		ssize_t n = sendfile(sock, file, off, count - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return done ? (ssize_t)done : -errno;
		}
		if (n == 0)
			break;
		done += n;
	}
	return done;
}

/* Milliseconds on CLOCK_MONOTONIC */
static inline long long oss_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

#endif /* OSSUARY_SELFTEST_COMMON_H */
