// SPDX-License-Identifier: GPL-2.0
/*
 * Where the receive path takes a record from, as /proc/net/ossuary_stat
 * shows it (the counters `make bench` prints):
 *
 *   OssuaryRxSkbRecords   DATA records opened straight from TCP's skbs
 *   OssuaryRxStagedBytes  sealed bytes copied out of TCP first
 *   OssuaryRxCopiedBytes  plaintext copied from the module's buffer
 *
 * A record is opened where it lies unless it cannot wait there (a
 * receive buffer smaller than the record) or its pages may still change
 * (a local sender that lent TCP the pages of a file): then it is copied,
 * and the reader must get the same bytes either way.
 *
 * The counters are per network namespace: each test runs in a fresh one
 * (unshare), so nothing else moves them.
 */
#include <sched.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <linux/sockios.h>

#include "common.h"
#include "wire.h"

#include "kselftest_harness.h"
#include "fixtures.h"

struct rx_counts {
	long long skb, staged, copied, opened;
};

static void rx_counts(struct rx_counts *c)
{
	c->skb = oss_stat_get("OssuaryRxSkbRecords");
	c->staged = oss_stat_get("OssuaryRxStagedBytes");
	c->copied = oss_stat_get("OssuaryRxCopiedBytes");
	c->opened = oss_stat_get("OssuaryRecordsOpened");
}

/* What moved since the snapshot `from` */
static void rx_since(struct rx_counts *d, const struct rx_counts *from)
{
	struct rx_counts now;

	rx_counts(&now);
	d->skb = now.skb - from->skb;
	d->staged = now.staged - from->staged;
	d->copied = now.copied - from->copied;
	d->opened = now.opened - from->opened;
}

