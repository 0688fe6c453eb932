// SPDX-License-Identifier: GPL-2.0
/*
 * Ossuary record layer selftests, with traffic secrets installed directly
 * (setsockopt SOL_OSSUARY OSSUARY_TX / OSSUARY_RX).
 *
 *   FIXTURE(ossuary): both ends offloaded, one secret per direction.
 *   FIXTURE(raw):     one end offloaded, the other plain TCP; the test
 *                     seals and opens records itself (wire.c, libsodium)
 *                     so every byte the kernel writes or must read is
 *                     checked against PROTOCOL.md.
 *   FIXTURE(opts):    ULP attached, no keys: setsockopt/getsockopt input.
 *
 * IPv4 and IPv6 variants of each.
 */
#include <sched.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/uio.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <linux/bpf.h>
#include <linux/sockios.h>

#include "common.h"
#include "wire.h"

#include "kselftest_harness.h"
#include "fixtures.h"

static const uint8_t *secret_a(void)
{
	return oss_secret_a();
}

static const uint8_t *secret_b(void)
{
	return oss_secret_b();
}

/* recv into buf; returns n, or -errno */
static ssize_t recv_e(int fd, void *buf, size_t len, int flags)
{
	ssize_t n = recv(fd, buf, len, flags);

	return n < 0 ? -errno : n;
}

/* ========================= both ends offloaded ========================= */

TEST_F(ossuary, send_recv_short)
{
	char buf[32];

	ASSERT_EQ(13, send(self->fd, "hello, world", 13, 0));
	ASSERT_EQ(13, recv(self->cfd, buf, sizeof(buf), 0));
	EXPECT_STREQ("hello, world", buf);
}

TEST_F(ossuary, write_read)
{
	char buf[32];

	ASSERT_EQ(6, write(self->fd, "write", 6));
	ASSERT_EQ(6, read(self->cfd, buf, sizeof(buf)));
	EXPECT_STREQ("write", buf);
}

TEST_F(ossuary, send_recv_max_record)
{
	static uint8_t out[OSSUARY_MAX_PLAINTEXT], in[OSSUARY_MAX_PLAINTEXT];

	oss_fill(out, sizeof(out), 1);
	ASSERT_EQ((ssize_t)sizeof(out), send(self->fd, out, sizeof(out), 0));
	ASSERT_EQ((ssize_t)sizeof(in), recv(self->cfd, in, sizeof(in), MSG_WAITALL));
	EXPECT_EQ(0, memcmp(out, in, sizeof(out)));
}

TEST_F(ossuary, send_zero_length)
{
	char buf[8];

	EXPECT_EQ(0, send(self->fd, buf, 0, 0));
	EXPECT_EQ(-EAGAIN, recv_e(self->cfd, buf, sizeof(buf), MSG_DONTWAIT));
	ASSERT_EQ(1, send(self->fd, "z", 1, 0));
	ASSERT_EQ(1, recv(self->cfd, buf, sizeof(buf), 0));
	EXPECT_EQ('z', buf[0]);
}

TEST_F(ossuary, single_send_multiple_recv)
{
	uint8_t out[1000], in[1000];

	oss_fill(out, sizeof(out), 2);
	ASSERT_EQ(1000, send(self->fd, out, sizeof(out), 0));
	for (size_t off = 0; off < sizeof(in); off += 7) {
		size_t n = sizeof(in) - off < 7 ? sizeof(in) - off : 7;

		ASSERT_EQ((ssize_t)n, recv(self->cfd, in + off, n, MSG_WAITALL));
	}
	EXPECT_EQ(0, memcmp(out, in, sizeof(out)));
}

TEST_F(ossuary, one_byte_reads)
{
	uint8_t out[300], in[300];

	oss_fill(out, sizeof(out), 3);
	ASSERT_EQ(300, send(self->fd, out, sizeof(out), 0));
	for (size_t i = 0; i < sizeof(in); i++) {
		ASSERT_EQ(1, recv(self->cfd, in + i, 1, 0));
	}
	EXPECT_EQ(0, memcmp(out, in, sizeof(out)));
	EXPECT_EQ(-EAGAIN, recv_e(self->cfd, in, 1, MSG_DONTWAIT));
}

TEST_F(ossuary, multiple_send_single_recv)
{
	uint8_t out[1000], in[1000];

	oss_fill(out, sizeof(out), 4);
	for (int i = 0; i < 10; i++) {
		ASSERT_EQ(100, send(self->fd, out + 100 * i, 100, 0));
	}
	ASSERT_EQ(1000, recv(self->cfd, in, 1000, MSG_WAITALL));
	EXPECT_EQ(0, memcmp(out, in, sizeof(out)));
}

/* Records that have all arrived are returned together by one recvmsg */
TEST_F(ossuary, several_records_one_recv)
{
	uint8_t out[3000], in[8192];

	oss_fill(out, sizeof(out), 5);
	oss_nodelay(self->fd);
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(1000, send(self->fd, out + 1000 * i, 1000, 0));
	}
	oss_msleep(300);
	ASSERT_EQ(3000, recv(self->cfd, in, sizeof(in), 0))
		TH_LOG("three whole records were queued; one recv should return all");
	EXPECT_EQ(0, memcmp(out, in, sizeof(out)));
}

TEST_F(ossuary, sendmsg_iov)
{
	char a[] = "one ", b[] = "two ", c[] = "three";
	struct iovec iov[3] = { { a, 4 }, { b, 4 }, { c, 5 } };
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 3 };
	char buf[32] = {};

	ASSERT_EQ(13, sendmsg(self->fd, &msg, 0));
	ASSERT_EQ(13, recv(self->cfd, buf, 13, MSG_WAITALL));
	EXPECT_STREQ("one two three", buf);
}

TEST_F(ossuary, recvmsg_iov)
{
	char a[5] = {}, b[20] = {};
	struct iovec iov[2] = { { a, 4 }, { b, 7 } };
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };

	ASSERT_EQ(11, send(self->fd, "scatterread", 11, 0));
	ASSERT_EQ(11, recvmsg(self->cfd, &msg, MSG_WAITALL));
	EXPECT_STREQ("scat", a);
	EXPECT_STREQ("terread", b);
}

TEST_F(ossuary, recv_partial)
{
	char buf[64] = {};

	ASSERT_EQ(26, send(self->fd, "abcdefghijklmnopqrstuvwxyz", 26, 0));
	ASSERT_EQ(10, recv(self->cfd, buf, 10, MSG_WAITALL));
	EXPECT_EQ(0, memcmp(buf, "abcdefghij", 10));
	ASSERT_EQ(16, recv(self->cfd, buf, sizeof(buf), 0));
	EXPECT_EQ(0, memcmp(buf, "klmnopqrstuvwxyz", 16));
}

TEST_F(ossuary, recv_peek)
{
	char buf[64] = {}, buf2[64] = {};

	ASSERT_EQ(10, send(self->fd, "peekaboo!", 10, 0));
	ASSERT_EQ(10, recv(self->cfd, buf, 10, MSG_PEEK | MSG_WAITALL));
	EXPECT_STREQ("peekaboo!", buf);
	/* a peek again sees the same bytes */
	ASSERT_EQ(10, recv(self->cfd, buf2, sizeof(buf2), MSG_PEEK));
	EXPECT_STREQ("peekaboo!", buf2);
	memset(buf, 0, sizeof(buf));
	ASSERT_EQ(10, recv(self->cfd, buf, sizeof(buf), 0));
	EXPECT_STREQ("peekaboo!", buf);
	EXPECT_EQ(-EAGAIN, recv_e(self->cfd, buf, sizeof(buf), MSG_DONTWAIT));
}

TEST_F(ossuary, recv_peek_partial_then_read)
{
	char buf[64] = {};

	ASSERT_EQ(20, send(self->fd, "0123456789abcdefghij", 20, 0));
	ASSERT_EQ(5, recv(self->cfd, buf, 5, MSG_PEEK | MSG_WAITALL));
	EXPECT_EQ(0, memcmp(buf, "01234", 5));
	ASSERT_EQ(8, recv(self->cfd, buf, 8, 0));
	EXPECT_EQ(0, memcmp(buf, "01234567", 8));
	ASSERT_EQ(4, recv(self->cfd, buf, 4, MSG_PEEK));
	EXPECT_EQ(0, memcmp(buf, "89ab", 4));
	ASSERT_EQ(12, recv(self->cfd, buf, sizeof(buf), 0));
	EXPECT_EQ(0, memcmp(buf, "89abcdefghij", 12));
}

TEST_F(ossuary, recv_peek_multiple_records)
{
	char buf[64] = {};
	ssize_t n;

	oss_nodelay(self->fd);
	ASSERT_EQ(5, send(self->fd, "first", 5, 0));
	ASSERT_EQ(6, send(self->fd, "second", 6, 0));
	oss_msleep(200);
	n = recv(self->cfd, buf, sizeof(buf), MSG_PEEK);
	ASSERT_GE(n, 5);
	EXPECT_EQ(0, memcmp(buf, "firstsecond", n));
	ASSERT_EQ(11, recv(self->cfd, buf, 11, MSG_WAITALL));
	EXPECT_EQ(0, memcmp(buf, "firstsecond", 11));
}

/*
 * A child that sends n chunks of each bytes from buf on fd, 50 ms apart
 * (so each is its own record, arriving after the reader has waited):
 * its pid for oss_wait_child(), which sees 0 when every send was whole.
 */
static pid_t send_apart(int fd, const uint8_t *buf, int n, size_t each)
{
	pid_t pid = fork();

	if (pid)
		return pid;
	for (int i = 0; i < n; i++) {
		oss_msleep(50);
		if (send(fd, buf + each * i, each, 0) != (ssize_t)each)
			_exit(1);
	}
	_exit(0);
}

/* MSG_PEEK | MSG_WAITALL waits for len bytes across records, as on TCP */
TEST_F(ossuary, recv_peek_waitall_across_records)
{
	uint8_t out[3000], in[3000], in2[3000];
	pid_t pid;

	oss_fill(out, sizeof(out), 41);
	oss_nodelay(self->fd);
	pid = send_apart(self->fd, out, 3, 1000);
	ASSERT_GE(pid, 0);
	ASSERT_EQ(3000, recv(self->cfd, in, sizeof(in), MSG_PEEK | MSG_WAITALL));
	EXPECT_EQ(0, memcmp(out, in, sizeof(in)));
	/* nothing was consumed: the read has the same bytes */
	ASSERT_EQ(3000, recv(self->cfd, in2, sizeof(in2), 0));
	EXPECT_EQ(0, memcmp(out, in2, sizeof(in2)));
	EXPECT_EQ(-EAGAIN, recv_e(self->cfd, in, 1, MSG_DONTWAIT));
	EXPECT_EQ(0, oss_wait_child(pid));
}

/* MSG_WAITALL: one read of 64 KiB gathers four records sent apart */
TEST_F(ossuary, recv_waitall_four_full_records)
{
	static uint8_t out[4 * OSSUARY_MAX_PLAINTEXT], in[4 * OSSUARY_MAX_PLAINTEXT];
	pid_t pid;

	oss_fill(out, sizeof(out), 42);
	pid = send_apart(self->fd, out, 4, OSSUARY_MAX_PLAINTEXT);
	ASSERT_GE(pid, 0);
	ASSERT_EQ((ssize_t)sizeof(in), recv(self->cfd, in, sizeof(in), MSG_WAITALL));
	EXPECT_EQ(0, memcmp(out, in, sizeof(in)));
	EXPECT_EQ(0, oss_wait_child(pid));
}

/* FIONREAD counts plaintext a read can have now, not sealed bytes */
TEST_F(ossuary, fionread_counts_plaintext)
{
	char buf[100];
	int n = -1;

	oss_nodelay(self->fd);
	ASSERT_EQ(0, ioctl(self->cfd, FIONREAD, &n));
	EXPECT_EQ(0, n);
	ASSERT_EQ(100, send(self->fd, buf, sizeof(buf), 0));
	ASSERT_TRUE(oss_wait_in(self->cfd, 2000) & POLLIN);
	ASSERT_EQ(0, ioctl(self->cfd, FIONREAD, &n));
	EXPECT_EQ(100, n);
	ASSERT_EQ(40, recv(self->cfd, buf, 40, 0));
	ASSERT_EQ(0, ioctl(self->cfd, FIONREAD, &n));
	EXPECT_EQ(60, n);
	ASSERT_EQ(60, recv(self->cfd, buf, sizeof(buf), 0));
	ASSERT_EQ(0, ioctl(self->cfd, FIONREAD, &n));
	EXPECT_EQ(0, n);
}

TEST_F(ossuary, recv_waitall_across_sends)
{
	uint8_t out[4000], in[4000];
	pid_t pid;

	oss_fill(out, sizeof(out), 6);
	pid = send_apart(self->fd, out, 4, 1000);
	ASSERT_GE(pid, 0);
	ASSERT_EQ(4000, recv(self->cfd, in, 4000, MSG_WAITALL));
	EXPECT_EQ(0, memcmp(out, in, sizeof(in)));
	EXPECT_EQ(0, oss_wait_child(pid));
}

TEST_F(ossuary, recv_dontwait_eagain)
{
	char buf[16];

	EXPECT_EQ(-EAGAIN, recv_e(self->cfd, buf, sizeof(buf), MSG_DONTWAIT));
	EXPECT_EQ(-EAGAIN, recv_e(self->fd, buf, sizeof(buf), MSG_DONTWAIT));
}

TEST_F(ossuary, recv_nonblock_eagain)
{
	char buf[16];

	ASSERT_EQ(0, oss_set_nonblock(self->cfd, true));
	EXPECT_EQ(-EAGAIN, recv_e(self->cfd, buf, sizeof(buf), 0));
	ASSERT_EQ(3, send(self->fd, "abc", 3, 0));
	ASSERT_NE(0, oss_wait_in(self->cfd, 3000));
	EXPECT_EQ(3, recv(self->cfd, buf, sizeof(buf), 0));
	EXPECT_EQ(-EAGAIN, recv_e(self->cfd, buf, sizeof(buf), 0));
}

TEST_F(ossuary, recv_timeout)
{
	struct timeval tv = { .tv_usec = 200000 };
	struct timespec t0, t1;
	char buf[16];
	long ms;

	ASSERT_EQ(0, setsockopt(self->cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	EXPECT_EQ(-EAGAIN, recv_e(self->cfd, buf, sizeof(buf), 0));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	EXPECT_GE(ms, 150);
	EXPECT_LT(ms, 4000);
}

static volatile sig_atomic_t got_alarm;

static void on_alarm(int sig)
{
	got_alarm = 1;
}

TEST_F(ossuary, recv_interrupted_by_signal)
{
	struct sigaction sa = { .sa_handler = on_alarm };	/* no SA_RESTART */
	struct itimerval it = { .it_value = { .tv_usec = 200000 } };
	char buf[16];

	ASSERT_EQ(0, sigaction(SIGALRM, &sa, NULL));
	ASSERT_EQ(0, setitimer(ITIMER_REAL, &it, NULL));
	EXPECT_EQ(-EINTR, recv_e(self->cfd, buf, sizeof(buf), 0));
	EXPECT_EQ(1, got_alarm);
	/* the socket still works afterwards */
	ASSERT_EQ(2, send(self->fd, "ok", 2, 0));
	EXPECT_EQ(2, recv(self->cfd, buf, sizeof(buf), 0));
}

TEST_F(ossuary, recv_lowat)
{
	uint8_t out[2000], in[2000];
	int lowat = 1000;
	pid_t pid;

	oss_fill(out, sizeof(out), 7);
	ASSERT_EQ(0, setsockopt(self->cfd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)));
	oss_nodelay(self->fd);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		if (send(self->fd, out, 500, 0) != 500)
			_exit(1);
		oss_msleep(200);
		if (send(self->fd, out + 500, 500, 0) != 500)
			_exit(1);
		_exit(0);
	}
	/* one recv waits for SO_RCVLOWAT bytes across both records */
	EXPECT_EQ(1000, recv(self->cfd, in, sizeof(in), 0));
	EXPECT_EQ(0, memcmp(out, in, 1000));
	EXPECT_EQ(0, oss_wait_child(pid));
}

TEST_F(ossuary, send_unsupported_flag)
{
	EXPECT_EQ(-1, send(self->fd, "x", 1, MSG_OOB));
	EXPECT_EQ(EOPNOTSUPP, errno);
}

/* A writer with MSG_MORE holds its record open: nothing is readable */
TEST_F(ossuary, msg_more_holds_record)
{
	char buf[32] = {};

	ASSERT_EQ(5, send(self->fd, "part1", 5, MSG_MORE));
	EXPECT_EQ(0, oss_wait_in(self->cfd, 200) & POLLIN);
	EXPECT_EQ(-EAGAIN, recv_e(self->cfd, buf, sizeof(buf), MSG_DONTWAIT));
	ASSERT_EQ(5, send(self->fd, "part2", 5, 0));
	ASSERT_EQ(10, recv(self->cfd, buf, 10, MSG_WAITALL));
	EXPECT_STREQ("part1part2", buf);
}

/* MSG_MORE must not hold back a record that is already full */
TEST_F(ossuary, msg_more_full_record_goes_out)
{
	static uint8_t out[OSSUARY_MAX_PLAINTEXT + 100], in[OSSUARY_MAX_PLAINTEXT];

	oss_fill(out, sizeof(out), 8);
	ASSERT_EQ((ssize_t)sizeof(out), send(self->fd, out, sizeof(out), MSG_MORE));
	ASSERT_EQ(OSSUARY_MAX_PLAINTEXT,
		  recv(self->cfd, in, OSSUARY_MAX_PLAINTEXT, MSG_WAITALL));
	EXPECT_EQ(0, memcmp(out, in, OSSUARY_MAX_PLAINTEXT));
	EXPECT_EQ(-EAGAIN, recv_e(self->cfd, in, sizeof(in), MSG_DONTWAIT));
	ASSERT_EQ(0, send(self->fd, out, 0, 0));	/* flush */
	ASSERT_EQ(100, recv(self->cfd, in, 100, MSG_WAITALL));
	EXPECT_EQ(0, memcmp(out + OSSUARY_MAX_PLAINTEXT, in, 100));
}

/* A record held with MSG_MORE is pushed out by shutdown (and not lost) */
TEST_F(ossuary, msg_more_then_shutdown)
{
	char buf[32] = {};

	ASSERT_EQ(4, send(self->fd, "held", 4, MSG_MORE));
	ASSERT_EQ(0, shutdown(self->fd, SHUT_WR));
	ASSERT_EQ(4, recv(self->cfd, buf, 4, MSG_WAITALL));
	EXPECT_STREQ("held", buf);
	EXPECT_EQ(0, recv(self->cfd, buf, sizeof(buf), 0));
}

/* Transfer len bytes fd -> cfd from a child in random-sized writes */
static int big_transfer(int wfd, int rfd, size_t len, unsigned int seed)
{
	uint8_t *out = malloc(len), *in = malloc(len);
	size_t got = 0;
	pid_t pid;
	int ret = 0;

	if (!out || !in)
		return -ENOMEM;
	oss_fill(out, len, seed);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		size_t off = 0;

		srand(seed);
		while (off < len) {
			size_t n = 1 + rand() % 65536;
			ssize_t w;

			if (n > len - off)
				n = len - off;
			w = send(wfd, out + off, n, 0);
			if (w <= 0)
				_exit(1);
			off += w;
		}
		_exit(0);
	}
	srand(seed + 1);
	while (got < len) {
		size_t n = 1 + rand() % 40000;
		ssize_t r;

		if (n > len - got)
			n = len - got;
		r = recv(rfd, in + got, n, 0);
		if (r <= 0) {
			ret = r < 0 ? -errno : -EPIPE;
			break;
		}
		got += r;
	}
	if (oss_wait_child(pid))
		ret = ret ?: -EIO;
	if (!ret && memcmp(out, in, len))
		ret = -EILSEQ;
	free(out);
	free(in);
	return ret;
}

