/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The library against the real kernel module (issues #4 and #5): the
 * handshake always runs in userspace, then one end (or both) hands its
 * record layer to the kernel with ossuary_offload() and the other end
 * keeps the library's userspace record layer, on loopback TCP.
 *
 *  - kernel TX -> library RX and library TX -> kernel RX at once,
 *    OSSUARY_INTEROP_MIB (default 64) MiB each way in seeded writes of
 *    1 byte .. 64 KiB, SHA-256 of what was written against what was read;
 *  - key updates across the boundary: automatic (OSSUARY_REKEY_RECORDS)
 *    and explicit ones from the kernel, ossuary_key_update() from the
 *    library, KEY_UPDATE(1) answered on both sides, hundreds each way,
 *    counted against the generations the kernel reports;
 *  - the kernel sealing and opening records.json's key-update stream;
 *  - a full (mutually authenticated) handshake, then the kernel at both
 *    ends, IPv4 and IPv6, data both ways and a clean close both ways;
 *  - a record sent before the offload, and truncation (no DISCONNECT).
 *
 * Without the module (ossuary_offload() says OSSUARY_ERR_NO_KERNEL) each
 * case notes the skip and passes, except in the test VM (OSSUARY_VM
 * set), which loads the module: there its absence is a failure.
 *
 * The kernel end is driven with plain send()/recv()/setsockopt(), as an
 * application would after the offload, a writer and a reader thread on
 * the one socket. CHECK only runs on the main thread; threads store what
 * they saw.
 */
#define HARNESS_MAIN
#include "harness.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "internal.h"
#include "ossuary.h"
#include "uapi/linux/ossuary.h"
#include "util/sockpair.h"
#include "util/vectors.h"

#define KiB 1024
#define WRITE_MAX (64 * KiB)

/* Bytes each way for the bulk case: OSSUARY_INTEROP_MIB MiB, default 64. */
static size_t interop_bytes(void)
{
	const char *env = getenv("OSSUARY_INTEROP_MIB");
	char *end;
	unsigned long mib;

	if (!env || !*env)
		return (size_t)64 * MiB;
	mib = strtoul(env, &end, 10);
	/* a typo must not turn into a silently tiny (or zero) run */
	if (*end || mib == 0 || mib > 4096)
		harness_fail(__FILE__, __LINE__, "bad OSSUARY_INTEROP_MIB \"%s\"", env);
	return (size_t)mib * MiB;
}

/* The smaller cases scale down with a small OSSUARY_INTEROP_MIB. */
static size_t interop_bytes_at_most(size_t cap)
{
	size_t n = interop_bytes();

	return n < cap ? n : cap;
}

/* No module: skip, except in the VM, which loads it. */
static void no_module(void)
{
	if (getenv("OSSUARY_VM"))
		harness_fail(__FILE__, __LINE__,
			     "OSSUARY_VM is set but the ossuary module is not loaded");
	harness_note("no ossuary module here; skipped");
}

/* 1 when c's record layer is now in the kernel, 0 when there is no module. */
static int offload_or_skip(OssuaryConnection *c, int fd)
{
	int r = ossuary_offload(c, fd, 0);

	if (r == OSSUARY_ERR_NO_KERNEL) {
		no_module();
		return 0;
	}
	CHECK_EQ(r, OSSUARY_MODE_KERNEL);
	CHECK_EQ(ossuary_mode(c), OSSUARY_MODE_KERNEL);
	return 1;
}

static struct ossuary_dir_state dir_state(int fd, int dir)
{
	struct ossuary_dir_state st;
	socklen_t len = sizeof(st);

	memset(&st, 0xa5, sizeof(st));
	CHECK(getsockopt(fd, SOL_OSSUARY, dir, &st, &len) == 0);
	CHECK_EQ(len, sizeof(st));
	CHECK_EQ(st.version, OSSUARY_VERSION_2);
	CHECK_EQ(st.cipher, OSSUARY_CIPHER_CHACHA20_POLY1305);
	return st;
}

/* Both directions closed cleanly (DISCONNECT(0) sent and received). */
static void check_closed_cleanly(int fd)
{
	struct ossuary_dir_state tx = dir_state(fd, OSSUARY_TX);
	struct ossuary_dir_state rx = dir_state(fd, OSSUARY_RX);

	CHECK_EQ(tx.flags, OSSUARY_STATE_INSTALLED | OSSUARY_STATE_CLOSED);
	CHECK_EQ(rx.flags, OSSUARY_STATE_INSTALLED | OSSUARY_STATE_CLOSED);
	CHECK_EQ(tx.error, 0);
	CHECK_EQ(rx.error, 0);
}

static void check_stream(const char *what, size_t total, size_t sent,
			 const uint8_t *sent_hash, size_t recvd,
			 const uint8_t *recv_hash)
{
	if (sent != total || recvd != total)
		harness_note("%s: %zu of %zu written, %zu read", what, sent,
			     total, recvd);
	CHECK_EQ(sent, total);
	CHECK_EQ(recvd, total);
	CHECK_MEM(sent_hash, recv_hash, 32);
}

/* ---- the kernel end: plain socket calls on an offloaded fd ---- */

struct kside {
	int fd;
	size_t total;
	uint64_t seed;
	size_t chunk_max;	/* writes and reads of 1..chunk_max bytes */
	/*
	 * After a write other than the last, 1 in ku_one_in:
	 * setsockopt(OSSUARY_KEY_UPDATE, 0 or 1); 0: never.
	 */
	unsigned int ku_one_in;
	/*
	 * Shut down (DISCONNECT(0)) only once the peer's stream has ended:
	 * nothing may follow our DISCONNECT, so a KEY_UPDATE(1) the peer
	 * sends up to its end is then answered for sure.
	 */
	int shut_after_eof;
	/* results */
	size_t sent, recvd;
	uint64_t records_min;	/* DATA records the kernel sealed, at least */
	unsigned int ku_sent[2];
	int werr, wline, rerr, rline;	/* errno (or -1) and line, 0 if fine */
	uint8_t sent_hash[32], recv_hash[32];
};

#define KFAIL(k, side, e)                       \
	do {                                    \
		(k)->side##err = (e);           \
		(k)->side##line = __LINE__;     \
		goto out;                       \
	} while (0)

static int shut_wr(int fd)
{
	int r;

	do
		r = shutdown(fd, SHUT_WR);
	while (r < 0 && errno == EINTR);
	return r < 0 ? errno : 0;
}

static void *kwriter_main(void *arg)
{
	struct kside *k = arg;
	uint64_t data_rng = k->seed, size_rng = k->seed ^ 0x5555;
	uint64_t ku_rng = k->seed ^ 0xaaaa;
	crypto_hash_sha256_state hs;
	uint8_t *chunk = malloc(k->chunk_max);
	int e;

	crypto_hash_sha256_init(&hs);
	if (!chunk)
		KFAIL(k, w, ENOMEM);
	while (k->sent < k->total) {
		size_t len = 1 + splitmix(&size_rng) % k->chunk_max, off = 0;

		if (len > k->total - k->sent)
			len = k->total - k->sent;
		fill(&data_rng, chunk, len);
		while (off < len) {
			ssize_t n = send(k->fd, chunk + off, len - off, MSG_NOSIGNAL);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				KFAIL(k, w, errno);
			if (n == 0 || (size_t)n > len - off)
				KFAIL(k, w, -1);
			crypto_hash_sha256_update(&hs, chunk + off, (size_t)n);
			off += (size_t)n;
			k->sent += (size_t)n;
			/* a record never holds bytes of two sends (no MSG_MORE) */
			k->records_min += ((size_t)n + OSSUARY_MAX_PLAINTEXT - 1) /
					  OSSUARY_MAX_PLAINTEXT;
		}
		/* none after the last byte: the peer stops reading there */
		if (k->ku_one_in && k->sent < k->total &&
		    splitmix(&ku_rng) % k->ku_one_in == 0) {
			int rr = (int)(splitmix(&ku_rng) & 1);

			if (setsockopt(k->fd, SOL_OSSUARY, OSSUARY_KEY_UPDATE,
				       &rr, sizeof(rr)) < 0)
				KFAIL(k, w, errno);
			k->ku_sent[rr]++;
		}
	}
	if (!k->shut_after_eof && (e = shut_wr(k->fd)) != 0)
		KFAIL(k, w, e);
out:
	crypto_hash_sha256_final(&hs, k->sent_hash);
	free(chunk);
	return NULL;
}

/* Reads to the end of the peer's stream, with the writer in a thread. */
static void *kside_main(void *arg)
{
	struct kside *k = arg;
	uint64_t size_rng = k->seed ^ 0x3333;
	crypto_hash_sha256_state hs;
	uint8_t *buf = malloc(k->chunk_max);
	pthread_t tw;
	int started = 0, e;

	crypto_hash_sha256_init(&hs);
	if (!buf)
		KFAIL(k, r, ENOMEM);
	if (pthread_create(&tw, NULL, kwriter_main, k) != 0)
		KFAIL(k, r, EAGAIN);
	started = 1;
	for (;;) {
		size_t want = 1 + splitmix(&size_rng) % k->chunk_max;
		ssize_t n = recv(k->fd, buf, want, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			KFAIL(k, r, errno);
		if (n == 0)
			break;	/* DISCONNECT(0): the clean end */
		if ((size_t)n > want)
			KFAIL(k, r, -1);
		crypto_hash_sha256_update(&hs, buf, (size_t)n);
		k->recvd += (size_t)n;
	}
out:
	crypto_hash_sha256_final(&hs, k->recv_hash);
	free(buf);
	if (started)
		pthread_join(tw, NULL);
	/* the writer is done: no record can follow the DISCONNECT */
	if (k->shut_after_eof && !k->rerr && !k->werr && (e = shut_wr(k->fd)) != 0) {
		k->werr = e;
		k->wline = __LINE__;
	}
	return NULL;
}

static void kside_init(struct kside *k, int fd, size_t total, uint64_t seed)
{
	memset(k, 0, sizeof(*k));
	k->fd = fd;
	k->total = total;
	k->seed = seed;
	k->chunk_max = WRITE_MAX;
}

static void check_kside(const struct kside *k)
{
	if (k->werr)
		harness_note("kernel end, writing: error %d (%s) at line %d",
			     k->werr, k->werr > 0 ? strerror(k->werr) : "-", k->wline);
	if (k->rerr)
		harness_note("kernel end, reading: error %d (%s) at line %d",
			     k->rerr, k->rerr > 0 ? strerror(k->rerr) : "-", k->rline);
	CHECK_EQ(k->werr, 0);
	CHECK_EQ(k->rerr, 0);
}

static void check_bulk_side(const struct bulk *b)
{
	if (b->err)
		harness_note("userspace end failed: %d (%s) at line %d", b->err,
			     ossuary_strerror(b->err), b->where);
	CHECK_EQ(b->err, 0);
	CHECK_EQ(b->bad_count, 0);
}

/*
 * The kernel at the client's end, the library's userspace layer at the
 * server's, both directions at once until both ends closed cleanly.
 */
static void kernel_vs_library(struct setup *s, struct kside *k, struct bulk *u)
{
	pthread_t tk;

	set_nonblock(s->fds[1], 1);
	u->c = s->server;
	u->fd = s->fds[1];
	u->nonblocking = 1;
	/* the library's end alternates writing and reading, however fast
	 * the kernel's end reads: both directions really run at once */
	u->burst_max = 256 * KiB;
	CHECK(pthread_create(&tk, NULL, kside_main, k) == 0);
	bulk_main(u);
	pthread_join(tk, NULL);
	check_kside(k);
	check_bulk_side(u);
	check_stream("kernel TX -> library RX", k->total, k->sent, k->sent_hash,
		     u->recvd, u->recv_hash);
	check_stream("library TX -> kernel RX", u->total, u->sent, u->sent_hash,
		     k->recvd, k->recv_hash);
	check_closed_cleanly(s->fds[0]);
}

/* ---- kernel <-> library, bulk ---- */

/*
 * A record the library sent before the other end offloaded waits in the
 * socket and is opened by the kernel; then the interop size each way at
 * once, random writes of 1 byte .. 64 KiB on both ends.
 */
TEST(kernel_and_library_bulk_both_ways)
{
	struct setup s;
	struct kside k;
	struct bulk u;
	struct ossuary_dir_state tx, rx;
	size_t total = interop_bytes();
	char buf[32];
	int64_t t0;

	setup_pair(&s, AF_INET);
	CHECK_EQ(ossuary_write(s.server, s.fds[1], "early", 5), 5);
	if (!offload_or_skip(s.client, s.fds[0])) {
		teardown(&s);
		return;
	}
	CHECK_EQ(read_exact(s.client, s.fds[0], buf, 5), 5);
	CHECK_MEM(buf, "early", 5);
	CHECK_EQ(ossuary_write(s.client, s.fds[0], "from the kernel", 15), 15);
	CHECK_EQ(read_exact(s.server, s.fds[1], buf, 15), 15);
	CHECK_MEM(buf, "from the kernel", 15);
	/* one record each way so far, under the handshake's secrets */
	tx = dir_state(s.fds[0], OSSUARY_TX);
	rx = dir_state(s.fds[0], OSSUARY_RX);
	CHECK_EQ(tx.seq, 1);
	CHECK_EQ(rx.seq, 1);
	CHECK_EQ(tx.flags, OSSUARY_STATE_INSTALLED);
	CHECK_EQ(rx.flags, OSSUARY_STATE_INSTALLED);

	kside_init(&k, s.fds[0], total, 21);
	memset(&u, 0, sizeof(u));
	u.total = total;
	u.seed = 22;
	u.chunk_max = WRITE_MAX;
	t0 = now_ms();
	kernel_vs_library(&s, &k, &u);
	harness_note("kernel <-> library: %zu MiB each way at once in %lld ms",
		     total / MiB, (long long)(now_ms() - t0));
	/* no key update was asked for */
	CHECK_EQ(dir_state(s.fds[0], OSSUARY_TX).generation, 0);
	CHECK_EQ(dir_state(s.fds[0], OSSUARY_RX).generation, 0);
	CHECK_EQ(u.ku_seen[0] + u.ku_seen[1], 0);
	/* after the end, reads stay at the end on both sides */
	CHECK_EQ(ossuary_read(s.client, s.fds[0], buf, sizeof(buf)), 0);
	CHECK_EQ(ossuary_read(s.server, s.fds[1], buf, sizeof(buf)), 0);
	teardown(&s);
}

/* Kernel reader, userspace writer that hangs up without DISCONNECT. */
TEST(kernel_reader_sees_truncation)
{
	struct setup s;
	char buf[32];

	setup_pair(&s, AF_INET);
	if (!offload_or_skip(s.client, s.fds[0])) {
		teardown(&s);
		return;
	}
	CHECK_EQ(ossuary_write(s.server, s.fds[1], "cut", 3), 3);
	close(s.fds[1]);
	s.fds[1] = -1;
	CHECK_EQ(read_exact(s.client, s.fds[0], buf, 3), 3);
	CHECK_MEM(buf, "cut", 3);
	/* a FIN without DISCONNECT(0) is never a clean end, and it stays */
	CHECK_EQ(ossuary_read(s.client, s.fds[0], buf, sizeof(buf)),
		 OSSUARY_ERR_TRUNCATED);
	CHECK_EQ(ossuary_read(s.client, s.fds[0], buf, sizeof(buf)),
		 OSSUARY_ERR_TRUNCATED);
	CHECK_EQ(recv(s.fds[0], buf, sizeof(buf), 0), -1);
	CHECK_EQ(errno, OSSUARY_TRUNCATED_ERRNO);
	CHECK_EQ(dir_state(s.fds[0], OSSUARY_RX).error, OSSUARY_TRUNCATED_ERRNO);
	teardown(&s);
}

/* ---- key updates across the boundary ---- */

/* The library's events since the last call: KEY_UPDATE(0) and (1) seen. */
static void drain_events(OssuaryConnection *c, int seen[2])
{
	int ev;

	seen[0] = seen[1] = 0;
	while ((ev = ossuary_next_event(c)) > 0) {
		if (ev == OSSUARY_EVENT_KEY_UPDATE)
			seen[0]++;
		else if (ev == OSSUARY_EVENT_KEY_UPDATE_REQUESTED)
			seen[1]++;
	}
}

static void kernel_key_update(int fd, int request_reply)
{
	CHECK(setsockopt(fd, SOL_OSSUARY, OSSUARY_KEY_UPDATE, &request_reply,
			 sizeof(request_reply)) == 0);
}

/*
 * One at a time, so every step can be checked: KEY_UPDATE(1) from the
 * library makes the kernel update its own TX key as its very next
 * record; KEY_UPDATE(1) from the kernel makes the library answer.
 */
TEST(key_update_requests_answered_both_ways)
{
	struct ossuary_dir_state tx, rx;
	struct setup s;
	int seen[2], bad = 2, k;
	uint64_t rekey = 12345, got = 0;
	socklen_t len = sizeof(got);
	char buf[8];

	setup_pair(&s, AF_INET);
	k = s.fds[0];
	if (!offload_or_skip(s.client, k)) {
		teardown(&s);
		return;
	}
	drain_events(s.server, seen);
	/* The library asks: the kernel answers as soon as it opens the request. */
	CHECK_EQ(ossuary_key_update(s.server, 1), OSSUARY_OK);
	CHECK_EQ(ossuary_write(s.server, s.fds[1], "ping", 4), 4);
	CHECK_EQ(read_exact(s.client, k, buf, 4), 4);
	CHECK_MEM(buf, "ping", 4);
	rx = dir_state(k, OSSUARY_RX);
	tx = dir_state(k, OSSUARY_TX);
	CHECK_EQ(rx.generation, 1);
	CHECK_EQ(rx.seq, 1);		/* "ping", under the new secret */
	CHECK_EQ(tx.generation, 1);	/* its KEY_UPDATE(0) answer */
	CHECK_EQ(tx.seq, 0);		/* ... and nothing sealed since */
	CHECK_EQ(ossuary_write(s.client, k, "pong", 4), 4);
	CHECK_EQ(read_exact(s.server, s.fds[1], buf, 4), 4);
	CHECK_MEM(buf, "pong", 4);
	drain_events(s.server, seen);
	CHECK_EQ(seen[0], 1);
	CHECK_EQ(seen[1], 0);

	/* The kernel asks: the library's answer comes before its next DATA. */
	kernel_key_update(k, 1);
	CHECK_EQ(dir_state(k, OSSUARY_TX).generation, 2);
	CHECK_EQ(ossuary_write(s.client, k, "x", 1), 1);
	CHECK_EQ(read_exact(s.server, s.fds[1], buf, 1), 1);
	CHECK_EQ(buf[0], 'x');
	drain_events(s.server, seen);
	CHECK_EQ(seen[0], 0);
	CHECK_EQ(seen[1], 1);
	CHECK_EQ(ossuary_write(s.server, s.fds[1], "y", 1), 1);
	CHECK_EQ(read_exact(s.client, k, buf, 1), 1);
	CHECK_EQ(buf[0], 'y');
	rx = dir_state(k, OSSUARY_RX);
	CHECK_EQ(rx.generation, 2);
	CHECK_EQ(rx.seq, 1);

	/* KEY_UPDATE(0) from the kernel: applied, nothing answered. */
	kernel_key_update(k, 0);
	CHECK_EQ(ossuary_write(s.client, k, "z", 1), 1);
	CHECK_EQ(read_exact(s.server, s.fds[1], buf, 1), 1);
	CHECK_EQ(buf[0], 'z');
	drain_events(s.server, seen);
	CHECK_EQ(seen[0], 1);
	CHECK_EQ(seen[1], 0);
	CHECK_EQ(dir_state(k, OSSUARY_TX).generation, 3);

	/* What the kernel refuses: a request value other than 0 or 1. */
	CHECK_EQ(setsockopt(k, SOL_OSSUARY, OSSUARY_KEY_UPDATE, &bad, sizeof(bad)), -1);
	CHECK_EQ(errno, EINVAL);
	CHECK_EQ(dir_state(k, OSSUARY_TX).generation, 3);
	/* The automatic budget reads back as set. */
	CHECK(setsockopt(k, SOL_OSSUARY, OSSUARY_REKEY_RECORDS, &rekey, sizeof(rekey)) == 0);
	CHECK(getsockopt(k, SOL_OSSUARY, OSSUARY_REKEY_RECORDS, &got, &len) == 0);
	CHECK_EQ(len, sizeof(got));
	CHECK_EQ(got, rekey);

	/* Clean close both ways; the key updates changed nothing there. */
	CHECK_EQ(ossuary_shutdown(s.server, s.fds[1]), OSSUARY_OK);
	CHECK_EQ(ossuary_read(s.client, k, buf, sizeof(buf)), 0);
	CHECK_EQ(ossuary_shutdown(s.client, k), OSSUARY_OK);
	CHECK_EQ(ossuary_read(s.server, s.fds[1], buf, sizeof(buf)), 0);
	check_closed_cleanly(k);
	teardown(&s);
}

/*
 * How many key updates took the library's secret from `from` to `to`:
 * next(S) applied until they match (PROTOCOL.md 5.2), or UINT64_MAX. A
 * count of the updates it really made (or applied), from its own keys,
 * independent of its events and of what the kernel reports.
 */
static uint64_t updates_between(const uint8_t from[32], const uint8_t to[32])
{
	struct oss_dir d;
	uint64_t n, found = UINT64_MAX;

	memset(&d, 0, sizeof(d));
	memcpy(d.secret, from, 32);
	for (n = 0; n <= 100000; n++) {
		if (memcmp(d.secret, to, 32) == 0) {
			found = n;
			break;
		}
		oss_dir_ratchet(&d);
	}
	oss_dir_wipe(&d);
	return found;
}

/*
 * Hundreds of key updates each way, interleaved with random writes in
 * both directions at once: the kernel updates every REKEY records on its
 * own and after 1 in 4 writes on request (0 or 1); the library after 1 in
 * 4 writes (0 or 1); each side answers the other's KEY_UPDATE(1). Every
 * update must be seen by the other side, counted by its generation (the
 * kernel's) or its events and keys (the library's), and no byte may be
 * lost.
 *
 * Answers follow PROTOCOL.md 2.1 (5.2): requests opened before the answer
 * is sealed share one KEY_UPDATE(0), so a side seals between one answer
 * and one per request, never more; the kernel's answer may also be a
 * KEY_UPDATE(0) of its own (asked for, or automatic) sealed while one is
 * owed. Which requests shared an answer depends on timing; that each one
 * is answered before anything else is sealed is checked one at a time by
 * key_update_requests_answered_both_ways.
 */
#define REKEY 3

TEST(key_updates_both_ways_under_load)
{
	struct ossuary_dir_state tx, rx;
	struct setup s;
	struct kside k;
	struct bulk u;
	size_t total = interop_bytes_at_most(8 * MiB);
	uint64_t rekey = REKEY, kernel_other, lib_tx, lib_rx, lib_answers;
	uint64_t seq0, seq1;
	uint8_t tx0[32], rx0[32], tx1[32], rx1[32];
	int64_t t0;

	setup_pair(&s, AF_INET);
	if (!offload_or_skip(s.client, s.fds[0])) {
		teardown(&s);
		return;
	}
	CHECK(setsockopt(s.fds[0], SOL_OSSUARY, OSSUARY_REKEY_RECORDS, &rekey,
			 sizeof(rekey)) == 0);
	/* the library's secrets before: each update moves one by next() */
	CHECK_EQ(ossuary__debug_traffic(s.server, tx0, &seq0, rx0, &seq1), OSSUARY_OK);
	/* 16 KiB writes at most: more writes, so more updates, per MiB */
	kside_init(&k, s.fds[0], total, 31);
	k.chunk_max = 16 * KiB;
	k.ku_one_in = 4;
	k.shut_after_eof = 1;
	memset(&u, 0, sizeof(u));
	u.total = total;
	u.seed = 32;
	u.chunk_max = 16 * KiB;
	u.ku_one_in = 4;
	/* The library closes only after the kernel's last byte, and the
	 * kernel after the library's end: each answers every request. */
	u.shut_after_recv = total;
	t0 = now_ms();
	kernel_vs_library(&s, &k, &u);

	tx = dir_state(s.fds[0], OSSUARY_TX);
	rx = dir_state(s.fds[0], OSSUARY_RX);
	CHECK_EQ(ossuary__debug_traffic(s.server, tx1, &seq0, rx1, &seq1), OSSUARY_OK);
	lib_tx = updates_between(tx0, tx1);
	lib_rx = updates_between(rx0, rx1);
	/* the kernel's KEY_UPDATE(0)s not asked for by its application:
	 * answers to the library's requests and automatic ones */
	kernel_other = tx.generation - k.ku_sent[0] - k.ku_sent[1];
	lib_answers = lib_tx - u.ku_sent[0] - u.ku_sent[1];
	harness_note("%zu MiB each way in %lld ms; kernel -> library: %llu key "
		     "updates (%u+%u asked, %llu answers or automatic), %llu "
		     "applied, %u+%u seen; library -> kernel: %llu (%u+%u asked, "
		     "%llu answers to %u requests), %llu applied",
		     total / MiB, (long long)(now_ms() - t0),
		     (unsigned long long)tx.generation, k.ku_sent[0], k.ku_sent[1],
		     (unsigned long long)kernel_other, (unsigned long long)lib_rx,
		     u.ku_seen[0], u.ku_seen[1], (unsigned long long)lib_tx,
		     u.ku_sent[0], u.ku_sent[1], (unsigned long long)lib_answers,
		     u.ku_answered, (unsigned long long)rx.generation);
	CHECK(lib_tx != UINT64_MAX && lib_rx != UINT64_MAX);

	/* Kernel -> library: the library applied each of the kernel's
	 * updates (its receive keys) and reported each (its events), the
	 * requests as requests. */
	CHECK_EQ(lib_rx, tx.generation);
	CHECK_EQ(u.ku_seen[0] + u.ku_seen[1], tx.generation);
	CHECK_EQ(u.ku_seen[1], k.ku_sent[1]);
	/* ... which are the asked ones and other KEY_UPDATE(0)s: answers to
	 * the library's requests and automatic ones (none of its keys sealed
	 * more than REKEY records besides a KEY_UPDATE, the DISCONNECT
	 * included). From here the two cannot be told apart: the kernel's
	 * answers are checked one at a time, not here. */
	CHECK(tx.generation >= (uint64_t)k.ku_sent[0] + k.ku_sent[1]);
	CHECK((tx.generation + 1) * REKEY >= k.records_min + 1);
	CHECK(tx.seq <= REKEY);
	CHECK(kernel_other > 0);

	/* Library -> kernel: every update the library made (its send keys)
	 * was applied by the kernel, and is one it asked for or an answer.
	 * Every kernel request was opened before the library's DISCONNECT
	 * (it closed after the kernel's last byte), so every one is owed an
	 * answer: at least one answer, at most one per request. */
	CHECK_EQ(rx.generation, lib_tx);
	CHECK(lib_tx >= (uint64_t)u.ku_sent[0] + u.ku_sent[1]);
	CHECK_EQ(u.ku_answered, k.ku_sent[1]);
	CHECK(lib_answers >= 1);
	CHECK(lib_answers <= k.ku_sent[1]);
	/* the seeds give every kind of update */
	CHECK(k.ku_sent[0] > 0 && k.ku_sent[1] > 0);
	CHECK(u.ku_sent[0] > 0 && u.ku_sent[1] > 0);
	/* "hundreds of updates each way" at the default size */
	if (total >= 8 * MiB) {
		CHECK(tx.generation >= 200);
		CHECK(rx.generation >= 200);
	}
	teardown(&s);
}

/*
 * records.json's stream (DATA "hello", KEY_UPDATE(0), DATA "world",
 * DISCONNECT(0) under traffic secret S): the kernel seals exactly those
 * bytes, and opens them. No handshake: S is installed directly.
 */
static int attach_or_skip(int fd)
{
	static const char ulp[] = "ossuary";

	if (setsockopt(fd, SOL_TCP, TCP_ULP, ulp, sizeof(ulp)) == 0)
		return 1;
	CHECK(errno == ENOENT || errno == ENOPROTOOPT);
	no_module();
	return 0;
}

static void install(int fd, int dir, const uint8_t secret[32])
{
	struct ossuary_crypto_info ci;

	memset(&ci, 0, sizeof(ci));
	ci.version = OSSUARY_VERSION_2;
	ci.cipher = OSSUARY_CIPHER_CHACHA20_POLY1305;
	memcpy(ci.secret, secret, sizeof(ci.secret));
	CHECK(setsockopt(fd, SOL_OSSUARY, dir, &ci, sizeof(ci)) == 0);
}

TEST(kernel_seals_and_opens_records_json_key_update_stream)
{
	const struct json *st = vec_field(vec_load("records.json"), "stream");
	const uint8_t *secret = vec_hex_n(st, "secret", 32);
	size_t slen, dlen, got = 0;
	const uint8_t *stream = vec_hex(st, "stream", &slen);
	const uint8_t *want = vec_hex(st, "delivered", &dlen);
	struct ossuary_dir_state ds;
	uint8_t buf[256];
	int fds[2], one = 1;
	ssize_t n;

	CHECK_EQ(json_len(vec_array(st, "records")), 4);
	CHECK(slen > 0 && slen < sizeof(buf) && dlen == 10);

	/* TX: the kernel's bytes, read raw by a plain TCP peer. */
	pair_or_fail(AF_INET, fds);
	if (!attach_or_skip(fds[0])) {
		close_pair(fds);
		vec_release();
		return;
	}
	install(fds[0], OSSUARY_TX, secret);
	CHECK_EQ(send(fds[0], "hello", 5, 0), 5);
	kernel_key_update(fds[0], 0);
	CHECK_EQ(send(fds[0], "world", 5, 0), 5);
	CHECK(shutdown(fds[0], SHUT_WR) == 0);
	while ((n = recv(fds[1], buf + got, sizeof(buf) - got, 0)) > 0)
		got += (size_t)n;
	CHECK_EQ(n, 0);
	CHECK_EQ(got, slen);
	CHECK_MEM(buf, stream, slen);
	ds = dir_state(fds[0], OSSUARY_TX);
	CHECK_EQ(ds.generation, 1);
	CHECK_EQ(ds.seq, 2);
	CHECK_EQ(ds.flags, OSSUARY_STATE_INSTALLED | OSSUARY_STATE_CLOSED);
	close_pair(fds);

	/* RX: the vector's bytes, one per segment, opened by the kernel. */
	pair_or_fail(AF_INET, fds);
	CHECK(attach_or_skip(fds[1]));
	install(fds[1], OSSUARY_RX, secret);
	CHECK(setsockopt(fds[0], SOL_TCP, TCP_NODELAY, &one, sizeof(one)) == 0);
	for (size_t i = 0; i < slen; i++)
		CHECK_EQ(send_all(fds[0], stream + i, 1), 0);
	close(fds[0]);
	fds[0] = -1;
	got = 0;
	while ((n = recv(fds[1], buf + got, sizeof(buf) - got, 0)) > 0)
		got += (size_t)n;
	CHECK_EQ(n, 0);		/* the DISCONNECT(0), not the FIN: not EPIPE */
	CHECK_EQ(got, dlen);
	CHECK_MEM(buf, want, dlen);
	ds = dir_state(fds[1], OSSUARY_RX);
	CHECK_EQ(ds.generation, 1);
	CHECK_EQ(ds.flags, OSSUARY_STATE_INSTALLED | OSSUARY_STATE_CLOSED);
	CHECK_EQ(ds.error, 0);
	close_pair(fds);
	vec_release();
}

/* ---- a full handshake, then the kernel at both ends ---- */

static void handshake_then_kernel_both_ends(int family)
{
	uint8_t csk[32], cpk[32], ssk[32], spk[32], key[32];
	struct setup s;
	struct peer pc, ps;
	struct kside a, b;
	pthread_t ta;
	size_t total = interop_bytes_at_most(8 * MiB);
	char buf[8];

	memset(&s, 0, sizeof(s));
	if (tcp_pair(family, s.fds) < 0) {
		/* the VM's kernel has IPv6: there a missing family is a failure */
		CHECK(!getenv("OSSUARY_VM"));
		harness_note("no loopback for family %d here; skipped", family);
		return;
	}
	/* Mutual authentication: every handshake record at full size. */
	CHECK_EQ(ossuary_generate_auth_keypair(csk, cpk), OSSUARY_OK);
	CHECK_EQ(ossuary_generate_auth_keypair(ssk, spk), OSSUARY_OK);
	s.client = ossuary_create_connection(CONN_TYPE_CLIENT, csk);
	s.server = ossuary_create_connection(CONN_TYPE_AUTHENTICATED_SERVER, ssk);
	CHECK(s.client && s.server);
	CHECK_EQ(ossuary_add_authorized_key(s.client, spk), OSSUARY_OK);
	CHECK_EQ(ossuary_add_authorized_key(s.server, cpk), OSSUARY_OK);
	peer_init(&pc, s.client, s.fds[0]);
	peer_init(&ps, s.server, s.fds[1]);
	handshake_both(&pc, &ps);
	CHECK_EQ(pc.rc, OSSUARY_OK);
	CHECK_EQ(ps.rc, OSSUARY_OK);
	CHECK_EQ(ossuary_remote_public_key(s.client, key, sizeof(key)), OSSUARY_OK);
	CHECK_MEM(key, spk, 32);
	CHECK_EQ(ossuary_remote_public_key(s.server, key, sizeof(key)), OSSUARY_OK);
	CHECK_MEM(key, cpk, 32);
	if (!offload_or_skip(s.client, s.fds[0])) {
		teardown(&s);
		return;
	}
	CHECK(offload_or_skip(s.server, s.fds[1]));

	CHECK_EQ(ossuary_write(s.client, s.fds[0], "k2k", 3), 3);
	CHECK_EQ(read_exact(s.server, s.fds[1], buf, 3), 3);
	CHECK_MEM(buf, "k2k", 3);
	/* Both ways at once; each end closes when it has written its all. */
	kside_init(&a, s.fds[0], total, 41);
	kside_init(&b, s.fds[1], total, 42);
	CHECK(pthread_create(&ta, NULL, kside_main, &a) == 0);
	kside_main(&b);
	pthread_join(ta, NULL);
	check_kside(&a);
	check_kside(&b);
	check_stream("client kernel -> server kernel", total, a.sent,
		     a.sent_hash, b.recvd, b.recv_hash);
	check_stream("server kernel -> client kernel", total, b.sent,
		     b.sent_hash, a.recvd, a.recv_hash);
	check_closed_cleanly(s.fds[0]);
	check_closed_cleanly(s.fds[1]);
	CHECK_EQ(ossuary_read(s.client, s.fds[0], buf, sizeof(buf)), 0);
	CHECK_EQ(ossuary_read(s.server, s.fds[1], buf, sizeof(buf)), 0);
	/* and the sending side is closed for good */
	CHECK_EQ(ossuary_write(s.client, s.fds[0], "late", 4) < 0, 1);
	teardown(&s);
}

TEST(handshake_then_kernel_both_ends_ipv4)
{
	handshake_then_kernel_both_ends(AF_INET);
}

TEST(handshake_then_kernel_both_ends_ipv6)
{
	handshake_then_kernel_both_ends(AF_INET6);
}