/* A namespace of its own with lo up, so that the counters are ours */
static int own_netns(void)
{
	struct ifreq ifr = { .ifr_name = "lo" };
	int fd, ret = 0;

	if (unshare(CLONE_NEWNET))
		return -errno;
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		ret = -errno;
	ifr.ifr_flags |= IFF_UP;
	if (!ret && ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

FIXTURE(rxpath)
{
	int kfd;		/* offloaded: TX secret A, RX secret B */
	int pfd;		/* plain TCP peer with the test's record layer */
	struct wire_dir to_k;
	struct rx_counts before;
};

FIXTURE_VARIANT(rxpath)
{
	int family;
};

FIXTURE_VARIANT_ADD(rxpath, ipv4)
{
	.family = AF_INET,
};

FIXTURE_VARIANT_ADD(rxpath, ipv6)
{
	.family = AF_INET6,
};

FIXTURE_SETUP(rxpath)
{
	const char *step;
	int ret;

	self->kfd = self->pfd = -1;
	ASSERT_EQ(0, wire_init());
	REQUIRE_OSSUARY();
	ASSERT_EQ(0, own_netns());
	ret = oss_raw_pair(variant->family, &self->kfd, &self->pfd, &step);
	ASSERT_EQ(0, ret) TH_LOG("%s: %s", step, strerror(-ret));
	wire_dir_init(&self->to_k, oss_secret_b(), 0);
	ASSERT_LE(0, oss_stat_get("OssuaryRxSkbRecords"))
		TH_LOG("module without the RX path counters");
	rx_counts(&self->before);
}

FIXTURE_TEARDOWN(rxpath)
{
	oss_close_pair(&self->kfd, &self->pfd);
}

/* The peer seals n records of len bytes each into one buffer */
static size_t seal_stream(struct wire_dir *d, uint8_t *out, int n,
			  size_t len, const uint8_t *pt)
{
	size_t at = 0;

	for (int i = 0; i < n; i++)
		at += wire_seal(d, OSSUARY_RECORD_DATA, pt + i * len, len,
				out + at);
	return at;
}

/*
 * Three full records, sent while the reader is busy elsewhere (they fit
 * in the window TCP offers at first): the reader then finds them whole
 * in TCP's queue.  The first may have been framed while it was still
 * arriving (TCP may send a write in two segments), so "at least two".
 */
#define NREC	3
#define RECLEN	16384
#define WIRELEN	(RECLEN + 20)

/*
 * nrec records were read since `from`: every one opened, from TCP's skbs
 * but one at most (it may meet a window the ones before it closed, and
 * be staged), and no ciphertext copied out of TCP otherwise.
 */
static void expect_from_skbs(struct __test_metadata *_metadata,
			     const struct rx_counts *from, long long nrec)
{
	struct rx_counts d;

	rx_since(&d, from);
	TH_LOG("opened %lld: %lld from skbs, %lld bytes staged, %lld copied",
	       d.opened, d.skb, d.staged, d.copied);
	EXPECT_EQ(nrec, d.opened);
	EXPECT_LE(nrec - 1, d.skb);
	EXPECT_LE(d.staged, (nrec - d.skb) * WIRELEN);
	EXPECT_EQ(0, d.copied);
}

/*
 * The reader was behind: every record that was whole in TCP's queue is
 * opened from the skbs straight into the reader's buffer, no copy.
 */
TEST_F(rxpath, records_open_from_tcp_without_copy)
{
	static uint8_t pt[NREC * RECLEN], stream[NREC * WIRELEN];
	static uint8_t got[NREC * RECLEN];
	size_t n;
	int err;

	oss_fill(pt, sizeof(pt), 11);
	n = seal_stream(&self->to_k, stream, NREC, RECLEN, pt);
	ASSERT_EQ((ssize_t)n, oss_write_all(self->pfd, stream, n));
	ASSERT_EQ(0, oss_wait_acked(self->pfd, 5000));
	ASSERT_EQ((ssize_t)sizeof(got),
		  oss_read_full(self->kfd, got, sizeof(got), &err))
		TH_LOG("%s", strerror(err));
	EXPECT_EQ(0, memcmp(pt, got, sizeof(pt)));
	expect_from_skbs(_metadata, &self->before, NREC);
}

/*
 * A reader with less room than a record: the records are still opened
 * from the skbs (into the module's buffer), and only the plaintext is
 * copied to the reader.
 */
TEST_F(rxpath, small_reads_copy_plaintext_only)
{
	static uint8_t pt[NREC * RECLEN], stream[NREC * WIRELEN];
	static uint8_t got[NREC * RECLEN];
	struct rx_counts d;
	size_t n, have = 0;

	oss_fill(pt, sizeof(pt), 12);
	n = seal_stream(&self->to_k, stream, NREC, RECLEN, pt);
	ASSERT_EQ((ssize_t)n, oss_write_all(self->pfd, stream, n));
	ASSERT_EQ(0, oss_wait_acked(self->pfd, 5000));
	while (have < sizeof(got)) {
		ssize_t r = recv(self->kfd, got + have, 1000, 0);

		ASSERT_LT(0, r) TH_LOG("recv: %s", strerror(errno));
		have += r;
	}
	EXPECT_EQ(0, memcmp(pt, got, sizeof(pt)));
	rx_since(&d, &self->before);
	TH_LOG("%lld from skbs, %lld bytes staged, %lld copied",
	       d.skb, d.staged, d.copied);
	EXPECT_LE(NREC - 1, d.skb);
	EXPECT_LE(d.staged, (NREC - d.skb) * WIRELEN);
	EXPECT_EQ((long long)sizeof(pt), d.copied);
}

/*
 * A receive buffer smaller than one record (from the handshake on): the
 * record is never whole in TCP's queue, so the module takes it out as
 * it comes rather than wait for a window that cannot open.
 */
TEST_F(rxpath, record_larger_than_receive_buffer_arrives)
{
	static uint8_t pt[2 * RECLEN], stream[2 * WIRELEN];
	static uint8_t got[2 * RECLEN];
	struct rx_counts d;
	const char *step;
	size_t n;
	pid_t pid;
	int err;

	oss_close_pair(&self->kfd, &self->pfd);
	ASSERT_EQ(0, oss_tcp_pair_rcvbuf(variant->family, false, 4096,
					 &self->kfd, &self->pfd));
	err = oss_offload_pair(&self->kfd, &self->pfd, &step);
	ASSERT_EQ(0, err) TH_LOG("%s: %s", step, strerror(-err));
	oss_fill(pt, sizeof(pt), 13);
	n = seal_stream(&self->to_k, stream, 2, RECLEN, pt);
	/* more than TCP buffers: written from a child while this reads */
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid)
		_exit(oss_write_all(self->pfd, stream, n) != (ssize_t)n);
	ASSERT_EQ((ssize_t)sizeof(got),
		  oss_read_full(self->kfd, got, sizeof(got), &err))
		TH_LOG("%s", strerror(err));
	EXPECT_EQ(0, oss_wait_child(pid));
	EXPECT_EQ(0, memcmp(pt, got, sizeof(pt)));
	rx_since(&d, &self->before);
	TH_LOG("%lld from skbs, %lld bytes staged", d.skb, d.staged);
	EXPECT_GE(d.staged, (long long)n);
}

/*
 * Write the sealed stream a record at a time, each record in pieces of
 * at most `piece` bytes with `gap_ms` between pieces (TCP_NODELAY: each
 * piece is a segment of its own), so that the reader meets every record
 * while it is still arriving.  For a child: 0 or 1.
 */
static int write_in_pieces(int fd, const uint8_t *stream, int nrec,
			   size_t wirelen, size_t piece, int gap_ms)
{
	if (oss_nodelay(fd))
		return 1;
	for (int i = 0; i < nrec; i++) {
		for (size_t at = 0; at < wirelen; at += piece) {
			size_t n = wirelen - at < piece ? wirelen - at : piece;

			if (oss_write_all(fd, stream + i * wirelen + at, n) !=
			    (ssize_t)n)
				return 1;
			if (gap_ms)
				oss_msleep(gap_ms);
		}
	}
	return 0;
}

#define NPIECES_REC	8

/*
 * Records that arrive in pieces while the reader waits for them (the
 * usual case on a network: a record spans several segments) wait in
 * TCP's queue until they are whole, and are opened from there: no byte
 * of them is copied out of TCP first.
 */
TEST_F(rxpath, records_arriving_in_pieces_open_from_tcp)
{
	static uint8_t pt[NPIECES_REC * RECLEN];
	static uint8_t stream[NPIECES_REC * WIRELEN];
	static uint8_t got[NPIECES_REC * RECLEN];
	int big = 1 << 20;
	size_t n;
	pid_t pid;
	int err;

	oss_fill(pt, sizeof(pt), 16);
	n = seal_stream(&self->to_k, stream, NPIECES_REC, RECLEN, pt);
	ASSERT_EQ(sizeof(stream), n);
	/*
	 * Room for all of it: a reader the loaded VM holds back a few
	 * records must not shrink the window to a segment, where a record
	 * still arriving is rightly copied.
	 */
	ASSERT_EQ(0, setsockopt(self->kfd, SOL_SOCKET, SO_RCVBUF, &big,
				sizeof(big)));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid)
		_exit(write_in_pieces(self->pfd, stream, NPIECES_REC, WIRELEN,
				      WIRELEN / 2 + 1, 20));
	ASSERT_EQ((ssize_t)sizeof(got),
		  oss_read_full(self->kfd, got, sizeof(got), &err))
		TH_LOG("%s", strerror(err));
	EXPECT_EQ(0, oss_wait_child(pid));
	EXPECT_EQ(0, memcmp(pt, got, sizeof(pt)));
	expect_from_skbs(_metadata, &self->before, NPIECES_REC);
}

