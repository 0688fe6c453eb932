// SPDX-License-Identifier: GPL-2.0
/*
 * Ossuary key update selftests: setsockopt(OSSUARY_KEY_UPDATE, 0 or 1),
 * automatic updates every OSSUARY_REKEY_RECORDS records, and the receive
 * side ratcheting on its own when it opens KEY_UPDATE; mixed with peek,
 * poll, splice, sendfile and traffic in both directions at once.
 *
 *   FIXTURE(ossuary): both ends offloaded.
 *   FIXTURE(raw):     one end offloaded, the other speaks records itself
 *                     (wire.c), to see where each KEY_UPDATE falls.
 *
 * IPv4 and IPv6 variants of each.
 */
#include <pthread.h>
#include <sched.h>
#include <sys/sendfile.h>
#include <sys/uio.h>

#include <sodium.h>

#include "common.h"
#include "wire.h"

#include "kselftest_harness.h"
#include "fixtures.h"

#define TMPDIR	"/tmp"

static ssize_t recv_e(int fd, void *buf, size_t len, int flags)
{
	ssize_t n = recv(fd, buf, len, flags);

	return n < 0 ? -errno : n;
}

/* setsockopt(OSSUARY_KEY_UPDATE, v): 0 or -errno */
static int key_update(int fd, int v)
{
	return setsockopt(fd, SOL_OSSUARY, OSSUARY_KEY_UPDATE, &v, sizeof(v)) ?
	       -errno : 0;
}

static uint64_t gen_of(int fd, int dir)
{
	struct ossuary_dir_state st;

	if (oss_state(fd, dir, &st))
		return (uint64_t)-1;
	return st.generation;
}

static uint64_t seq_of(int fd, int dir)
{
	struct ossuary_dir_state st;

	if (oss_state(fd, dir, &st))
		return (uint64_t)-1;
	return st.seq;
}

/*
 * poll(POLLIN) then a non-blocking read, until want bytes came or the
 * deadline passed. A wake-up with nothing to read (EAGAIN) is counted in
 * *spurious: the uapi header says EPOLLIN means a whole DATA record, an
 * error or the end of the stream, and that a KEY_UPDATE is acted on as
 * it arrives, so there should be none.
 */
static ssize_t poll_read(int fd, void *buf, size_t want, int ms, int *spurious)
{
	long long end = oss_now_ms() + ms;
	size_t got = 0;

	*spurious = 0;
	while (got < want) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long long left = end - oss_now_ms();
		ssize_t n;

		if (left <= 0)
			break;
		if (poll(&p, 1, (int)left) != 1)
			break;
		n = recv(fd, (uint8_t *)buf + got, want - got, MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN) {
			(*spurious)++;
			continue;
		}
		if (n <= 0)
			return got ? (ssize_t)got : (n < 0 ? -errno : 0);
		got += n;
	}
	return got;
}

/* ========================= both ends offloaded ========================= */

/* ---- many key updates, both directions at once ---- */

struct stream_end {
	int fd;
	unsigned int seed;
	int updates;		/* KEY_UPDATE(0) after each of this many writes */
	/* writer */
	pthread_t wthr;
	size_t written;
	int werr;
	const char *wstep;
	uint8_t wdigest[crypto_hash_sha256_BYTES];
	/* reader */
	pthread_t rthr;
	size_t nread;
	int rerr;
	uint8_t rdigest[crypto_hash_sha256_BYTES];
};