TEST_F_TIMEOUT(ossuary, large_transfer_random_chunks, 300)
{
	struct timeval tv = { .tv_sec = 30 };
	int ret;

	setsockopt(self->cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(self->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	ret = big_transfer(self->fd, self->cfd, 2 << 20, 11);
	EXPECT_EQ(0, ret) TH_LOG("2 MiB transfer: %s", strerror(-ret));
}

TEST_F_TIMEOUT(ossuary, sendfile_file, 120)
{
	size_t len = 512 << 10;
	uint8_t *out = malloc(len), *in = malloc(len);
	char path[] = "/tmp/ossuary-sendfile-XXXXXX";
	off_t off = 0;
	pid_t pid;
	int tfd;

	ASSERT_NE(NULL, out);
	ASSERT_NE(NULL, in);
	oss_fill(out, len, 12);
	tfd = mkstemp(path);
	ASSERT_GE(tfd, 0);
	unlink(path);
	ASSERT_EQ((ssize_t)len, write(tfd, out, len));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		while ((size_t)off < len)
			if (sendfile(self->fd, tfd, &off, len - off) <= 0)
				_exit(1);
		_exit(0);
	}
	EXPECT_EQ((ssize_t)len, oss_read_full(self->cfd, in, len, NULL));
	EXPECT_EQ(0, memcmp(out, in, len));
	EXPECT_EQ(0, oss_wait_child(pid));
	close(tfd);
}

TEST_F(ossuary, splice_from_socket)
{
	uint8_t out[5000], in[5000];
	int p[2];
	ssize_t n, got = 0;

	oss_fill(out, sizeof(out), 13);
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(5000, send(self->fd, out, sizeof(out), 0));
	while (got < 5000) {
		n = splice(self->cfd, NULL, p[1], NULL, 5000 - got, 0);
		ASSERT_GT(n, 0) TH_LOG("splice: %s", strerror(errno));
		ASSERT_EQ(n, read(p[0], in + got, n));
		got += n;
	}
	EXPECT_EQ(0, memcmp(out, in, sizeof(out)));
	close(p[0]);
	close(p[1]);
}

TEST_F(ossuary, splice_to_socket)
{
	uint8_t out[4000], in[4000];
	int p[2];

	oss_fill(out, sizeof(out), 14);
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(4000, write(p[1], out, sizeof(out)));
	ASSERT_EQ(4000, splice(p[0], NULL, self->fd, NULL, 4000, 0));
	ASSERT_EQ(4000, recv(self->cfd, in, 4000, MSG_WAITALL));
	EXPECT_EQ(0, memcmp(out, in, sizeof(out)));
	close(p[0]);
	close(p[1]);
}

TEST_F(ossuary, bidirectional)
{
	char buf[32] = {};

	for (int i = 0; i < 20; i++) {
		ASSERT_EQ(4, send(self->fd, "ping", 4, 0));
		ASSERT_EQ(4, recv(self->cfd, buf, 4, MSG_WAITALL));
		ASSERT_EQ(0, memcmp(buf, "ping", 4));
		ASSERT_EQ(4, send(self->cfd, "pong", 4, 0));
		ASSERT_EQ(4, recv(self->fd, buf, 4, MSG_WAITALL));
		ASSERT_EQ(0, memcmp(buf, "pong", 4));
	}
}

/* Both directions at full speed at once */
TEST_F_TIMEOUT(ossuary, bidirectional_concurrent, 300)
{
	struct timeval tv = { .tv_sec = 30 };
	pid_t pid;
	int ret;

	setsockopt(self->cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(self->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(self->cfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(self->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid)
		_exit(big_transfer(self->cfd, self->fd, 1 << 20, 21) ? 1 : 0);
	ret = big_transfer(self->fd, self->cfd, 1 << 20, 22);
	EXPECT_EQ(0, ret) TH_LOG("fd->cfd: %s", strerror(-ret));
	EXPECT_EQ(0, oss_wait_child(pid)) TH_LOG("cfd->fd failed");
}

/* A blocking writer against a reader that drains slowly */
TEST_F_TIMEOUT(ossuary, blocking_slow_reader, 120)
{
	size_t len = 1 << 20;
	uint8_t *out = malloc(len);
	pid_t pid;

	ASSERT_NE(NULL, out);
	oss_fill(out, len, 15);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		uint8_t *in = malloc(len);
		size_t got = 0;

		while (got < len) {
			ssize_t r = recv(self->cfd, in + got,
					 len - got < 16384 ? len - got : 16384, 0);

			if (r <= 0)
				_exit(1);
			got += r;
			if ((got / 16384) % 8 == 0)
				oss_msleep(5);
		}
		_exit(memcmp(in, out, len) ? 2 : 0);
	}
	EXPECT_EQ((ssize_t)len, oss_write_all(self->fd, out, len));
	EXPECT_EQ(0, oss_wait_child(pid));
}

/* A blocking reader waits for a writer that starts late */
TEST_F(ossuary, blocking_slow_writer)
{
	char buf[16] = {};
	pid_t pid = fork();

	ASSERT_GE(pid, 0);
	if (!pid) {
		oss_msleep(300);
		_exit(send(self->fd, "late", 4, 0) == 4 ? 0 : 1);
	}
	EXPECT_EQ(4, recv(self->cfd, buf, 4, MSG_WAITALL));
	EXPECT_STREQ("late", buf);
	EXPECT_EQ(0, oss_wait_child(pid));
}

/* A non-blocking writer fills the pipe, gets EAGAIN, and loses nothing */
TEST_F_TIMEOUT(ossuary, nonblocking_send_fills, 120)
{
	size_t cap = 32 << 20, sent = 0, got = 0;
	uint8_t *out = malloc(cap), *in = malloc(cap);
	int eagain = 0;

	ASSERT_NE(NULL, out);
	ASSERT_NE(NULL, in);
	oss_fill(out, cap, 16);
	ASSERT_EQ(0, oss_set_nonblock(self->fd, true));
	while (sent < cap) {
		ssize_t n = send(self->fd, out + sent,
				 cap - sent < 65536 ? cap - sent : 65536, 0);

		if (n < 0) {
			ASSERT_EQ(EAGAIN, errno);
			eagain = 1;
			break;
		}
		sent += n;
	}
	EXPECT_EQ(1, eagain) TH_LOG("%zu bytes accepted without EAGAIN", sent);
	/* everything accepted arrives, and nothing more */
	got = oss_read_full(self->cfd, in, sent, NULL);
	EXPECT_EQ(-EAGAIN, recv_e(self->cfd, in, 1, MSG_DONTWAIT));
	EXPECT_EQ(sent, got);
	EXPECT_EQ(0, memcmp(out, in, got));
}

TEST_F(ossuary, poll_nothing_then_data)
{
	struct pollfd p = { .fd = self->cfd, .events = POLLIN | POLLOUT };

	ASSERT_EQ(1, poll(&p, 1, 100));
	EXPECT_EQ(POLLOUT, p.revents & (POLLIN | POLLOUT));
	ASSERT_EQ(3, send(self->fd, "abc", 3, 0));
	p.events = POLLIN;
	ASSERT_EQ(1, poll(&p, 1, 3000));
	EXPECT_TRUE(p.revents & POLLIN);
}

TEST_F(ossuary, poll_wakes_on_data)
{
	struct pollfd p = { .fd = self->cfd, .events = POLLIN };
	char buf[8];
	pid_t pid = fork();

	ASSERT_GE(pid, 0);
	if (!pid) {
		oss_msleep(200);
		_exit(send(self->fd, "wake", 4, 0) == 4 ? 0 : 1);
	}
	ASSERT_EQ(1, poll(&p, 1, 5000));
	EXPECT_TRUE(p.revents & POLLIN);
	EXPECT_EQ(4, recv(self->cfd, buf, 4, MSG_WAITALL));
	EXPECT_EQ(0, oss_wait_child(pid));
}

TEST_F(ossuary, epoll_wakes_on_data)
{
	struct epoll_event ev = { .events = EPOLLIN }, out;
	char buf[8];
	int ep = epoll_create1(0);
	pid_t pid;

	ASSERT_GE(ep, 0);
	ASSERT_EQ(0, epoll_ctl(ep, EPOLL_CTL_ADD, self->cfd, &ev));
	EXPECT_EQ(0, epoll_wait(ep, &out, 1, 100));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		oss_msleep(200);
		_exit(send(self->fd, "wake", 4, 0) == 4 ? 0 : 1);
	}
	ASSERT_EQ(1, epoll_wait(ep, &out, 1, 5000));
	EXPECT_TRUE(out.events & EPOLLIN);
	EXPECT_EQ(4, recv(self->cfd, buf, 4, MSG_WAITALL));
	EXPECT_EQ(0, oss_wait_child(pid));
	close(ep);
}

TEST_F_TIMEOUT(ossuary, multiproc_writers, 120)
{
	enum { NPROC = 4, CHUNK = 4096, PER = 16 };
	size_t counts[NPROC] = {};
	uint8_t buf[16384];
	size_t got = 0;
	pid_t pids[NPROC];

	for (int i = 0; i < NPROC; i++) {
		pids[i] = fork();
		ASSERT_GE(pids[i], 0);
		if (!pids[i]) {
			uint8_t chunk[CHUNK];

			memset(chunk, 'A' + i, sizeof(chunk));
			for (int j = 0; j < PER; j++)
				if (oss_write_all(self->fd, chunk, CHUNK) != CHUNK)
					_exit(1);
			_exit(0);
		}
	}
	while (got < (size_t)NPROC * CHUNK * PER) {
		ssize_t n = recv(self->cfd, buf, sizeof(buf), 0);

		ASSERT_GT(n, 0) TH_LOG("after %zu bytes: %s", got, strerror(errno));
		for (ssize_t k = 0; k < n; k++) {
			ASSERT_GE(buf[k], 'A');
			ASSERT_LT(buf[k], 'A' + NPROC);
			counts[buf[k] - 'A']++;
		}
		got += n;
	}
	for (int i = 0; i < NPROC; i++) {
		EXPECT_EQ(0, oss_wait_child(pids[i]));
		EXPECT_EQ((size_t)CHUNK * PER, counts[i]);
	}
}

TEST_F_TIMEOUT(ossuary, multiproc_readers, 120)
{
	enum { NPROC = 4, TOTAL = 256 * 1024 };
	size_t *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint8_t *out = malloc(TOTAL);
	pid_t pids[NPROC];
	size_t sum = 0;

	ASSERT_NE(MAP_FAILED, shared);
	oss_fill(out, TOTAL, 17);
	for (int i = 0; i < NPROC; i++) {
		pids[i] = fork();
		ASSERT_GE(pids[i], 0);
		if (!pids[i]) {
			uint8_t buf[3000];
			struct timeval tv = { .tv_sec = 2 };

			setsockopt(self->cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			for (;;) {
				ssize_t n = recv(self->cfd, buf, sizeof(buf), 0);

				if (n == 0)
					_exit(0);
				if (n < 0)
					_exit(errno == EAGAIN ? 0 : 1);
				__atomic_add_fetch(&shared[i], n, __ATOMIC_SEQ_CST);
			}
		}
	}
	EXPECT_EQ(TOTAL, oss_write_all(self->fd, out, TOTAL));
	shutdown(self->fd, SHUT_WR);
	for (int i = 0; i < NPROC; i++) {
		EXPECT_EQ(0, oss_wait_child(pids[i]));
		sum += shared[i];
	}
	EXPECT_EQ((size_t)TOTAL, sum);
}

/* shutdown(SHUT_WR) sends DISCONNECT(0): the peer reads EOF and can reply */
TEST_F(ossuary, shutdown_wr_eof_and_half_close)
{
	struct ossuary_dir_state st;
	char buf[16] = {};

	ASSERT_EQ(4, send(self->fd, "last", 4, 0));
	ASSERT_EQ(0, shutdown(self->fd, SHUT_WR));
	ASSERT_EQ(4, recv(self->cfd, buf, 4, MSG_WAITALL));
	EXPECT_STREQ("last", buf);
	EXPECT_EQ(0, recv(self->cfd, buf, sizeof(buf), 0)) TH_LOG("%s", strerror(errno));
	EXPECT_EQ(0, recv(self->cfd, buf, sizeof(buf), 0));
	/* the other direction still works */
	ASSERT_EQ(5, send(self->cfd, "reply", 5, 0));
	memset(buf, 0, sizeof(buf));
	ASSERT_EQ(5, recv(self->fd, buf, 5, MSG_WAITALL));
	EXPECT_STREQ("reply", buf);
	ASSERT_EQ(0, shutdown(self->cfd, SHUT_WR));
	EXPECT_EQ(0, recv(self->fd, buf, sizeof(buf), 0));
	ASSERT_EQ(0, oss_state(self->fd, OSSUARY_TX, &st));
	EXPECT_TRUE(st.flags & OSSUARY_STATE_CLOSED);
	ASSERT_EQ(0, oss_state(self->cfd, OSSUARY_RX, &st));
	EXPECT_TRUE(st.flags & OSSUARY_STATE_CLOSED);
	EXPECT_FALSE(st.flags & OSSUARY_STATE_ERROR);
}

TEST_F(ossuary, send_after_shutdown_epipe)
{
	ASSERT_EQ(0, shutdown(self->fd, SHUT_WR));
	EXPECT_EQ(-1, send(self->fd, "x", 1, MSG_NOSIGNAL));
	EXPECT_EQ(EPIPE, errno);
}

/* close() with bytes queued: the peer still gets every byte */
TEST_F(ossuary, close_with_pending_data)
{
	uint8_t out[40000], in[40000];
	ssize_t n;
	int e;

	oss_fill(out, sizeof(out), 18);
	ASSERT_EQ((ssize_t)sizeof(out), send(self->fd, out, sizeof(out), 0));
	close(self->fd);
	self->fd = -1;
	ASSERT_EQ((ssize_t)sizeof(in), oss_read_full(self->cfd, in, sizeof(in), NULL));
	EXPECT_EQ(0, memcmp(out, in, sizeof(in)));
	n = recv(self->cfd, in, sizeof(in), 0);
	e = errno;
	/* the uapi header: close() sends DISCONNECT(0) after the data */
	EXPECT_EQ(0, n) TH_LOG("after close: %zd (%s)", n, n < 0 ? strerror(e) : "EOF");
}

TEST_F(ossuary, getsockopt_seq_advances)
{
	struct ossuary_dir_state tx, rx;
	char buf[16];

	ASSERT_EQ(0, oss_state(self->fd, OSSUARY_TX, &tx));
	EXPECT_EQ(OSSUARY_VERSION_2, tx.version);
	EXPECT_EQ(OSSUARY_CIPHER_CHACHA20_POLY1305, tx.cipher);
	EXPECT_TRUE(tx.flags & OSSUARY_STATE_INSTALLED);
	EXPECT_EQ(0, tx.flags & (OSSUARY_STATE_ERROR | OSSUARY_STATE_CLOSED));
	EXPECT_EQ(0, tx.seq);
	EXPECT_EQ(0, tx.generation);
	EXPECT_EQ(0, tx.error);
	oss_nodelay(self->fd);
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(2, send(self->fd, "ab", 2, 0));
		ASSERT_EQ(2, recv(self->cfd, buf, 2, MSG_WAITALL));
	}
	ASSERT_EQ(0, oss_state(self->fd, OSSUARY_TX, &tx));
	EXPECT_EQ(3, tx.seq);
	ASSERT_EQ(0, oss_state(self->cfd, OSSUARY_RX, &rx));
	EXPECT_EQ(3, rx.seq);
	EXPECT_TRUE(rx.flags & OSSUARY_STATE_INSTALLED);
	/* the other direction is untouched */
	ASSERT_EQ(0, oss_state(self->cfd, OSSUARY_TX, &tx));
	EXPECT_EQ(0, tx.seq);
}

TEST_F(ossuary, key_update_both_ends)
{
	struct ossuary_dir_state st;
	char buf[16] = {};
	int zero = 0;

	ASSERT_EQ(3, send(self->fd, "old", 3, 0));
	ASSERT_EQ(0, setsockopt(self->fd, SOL_OSSUARY, OSSUARY_KEY_UPDATE, &zero,
				sizeof(zero))) TH_LOG("%s", strerror(errno));
	ASSERT_EQ(3, send(self->fd, "new", 3, 0));
	ASSERT_EQ(6, recv(self->cfd, buf, 6, MSG_WAITALL));
	EXPECT_STREQ("oldnew", buf);
	ASSERT_EQ(0, oss_state(self->fd, OSSUARY_TX, &st));
	EXPECT_EQ(1, st.generation);
	EXPECT_EQ(1, st.seq);
	ASSERT_EQ(0, oss_state(self->cfd, OSSUARY_RX, &st));
	EXPECT_EQ(1, st.generation);
	EXPECT_EQ(1, st.seq);
}

TEST_F(ossuary, recv_unsupported_flag)
{
	char buf[8];

	ASSERT_EQ(1, send(self->fd, "x", 1, 0));
	EXPECT_EQ(-EOPNOTSUPP, recv_e(self->cfd, buf, sizeof(buf), MSG_OOB));
	/* nothing was consumed */
	EXPECT_EQ(1, recv(self->cfd, buf, sizeof(buf), 0));
}

TEST_F(ossuary, connect_unspec_refused)
{
	struct sockaddr sa = { .sa_family = AF_UNSPEC };
	char buf[8] = {};

	EXPECT_EQ(-1, connect(self->fd, &sa, sizeof(sa)));
	EXPECT_EQ(EOPNOTSUPP, errno);
	/* and the connection is intact */
	ASSERT_EQ(3, send(self->fd, "yes", 3, 0));
	ASSERT_EQ(3, recv(self->cfd, buf, 3, MSG_WAITALL));
	EXPECT_STREQ("yes", buf);
}

/* A reader with a control buffer learns the record type of what it read */
TEST_F(ossuary, recvmsg_cmsg_record_type)
{
	char buf[16] = {}, cbuf[CMSG_SPACE(1)] = {};
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;

	ASSERT_EQ(4, send(self->fd, "type", 4, 0));
	ASSERT_EQ(4, recvmsg(self->cfd, &msg, 0));
	c = CMSG_FIRSTHDR(&msg);
	ASSERT_NE(NULL, c);
	EXPECT_EQ(SOL_OSSUARY, c->cmsg_level);
	EXPECT_EQ(OSSUARY_GET_RECORD_TYPE, c->cmsg_type);
	EXPECT_EQ(CMSG_LEN(1), c->cmsg_len);
	EXPECT_EQ(OSSUARY_RECORD_DATA, *CMSG_DATA(c));
}

TEST_F(ossuary, key_update_after_shutdown_epipe)
{
	int zero = 0;

	ASSERT_EQ(0, shutdown(self->fd, SHUT_WR));
	EXPECT_EQ(-1, setsockopt(self->fd, SOL_OSSUARY, OSSUARY_KEY_UPDATE, &zero,
				 sizeof(zero)));
	EXPECT_EQ(EPIPE, errno);
}

TEST_F(ossuary, msg_more_with_eor_einval)
{
	EXPECT_EQ(-1, send(self->fd, "x", 1, MSG_MORE | MSG_EOR));
	EXPECT_EQ(EINVAL, errno);
}

/* Both ends offloaded, a KEY_UPDATE after every record, 512 KiB through */
TEST_F_TIMEOUT(ossuary, rekey_every_record_transfer, 120)
{
	struct ossuary_dir_state st;
	uint64_t one = 1;
	int ret;

	ASSERT_EQ(0, setsockopt(self->fd, SOL_OSSUARY, OSSUARY_REKEY_RECORDS, &one,
				sizeof(one)));
	ret = big_transfer(self->fd, self->cfd, 512 << 10, 41);
	EXPECT_EQ(0, ret) TH_LOG("%s", strerror(-ret));
	ASSERT_EQ(0, oss_state(self->fd, OSSUARY_TX, &st));
	EXPECT_GE(st.generation, 31);
	EXPECT_LE(st.seq, 1);
}

/* ==================== one end offloaded, one end raw ==================== */

/* Seal one record for the kernel and return its length in rec */
static size_t seal_to_k(FIXTURE_DATA(raw) *self, uint8_t type,
			const void *pt, size_t len, uint8_t *rec)
{
	return wire_seal(&self->to_k, type, pt, len, rec);
}

static ssize_t send_to_k(FIXTURE_DATA(raw) *self, uint8_t type,
			 const void *pt, size_t len)
{
	uint8_t rec[WIRE_MAX_REC + 64];
	size_t n = seal_to_k(self, type, pt, len, rec);

	return oss_write_all(self->pfd, rec, n);
}

/* Read and open the kernel's next record; returns plaintext len or -1 */
static ssize_t open_from_k(FIXTURE_DATA(raw) *self, uint8_t *pt,
			   uint8_t *type, uint8_t *hdr_out)
{
	uint8_t rec[WIRE_MAX_REC];
	ssize_t n = wire_read_record(self->pfd, rec);

	if (n <= 0)
		return -1;
	if (hdr_out)
		memcpy(hdr_out, rec, WIRE_HDR);
	return wire_open(&self->from_k, rec, n, pt, type);
}

/* The bytes the kernel puts on the wire are exactly PROTOCOL.md's */
TEST_F(raw, tx_wire_format)
{
	uint8_t rec[WIRE_MAX_REC], pt[64], nonce[12], type;
	uint8_t expect[64];
	struct wire_dir d;
	ssize_t n;

	ASSERT_EQ(5, send(self->kfd, "hello", 5, 0));
	n = wire_read_record(self->pfd, rec);
	ASSERT_EQ(4 + 5 + 16, n);
	/* header: version 2, DATA, u16 big-endian length of body */
	EXPECT_EQ(0x02, rec[0]);
	EXPECT_EQ(0x20, rec[1]);
	EXPECT_EQ(0x00, rec[2]);
	EXPECT_EQ(0x15, rec[3]);
	/* nonce = iv XOR seq 0, aad = header: seal it ourselves, compare */
	wire_nonce(&self->from_k, 0, nonce);
	EXPECT_EQ(0, memcmp(nonce, self->from_k.iv, 12));
	d = self->from_k;
	ASSERT_EQ((size_t)n, wire_seal(&d, 0x20, "hello", 5, expect));
	EXPECT_EQ(0, memcmp(rec, expect, n));
	ASSERT_EQ(5, wire_open(&self->from_k, rec, n, pt, &type));
	/* second record: seq 1 */
	ASSERT_EQ(5, send(self->kfd, "world", 5, 0));
	n = wire_read_record(self->pfd, rec);
	ASSERT_EQ(25, n);
	d = self->from_k;
	ASSERT_EQ(1, d.seq);
	ASSERT_EQ((size_t)n, wire_seal(&d, 0x20, "world", 5, expect));
	EXPECT_EQ(0, memcmp(rec, expect, n));
	/* and the header really is authenticated: flip it, opening fails */
	rec[1] ^= 0x01;
	EXPECT_EQ(-1, wire_open(&self->from_k, rec, n, pt, &type));
}

/* A large write becomes consecutive DATA records of at most 16 KiB */
TEST_F(raw, tx_large_write_records)
{
	size_t len = 3 * OSSUARY_MAX_PLAINTEXT + 100, got = 0;
	uint8_t *out = malloc(len), *in = malloc(len + WIRE_MAX_PT);
	int records = 0;

	ASSERT_NE(NULL, out);
	oss_fill(out, len, 31);
	ASSERT_EQ((ssize_t)len, send(self->kfd, out, len, 0));
	while (got < len) {
		uint8_t type;
		ssize_t n = open_from_k(self, in + got, &type, NULL);

		ASSERT_GE(n, 0) TH_LOG("record %d (seq %llu) does not open", records,
				       (unsigned long long)self->from_k.seq);
		EXPECT_EQ(OSSUARY_RECORD_DATA, type);
		EXPECT_LE(n, OSSUARY_MAX_PLAINTEXT);
		got += n;
		records++;
	}
	EXPECT_EQ(len, got);
	EXPECT_EQ(0, memcmp(out, in, len));
	EXPECT_GE(records, 4);
	free(out);
	free(in);
}

/* Confidentiality: no run of plaintext appears on the wire */
TEST_F(raw, tx_no_plaintext_on_wire)
{
	uint8_t out[8192], wire[16384];
	size_t have = 0;

	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = "OSSUARY-PLAINTEXT-MARKER "[i % 25];
	ASSERT_EQ((ssize_t)sizeof(out), send(self->kfd, out, sizeof(out), 0));
	while (have < sizeof(out) + 4 + 16) {
		ssize_t n = recv(self->pfd, wire + have, sizeof(wire) - have, 0);

		ASSERT_GT(n, 0);
		have += n;
	}
	EXPECT_EQ(NULL, memmem(wire, have, "PLAINTEXT", 9));
}

/* MSG_MORE coalesces writes into one record */
TEST_F(raw, tx_msg_more_one_record)
{
	uint8_t pt[64] = {}, type;

	ASSERT_EQ(3, send(self->kfd, "abc", 3, MSG_MORE));
	ASSERT_EQ(3, send(self->kfd, "def", 3, MSG_MORE));
	ASSERT_EQ(3, send(self->kfd, "ghi", 3, 0));
	ASSERT_EQ(9, open_from_k(self, pt, &type, NULL));
	EXPECT_EQ(0, memcmp(pt, "abcdefghi", 9));
}

TEST_F(raw, rx_single_record)
{
	char buf[16] = {};

	ASSERT_EQ(25, send_to_k(self, OSSUARY_RECORD_DATA, "hello", 5));
	ASSERT_EQ(5, recv(self->kfd, buf, sizeof(buf), 0));
	EXPECT_STREQ("hello", buf);
}

TEST_F(raw, rx_record_byte_by_byte)
{
	uint8_t rec[128];
	char buf[64] = {};
	size_t n = seal_to_k(self, OSSUARY_RECORD_DATA, "dribbled in", 11, rec);

	for (size_t i = 0; i < n; i++) {
		ASSERT_EQ(1, send(self->pfd, rec + i, 1, 0));
		if (i % 4 == 0)
			oss_msleep(2);
	}
	ASSERT_EQ(11, recv(self->kfd, buf, 11, MSG_WAITALL));
	EXPECT_STREQ("dribbled in", buf);
}

TEST_F(raw, rx_many_records_one_write)
{
	uint8_t stream[20 * 64];
	char buf[256] = {}, expect[256] = {};
	size_t off = 0;

	for (int i = 0; i < 20; i++) {
		char pt[8];

		snprintf(pt, sizeof(pt), "r%02d,", i);
		strcat(expect, pt);
		off += seal_to_k(self, OSSUARY_RECORD_DATA, pt, 4, stream + off);
	}
	ASSERT_EQ((ssize_t)off, oss_write_all(self->pfd, stream, off));
	oss_msleep(100);
	ASSERT_EQ(80, recv(self->kfd, buf, 80, MSG_WAITALL));
	EXPECT_STREQ(expect, buf);
}

TEST_F(raw, rx_several_records_one_recv)
{
	char buf[64] = {};

	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "one,", 4), 0);
	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "two,", 4), 0);
	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "three", 5), 0);
	oss_msleep(200);
	ASSERT_EQ(13, recv(self->kfd, buf, sizeof(buf), 0))
		TH_LOG("three records queued, one recv should return all");
	EXPECT_STREQ("one,two,three", buf);
}