/*
 * Half a record in TCP is nothing to read: poll() does not report it and
 * a nonblocking read finds nothing.  The rest of it wakes poll(), and
 * the record is opened from TCP's skbs with nothing copied first.
 */
TEST_F(rxpath, poll_reports_a_record_once_it_is_whole)
{
	static uint8_t pt[RECLEN], stream[WIRELEN], got[RECLEN];
	struct rx_counts d;
	size_t n, half = WIRELEN / 2;

	oss_fill(pt, sizeof(pt), 17);
	n = seal_stream(&self->to_k, stream, 1, RECLEN, pt);
	ASSERT_EQ(0, oss_nodelay(self->pfd));
	ASSERT_EQ((ssize_t)half, oss_write_all(self->pfd, stream, half));
	ASSERT_EQ(0, oss_wait_acked(self->pfd, 5000));
	EXPECT_EQ(0, oss_wait_in(self->kfd, 300) & POLLIN);
	EXPECT_EQ(-1, recv(self->kfd, got, sizeof(got), MSG_DONTWAIT));
	EXPECT_EQ(EAGAIN, errno);
	ASSERT_EQ((ssize_t)(n - half),
		  oss_write_all(self->pfd, stream + half, n - half));
	EXPECT_NE(0, oss_wait_in(self->kfd, 5000) & POLLIN);
	EXPECT_EQ((ssize_t)sizeof(got),
		  recv(self->kfd, got, sizeof(got), MSG_DONTWAIT));
	EXPECT_EQ(0, memcmp(pt, got, sizeof(pt)));
	rx_since(&d, &self->before);
	TH_LOG("%lld from skbs, %lld bytes staged", d.skb, d.staged);
	EXPECT_EQ(1, d.skb);
	EXPECT_EQ(0, d.staged);
}