static uint32_t xs32(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/*
 * Random-sized writes (1..4096 bytes, a quarter of them with MSG_MORE),
 * a KEY_UPDATE(0) after each, then DISCONNECT(0) by shutdown.
 */
static void *rekey_writer(void *arg)
{
	struct stream_end *e = arg;
	crypto_hash_sha256_state st;
	uint32_t x = e->seed * 2654435761u + 7;
	uint8_t buf[4096];

	crypto_hash_sha256_init(&st);
	for (int i = 0; i < e->updates; i++) {
		size_t n = 1 + xs32(&x) % sizeof(buf);
		int flags = xs32(&x) % 4 == 0 ? MSG_MORE : 0;
		ssize_t w;

		for (size_t k = 0; k < n; k++)
			buf[k] = (uint8_t)xs32(&x);
		for (size_t done = 0; done < n; done += w) {
			w = send(e->fd, buf + done, n - done, flags | MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR) {
				w = 0;
				continue;
			}
			if (w <= 0) {
				e->werr = w < 0 ? errno : EIO;
				e->wstep = "send";
				return NULL;
			}
		}
		crypto_hash_sha256_update(&st, buf, n);
		e->written += n;
		w = key_update(e->fd, 0);
		if (w) {
			e->werr = (int)-w;
			e->wstep = "key update";
			return NULL;
		}
	}
	/* the last record may still be open (MSG_MORE): shutdown seals it */
	if (shutdown(e->fd, SHUT_WR)) {
		e->werr = errno;
		e->wstep = "shutdown";
	}
	crypto_hash_sha256_final(&st, e->wdigest);
	return NULL;
}

/* Read to the end of the stream, hashing */
static void *hash_reader(void *arg)
{
	struct stream_end *e = arg;
	crypto_hash_sha256_state st;
	uint8_t buf[16384];

	crypto_hash_sha256_init(&st);
	for (;;) {
		/* odd sizes so reads straddle records */
		size_t want = 1 + (e->nread * 31 + 977) % sizeof(buf);
		ssize_t n = recv(e->fd, buf, want, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			e->rerr = errno;
			break;
		}
		if (n == 0)
			break;
		crypto_hash_sha256_update(&st, buf, n);
		e->nread += n;
	}
	crypto_hash_sha256_final(&st, e->rdigest);
	return NULL;
}

TEST_F_TIMEOUT(ossuary, key_updates_1000_both_directions, 900)
{
	enum { UPDATES = 1000 };
	struct stream_end a = { .fd = self->fd, .seed = 31, .updates = UPDATES };
	struct stream_end b = { .fd = self->cfd, .seed = 32, .updates = UPDATES };
	long long tx0 = oss_stat_get("OssuaryKeyUpdatesTx");
	long long rx0 = oss_stat_get("OssuaryKeyUpdatesRx");
	long long t0 = oss_now_ms();

	ASSERT_EQ(0, sodium_init() < 0);
	oss_set_timeouts(self->fd, 60);
	oss_set_timeouts(self->cfd, 60);
	ASSERT_EQ(0, pthread_create(&a.rthr, NULL, hash_reader, &a));
	ASSERT_EQ(0, pthread_create(&b.rthr, NULL, hash_reader, &b));
	ASSERT_EQ(0, pthread_create(&a.wthr, NULL, rekey_writer, &a));
	ASSERT_EQ(0, pthread_create(&b.wthr, NULL, rekey_writer, &b));
	pthread_join(a.wthr, NULL);
	pthread_join(b.wthr, NULL);
	pthread_join(a.rthr, NULL);
	pthread_join(b.rthr, NULL);
	TH_LOG("%zu + %zu bytes, %d key updates each way, in %lld ms",
	       a.written, b.written, UPDATES, oss_now_ms() - t0);

	EXPECT_EQ(0, a.werr) TH_LOG("client %s: %s", a.wstep, strerror(a.werr));
	EXPECT_EQ(0, b.werr) TH_LOG("server %s: %s", b.wstep, strerror(b.werr));
	EXPECT_EQ(0, a.rerr) TH_LOG("client read: %s", strerror(a.rerr));
	EXPECT_EQ(0, b.rerr) TH_LOG("server read: %s", strerror(b.rerr));
	/* client -> server, server -> client */
	EXPECT_EQ(a.written, b.nread);
	EXPECT_EQ(0, memcmp(a.wdigest, b.rdigest, sizeof(a.wdigest)))
		TH_LOG("client -> server: SHA-256 differs");
	EXPECT_EQ(b.written, a.nread);
	EXPECT_EQ(0, memcmp(b.wdigest, a.rdigest, sizeof(b.wdigest)))
		TH_LOG("server -> client: SHA-256 differs");
	EXPECT_EQ(UPDATES, gen_of(self->fd, OSSUARY_TX));
	EXPECT_EQ(UPDATES, gen_of(self->cfd, OSSUARY_RX));
	EXPECT_EQ(UPDATES, gen_of(self->cfd, OSSUARY_TX));
	EXPECT_EQ(UPDATES, gen_of(self->fd, OSSUARY_RX));
	if (tx0 >= 0 && rx0 >= 0) {
		EXPECT_EQ(tx0 + 2 * UPDATES, oss_stat_get("OssuaryKeyUpdatesTx"));
		EXPECT_EQ(rx0 + 2 * UPDATES, oss_stat_get("OssuaryKeyUpdatesRx"));
	}
}

/* Key updates from a second thread while a writer blocks on a slow reader */
struct ku_thread {
	pthread_t thr;
	int fd, n, err;
	int done;
};

static void *ku_loop(void *arg)
{
	struct ku_thread *k = arg;

	for (int i = 0; i < k->n; i++) {
		int ret = key_update(k->fd, 0);

		if (ret) {
			k->err = -ret;
			break;
		}
		k->done++;
		oss_msleep(1);
	}
	return NULL;
}

TEST_F_TIMEOUT(ossuary, key_updates_race_blocked_writer, 300)
{
	struct stream_end rd = { .fd = self->cfd };
	struct ku_thread k = { .fd = self->fd, .n = 200 };
	size_t len = 1 << 20;
	uint8_t *out = malloc(len), digest[crypto_hash_sha256_BYTES];
	int sndbuf = 16384;

	ASSERT_NE(NULL, out);
	ASSERT_EQ(0, sodium_init() < 0);
	oss_fill(out, len, 33);
	crypto_hash_sha256(digest, out, len);
	oss_set_timeouts(self->fd, 60);
	oss_set_timeouts(self->cfd, 60);
	ASSERT_EQ(0, setsockopt(self->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)));
	ASSERT_EQ(0, pthread_create(&rd.rthr, NULL, hash_reader, &rd));
	ASSERT_EQ(0, pthread_create(&k.thr, NULL, ku_loop, &k));
	for (size_t off = 0; off < len; off += 65536) {
		ASSERT_EQ(65536, oss_write_all(self->fd, out + off, 65536));
	}
	pthread_join(k.thr, NULL);
	ASSERT_EQ(0, shutdown(self->fd, SHUT_WR));
	pthread_join(rd.rthr, NULL);
	EXPECT_EQ(0, k.err) TH_LOG("key update: %s", strerror(k.err));
	EXPECT_EQ(0, rd.rerr) TH_LOG("reader: %s", strerror(rd.rerr));
	EXPECT_EQ(len, rd.nread);
	EXPECT_EQ(0, memcmp(digest, rd.rdigest, sizeof(digest)));
	EXPECT_EQ((uint64_t)k.done, gen_of(self->fd, OSSUARY_TX));
	EXPECT_EQ((uint64_t)k.done, gen_of(self->cfd, OSSUARY_RX));
	free(out);
}

