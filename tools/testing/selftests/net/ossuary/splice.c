// SPDX-License-Identifier: GPL-2.0
/*
 * Ossuary sendfile() and splice() selftests.
 *
 * TX: sendfile(sock, file) and splice(pipe -> sock) seal straight from the
 * page-cache or pipe pages (no copy before the AEAD); splice_eof closes
 * the open record; mixed write + sendfile + MSG_MORE streams keep their
 * bytes in order. RX: splice(sock -> pipe) hands plaintext to the pipe,
 * and recv/peek/splice can be mixed on one record.
 *
 *   FIXTURE(ossuary): both ends offloaded (kernel seals, kernel opens).
 *   FIXTURE(raw):     one end offloaded, the other speaks records itself
 *                     (wire.c), to inject a corrupt record.
 *
 * The counters of /proc/net/ossuary_stat prove the copy counts: a sendfile
 * of N bytes adds N to OssuaryTxZeroCopyBytes and nothing to
 * OssuaryTxCopiedBytes, a write the reverse; a recv with room for whole
 * records opens them straight into the reader's buffer
 * (OssuaryRxDirectRecords); a splice to a pipe counts
 * OssuaryRxSplicedBytes. IPv4 and IPv6 variants of each.
 */
#include <pthread.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <sodium.h>

#include "common.h"
#include "wire.h"

#include "kselftest_harness.h"
#include "fixtures.h"

#define TMPDIR	"/tmp"

/* recv into buf; returns n, or -errno */
static ssize_t recv_e(int fd, void *buf, size_t len, int flags)
{
	ssize_t n = recv(fd, buf, len, flags);

	return n < 0 ? -errno : n;
}

static ssize_t splice_e(int in, int out, size_t len, unsigned int flags)
{
	ssize_t n = splice(in, NULL, out, NULL, len, flags);

	return n < 0 ? -errno : n;
}

/* The file's bytes [off, off + len) as oss_tmpfile(seed) wrote them */
static uint8_t *file_bytes(size_t file_len, unsigned int seed)
{
	uint8_t *b = malloc(file_len ? file_len : 1);

	if (b)
		oss_fill(b, file_len, seed);
	return b;
}

/*
 * A reader thread: reads until it has want bytes (or EOF / an error) into
 * buf, optionally pausing between reads (a slow reader).
 */
struct reader {
	pthread_t thr;
	int fd;
	uint8_t *buf;
	size_t want;
	size_t chunk;		/* bytes per recv */
	int pause_ms;		/* sleep between reads */
	bool until_eof;		/* keep reading after want (must see EOF) */
	size_t got;
	int err;		/* errno that stopped it, 0 for EOF/done */
	bool eof;
};

static void *reader_fn(void *arg)
{
	struct reader *r = arg;

	while (r->until_eof || r->got < r->want) {
		size_t n = r->chunk;
		ssize_t k;

		if (r->got + n > r->want)
			n = r->want - r->got;
		if (!n) {
			/* only EOF may follow; read into a scratch byte */
			uint8_t c;

			k = recv(r->fd, &c, 1, 0);
			if (k == 0) {
				r->eof = true;
				break;
			}
			if (k < 0 && errno == EINTR)
				continue;
			r->err = k < 0 ? errno : EOVERFLOW;
			break;
		}
		k = recv(r->fd, r->buf + r->got, n, 0);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			r->err = errno;
			break;
		}
		if (k == 0) {
			r->eof = true;
			break;
		}
		r->got += k;
		if (r->pause_ms)
			oss_msleep(r->pause_ms);
	}
	return NULL;
}

static int reader_start(struct reader *r, int fd, uint8_t *buf, size_t want,
			size_t chunk, int pause_ms, bool until_eof)
{
	memset(r, 0, sizeof(*r));
	r->fd = fd;
	r->buf = buf;
	r->want = want;
	r->chunk = chunk;
	r->pause_ms = pause_ms;
	r->until_eof = until_eof;
	return pthread_create(&r->thr, NULL, reader_fn, r);
}

static void reader_join(struct reader *r)
{
	pthread_join(r->thr, NULL);
}

/* ========================= both ends offloaded ========================= */

TEST_F(ossuary, send_then_sendfile)
{
	size_t len = 20000;
	uint8_t *exp = file_bytes(len, 101), *in = malloc(len);
	char buf[16] = {};
	off_t off = 0;
	int file = oss_tmpfile(TMPDIR, len, 101);

	ASSERT_GE(file, 0) TH_LOG("tmpfile: %s", strerror(-file));
	ASSERT_NE(NULL, exp);
	ASSERT_NE(NULL, in);
	ASSERT_EQ(10, send(self->fd, "test_send", 10, 0));
	ASSERT_EQ(10, recv(self->cfd, buf, 10, MSG_WAITALL));
	EXPECT_STREQ("test_send", buf);
	ASSERT_EQ((ssize_t)len, oss_sendfile_all(self->fd, file, &off, len));
	EXPECT_EQ((off_t)len, off);
	ASSERT_EQ((ssize_t)len, recv(self->cfd, in, len, MSG_WAITALL));
	EXPECT_EQ(0, memcmp(exp, in, len));
	EXPECT_EQ(-EAGAIN, recv_e(self->cfd, in, 1, MSG_DONTWAIT));
	close(file);
	free(exp);
	free(in);
}

TEST_F(ossuary, sendfile_then_send)
{
	size_t len = 20000;
	uint8_t *exp = file_bytes(len, 102), *in = malloc(len + 5);
	off_t off = 0;
	int file = oss_tmpfile(TMPDIR, len, 102);

	ASSERT_GE(file, 0);
	ASSERT_NE(NULL, exp);
	ASSERT_NE(NULL, in);
	ASSERT_EQ((ssize_t)len, oss_sendfile_all(self->fd, file, &off, len));
	ASSERT_EQ(5, send(self->fd, "tail", 5, 0));
	ASSERT_EQ((ssize_t)len + 5, recv(self->cfd, in, len + 5, MSG_WAITALL));
	EXPECT_EQ(0, memcmp(exp, in, len));
	EXPECT_STREQ("tail", (char *)in + len);
	EXPECT_EQ(-EAGAIN, recv_e(self->cfd, in, 1, MSG_DONTWAIT));
	close(file);
	free(exp);
	free(in);
}