/* Send n records of len bytes each (fill seed + i) to the kernel at once */
static bool send_full_records(FIXTURE_DATA(raw) *self, const uint8_t *out,
			      int n, size_t len)
{
	static uint8_t stream[4 * WIRE_MAX_REC];
	size_t off = 0;

	for (int i = 0; i < n && i < 4; i++)
		off += seal_to_k(self, OSSUARY_RECORD_DATA, out + len * i, len,
				 stream + off);
	return oss_write_all(self->pfd, stream, off) == (ssize_t)off;
}

/*
 * Four full records, all in the socket: one read of 64 KiB opens and
 * returns all four, as kTLS does, each straight into the buffer.
 */
TEST_F(raw, rx_read_opens_four_full_records)
{
	static uint8_t out[4 * OSSUARY_MAX_PLAINTEXT], in[4 * OSSUARY_MAX_PLAINTEXT];
	long long direct = oss_stat_get("OssuaryRxDirectRecords");

	oss_fill(out, sizeof(out), 50);
	ASSERT_TRUE(send_full_records(self, out, 4, OSSUARY_MAX_PLAINTEXT));
	ASSERT_EQ(0, oss_wait_acked(self->pfd, 5000));
	ASSERT_EQ((ssize_t)sizeof(in), recv(self->kfd, in, sizeof(in), 0))
		TH_LOG("four whole records were in the socket; one read should return all");
	EXPECT_EQ(0, memcmp(out, in, sizeof(in)));
	EXPECT_EQ(direct + 4, oss_stat_get("OssuaryRxDirectRecords"));
	EXPECT_EQ(-EAGAIN, recv_e(self->kfd, in, 1, MSG_DONTWAIT));
}

/* A read that has bytes does not wait for a record still coming */
TEST_F(raw, rx_read_does_not_wait_for_partial_record)
{
	uint8_t rec[WIRE_MAX_REC];
	char buf[4096];
	long long t0;
	size_t n;

	oss_set_timeouts(self->kfd, 5);
	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "whole", 5), 0);
	n = seal_to_k(self, OSSUARY_RECORD_DATA, "half-a-record", 13, rec);
	ASSERT_EQ((ssize_t)n / 2, oss_write_all(self->pfd, rec, n / 2));
	ASSERT_EQ(0, oss_wait_acked(self->pfd, 5000));
	t0 = oss_now_ms();
	EXPECT_EQ(5, recv(self->kfd, buf, sizeof(buf), MSG_PEEK));
	EXPECT_EQ(5, recv(self->kfd, buf, sizeof(buf), 0));
	EXPECT_LT(oss_now_ms() - t0, 2000) TH_LOG("a read with bytes waited");
	ASSERT_EQ((ssize_t)(n - n / 2), oss_write_all(self->pfd, rec + n / 2, n - n / 2));
	EXPECT_EQ(13, recv(self->kfd, buf, sizeof(buf), 0));
}

/*
 * DATA, DATA, DISCONNECT(2): a typed read returns the data and stops at
 * the DISCONNECT record, which the next read returns alone.
 */
TEST_F(raw, rx_read_stops_at_disconnect_record)
{
	uint8_t two = 2;
	char buf[64] = {}, cbuf[CMSG_SPACE(1)] = {};
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;

	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "abcde", 5), 0);
	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "fgh", 3), 0);
	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DISCONNECT, &two, 1), 0);
	ASSERT_EQ(0, oss_wait_acked(self->pfd, 5000));
	ASSERT_EQ(8, recvmsg(self->kfd, &msg, 0)) TH_LOG("%s", strerror(errno));
	EXPECT_EQ(0, memcmp(buf, "abcdefgh", 8));
	c = CMSG_FIRSTHDR(&msg);
	ASSERT_NE(NULL, c);
	EXPECT_EQ(OSSUARY_RECORD_DATA, *CMSG_DATA(c));
	msg.msg_controllen = sizeof(cbuf);
	ASSERT_EQ(1, recvmsg(self->kfd, &msg, 0)) TH_LOG("%s", strerror(errno));
	c = CMSG_FIRSTHDR(&msg);
	ASSERT_NE(NULL, c);
	EXPECT_EQ(OSSUARY_RECORD_DISCONNECT, *CMSG_DATA(c));
	EXPECT_EQ(2, buf[0]);
	msg.msg_controllen = sizeof(cbuf);
	EXPECT_EQ(-1, recvmsg(self->kfd, &msg, 0));
	EXPECT_EQ(ECONNRESET, errno);
}

/*
 * Two good records of 1000 bytes each (out, filled from seed), then a
 * forged one, all in the kernel side's receive queue: 0 when so.
 */
static int send_two_then_forged(FIXTURE_DATA(raw) *self, uint8_t *out,
				int seed)
{
	uint8_t rec[WIRE_MAX_REC];
	size_t n;

	oss_fill(out, 2000, seed);
	if (send_to_k(self, OSSUARY_RECORD_DATA, out, 1000) <= 0 ||
	    send_to_k(self, OSSUARY_RECORD_DATA, out + 1000, 1000) <= 0)
		return -1;
	n = seal_to_k(self, OSSUARY_RECORD_DATA, out, 1000, rec);
	rec[n - 1] ^= 0x01;
	if (oss_write_all(self->pfd, rec, n) != (ssize_t)n)
		return -1;
	return oss_wait_acked(self->pfd, 5000);
}

/* Two good records, then a forged one: the good bytes, then EBADMSG */
TEST_F(raw, rx_read_stops_before_forged_record)
{
	uint8_t out[2000], in[65536];

	ASSERT_EQ(0, send_two_then_forged(self, out, 51));
	ASSERT_EQ(2000, recv(self->kfd, in, sizeof(in), 0));
	EXPECT_EQ(0, memcmp(out, in, 2000));
	EXPECT_EQ(-EBADMSG, recv_e(self->kfd, in, sizeof(in), 0));
	EXPECT_EQ(-EBADMSG, recv_e(self->kfd, in, sizeof(in), 0));
}

/* The same with a peek first: it shows the good bytes, consumes nothing */
TEST_F(raw, rx_peek_stops_before_forged_record)
{
	uint8_t out[2000], in[65536];

	ASSERT_EQ(0, send_two_then_forged(self, out, 52));
	ASSERT_EQ(2000, recv(self->kfd, in, sizeof(in), MSG_PEEK));
	EXPECT_EQ(0, memcmp(out, in, 2000));
	memset(in, 0, sizeof(in));
	ASSERT_EQ(2000, recv(self->kfd, in, sizeof(in), 0));
	EXPECT_EQ(0, memcmp(out, in, 2000));
	EXPECT_EQ(-EBADMSG, recv_e(self->kfd, in, sizeof(in), 0));
}

/*
 * A peek of three full records returns all three and consumes nothing:
 * FIONREAD counts them, the next peeks and reads see the same bytes.
 */
TEST_F(raw, rx_peek_three_records)
{
	static uint8_t out[3 * OSSUARY_MAX_PLAINTEXT], in[3 * OSSUARY_MAX_PLAINTEXT];
	int inq = -1;

	oss_fill(out, sizeof(out), 53);
	ASSERT_TRUE(send_full_records(self, out, 3, OSSUARY_MAX_PLAINTEXT));
	ASSERT_EQ(0, oss_wait_acked(self->pfd, 5000));
	/* part of the second record, then all three */
	ASSERT_EQ(20000, recv(self->kfd, in, 20000, MSG_PEEK));
	EXPECT_EQ(0, memcmp(out, in, 20000));
	memset(in, 0, sizeof(in));
	ASSERT_EQ((ssize_t)sizeof(in), recv(self->kfd, in, sizeof(in), MSG_PEEK))
		TH_LOG("a peek of three records' worth should return all three");
	EXPECT_EQ(0, memcmp(out, in, sizeof(in)));
	ASSERT_EQ(0, ioctl(self->kfd, FIONREAD, &inq));
	EXPECT_EQ((int)sizeof(out), inq);
	/* consume part of the first record, peek the rest again */
	ASSERT_EQ(100, recv(self->kfd, in, 100, 0));
	EXPECT_EQ(0, memcmp(out, in, 100));
	memset(in, 0, sizeof(in));
	ASSERT_EQ((ssize_t)sizeof(in) - 100, recv(self->kfd, in, sizeof(in), MSG_PEEK));
	EXPECT_EQ(0, memcmp(out + 100, in, sizeof(in) - 100));
	memset(in, 0, sizeof(in));
	ASSERT_EQ((ssize_t)sizeof(in) - 100, recv(self->kfd, in, sizeof(in), 0));
	EXPECT_EQ(0, memcmp(out + 100, in, sizeof(in) - 100));
	EXPECT_EQ(-EAGAIN, recv_e(self->kfd, in, 1, MSG_DONTWAIT));
	ASSERT_EQ(0, ioctl(self->kfd, FIONREAD, &inq));
	EXPECT_EQ(0, inq);
	/* the stream goes on after the held records */
	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "next", 4), 0);
	ASSERT_EQ(4, recv(self->kfd, in, sizeof(in), 0));
	EXPECT_EQ(0, memcmp(in, "next", 4));
}

/* A peek across records, then EOF: the records, then the clean end */
TEST_F(raw, rx_peek_records_then_disconnect)
{
	uint8_t zero = 0;
	char buf[64] = {};

	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "one,", 4), 0);
	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "two", 3), 0);
	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DISCONNECT, &zero, 1), 0);
	ASSERT_EQ(0, oss_wait_acked(self->pfd, 5000));
	ASSERT_EQ(7, recv(self->kfd, buf, sizeof(buf), MSG_PEEK | MSG_WAITALL));
	EXPECT_EQ(0, memcmp(buf, "one,two", 7));
	memset(buf, 0, sizeof(buf));
	ASSERT_EQ(7, recv(self->kfd, buf, sizeof(buf), 0));
	EXPECT_EQ(0, memcmp(buf, "one,two", 7));
	EXPECT_EQ(0, recv(self->kfd, buf, sizeof(buf), 0));
}

TEST_F(raw, rx_max_record)
{
	static uint8_t out[OSSUARY_MAX_PLAINTEXT], in[OSSUARY_MAX_PLAINTEXT];

	oss_fill(out, sizeof(out), 32);
	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, out, sizeof(out)), 0);
	ASSERT_EQ((ssize_t)sizeof(in), recv(self->kfd, in, sizeof(in), MSG_WAITALL));
	EXPECT_EQ(0, memcmp(in, out, sizeof(in)));
}

TEST_F(raw, rx_zero_length_record)
{
	char buf[8] = {};

	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "", 0), 0);
	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "x", 1), 0);
	ASSERT_EQ(1, recv(self->kfd, buf, sizeof(buf), 0));
	EXPECT_EQ('x', buf[0]);
}

/* Half a record is not readable: poll, recv(MSG_DONTWAIT) agree */
TEST_F(raw, poll_partial_record)
{
	uint8_t rec[128];
	struct pollfd p = { .fd = self->kfd, .events = POLLIN };
	char buf[64] = {};
	size_t n = seal_to_k(self, OSSUARY_RECORD_DATA, "partial record", 14, rec);

	ASSERT_EQ((ssize_t)(n / 2), oss_write_all(self->pfd, rec, n / 2));
	oss_msleep(50);
	EXPECT_EQ(0, poll(&p, 1, 200)) TH_LOG("POLLIN with half a record");
	EXPECT_EQ(-EAGAIN, recv_e(self->kfd, buf, sizeof(buf), MSG_DONTWAIT));
	ASSERT_EQ((ssize_t)(n - n / 2), oss_write_all(self->pfd, rec + n / 2, n - n / 2));
	ASSERT_EQ(1, poll(&p, 1, 3000));
	EXPECT_TRUE(p.revents & POLLIN);
	ASSERT_EQ(14, recv(self->kfd, buf, sizeof(buf), 0));
	EXPECT_STREQ("partial record", buf);
}

TEST_F(raw, epoll_partial_record)
{
	struct epoll_event ev = { .events = EPOLLIN }, out;
	uint8_t rec[128];
	char buf[64] = {};
	size_t n = seal_to_k(self, OSSUARY_RECORD_DATA, "epoll record", 12, rec);
	int ep = epoll_create1(0);

	ASSERT_GE(ep, 0);
	ASSERT_EQ(0, epoll_ctl(ep, EPOLL_CTL_ADD, self->kfd, &ev));
	ASSERT_EQ((ssize_t)(n - 3), oss_write_all(self->pfd, rec, n - 3));
	EXPECT_EQ(0, epoll_wait(ep, &out, 1, 200)) TH_LOG("EPOLLIN with a partial record");
	ASSERT_EQ(3, oss_write_all(self->pfd, rec + n - 3, 3));
	ASSERT_EQ(1, epoll_wait(ep, &out, 1, 3000));
	EXPECT_TRUE(out.events & EPOLLIN);
	ASSERT_EQ(12, recv(self->kfd, buf, sizeof(buf), 0));
	EXPECT_STREQ("epoll record", buf);
	close(ep);
}

/* Only the header of the next record: still nothing readable */
TEST_F(raw, poll_header_only)
{
	uint8_t rec[128];
	size_t n = seal_to_k(self, OSSUARY_RECORD_DATA, "abc", 3, rec);

	ASSERT_EQ(4, oss_write_all(self->pfd, rec, 4));
	EXPECT_EQ(0, oss_wait_in(self->kfd, 200) & POLLIN);
	ASSERT_EQ((ssize_t)(n - 4), oss_write_all(self->pfd, rec + 4, n - 4));
	EXPECT_TRUE(oss_wait_in(self->kfd, 3000) & POLLIN);
}