/* ---- peek ---- */

/* Peek a record, then the peer updates its key and sends more; read all */
TEST_F(ossuary, rekey_peek_then_update)
{
	char buf[64] = {};

	ASSERT_EQ(6, send(self->fd, "before", 6, 0));
	ASSERT_EQ(6, recv(self->cfd, buf, 6, MSG_PEEK | MSG_WAITALL));
	EXPECT_EQ(0, memcmp(buf, "before", 6));
	ASSERT_EQ(0, key_update(self->fd, 0));
	ASSERT_EQ(5, send(self->fd, "after", 5, 0));
	/* the peeked record is still the current one */
	memset(buf, 0, sizeof(buf));
	ASSERT_EQ(6, recv(self->cfd, buf, 6, MSG_PEEK));
	EXPECT_STREQ("before", buf);
	/* a peek goes on across the KEY_UPDATE, as a read does */
	memset(buf, 0, sizeof(buf));
	ASSERT_EQ(11, recv(self->cfd, buf, 11, MSG_PEEK | MSG_WAITALL));
	EXPECT_STREQ("beforeafter", buf);
	memset(buf, 0, sizeof(buf));
	ASSERT_EQ(11, recv(self->cfd, buf, 11, MSG_WAITALL));
	EXPECT_STREQ("beforeafter", buf);
	EXPECT_EQ(1, gen_of(self->cfd, OSSUARY_RX));
	EXPECT_EQ(1, seq_of(self->cfd, OSSUARY_RX));
	EXPECT_EQ(-EAGAIN, recv_e(self->cfd, buf, 1, MSG_DONTWAIT));
}

/* Data, KEY_UPDATE, data: a peek sees the first record, then the second */
TEST_F(ossuary, rekey_peek_across_update)
{
	char buf[64] = {};

	ASSERT_EQ(6, send(self->fd, "first-", 6, 0));
	ASSERT_EQ(0, key_update(self->fd, 0));
	ASSERT_EQ(6, send(self->fd, "second", 6, 0));
	/* a peek opens the KEY_UPDATE and the record under the new key */
	ASSERT_EQ(12, recv(self->cfd, buf, 12, MSG_PEEK | MSG_WAITALL));
	EXPECT_STREQ("first-second", buf);
	EXPECT_EQ(1, gen_of(self->cfd, OSSUARY_RX));
	memset(buf, 0, sizeof(buf));
	ASSERT_EQ(6, recv(self->cfd, buf, 6, 0));
	EXPECT_STREQ("first-", buf);
	memset(buf, 0, sizeof(buf));
	ASSERT_EQ(6, recv(self->cfd, buf, sizeof(buf), MSG_PEEK));
	EXPECT_STREQ("second", buf);
	memset(buf, 0, sizeof(buf));
	ASSERT_EQ(6, recv(self->cfd, buf, sizeof(buf), 0));
	EXPECT_STREQ("second", buf);
	EXPECT_EQ(-EAGAIN, recv_e(self->cfd, buf, 1, MSG_DONTWAIT));
}

