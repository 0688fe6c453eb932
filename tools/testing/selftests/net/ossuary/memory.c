// SPDX-License-Identifier: GPL-2.0
/*
 * Ossuary memory selftests: what an offloaded socket may make the kernel
 * hold when its peer reads nothing.  The peer is a plain TCP socket that
 * seals its own records (wire.c).  Every socket has a 64 KiB SO_SNDBUF
 * and SO_RCVBUF (the kernel doubles both), so TCP itself may hold four
 * queues of 128 KiB; the module must add no more than a small multiple of
 * that, whatever the peer sends or the application writes.
 *
 * What is measured is what a user sees: the drop of MemAvailable in
 * /proc/meminfo, and TCP's own charge in /proc/net/sockstat, between
 * before the pair existed and after the flood, with the pair still open.
 */
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>

#include "common.h"
#include "wire.h"

#include "kselftest_harness.h"

#define MEM_BUF		65536
/* growth allowed: 16 times the send buffer the kernel reports (2 MiB) */
#define MEM_BOUND_SNDBUFS	16
/* each flood stops here even without EAGAIN (the debug VM is slow) */
#define MEM_FLOOD_MS		240000

/* One /proc/meminfo field in KiB, -1 if absent */
static long long meminfo_kib(const char *want)
{
	return oss_proc_value("/proc/meminfo", want);
}

/* "TCP: ... mem N" of /proc/net/sockstat, in KiB; -1 if absent */
static long long sockstat_tcp_kib(void)
{
	char line[256];
	long long pages = -1;
	FILE *f = fopen("/proc/net/sockstat", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *m = strstr(line, " mem ");

		if (!strncmp(line, "TCP:", 4) && m)
			pages = atoll(m + 5);
	}
	fclose(f);
	return pages < 0 ? -1 : pages * (sysconf(_SC_PAGESIZE) / 1024);
}

struct mem_snap {
	long long avail, slab, tcp;
};

static void mem_snap(struct mem_snap *s)
{
	/* let freed skbs and RCU callbacks settle first */
	oss_msleep(300);
	s->avail = meminfo_kib("MemAvailable");
	s->slab = meminfo_kib("Slab");
	s->tcp = sockstat_tcp_kib();
}

static void small_buffers(int fd)
{
	int v = MEM_BUF;

	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
}

static int sndbuf_of(int fd)
{
	int v = 0;
	socklen_t len = sizeof(v);

	getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, &len);
	return v;
}

FIXTURE(mem)
{
	int kfd, pfd;
	struct wire_dir to_k;
	struct mem_snap before;
};

FIXTURE_SETUP(mem)
{
	const char *step = "";
	int ret;

	ASSERT_EQ(0, wire_init());
	if (oss_ulp_listed() != 1)
		SKIP(return, "ossuary module not loaded");
	mem_snap(&self->before);
	ASSERT_LT(0, self->before.avail);
	ASSERT_EQ(0, oss_tcp_pair(AF_INET, &self->kfd, &self->pfd));
	small_buffers(self->kfd);
	small_buffers(self->pfd);
	ret = oss_offload_pair(&self->kfd, &self->pfd, &step);
	ASSERT_EQ(0, ret) TH_LOG("%s: %s", step, strerror(-ret));
	wire_dir_init(&self->to_k, oss_secret_b(), 0);
}

FIXTURE_TEARDOWN(mem)
{
	oss_close_pair(&self->kfd, &self->pfd);
}

/* What the pair made the kernel hold; fails past the bound */
static void check_growth(struct __test_metadata *_metadata,
			 FIXTURE_DATA(mem) *self, const char *what)
{
	long long bound = MEM_BOUND_SNDBUFS * (long long)sndbuf_of(self->kfd) / 1024;
	struct mem_snap after;

	mem_snap(&after);
	long long avail = self->before.avail - after.avail;
	long long slab = after.slab - self->before.slab;

	TH_LOG("%s: MemAvailable down %lld KiB, of which Slab %+lld KiB; sockstat TCP mem %+lld KiB (bound %lld KiB)",
	       what, avail, slab, after.tcp - self->before.tcp, bound);
	/* pages: the record images, which TCP holds as frags */
	EXPECT_LE(avail - slab, bound);
	/*
	 * Slab: skb heads and record structures, in TCP's accounting;
	 * KASAN's quarantine also keeps freed objects there for a while.
	 */
	EXPECT_LE(slab, 4 * bound);
	EXPECT_LE(after.tcp - self->before.tcp, bound);
}

/* Where the peer's stream stands, for the log */
static void log_stream(struct __test_metadata *_metadata, FIXTURE_DATA(mem) *self)
{
	struct tcp_info ti = {};
	socklen_t tl = sizeof(ti);
	int inq = -1;

	getsockopt(self->pfd, SOL_TCP, TCP_INFO, &ti, &tl);
	ioctl(self->kfd, SIOCINQ, &inq);
	TH_LOG("peer: unacked %u, backoff %u, probes %u, rto %u us; plaintext ready %d",
	       ti.tcpi_unacked, ti.tcpi_backoff, ti.tcpi_probes, ti.tcpi_rto, inq);
}

/*
 * A peer sends 100,000 KEY_UPDATE(1), each followed by one byte of DATA,
 * and reads nothing, while the application reads every byte: each read
 * owes the peer an answer.  The module owes one answer at a time (the
 * requests coalesce while the send buffer is full) and holds what
 * SO_SNDBUF allows, not a page per answer.  (With a read per byte the
 * stream stalls after some 12,000 pairs: the answers the peer never
 * reads fill its receive buffer, its TCP drops one for memory and
 * shrinks its window to zero, and then discards the ACKs of its own
 * data as out of window.  Plain TCP that replies the same way stalls
 * the same way (traced with nstat and ss in the debug VM).  The flood
 * ends when nothing moves for ten seconds.)
 */