/*
 * A reader that reads exactly one record's plaintext at a time and
 * polls in between (fixed-size messages): every record that has
 * arrived must show as readable, also those that came in while the
 * one before them waited for the reader, when nothing more arrives.
 */
TEST_F(rxpath, record_sized_reads_and_poll_find_every_record)
{
	static uint8_t pt[4 * RECLEN], stream[4 * WIRELEN], got[RECLEN];
	size_t n;

	oss_fill(pt, sizeof(pt), 18);
	n = seal_stream(&self->to_k, stream, 4, RECLEN, pt);
	ASSERT_EQ((ssize_t)n, oss_write_all(self->pfd, stream, n));
	ASSERT_EQ(0, oss_wait_acked(self->pfd, 5000));
	for (int i = 0; i < 4; i++) {
		ASSERT_NE(0, oss_wait_in(self->kfd, 3000) & POLLIN)
			TH_LOG("record %d of 4 not readable", i + 1);
		ASSERT_EQ((ssize_t)RECLEN,
			  recv(self->kfd, got, RECLEN, MSG_DONTWAIT))
			TH_LOG("record %d: %s", i + 1, strerror(errno));
		EXPECT_EQ(0, memcmp(pt + i * RECLEN, got, RECLEN));
	}
}

/*
 * A receive buffer of rcvbuf bytes (from the handshake on), a peer that
 * writes records in uneven pieces as fast as TCP takes them, and a
 * reader that polls, reads a little and sleeps: TCP's window closes
 * again and again while a record is still arriving.  Every byte must
 * arrive, each poll within the socket timeout, the whole in bounded
 * time: a record left in TCP's queue while the window cannot take the
 * rest of it would stall the connection.
 */
#define SLOW_NREC	24

static void slow_reader_gets_every_byte(struct __test_metadata *_metadata,
					FIXTURE_DATA(rxpath) *self,
					int family, int rcvbuf)
{
	static uint8_t pt[SLOW_NREC * RECLEN];
	static uint8_t stream[SLOW_NREC * WIRELEN];
	static uint8_t got[SLOW_NREC * RECLEN];
	long long t0, ms;
	struct rx_counts d;
	const char *step;
	size_t n, have = 0;
	int err, eagain = 0;
	pid_t pid;

	oss_close_pair(&self->kfd, &self->pfd);
	ASSERT_EQ(0, oss_tcp_pair_rcvbuf(family, false, rcvbuf,
					 &self->kfd, &self->pfd));
	err = oss_offload_pair(&self->kfd, &self->pfd, &step);
	ASSERT_EQ(0, err) TH_LOG("%s: %s", step, strerror(-err));
	oss_fill(pt, sizeof(pt), 19);
	n = seal_stream(&self->to_k, stream, SLOW_NREC, RECLEN, pt);
	ASSERT_EQ(sizeof(stream), n);
	t0 = oss_now_ms();
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid)
		_exit(write_in_pieces(self->pfd, stream, SLOW_NREC, WIRELEN,
				      5000, 0));
	while (have < sizeof(got)) {
		size_t want = sizeof(got) - have < 6000 ?
			      sizeof(got) - have : 6000;
		ssize_t r;

		ASSERT_NE(0, oss_wait_in(self->kfd, 5000) & POLLIN)
			TH_LOG("stalled at %zu of %zu bytes", have,
			       sizeof(got));
		r = recv(self->kfd, got + have, want, MSG_DONTWAIT);
		if (r < 0 && errno == EAGAIN) {
			eagain++;
			continue;
		}
		ASSERT_LT(0, r) TH_LOG("recv: %s", strerror(errno));
		have += r;
		oss_msleep(3);
	}
	ms = oss_now_ms() - t0;
	EXPECT_EQ(0, oss_wait_child(pid));
	EXPECT_EQ(0, memcmp(pt, got, sizeof(pt)));
	rx_since(&d, &self->before);
	TH_LOG("%lld ms; %lld from skbs, %lld bytes staged; %d EAGAIN after poll",
	       ms, d.skb, d.staged, eagain);
	EXPECT_EQ(SLOW_NREC, d.opened);
	/* poll() said readable only with a record to read */
	EXPECT_EQ(0, eagain);
	/* a stall fails the 5 s wait above; this bounds the whole */
	EXPECT_GT(120000, ms);
}