/* ---- poll ---- */

/* KEY_UPDATE then data at once: poll wakes, the read crosses the update */
TEST_F(ossuary, rekey_poll_pending)
{
	char buf[64] = {};
	int spurious;

	ASSERT_EQ(0, key_update(self->fd, 0));
	ASSERT_EQ(6, send(self->fd, "wakeup", 6, 0));
	ASSERT_EQ(6, poll_read(self->cfd, buf, 6, 3000, &spurious));
	EXPECT_STREQ("wakeup", buf);
	EXPECT_EQ(0, spurious) TH_LOG("%d wake-ups with nothing to read", spurious);
	EXPECT_EQ(1, gen_of(self->cfd, OSSUARY_RX));
}

/*
 * A reader already in poll(); the peer updates its key, waits, then sends:
 * poll wakes for the data (not for the KEY_UPDATE alone) and the data is
 * read under the new key.
 */
TEST_F(ossuary, rekey_poll_delay)
{
	char buf[64] = {};
	long long t0;
	int spurious;
	pid_t pid;

	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		oss_msleep(200);
		if (key_update(self->fd, 0))
			_exit(1);
		oss_msleep(300);
		_exit(send(self->fd, "later", 5, 0) == 5 ? 0 : 2);
	}
	t0 = oss_now_ms();
	EXPECT_EQ(5, poll_read(self->cfd, buf, 5, 4000, &spurious))
		TH_LOG("after %lld ms", oss_now_ms() - t0);
	EXPECT_STREQ("later", buf);
	EXPECT_EQ(0, spurious) TH_LOG("%d wake-ups with nothing to read", spurious);
	EXPECT_EQ(0, oss_wait_child(pid));
	EXPECT_EQ(1, gen_of(self->cfd, OSSUARY_RX));
	/* and a blocking reader crosses the next update the same way */
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		oss_msleep(200);
		if (key_update(self->fd, 0))
			_exit(1);
		oss_msleep(200);
		_exit(send(self->fd, "again", 5, 0) == 5 ? 0 : 2);
	}
	memset(buf, 0, sizeof(buf));
	EXPECT_EQ(5, recv(self->cfd, buf, sizeof(buf), 0));
	EXPECT_STREQ("again", buf);
	EXPECT_EQ(0, oss_wait_child(pid));
	EXPECT_EQ(2, gen_of(self->cfd, OSSUARY_RX));
}

/* ---- KEY_UPDATE(1) ---- */

TEST_F(ossuary, key_update_request_answered)
{
	char buf[8] = {};

	ASSERT_EQ(0, key_update(self->fd, 1));
	ASSERT_EQ(1, send(self->fd, "x", 1, 0));
	ASSERT_EQ(1, recv(self->cfd, buf, 1, MSG_WAITALL));
	EXPECT_EQ('x', buf[0]);
	EXPECT_EQ(1, gen_of(self->cfd, OSSUARY_RX));
	/* the server answered with its own KEY_UPDATE(0) */
	EXPECT_EQ(1, gen_of(self->cfd, OSSUARY_TX));
	ASSERT_EQ(1, send(self->cfd, "y", 1, 0));
	ASSERT_EQ(1, recv(self->fd, buf, 1, MSG_WAITALL));
	EXPECT_EQ('y', buf[0]);
	EXPECT_EQ(1, gen_of(self->fd, OSSUARY_RX));
	/* an answer is KEY_UPDATE(0): the client does not update again */
	EXPECT_EQ(1, gen_of(self->fd, OSSUARY_TX));

	/* the other way round */
	ASSERT_EQ(0, key_update(self->cfd, 1));
	ASSERT_EQ(1, send(self->cfd, "z", 1, 0));
	ASSERT_EQ(1, recv(self->fd, buf, 1, MSG_WAITALL));
	EXPECT_EQ('z', buf[0]);
	EXPECT_EQ(2, gen_of(self->fd, OSSUARY_TX));
	ASSERT_EQ(1, send(self->fd, "w", 1, 0));
	ASSERT_EQ(1, recv(self->cfd, buf, 1, MSG_WAITALL));
	EXPECT_EQ('w', buf[0]);
	EXPECT_EQ(2, gen_of(self->cfd, OSSUARY_RX));
	EXPECT_EQ(2, gen_of(self->cfd, OSSUARY_TX));
	EXPECT_EQ(2, gen_of(self->fd, OSSUARY_RX));
}

/*
 * The answer to KEY_UPDATE(1) is sealed by the reader that opened the
 * request, before its read returns: no work item has to run first, so
 * the generation is already there right after the read, every time.
 */
