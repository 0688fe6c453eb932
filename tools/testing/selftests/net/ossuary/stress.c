// SPDX-License-Identifier: GPL-2.0
/*
 * Ossuary under real concurrency: many offloaded sockets at once, four
 * threads per socket, close and shutdown racing blocked readers and
 * writers, a file truncated while it is sent, and the module unloaded
 * under load. Every stream is checked with SHA-256 at both ends (what
 * send/sendfile/splice accepted against what the peer read), every test
 * has a time limit, and the kernel's own checkers (KCSAN, lockdep, KASAN,
 * kmemleak: whatever the VM's kernel has) judge the rest.
 *
 * Parameters (environment; the defaults are the CI's short run, `make
 * stress` passes the big ones):
 *   OSSUARY_STRESS_SOCKETS   offloaded sockets open at once (256; both
 *                            ends of a pair count)
 *   OSSUARY_STRESS_BYTES     bytes each way per pair in that test (32768)
 *   OSSUARY_STRESS_PAIRS     pairs with 4 threads on each end (4)
 *   OSSUARY_STRESS_MIB       MiB each way per pair in that test (2)
 *   OSSUARY_STRESS_ROUNDS    rounds of the close/shutdown races (8)
 *   OSSUARY_STRESS_SECONDS   time limit of each test (600)
 *   OSSUARY_STRESS_UNLOAD=1 and OSSUARY_KO=<path of ossuary.ko>: run
 *                            unload_under_load (it unloads the module and
 *                            loads it again: run it alone, last)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/stat.h>

#include "common.h"

#include "kselftest_harness.h"
#include "stress_util.h"

#define TMPDIR		"/tmp"
#define ST_TIMEOUT	7200	/* the harness's kill; our own limit is shorter */

static long long limit_ms(void)
{
	return st_env("OSSUARY_STRESS_SECONDS", 600) * 1000;
}

FIXTURE(st)
{
	int unused;
};

FIXTURE_SETUP(st)
{
	if (oss_ulp_listed() != 1)
		SKIP(return, "ossuary ULP not registered (module not loaded)");
	ASSERT_EQ(0, sodium_init() < 0 ? -1 : 0);
	signal(SIGPIPE, SIG_IGN);
}

FIXTURE_TEARDOWN(st)
{
}

/* ============ many sockets at once: one epoll loop per thread ============ */

struct ms_ep {
	int fd;
	uint64_t seed;		/* of what this end sends */
	uint64_t want;		/* bytes to send */
	struct st_hash tx, rx;
	struct st_rng rng;
	bool shut, eof, done;
};

struct ms_thread {
	pthread_t thr;
	int k, nthreads;
	struct ms_ep *eps;
	size_t neps;
	long long deadline;
	size_t done;
	unsigned long sweeps_with_progress;
};

static bool ms_service(struct ms_ep *e, uint8_t *buf, size_t bufsz)
{
	bool progress = false;

	while (!e->shut) {
		if (e->tx.bytes < e->want) {
			size_t n = 1 + st_below(&e->rng, bufsz);
			ssize_t r;

			if (n > e->want - e->tx.bytes)
				n = e->want - e->tx.bytes;
			st_stream(e->seed, e->tx.bytes, buf, n);
			r = send(e->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (r < 0) {
				if (errno == EAGAIN || errno == EINTR)
					break;
				st_fail("many: send after %llu bytes: %s",
					(unsigned long long)e->tx.bytes, strerror(errno));
				e->shut = e->eof = true;
				break;
			}
			st_hash_add(&e->tx, buf, r);
			progress = true;
			if ((size_t)r < n)
				break;
		} else {
			if (!shutdown(e->fd, SHUT_WR)) {
				e->shut = true;
				progress = true;
			} else if (errno != EAGAIN && errno != EINTR) {
				st_fail("many: shutdown: %s", strerror(errno));
				e->shut = e->eof = true;
			}
			break;
		}
	}
	while (!e->eof) {
		ssize_t r = recv(e->fd, buf, bufsz, MSG_DONTWAIT);

		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			st_fail("many: recv after %llu bytes: %s",
				(unsigned long long)e->rx.bytes, st_errname(errno));
			e->eof = true;
			break;
		}
		progress = true;
		if (!r)
			e->eof = true;
		else
			st_hash_add(&e->rx, buf, r);
	}
	return progress;
}

static void *ms_thread_fn(void *arg)
{
	struct ms_thread *t = arg;
	size_t bufsz = 32768, mine = 0;
	uint8_t *buf = malloc(bufsz);
	struct epoll_event evs[256];
	long long idle_since = oss_now_ms();
	int ep = epoll_create1(0);

	if (ep < 0 || !buf) {
		st_fail("many: epoll_create1/malloc: %s", strerror(errno));
		free(buf);
		return NULL;
	}
	for (size_t i = t->k; i < t->neps; i += t->nthreads) {
		struct epoll_event ev = {
			.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP,
			.data.ptr = &t->eps[i],
		};

		if (epoll_ctl(ep, EPOLL_CTL_ADD, t->eps[i].fd, &ev)) {
			st_fail("many: epoll_ctl: %s", strerror(errno));
			goto out;
		}
		mine++;
	}
	while (t->done < mine) {
		int n = epoll_wait(ep, evs, 256, 200);

		if (oss_now_ms() > t->deadline) {
			st_fail("many: time limit with %zu of %zu sockets not done",
				mine - t->done, mine);
			break;
		}
		for (int i = 0; i < n; i++) {
			struct ms_ep *e = evs[i].data.ptr;

			ms_service(e, buf, bufsz);
			if (e->shut && e->eof && !e->done) {
				e->done = true;
				t->done++;
			}
		}
		if (n > 0) {
			idle_since = oss_now_ms();
			continue;
		}
		if (oss_now_ms() - idle_since < 3000)
			continue;
		/*
		 * Three seconds without an event: if a socket can move now,
		 * its wakeup was lost.
		 */
		for (size_t i = t->k; i < t->neps; i += t->nthreads) {
			struct ms_ep *e = &t->eps[i];

			if (e->done)
				continue;
			if (ms_service(e, buf, bufsz)) {
				t->sweeps_with_progress++;
				st_fail("many: socket %zu moved without a wakeup (sent %llu, read %llu, shut %d, eof %d)",
					i, (unsigned long long)e->tx.bytes,
					(unsigned long long)e->rx.bytes, e->shut, e->eof);
			}
			if (e->shut && e->eof && !e->done) {
				e->done = true;
				t->done++;
			}
		}
		idle_since = oss_now_ms();
	}
out:
	close(ep);
	free(buf);
	return NULL;
}