/* sendfile in chunks of chunk bytes of a file of chunk + extra bytes */
static void chunked_sendfile(struct __test_metadata *_metadata,
			     FIXTURE_DATA(ossuary) *self, size_t chunk,
			     size_t extra)
{
	size_t len = chunk + extra;
	unsigned int seed = 1000 + chunk * 7 + extra;
	uint8_t *exp = file_bytes(len, seed), *in = malloc(len);
	off_t off = 0;
	int file = oss_tmpfile(TMPDIR, len, seed);

	ASSERT_GE(file, 0);
	ASSERT_NE(NULL, exp);
	ASSERT_NE(NULL, in);
	while ((size_t)off < len) {
		ssize_t n = sendfile(self->fd, file, &off, chunk);

		ASSERT_GT(n, 0) TH_LOG("chunk %zu extra %zu at %lld: %s", chunk,
				       extra, (long long)off, strerror(errno));
	}
	ASSERT_EQ((ssize_t)len, recv(self->cfd, in, len, MSG_WAITALL))
		TH_LOG("chunk %zu extra %zu", chunk, extra);
	EXPECT_EQ(0, memcmp(exp, in, len)) TH_LOG("chunk %zu extra %zu", chunk, extra);
	EXPECT_EQ(-EAGAIN, recv_e(self->cfd, in, 1, MSG_DONTWAIT));
	close(file);
	free(exp);
	free(in);
}