TEST_F(rxpath, slow_reader_with_receive_buffer_below_a_record)
{
	slow_reader_gets_every_byte(_metadata, self, variant->family, 4096);
}

TEST_F(rxpath, slow_reader_with_receive_buffer_of_two_records)
{
	slow_reader_gets_every_byte(_metadata, self, variant->family, 32768);
}

/*
 * The peer sends its sealed records with sendfile() from a file on this
 * host: TCP holds the file's own pages, which a writer of the file could
 * change between the tag check and the decryption.  Though whole in
 * TCP's queue, such records are copied before they are opened; the
 * reader gets them all the same.
 */
TEST_F(rxpath, records_from_file_pages_are_copied_first)
{
	static uint8_t pt[NREC * RECLEN], stream[NREC * WIRELEN];
	static uint8_t got[NREC * RECLEN];
	char path[] = "/tmp/ossuary-rxpath-XXXXXX";
	struct rx_counts d;
	off_t off = 0;
	size_t n;
	int fd, err;

	oss_fill(pt, sizeof(pt), 14);
	n = seal_stream(&self->to_k, stream, NREC, RECLEN, pt);
	fd = mkstemp(path);
	ASSERT_LE(0, fd);
	unlink(path);
	ASSERT_EQ((ssize_t)n, write(fd, stream, n));
	ASSERT_EQ((ssize_t)n, oss_sendfile_all(self->pfd, fd, &off, n));
	close(fd);
	ASSERT_EQ(0, oss_wait_acked(self->pfd, 5000));
	ASSERT_EQ((ssize_t)sizeof(got),
		  oss_read_full(self->kfd, got, sizeof(got), &err))
		TH_LOG("%s", strerror(err));
	EXPECT_EQ(0, memcmp(pt, got, sizeof(pt)));
	rx_since(&d, &self->before);
	TH_LOG("%lld from skbs, %lld bytes staged", d.skb, d.staged);
	EXPECT_EQ(0, d.skb);
	EXPECT_EQ((long long)n, d.staged);
}

/*
 * Between two offloaded sockets on this host the sender's record pages
 * are its own and never change while TCP holds them: the receiver opens
 * them where they are.
 */
TEST(offloaded_sender_records_open_from_tcp)
{
	static uint8_t pt[NREC * RECLEN], got[NREC * RECLEN];
	struct rx_counts a, d;
	const char *step;
	int fd = -1, cfd = -1, err;

	REQUIRE_OSSUARY();
	ASSERT_EQ(0, own_netns());
	err = oss_offloaded_pair(AF_INET, &fd, &cfd, &step);
	ASSERT_EQ(0, err) TH_LOG("%s: %s", step, strerror(-err));
	oss_fill(pt, sizeof(pt), 15);
	rx_counts(&a);
	ASSERT_EQ((ssize_t)sizeof(pt), oss_write_all(fd, pt, sizeof(pt)));
	/* a sealed record the send left to the work item reaches TCP later */
	ASSERT_EQ(0, oss_wait_acked(fd, 5000));
	usleep(200000);
	ASSERT_EQ(0, oss_wait_acked(fd, 5000));
	ASSERT_EQ((ssize_t)sizeof(got),
		  oss_read_full(cfd, got, sizeof(got), &err))
		TH_LOG("%s", strerror(err));
	EXPECT_EQ(0, memcmp(pt, got, sizeof(pt)));
	rx_since(&d, &a);
	TH_LOG("opened %lld: %lld from skbs, %lld bytes staged",
	       d.opened, d.skb, d.staged);
	EXPECT_LE(NREC - 1, d.skb);
	EXPECT_LE(d.staged, (NREC - d.skb) * WIRELEN);
	oss_close_pair(&fd, &cfd);
}

/*
 * TCP's zero-copy receive would hand the reader sealed bytes and move
 * TCP's read position under the module's framing: refused once RX keys
 * are in, as any other way around the record layer.
 */
TEST_F(rxpath, tcp_zerocopy_receive_refused)
{
	uint64_t zc[8] = {};	/* struct tcp_zerocopy_receive, all zero */
	socklen_t len = sizeof(zc);

	EXPECT_EQ(-1, getsockopt(self->kfd, SOL_TCP, TCP_ZEROCOPY_RECEIVE,
				 zc, &len));
	EXPECT_EQ(EOPNOTSUPP, errno);
}

TEST_HARNESS_MAIN