/* Bytes that arrive before OSSUARY_RX is installed are records too */
TEST(rx_installed_after_data)
{
	struct wire_dir d;
	uint8_t rec[128];
	char buf[32] = {};
	size_t n;
	int k, p;

	ASSERT_EQ(0, wire_init());
	REQUIRE_OSSUARY();
	ASSERT_EQ(0, oss_tcp_pair(AF_INET, &k, &p));
	ASSERT_EQ(0, oss_attach(k));
	wire_dir_init(&d, secret_b(), 0);
	n = wire_seal(&d, OSSUARY_RECORD_DATA, "early bird", 10, rec);
	n += wire_seal(&d, OSSUARY_RECORD_DATA, "second", 6, rec + n);
	ASSERT_EQ((ssize_t)n, oss_write_all(p, rec, n));
	oss_msleep(200);
	ASSERT_EQ(0, oss_install(k, OSSUARY_RX, secret_b(), 0));
	ASSERT_EQ(16, recv(k, buf, 16, MSG_WAITALL));
	EXPECT_STREQ("early birdsecond", buf);
	close(k);
	close(p);
}

/*
 * Corrupt one byte of the second of three records. The first record is
 * read; then the error comes with nothing of the bad record (or the one
 * after it) delivered, and comes again.
 */
static void corrupt_case(struct __test_metadata *_metadata,
			 FIXTURE_DATA(raw) *self, int where, uint8_t xor,
			 int want_errno)
{
	uint8_t stream[512];
	char buf[256] = {};
	size_t off = 0, second;
	ssize_t n;
	int e, e2;

	off += seal_to_k(self, OSSUARY_RECORD_DATA, "good record", 11, stream);
	second = off;
	off += seal_to_k(self, OSSUARY_RECORD_DATA, "bad record here", 15, stream + off);
	off += seal_to_k(self, OSSUARY_RECORD_DATA, "after the bad one", 17, stream + off);
	stream[second + where] ^= xor;
	ASSERT_EQ((ssize_t)off, oss_write_all(self->pfd, stream, off));
	ASSERT_EQ(11, recv(self->kfd, buf, 11, MSG_WAITALL));
	EXPECT_EQ(0, memcmp(buf, "good record", 11));
	n = recv(self->kfd, buf, sizeof(buf), 0);
	e = errno;
	ASSERT_EQ(-1, n) TH_LOG("offset %d: delivered %zd bytes of a corrupt record", where, n);
	ASSERT_NE(EAGAIN, e) TH_LOG("offset %d: no error, read timed out", where);
	if (want_errno) {
		EXPECT_EQ(want_errno, e) TH_LOG("offset %d: %s", where, strerror(e));
	} else {
		TH_LOG("offset %d (header): protocol error %s", where, strerror(e));
	}
	n = recv(self->kfd, buf, sizeof(buf), 0);
	e2 = errno;
	EXPECT_EQ(-1, n);
	EXPECT_EQ(e, e2) TH_LOG("second read: %s", strerror(e2));
	n = recv(self->kfd, buf, sizeof(buf), MSG_DONTWAIT);
	EXPECT_EQ(-1, n);
	EXPECT_EQ(e, errno);
}

TEST_F(raw, corrupt_header_version)
{
	corrupt_case(_metadata, self, 0, 0x01, OSS_PROTO_ERRNO);
}

TEST_F(raw, corrupt_header_type)
{
	/* 0x20 -> 0x24: an unknown type */
	corrupt_case(_metadata, self, 1, 0x04, OSS_PROTO_ERRNO);
}

TEST_F(raw, corrupt_header_length_shorter)
{
	/* length 31 -> 30: still a legal DATA length, so the tag fails */
	corrupt_case(_metadata, self, 3, 0x01, EBADMSG);
}

TEST_F(raw, corrupt_header_length_longer)
{
	/* length 31 -> 47: the record swallows the next one; tag fails */
	corrupt_case(_metadata, self, 3, 0x30, EBADMSG);
}

TEST_F(raw, corrupt_body_first_byte)
{
	corrupt_case(_metadata, self, 4, 0x80, EBADMSG);
}

TEST_F(raw, corrupt_body_last_byte)
{
	corrupt_case(_metadata, self, 4 + 14, 0x01, EBADMSG);
}

TEST_F(raw, corrupt_tag_first_byte)
{
	corrupt_case(_metadata, self, 4 + 15, 0x10, EBADMSG);
}

TEST_F(raw, corrupt_tag_last_byte)
{
	corrupt_case(_metadata, self, 4 + 15 + 15, 0x01, EBADMSG);
}

/*
 * A forged record opened straight into the reader's buffer (room for the
 * whole record, so the direct path) leaves that buffer as it was, not
 * even for a moment. The buffer is a memfd mapped twice: recv() writes
 * through one mapping while a thread watches the other for any byte
 * that is not the 0xAA fill. A valid record first, into the same
 * mapping, shows the direct path writes there and the watcher sees it.
 */
#define FORGE_BUF	16384
#define FORGE_PT	8000

struct forge_watch {
	const uint8_t *map;	/* the second mapping */
	pthread_t thread;
	int stop;		/* __atomic */
	long scans;		/* __atomic */
	int seen;		/* a byte other than 0xAA, ever */
	size_t seen_off;
	uint8_t seen_val;
	bool seen_other;	/* one other than 0xAA and 0x00 */
};

static void *forge_watch_main(void *arg)
{
	struct forge_watch *w = arg;
	const volatile uint64_t *q = (const volatile uint64_t *)w->map;
	int stop;

	/* one whole scan after stop is seen: the final state is checked too */
	do {
		stop = __atomic_load_n(&w->stop, __ATOMIC_ACQUIRE);
		for (size_t i = 0; i < FORGE_BUF / 8; i++) {
			uint64_t v = q[i];

			if (v == 0xaaaaaaaaaaaaaaaaull)
				continue;
			for (int b = 0; b < 8; b++) {
				uint8_t c = (uint8_t)(v >> (8 * b));

				if (c == 0xaa)
					continue;
				if (!w->seen) {
					w->seen = 1;
					w->seen_off = i * 8 + b;
					w->seen_val = c;
				}
				if (c)
					w->seen_other = true;
			}
		}
		__atomic_add_fetch(&w->scans, 1, __ATOMIC_RELEASE);
	} while (!stop);
	return NULL;
}

static int forge_watch_start(struct forge_watch *w, const uint8_t *map)
{
	long long end = oss_now_ms() + 2000;

	memset(w, 0, sizeof(*w));
	w->map = map;
	if (pthread_create(&w->thread, NULL, forge_watch_main, w))
		return -1;
	/* watching before the record is written */
	while (!__atomic_load_n(&w->scans, __ATOMIC_ACQUIRE))
		if (oss_now_ms() > end)
			return -1;
	return 0;
}

static void forge_watch_stop(struct forge_watch *w)
{
	__atomic_store_n(&w->stop, 1, __ATOMIC_RELEASE);
	pthread_join(w->thread, NULL);
}

static bool all_aa(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != 0xaa)
			return false;
	return true;
}

TEST_F(raw, forged_tag_leaves_reader_buffer_unchanged)
{
	static uint8_t pt[FORGE_PT], rec[WIRE_MAX_REC];
	long long direct, buffered;
	struct forge_watch w;
	uint8_t *a, *b;
	size_t n;
	ssize_t r;
	int mfd, e;

	mfd = memfd_create("ossuary-forge", 0);
	ASSERT_GE(mfd, 0) TH_LOG("memfd_create: %s", strerror(errno));
	ASSERT_EQ(0, ftruncate(mfd, FORGE_BUF));
	a = mmap(NULL, FORGE_BUF, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ASSERT_NE(MAP_FAILED, a);
	b = mmap(NULL, FORGE_BUF, PROT_READ, MAP_SHARED, mfd, 0);
	ASSERT_NE(MAP_FAILED, b);
	ASSERT_NE(a, b);
	oss_fill(pt, sizeof(pt), 0xf0);
	pt[0] = 0x55;	/* the first byte differs from the fill at least */

	/* control: a valid record, opened straight into a, seen through b */
	memset(a, 0xaa, FORGE_BUF);
	direct = oss_stat_get("OssuaryRxDirectRecords");
	ASSERT_GE(direct, 0) TH_LOG("no OssuaryRxDirectRecords in /proc/net/ossuary_stat");
	ASSERT_EQ(0, forge_watch_start(&w, b));
	n = seal_to_k(self, OSSUARY_RECORD_DATA, pt, sizeof(pt), rec);
	ASSERT_EQ((ssize_t)n, oss_write_all(self->pfd, rec, n));
	r = recv(self->kfd, a, FORGE_BUF, 0);
	e = errno;
	forge_watch_stop(&w);
	ASSERT_EQ(FORGE_PT, r) TH_LOG("valid record: %s", r < 0 ? strerror(e) : "short");
	EXPECT_EQ(direct + 1, oss_stat_get("OssuaryRxDirectRecords"))
		TH_LOG("the valid record was not opened into the reader's buffer");
	ASSERT_EQ(0, memcmp(b, pt, FORGE_PT)) TH_LOG("the plaintext is not in the second mapping");
	ASSERT_TRUE(all_aa(b + FORGE_PT, FORGE_BUF - FORGE_PT));
	ASSERT_EQ(1, w.seen) TH_LOG("the watcher missed the valid record's plaintext");

	/* the same record size and buffer, its tag with one bit flipped */
	memset(a, 0xaa, FORGE_BUF);
	direct = oss_stat_get("OssuaryRxDirectRecords");
	buffered = oss_stat_get("OssuaryRxBufferedRecords");
	ASSERT_EQ(0, forge_watch_start(&w, b));
	n = seal_to_k(self, OSSUARY_RECORD_DATA, pt, sizeof(pt), rec);
	rec[n - WIRE_TAG + 7] ^= 0x04;
	ASSERT_EQ((ssize_t)n, oss_write_all(self->pfd, rec, n));
	r = recv(self->kfd, a, FORGE_BUF, 0);
	e = errno;
	forge_watch_stop(&w);
	EXPECT_EQ(-1, r) TH_LOG("delivered %zd bytes of a forged record", r);
	EXPECT_EQ(EBADMSG, e) TH_LOG("%s", strerror(e));
	/* a failed open counts neither way: the path is the control's */
	EXPECT_EQ(direct, oss_stat_get("OssuaryRxDirectRecords"));
	EXPECT_EQ(buffered, oss_stat_get("OssuaryRxBufferedRecords"));
	EXPECT_TRUE(all_aa(a, FORGE_BUF)) TH_LOG("the reader's mapping changed");
	EXPECT_TRUE(all_aa(b, FORGE_BUF)) TH_LOG("the second mapping changed");
	EXPECT_EQ(0, w.seen)
		TH_LOG("the watcher saw 0x%02x at offset %zu%s", w.seen_val, w.seen_off,
		       w.seen_other ? ", and bytes other than 0x00" : " (only 0x00 besides 0xaa)");
	TH_LOG("watcher: %ld scans during the forged open", w.scans);
	munmap(a, FORGE_BUF);
	munmap(b, FORGE_BUF);
	close(mfd);
}

/* Read an error that must come without FIN; returns errno */
static int read_error(int fd, char *buf, size_t len, ssize_t *n_out)
{
	ssize_t n = recv(fd, buf, len, 0);

	*n_out = n;
	return n < 0 ? errno : 0;
}

TEST_F(raw, replayed_record)
{
	uint8_t rec[128];
	char buf[64] = {};
	size_t n = seal_to_k(self, OSSUARY_RECORD_DATA, "once", 4, rec);
	ssize_t r;

	ASSERT_EQ((ssize_t)n, oss_write_all(self->pfd, rec, n));
	ASSERT_EQ((ssize_t)n, oss_write_all(self->pfd, rec, n));
	ASSERT_EQ(4, recv(self->kfd, buf, 4, MSG_WAITALL));
	EXPECT_EQ(EBADMSG, read_error(self->kfd, buf, sizeof(buf), &r));
	EXPECT_EQ(-1, r);
	EXPECT_EQ(EBADMSG, read_error(self->kfd, buf, sizeof(buf), &r));
}

TEST_F(raw, reordered_records)
{
	uint8_t r0[64], r1[64];
	char buf[64] = {};
	size_t n0 = seal_to_k(self, OSSUARY_RECORD_DATA, "zero", 4, r0);
	size_t n1 = seal_to_k(self, OSSUARY_RECORD_DATA, "one!", 4, r1);
	ssize_t r;

	ASSERT_EQ((ssize_t)n1, oss_write_all(self->pfd, r1, n1));
	ASSERT_EQ((ssize_t)n0, oss_write_all(self->pfd, r0, n0));
	EXPECT_EQ(EBADMSG, read_error(self->kfd, buf, sizeof(buf), &r));
	EXPECT_EQ(-1, r) TH_LOG("delivered: %.*s", (int)(r > 0 ? r : 0), buf);
	EXPECT_EQ(EBADMSG, read_error(self->kfd, buf, sizeof(buf), &r));
}

TEST_F(raw, dropped_record)
{
	uint8_t r0[64], r1[64];
	char buf[64] = {};
	size_t n1;
	ssize_t r;

	seal_to_k(self, OSSUARY_RECORD_DATA, "lost", 4, r0);
	n1 = seal_to_k(self, OSSUARY_RECORD_DATA, "next", 4, r1);
	ASSERT_EQ((ssize_t)n1, oss_write_all(self->pfd, r1, n1));
	EXPECT_EQ(EBADMSG, read_error(self->kfd, buf, sizeof(buf), &r));
	EXPECT_EQ(-1, r);
}

/* Key separation: the kernel's own record reflected back does not open */
TEST_F(raw, reflected_record)
{
	uint8_t rec[WIRE_MAX_REC];
	char buf[64] = {};
	ssize_t n, r;

	ASSERT_EQ(6, send(self->kfd, "mirror", 6, 0));
	n = wire_read_record(self->pfd, rec);
	ASSERT_EQ(26, n);
	ASSERT_EQ(n, oss_write_all(self->pfd, rec, n));
	EXPECT_EQ(EBADMSG, read_error(self->kfd, buf, sizeof(buf), &r));
	EXPECT_EQ(-1, r);
}

/* The RX error latches into getsockopt and is counted */
TEST_F(raw, error_latched_in_state)
{
	struct ossuary_dir_state st;
	uint8_t rec[64];
	char buf[16];
	size_t n = seal_to_k(self, OSSUARY_RECORD_DATA, "data", 4, rec);
	ssize_t r;

	rec[n - 1] ^= 1;
	ASSERT_EQ((ssize_t)n, oss_write_all(self->pfd, rec, n));
	EXPECT_EQ(EBADMSG, read_error(self->kfd, buf, sizeof(buf), &r));
	ASSERT_EQ(0, oss_state(self->kfd, OSSUARY_RX, &st));
	EXPECT_TRUE(st.flags & OSSUARY_STATE_ERROR);
	EXPECT_EQ(EBADMSG, st.error);
	EXPECT_EQ(0, st.seq) TH_LOG("a record that did not open does not advance seq");
}

/* A FIN in the middle of a record is truncation, never EOF or data */
TEST_F(raw, truncated_record_then_fin)
{
	uint8_t rec[64];
	char buf[64];
	size_t n = seal_to_k(self, OSSUARY_RECORD_DATA, "cut short", 9, rec);
	ssize_t r;
	int e;

	ASSERT_EQ((ssize_t)(n - 5), oss_write_all(self->pfd, rec, n - 5));
	ASSERT_EQ(0, shutdown(self->pfd, SHUT_WR));
	e = read_error(self->kfd, buf, sizeof(buf), &r);
	ASSERT_EQ(-1, r) TH_LOG("read returned %zd (0 = clean EOF)", r);
	ASSERT_NE(-1, OSS_TRUNC_ERRNO)
		TH_LOG("include/uapi/linux/ossuary.h documents no truncation errno (kernel gave %s)",
		       strerror(e));
	EXPECT_EQ(OSS_TRUNC_ERRNO, e) TH_LOG("%s", strerror(e));
}

/* Whole records then a FIN without DISCONNECT(0): data, then truncation */
TEST_F(raw, fin_without_disconnect)
{
	char buf[64] = {};
	ssize_t r;
	int e;

	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "complete", 8), 0);
	ASSERT_EQ(0, shutdown(self->pfd, SHUT_WR));
	ASSERT_EQ(8, recv(self->kfd, buf, 8, MSG_WAITALL));
	e = read_error(self->kfd, buf, sizeof(buf), &r);
	ASSERT_EQ(-1, r) TH_LOG("read returned %zd (0 = clean EOF): truncation not reported", r);
	ASSERT_NE(-1, OSS_TRUNC_ERRNO)
		TH_LOG("include/uapi/linux/ossuary.h documents no truncation errno (kernel gave %s)",
		       strerror(e));
	EXPECT_EQ(OSS_TRUNC_ERRNO, e) TH_LOG("%s", strerror(e));
	/* and again */
	e = read_error(self->kfd, buf, sizeof(buf), &r);
	EXPECT_EQ(-1, r);
	EXPECT_EQ(OSS_TRUNC_ERRNO, e);
}

/* DISCONNECT(0) then FIN: clean EOF; the kernel side can still send */
TEST_F(raw, disconnect_clean_half_close)
{
	uint8_t zero = 0, pt[64] = {}, type, hdr[4];
	char buf[64] = {};
	ssize_t n;

	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "bye", 3), 0);
	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DISCONNECT, &zero, 1), 0);
	ASSERT_EQ(0, shutdown(self->pfd, SHUT_WR));
	ASSERT_EQ(3, recv(self->kfd, buf, 3, MSG_WAITALL));
	EXPECT_EQ(0, recv(self->kfd, buf, sizeof(buf), 0)) TH_LOG("%s", strerror(errno));
	EXPECT_EQ(0, recv(self->kfd, buf, sizeof(buf), 0));
	/* half-closed: the kernel still sends, then closes cleanly itself */
	ASSERT_EQ(5, send(self->kfd, "still", 5, 0));
	ASSERT_EQ(5, open_from_k(self, pt, &type, NULL));
	EXPECT_EQ(OSSUARY_RECORD_DATA, type);
	EXPECT_EQ(0, memcmp(pt, "still", 5));
	ASSERT_EQ(0, shutdown(self->kfd, SHUT_WR));
	n = open_from_k(self, pt, &type, hdr);
	ASSERT_EQ(1, n) TH_LOG("shutdown must send a sealed DISCONNECT(0)");
	EXPECT_EQ(OSSUARY_RECORD_DISCONNECT, type);
	EXPECT_EQ(0, pt[0]);
	EXPECT_EQ(0, memcmp(hdr, "\x02\x10\x00\x11", 4));
	EXPECT_EQ(0, recv(self->pfd, buf, sizeof(buf), 0)) TH_LOG("FIN after DISCONNECT(0)");
}

/* shutdown(SHUT_WR) on the kernel side: DISCONNECT(0) at the next seq, FIN */
TEST_F(raw, shutdown_sends_disconnect)
{
	uint8_t pt[64], type;
	char c;

	ASSERT_EQ(2, send(self->kfd, "hi", 2, 0));
	ASSERT_EQ(0, shutdown(self->kfd, SHUT_WR));
	ASSERT_EQ(2, open_from_k(self, pt, &type, NULL));
	ASSERT_EQ(1, open_from_k(self, pt, &type, NULL)) TH_LOG("no DISCONNECT(0) at seq 1");
	EXPECT_EQ(OSSUARY_RECORD_DISCONNECT, type);
	EXPECT_EQ(0, pt[0]);
	EXPECT_EQ(0, recv(self->pfd, &c, 1, 0));
}

TEST_F(raw, disconnect_error_is_reset)
{
	for (uint8_t reason = 1; reason <= 3; reason++) {
		FIXTURE_DATA(raw) f;
		char buf[16];
		ssize_t r;
		int e;

		ASSERT_EQ(0, oss_tcp_pair(variant->family, &f.kfd, &f.pfd));
		ASSERT_EQ(0, oss_attach(f.kfd));
		ASSERT_EQ(0, oss_install(f.kfd, OSSUARY_RX, secret_b(), 0));
		ASSERT_EQ(0, oss_install(f.kfd, OSSUARY_TX, secret_a(), 0));
		wire_dir_init(&f.to_k, secret_b(), 0);
		ASSERT_GT(send_to_k(&f, OSSUARY_RECORD_DISCONNECT, &reason, 1), 0);
		e = read_error(f.kfd, buf, sizeof(buf), &r);
		EXPECT_EQ(-1, r) TH_LOG("reason %d: read %zd", reason, r);
		EXPECT_EQ(ECONNRESET, e) TH_LOG("reason %d: %s", reason, strerror(e));
		close(f.kfd);
		close(f.pfd);
	}
}