TEST_F(ossuary, key_update_answer_sealed_before_read_returns)
{
	struct sched_param sp = { .sched_priority = 1 };
	char buf[8] = {};
	cpu_set_t cpus;

	/*
	 * Both ends in this thread, on one CPU, at a real-time priority:
	 * the work item the request schedules on this CPU cannot run until
	 * the test sleeps, and it never needs to (loopback delivers during
	 * send()).  So a read that left the answer to it fails here.
	 */
	CPU_ZERO(&cpus);
	CPU_SET(0, &cpus);
	if (sched_setaffinity(0, sizeof(cpus), &cpus) ||
	    sched_setscheduler(0, SCHED_FIFO, &sp))
		TH_LOG("not pinned at SCHED_FIFO (%s): weaker test", strerror(errno));
	for (int i = 1; i <= 50; i++) {
		ASSERT_EQ(0, key_update(self->fd, 1));
		ASSERT_EQ(1, send(self->fd, "x", 1, 0));
		ASSERT_EQ(1, recv(self->cfd, buf, 1, MSG_WAITALL));
		ASSERT_EQ(i, gen_of(self->cfd, OSSUARY_RX));
		ASSERT_EQ(i, gen_of(self->cfd, OSSUARY_TX)) TH_LOG("round %d", i);
		ASSERT_EQ(1, send(self->cfd, "y", 1, 0));
		ASSERT_EQ(1, recv(self->fd, buf, 1, MSG_WAITALL));
		ASSERT_EQ(i, gen_of(self->fd, OSSUARY_RX));
	}
}

/* ---- splice across an update ---- */

TEST_F(ossuary, splice_across_key_update)
{
	uint8_t out[16000], in[16000];
	size_t got = 0;
	int p[2];

	oss_fill(out, sizeof(out), 34);
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(8000, send(self->fd, out, 8000, 0));
	ASSERT_EQ(0, key_update(self->fd, 0));
	ASSERT_EQ(8000, send(self->fd, out + 8000, 8000, 0));
	while (got < sizeof(out)) {
		ssize_t n = splice(self->cfd, NULL, p[1], NULL, sizeof(out) - got, 0);

		ASSERT_GT(n, 0) TH_LOG("splice after %zu: %s", got, strerror(errno));
		got += n;
	}
	ASSERT_EQ((ssize_t)sizeof(in), read(p[0], in, sizeof(in)));
	EXPECT_EQ(0, memcmp(out, in, sizeof(out)));
	EXPECT_EQ(1, gen_of(self->cfd, OSSUARY_RX));
	close(p[0]);
	close(p[1]);
}

/* Peek, the update comes, splice takes the peeked record and the next */
TEST_F(ossuary, rekey_peek_splice)
{
	char buf[64] = {};
	int p[2];

	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(9, send(self->fd, "old-key--", 9, 0));
	ASSERT_EQ(9, recv(self->cfd, buf, 9, MSG_PEEK | MSG_WAITALL));
	ASSERT_EQ(0, key_update(self->fd, 0));
	ASSERT_EQ(7, send(self->fd, "new-key", 7, 0));
	ASSERT_EQ(9, splice(self->cfd, NULL, p[1], NULL, 9, 0));
	ASSERT_EQ(7, splice(self->cfd, NULL, p[1], NULL, sizeof(buf), 0));
	memset(buf, 0, sizeof(buf));
	ASSERT_EQ(16, read(p[0], buf, sizeof(buf)));
	EXPECT_STREQ("old-key--new-key", buf);
	EXPECT_EQ(1, gen_of(self->cfd, OSSUARY_RX));
	close(p[0]);
	close(p[1]);
}

/* ---- sendfile with key updates ---- */

struct file_sender {
	pthread_t thr;
	int sock, file;
	size_t chunks[4];	/* sendfile counts; SIZE_MAX: to EOF */
	int nchunks;
	int ku_between;		/* KEY_UPDATE(0) after each chunk but the last */
	size_t sent;
	int err;
};

static void *file_sender_fn(void *arg)
{
	struct file_sender *s = arg;
	off_t off = 0;

	for (int i = 0; i < s->nchunks; i++) {
		size_t want = s->chunks[i];
		ssize_t n = oss_sendfile_all(s->sock, s->file, &off,
					     want == SIZE_MAX ? (size_t)1 << 30 : want);

		if (n < 0) {
			s->err = (int)-n;
			return NULL;
		}
		s->sent += n;
		if (want != SIZE_MAX && (size_t)n != want) {
			s->err = EIO;
			return NULL;
		}
		if (s->ku_between && i < s->nchunks - 1) {
			int ret = key_update(s->sock, 0);

			if (ret) {
				s->err = -ret;
				return NULL;
			}
		}
	}
	return NULL;
}