/* a listener on loopback (AF_INET or AF_INET6), port in *addr */
static int ms_listener(int family, struct sockaddr_storage *addr, socklen_t *len)
{
	int fd = socket(family, SOCK_STREAM, 0), one = 1;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(addr, 0, sizeof(*addr));
	if (family == AF_INET) {
		struct sockaddr_in *a = (void *)addr;

		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		*len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (void *)addr;

		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		*len = sizeof(*a);
	}
	if (bind(fd, (void *)addr, *len) || listen(fd, 1024) ||
	    getsockname(fd, (void *)addr, len)) {
		close(fd);
		return -1;
	}
	return fd;
}

TEST_F_TIMEOUT(st, many_sockets, ST_TIMEOUT)
{
	long long nsock = st_env("OSSUARY_STRESS_SOCKETS", 256);
	uint64_t bytes = st_env("OSSUARY_STRESS_BYTES", 32768);
	size_t npairs = nsock / 2, neps = npairs * 2;
	int nthreads = 2;
	struct ms_ep *eps = calloc(neps, sizeof(*eps));
	struct ms_thread th[2];
	struct sockaddr_storage addr[2];
	socklen_t alen[2];
	int lfd[2];
	long long t0 = oss_now_ms(), t_open, t_io, t_close;
	uint64_t total = 0;
	size_t bad = 0;

	ASSERT_NE(NULL, eps);
	ASSERT_GE(npairs, 1);
	ASSERT_EQ(0, st_nofile(neps + 256)) TH_LOG("RLIMIT_NOFILE %zu", neps + 256);
	lfd[0] = ms_listener(AF_INET, &addr[0], &alen[0]);
	lfd[1] = ms_listener(AF_INET6, &addr[1], &alen[1]);
	ASSERT_GE(lfd[0], 0);
	ASSERT_GE(lfd[1], 0);
	for (size_t i = 0; i < npairs; i++) {
		int f = i % 2, c, s, ret;
		struct ms_ep *a = &eps[2 * i], *b = &eps[2 * i + 1];

		c = socket(f ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
		ASSERT_GE(c, 0) TH_LOG("socket %zu: %s", i, strerror(errno));
		ASSERT_EQ(0, connect(c, (void *)&addr[f], alen[f]))
			TH_LOG("connect %zu: %s", i, strerror(errno));
		s = accept(lfd[f], NULL, NULL);
		ASSERT_GE(s, 0) TH_LOG("accept %zu: %s", i, strerror(errno));
		ret = st_offload_pair(c, s, i);
		ASSERT_EQ(0, ret) TH_LOG("offload pair %zu: %s", i, strerror(-ret));
		oss_set_nonblock(c, true);
		oss_set_nonblock(s, true);
		a->fd = c;
		b->fd = s;
		a->seed = st_mix(i * 2 + 1);
		b->seed = st_mix(i * 2 + 2);
		a->want = b->want = bytes;
		a->rng.s = a->seed;
		b->rng.s = b->seed ^ 1;
		st_hash_init(&a->tx);
		st_hash_init(&a->rx);
		st_hash_init(&b->tx);
		st_hash_init(&b->rx);
	}
	close(lfd[0]);
	close(lfd[1]);
	t_open = oss_now_ms();
	TH_LOG("%zu offloaded sockets open (%zu pairs, IPv4 and IPv6) in %.1f s; ossuary_stat CurrTx %lld CurrRx %lld",
	       neps, npairs, (t_open - t0) / 1000.0,
	       oss_stat_get("OssuaryCurrTx"), oss_stat_get("OssuaryCurrRx"));

	for (int k = 0; k < nthreads; k++) {
		th[k] = (struct ms_thread){ .k = k, .nthreads = nthreads, .eps = eps,
					     .neps = neps, .deadline = t0 + limit_ms() };
		ASSERT_EQ(0, pthread_create(&th[k].thr, NULL, ms_thread_fn, &th[k]));
	}
	for (int k = 0; k < nthreads; k++)
		pthread_join(th[k].thr, NULL);
	t_io = oss_now_ms();

	for (size_t i = 0; i < npairs; i++) {
		for (int d = 0; d < 2; d++) {
			struct ms_ep *from = &eps[2 * i + d], *to = &eps[2 * i + 1 - d];
			uint8_t h1[32], h2[32];

			st_hash_final(&from->tx, h1);
			st_hash_final(&to->rx, h2);
			total += to->rx.bytes;
			if (from->tx.bytes != bytes || to->rx.bytes != from->tx.bytes ||
			    memcmp(h1, h2, 32)) {
				if (bad++ < 5)
					TH_LOG("pair %zu dir %d: sent %llu of %llu, read %llu, SHA-256 %s",
					       i, d, (unsigned long long)from->tx.bytes,
					       (unsigned long long)bytes,
					       (unsigned long long)to->rx.bytes,
					       memcmp(h1, h2, 32) ? "differs" : "same");
			}
		}
	}
	for (size_t i = 0; i < neps; i++)
		close(eps[i].fd);
	t_close = oss_now_ms();
	TH_LOG("%zu sockets, %d threads: %llu bytes read in %.1f s (%.2f MiB/s), closed in %.1f s",
	       neps, nthreads, (unsigned long long)total, (t_io - t_open) / 1000.0,
	       total / 1048576.0 / ((t_io - t_open + 1) / 1000.0), (t_close - t_io) / 1000.0);
	free(eps);
	EXPECT_EQ(0, bad) TH_LOG("%zu directions differ", bad);
	ST_ASSERT_CLEAN();
}

/* ============ four threads on each end of a pair ============ */

#define FT_FILE_LEN	(1 << 20)

static uint8_t *ft_filebuf;
static int ft_file = -1;

struct ft_ep {
	int fd;
	int fds[4];		/* one dup() per thread, each closes its own */
	int idx;		/* pair * 2 + side, for messages */
	uint64_t seed, want;
	struct st_hash tx, rx;
	long long deadline;
	atomic_bool writer_done, reader_done, peer_reader_done;
	struct ft_ep *peer;
	unsigned long writes, sendfiles, splices_in, recvs, peeks, splices_out;
	unsigned long polls, updates, updates_req, cmsg_updates;
};

static void ft_send_hash(struct ft_ep *e, const uint8_t *p, size_t n)
{
	st_hash_add(&e->tx, p, n);
}

static bool ft_retry(struct ft_ep *e, const char *what)
{
	if (errno == EINTR)
		return true;
	if (errno == EAGAIN && oss_now_ms() < e->deadline)
		return true;	/* SO_SNDTIMEO/SO_RCVTIMEO: keep going */
	st_fail("ep %d: %s: %s", e->idx, what, errno == EAGAIN ? "time limit" : strerror(errno));
	return false;
}

static void *ft_writer(void *arg)
{
	struct ft_ep *e = arg;
	int fd = e->fds[0], pfd[2] = { -1, -1 };
	struct st_rng rng = { e->seed ^ 0x1111 };
	uint8_t *buf = malloc(65536);

	if (fd < 0 || !buf || pipe(pfd)) {
		st_fail("writer: setup: %s", strerror(errno));
		goto out;
	}
	while (e->tx.bytes < e->want) {
		uint64_t left = e->want - e->tx.bytes;
		unsigned int op = st_below(&rng, 8);
		ssize_t r;

		if (oss_now_ms() > e->deadline) {
			st_fail("ep %d: writer: time limit at %llu bytes", e->idx,
				(unsigned long long)e->tx.bytes);
			break;
		}
		if (op < 3) {		/* send, sometimes MSG_MORE */
			size_t n = 1 + st_below(&rng, op == 2 ? 64 : 65536);

			if (n > left)
				n = left;
			st_stream(e->seed, e->tx.bytes, buf, n);
			r = send(fd, buf, n, MSG_NOSIGNAL |
				 (st_below(&rng, 4) ? 0 : MSG_MORE));
			if (r < 0) {
				if (ft_retry(e, "send"))
					continue;
				break;
			}
			ft_send_hash(e, buf, r);
			e->writes++;
		} else if (op < 6) {	/* sendfile from a random offset */
			off_t off = st_below(&rng, FT_FILE_LEN - 1), o = off;
			size_t n = 1 + st_below(&rng, 256 << 10);

			if (n > FT_FILE_LEN - (size_t)off)
				n = FT_FILE_LEN - off;
			if (n > left)
				n = left;
			r = sendfile(fd, ft_file, &o, n);
			if (r < 0) {
				if (ft_retry(e, "sendfile"))
					continue;
				break;
			}
			if (r == 0 || o != off + r) {
				st_fail("ep %d: sendfile returned %zd, offset %lld -> %lld",
					e->idx, r, (long long)off, (long long)o);
				break;
			}
			ft_send_hash(e, ft_filebuf + off, r);
			e->sendfiles++;
		} else {		/* splice from a pipe */
			size_t n = 1 + st_below(&rng, 65536), done = 0;
			unsigned int fl = st_below(&rng, 2) ? SPLICE_F_MORE : 0;

			if (n > left)
				n = left;
			st_stream(e->seed, e->tx.bytes, buf, n);
			if (write(pfd[1], buf, n) != (ssize_t)n) {
				st_fail("ep %d: pipe write: %s", e->idx, strerror(errno));
				break;
			}
			while (done < n) {
				r = splice(pfd[0], NULL, fd, NULL, n - done, fl);
				if (r < 0) {
					if (ft_retry(e, "splice to socket"))
						continue;
					goto out;
				}
				if (r == 0) {
					st_fail("ep %d: splice to socket returned 0", e->idx);
					goto out;
				}
				ft_send_hash(e, buf + done, r);
				done += r;
			}
			e->splices_in++;
		}
	}
	atomic_store(&e->writer_done, true);
	{
		int ret = st_shutdown_wr(fd, e->deadline);

		if (ret)
			st_fail("ep %d: shutdown(SHUT_WR): %s", e->idx, strerror(-ret));
	}
out:
	atomic_store(&e->writer_done, true);
	free(buf);
	if (pfd[0] >= 0) {
		close(pfd[0]);
		close(pfd[1]);
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void *ft_reader(void *arg)
{
	struct ft_ep *e = arg;
	int fd = e->fds[1], pfd[2] = { -1, -1 };
	struct st_rng rng = { e->seed ^ 0x2222 };
	uint8_t *buf = malloc(65536), *buf2 = malloc(65536);

	if (fd < 0 || !buf || !buf2 || pipe(pfd)) {
		st_fail("reader: setup: %s", strerror(errno));
		goto out;
	}
	for (;;) {
		unsigned int op = st_below(&rng, 6);
		size_t n = 1 + st_below(&rng, 65536);
		ssize_t r;

		if (oss_now_ms() > e->deadline) {
			st_fail("ep %d: reader: time limit at %llu bytes", e->idx,
				(unsigned long long)e->rx.bytes);
			break;
		}
		if (op < 3) {
			r = recv(fd, buf, n, op == 0 ? MSG_WAITALL : 0);
			if (r < 0) {
				if (ft_retry(e, "recv"))
					continue;
				break;
			}
			if (!r)
				break;
			st_hash_add(&e->rx, buf, r);
			e->recvs++;
		} else if (op == 3) {	/* peek, then read the same bytes */
			ssize_t r2;

			r = recv(fd, buf, n, MSG_PEEK | MSG_DONTWAIT);
			if (r < 0) {
				if (errno == EAGAIN || ft_retry(e, "recv(MSG_PEEK)"))
					continue;
				break;
			}
			if (!r)
				continue;	/* the next read sees the end too */
			r2 = recv(fd, buf2, r, 0);
			if (r2 <= 0 || r2 > r || memcmp(buf, buf2, r2)) {
				st_fail("ep %d: peeked %zd bytes, then read %zd %s", e->idx, r, r2,
					r2 > 0 && r2 <= r ? "different bytes" : "");
				break;
			}
			st_hash_add(&e->rx, buf2, r2);
			e->peeks++;
		} else {		/* splice to a pipe, read it back */
			size_t got = 0;

			r = splice(fd, NULL, pfd[1], NULL, n, 0);
			if (r < 0) {
				if (ft_retry(e, "splice from socket"))
					continue;
				break;
			}
			if (!r)
				break;
			while (got < (size_t)r) {
				ssize_t k = read(pfd[0], buf + got, r - got);

				if (k <= 0) {
					st_fail("ep %d: pipe read: %s", e->idx, strerror(errno));
					goto out;
				}
				got += k;
			}
			st_hash_add(&e->rx, buf, r);
			e->splices_out++;
		}
	}
out:
	atomic_store(&e->reader_done, true);
	atomic_store(&e->peer->peer_reader_done, true);
	free(buf);
	free(buf2);
	if (pfd[0] >= 0) {
		close(pfd[0]);
		close(pfd[1]);
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void *ft_poller(void *arg)
{
	struct ft_ep *e = arg;
	int fd = e->fds[2];

	while (!atomic_load(&e->reader_done) || !atomic_load(&e->writer_done)) {
		struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT | POLLRDHUP };
		struct ossuary_dir_state st;
		int inq;

		if (poll(&p, 1, 3) < 0 && errno != EINTR) {
			st_fail("ep %d: poll: %s", e->idx, strerror(errno));
			break;
		}
		if (p.revents & (POLLERR | POLLNVAL)) {
			st_fail("ep %d: poll revents %#x", e->idx, p.revents);
			break;
		}
		if (ioctl(fd, FIONREAD, &inq) || inq < 0) {
			st_fail("ep %d: FIONREAD: %s", e->idx, strerror(errno));
			break;
		}
		for (int dir = OSSUARY_TX; dir <= OSSUARY_RX; dir++) {
			int ret = oss_state(fd, dir, &st);

			if (ret || st.error || (st.flags & OSSUARY_STATE_ERROR)) {
				st_fail("ep %d: %s state: %s, error %d, flags %#x", e->idx,
					dir == OSSUARY_TX ? "TX" : "RX", strerror(-ret),
					st.error, st.flags);
				goto out;
			}
		}
		e->polls++;
	}
out:
	close(fd);
	return NULL;
}

/* KEY_UPDATE through a cmsg: the same as the socket option */
static int ft_cmsg_update(int fd, uint8_t req)
{
	char cbuf[CMSG_SPACE(1)] = {};
	struct iovec iov = { .iov_base = &req, .iov_len = 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);

	c->cmsg_level = SOL_OSSUARY;
	c->cmsg_type = OSSUARY_SET_RECORD_TYPE;
	c->cmsg_len = CMSG_LEN(1);
	*CMSG_DATA(c) = OSSUARY_RECORD_KEY_UPDATE;
	return sendmsg(fd, &m, MSG_NOSIGNAL) < 0 ? -1 : 0;
}

static void *ft_updater(void *arg)
{
	struct ft_ep *e = arg;
	int fd = e->fds[3];
	struct st_rng rng = { e->seed ^ 0x3333 };

	while (!atomic_load(&e->writer_done)) {
		int req = st_below(&rng, 3) == 0, ret;
		bool cmsg = st_below(&rng, 4) == 0;

		oss_msleep(st_below(&rng, 4));
		if (cmsg)
			ret = ft_cmsg_update(fd, req);
		else
			ret = setsockopt(fd, SOL_OSSUARY, OSSUARY_KEY_UPDATE, &req, sizeof(req));
		if (ret) {
			if (errno == EPIPE && atomic_load(&e->writer_done))
				break;	/* the writer's shutdown sent DISCONNECT */
			if (errno == EINTR || (errno == EAGAIN && oss_now_ms() < e->deadline))
				continue;
			st_fail("ep %d: KEY_UPDATE(%d)%s: %s", e->idx, req,
				cmsg ? " by cmsg" : "", strerror(errno));
			break;
		}
		e->updates++;
		e->updates_req += req;
		e->cmsg_updates += cmsg;
	}
	close(fd);
	return NULL;
}

TEST_F_TIMEOUT(st, four_threads_per_socket, ST_TIMEOUT)
{
	int npairs = st_env("OSSUARY_STRESS_PAIRS", 4);
	uint64_t want = st_env("OSSUARY_STRESS_MIB", 2) << 20;
	struct ft_ep *eps = calloc(2 * npairs, sizeof(*eps));
	pthread_t *thr = calloc(8 * npairs, sizeof(*thr));
	void *(*fns[4])(void *) = { ft_writer, ft_reader, ft_poller, ft_updater };
	long long t0 = oss_now_ms(), deadline = t0 + limit_ms(), t1;
	unsigned long w = 0, sf = 0, spi = 0, rc = 0, pk = 0, spo = 0, pl = 0, up = 0, upr = 0, upc = 0;
	uint64_t total = 0;
	int bad = 0;

	ASSERT_NE(NULL, eps);
	ASSERT_NE(NULL, thr);
	ft_filebuf = malloc(FT_FILE_LEN);
	ASSERT_NE(NULL, ft_filebuf);
	st_stream(0xf11e, 0, ft_filebuf, FT_FILE_LEN);
	{
		char path[] = TMPDIR "/ossuary-stress-XXXXXX";

		ft_file = mkstemp(path);
		ASSERT_GE(ft_file, 0);
		unlink(path);
		ASSERT_EQ(FT_FILE_LEN, pwrite(ft_file, ft_filebuf, FT_FILE_LEN, 0));
	}
	ASSERT_EQ(0, st_nofile(8 * npairs + 256));
	for (int i = 0; i < npairs; i++) {
		int c, s, ret;

		ASSERT_EQ(0, oss_tcp_pair(i % 2 ? AF_INET6 : AF_INET, &c, &s));
		ret = st_offload_pair(c, s, i);
		ASSERT_EQ(0, ret) TH_LOG("pair %d: %s", i, strerror(-ret));
		for (int d = 0; d < 2; d++) {
			struct ft_ep *e = &eps[2 * i + d];

			e->fd = d ? s : c;
			e->idx = 2 * i + d;
			e->seed = st_mix(0x5eed0000 + 2 * i + d);
			e->want = want;
			e->deadline = deadline;
			e->peer = &eps[2 * i + 1 - d];
			st_hash_init(&e->tx);
			st_hash_init(&e->rx);
		}
	}
	for (int i = 0; i < 2 * npairs; i++)
		for (int k = 0; k < 4; k++) {
			eps[i].fds[k] = dup(eps[i].fd);
			ASSERT_GE(eps[i].fds[k], 0);
		}
	for (int i = 0; i < 2 * npairs; i++)
		for (int k = 0; k < 4; k++) {
			ASSERT_EQ(0, pthread_create(&thr[4 * i + k], NULL, fns[k], &eps[i]));
		}
	/*
	 * The threads close their own dup()s; these are the last references
	 * only until then: close them now so that whichever thread finishes
	 * last makes the real close, racing the others.
	 */
	for (int i = 0; i < 2 * npairs; i++)
		close(eps[i].fd);
	for (int i = 0; i < 8 * npairs; i++)
		pthread_join(thr[i], NULL);
	t1 = oss_now_ms();
	for (int i = 0; i < 2 * npairs; i++) {
		struct ft_ep *from = &eps[i], *to = from->peer;
		uint8_t h1[32], h2[32];

		st_hash_final(&from->tx, h1);
		st_hash_final(&to->rx, h2);
		total += to->rx.bytes;
		if (from->tx.bytes != want || to->rx.bytes != want || memcmp(h1, h2, 32)) {
			bad++;
			TH_LOG("ep %d -> %d: sent %llu of %llu, read %llu, SHA-256 %s", i, to->idx,
			       (unsigned long long)from->tx.bytes, (unsigned long long)want,
			       (unsigned long long)to->rx.bytes,
			       memcmp(h1, h2, 32) ? "differs" : "same");
		}
		w += from->writes;
		sf += from->sendfiles;
		spi += from->splices_in;
		rc += from->recvs;
		pk += from->peeks;
		spo += from->splices_out;
		pl += from->polls;
		up += from->updates;
		upr += from->updates_req;
		upc += from->cmsg_updates;
	}
	TH_LOG("%d sockets, %d threads: %llu bytes in %.1f s; %lu sends, %lu sendfiles, %lu splices in, %lu recvs, %lu peeks, %lu splices out, %lu polls, %lu key updates (%lu asking the peer, %lu by cmsg)",
	       2 * npairs, 8 * npairs, (unsigned long long)total, (t1 - t0) / 1000.0,
	       w, sf, spi, rc, pk, spo, pl, up, upr, upc);
	close(ft_file);
	free(ft_filebuf);
	free(eps);
	free(thr);
	EXPECT_EQ(0, bad);
	ST_ASSERT_CLEAN();
}

/* ============ close and shutdown racing blocked readers and writers ============ */

struct cr_io {
	pthread_t thr;
	atomic_int tid;
	int fd;
	uint64_t seed;
	size_t limit;		/* writer: stop after this many bytes (0: until error) */
	struct st_hash h;
	int err;		/* errno that ended it, 0 for EOF */
	bool eof;
	long long deadline;
	atomic_bool started;
};

static void *cr_writer_fn(void *arg)
{
	struct cr_io *w = arg;
	uint8_t buf[16384];

	st_hash_init(&w->h);
	atomic_store(&w->started, true);
	while (!w->limit || w->h.bytes < w->limit) {
		size_t n = sizeof(buf);
		ssize_t r;

		if (w->limit && n > w->limit - w->h.bytes)
			n = w->limit - w->h.bytes;
		st_stream(w->seed, w->h.bytes, buf, n);
		r = send(w->fd, buf, n, MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EINTR || (errno == EAGAIN && oss_now_ms() < w->deadline))
				continue;
			w->err = errno;
			break;
		}
		st_hash_add(&w->h, buf, r);
	}
	return NULL;
}

static void *cr_reader_fn(void *arg)
{
	struct cr_io *r = arg;
	uint8_t buf[16384];

	st_hash_init(&r->h);
	atomic_store(&r->started, true);
	for (;;) {
		ssize_t n = recv(r->fd, buf, sizeof(buf), 0);

		if (n < 0) {
			if (errno == EINTR || (errno == EAGAIN && oss_now_ms() < r->deadline))
				continue;
			r->err = errno;
			break;
		}
		if (!n) {
			r->eof = true;
			break;
		}
		st_hash_add(&r->h, buf, n);
	}
	return NULL;
}

/* One blocking send() of limit bytes (its fd may be closed meanwhile) */
static void *cr_send_once_fn(void *arg)
{
	struct cr_io *w = arg;
	uint8_t *buf = malloc(w->limit);
	ssize_t r;

	st_hash_init(&w->h);
	if (buf)
		st_stream(w->seed, 0, buf, w->limit);
	atomic_store(&w->tid, gettid());
	atomic_store(&w->started, true);
	if (!buf) {
		w->err = ENOMEM;
		return NULL;
	}
	r = send(w->fd, buf, w->limit, MSG_NOSIGNAL);
	if (r < 0)
		w->err = errno;
	else
		st_hash_add(&w->h, buf, r);
	free(buf);
	return NULL;
}

/* One blocking recv(MSG_WAITALL) of limit bytes (its fd may be closed meanwhile) */
static void *cr_recv_once_fn(void *arg)
{
	struct cr_io *r = arg;
	uint8_t *buf = malloc(r->limit);
	ssize_t n;

	st_hash_init(&r->h);
	atomic_store(&r->tid, gettid());
	atomic_store(&r->started, true);
	if (!buf) {
		r->err = ENOMEM;
		return NULL;
	}
	n = recv(r->fd, buf, r->limit, MSG_WAITALL);
	if (n < 0)
		r->err = errno;
	else
		st_hash_add(&r->h, buf, n);
	free(buf);
	return NULL;
}

static int cr_start_fn(struct cr_io *io, int fd, void *(*fn)(void *), uint64_t seed,
		       size_t limit)
{
	memset(io, 0, sizeof(*io));
	io->fd = fd;
	io->seed = seed;
	io->limit = limit;
	io->deadline = oss_now_ms() + 60000;
	if (pthread_create(&io->thr, NULL, fn, io))
		return -1;
	while (!atomic_load(&io->started))
		oss_msleep(1);
	return 0;
}

static int cr_start(struct cr_io *io, int fd, bool writer, uint64_t seed, size_t limit)
{
	memset(io, 0, sizeof(*io));
	io->fd = fd;
	io->seed = seed;
	io->limit = limit;
	io->deadline = oss_now_ms() + 60000;
	if (pthread_create(&io->thr, NULL, writer ? cr_writer_fn : cr_reader_fn, io))
		return -1;
	while (!atomic_load(&io->started))
		oss_msleep(1);
	return 0;
}

/*
 * Wait until thread tid is blocked in system call nr (sendto 44,
 * recvfrom 45 on x86_64), up to 120 s: close() must race a call that is
 * really waiting, not one about to start. (The file says "running" while
 * the call still copies and seals, which under KCSAN with a small
 * skip_watch takes more than 10 s for 4 MiB.)
 */
static bool cr_blocked_in(pid_t tid, long nr)
{
	char path[64], buf[128];
	long long end = oss_now_ms() + 120000;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", tid);
	while (oss_now_ms() < end) {
		int fd = open(path, O_RDONLY);
		ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

		if (fd >= 0)
			close(fd);
		if (n > 0) {
			buf[n] = 0;
			if (strtol(buf, NULL, 10) == nr) {
				oss_msleep(20);	/* and asleep in it */
				return true;
			}
		}
		oss_msleep(2);
	}
	return false;
}

static bool cr_same(struct cr_io *w, struct cr_io *r)
{
	uint8_t a[32], b[32];

	if (w->h.bytes != r->h.bytes)
		return false;
	st_hash_final(&w->h, a);
	st_hash_final(&r->h, b);
	return !memcmp(a, b, 32);
}

/* Outcomes per scenario, for the log */
struct cr_tally {
	unsigned long n[6][8];
};

static int cr_slot(int err)
{
	switch (err) {
	case 0: return 0;
	case EPIPE: return 1;
	case ECONNRESET: return 2;
	case EAGAIN: return 3;
	case EBADMSG: return 4;
	case EPROTO: return 5;
	default: return 7;
	}
}

static int cr_pair(int round, int *c, int *s)
{
	int ret = oss_tcp_pair(round % 2 ? AF_INET6 : AF_INET, c, s);

	if (ret)
		return ret;
	oss_set_timeouts(*c, 2);
	oss_set_timeouts(*s, 2);
	return st_offload_pair(*c, *s, round);
}

TEST_F_TIMEOUT(st, close_races, ST_TIMEOUT)
{
	int rounds = st_env("OSSUARY_STRESS_ROUNDS", 8);
	long long t0 = oss_now_ms(), deadline = t0 + limit_ms();
	struct cr_tally tally = {};
	static const char *const names[] = {
		"shutdown(RDWR) vs blocked reader",
		"shutdown(WR) vs blocked writer",
		"peer close vs blocked writer",
		"peer writes and closes vs blocked reader",
		"close(fd) vs blocked reader on it",
		"close(fd) vs blocked writer on it",
	};

	for (int round = 0; round < rounds && oss_now_ms() < deadline; round++) {
		struct cr_io w, r;
		int c, s, ret;

		/* 0: a reader blocked with nothing to read; shutdown(RDWR) wakes it */
		ASSERT_EQ(0, cr_pair(round, &c, &s));
		ASSERT_EQ(0, cr_start(&r, c, false, 0, 0));
		oss_msleep(st_env("OSSUARY_STRESS_BLOCK_MS", 50));
		ASSERT_EQ(0, shutdown(c, SHUT_RDWR));
		pthread_join(r.thr, NULL);
		tally.n[0][cr_slot(r.err)]++;
		EXPECT_EQ(0, r.h.bytes);
		/* our DISCONNECT(0) reached the peer: a clean end there */
		(void)0;
		{
			uint8_t b;
			ssize_t k = recv(s, &b, 1, 0);

			EXPECT_EQ(0, k) TH_LOG("round %d: peer of a shutdown(RDWR) read %zd: %s",
					       round, k, k < 0 ? st_errname(errno) : "");
		}
		oss_close_pair(&c, &s);

		/* 1: a writer blocked on a full buffer; shutdown(WR) from another thread */
		ASSERT_EQ(0, cr_pair(round, &c, &s));
		ASSERT_EQ(0, cr_start(&w, c, true, round, 0));
		oss_msleep(300);	/* fill the buffers */
		ret = shutdown(c, SHUT_WR);	/* may wait for room, then EAGAIN */
		{
			int shut_err = ret ? errno : 0;

			ASSERT_EQ(0, cr_start(&r, s, false, 0, 0));
			if (shut_err) {
				EXPECT_TRUE(shut_err == EAGAIN || shut_err == EINTR)
					TH_LOG("round %d: shutdown(WR) under a blocked writer: %s",
					       round, strerror(shut_err));
				ret = st_shutdown_wr(c, oss_now_ms() + 20000);
				EXPECT_EQ(0, ret) TH_LOG("round %d: shutdown(WR) retried: %s",
							 round, strerror(-ret));
			}
			pthread_join(w.thr, NULL);
			pthread_join(r.thr, NULL);
			tally.n[1][cr_slot(w.err)]++;
			EXPECT_EQ(EPIPE, w.err) TH_LOG("round %d: blocked writer after shutdown: %s",
						       round, st_errname(w.err));
			EXPECT_TRUE(r.eof) TH_LOG("round %d: peer of shutdown(WR) ended with %s after %llu bytes (writer sent %llu)",
						  round, st_errname(r.err),
						  (unsigned long long)r.h.bytes,
						  (unsigned long long)w.h.bytes);
			EXPECT_TRUE(cr_same(&w, &r)) TH_LOG("round %d: writer sent %llu bytes, peer read %llu (or other bytes)",
							    round, (unsigned long long)w.h.bytes,
							    (unsigned long long)r.h.bytes);
		}
		oss_close_pair(&c, &s);

		/* 2: a writer blocked on a full buffer; the peer closes without reading */
		ASSERT_EQ(0, cr_pair(round, &c, &s));
		ASSERT_EQ(0, cr_start(&w, c, true, round, 0));
		oss_msleep(300);
		close(s);
		s = -1;
		pthread_join(w.thr, NULL);
		tally.n[2][cr_slot(w.err)]++;
		EXPECT_TRUE(w.err == EPIPE || w.err == ECONNRESET)
			TH_LOG("round %d: writer after the peer's close: %s", round, st_errname(w.err));
		oss_close_pair(&c, &s);

		/* 3: a blocked reader; the peer writes, then closes at once */
		ASSERT_EQ(0, cr_pair(round, &c, &s));
		ASSERT_EQ(0, cr_start(&r, c, false, 0, 0));
		oss_msleep(20);
		{
			size_t n = 100000 + 7919 * round;

			ASSERT_EQ(0, cr_start(&w, s, true, round + 1000, n));
			pthread_join(w.thr, NULL);
			close(s);	/* seals, sends DISCONNECT(0): not a truncation */
			s = -1;
			pthread_join(r.thr, NULL);
			tally.n[3][cr_slot(r.eof ? 0 : r.err)]++;
			EXPECT_EQ(0, w.err);
			EXPECT_TRUE(r.eof) TH_LOG("round %d: reader of a closed peer: %s after %llu of %zu bytes (a false %s)",
						  round, st_errname(r.err),
						  (unsigned long long)r.h.bytes, n, st_errname(r.err));
			EXPECT_TRUE(cr_same(&w, &r)) TH_LOG("round %d: sent %llu, read %llu",
							    round, (unsigned long long)w.h.bytes,
							    (unsigned long long)r.h.bytes);
		}
		oss_close_pair(&c, &s);

		/* 4: close(fd) while another thread is blocked reading fd */
		ASSERT_EQ(0, cr_pair(round, &c, &s));
		oss_set_timeouts(c, 30);
		ASSERT_EQ(0, cr_start_fn(&r, c, cr_recv_once_fn, 0, 50000));
		ASSERT_TRUE(cr_blocked_in(r.tid, SYS_recvfrom));
		close(c);	/* the reader's reference keeps the socket */
		c = -1;
		ASSERT_EQ(0, cr_start(&w, s, true, round + 2000, 50000));
		pthread_join(w.thr, NULL);
		pthread_join(r.thr, NULL);
		tally.n[4][cr_slot(r.err)]++;
		EXPECT_EQ(0, r.err) TH_LOG("round %d: reader of a closed fd: %s", round, st_errname(r.err));
		EXPECT_TRUE(cr_same(&w, &r)) TH_LOG("round %d: sent %llu, read %llu", round,
						    (unsigned long long)w.h.bytes,
						    (unsigned long long)r.h.bytes);
		{
			/* now the socket is really closed: the peer sees a clean end */
			uint8_t b;
			ssize_t k = recv(s, &b, 1, 0);

			EXPECT_EQ(0, k) TH_LOG("round %d: peer after the last close read %zd: %s",
					       round, k, k < 0 ? st_errname(errno) : "");
		}
		oss_close_pair(&c, &s);

		/* 5: close(fd) while another thread is blocked writing fd */
		ASSERT_EQ(0, cr_pair(round, &c, &s));
		oss_set_timeouts(c, 30);
		ASSERT_EQ(0, cr_start_fn(&w, c, cr_send_once_fn, round + 3000, 4 << 20));
		ASSERT_TRUE(cr_blocked_in(w.tid, SYS_sendto));
		oss_msleep(200);	/* the buffers full */
		close(c);
		c = -1;
		ASSERT_EQ(0, cr_start(&r, s, false, 0, 0));
		pthread_join(w.thr, NULL);
		pthread_join(r.thr, NULL);
		tally.n[5][cr_slot(r.eof ? 0 : r.err)]++;
		EXPECT_EQ(0, w.err) TH_LOG("round %d: writer on a closed fd: %s", round, st_errname(w.err));
		EXPECT_TRUE(r.eof) TH_LOG("round %d: peer of a writer whose fd was closed: %s after %llu of %llu bytes",
					  round, st_errname(r.err), (unsigned long long)r.h.bytes,
					  (unsigned long long)w.h.bytes);
		EXPECT_TRUE(cr_same(&w, &r));
		oss_close_pair(&c, &s);
		if (_metadata->exit_code == KSFT_FAIL)
			break;
	}
	for (int i = 0; i < 6; i++)
		TH_LOG("%-42s end of stream %lu, EPIPE %lu, ECONNRESET %lu, EAGAIN %lu, other %lu",
		       names[i], tally.n[i][0], tally.n[i][1], tally.n[i][2], tally.n[i][3],
		       tally.n[i][4] + tally.n[i][5] + tally.n[i][7]);
	TH_LOG("%d rounds in %.1f s", rounds, (oss_now_ms() - t0) / 1000.0);
}

/* ============ a file truncated (and restored) while several send it ============ */

#define TR_FILE_LEN	(512 << 10)
#define TR_MAX_CHUNKS	100000

struct tr_chunk {
	uint64_t pos;		/* in the stream */
	off_t off;		/* in the file */
	size_t len;
};

struct tr_sender {
	pthread_t thr, rthr;
	int fd, peer;
	long long deadline;
	uint64_t passes, sent;
	struct tr_chunk *chunks;
	atomic_size_t nchunks;
	atomic_bool done;
	/* receiver */
	uint64_t got, zeros;
	bool eof;
	int err;
};

static uint8_t *tr_exp;
static int tr_file = -1;
static atomic_bool tr_stop;

static void *tr_send_fn(void *arg)
{
	struct tr_sender *t = arg;
	off_t off = 0;

	while (!atomic_load(&tr_stop) && oss_now_ms() < t->deadline) {
		off_t before = off;
		ssize_t n = sendfile(t->fd, tr_file, &off, 256 << 10);
		size_t k = atomic_load(&t->nchunks);

		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			st_fail("truncate: sendfile at %lld: %s (only a short count may happen)",
				(long long)before, strerror(errno));
			break;
		}
		if (n == 0) {	/* the end of the file as it is now: again */
			off = 0;
			t->passes++;
			continue;
		}
		if (off != before + n) {
			st_fail("truncate: sendfile moved the offset %lld -> %lld for %zd bytes",
				(long long)before, (long long)off, n);
			break;
		}
		if (k == TR_MAX_CHUNKS)
			break;
		t->chunks[k] = (struct tr_chunk){ .pos = t->sent, .off = before, .len = n };
		t->sent += n;
		atomic_store(&t->nchunks, k + 1);
	}
	atomic_store(&t->done, true);
	if (st_shutdown_wr(t->fd, oss_now_ms() + 20000))
		st_fail("truncate: shutdown: %s", strerror(errno));
	return NULL;
}

/* Check each byte read: the file's byte at that offset, or a zero */
static void *tr_recv_fn(void *arg)
{
	struct tr_sender *t = arg;
	uint8_t buf[32768];
	size_t ci = 0;

	for (;;) {
		ssize_t n = recv(t->peer, buf, sizeof(buf), 0);

		if (n < 0) {
			if (errno == EINTR || (errno == EAGAIN && oss_now_ms() < t->deadline + 30000))
				continue;
			t->err = errno;
			break;
		}
		if (!n) {
			t->eof = true;
			break;
		}
		for (ssize_t i = 0; i < n; i++) {
			uint64_t pos = t->got + i;
			off_t off;

			/* the chunk that holds pos: logged once sendfile returned */
			for (;;) {
				size_t k = atomic_load(&t->nchunks);

				while (ci < k && pos >= t->chunks[ci].pos + t->chunks[ci].len)
					ci++;
				if (ci < k)
					break;
				oss_msleep(1);
				if (oss_now_ms() > t->deadline + 30000) {
					st_fail("truncate: byte %llu arrived, no sendfile covers it",
						(unsigned long long)pos);
					return NULL;
				}
			}
			off = t->chunks[ci].off + (pos - t->chunks[ci].pos);
			if (off >= TR_FILE_LEN || (buf[i] != tr_exp[off] && buf[i])) {
				st_fail("truncate: stream byte %llu (file offset %lld) is %02x, neither the original %02x nor 0",
					(unsigned long long)pos, (long long)off, buf[i],
					off < TR_FILE_LEN ? tr_exp[off] : 0);
				return NULL;
			}
			t->zeros += buf[i] != tr_exp[off];
		}
		t->got += n;
	}
	return NULL;
}

TEST_F_TIMEOUT(st, truncate_while_sending, ST_TIMEOUT)
{
	int nsend = 4, cuts = 0;
	long long secs = st_env("OSSUARY_STRESS_TRUNCATE_SECONDS", 10);
	long long t0 = oss_now_ms(), stop = t0 + secs * 1000;
	struct tr_sender snd[4] = {};
	struct st_rng rng = { 77 };
	uint64_t total = 0, zeros = 0, passes = 0;

	tr_exp = malloc(TR_FILE_LEN);
	ASSERT_NE(NULL, tr_exp);
	oss_fill(tr_exp, TR_FILE_LEN, 4242);
	tr_file = oss_tmpfile(TMPDIR, TR_FILE_LEN, 4242);
	ASSERT_GE(tr_file, 0);
	atomic_store(&tr_stop, false);
	for (int i = 0; i < nsend; i++) {
		struct tr_sender *t = &snd[i];

		ASSERT_EQ(0, oss_tcp_pair(i % 2 ? AF_INET6 : AF_INET, &t->fd, &t->peer));
		ASSERT_EQ(0, st_offload_pair(t->fd, t->peer, i));
		t->deadline = t0 + limit_ms();
		t->chunks = calloc(TR_MAX_CHUNKS, sizeof(*t->chunks));
		ASSERT_NE(NULL, t->chunks);
		ASSERT_EQ(0, pthread_create(&t->rthr, NULL, tr_recv_fn, t));
		ASSERT_EQ(0, pthread_create(&t->thr, NULL, tr_send_fn, t));
	}
	/* cut to a random size (page aligned or not), then write it back */
	stop = oss_now_ms() + secs * 1000;
	while (oss_now_ms() < stop) {
		off_t cut = st_below(&rng, TR_FILE_LEN);

		if (st_below(&rng, 2))
			cut &= ~(off_t)4095;
		ASSERT_EQ(0, ftruncate(tr_file, cut));
		oss_msleep(st_below(&rng, 3));
		ASSERT_EQ(TR_FILE_LEN - cut, pwrite(tr_file, tr_exp + cut, TR_FILE_LEN - cut, cut));
		oss_msleep(st_below(&rng, 5));
		cuts++;
	}
	atomic_store(&tr_stop, true);
	for (int i = 0; i < nsend; i++) {
		struct tr_sender *t = &snd[i];

		pthread_join(t->thr, NULL);
		pthread_join(t->rthr, NULL);
		EXPECT_TRUE(t->eof) TH_LOG("receiver %d: %s after %llu bytes", i,
					   st_errname(t->err), (unsigned long long)t->got);
		EXPECT_EQ(t->sent, t->got) TH_LOG("receiver %d: sendfile reported %llu, read %llu",
						  i, (unsigned long long)t->sent,
						  (unsigned long long)t->got);
		total += t->got;
		zeros += t->zeros;
		passes += t->passes;
		close(t->fd);
		close(t->peer);
		free(t->chunks);
	}
	TH_LOG("%d senders, %d cuts in %lld s: %llu bytes, %llu passes, %llu zeroed bytes",
	       nsend, cuts, secs, (unsigned long long)total, (unsigned long long)passes,
	       (unsigned long long)zeros);
	close(tr_file);
	free(tr_exp);
	ST_ASSERT_CLEAN();
}

/* ============ module unload under load (alone, last) ============ */

static int st_delete_module(const char *name)
{
	return syscall(__NR_delete_module, name, O_NONBLOCK) ? -errno : 0;
}

static int st_load_module(const char *path)
{
	size_t n = strlen(path);
	/* MODULE_INIT_COMPRESSED_FILE: DKMS installs .ko.xz on Debian */
	int flags = (n > 3 && (!strcmp(path + n - 3, ".xz") || !strcmp(path + n - 3, ".gz"))) ||
		    (n > 4 && !strcmp(path + n - 4, ".zst")) ? 4 : 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret;

	if (fd < 0)
		return -errno;
	ret = syscall(__NR_finit_module, fd, "", flags) ? -errno : 0;
	close(fd);
	return ret;
}

TEST_F_TIMEOUT(st, unload_under_load, ST_TIMEOUT)
{
	const char *ko = getenv("OSSUARY_KO");
	int npairs = 4, refused = 0, ret;
	struct ft_ep *eps;
	pthread_t thr[4 * 2 * 4];
	void *(*fns[2])(void *) = { ft_writer, ft_reader };
	long long t0 = oss_now_ms(), t1;
	uint64_t total = 0;

	if (st_env("OSSUARY_STRESS_UNLOAD", 0) != 1 || !ko)
		SKIP(return, "optional: set OSSUARY_STRESS_UNLOAD=1 OSSUARY_KO=<ossuary.ko> (unloads the module)");
	ASSERT_EQ(0, access(ko, R_OK)) TH_LOG("%s: %s", ko, strerror(errno));
	eps = calloc(2 * npairs, sizeof(*eps));
	ASSERT_NE(NULL, eps);
	ft_filebuf = malloc(FT_FILE_LEN);
	ASSERT_NE(NULL, ft_filebuf);
	st_stream(0xf11e, 0, ft_filebuf, FT_FILE_LEN);
	ft_file = oss_tmpfile(TMPDIR, 0, 0);
	ASSERT_GE(ft_file, 0);
	ASSERT_EQ(FT_FILE_LEN, pwrite(ft_file, ft_filebuf, FT_FILE_LEN, 0));
	for (int i = 0; i < npairs; i++) {
		int c, s;

		ASSERT_EQ(0, oss_tcp_pair(i % 2 ? AF_INET6 : AF_INET, &c, &s));
		ASSERT_EQ(0, st_offload_pair(c, s, i));
		for (int d = 0; d < 2; d++) {
			struct ft_ep *e = &eps[2 * i + d];

			e->fd = d ? s : c;
			e->idx = 2 * i + d;
			e->seed = st_mix(0xab000 + 2 * i + d);
			e->want = 4 << 20;
			e->deadline = t0 + limit_ms();
			e->peer = &eps[2 * i + 1 - d];
			st_hash_init(&e->tx);
			st_hash_init(&e->rx);
		}
	}
	for (int i = 0; i < 2 * npairs; i++)
		for (int k = 0; k < 2; k++) {
			eps[i].fds[k] = dup(eps[i].fd);
			ASSERT_GE(eps[i].fds[k], 0);
		}
	for (int i = 0; i < 2 * npairs; i++)
		for (int k = 0; k < 2; k++) {
			ASSERT_EQ(0, pthread_create(&thr[2 * i + k], NULL, fns[k], &eps[i]));
		}
	for (int i = 0; i < 2 * npairs; i++)
		close(eps[i].fd);
	/* while the streams run: every unload is refused */
	for (;;) {
		bool running = false;

		for (int i = 0; i < 2 * npairs; i++)
			running |= !atomic_load(&eps[i].reader_done);
		if (!running)
			break;
		ret = st_delete_module("ossuary");
		if (!ret) {
			/* the streams' sockets were still open: never */
			st_fail("unload: delete_module succeeded with offloaded sockets open");
			break;
		}
		if (ret != -EWOULDBLOCK && ret != -EBUSY)
			st_fail("unload: delete_module under load: %s", strerror(-ret));
		refused++;
		oss_msleep(20);
	}
	for (int i = 0; i < 4 * npairs; i++)
		pthread_join(thr[i], NULL);
	for (int i = 0; i < 2 * npairs; i++) {
		uint8_t h1[32], h2[32];

		st_hash_final(&eps[i].tx, h1);
		st_hash_final(&eps[i].peer->rx, h2);
		total += eps[i].peer->rx.bytes;
		EXPECT_EQ(0, memcmp(h1, h2, 32)) TH_LOG("ep %d: SHA-256 differs", i);
		EXPECT_EQ(eps[i].want, eps[i].peer->rx.bytes);
	}
	ST_ASSERT_CLEAN();
	EXPECT_GT(refused, 0);
	/* every socket is closed: the unload goes through (sockets may linger a moment) */
	t1 = oss_now_ms();
	do {
		ret = st_delete_module("ossuary");
		if (ret)
			oss_msleep(100);
	} while (ret && oss_now_ms() - t1 < 30000);
	ASSERT_EQ(0, ret) TH_LOG("delete_module after the last close: %s", strerror(-ret));
	EXPECT_EQ(0, oss_ulp_listed());
	TH_LOG("unloaded %.1f s after the last close; %d refusals under load (%llu bytes)",
	       (oss_now_ms() - t1) / 1000.0, refused, (unsigned long long)total);
	/* and back, working */
	ret = st_load_module(ko);
	ASSERT_EQ(0, ret) TH_LOG("finit_module %s: %s", ko, strerror(-ret));
	ASSERT_EQ(1, oss_ulp_listed());
	(void)0;
	{
		int c, s;
		char b[6] = {};

		ASSERT_EQ(0, oss_tcp_pair(AF_INET, &c, &s));
		ASSERT_EQ(0, st_offload_pair(c, s, 99));
		ASSERT_EQ(5, send(c, "again", 5, 0));
		ASSERT_EQ(5, recv(s, b, 5, MSG_WAITALL));
		ASSERT_STREQ("again", b);
		close(c);
		close(s);
	}
	close(ft_file);
	free(ft_filebuf);
	free(eps);
}

TEST_HARNESS_MAIN