/*
 * The peer's DISCONNECT(1) ends the connection (PROTOCOL.md 6.1): this
 * side seals nothing more for it.  A send reports the reset once, then
 * EPIPE, as after a TCP reset; no record follows on the wire.
 */
TEST_F(raw, disconnect_error_closes_tx)
{
	struct ossuary_dir_state st;
	uint8_t one = 1, pt[64], type;
	char buf[16];
	ssize_t r;

	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DISCONNECT, &one, 1), 0);
	EXPECT_EQ(ECONNRESET, read_error(self->kfd, buf, sizeof(buf), &r));
	EXPECT_EQ(-1, send(self->kfd, "x", 1, MSG_NOSIGNAL));
	EXPECT_EQ(ECONNRESET, errno);
	EXPECT_EQ(-1, send(self->kfd, "y", 1, MSG_NOSIGNAL))
		TH_LOG("a DATA record sealed after the peer's DISCONNECT(1)");
	EXPECT_EQ(EPIPE, errno);
	ASSERT_EQ(0, oss_state(self->kfd, OSSUARY_TX, &st));
	EXPECT_NE(0, st.flags & OSSUARY_STATE_CLOSED);
	/* shutdown and close send nothing either, only TCP's FIN */
	EXPECT_EQ(0, shutdown(self->kfd, SHUT_WR));
	close(self->kfd);
	self->kfd = -1;
	EXPECT_EQ(-1, open_from_k(self, pt, &type, NULL)) TH_LOG("a record of type %u", type);
}

/* RESET from the peer: answered with sealed DISCONNECT(1), read as a reset */
TEST_F(raw, reset_answered_with_disconnect)
{
	uint8_t zero = 0, pt[64], type;
	char buf[16];
	ssize_t r;
	int e;

	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_RESET, &zero, 1), 0);
	e = read_error(self->kfd, buf, sizeof(buf), &r);
	EXPECT_EQ(-1, r);
	EXPECT_EQ(ECONNRESET, e) TH_LOG("%s", strerror(e));
	ASSERT_EQ(1, open_from_k(self, pt, &type, NULL))
		TH_LOG("the kernel must answer RESET with a sealed DISCONNECT(1)");
	EXPECT_EQ(OSSUARY_RECORD_DISCONNECT, type);
	EXPECT_EQ(1, pt[0]);
}

/* A cleartext DISCONNECT(0) once keys exist is a forgery, not a close */
TEST_F(raw, cleartext_disconnect_refused)
{
	char buf[16];
	ssize_t r;
	int e;

	ASSERT_EQ(5, oss_write_all(self->pfd, "\x02\x10\x00\x01\x00", 5));
	e = read_error(self->kfd, buf, sizeof(buf), &r);
	EXPECT_EQ(-1, r) TH_LOG("read %zd: a forged clean close was accepted", r);
	EXPECT_EQ(OSS_PROTO_ERRNO, e) TH_LOG("cleartext DISCONNECT: %s", strerror(e));
}

TEST_F(raw, key_update_received)
{
	struct ossuary_dir_state st;
	uint8_t zero = 0;
	char buf[32] = {};

	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "before", 6), 0);
	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_KEY_UPDATE, &zero, 1), 0);
	wire_dir_next(&self->to_k);
	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "after", 5), 0);
	ASSERT_EQ(11, recv(self->kfd, buf, 11, MSG_WAITALL));
	EXPECT_STREQ("beforeafter", buf);
	ASSERT_EQ(0, oss_state(self->kfd, OSSUARY_RX, &st));
	EXPECT_EQ(1, st.generation);
	EXPECT_EQ(1, st.seq);
}

/* Old key after KEY_UPDATE: refused */
TEST_F(raw, key_update_old_key_refused)
{
	uint8_t zero = 0;
	char buf[32] = {};
	ssize_t r;

	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_KEY_UPDATE, &zero, 1), 0);
	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "stale", 5), 0);
	EXPECT_EQ(EBADMSG, read_error(self->kfd, buf, sizeof(buf), &r));
	EXPECT_EQ(-1, r);
}

/* KEY_UPDATE(1): the kernel's very next record is KEY_UPDATE(0) */
TEST_F(raw, key_update_request_answered)
{
	struct ossuary_dir_state st;
	uint8_t one = 1, pt[64], type;
	char buf[32] = {};

	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_KEY_UPDATE, &one, 1), 0);
	wire_dir_next(&self->to_k);
	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "ping", 4), 0);
	ASSERT_EQ(4, recv(self->kfd, buf, 4, MSG_WAITALL));
	ASSERT_EQ(4, send(self->kfd, "pong", 4, 0));
	ASSERT_EQ(1, open_from_k(self, pt, &type, NULL))
		TH_LOG("first record after KEY_UPDATE(1) is not a 1-byte record under the old key");
	EXPECT_EQ(OSSUARY_RECORD_KEY_UPDATE, type);
	EXPECT_EQ(0, pt[0]);
	wire_dir_next(&self->from_k);
	ASSERT_EQ(4, open_from_k(self, pt, &type, NULL)) TH_LOG("pong not under next(S) seq 0");
	EXPECT_EQ(0, memcmp(pt, "pong", 4));
	ASSERT_EQ(0, oss_state(self->kfd, OSSUARY_TX, &st));
	EXPECT_EQ(1, st.generation);
	EXPECT_EQ(1, st.seq);
}

/* setsockopt(OSSUARY_KEY_UPDATE) seals KEY_UPDATE with the old key, then ratchets */
TEST_F(raw, key_update_setsockopt)
{
	uint8_t pt[64], type;
	int v;

	ASSERT_EQ(1, send(self->kfd, "a", 1, 0));
	for (v = 0; v <= 1; v++) {
		ASSERT_EQ(0, setsockopt(self->kfd, SOL_OSSUARY, OSSUARY_KEY_UPDATE, &v,
					sizeof(v))) TH_LOG("%s", strerror(errno));
		ASSERT_EQ(1, send(self->kfd, "b", 1, 0));
	}
	ASSERT_EQ(1, open_from_k(self, pt, &type, NULL));
	EXPECT_EQ('a', pt[0]);
	ASSERT_EQ(1, open_from_k(self, pt, &type, NULL));
	EXPECT_EQ(OSSUARY_RECORD_KEY_UPDATE, type);
	EXPECT_EQ(0, pt[0]);
	wire_dir_next(&self->from_k);
	ASSERT_EQ(1, open_from_k(self, pt, &type, NULL));
	EXPECT_EQ('b', pt[0]);
	ASSERT_EQ(1, open_from_k(self, pt, &type, NULL));
	EXPECT_EQ(OSSUARY_RECORD_KEY_UPDATE, type);
	EXPECT_EQ(1, pt[0]);
	wire_dir_next(&self->from_k);
	ASSERT_EQ(1, open_from_k(self, pt, &type, NULL));
	EXPECT_EQ('b', pt[0]);
	v = 2;
	EXPECT_EQ(-1, setsockopt(self->kfd, SOL_OSSUARY, OSSUARY_KEY_UPDATE, &v, sizeof(v)));
	EXPECT_EQ(EINVAL, errno);
}

/* Protocol errors seen from the 4-byte header alone, no body needed */
static void header_only_case(struct __test_metadata *_metadata,
			     FIXTURE_DATA(raw) *self, const char *hdr)
{
	struct timespec t0, t1;
	char buf[64];
	ssize_t r;
	int e;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	ASSERT_EQ(4, oss_write_all(self->pfd, hdr, 4));
	e = read_error(self->kfd, buf, sizeof(buf), &r);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	EXPECT_EQ(-1, r);
	EXPECT_NE(EAGAIN, e) TH_LOG("header %02x %02x %02x %02x not refused before the body",
				    (uint8_t)hdr[0], (uint8_t)hdr[1], (uint8_t)hdr[2],
				    (uint8_t)hdr[3]);
	EXPECT_EQ(OSS_PROTO_ERRNO, e) TH_LOG("header %02x %02x %02x %02x -> %s",
					     (uint8_t)hdr[0], (uint8_t)hdr[1],
					     (uint8_t)hdr[2], (uint8_t)hdr[3], strerror(e));
	/* sticky */
	e = read_error(self->kfd, buf, sizeof(buf), &r);
	EXPECT_EQ(-1, r);
	EXPECT_EQ(OSS_PROTO_ERRNO, e);
}

TEST_F(raw, oversize_length_header_only)
{
	header_only_case(_metadata, self, "\x02\x20\x40\x11");	/* 16401 */
}

TEST_F(raw, max_length_header_ffff)
{
	header_only_case(_metadata, self, "\x02\x20\xff\xff");
}

TEST_F(raw, bad_version_header_only)
{
	header_only_case(_metadata, self, "\x01\x20\x00\x15");
}

TEST_F(raw, unknown_type_header_only)
{
	header_only_case(_metadata, self, "\x02\x22\x00\x15");
}

TEST_F(raw, data_shorter_than_tag_header_only)
{
	header_only_case(_metadata, self, "\x02\x20\x00\x0f");
}

/* Counters in /proc/net/ossuary_stat move on a decrypt error */
static long stat_sum_matching(const char *needle)
{
	char line[256];
	long sum = 0;
	FILE *f = fopen("/proc/net/ossuary_stat", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char name[128];
		long v;

		if (sscanf(line, "%127[^: \t] %*[:]%ld", name, &v) != 2 &&
		    sscanf(line, "%127s %ld", name, &v) != 2)
			continue;
		for (char *c = name; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		if (strstr(name, needle))
			sum += v;
	}
	fclose(f);
	return sum;
}

TEST_F(raw, stat_counts_decrypt_error)
{
	uint8_t rec[64];
	char buf[16];
	size_t n;
	ssize_t r;
	long before = stat_sum_matching("decrypt");

	ASSERT_GE(before, 0) TH_LOG("/proc/net/ossuary_stat missing or has no decrypt counter");
	n = seal_to_k(self, OSSUARY_RECORD_DATA, "data", 4, rec);
	rec[5] ^= 1;
	ASSERT_EQ((ssize_t)n, oss_write_all(self->pfd, rec, n));
	EXPECT_EQ(EBADMSG, read_error(self->kfd, buf, sizeof(buf), &r));
	EXPECT_GT(stat_sum_matching("decrypt"), before);
}

/* A peer that vanishes (RST) mid-stream: errors, no hang, no crash */
TEST_F(raw, peer_reset_mid_stream)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	static uint8_t out[65536];
	char buf[64];
	ssize_t r;
	int e = 0;

	ASSERT_EQ(0, setsockopt(self->pfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "x", 1), 0);
	close(self->pfd);
	self->pfd = -1;
	oss_msleep(100);
	ASSERT_EQ(1, recv(self->kfd, buf, sizeof(buf), 0));
	r = recv(self->kfd, buf, sizeof(buf), 0);
	EXPECT_EQ(-1, r);
	EXPECT_EQ(ECONNRESET, errno);
	for (int i = 0; i < 8 && !e; i++)
		if (send(self->kfd, out, sizeof(out), MSG_NOSIGNAL) < 0)
			e = errno;
	EXPECT_TRUE(e == EPIPE || e == ECONNRESET) TH_LOG("%s", strerror(e));
}

/* MSG_EOR ends the record that MSG_MORE held open */
TEST_F(raw, tx_msg_eor_ends_record)
{
	uint8_t pt[64] = {}, type;

	ASSERT_EQ(2, send(self->kfd, "ab", 2, MSG_MORE));
	ASSERT_EQ(2, send(self->kfd, "cd", 2, MSG_EOR));
	ASSERT_EQ(2, send(self->kfd, "ef", 2, 0));
	ASSERT_EQ(4, open_from_k(self, pt, &type, NULL));
	EXPECT_EQ(0, memcmp(pt, "abcd", 4));
	ASSERT_EQ(2, open_from_k(self, pt, &type, NULL));
	EXPECT_EQ(0, memcmp(pt, "ef", 2));
}

/* close() flushes an open MSG_MORE record, then DISCONNECT(0), then FIN */
TEST_F(raw, close_flushes_and_disconnects)
{
	uint8_t pt[64] = {}, type;
	char c;

	ASSERT_EQ(4, send(self->kfd, "tail", 4, MSG_MORE));
	close(self->kfd);
	self->kfd = -1;
	ASSERT_EQ(4, open_from_k(self, pt, &type, NULL));
	EXPECT_EQ(0, memcmp(pt, "tail", 4));
	ASSERT_EQ(1, open_from_k(self, pt, &type, NULL)) TH_LOG("no DISCONNECT(0) on close");
	EXPECT_EQ(OSSUARY_RECORD_DISCONNECT, type);
	EXPECT_EQ(0, pt[0]);
	EXPECT_EQ(0, recv(self->pfd, &c, 1, 0));
}

/*
 * A writer killed by a signal did not finish: its peer must see the
 * data it sent and then a truncated stream, never DISCONNECT(0).
 */
TEST_F(raw, killed_writer_is_truncation)
{
	uint8_t pt[64] = {}, type;
	int status;
	pid_t pid;
	char c;

	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		if (send(self->kfd, "partial", 7, 0) != 7)
			_exit(1);
		pause();
		_exit(0);
	}
	/* the child holds the last reference: its exit closes the socket */
	close(self->kfd);
	self->kfd = -1;
	ASSERT_EQ(7, open_from_k(self, pt, &type, NULL));
	EXPECT_EQ(0, memcmp(pt, "partial", 7));
	ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFSIGNALED(status));
	/* a FIN (or a reset) with no DISCONNECT record before it */
	EXPECT_GE(0, recv(self->pfd, &c, 1, 0)) TH_LOG("a record followed the kill");
}

/* ... while a writer that exits normally ends the stream cleanly */
TEST_F(raw, exiting_writer_disconnects)
{
	uint8_t pt[64] = {}, type;
	int status;
	pid_t pid;

	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid)
		_exit(send(self->kfd, "done", 4, 0) == 4 ? 0 : 1);
	close(self->kfd);
	self->kfd = -1;
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
	ASSERT_EQ(4, open_from_k(self, pt, &type, NULL));
	ASSERT_EQ(1, open_from_k(self, pt, &type, NULL));
	EXPECT_EQ(OSSUARY_RECORD_DISCONNECT, type);
	EXPECT_EQ(0, pt[0]);
}

/* SO_LINGER 0: an abortive close, a RST and no DISCONNECT */
TEST_F(raw, close_linger_zero_aborts)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	uint8_t rec[WIRE_MAX_REC];
	ssize_t n;

	ASSERT_EQ(0, setsockopt(self->kfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
	close(self->kfd);
	self->kfd = -1;
	n = wire_read_record(self->pfd, rec);
	EXPECT_EQ(-ECONNRESET, n);
}

static ssize_t send_cmsg_type(int fd, uint8_t type, const void *buf, size_t len)
{
	char cbuf[CMSG_SPACE(1)] = {};
	struct iovec iov = { (void *)buf, len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	c->cmsg_level = SOL_OSSUARY;
	c->cmsg_type = OSSUARY_SET_RECORD_TYPE;
	c->cmsg_len = CMSG_LEN(1);
	*CMSG_DATA(c) = type;
	return sendmsg(fd, &msg, MSG_NOSIGNAL);
}

/* cmsg DISCONNECT(reason): the open record goes first, then the DISCONNECT */
TEST_F(raw, cmsg_send_disconnect_reason)
{
	uint8_t pt[64] = {}, type, two = 2;

	ASSERT_EQ(4, send(self->kfd, "open", 4, MSG_MORE));
	ASSERT_EQ(1, send_cmsg_type(self->kfd, OSSUARY_RECORD_DISCONNECT, &two, 1))
		TH_LOG("%s", strerror(errno));
	ASSERT_EQ(4, open_from_k(self, pt, &type, NULL));
	EXPECT_EQ(0, memcmp(pt, "open", 4));
	ASSERT_EQ(1, open_from_k(self, pt, &type, NULL));
	EXPECT_EQ(OSSUARY_RECORD_DISCONNECT, type);
	EXPECT_EQ(2, pt[0]);
	EXPECT_EQ(-1, send(self->kfd, "x", 1, MSG_NOSIGNAL));
	EXPECT_EQ(EPIPE, errno);
}

TEST_F(raw, cmsg_send_key_update)
{
	uint8_t pt[64] = {}, type, one = 1;

	ASSERT_EQ(1, send_cmsg_type(self->kfd, OSSUARY_RECORD_KEY_UPDATE, &one, 1))
		TH_LOG("%s", strerror(errno));
	ASSERT_EQ(3, send(self->kfd, "new", 3, 0));
	ASSERT_EQ(1, open_from_k(self, pt, &type, NULL));
	EXPECT_EQ(OSSUARY_RECORD_KEY_UPDATE, type);
	EXPECT_EQ(1, pt[0]);
	wire_dir_next(&self->from_k);
	ASSERT_EQ(3, open_from_k(self, pt, &type, NULL));
	EXPECT_EQ(0, memcmp(pt, "new", 3));
}

TEST_F(raw, cmsg_send_bad_type_or_value)
{
	uint8_t zero = 0, four = 4, two = 2, pt[64], type;

	EXPECT_EQ(-1, send_cmsg_type(self->kfd, OSSUARY_RECORD_RESET, &zero, 1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, send_cmsg_type(self->kfd, OSSUARY_RECORD_DISCONNECT, &four, 1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, send_cmsg_type(self->kfd, OSSUARY_RECORD_KEY_UPDATE, &two, 1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, send_cmsg_type(self->kfd, OSSUARY_RECORD_DISCONNECT, "ab", 2));
	EXPECT_EQ(EINVAL, errno);
	/* nothing was sent: the next record is DATA at seq 0 */
	ASSERT_EQ(2, send(self->kfd, "ok", 2, 0));
	ASSERT_EQ(2, open_from_k(self, pt, &type, NULL));
	EXPECT_EQ(OSSUARY_RECORD_DATA, type);
}

/* DISCONNECT(2) reaches a reader with a control buffer as its reason */
TEST_F(raw, disconnect_reason_via_cmsg)
{
	uint8_t two = 2;
	char buf[16] = {}, cbuf[CMSG_SPACE(1)] = {};
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;

	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DISCONNECT, &two, 1), 0);
	ASSERT_EQ(1, recvmsg(self->kfd, &msg, 0)) TH_LOG("%s", strerror(errno));
	c = CMSG_FIRSTHDR(&msg);
	ASSERT_NE(NULL, c);
	EXPECT_EQ(OSSUARY_GET_RECORD_TYPE, c->cmsg_type);
	EXPECT_EQ(OSSUARY_RECORD_DISCONNECT, *CMSG_DATA(c));
	EXPECT_EQ(2, buf[0]);
	msg.msg_controllen = sizeof(cbuf);
	EXPECT_EQ(-1, recvmsg(self->kfd, &msg, 0));
	EXPECT_EQ(ECONNRESET, errno);
}

/* Nothing may follow DISCONNECT(0): EOF first, then EPROTO */
TEST_F(raw, record_after_disconnect)
{
	uint8_t zero = 0;
	char buf[16] = {};
	ssize_t r;

	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "data", 4), 0);
	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DISCONNECT, &zero, 1), 0);
	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "more", 4), 0);
	oss_msleep(100);
	ASSERT_EQ(4, recv(self->kfd, buf, 4, MSG_WAITALL));
	r = recv(self->kfd, buf, sizeof(buf), 0);
	if (r == 0)
		r = recv(self->kfd, buf, sizeof(buf), 0);
	EXPECT_EQ(-1, r) TH_LOG("a record after DISCONNECT(0) went unreported");
	EXPECT_EQ(OSS_PROTO_ERRNO, errno);
}