/* OSSUARY_REKEY_RECORDS across a sendfile, both ends offloaded */
TEST_F_TIMEOUT(ossuary, rekey_records_sendfile, 120)
{
	size_t len = 256 << 10;
	uint8_t *exp = malloc(len), *in = malloc(len);
	struct file_sender s = { .sock = self->fd, .nchunks = 1,
				 .chunks = { SIZE_MAX } };
	uint64_t budget = 2, gen;

	ASSERT_NE(NULL, exp);
	ASSERT_NE(NULL, in);
	oss_fill(exp, len, 35);
	s.file = oss_tmpfile(TMPDIR, len, 35);
	ASSERT_GE(s.file, 0);
	ASSERT_EQ(0, setsockopt(self->fd, SOL_OSSUARY, OSSUARY_REKEY_RECORDS, &budget,
				sizeof(budget)));
	ASSERT_EQ(0, pthread_create(&s.thr, NULL, file_sender_fn, &s));
	EXPECT_EQ((ssize_t)len, oss_read_full(self->cfd, in, len, NULL));
	pthread_join(s.thr, NULL);
	EXPECT_EQ(0, s.err) TH_LOG("sendfile: %s", strerror(s.err));
	EXPECT_EQ(len, s.sent);
	EXPECT_EQ(0, memcmp(exp, in, len));
	gen = gen_of(self->fd, OSSUARY_TX);
	/* at least 16 records of at most 16 KiB: at least 7 updates */
	EXPECT_GE(gen, 7);
	EXPECT_EQ(gen, gen_of(self->cfd, OSSUARY_RX));
	EXPECT_GE(seq_of(self->fd, OSSUARY_TX), 1);
	EXPECT_LE(seq_of(self->fd, OSSUARY_TX), budget);
	close(s.file);
	free(exp);
	free(in);
}

/* sendfile, KEY_UPDATE, sendfile, KEY_UPDATE, sendfile to EOF */
TEST_F_TIMEOUT(ossuary, key_update_between_sendfile_chunks, 120)
{
	size_t len = 100000;
	uint8_t *exp = malloc(len), *in = malloc(len);
	struct file_sender s = { .sock = self->fd, .nchunks = 3, .ku_between = 1,
				 .chunks = { 30000, 40000, SIZE_MAX } };

	ASSERT_NE(NULL, exp);
	ASSERT_NE(NULL, in);
	oss_fill(exp, len, 36);
	s.file = oss_tmpfile(TMPDIR, len, 36);
	ASSERT_GE(s.file, 0);
	ASSERT_EQ(0, pthread_create(&s.thr, NULL, file_sender_fn, &s));
	EXPECT_EQ((ssize_t)len, oss_read_full(self->cfd, in, len, NULL));
	pthread_join(s.thr, NULL);
	EXPECT_EQ(0, s.err) TH_LOG("sender: %s", strerror(s.err));
	EXPECT_EQ(len, s.sent);
	EXPECT_EQ(0, memcmp(exp, in, len));
	EXPECT_EQ(2, gen_of(self->fd, OSSUARY_TX));
	EXPECT_EQ(2, gen_of(self->cfd, OSSUARY_RX));
	close(s.file);
	free(exp);
	free(in);
}

/* ==================== one end offloaded, one end raw ==================== */

static ssize_t send_to_k(FIXTURE_DATA(raw) *self, uint8_t type,
			 const void *pt, size_t len)
{
	uint8_t rec[WIRE_MAX_REC + 64];
	size_t n = wire_seal(&self->to_k, type, pt, len, rec);

	return oss_write_all(self->pfd, rec, n);
}

/* Read and open the kernel's next record; plaintext length or -1 */
static ssize_t open_from_k(FIXTURE_DATA(raw) *self, uint8_t *pt, uint8_t *type)
{
	uint8_t rec[WIRE_MAX_REC];
	ssize_t n = wire_read_record(self->pfd, rec);

	if (n <= 0)
		return -1;
	return wire_open(&self->from_k, rec, n, pt, type);
}

/*
 * KEY_UPDATE(1) from the peer: once the application has read past it,
 * the kernel sends KEY_UPDATE(0) by itself, before any data of ours.
 */