TEST_F_TIMEOUT(mem, key_update_flood_bounded, 600)
{
	const size_t nrec = 100000, pair_len = 2 * (WIRE_HDR + 1 + WIRE_TAG);
	const size_t batch = 256;
	long long t0 = oss_now_ms(), idle_since = t0;
	size_t sealed = 0, off = 0, got = 0;
	static uint8_t stream[256 * 2 * (WIRE_HDR + 1 + WIRE_TAG)];
	struct ossuary_dir_state st;
	uint8_t one = 1;
	char buf[1];

	ASSERT_EQ(0, oss_set_nonblock(self->kfd, true));
	ASSERT_EQ(0, oss_set_nonblock(self->pfd, true));
	while (got < nrec && oss_now_ms() - idle_since < 10000 &&
	       oss_now_ms() - t0 < MEM_FLOOD_MS) {
		bool progress = false;
		ssize_t n;

		if (off == sealed && sealed / pair_len < nrec) {
			size_t i, k = nrec - sealed / pair_len;

			/* the next batch of pairs, sealed in advance */
			k = k < batch ? k : batch;
			for (i = 0; i < k; i++) {
				uint8_t *p = stream + i * pair_len;

				wire_seal(&self->to_k, OSSUARY_RECORD_KEY_UPDATE,
					  &one, 1, p);
				wire_dir_next(&self->to_k);
				wire_seal(&self->to_k, OSSUARY_RECORD_DATA, "x", 1,
					  p + pair_len / 2);
			}
			sealed += k * pair_len;
		}
		if (off < sealed) {
			size_t base = off - off % (batch * pair_len);

			n = send(self->pfd, stream + (off - base), sealed - off,
				 MSG_NOSIGNAL);
			if (n > 0) {
				off += n;
				progress = true;
			} else {
				ASSERT_EQ(EAGAIN, errno);
			}
		}
		/* a byte per read: each read owes the peer an answer */
		while ((n = recv(self->kfd, buf, 1, 0)) > 0) {
			got += n;
			progress = true;
		}
		ASSERT_TRUE(n < 0 && errno == EAGAIN) TH_LOG("recv: %zd %s", n,
							  strerror(errno));
		if (progress)
			idle_since = oss_now_ms();
		else
			oss_msleep(10);
	}
	TH_LOG("peer wrote %zu of %zu requests, the application read %zu bytes, %lld ms",
	       off / pair_len, nrec, got, oss_now_ms() - t0);
	ASSERT_EQ(0, oss_state(self->kfd, OSSUARY_RX, &st));
	TH_LOG("requests opened: %llu", (unsigned long long)st.generation);
	EXPECT_GE(st.generation, 1);
	ASSERT_EQ(0, oss_state(self->kfd, OSSUARY_TX, &st));
	TH_LOG("answers sealed: %llu", (unsigned long long)st.generation);
	EXPECT_GE(st.generation, 1);
	log_stream(_metadata, self);
	check_growth(_metadata, self, "100000 KEY_UPDATE(1), peer reads nothing");
}

/*
 * Non-blocking 1-byte writes until EAGAIN, the peer reading nothing:
 * each is its own record, and the module must not pin a page for each.
 */
TEST_F_TIMEOUT(mem, one_byte_writes_bounded, 600)
{
	long long t0 = oss_now_ms();
	size_t ok = 0;
	int idle = 0;

	ASSERT_EQ(0, oss_set_nonblock(self->kfd, true));
	/* until EAGAIN stays, as the peer's window creeps shut */
	while (idle < 3 && oss_now_ms() - t0 < MEM_FLOOD_MS) {
		if (send(self->kfd, "x", 1, MSG_NOSIGNAL) == 1) {
			ok++;
			idle = 0;
			continue;
		}
		ASSERT_EQ(EAGAIN, errno);
		idle++;
		oss_msleep(100);
	}
	TH_LOG("1-byte writes accepted: %zu in %lld ms", ok, oss_now_ms() - t0);
	EXPECT_GT(ok, 0);
	check_growth(_metadata, self, "1-byte writes until EAGAIN");
	EXPECT_EQ(3, idle) TH_LOG("no lasting EAGAIN after %zu writes", ok);
}

/* The same through setsockopt(OSSUARY_KEY_UPDATE), O_NONBLOCK */
TEST_F_TIMEOUT(mem, key_update_setsockopt_bounded, 600)
{
	long long t0 = oss_now_ms();
	int zero = 0, r = 0, e = 0;
	size_t ok = 0;

	ASSERT_EQ(0, oss_set_nonblock(self->kfd, true));
	while (oss_now_ms() - t0 < MEM_FLOOD_MS) {
		r = setsockopt(self->kfd, SOL_OSSUARY, OSSUARY_KEY_UPDATE, &zero,
			       sizeof(zero));
		if (r) {
			e = errno;
			break;
		}
		ok++;
	}
	TH_LOG("key updates accepted: %zu in %lld ms", ok, oss_now_ms() - t0);
	check_growth(_metadata, self, "setsockopt(OSSUARY_KEY_UPDATE) until EAGAIN");
	ASSERT_EQ(-1, r) TH_LOG("no EAGAIN after %zu key updates", ok);
	EXPECT_EQ(EAGAIN, e);
}

TEST_HARNESS_MAIN