/* OSSUARY_REKEY_RECORDS: after N records, KEY_UPDATE(0) and the next secret */
TEST_F(raw, rekey_records_budget)
{
	uint64_t n = 2, got = 0;
	socklen_t len = sizeof(got);
	uint8_t pt[64], type;

	ASSERT_EQ(0, setsockopt(self->kfd, SOL_OSSUARY, OSSUARY_REKEY_RECORDS, &n, sizeof(n)));
	ASSERT_EQ(0, getsockopt(self->kfd, SOL_OSSUARY, OSSUARY_REKEY_RECORDS, &got, &len));
	EXPECT_EQ(2, got);
	for (int i = 0; i < 5; i++)
		ASSERT_EQ(1, send(self->kfd, "0123456789" + i, 1, 0));
	/* DATA 0, DATA 1, KU(0) at seq 2; DATA 0, DATA 1, KU(0); DATA 0 */
	for (int i = 0; i < 5; i++) {
		if (i == 2 || i == 4) {
			ASSERT_EQ(1, open_from_k(self, pt, &type, NULL)) TH_LOG("record %d", i);
			EXPECT_EQ(OSSUARY_RECORD_KEY_UPDATE, type);
			EXPECT_EQ(0, pt[0]);
			wire_dir_next(&self->from_k);
		}
		ASSERT_EQ(1, open_from_k(self, pt, &type, NULL)) TH_LOG("data %d", i);
		EXPECT_EQ(OSSUARY_RECORD_DATA, type);
		EXPECT_EQ('0' + i, pt[0]);
	}
}

/* The last seq of a secret carries KEY_UPDATE, sent by the kernel itself */
TEST(tx_key_update_at_seq_end)
{
	struct ossuary_dir_state st;
	struct wire_dir d;
	uint8_t rec[WIRE_MAX_REC], pt[64], type;
	ssize_t n;
	int k, p;

	ASSERT_EQ(0, wire_init());
	REQUIRE_OSSUARY();
	ASSERT_EQ(0, oss_tcp_pair(AF_INET, &k, &p));
	ASSERT_EQ(0, oss_attach(k));
	ASSERT_EQ(0, oss_install(k, OSSUARY_TX, secret_a(), OSSUARY_SEQ_LAST - 1));
	wire_dir_init(&d, secret_a(), OSSUARY_SEQ_LAST - 1);
	ASSERT_EQ(1, send(k, "a", 1, 0));
	ASSERT_EQ(1, send(k, "b", 1, 0));
	n = wire_read_record(p, rec);
	ASSERT_EQ(1, wire_open(&d, rec, n, pt, &type));
	EXPECT_EQ('a', pt[0]);
	n = wire_read_record(p, rec);
	ASSERT_EQ(1, wire_open(&d, rec, n, pt, &type)) TH_LOG("no record at seq 2^64-2");
	EXPECT_EQ(OSSUARY_RECORD_KEY_UPDATE, type) TH_LOG("seq 2^64-2 must carry KEY_UPDATE");
	wire_dir_next(&d);
	n = wire_read_record(p, rec);
	ASSERT_EQ(1, wire_open(&d, rec, n, pt, &type));
	EXPECT_EQ('b', pt[0]);
	ASSERT_EQ(0, oss_state(k, OSSUARY_TX, &st));
	EXPECT_EQ(1, st.generation);
	EXPECT_EQ(1, st.seq);
	close(k);
	close(p);
}

/* One counter of /proc/net/ossuary_stat by exact name; -1 if absent */
static long stat_get(const char *want)
{
	char line[256], name[128];
	long v, found = -1;
	FILE *f = fopen("/proc/net/ossuary_stat", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%127s %ld", name, &v) == 2 && !strcmp(name, want))
			found = v;
	fclose(f);
	return found;
}

TEST_F(raw, stat_counters_move)
{
	static const char * const names[] = {
		"OssuaryCurrTx", "OssuaryCurrRx", "OssuaryRecordsSealed",
		"OssuaryRecordsOpened", "OssuaryProtocolErrors", "OssuaryTruncations",
	};
	long before[6], after[6];
	uint8_t pt[16], type;
	char buf[16];
	ssize_t r;
	int k2, p2;

	for (int i = 0; i < 6; i++) {
		before[i] = stat_get(names[i]);
		ASSERT_GE(before[i], 0) TH_LOG("no %s in /proc/net/ossuary_stat", names[i]);
	}
	EXPECT_GE(before[0], 1);
	EXPECT_GE(before[1], 1);
	ASSERT_EQ(1, send(self->kfd, "s", 1, 0));
	ASSERT_EQ(1, open_from_k(self, pt, &type, NULL));
	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "o", 1), 0);
	ASSERT_EQ(1, recv(self->kfd, buf, 1, 0));
	/* a protocol error on a second socket, a truncation on this one */
	ASSERT_EQ(0, oss_tcp_pair(variant->family, &k2, &p2));
	ASSERT_EQ(0, oss_attach(k2));
	ASSERT_EQ(0, oss_install(k2, OSSUARY_RX, secret_b(), 0));
	ASSERT_EQ(4, oss_write_all(p2, "\x07\x20\x00\x20", 4));
	EXPECT_EQ(OSS_PROTO_ERRNO, read_error(k2, buf, sizeof(buf), &r));
	ASSERT_EQ(0, shutdown(self->pfd, SHUT_WR));
	EXPECT_EQ(OSS_TRUNC_ERRNO, read_error(self->kfd, buf, sizeof(buf), &r));
	for (int i = 0; i < 6; i++)
		after[i] = stat_get(names[i]);
	EXPECT_EQ(before[0], after[0]);
	EXPECT_EQ(before[1] + 1, after[1]) TH_LOG("CurrRx with the second socket");
	EXPECT_EQ(before[2] + 1, after[2]);
	EXPECT_EQ(before[3] + 1, after[3]);
	EXPECT_EQ(before[4] + 1, after[4]);
	EXPECT_EQ(before[5] + 1, after[5]);
	close(k2);
	close(p2);
	EXPECT_EQ(before[1], stat_get("OssuaryCurrRx")) TH_LOG("close gives CurrRx back");
}

/* The counters are per network namespace: a new one starts at zero */
TEST(stat_per_netns)
{
	pid_t pid;

	REQUIRE_OSSUARY();
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		char line[256], name[128];
		long v;
		int n = 0, bad = 0;
		FILE *f;

		if (unshare(CLONE_NEWNET))
			_exit(10);
		f = fopen("/proc/net/ossuary_stat", "r");
		if (!f)
			_exit(11);
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "%127s %ld", name, &v) == 2) {
				n++;
				bad += v != 0;
			}
		fclose(f);
		_exit(!n ? 12 : bad ? 13 : 0);
	}
	EXPECT_EQ(0, oss_wait_child(pid))
		TH_LOG("10: unshare, 11: no file, 12: no counters, 13: nonzero in a fresh netns");
}

/*
 * A reader already blocked in recv() (or poll()) is woken by each kind of
 * bad news, not only by data: 0 = corrupt record, 1 = DISCONNECT(1),
 * 2 = FIN without DISCONNECT(0), 3 = bad header, 4 = DISCONNECT(0).
 */