TEST_F(raw, key_update_request_answered_unprompted)
{
	uint8_t one = 1, pt[WIRE_MAX_PT], type;
	char buf[8] = {};

	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_KEY_UPDATE, &one, 1), 0);
	wire_dir_next(&self->to_k);
	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "ping", 4), 0);
	ASSERT_EQ(4, recv(self->kfd, buf, 4, MSG_WAITALL));
	EXPECT_STREQ("ping", buf);
	/* no send by the application: the answer comes anyway */
	ASSERT_EQ(1, open_from_k(self, pt, &type)) TH_LOG("no KEY_UPDATE(0) answer");
	EXPECT_EQ(OSSUARY_RECORD_KEY_UPDATE, type);
	EXPECT_EQ(0, pt[0]);
	wire_dir_next(&self->from_k);
	EXPECT_EQ(1, gen_of(self->kfd, OSSUARY_TX));
	ASSERT_EQ(4, send(self->kfd, "pong", 4, 0));
	ASSERT_EQ(4, open_from_k(self, pt, &type)) TH_LOG("pong not under next(S), seq 0");
	EXPECT_EQ(0, memcmp(pt, "pong", 4));
}

/*
 * PROTOCOL.md: the receiver of KEY_UPDATE(1) seals KEY_UPDATE(0) as its
 * very next record.  The application answers the data that followed the
 * request at once; on the wire the update still comes first, and the
 * answer is under the next secret.
 */
TEST_F(raw, key_update_answer_is_next_record)
{
	uint8_t one = 1, pt[WIRE_MAX_PT], type;
	char buf[8] = {};
	int i;

	for (i = 0; i < 20; i++) {
		ASSERT_GT(send_to_k(self, OSSUARY_RECORD_KEY_UPDATE, &one, 1), 0);
		wire_dir_next(&self->to_k);
		ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "go", 2), 0);
		ASSERT_EQ(2, recv(self->kfd, buf, 2, MSG_WAITALL));
		ASSERT_EQ(5, send(self->kfd, "reply", 5, 0));
		ASSERT_EQ(1, open_from_k(self, pt, &type)) TH_LOG("round %d", i);
		EXPECT_EQ(OSSUARY_RECORD_KEY_UPDATE, type);
		EXPECT_EQ(0, pt[0]);
		wire_dir_next(&self->from_k);
		ASSERT_EQ(5, open_from_k(self, pt, &type)) TH_LOG("round %d", i);
		EXPECT_EQ(0, memcmp(pt, "reply", 5));
	}
	EXPECT_EQ(20, gen_of(self->kfd, OSSUARY_TX));
	EXPECT_EQ(20, gen_of(self->kfd, OSSUARY_RX));
}

/*
 * KEY_UPDATE(1) alone, and the application never reads: control records
 * are acted on as they arrive, so RX ratchets and the answer goes out.
 */
TEST_F(raw, key_update_request_answered_on_arrival)
{
	uint8_t one = 1, pt[WIRE_MAX_PT], type;
	char buf[8] = {};

	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_KEY_UPDATE, &one, 1), 0);
	wire_dir_next(&self->to_k);
	ASSERT_EQ(1, open_from_k(self, pt, &type)) TH_LOG("no KEY_UPDATE(0) answer");
	EXPECT_EQ(OSSUARY_RECORD_KEY_UPDATE, type);
	EXPECT_EQ(0, pt[0]);
	wire_dir_next(&self->from_k);
	EXPECT_EQ(1, gen_of(self->kfd, OSSUARY_RX));
	EXPECT_EQ(1, gen_of(self->kfd, OSSUARY_TX));
	/* nothing readable was made of it */
	EXPECT_EQ(0, oss_wait_in(self->kfd, 100) & POLLIN);
	EXPECT_EQ(-EAGAIN, recv_e(self->kfd, buf, sizeof(buf), MSG_DONTWAIT));
	/* and both directions go on under the new secrets */
	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "in", 2), 0);
	ASSERT_EQ(2, recv(self->kfd, buf, 2, MSG_WAITALL));
	EXPECT_STREQ("in", buf);
	ASSERT_EQ(3, send(self->kfd, "out", 3, 0));
	ASSERT_EQ(3, open_from_k(self, pt, &type));
	EXPECT_EQ(0, memcmp(pt, "out", 3));
}

/*
 * OSSUARY_REKEY_RECORDS = N across a sendfile: exactly N DATA records
 * under each secret, then KEY_UPDATE(0); the bytes are the file's.
 */