TEST_F(ossuary, multi_chunk_sendfile)
{
	static const size_t cases[][2] = {
		{ 4096, 4096 }, { 4096, 0 }, { 4096, 1 }, { 4096, 2048 },
		{ 8192, 2048 }, { 4096, 8192 }, { 8192, 4096 }, { 12288, 1024 },
		{ 12288, 2000 }, { 15360, 100 }, { 15360, 300 }, { 1, 4096 },
		{ 2048, 4096 }, { 2048, 8192 }, { 1024, 12288 }, { 2000, 12288 },
		{ 100, 15360 }, { 300, 15360 }, { 16384, 1 }, { 16385, 16383 },
		{ 4097, 30000 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		chunked_sendfile(_metadata, self, cases[i][0], cases[i][1]);
}

/* Offsets, counts past EOF, a NULL offset (the file position), count 0 */
TEST_F(ossuary, sendfile_offsets_and_short_counts)
{
	size_t len = 10000;
	uint8_t *exp = file_bytes(len, 103), want[20000], in[20000];
	size_t wlen = 0;
	off_t off;
	int file = oss_tmpfile(TMPDIR, len, 103);

	ASSERT_GE(file, 0);
	ASSERT_NE(NULL, exp);

	off = 1234;
	ASSERT_EQ(100, sendfile(self->fd, file, &off, 100));
	EXPECT_EQ(1334, off);
	memcpy(want + wlen, exp + 1234, 100);
	wlen += 100;

	/* across page boundaries, unaligned */
	off = 4090;
	ASSERT_EQ(4200, sendfile(self->fd, file, &off, 4200));
	EXPECT_EQ(8290, off);
	memcpy(want + wlen, exp + 4090, 4200);
	wlen += 4200;

	/* a count past EOF: a short count, up to EOF */
	off = 9990;
	ASSERT_EQ(10, sendfile(self->fd, file, &off, 100));
	EXPECT_EQ(10000, off);
	memcpy(want + wlen, exp + 9990, 10);
	wlen += 10;

	/* at EOF and beyond it: 0, offset untouched */
	EXPECT_EQ(0, sendfile(self->fd, file, &off, 5));
	EXPECT_EQ(10000, off);
	off = 20000;
	EXPECT_EQ(0, sendfile(self->fd, file, &off, 5));
	EXPECT_EQ(20000, off);

	/* count 0 sends nothing */
	off = 0;
	EXPECT_EQ(0, sendfile(self->fd, file, &off, 0));
	EXPECT_EQ(0, off);

	/* NULL offset: from the file position, which advances */
	ASSERT_EQ(5000, lseek(file, 5000, SEEK_SET));
	ASSERT_EQ(300, sendfile(self->fd, file, NULL, 300));
	EXPECT_EQ(5300, lseek(file, 0, SEEK_CUR));
	memcpy(want + wlen, exp + 5000, 300);
	wlen += 300;

	/* the whole file from 0 with a count far past its end */
	off = 0;
	ASSERT_EQ((ssize_t)len, oss_sendfile_all(self->fd, file, &off, 1 << 20));
	memcpy(want + wlen, exp, len);
	wlen += len;

	ASSERT_EQ((ssize_t)wlen, recv(self->cfd, in, wlen, MSG_WAITALL));
	EXPECT_EQ(0, memcmp(want, in, wlen));
	EXPECT_EQ(-EAGAIN, recv_e(self->cfd, in, 1, MSG_DONTWAIT))
		TH_LOG("more bytes arrived than sendfile reported");
	close(file);
	free(exp);
}

/*
 * send(MSG_MORE) leaves a record open; sendfile adds to the stream after
 * it, and a sendfile that reaches the end of its file (splice_eof) closes
 * the open record: everything so far is readable before the next send.
 * Then MSG_MORE, sendfile, MSG_MORE, sendfile, send.
 */
TEST_F(ossuary, sendfile_msg_more_mix)
{
	size_t alen = 3000, blen = 27000;
	uint8_t *a = file_bytes(alen, 104), *b = file_bytes(blen, 204);
	uint8_t want[40000], in[40000];
	int fa = oss_tmpfile(TMPDIR, alen, 104), fb = oss_tmpfile(TMPDIR, blen, 204);
	size_t wlen = 0;
	off_t off = 0;

	ASSERT_GE(fa, 0);
	ASSERT_GE(fb, 0);
	ASSERT_NE(NULL, a);
	ASSERT_NE(NULL, b);

	ASSERT_EQ(5, send(self->fd, "head:", 5, MSG_MORE));
	memcpy(want, "head:", 5);
	wlen = 5;
	/* a count past EOF: the last pages go with MSG_MORE, then splice_eof */
	ASSERT_EQ((ssize_t)alen, sendfile(self->fd, fa, &off, 1 << 20));
	memcpy(want + wlen, a, alen);
	wlen += alen;
	/* no further send: sendfile's end must have closed the record */
	ASSERT_EQ((ssize_t)wlen, recv(self->cfd, in, wlen, MSG_WAITALL))
		TH_LOG("bytes before and from sendfile held back after it returned");
	EXPECT_EQ(0, memcmp(want, in, wlen));

	wlen = 0;
	off = 0;
	ASSERT_EQ(4, send(self->fd, "mid:", 4, MSG_MORE));
	memcpy(want + wlen, "mid:", 4);
	wlen += 4;
	ASSERT_EQ(20000, oss_sendfile_all(self->fd, fb, &off, 20000));
	memcpy(want + wlen, b, 20000);
	wlen += 20000;
	ASSERT_EQ(6, send(self->fd, "more:", 6, MSG_MORE));
	memcpy(want + wlen, "more:", 6);
	wlen += 6;
	ASSERT_EQ(7000, oss_sendfile_all(self->fd, fb, &off, 7000));
	memcpy(want + wlen, b + 20000, 7000);
	wlen += 7000;
	ASSERT_EQ(5, send(self->fd, ":tail", 5, 0));
	memcpy(want + wlen, ":tail", 5);
	wlen += 5;
	ASSERT_EQ((ssize_t)wlen, recv(self->cfd, in, wlen, MSG_WAITALL));
	EXPECT_EQ(0, memcmp(want, in, wlen));
	EXPECT_EQ(-EAGAIN, recv_e(self->cfd, in, 1, MSG_DONTWAIT));
	close(fa);
	close(fb);
	free(a);
	free(b);
}

/*
 * A non-blocking sender against a slow reader: sendfile returns partial
 * counts and EAGAIN; every byte it reported arrives once, in order.
 */
TEST_F_TIMEOUT(ossuary, sendfile_nonblock_slow_reader, 180)
{
	size_t len = 1 << 20, sent = 0;
	uint8_t *exp = file_bytes(len, 105), *in = malloc(len);
	int file = oss_tmpfile(TMPDIR, len, 105), sndbuf = 16384;
	int eagain = 0, partial = 0;
	struct reader r;
	off_t off = 0;

	ASSERT_GE(file, 0);
	ASSERT_NE(NULL, exp);
	ASSERT_NE(NULL, in);
	oss_set_timeouts(self->cfd, 30);
	ASSERT_EQ(0, setsockopt(self->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)));
	ASSERT_EQ(0, oss_set_nonblock(self->fd, true));
	ASSERT_EQ(0, reader_start(&r, self->cfd, in, len, 8192, 3, false));
	while (sent < len) {
		size_t want = len - sent < 65536 ? len - sent : 65536;
		ssize_t n = sendfile(self->fd, file, &off, want);

		if (n < 0) {
			struct pollfd p = { .fd = self->fd, .events = POLLOUT };

			ASSERT_EQ(EAGAIN, errno) TH_LOG("sendfile: %s", strerror(errno));
			eagain++;
			ASSERT_EQ(1, poll(&p, 1, 10000)) TH_LOG("no POLLOUT within 10 s");
			continue;
		}
		ASSERT_GT(n, 0);
		if ((size_t)n < want)
			partial++;
		sent += n;
		ASSERT_EQ((off_t)sent, off);
	}
	reader_join(&r);
	EXPECT_EQ(0, r.err) TH_LOG("reader: %s", strerror(r.err));
	ASSERT_EQ(len, r.got);
	EXPECT_EQ(0, memcmp(exp, in, len));
	/* nothing duplicated after the end */
	EXPECT_EQ(-EAGAIN, recv_e(self->cfd, in, 1, MSG_DONTWAIT));
	EXPECT_GT(eagain + partial, 0)
		TH_LOG("never blocked: the test did not exercise EAGAIN/partial counts");
	TH_LOG("%d EAGAIN, %d partial counts", eagain, partial);
	close(file);
	free(exp);
	free(in);
}

/* ---- a file truncated while sendfile reads it ---- */

struct truncater {
	pthread_t thr;
	int file;
	volatile off_t *pos;	/* the sender's reported offset */
	size_t len;
	off_t cut1, cut2;	/* the sizes it truncated to */
};

static void *truncater_fn(void *arg)
{
	struct truncater *t = arg;
	long long deadline = oss_now_ms() + 20000;

	/* first cut: ahead of the sender, not page aligned */
	while (*t->pos < (off_t)(t->len / 4) && oss_now_ms() < deadline)
		oss_msleep(1);
	t->cut1 = t->len / 2 + 1000;
	if (ftruncate(t->file, t->cut1))
		t->cut1 = -errno;
	/* second cut: just past where the sender says it is */
	while (*t->pos < (off_t)(t->len / 3) && oss_now_ms() < deadline)
		oss_msleep(1);
	t->cut2 = *t->pos + 3001;
	if (t->cut2 > t->cut1)
		t->cut2 = t->cut1;
	if (ftruncate(t->file, t->cut2))
		t->cut2 = -errno;
	return NULL;
}

/*
 * Truncation races sendfile: no error but a short count; the receiver
 * gets exactly the bytes sendfile reported, each the original byte or a
 * zero (truncation zeroes the tail of a partially truncated page), and
 * every byte below the final size is the original.
 */
TEST_F_TIMEOUT(ossuary, sendfile_truncated_file, 180)
{
	size_t len = 2 << 20;
	uint8_t *exp = file_bytes(len, 106), *in = malloc(len);
	int file = oss_tmpfile(TMPDIR, len, 106);
	volatile off_t pos = 0;
	struct truncater t = { .pos = &pos, .len = len };
	size_t total = 0, zeros = 0;
	struct reader r;
	off_t off = 0;

	ASSERT_GE(file, 0);
	ASSERT_NE(NULL, exp);
	ASSERT_NE(NULL, in);
	oss_set_timeouts(self->fd, 30);
	oss_set_timeouts(self->cfd, 30);
	t.file = file;
	/* a slow reader keeps sendfile blocked with pages in flight */
	ASSERT_EQ(0, reader_start(&r, self->cfd, in, len, 16384, 2, true));
	ASSERT_EQ(0, pthread_create(&t.thr, NULL, truncater_fn, &t));
	for (;;) {
		ssize_t n = sendfile(self->fd, file, &off, 128 << 10);

		if (n < 0 && errno == EINTR)
			continue;
		ASSERT_GE(n, 0) TH_LOG("sendfile at %zu: %s (only a short count is allowed)",
				       total, strerror(errno));
		if (n == 0)
			break;
		total += n;
		ASSERT_EQ((off_t)total, off);
		pos = off;
	}
	pos = len;	/* release the truncater if it is still waiting */
	pthread_join(t.thr, NULL);
	ASSERT_EQ(0, shutdown(self->fd, SHUT_WR));
	reader_join(&r);
	EXPECT_EQ(0, r.err) TH_LOG("reader: %s", strerror(r.err));
	EXPECT_TRUE(r.eof);
	ASSERT_GT(t.cut1, 0) TH_LOG("ftruncate: %s", strerror((int)-t.cut1));
	ASSERT_GT(t.cut2, 0) TH_LOG("ftruncate: %s", strerror((int)-t.cut2));
	EXPECT_EQ(total, r.got) TH_LOG("sendfile reported %zu, receiver got %zu", total, r.got);
	EXPECT_LE(total, len);
	EXPECT_GE((off_t)total, t.cut2) TH_LOG("sendfile stopped before the final EOF");
	for (size_t i = 0; i < r.got && i < len; i++) {
		if (in[i] == exp[i])
			continue;
		ASSERT_EQ(0, in[i]) TH_LOG("byte %zu: %02x, neither the original %02x nor 0",
					   i, in[i], exp[i]);
		ASSERT_GE((off_t)i, t.cut2) TH_LOG("byte %zu below the final size %lld changed",
						  i, (long long)t.cut2);
		zeros++;
	}
	TH_LOG("sent %zu of %zu (cuts at %lld, %lld), %zu zeroed bytes", total, len,
	       (long long)t.cut1, (long long)t.cut2, zeros);
	close(file);
	free(exp);
	free(in);
}

/* ---- splice into the socket ---- */

TEST_F(ossuary, splice_from_pipe)
{
	uint8_t out[OSSUARY_MAX_PLAINTEXT], in[OSSUARY_MAX_PLAINTEXT];
	int p[2];

	oss_fill(out, sizeof(out), 107);
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ((ssize_t)sizeof(out), write(p[1], out, sizeof(out)));
	ASSERT_EQ((ssize_t)sizeof(out), splice(p[0], NULL, self->fd, NULL, sizeof(out), 0));
	ASSERT_EQ((ssize_t)sizeof(in), recv(self->cfd, in, sizeof(in), MSG_WAITALL));
	EXPECT_EQ(0, memcmp(out, in, sizeof(out)));
	EXPECT_EQ(-EAGAIN, recv_e(self->cfd, in, 1, MSG_DONTWAIT));
	close(p[0]);
	close(p[1]);
}

/* vmsplice user pages into a pipe, then splice them to the socket */
TEST_F(ossuary, vmsplice_then_splice)
{
	size_t len = 3 * 4096 + 1000;
	uint8_t *out = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t in[4 * 4096];
	struct iovec iov[2];
	size_t done = 0;
	int p[2];

	ASSERT_NE(MAP_FAILED, out);
	oss_fill(out, len, 108);
	ASSERT_EQ(0, pipe(p));
	/* two segments, the second not page aligned */
	iov[0] = (struct iovec){ out, 5000 };
	iov[1] = (struct iovec){ out + 5000, len - 5000 };
	ASSERT_EQ((ssize_t)len, vmsplice(p[1], iov, 2, 0));
	while (done < len) {
		ssize_t n = splice(p[0], NULL, self->fd, NULL, len - done, 0);

		ASSERT_GT(n, 0) TH_LOG("splice: %s", strerror(errno));
		done += n;
	}
	ASSERT_EQ((ssize_t)len, recv(self->cfd, in, len, MSG_WAITALL));
	EXPECT_EQ(0, memcmp(out, in, len));
	EXPECT_EQ(-EAGAIN, recv_e(self->cfd, in, 1, MSG_DONTWAIT));
	close(p[0]);
	close(p[1]);
	munmap(out, 4 * 4096);
}

/* SPLICE_F_MORE keeps the record open, as MSG_MORE does; two pipes */
TEST_F(ossuary, splice_from_pipe_more)
{
	uint8_t out[16000], in[16000];
	int p[2], p2[2];

	oss_fill(out, sizeof(out), 109);
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(0, pipe(p2));
	ASSERT_EQ(8000, write(p[1], out, 8000));
	ASSERT_EQ(8000, splice(p[0], NULL, self->fd, NULL, 8000, SPLICE_F_MORE));
	EXPECT_EQ(0, oss_wait_in(self->cfd, 200) & POLLIN)
		TH_LOG("a record spliced with SPLICE_F_MORE was closed");
	EXPECT_EQ(-EAGAIN, recv_e(self->cfd, in, sizeof(in), MSG_DONTWAIT));
	ASSERT_EQ(8000, write(p2[1], out + 8000, 8000));
	ASSERT_EQ(8000, splice(p2[0], NULL, self->fd, NULL, 8000, 0));
	ASSERT_EQ(16000, recv(self->cfd, in, 16000, MSG_WAITALL));
	EXPECT_EQ(0, memcmp(out, in, sizeof(out)));
	close(p[0]);
	close(p[1]);
	close(p2[0]);
	close(p2[1]);
}

TEST_F(ossuary, send_and_splice)
{
	uint8_t out[OSSUARY_MAX_PLAINTEXT], in[OSSUARY_MAX_PLAINTEXT];
	char buf[16] = {};
	int p[2];

	oss_fill(out, sizeof(out), 110);
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(10, send(self->fd, "test_read", 10, 0));
	ASSERT_EQ(10, recv(self->cfd, buf, 10, MSG_WAITALL));
	EXPECT_STREQ("test_read", buf);
	ASSERT_EQ((ssize_t)sizeof(out), write(p[1], out, sizeof(out)));
	ASSERT_EQ((ssize_t)sizeof(out), splice(p[0], NULL, self->fd, NULL, sizeof(out), 0));
	ASSERT_EQ((ssize_t)sizeof(in), recv(self->cfd, in, sizeof(in), MSG_WAITALL));
	EXPECT_EQ(0, memcmp(out, in, sizeof(out)));
	close(p[0]);
	close(p[1]);
}

/* ---- splice out of the socket ---- */

TEST_F(ossuary, splice_to_pipe)
{
	uint8_t out[OSSUARY_MAX_PLAINTEXT], in[OSSUARY_MAX_PLAINTEXT];
	int p[2];

	oss_fill(out, sizeof(out), 111);
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ((ssize_t)sizeof(out), send(self->fd, out, sizeof(out), 0));
	ASSERT_EQ((ssize_t)sizeof(out), splice(self->cfd, NULL, p[1], NULL, sizeof(out), 0));
	ASSERT_EQ((ssize_t)sizeof(in), read(p[0], in, sizeof(in)));
	EXPECT_EQ(0, memcmp(out, in, sizeof(out)));
	close(p[0]);
	close(p[1]);
}

/* Several records through one pipe, splice asked for more than one */
TEST_F(ossuary, splice_to_pipe_many_records)
{
	uint8_t out[40000], in[40000];
	size_t got = 0;
	int p[2];

	oss_fill(out, sizeof(out), 112);
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(65536, fcntl(p[1], F_SETPIPE_SZ, 65536));
	for (int i = 0; i < 4; i++) {
		ASSERT_EQ(10000, send(self->fd, out + 10000 * i, 10000, 0));
	}
	while (got < sizeof(out)) {
		ssize_t n = splice(self->cfd, NULL, p[1], NULL, sizeof(out) - got, 0);

		ASSERT_GT(n, 0) TH_LOG("splice after %zu: %s", got, strerror(errno));
		ASSERT_EQ(n, read(p[0], in + got, n));
		got += n;
	}
	EXPECT_EQ(0, memcmp(out, in, sizeof(out)));
	close(p[0]);
	close(p[1]);
}

/* recv half of a record, splice the other half */
TEST_F(ossuary, recv_and_splice)
{
	uint8_t out[OSSUARY_MAX_PLAINTEXT], in[OSSUARY_MAX_PLAINTEXT];
	int half = OSSUARY_MAX_PLAINTEXT / 2, p[2];

	oss_fill(out, sizeof(out), 113);
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ((ssize_t)sizeof(out), send(self->fd, out, sizeof(out), 0));
	ASSERT_EQ(half, recv(self->cfd, in, half, MSG_WAITALL));
	ASSERT_EQ(half, splice(self->cfd, NULL, p[1], NULL, half, SPLICE_F_NONBLOCK));
	ASSERT_EQ(half, read(p[0], in + half, half));
	EXPECT_EQ(0, memcmp(out, in, sizeof(out)));
	close(p[0]);
	close(p[1]);
}

/* MSG_PEEK, then splice: the peeked bytes are spliced, nothing twice */
TEST_F(ossuary, peek_and_splice)
{
	uint8_t out[OSSUARY_MAX_PLAINTEXT], in[OSSUARY_MAX_PLAINTEXT];
	int chunk = OSSUARY_MAX_PLAINTEXT / 4, p[2];
	size_t got = 0;
	ssize_t n;

	oss_fill(out, sizeof(out), 114);
	ASSERT_EQ(0, pipe(p));
	for (int i = 0; i < 4; i++) {
		ASSERT_EQ(chunk, send(self->fd, out + chunk * i, chunk, 0));
	}
	/* a peek spans records: two and a half of them */
	n = recv(self->cfd, in, chunk * 5 / 2, MSG_WAITALL | MSG_PEEK);
	ASSERT_EQ(chunk * 5 / 2, n);
	EXPECT_EQ(0, memcmp(out, in, n));
	/* a second peek of part of it */
	ASSERT_EQ(100, recv(self->cfd, in, 100, MSG_PEEK));
	EXPECT_EQ(0, memcmp(out, in, 100));
	while (got < sizeof(out)) {
		n = splice(self->cfd, NULL, p[1], NULL, sizeof(out) - got, 0);
		ASSERT_GT(n, 0) TH_LOG("splice after %zu: %s", got, strerror(errno));
		got += n;
	}
	EXPECT_EQ((ssize_t)sizeof(out), read(p[0], in, sizeof(in)));
	EXPECT_EQ(0, memcmp(out, in, sizeof(out)));
	EXPECT_EQ(-EAGAIN, recv_e(self->cfd, in, 1, MSG_DONTWAIT));
	close(p[0]);
	close(p[1]);
}

/* splice less than a record: the rest is there for recv (and splice) */
TEST_F(ossuary, splice_shorter_than_record)
{
	uint8_t out[10000], in[10000];
	int p[2];

	oss_fill(out, sizeof(out), 115);
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(10000, send(self->fd, out, sizeof(out), 0));
	ASSERT_EQ(1000, splice(self->cfd, NULL, p[1], NULL, 1000, 0));
	ASSERT_EQ(1000, read(p[0], in, 1000));
	ASSERT_EQ(3000, recv(self->cfd, in + 1000, 3000, MSG_WAITALL));
	ASSERT_EQ(1, splice(self->cfd, NULL, p[1], NULL, 1, 0));
	ASSERT_EQ(1, read(p[0], in + 4000, 1));
	ASSERT_EQ(5999, recv(self->cfd, in + 4001, 5999, MSG_WAITALL));
	EXPECT_EQ(0, memcmp(out, in, sizeof(out)));
	EXPECT_EQ(-EAGAIN, recv_e(self->cfd, in, 1, MSG_DONTWAIT));
	close(p[0]);
	close(p[1]);
}

/* A non-blocking socket: EAGAIN with nothing there, then the data */
TEST_F(ossuary, splice_nonblock_eagain)
{
	char buf[16] = {};
	int p[2];

	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(0, oss_set_nonblock(self->cfd, true));
	EXPECT_EQ(-EAGAIN, splice_e(self->cfd, p[1], 100, 0));
	ASSERT_EQ(5, send(self->fd, "ready", 5, 0));
	ASSERT_NE(0, oss_wait_in(self->cfd, 3000) & POLLIN);
	ASSERT_EQ(5, splice(self->cfd, NULL, p[1], NULL, 100, 0));
	ASSERT_EQ(5, read(p[0], buf, sizeof(buf)));
	EXPECT_STREQ("ready", buf);
	EXPECT_EQ(-EAGAIN, splice_e(self->cfd, p[1], 100, 0));
	close(p[0]);
	close(p[1]);
}

/* SPLICE_F_NONBLOCK into a full pipe: EAGAIN, and the record is kept */
TEST_F(ossuary, splice_full_pipe_keeps_record)
{
	uint8_t out[3000], in[3000], fill[4096] = {};
	int p[2];

	oss_fill(out, sizeof(out), 116);
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(0, oss_set_nonblock(p[1], true));
	while (write(p[1], fill, sizeof(fill)) > 0)
		;
	ASSERT_EQ(EAGAIN, errno);
	ASSERT_EQ(3000, send(self->fd, out, sizeof(out), 0));
	ASSERT_NE(0, oss_wait_in(self->cfd, 3000) & POLLIN);
	EXPECT_EQ(-EAGAIN, splice_e(self->cfd, p[1], sizeof(out), SPLICE_F_NONBLOCK));
	/* drain the pipe, then the record comes whole */
	ASSERT_EQ(0, oss_set_nonblock(p[0], true));
	while (read(p[0], fill, sizeof(fill)) > 0)
		;
	ASSERT_EQ(3000, splice(self->cfd, NULL, p[1], NULL, sizeof(out), 0));
	ASSERT_EQ(3000, read(p[0], in, sizeof(in)));
	EXPECT_EQ(0, memcmp(out, in, sizeof(out)));
	close(p[0]);
	close(p[1]);
}

/* After the peer's clean shutdown (DISCONNECT(0)), splice returns 0 */
TEST_F(ossuary, splice_after_shutdown_eof)
{
	char buf[16] = {};
	int p[2];

	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(4, send(self->fd, "bye!", 4, 0));
	ASSERT_EQ(0, shutdown(self->fd, SHUT_WR));
	ASSERT_EQ(4, splice(self->cfd, NULL, p[1], NULL, 100, 0));
	ASSERT_EQ(4, read(p[0], buf, sizeof(buf)));
	EXPECT_STREQ("bye!", buf);
	EXPECT_EQ(0, splice_e(self->cfd, p[1], 100, 0));
	EXPECT_EQ(0, splice_e(self->cfd, p[1], 100, 0));
	EXPECT_EQ(0, recv_e(self->cfd, buf, sizeof(buf), 0));
	close(p[0]);
	close(p[1]);
}

/* ---- 256 MiB through sendfile, checked by SHA-256 ---- */

struct hash_reader {
	pthread_t thr;
	int fd;
	size_t got;
	int err;
	uint8_t digest[crypto_hash_sha256_BYTES];
};

static void *hash_reader_fn(void *arg)
{
	struct hash_reader *h = arg;
	size_t cap = 256 << 10;
	uint8_t *buf = malloc(cap);
	crypto_hash_sha256_state st;

	if (!buf) {
		h->err = ENOMEM;
		return NULL;
	}
	crypto_hash_sha256_init(&st);
	for (;;) {
		ssize_t n = recv(h->fd, buf, cap, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			h->err = errno;
			break;
		}
		if (n == 0)
			break;
		crypto_hash_sha256_update(&st, buf, n);
		h->got += n;
	}
	crypto_hash_sha256_final(&st, h->digest);
	free(buf);
	return NULL;
}

TEST_F_TIMEOUT(ossuary, sendfile_256m_sha256, 1200)
{
	/*
	 * 256 MiB once (IPv4); the IPv6 variant runs the same path at
	 * 32 MiB, since the emulated debug kernel moves ~2 MiB/s.
	 */
	const size_t len = (variant->family == AF_INET ? 256UL : 32UL) << 20;
	const size_t blk = 1 << 20;
	uint8_t digest[crypto_hash_sha256_BYTES], *base = malloc(blk + 4096);
	crypto_hash_sha256_state st;
	struct hash_reader h = {};
	char path[] = TMPDIR "/ossuary-256m-XXXXXX";
	long long t0, t1, t2;
	off_t off = 0;
	ssize_t n;
	int file;

	ASSERT_EQ(0, sodium_init() < 0);
	ASSERT_NE(NULL, base);
	t0 = oss_now_ms();
	/* 256 distinct 1 MiB blocks: shifted windows of one random block */
	oss_fill(base, blk + 4096, 117);
	file = mkstemp(path);
	ASSERT_GE(file, 0);
	unlink(path);
	crypto_hash_sha256_init(&st);
	for (size_t i = 0; i < len / blk; i++) {
		const uint8_t *b = base + (i * 61) % 4096;

		ASSERT_EQ((ssize_t)blk, pwrite(file, b, blk, i * blk))
			TH_LOG("writing the file on " TMPDIR ": %s", strerror(errno));
		crypto_hash_sha256_update(&st, b, blk);
	}
	crypto_hash_sha256_final(&st, digest);
	free(base);

	oss_set_timeouts(self->fd, 60);
	oss_set_timeouts(self->cfd, 60);
	h.fd = self->cfd;
	ASSERT_EQ(0, pthread_create(&h.thr, NULL, hash_reader_fn, &h));
	t1 = oss_now_ms();
	n = oss_sendfile_all(self->fd, file, &off, len);
	EXPECT_EQ((ssize_t)len, n) TH_LOG("sendfile: %s", n < 0 ? strerror(-n) : "short");
	EXPECT_EQ(0, shutdown(self->fd, SHUT_WR));
	pthread_join(h.thr, NULL);
	t2 = oss_now_ms();
	EXPECT_EQ(0, h.err) TH_LOG("receiver: %s", strerror(h.err));
	EXPECT_EQ(len, h.got);
	EXPECT_EQ(0, memcmp(digest, h.digest, sizeof(digest)))
		TH_LOG("SHA-256 at the receiver differs");
	TH_LOG("file written and hashed in %lld ms; 256 MiB sent and hashed in %lld ms (%.1f MiB/s)",
	       t1 - t0, t2 - t1, 256000.0 / (t2 - t1 > 0 ? t2 - t1 : 1));
	close(file);
}

/* ---- the copy counts, from /proc/net/ossuary_stat ---- */

enum { C_TX_COPIED, C_TX_ZC, C_RX_DIRECT, C_RX_BUFFERED, C_RX_SPLICED, C_N };

static const char * const counter_names[C_N] = {
	[C_TX_COPIED]	= "OssuaryTxCopiedBytes",
	[C_TX_ZC]	= "OssuaryTxZeroCopyBytes",
	[C_RX_DIRECT]	= "OssuaryRxDirectRecords",
	[C_RX_BUFFERED]	= "OssuaryRxBufferedRecords",
	[C_RX_SPLICED]	= "OssuaryRxSplicedBytes",
};

/* Read all counters; false (and a log line) if one is missing */
static bool counters(struct __test_metadata *_metadata, long long v[C_N])
{
	bool ok = true;

	for (int i = 0; i < C_N; i++) {
		v[i] = oss_stat_get(counter_names[i]);
		if (v[i] < 0) {
			TH_LOG("no %s in /proc/net/ossuary_stat", counter_names[i]);
			ok = false;
		}
	}
	return ok;
}

#define DELTA(i) (after[i] - before[i])

/* sendfile of N bytes: N zero-copy bytes, no copied byte */
TEST_F(ossuary, counts_sendfile_zero_copy)
{
	size_t len = 100000;
	uint8_t *exp = file_bytes(len, 118), *in = malloc(len);
	long long before[C_N], after[C_N];
	int file = oss_tmpfile(TMPDIR, len, 118);
	struct reader r;
	off_t off = 0;

	ASSERT_GE(file, 0);
	ASSERT_NE(NULL, exp);
	ASSERT_NE(NULL, in);
	/* the file's pages are in the page cache already (just written) */
	ASSERT_EQ(0, reader_start(&r, self->cfd, in, len, 65536, 0, false));
	ASSERT_TRUE(counters(_metadata, before));
	ASSERT_EQ((ssize_t)len, oss_sendfile_all(self->fd, file, &off, len));
	reader_join(&r);
	ASSERT_TRUE(counters(_metadata, after));
	ASSERT_EQ(len, r.got);
	EXPECT_EQ(0, memcmp(exp, in, len));
	EXPECT_EQ((long long)len, DELTA(C_TX_ZC))
		TH_LOG("sendfile of %zu bytes: %lld zero-copy bytes", len, DELTA(C_TX_ZC));
	EXPECT_EQ(0, DELTA(C_TX_COPIED))
		TH_LOG("sendfile of %zu bytes: %lld bytes copied", len, DELTA(C_TX_COPIED));
	close(file);
	free(exp);
	free(in);
}

/* write of N bytes: N copied bytes, no zero-copy byte */
TEST_F(ossuary, counts_write_copied)
{
	size_t len = 100000;
	uint8_t *out = file_bytes(len, 119), *in = malloc(len);
	long long before[C_N], after[C_N];
	struct reader r;

	ASSERT_NE(NULL, out);
	ASSERT_NE(NULL, in);
	ASSERT_EQ(0, reader_start(&r, self->cfd, in, len, 65536, 0, false));
	ASSERT_TRUE(counters(_metadata, before));
	ASSERT_EQ((ssize_t)len, oss_write_all(self->fd, out, len));
	reader_join(&r);
	ASSERT_TRUE(counters(_metadata, after));
	ASSERT_EQ(len, r.got);
	EXPECT_EQ(0, memcmp(out, in, len));
	EXPECT_EQ((long long)len, DELTA(C_TX_COPIED));
	EXPECT_EQ(0, DELTA(C_TX_ZC));
	free(out);
	free(in);
}

/* splice(pipe -> socket) of N bytes: N zero-copy bytes too */
TEST_F(ossuary, counts_splice_to_socket_zero_copy)
{
	uint8_t out[40000], in[40000];
	long long before[C_N], after[C_N];
	size_t done = 0;
	int p[2];

	oss_fill(out, sizeof(out), 120);
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(65536, fcntl(p[1], F_SETPIPE_SZ, 65536));
	ASSERT_EQ((ssize_t)sizeof(out), write(p[1], out, sizeof(out)));
	ASSERT_TRUE(counters(_metadata, before));
	while (done < sizeof(out)) {
		ssize_t n = splice(p[0], NULL, self->fd, NULL, sizeof(out) - done, 0);

		ASSERT_GT(n, 0);
		done += n;
	}
	ASSERT_TRUE(counters(_metadata, after));
	ASSERT_EQ((ssize_t)sizeof(in), recv(self->cfd, in, sizeof(in), MSG_WAITALL));
	EXPECT_EQ(0, memcmp(out, in, sizeof(out)));
	EXPECT_EQ((long long)sizeof(out), DELTA(C_TX_ZC));
	EXPECT_EQ(0, DELTA(C_TX_COPIED));
	close(p[0]);
	close(p[1]);
}

/*
 * A recv with room for each whole record opens every one straight into
 * the reader's buffer; a short read opens its record in the kernel's
 * buffer.
 */
TEST_F(ossuary, counts_recv_direct_records)
{
	enum { K = 5, SZ = 3000 };
	uint8_t out[K * SZ], in[K * SZ];
	long long before[C_N], after[C_N];

	oss_fill(out, sizeof(out), 121);
	for (int i = 0; i < K; i++) {
		ASSERT_EQ(SZ, send(self->fd, out + SZ * i, SZ, 0));
	}
	oss_msleep(100);
	ASSERT_TRUE(counters(_metadata, before));
	ASSERT_EQ(K * SZ, recv(self->cfd, in, sizeof(in), MSG_WAITALL));
	ASSERT_TRUE(counters(_metadata, after));
	EXPECT_EQ(0, memcmp(out, in, sizeof(out)));
	EXPECT_EQ(K, DELTA(C_RX_DIRECT)) TH_LOG("%d records read whole", K);
	EXPECT_EQ(0, DELTA(C_RX_BUFFERED));

	/* a 10-byte read of a 3000-byte record: buffered, then copied */
	ASSERT_EQ(SZ, send(self->fd, out, SZ, 0));
	ASSERT_NE(0, oss_wait_in(self->cfd, 3000) & POLLIN);
	ASSERT_TRUE(counters(_metadata, before));
	ASSERT_EQ(10, recv(self->cfd, in, 10, 0));
	ASSERT_EQ(SZ - 10, recv(self->cfd, in + 10, SZ - 10, MSG_WAITALL));
	ASSERT_TRUE(counters(_metadata, after));
	EXPECT_EQ(0, memcmp(out, in, SZ));
	EXPECT_EQ(0, DELTA(C_RX_DIRECT));
	EXPECT_EQ(1, DELTA(C_RX_BUFFERED));
}

/* splice(socket -> pipe) hands its bytes to the pipe by reference */
TEST_F(ossuary, counts_splice_to_pipe)
{
	uint8_t out[12000], in[12000];
	long long before[C_N], after[C_N];
	size_t got = 0;
	int p[2];

	oss_fill(out, sizeof(out), 122);
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(65536, fcntl(p[1], F_SETPIPE_SZ, 65536));
	ASSERT_EQ(6000, send(self->fd, out, 6000, 0));
	ASSERT_EQ(6000, send(self->fd, out + 6000, 6000, 0));
	ASSERT_TRUE(counters(_metadata, before));
	while (got < sizeof(out)) {
		ssize_t n = splice(self->cfd, NULL, p[1], NULL, sizeof(out) - got, 0);

		ASSERT_GT(n, 0) TH_LOG("splice: %s", strerror(errno));
		got += n;
	}
	ASSERT_TRUE(counters(_metadata, after));
	ASSERT_EQ((ssize_t)sizeof(in), read(p[0], in, sizeof(in)));
	EXPECT_EQ(0, memcmp(out, in, sizeof(out)));
	EXPECT_EQ((long long)sizeof(out), DELTA(C_RX_SPLICED));
	close(p[0]);
	close(p[1]);
}

/* ==================== one end offloaded, one end raw ==================== */

/* A corrupt record: splice delivers what came before it, then EBADMSG */
TEST_F(raw, splice_after_bad_record)
{
	uint8_t stream[256];
	char buf[64] = {};
	size_t off = 0, second;
	int p[2];

	ASSERT_EQ(0, pipe(p));
	off += wire_seal(&self->to_k, OSSUARY_RECORD_DATA, "good", 4, stream);
	second = off;
	off += wire_seal(&self->to_k, OSSUARY_RECORD_DATA, "tampered", 8, stream + off);
	off += wire_seal(&self->to_k, OSSUARY_RECORD_DATA, "after", 5, stream + off);
	stream[second + WIRE_HDR + 2] ^= 0x40;
	ASSERT_EQ((ssize_t)off, oss_write_all(self->pfd, stream, off));
	ASSERT_EQ(4, splice(self->kfd, NULL, p[1], NULL, sizeof(buf), 0));
	EXPECT_EQ(-EBADMSG, splice_e(self->kfd, p[1], sizeof(buf), 0));
	/* latched, for splice and recv alike; nothing of it reached the pipe */
	EXPECT_EQ(-EBADMSG, splice_e(self->kfd, p[1], sizeof(buf), 0));
	EXPECT_EQ(-EBADMSG, recv_e(self->kfd, buf, sizeof(buf), 0));
	ASSERT_EQ(0, oss_set_nonblock(p[0], true));
	ASSERT_EQ(4, read(p[0], buf, sizeof(buf)));
	EXPECT_EQ(0, memcmp(buf, "good", 4));
	EXPECT_EQ(-1, read(p[0], buf, sizeof(buf)));
	close(p[0]);
	close(p[1]);
}

TEST_HARNESS_MAIN