static void woken_case(struct __test_metadata *_metadata,
		       FIXTURE_DATA(raw) *self, int what, bool use_poll)
{
	static const int want[] = { EBADMSG, ECONNRESET, 0, 0, 0 };
	struct timespec t0, t1;
	char buf[16];
	ssize_t r;
	long ms;
	int e;
	pid_t pid = fork();

	ASSERT_GE(pid, 0);
	if (!pid) {
		uint8_t rec[64], v = what == 1;
		size_t n;

		oss_msleep(300);
		switch (what) {
		case 0:
			n = seal_to_k(self, OSSUARY_RECORD_DATA, "bad", 3, rec);
			rec[n - 1] ^= 1;
			_exit(oss_write_all(self->pfd, rec, n) == (ssize_t)n ? 0 : 1);
		case 1:
		case 4:
			_exit(send_to_k(self, OSSUARY_RECORD_DISCONNECT, &v, 1) > 0 ? 0 : 1);
		case 2:
			_exit(shutdown(self->pfd, SHUT_WR) ? 1 : 0);
		default:
			_exit(oss_write_all(self->pfd, "\x02\x99\x00\x20", 4) == 4 ? 0 : 1);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (use_poll) {
		struct pollfd p = { .fd = self->kfd, .events = POLLIN };

		EXPECT_EQ(1, poll(&p, 1, 2500)) TH_LOG("case %d: poll not woken", what);
	}
	e = read_error(self->kfd, buf, sizeof(buf), &r);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	if (what == 4) {
		EXPECT_EQ(0, r) TH_LOG("case 4: DISCONNECT(0) is EOF");
	} else {
		EXPECT_EQ(-1, r);
		EXPECT_EQ(what == 2 ? OSS_TRUNC_ERRNO : what == 3 ? OSS_PROTO_ERRNO : want[what], e)
			TH_LOG("case %d: %s", what, strerror(e));
	}
	EXPECT_LT(ms, 2500) TH_LOG("case %d: woken after %ld ms", what, ms);
	EXPECT_EQ(0, oss_wait_child(pid));
}

TEST_F(raw, blocked_reader_woken_by_bad_record)	{ woken_case(_metadata, self, 0, false); }
TEST_F(raw, blocked_reader_woken_by_disconnect_error)	{ woken_case(_metadata, self, 1, false); }
TEST_F(raw, blocked_reader_woken_by_fin)		{ woken_case(_metadata, self, 2, false); }
TEST_F(raw, blocked_reader_woken_by_bad_header)	{ woken_case(_metadata, self, 3, false); }
TEST_F(raw, blocked_reader_woken_by_disconnect_clean)	{ woken_case(_metadata, self, 4, false); }
TEST_F(raw, poll_woken_by_bad_record)		{ woken_case(_metadata, self, 0, true); }
TEST_F(raw, poll_woken_by_disconnect_error)	{ woken_case(_metadata, self, 1, true); }
TEST_F(raw, poll_woken_by_fin)			{ woken_case(_metadata, self, 2, true); }
TEST_F(raw, poll_woken_by_bad_header)		{ woken_case(_metadata, self, 3, true); }
TEST_F(raw, poll_woken_by_disconnect_clean)	{ woken_case(_metadata, self, 4, true); }

/* Many KEY_UPDATEs from the peer, between and around records */
TEST_F(raw, rx_many_key_updates)
{
	uint8_t stream[64 * 100], zero = 0;
	char expect[512] = {}, buf[512] = {};
	size_t off = 0;
	struct ossuary_dir_state st;

	for (int i = 0; i < 60; i++) {
		char c = 'a' + i % 26;

		expect[i] = c;
		off += seal_to_k(self, OSSUARY_RECORD_DATA, &c, 1, stream + off);
		if (i % 3 == 2 && i != 59) {
			off += seal_to_k(self, OSSUARY_RECORD_KEY_UPDATE, &zero, 1, stream + off);
			wire_dir_next(&self->to_k);
		}
	}
	ASSERT_EQ((ssize_t)off, oss_write_all(self->pfd, stream, off));
	ASSERT_EQ(60, recv(self->kfd, buf, 60, MSG_WAITALL));
	EXPECT_STREQ(expect, buf);
	ASSERT_EQ(0, oss_state(self->kfd, OSSUARY_RX, &st));
	/* 19 updates, then DATA at seq 0, 1, 2 under the last secret */
	EXPECT_EQ(19, st.generation);
	EXPECT_EQ(3, st.seq);
}

/* ======================= option input (no keys yet) ======================= */

FIXTURE(opts)
{
	int kfd;
	int pfd;
};

FIXTURE_VARIANT(opts)
{
	int family;
};

FIXTURE_VARIANT_ADD(opts, ipv4)
{
	.family = AF_INET,
};

FIXTURE_VARIANT_ADD(opts, ipv6)
{
	.family = AF_INET6,
};

FIXTURE_SETUP(opts)
{
	int ret;

	self->kfd = self->pfd = -1;
	ASSERT_EQ(0, wire_init());
	REQUIRE_OSSUARY();
	ret = oss_tcp_pair(variant->family, &self->kfd, &self->pfd);
	ASSERT_EQ(0, ret) TH_LOG("pair: %s", strerror(-ret));
	ASSERT_EQ(0, oss_attach(self->kfd));
}

FIXTURE_TEARDOWN(opts)
{
	if (self->kfd >= 0)
		close(self->kfd);
	if (self->pfd >= 0)
		close(self->pfd);
}

/* Not installed: getsockopt either fails or reports no INSTALLED flag */
static void expect_not_installed(struct __test_metadata *_metadata, int fd, int dir)
{
	struct ossuary_dir_state st;
	int ret = oss_state(fd, dir, &st);

	if (!ret) {
		EXPECT_FALSE(st.flags & OSSUARY_STATE_INSTALLED)
			TH_LOG("dir %d reported installed after rejected input", dir);
	}
}

/* After rejected input, a good install works and seals at its own seq */
static void expect_good_install_works(struct __test_metadata *_metadata,
				      FIXTURE_DATA(opts) *self, int dir)
{
	struct wire_dir d;
	uint8_t rec[WIRE_MAX_REC], pt[64], type;
	char buf[16] = {};

	ASSERT_EQ(0, oss_install(self->kfd, dir, secret_a(), 7));
	wire_dir_init(&d, secret_a(), 7);
	if (dir == OSSUARY_TX) {
		ssize_t n;

		ASSERT_EQ(2, send(self->kfd, "ok", 2, 0));
		n = wire_read_record(self->pfd, rec);
		ASSERT_GT(n, 0);
		ASSERT_EQ(2, wire_open(&d, rec, n, pt, &type));
		EXPECT_EQ(0, memcmp(pt, "ok", 2));
	} else {
		size_t n = wire_seal(&d, OSSUARY_RECORD_DATA, "ok", 2, rec);

		ASSERT_EQ((ssize_t)n, oss_write_all(self->pfd, rec, n));
		ASSERT_EQ(2, recv(self->kfd, buf, 2, MSG_WAITALL));
		EXPECT_STREQ("ok", buf);
	}
}

static void bad_info_case(struct __test_metadata *_metadata,
			  FIXTURE_DATA(opts) *self,
			  void (*mangle)(struct ossuary_crypto_info *ci),
			  socklen_t len_delta)
{
	for (int dir = OSSUARY_TX; dir <= OSSUARY_RX; dir++) {
		struct {
			struct ossuary_crypto_info ci;
			uint8_t pad[64];
		} in = {};
		int ret;

		oss_crypto_info(&in.ci, secret_a(), 0);
		if (mangle)
			mangle(&in.ci);
		ret = setsockopt(self->kfd, SOL_OSSUARY, dir, &in,
				 sizeof(in.ci) + len_delta);
		EXPECT_EQ(-1, ret) TH_LOG("dir %d: bad input accepted", dir);
		EXPECT_EQ(EINVAL, errno) TH_LOG("dir %d: %s", dir, strerror(errno));
		expect_not_installed(_metadata, self->kfd, dir);
	}
	expect_good_install_works(_metadata, self, OSSUARY_TX);
	expect_good_install_works(_metadata, self, OSSUARY_RX);
}

TEST_F(opts, short_optlen)
{
	bad_info_case(_metadata, self, NULL, -1);
}

TEST_F(opts, long_optlen)
{
	bad_info_case(_metadata, self, NULL, 8);
}

TEST_F(opts, zero_optlen)
{
	bad_info_case(_metadata, self, NULL, -(socklen_t)sizeof(struct ossuary_crypto_info));
}

static void v1(struct ossuary_crypto_info *ci) { ci->version = 1; }
static void v3(struct ossuary_crypto_info *ci) { ci->version = 3; }
static void v0(struct ossuary_crypto_info *ci) { ci->version = 0; }
static void c0(struct ossuary_crypto_info *ci) { ci->cipher = 0; }
static void c2(struct ossuary_crypto_info *ci) { ci->cipher = 2; }
static void cff(struct ossuary_crypto_info *ci) { ci->cipher = 0xffff; }
static void r1(struct ossuary_crypto_info *ci) { ci->reserved = 1; }
static void rhi(struct ossuary_crypto_info *ci) { ci->reserved = 0x80000000u; }

TEST_F(opts, bad_version_1)	{ bad_info_case(_metadata, self, v1, 0); }
TEST_F(opts, bad_version_3)	{ bad_info_case(_metadata, self, v3, 0); }
TEST_F(opts, bad_version_0)	{ bad_info_case(_metadata, self, v0, 0); }
TEST_F(opts, bad_cipher_0)	{ bad_info_case(_metadata, self, c0, 0); }
TEST_F(opts, bad_cipher_2)	{ bad_info_case(_metadata, self, c2, 0); }
TEST_F(opts, bad_cipher_ffff)	{ bad_info_case(_metadata, self, cff, 0); }
TEST_F(opts, reserved_nonzero)	{ bad_info_case(_metadata, self, r1, 0); }
TEST_F(opts, reserved_high_bit)	{ bad_info_case(_metadata, self, rhi, 0); }

TEST_F(opts, null_optval)
{
	EXPECT_EQ(-1, setsockopt(self->kfd, SOL_OSSUARY, OSSUARY_TX, NULL,
				 sizeof(struct ossuary_crypto_info)));
	EXPECT_TRUE(errno == EFAULT || errno == EINVAL) TH_LOG("%s", strerror(errno));
	expect_not_installed(_metadata, self->kfd, OSSUARY_TX);
}

/* Each direction installs once: EBUSY after, and nothing changes */
TEST_F(opts, install_twice_ebusy)
{
	struct ossuary_dir_state st;

	for (int dir = OSSUARY_TX; dir <= OSSUARY_RX; dir++) {
		ASSERT_EQ(0, oss_install(self->kfd, dir, secret_a(), 7));
		EXPECT_EQ(-EBUSY, oss_install(self->kfd, dir, secret_b(), 99));
		EXPECT_EQ(-EBUSY, oss_install(self->kfd, dir, secret_a(), 7));
		ASSERT_EQ(0, oss_state(self->kfd, dir, &st));
		EXPECT_EQ(7, st.seq);
		EXPECT_EQ(0, st.generation);
	}
	/* the first secret and seq are the ones in use */
	{
		struct wire_dir d;
		uint8_t rec[WIRE_MAX_REC], pt[16], type;
		char buf[8] = {};
		ssize_t n;
		size_t m;

		ASSERT_EQ(2, send(self->kfd, "tx", 2, 0));
		n = wire_read_record(self->pfd, rec);
		ASSERT_GT(n, 0);
		wire_dir_init(&d, secret_a(), 7);
		EXPECT_EQ(2, wire_open(&d, rec, n, pt, &type));
		wire_dir_init(&d, secret_a(), 7);
		m = wire_seal(&d, OSSUARY_RECORD_DATA, "rx", 2, rec);
		ASSERT_EQ((ssize_t)m, oss_write_all(self->pfd, rec, m));
		ASSERT_EQ(2, recv(self->kfd, buf, 2, MSG_WAITALL));
		EXPECT_STREQ("rx", buf);
	}
}

TEST_F(opts, install_rx_before_tx)
{
	expect_good_install_works(_metadata, self, OSSUARY_RX);
	expect_good_install_works(_metadata, self, OSSUARY_TX);
}

TEST_F(opts, install_tx_only_then_rx)
{
	expect_good_install_works(_metadata, self, OSSUARY_TX);
	expect_not_installed(_metadata, self->kfd, OSSUARY_RX);
	expect_good_install_works(_metadata, self, OSSUARY_RX);
}

TEST_F(opts, unknown_optname)
{
	int v = 0;

	EXPECT_EQ(-1, setsockopt(self->kfd, SOL_OSSUARY, 99, &v, sizeof(v)));
	EXPECT_EQ(ENOPROTOOPT, errno) TH_LOG("%s", strerror(errno));
}

TEST_F(opts, key_update_before_install_fails)
{
	int v = 0;

	EXPECT_EQ(-1, setsockopt(self->kfd, SOL_OSSUARY, OSSUARY_KEY_UPDATE, &v, sizeof(v)));
	TH_LOG("KEY_UPDATE without TX key: %s", strerror(errno));
}

/* Key material is never readable back */
TEST_F(opts, getsockopt_no_key_bytes)
{
	uint8_t key[32], iv[12], out[512];
	const uint8_t *s = secret_a();
	socklen_t len = sizeof(out);
	struct wire_dir d;

	ASSERT_EQ(0, oss_install(self->kfd, OSSUARY_TX, s, 0));
	ASSERT_EQ(0, oss_install(self->kfd, OSSUARY_RX, s, 0));
	wire_dir_init(&d, s, 0);
	memcpy(key, d.key, 32);
	memcpy(iv, d.iv, 12);
	for (int dir = OSSUARY_TX; dir <= OSSUARY_RX; dir++) {
		memset(out, 0, sizeof(out));
		len = sizeof(out);
		ASSERT_EQ(0, getsockopt(self->kfd, SOL_OSSUARY, dir, out, &len));
		EXPECT_EQ(sizeof(struct ossuary_dir_state), len);
		for (size_t i = 0; i + 4 <= sizeof(out); i++) {
			for (int j = 0; j + 4 <= 32; j++) {
				ASSERT_NE(0, memcmp(out + i, s + j, 4))
					TH_LOG("secret bytes at offset %zu", i);
				ASSERT_NE(0, memcmp(out + i, key + j, 4))
					TH_LOG("key bytes at offset %zu", i);
			}
			for (int j = 0; j + 4 <= 12; j++) {
				ASSERT_NE(0, memcmp(out + i, iv + j, 4))
					TH_LOG("iv bytes at offset %zu", i);
			}
		}
	}
}

TEST_F(opts, getsockopt_reports_install)
{
	struct ossuary_dir_state st;

	ASSERT_EQ(0, oss_install(self->kfd, OSSUARY_TX, secret_a(), 1000));
	ASSERT_EQ(0, oss_state(self->kfd, OSSUARY_TX, &st));
	EXPECT_EQ(OSSUARY_VERSION_2, st.version);
	EXPECT_EQ(OSSUARY_CIPHER_CHACHA20_POLY1305, st.cipher);
	EXPECT_EQ(OSSUARY_STATE_INSTALLED, st.flags);
	EXPECT_EQ(1000, st.seq);
	EXPECT_EQ(0, st.generation);
	EXPECT_EQ(0, st.error);
	EXPECT_EQ(0, st.reserved);
	expect_not_installed(_metadata, self->kfd, OSSUARY_RX);
}

TEST_F(opts, getsockopt_short_buffer)
{
	struct ossuary_dir_state st;
	socklen_t len = 4;

	ASSERT_EQ(0, oss_install(self->kfd, OSSUARY_TX, secret_a(), 0));
	EXPECT_EQ(-1, getsockopt(self->kfd, SOL_OSSUARY, OSSUARY_TX, &st, &len));
	EXPECT_EQ(EINVAL, errno) TH_LOG("%s", strerror(errno));
}

/* SOL_OSSUARY without the ULP attached does nothing and fails */
TEST(setsockopt_before_attach_fails)
{
	struct ossuary_crypto_info ci;
	struct ossuary_dir_state st;
	socklen_t len = sizeof(st);
	char buf[8] = {};
	int c, s;

	REQUIRE_OSSUARY();
	ASSERT_EQ(0, oss_tcp_pair(AF_INET, &c, &s));
	oss_crypto_info(&ci, secret_a(), 0);
	EXPECT_EQ(-1, setsockopt(c, SOL_OSSUARY, OSSUARY_TX, &ci, sizeof(ci)));
	TH_LOG("setsockopt before attach: %s", strerror(errno));
	EXPECT_EQ(-1, setsockopt(c, SOL_OSSUARY, OSSUARY_RX, &ci, sizeof(ci)));
	EXPECT_EQ(-1, getsockopt(c, SOL_OSSUARY, OSSUARY_TX, &st, &len));
	/* still plain TCP, and the ULP still attaches afterwards */
	ASSERT_EQ(5, send(c, "plain", 5, 0));
	ASSERT_EQ(5, recv(s, buf, 5, MSG_WAITALL));
	EXPECT_STREQ("plain", buf);
	EXPECT_EQ(0, oss_attach(c));
	EXPECT_EQ(0, oss_install(c, OSSUARY_TX, secret_a(), 0));
	close(c);
	close(s);
}

/* ================= review fixes: failure, shutdown, close ================= */

#define BIG_SEND	(4 << 20)

static void small_buffers(int fd)
{
	int v = 65536;

	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
}

/* A writer thread: one blocking send of len bytes, timed */
struct blocked_writer {
	pthread_t thread;
	int fd;
	size_t len;
	ssize_t ret;
	int err;
	long long done_ms;
};

static void *blocked_writer_main(void *arg)
{
	static uint8_t data[BIG_SEND];
	struct blocked_writer *w = arg;

	oss_fill(data, sizeof(data), 77);
	w->ret = send(w->fd, data, w->len, MSG_NOSIGNAL);
	w->err = w->ret < 0 ? errno : 0;
	w->done_ms = oss_now_ms();
	return NULL;
}

static void blocked_writer_start(struct blocked_writer *w, int fd, int timeo_s)
{
	memset(w, 0, sizeof(*w));
	w->fd = fd;
	w->len = BIG_SEND;
	oss_set_timeouts(fd, timeo_s);
	pthread_create(&w->thread, NULL, blocked_writer_main, w);
	/* until TCP's buffers are full and the writer sleeps */
	oss_msleep(700);
}

/* The peer of a raw pair, draining and opening everything the kernel sends */
struct drain {
	pthread_t thread;
	FIXTURE_DATA(raw) *self;
	size_t data_bytes;
	int controls;		/* records other than DATA */
	uint8_t ctl_type[8], ctl_val[8];
	bool after_disconnect;	/* a record followed a DISCONNECT */
	bool bad;		/* a record failed to open */
};

static void *drain_main(void *arg)
{
	static uint8_t rec[WIRE_MAX_REC], pt[WIRE_MAX_PT];
	struct drain *d = arg;
	bool closed = false;

	for (;;) {
		ssize_t n = wire_read_record(d->self->pfd, rec);
		uint8_t type;

		if (n <= 0)
			break;
		n = wire_open(&d->self->from_k, rec, n, pt, &type);
		if (n < 0) {
			d->bad = true;
			break;
		}
		if (closed)
			d->after_disconnect = true;
		if (type == OSSUARY_RECORD_DATA) {
			d->data_bytes += n;
			continue;
		}
		if (d->controls < 8) {
			d->ctl_type[d->controls] = type;
			d->ctl_val[d->controls] = n ? pt[0] : 0xff;
		}
		d->controls++;
		if (type == OSSUARY_RECORD_KEY_UPDATE)
			wire_dir_next(&d->self->from_k);
		if (type == OSSUARY_RECORD_DISCONNECT)
			closed = true;
	}
	return NULL;
}

/*
 * A read returned EBADMSG while another thread is blocked writing and a
 * third shuts the socket down: from the failure on, the only record the
 * kernel may seal is DISCONNECT(1).  The blocked writer stops (it seals
 * no more DATA), shutdown() seals no DISCONNECT(0), and every byte the
 * writer was told was sent is on the wire before the DISCONNECT(1).
 */
TEST_F(raw, rx_failure_then_shutdown_seals_only_disconnect_error)
{
	struct blocked_writer w;
	struct drain d = { .self = self };
	uint8_t rec[64];
	char buf[64];
	size_t n;
	ssize_t r;

	small_buffers(self->kfd);
	small_buffers(self->pfd);
	blocked_writer_start(&w, self->kfd, 20);
	/* the peer's record is bad: the kernel's read fails */
	n = seal_to_k(self, OSSUARY_RECORD_DATA, "bad", 3, rec);
	rec[n - 1] ^= 1;
	ASSERT_EQ((ssize_t)n, oss_write_all(self->pfd, rec, n));
	EXPECT_EQ(EBADMSG, read_error(self->kfd, buf, sizeof(buf), &r));
	/* the peer reads again, and this side shuts down */
	pthread_create(&d.thread, NULL, drain_main, &d);
	EXPECT_EQ(0, shutdown(self->kfd, SHUT_WR)) TH_LOG("%s", strerror(errno));
	pthread_join(w.thread, NULL);
	pthread_join(d.thread, NULL);
	EXPECT_FALSE(d.bad);
	EXPECT_LT(w.ret, BIG_SEND) TH_LOG("the writer went on sealing DATA after the failure");
	if (w.ret > 0)
		EXPECT_EQ((size_t)w.ret, d.data_bytes)
			TH_LOG("reported %zd, on the wire %zu", w.ret, d.data_bytes);
	ASSERT_EQ(1, d.controls) TH_LOG("%d control records", d.controls);
	EXPECT_EQ(OSSUARY_RECORD_DISCONNECT, d.ctl_type[0]);
	EXPECT_EQ(OSSUARY_DISCONNECT_ERROR, d.ctl_val[0])
		TH_LOG("DISCONNECT(%d) after a failed record", d.ctl_val[0]);
	EXPECT_FALSE(d.after_disconnect);
}

/* The same failure, then close() instead of shutdown(): DISCONNECT(1) */
TEST_F(raw, rx_failure_then_close_seals_disconnect_error)
{
	uint8_t rec[64], pt[64], type;
	char buf[64];
	size_t n;
	ssize_t r;

	n = seal_to_k(self, OSSUARY_RECORD_DATA, "bad", 3, rec);
	rec[4] ^= 1;
	ASSERT_EQ((ssize_t)n, oss_write_all(self->pfd, rec, n));
	EXPECT_EQ(EBADMSG, read_error(self->kfd, buf, sizeof(buf), &r));
	/* at once, without giving any work item a chance first */
	close(self->kfd);
	self->kfd = -1;
	ASSERT_EQ(1, open_from_k(self, pt, &type, NULL));
	EXPECT_EQ(OSSUARY_RECORD_DISCONNECT, type);
	EXPECT_EQ(OSSUARY_DISCONNECT_ERROR, pt[0]);
	EXPECT_EQ(0, recv(self->pfd, buf, sizeof(buf), 0));
}

/*
 * A writer blocked on a full send buffer is unblocked by shutdown(SHUT_RDWR)
 * from another thread within a second, as on TCP and kTLS; the bytes it
 * reports are all read before the clean end.
 */
static void *shutdown_main(void *arg)
{
	int *fd_ret = arg;

	fd_ret[1] = shutdown(fd_ret[0], SHUT_RDWR) ? errno : 0;
	return NULL;
}

TEST_F(ossuary, shutdown_rdwr_unblocks_blocked_writer)
{
	static uint8_t got[BIG_SEND + 1];
	struct blocked_writer w;
	pthread_t sd;
	int fd_ret[2] = { self->fd, -1 }, e;
	long long t0;
	ssize_t n;

	small_buffers(self->fd);
	small_buffers(self->cfd);
	blocked_writer_start(&w, self->fd, 20);
	t0 = oss_now_ms();
	pthread_create(&sd, NULL, shutdown_main, fd_ret);
	for (int i = 0; i < 100 && !w.done_ms; i++)
		oss_msleep(20);
	EXPECT_NE(0, w.done_ms) TH_LOG("writer still blocked 2 s after shutdown()");
	/* TCP and kTLS: within a second; the emulated debug VM is slower */
	if (w.done_ms)
		EXPECT_LT(w.done_ms - t0, 2000);
	/* now the reader reads: shutdown's DISCONNECT(0) gets through */
	n = oss_read_full(self->cfd, got, sizeof(got), &e);
	pthread_join(w.thread, NULL);
	pthread_join(sd, NULL);
	EXPECT_EQ(0, fd_ret[1]) TH_LOG("shutdown: %s", strerror(fd_ret[1]));
	EXPECT_LT(w.ret, BIG_SEND);
	EXPECT_EQ(w.ret > 0 ? w.ret : 0, n) TH_LOG("read ended by %s", strerror(e));
	EXPECT_EQ(0, e) TH_LOG("not a clean end: %s", strerror(e));
}

/* setsockopt(OSSUARY_KEY_UPDATE) does not wait for a blocked writer */
TEST_F(ossuary, key_update_with_blocked_writer_returns)
{
	static uint8_t got[BIG_SEND];
	struct blocked_writer w;
	long long t0, t1;
	int one = 1, e;
	ssize_t n;

	small_buffers(self->fd);
	small_buffers(self->cfd);
	blocked_writer_start(&w, self->fd, 20);
	t0 = oss_now_ms();
	EXPECT_EQ(0, setsockopt(self->fd, SOL_OSSUARY, OSSUARY_KEY_UPDATE,
				&one, sizeof(one)));
	t1 = oss_now_ms();
	EXPECT_LT(t1 - t0, 1000) TH_LOG("key update took %lld ms", t1 - t0);
	EXPECT_EQ(0, w.done_ms) TH_LOG("the writer stopped");
	n = oss_read_full(self->cfd, got, sizeof(got), &e);
	pthread_join(w.thread, NULL);
	EXPECT_EQ(BIG_SEND, w.ret);
	EXPECT_EQ(BIG_SEND, n) TH_LOG("%s", strerror(e));
}

/*
 * TCP reset: the records before it are read, then ECONNRESET, and every
 * later read says the same (no truncation counted).
 */
TEST_F(raw, tcp_reset_error_latched)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	long long trunc = oss_stat_get("OssuaryTruncations");
	struct ossuary_dir_state st;
	char buf[64];

	ASSERT_EQ(0, setsockopt(self->pfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "x", 1), 0);
	close(self->pfd);
	self->pfd = -1;
	oss_msleep(100);
	ASSERT_EQ(1, recv(self->kfd, buf, sizeof(buf), 0));
	EXPECT_EQ(-ECONNRESET, recv_e(self->kfd, buf, sizeof(buf), 0));
	EXPECT_EQ(-ECONNRESET, recv_e(self->kfd, buf, sizeof(buf), 0));
	EXPECT_EQ(-ECONNRESET, recv_e(self->kfd, buf, sizeof(buf), MSG_DONTWAIT));
	EXPECT_EQ(trunc, oss_stat_get("OssuaryTruncations"));
	ASSERT_EQ(0, oss_state(self->kfd, OSSUARY_RX, &st));
	EXPECT_EQ(ECONNRESET, st.error);
}

static int so_error(int fd)
{
	int v = -1;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &v, &len))
		return -errno;
	return v;
}

/* Wait up to ms for POLLERR on fd */
static bool wait_pollerr(int fd, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		struct pollfd p = { .fd = fd, .events = 0 };

		if (poll(&p, 1, 10) > 0 && (p.revents & POLLERR))
			return true;
	}
	return false;
}

/*
 * Fatal errors reach SO_ERROR and EPOLLERR, with the errno reads return:
 * a bad record found by the reader, a bad header found on arrival.
 */
TEST_F(raw, fatal_error_in_so_error_and_pollerr)
{
	uint8_t rec[64], pt[64], type;
	char buf[64];
	size_t n;
	ssize_t r;

	n = seal_to_k(self, OSSUARY_RECORD_DATA, "bad", 3, rec);
	rec[n - 1] ^= 1;
	ASSERT_EQ((ssize_t)n, oss_write_all(self->pfd, rec, n));
	EXPECT_EQ(EBADMSG, read_error(self->kfd, buf, sizeof(buf), &r));
	/* the DISCONNECT(1) went out first */
	ASSERT_EQ(1, open_from_k(self, pt, &type, NULL));
	EXPECT_EQ(OSSUARY_RECORD_DISCONNECT, type);
	EXPECT_EQ(1, pt[0]);
	EXPECT_TRUE(wait_pollerr(self->kfd, 2000));
	EXPECT_EQ(EBADMSG, so_error(self->kfd));
	EXPECT_EQ(0, so_error(self->kfd));
	/* reads stay latched */
	EXPECT_EQ(EBADMSG, read_error(self->kfd, buf, sizeof(buf), &r));
}

TEST_F(raw, fatal_header_error_in_so_error_unread)
{
	uint8_t pt[64], type;
	char buf[64];
	ssize_t r;

	/* an unknown type, found from the header on arrival */
	ASSERT_EQ(4, oss_write_all(self->pfd, "\x02\x99\x00\x20", 4));
	EXPECT_TRUE(wait_pollerr(self->kfd, 2000)) TH_LOG("no EPOLLERR");
	EXPECT_EQ(OSS_PROTO_ERRNO, so_error(self->kfd));
	ASSERT_EQ(1, open_from_k(self, pt, &type, NULL));
	EXPECT_EQ(OSSUARY_RECORD_DISCONNECT, type);
	EXPECT_EQ(1, pt[0]);
	EXPECT_EQ(OSS_PROTO_ERRNO, read_error(self->kfd, buf, sizeof(buf), &r));
}

/*
 * shutdown(SHUT_RD) on this side: records already in are read, then
 * end of file, as on TCP; no truncation is latched or counted.
 */
TEST_F(ossuary, shutdown_rd_reads_eof)
{
	long long trunc = oss_stat_get("OssuaryTruncations");
	struct ossuary_dir_state st;
	char buf[16] = {};

	ASSERT_EQ(3, send(self->fd, "abc", 3, 0));
	oss_msleep(100);
	ASSERT_EQ(0, shutdown(self->cfd, SHUT_RD));
	EXPECT_EQ(3, recv(self->cfd, buf, sizeof(buf), 0));
	EXPECT_STREQ("abc", buf);
	EXPECT_EQ(0, recv(self->cfd, buf, sizeof(buf), 0));
	EXPECT_EQ(0, recv(self->cfd, buf, sizeof(buf), MSG_DONTWAIT));
	EXPECT_EQ(trunc, oss_stat_get("OssuaryTruncations"));
	ASSERT_EQ(0, oss_state(self->cfd, OSSUARY_RX, &st));
	EXPECT_EQ(0, st.error);
	/* the other direction is untouched */
	ASSERT_EQ(2, send(self->cfd, "ok", 2, 0));
	EXPECT_EQ(2, recv(self->fd, buf, sizeof(buf), 0));
}

/*
 * A send that faults half way reports the bytes it took, and those are
 * sealed and sent now, not when the next send or close comes.
 */
TEST_F(ossuary, send_fault_midway_seals_reported_bytes)
{
	char head[100], got[256];
	struct iovec iov[2] = {
		{ .iov_base = head, .iov_len = sizeof(head) },
		{ .iov_base = (void *)8, .iov_len = 100 },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };

	oss_fill(head, sizeof(head), 5);
	ASSERT_EQ((ssize_t)sizeof(head), sendmsg(self->fd, &msg, MSG_NOSIGNAL));
	ASSERT_NE(0, oss_wait_in(self->cfd, 1000) & POLLIN)
		TH_LOG("the reported bytes were not sent");
	ASSERT_EQ((ssize_t)sizeof(head), recv(self->cfd, got, sizeof(got), MSG_DONTWAIT));
	EXPECT_EQ(0, memcmp(head, got, sizeof(head)));
}

/* TCP urgent data in the stream: EPROTO, not a silent stall */
TEST_F(raw, urgent_data_is_protocol_error)
{
	uint8_t pt[64], type;
	char buf[16] = {};
	ssize_t r;

	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "a", 1), 0);
	ASSERT_EQ(1, send(self->pfd, "!", 1, MSG_OOB));
	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "b", 1), 0);
	EXPECT_EQ(1, recv(self->kfd, buf, sizeof(buf), 0));
	EXPECT_EQ('a', buf[0]);
	EXPECT_EQ(OSS_PROTO_ERRNO, read_error(self->kfd, buf, sizeof(buf), &r))
		TH_LOG("read %zd", r);
	ASSERT_EQ(1, open_from_k(self, pt, &type, NULL));
	EXPECT_EQ(OSSUARY_RECORD_DISCONNECT, type);
	EXPECT_EQ(1, pt[0]);
}

/* Bytes TCP has taken and the peer has not acknowledged (SIOCOUTQ) */
static int tcp_outq(int fd)
{
	int v = -1;

	return ioctl(fd, SIOCOUTQ, &v) ? -1 : v;
}

/*
 * fd's peer reads nothing and TCP's send buffer is full: make the module
 * hold part of a sealed DATA record TCP refused, so that anything more
 * it seals needs room TCP does not have.  Each round leaves room in the
 * send buffer for one MSG_MORE record to be opened, none when it is
 * completed and pushed; once TCP refuses part of it, its last segment
 * is full too.  False if TCP took every record whole.
 */