TEST_F_TIMEOUT(raw, rekey_records_across_sendfile, 120)
{
	size_t len = 200000, pos = 0;
	uint8_t *exp = malloc(len), pt[WIRE_MAX_PT], type;
	struct file_sender s = { .sock = self->kfd, .nchunks = 1,
				 .chunks = { SIZE_MAX } };
	uint64_t budget = 3;
	unsigned int kus = 0, in_seg = 0, records = 0;

	ASSERT_NE(NULL, exp);
	oss_fill(exp, len, 37);
	s.file = oss_tmpfile(TMPDIR, len, 37);
	ASSERT_GE(s.file, 0);
	oss_set_timeouts(self->pfd, 30);
	ASSERT_EQ(0, setsockopt(self->kfd, SOL_OSSUARY, OSSUARY_REKEY_RECORDS, &budget,
				sizeof(budget)));
	ASSERT_EQ(0, pthread_create(&s.thr, NULL, file_sender_fn, &s));
	while (pos < len) {
		ssize_t n = open_from_k(self, pt, &type);

		ASSERT_GE(n, 0) TH_LOG("record %u after %zu bytes does not open", records, pos);
		records++;
		if (type == OSSUARY_RECORD_KEY_UPDATE) {
			ASSERT_EQ(1, n);
			EXPECT_EQ(0, pt[0]);
			EXPECT_EQ(budget, in_seg) TH_LOG("KEY_UPDATE after %u records", in_seg);
			wire_dir_next(&self->from_k);
			kus++;
			in_seg = 0;
			continue;
		}
		ASSERT_EQ(OSSUARY_RECORD_DATA, type);
		in_seg++;
		ASSERT_LE(in_seg, budget) TH_LOG("%u records under one secret", in_seg);
		ASSERT_LE(pos + n, len);
		ASSERT_EQ(0, memcmp(exp + pos, pt, n)) TH_LOG("bytes at %zu", pos);
		pos += n;
	}
	pthread_join(s.thr, NULL);
	EXPECT_EQ(0, s.err) TH_LOG("sendfile: %s", strerror(s.err));
	EXPECT_EQ(len, s.sent);
	EXPECT_GE(kus, (len / WIRE_MAX_PT + 1) / budget - 1);
	EXPECT_EQ(kus, gen_of(self->kfd, OSSUARY_TX));
	EXPECT_EQ(in_seg, seq_of(self->kfd, OSSUARY_TX));
	close(s.file);
	free(exp);
}

/*
 * sendfile, KEY_UPDATE, sendfile, KEY_UPDATE, sendfile to EOF, KEY_UPDATE,
 * write: each chunk's bytes all under its own secret (a sendfile leaves
 * no record open behind it, including one that ends at EOF).
 */
TEST_F_TIMEOUT(raw, key_update_between_sendfile_chunks, 120)
{
	size_t len = 100000, pos = 0, seg[5] = {};
	uint8_t *exp = malloc(len), pt[WIRE_MAX_PT], type;
	struct file_sender s = { .sock = self->kfd, .nchunks = 3, .ku_between = 1,
				 .chunks = { 30000, 40000, SIZE_MAX } };
	unsigned int gen = 0;

	ASSERT_NE(NULL, exp);
	oss_fill(exp, len, 38);
	s.file = oss_tmpfile(TMPDIR, len, 38);
	ASSERT_GE(s.file, 0);
	oss_set_timeouts(self->pfd, 30);
	ASSERT_EQ(0, pthread_create(&s.thr, NULL, file_sender_fn, &s));
	while (pos < len) {
		ssize_t n = open_from_k(self, pt, &type);

		ASSERT_GE(n, 0) TH_LOG("record after %zu bytes does not open", pos);
		if (type == OSSUARY_RECORD_KEY_UPDATE) {
			ASSERT_EQ(1, n);
			EXPECT_EQ(0, pt[0]);
			wire_dir_next(&self->from_k);
			ASSERT_LT(++gen, 4);
			continue;
		}
		ASSERT_EQ(OSSUARY_RECORD_DATA, type);
		ASSERT_LE(pos + n, len);
		ASSERT_EQ(0, memcmp(exp + pos, pt, n)) TH_LOG("bytes at %zu", pos);
		seg[gen] += n;
		pos += n;
	}
	pthread_join(s.thr, NULL);
	EXPECT_EQ(0, s.err) TH_LOG("sender: %s", strerror(s.err));
	EXPECT_EQ(len, s.sent);
	EXPECT_EQ(30000, seg[0]);
	EXPECT_EQ(40000, seg[1]);
	EXPECT_EQ(30000, seg[2]);
	/* after a sendfile that ended at EOF: update, then a write */
	ASSERT_EQ(0, key_update(self->kfd, 0));
	ASSERT_EQ(3, send(self->kfd, "end", 3, 0));
	ASSERT_EQ(1, open_from_k(self, pt, &type)) TH_LOG("bytes of the last sendfile after it");
	EXPECT_EQ(OSSUARY_RECORD_KEY_UPDATE, type);
	wire_dir_next(&self->from_k);
	ASSERT_EQ(3, open_from_k(self, pt, &type));
	EXPECT_EQ(0, memcmp(pt, "end", 3));
	EXPECT_EQ(3, gen_of(self->kfd, OSSUARY_TX));
	EXPECT_EQ(1, seq_of(self->kfd, OSSUARY_TX));
	close(s.file);
	free(exp);
}

TEST_HARNESS_MAIN