static bool hold_refused_record(struct __test_metadata *_metadata, int fd)
{
	static uint8_t chunk[16000];
	size_t rest = OSSUARY_MAX_PLAINTEXT - sizeof(chunk);
	int big = 1 << 20, q0, q1;

	for (int i = 0; i < 16; i++) {
		if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big)) ||
		    send(fd, chunk, sizeof(chunk), MSG_MORE | MSG_DONTWAIT | MSG_NOSIGNAL) !=
		    (ssize_t)sizeof(chunk)) {
			TH_LOG("opening a record: %s", strerror(errno));
			return false;
		}
		small_buffers(fd);
		q0 = tcp_outq(fd);
		if (send(fd, chunk, rest, MSG_MORE | MSG_DONTWAIT | MSG_NOSIGNAL) !=
		    (ssize_t)rest) {
			TH_LOG("completing the record: %s", strerror(errno));
			return false;
		}
		q1 = tcp_outq(fd);
		if (q0 >= 0 && q1 - q0 < OSSUARY_HEADER_LEN + OSSUARY_MAX_PLAINTEXT +
		    OSSUARY_TAG_LEN)
			return true;
	}
	return false;
}

/*
 * close() of a non-blocking socket whose peer stopped reading returns at
 * once, though the module holds a DATA record and DISCONNECT(0) that TCP
 * has no room for (the uapi header says what the peer reads then); a
 * blocking close would wait up to 5 s for that room.
 */
TEST_F(ossuary, nonblocking_close_does_not_wait)
{
	static uint8_t chunk[16000], got[1 << 16];
	long long t0, ms;
	int e, idle = 0;
	ssize_t n;

	small_buffers(self->fd);
	small_buffers(self->cfd);
	ASSERT_EQ(0, oss_set_nonblock(self->fd, true));
	/* until the peer's window is shut too: EAGAIN for a while */
	for (int i = 0; i < 10000 && idle < 3; i++) {
		n = send(self->fd, chunk, sizeof(chunk), MSG_MORE | MSG_NOSIGNAL);
		if (n > 0) {
			idle = 0;
			continue;
		}
		ASSERT_EQ(EAGAIN, errno);
		idle++;
		oss_msleep(50);
	}
	ASSERT_EQ(3, idle);
	ASSERT_TRUE(hold_refused_record(_metadata, self->fd))
		TH_LOG("TCP always had room for the record");
	t0 = oss_now_ms();
	close(self->fd);
	self->fd = -1;
	ms = oss_now_ms() - t0;
	EXPECT_LT(ms, 1000) TH_LOG("close() of a non-blocking socket took %lld ms", ms);
	/* the peer reads what got through, then a truncated stream */
	do {
		n = oss_read_full(self->cfd, got, sizeof(got), &e);
	} while (n == sizeof(got));
	EXPECT_TRUE(e == 0 || e == OSS_TRUNC_ERRNO) TH_LOG("%s", strerror(e));
}

/* A socket in a BPF sockmap cannot take the ULP (EBUSY) */
TEST(sockmap_socket_attach_ebusy)
{
	union bpf_attr attr;
	int c, s, map, key = 0, val;

	REQUIRE_OSSUARY();
	memset(&attr, 0, sizeof(attr));
	attr.map_type = BPF_MAP_TYPE_SOCKMAP;
	attr.key_size = 4;
	attr.value_size = 4;
	attr.max_entries = 1;
	map = syscall(__NR_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
	if (map < 0)
		SKIP(return, "optional: no BPF sockmap here (%s)", strerror(errno));
	ASSERT_EQ(0, oss_tcp_pair(AF_INET, &c, &s));
	val = c;
	memset(&attr, 0, sizeof(attr));
	attr.map_fd = map;
	attr.key = (uintptr_t)&key;
	attr.value = (uintptr_t)&val;
	attr.flags = BPF_ANY;
	if (syscall(__NR_bpf, BPF_MAP_UPDATE_ELEM, &attr, sizeof(attr))) {
		close(c);
		close(s);
		close(map);
		SKIP(return, "optional: sockmap update: %s", strerror(errno));
	}
	EXPECT_EQ(-EBUSY, oss_attach(c));
	/* out of the map, the same socket can attach */
	memset(&attr, 0, sizeof(attr));
	attr.map_fd = map;
	attr.key = (uintptr_t)&key;
	ASSERT_EQ(0, syscall(__NR_bpf, BPF_MAP_DELETE_ELEM, &attr, sizeof(attr)));
	EXPECT_EQ(0, oss_attach(c));
	close(c);
	close(s);
	close(map);
}

/* Write a fail_page_alloc knob; 0 or -errno */
static int fpa_set(const char *knob, const char *val)
{
	char path[128];
	int fd, ret = 0;

	snprintf(path, sizeof(path), "/sys/kernel/debug/fail_page_alloc/%s", knob);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) != (ssize_t)strlen(val))
		ret = -errno;
	close(fd);
	return ret;
}

/* ossuary.ko's address range from /proc/modules; 0 or -1 */
static int module_range(unsigned long long *start, unsigned long long *end)
{
	char line[256], name[64];
	unsigned long long size, base;
	FILE *f = fopen("/proc/modules", "r");
	int ret = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %llu %*s %*s %*s %llx", name, &size, &base) == 3 &&
		    !strcmp(name, "ossuary") && base) {
			*start = base;
			*end = base + size;
			ret = 0;
		}
	fclose(f);
	return ret;
}

/*
 * RX under memory pressure (fail_page_alloc, kernels with fault
 * injection only): the record's pages cannot be had in softirq, in
 * rx_work, nor at the reader's first tries.  The reader retries instead
 * of sleeping until data that is already there arrives again, and the
 * FIN behind the record is not taken for a truncation before it.
 */
TEST_F(raw, rx_page_alloc_failure_retried)
{
	unsigned long long start, end;
	char buf[16] = {}, v[32];

	if (access("/sys/kernel/debug/fail_page_alloc", F_OK))
		mount("none", "/sys/kernel/debug", "debugfs", 0, NULL);
	if (access("/sys/kernel/debug/fail_page_alloc/require-start", F_OK))
		SKIP(return, "optional: no fail_page_alloc stack filter here");
	ASSERT_EQ(0, module_range(&start, &end));
	ASSERT_EQ(0, fpa_set("probability", "0"));
	snprintf(v, sizeof(v), "%llu", start);
	ASSERT_EQ(0, fpa_set("require-start", v));
	snprintf(v, sizeof(v), "%llu", end);
	ASSERT_EQ(0, fpa_set("require-end", v));
	ASSERT_EQ(0, fpa_set("min-order", "0"));
	ASSERT_EQ(0, fpa_set("ignore-gfp-wait", "N"));
	ASSERT_EQ(0, fpa_set("ignore-gfp-highmem", "N"));
	ASSERT_EQ(0, fpa_set("verbose", "0"));
	ASSERT_EQ(0, fpa_set("interval", "1"));
	/* more failures than softirq (data, FIN) and rx_work can use up */
	ASSERT_EQ(0, fpa_set("times", "10"));
	ASSERT_EQ(0, fpa_set("probability", "100"));
	ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "hello", 5), 0);
	ASSERT_EQ(0, shutdown(self->pfd, SHUT_WR));
	oss_msleep(200);
	EXPECT_EQ(5, recv(self->kfd, buf, sizeof(buf), 0)) TH_LOG("%s", strerror(errno));
	fpa_set("probability", "0");
	fpa_set("times", "0");
	EXPECT_STREQ("hello", buf);
	/* FIN without DISCONNECT(0): the truncation comes after the data */
	EXPECT_EQ(-OSS_TRUNC_ERRNO, recv_e(self->kfd, buf, sizeof(buf), 0));
}

/*
 * sendfile() of a whole short file on a fresh pair (ULP attached or not):
 * its bytes TCP still held back right after the call (SIOCOUTQNSD), or
 * -1; the peer must get them all within a second in any case.
 */
static int sendfile_held_back(struct __test_metadata *_metadata, bool attach)
{
	char got[2048], want[1000];
	int c, s, file, unsent = -1;
	off_t off = 0;

	if (oss_tcp_pair(AF_INET, &c, &s))
		return -1;
	if (attach && oss_attach(c))
		goto out;
	file = oss_tmpfile("/tmp", sizeof(want), 9);
	if (file < 0)
		goto out;
	oss_fill(want, sizeof(want), 9);
	/* more than the file holds: the read after it hits the end */
	EXPECT_EQ((ssize_t)sizeof(want), sendfile(c, file, &off, 4 * sizeof(want)));
	if (ioctl(c, SIOCOUTQNSD, &unsent))
		unsent = -1;
	EXPECT_NE(0, oss_wait_in(s, 1000) & POLLIN) TH_LOG("the bytes stayed in TCP");
	EXPECT_EQ((ssize_t)sizeof(want), recv(s, got, sizeof(got), MSG_DONTWAIT));
	EXPECT_EQ(0, memcmp(want, got, sizeof(want)));
	close(file);
out:
	close(c);
	close(s);
	return unsent;
}

/*
 * ULP attached, TX not installed: plain TCP, including sendfile()'s end.
 * The last piece goes out with MSG_MORE, and only the splice_eof that
 * follows it makes TCP send the held-back segment before sendfile()
 * returns; without it TCP's probe timer sends it some 200 ms later.
 */
TEST(splice_eof_reaches_tcp_without_tx)
{
	int plain, ulp;

	REQUIRE_OSSUARY();
	plain = sendfile_held_back(_metadata, false);
	ASSERT_GE(plain, 0);
	ulp = sendfile_held_back(_metadata, true);
	ASSERT_GE(ulp, 0);
	if (plain)
		SKIP(return, "optional: plain TCP holds sendfile()'s last piece back here too (no splice_eof)");
	EXPECT_EQ(0, ulp) TH_LOG("%d bytes still held back in TCP after sendfile()", ulp);
}

/*
 * Edge-triggered EPOLLOUT after EAGAIN: the send that gave up marks the
 * socket as waiting for room, so TCP's write_space wakes the poller once
 * the reader has made some.
 */
TEST_F(ossuary, epollet_pollout_after_eagain)
{
	static uint8_t chunk[16000], got[1 << 16];
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLET };
	int ep, n = 0;

	small_buffers(self->fd);
	small_buffers(self->cfd);
	ASSERT_EQ(0, oss_set_nonblock(self->fd, true));
	ep = epoll_create1(0);
	ASSERT_GE(ep, 0);
	ASSERT_EQ(0, epoll_ctl(ep, EPOLL_CTL_ADD, self->fd, &ev));
	/* consume the first, level edge */
	ASSERT_EQ(1, epoll_wait(ep, &ev, 1, 1000));
	for (int i = 0; i < 10000; i++)
		if (send(self->fd, chunk, sizeof(chunk), MSG_NOSIGNAL) < 0)
			break;
	ASSERT_EQ(EAGAIN, errno);
	/* the reader makes room */
	oss_msleep(200);
	for (int i = 0; i < 8; i++)
		if (recv(self->cfd, got, sizeof(got), MSG_DONTWAIT) <= 0)
			break;
	for (int i = 0; i < 20 && !n; i++)
		n = epoll_wait(ep, &ev, 1, 100);
	EXPECT_EQ(1, n) TH_LOG("no EPOLLOUT edge after EAGAIN");
	close(ep);
}

/*
 * Thousands of small records in one burst: softirq opens a bounded batch
 * per call and leaves the rest to process context; all are acted on.
 * Userspace sees the same stream either way: the bound shows in
 * OssuaryRxSoftirqDeferrals, which counts each time softirq stopped.
 */
TEST_F(raw, small_record_burst)
{
	static uint8_t stream[2000 * 32 + 64];
	struct ossuary_dir_state st;
	long long deferred;
	uint8_t zero = 0;
	char buf[8] = {};
	size_t off = 0;

	deferred = oss_stat_get("OssuaryRxSoftirqDeferrals");
	ASSERT_GE(deferred, 0) TH_LOG("no OssuaryRxSoftirqDeferrals in /proc/net/ossuary_stat");
	for (int i = 0; i < 2000; i++) {
		off += seal_to_k(self, OSSUARY_RECORD_KEY_UPDATE, &zero, 1, stream + off);
		wire_dir_next(&self->to_k);
	}
	off += seal_to_k(self, OSSUARY_RECORD_DATA, "end", 3, stream + off);
	ASSERT_EQ((ssize_t)off, oss_write_all(self->pfd, stream, off));
	ASSERT_EQ(3, recv(self->kfd, buf, 3, MSG_WAITALL));
	EXPECT_STREQ("end", buf);
	ASSERT_EQ(0, oss_state(self->kfd, OSSUARY_RX, &st));
	EXPECT_EQ(2000, st.generation);
	/* 2000 records of 21 bytes arrive in a few segments at most */
	EXPECT_LT(deferred, oss_stat_get("OssuaryRxSoftirqDeferrals"))
		TH_LOG("softirq opened every small record it was given");
}

/*
 * The peer reads nothing: fill the kernel's TCP send path with DATA
 * (a non-blocking writer until EAGAIN), so that what it seals next stays
 * queued in the module.
 */
static void fill_k_tx(struct __test_metadata *_metadata, FIXTURE_DATA(raw) *self)
{
	static uint8_t chunk[16384];
	int sends = 0, idle = 0;

	small_buffers(self->kfd);
	small_buffers(self->pfd);
	ASSERT_EQ(0, oss_set_nonblock(self->kfd, true));
	/* until the peer's window is shut too: EAGAIN for a while */
	while (idle < 3) {
		if (send(self->kfd, chunk, sizeof(chunk), MSG_NOSIGNAL) > 0) {
			ASSERT_LT(++sends, 4096);
			idle = 0;
			continue;
		}
		ASSERT_EQ(EAGAIN, errno);
		idle++;
		oss_msleep(100);
	}
	ASSERT_EQ(0, oss_set_nonblock(self->kfd, false));
}

/*
 * Now the peer reads: open everything the kernel sent, following its key
 * updates, until it has seen `updates` KEY_UPDATE(0) records.
 */
static void drain_k_tx(struct __test_metadata *_metadata, FIXTURE_DATA(raw) *self,
		       uint64_t updates)
{
	static uint8_t pt[WIRE_MAX_REC];
	uint64_t seen = 0;
	uint8_t type;

	oss_set_timeouts(self->pfd, 10);
	while (seen < updates) {
		ssize_t n = open_from_k(self, pt, &type, NULL);

		ASSERT_GE(n, 0) TH_LOG("stream ended after %llu of %llu updates",
				      (unsigned long long)seen,
				      (unsigned long long)updates);
		if (type == OSSUARY_RECORD_KEY_UPDATE) {
			ASSERT_EQ(1, n);
			EXPECT_EQ(0, pt[0]);
			wire_dir_next(&self->from_k);
			seen++;
		} else {
			ASSERT_EQ(OSSUARY_RECORD_DATA, type);
		}
	}
}

/*
 * shutdown(SHUT_WR) never waits for room, as on TCP: with a peer that
 * reads nothing it used to block for SO_SNDTIMEO (for ever by default).
 * DISCONNECT(0) stays queued behind the data; once the peer reads, it
 * arrives after all of it, then TCP's FIN.
 */
TEST_F(raw, shutdown_wr_does_not_wait_for_room)
{
	static uint8_t pt[WIRE_MAX_REC];
	long long t0, ms;
	uint8_t type;
	ssize_t n;
	int ret;
	char c;

	fill_k_tx(_metadata, self);
	ASSERT_TRUE(hold_refused_record(_metadata, self->kfd))
		TH_LOG("TCP always had room for the record");
	/* SO_SNDTIMEO is 3 s (the fixture's): the old wait, bounded */
	t0 = oss_now_ms();
	ret = shutdown(self->kfd, SHUT_WR);
	ms = oss_now_ms() - t0;
	EXPECT_EQ(0, ret) TH_LOG("shutdown: %s", strerror(errno));
	EXPECT_LT(ms, 1000) TH_LOG("shutdown(SHUT_WR) took %lld ms", ms);
	EXPECT_EQ(-1, send(self->kfd, "x", 1, MSG_NOSIGNAL));
	EXPECT_EQ(EPIPE, errno);
	/* the peer reads: all the data, DISCONNECT(0) last, then the FIN */
	oss_set_timeouts(self->pfd, 10);
	do {
		n = open_from_k(self, pt, &type, NULL);
		ASSERT_GE(n, 0) TH_LOG("no DISCONNECT(0) after the data");
	} while (type == OSSUARY_RECORD_DATA);
	EXPECT_EQ(OSSUARY_RECORD_DISCONNECT, type);
	EXPECT_EQ(1, n);
	EXPECT_EQ(0, pt[0]);
	EXPECT_EQ(0, recv(self->pfd, &c, 1, 0)) TH_LOG("no FIN after DISCONNECT(0)");
}

/*
 * A peer that sends KEY_UPDATE(1) again and again while it reads nothing
 * cannot make the module queue an answer per request: the queue of
 * sealed records is bounded, the owed answer is sealed once TCP takes
 * them, and the stream stays intact.
 */
TEST_F_TIMEOUT(raw, key_update_requests_bounded_queue, 120)
{
	struct ossuary_dir_state st;
	uint8_t one = 1, pt[64], type;
	char buf[4];
	uint64_t gen;
	int i;

	fill_k_tx(_metadata, self);
	for (i = 0; i < 1000; i++) {
		ASSERT_GT(send_to_k(self, OSSUARY_RECORD_KEY_UPDATE, &one, 1), 0);
		wire_dir_next(&self->to_k);
		ASSERT_GT(send_to_k(self, OSSUARY_RECORD_DATA, "x", 1), 0);
		/* each read ends with the owed answer sealed, if there is room */
		ASSERT_EQ(1, recv(self->kfd, buf, 1, 0)) TH_LOG("%s", strerror(errno));
	}
	ASSERT_EQ(0, oss_state(self->kfd, OSSUARY_RX, &st));
	EXPECT_EQ(1000, st.generation);
	ASSERT_EQ(0, oss_state(self->kfd, OSSUARY_TX, &st));
	gen = st.generation;
	EXPECT_GE(gen, 1);
	/*
	 * TCP itself takes some small records past a full buffer (into its
	 * last segment, or as the peer's window creeps open); the module
	 * queues no more than a few.
	 */
	EXPECT_LT(gen, 500) TH_LOG("%llu answers queued for a peer that reads nothing",
				  (unsigned long long)gen);
	/* the one still owed goes out once TCP took the rest */
	drain_k_tx(_metadata, self, gen + 1);
	ASSERT_EQ(0, oss_state(self->kfd, OSSUARY_TX, &st));
	EXPECT_EQ(gen + 1, st.generation);
	ASSERT_EQ(3, send(self->kfd, "end", 3, 0));
	for (;;) {
		ssize_t n = open_from_k(self, pt, &type, NULL);

		ASSERT_GE(n, 0);
		if (n == 3 && !memcmp(pt, "end", 3))
			break;
	}
}

/* The same for a local caller: EAGAIN (O_NONBLOCK) once the queue is full */
TEST_F(raw, key_update_setsockopt_bounded_queue)
{
	struct ossuary_dir_state st;
	int zero = 0, ok = 0, i, r = 0;
	uint8_t pt[64], type;

	fill_k_tx(_metadata, self);
	/* O_NONBLOCK: EAGAIN at once rather than waiting for room */
	ASSERT_EQ(0, oss_set_nonblock(self->kfd, true));
	for (i = 0; i < 1000; i++) {
		r = setsockopt(self->kfd, SOL_OSSUARY, OSSUARY_KEY_UPDATE, &zero,
			       sizeof(zero));
		if (r)
			break;
		ok++;
	}
	ASSERT_EQ(-1, r) TH_LOG("%d key updates queued for a peer that reads nothing", ok);
	EXPECT_EQ(EAGAIN, errno);
	EXPECT_LT(ok, 500);
	ASSERT_EQ(0, oss_set_nonblock(self->kfd, false));
	ASSERT_EQ(0, oss_state(self->kfd, OSSUARY_TX, &st));
	EXPECT_EQ((uint64_t)ok, st.generation);
	drain_k_tx(_metadata, self, ok);
	/* room again: the next one is sealed and sent */
	ASSERT_EQ(0, setsockopt(self->kfd, SOL_OSSUARY, OSSUARY_KEY_UPDATE, &zero,
				sizeof(zero))) TH_LOG("%s", strerror(errno));
	drain_k_tx(_metadata, self, 1);
	ASSERT_EQ(3, send(self->kfd, "end", 3, 0));
	for (;;) {
		ssize_t n = open_from_k(self, pt, &type, NULL);

		ASSERT_GE(n, 0);
		if (n == 3 && !memcmp(pt, "end", 3))
			break;
	}
}

TEST_HARNESS_MAIN
