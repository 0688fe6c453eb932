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
#include <limits.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
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

/*
 * Inside a memory cgroup (cgroup v2, memory.max = 32 MiB): 16 offloaded
 * connections, each allowed 8 MiB of send buffer, write to peers that
 * read nothing.  Without the cgroup they could pin 128 MiB; inside it
 * the module's records and TCP's queues are charged to the cgroup
 * ("sock" in memory.stat), so the host loses about memory.max and no
 * more, and everything comes back at close.  Plain TCP in the same
 * cgroup is the reference line in the log.
 *
 * At the limit the kernel charges socket memory from a send with
 * GFP_KERNEL: it reclaims, then calls the cgroup's OOM killer, which
 * kills the task that sends (plain TCP just as Ossuary, measured on
 * Debian's 6.12 and 6.1).  A send that fails instead (EAGAIN, or
 * ENOMEM/ENOBUFS) is what happens when the charge fails without a kill.
 * Both outcomes keep the host whole; any other (a send that goes on
 * succeeding, an error of another kind, a kill by anything else) fails.
 *
 * The sockets are made by a forked worker after it moved itself into
 * the cgroup (a socket's memory cgroup is the one of the task that
 * creates or accepts it).  Its counters live in shared memory, so they
 * survive a kill; the test samples the cgroup and MemAvailable while it
 * runs, from outside the cgroup.
 *
 * The debug test kernel has no cgroups (CONFIG_CGROUPS, CONFIG_MEMCG
 * off): the cases skip there ("optional:"); Debian's kernels, which
 * tools/testing/check boots, have both, and guest-check sets
 * OSSUARY_MEMCG_REQUIRED=1 under them, so that a skip there counts as a
 * failure.
 */
#define MEMCG_MAX		(32LL << 20)
#define MEMCG_CONNS		16
/* SO_SNDBUFFORCE: the kernel doubles it, 8 MiB a socket */
#define MEMCG_SNDBUF		(4 << 20)
/* the peers' receive queues, small: the senders hold the bytes */
#define MEMCG_RCVBUF		65536
#define MEMCG_BIG_WRITE		16384
/* the key update case first fills this much with 16 KiB writes */
#define MEMCG_PREFILL		(28LL << 20)
#define MEMCG_RUN_MS		240000
/*
 * What the cgroup may show beyond memory.max: charges the kernel forces
 * past the limit (an skb received in softirq, TCP's FIN, a control
 * record the module must seal), bounded by the peers' receive buffers
 * (16 x 128 KiB) and a few pages a socket: 4 MiB covers both.
 */
#define MEMCG_SLACK		(4LL << 20)
/*
 * The host beyond memory.max: the same, and what is not charged (socket
 * structures, page tables, the worker's own pages from before the move).
 */
#define MEMCG_HOST_SLACK	(8LL << 20)
/* Left in the cgroup once every socket is closed */
#define MEMCG_AFTER_MAX		(2LL << 20)

enum memcg_load {
	MEMCG_TCP_BIG,		/* plain TCP, 16 KiB writes */
	MEMCG_OSS_1B,		/* offloaded, 1-byte writes */
	MEMCG_OSS_KEY_UPDATE,	/* offloaded, 16 KiB writes, then KEY_UPDATEs */
};

static const char *const memcg_load_name[] = {
	[MEMCG_TCP_BIG] = "plain TCP, 16 KiB writes",
	[MEMCG_OSS_1B] = "ossuary, 1-byte writes",
	[MEMCG_OSS_KEY_UPDATE] = "ossuary, 28 MiB in 16 KiB writes, then setsockopt(OSSUARY_KEY_UPDATE)",
};

/*
 * What the host may lose: what the cgroup is charged and the slack.
 * Sealed records sit back to back in page fragments and pin the bytes
 * they carry, which TCP charges once it holds them, so 16 KiB writes
 * get the same bound as 1-byte writes and KEY_UPDATEs.  (Until issue
 * 13 a record larger than 2 KiB kept 5 order-0 pages for its 16,404
 * bytes and the host could lose up to 5/4 of what the cgroup held.)
 */
#define MEMCG_HOST_BOUND	(MEMCG_MAX + MEMCG_HOST_SLACK)

/* What the worker reports (shared memory, written as it goes) */
struct memcg_report {
	char step[96];		/* setup failure: what failed */
	int err;		/* its errno */
	int conns;
	long long sent;		/* bytes accepted by send() */
	long long ops;		/* sends that succeeded */
	long long updates;	/* KEY_UPDATEs accepted */
	int stopped;		/* sockets whose sends stopped as expected */
	int n_eagain, n_enomem, n_enobufs;
	int other_errno;	/* an unexpected error, 0 if none */
	long long ms;
	long long outq;		/* bytes the senders' TCP holds (SIOCOUTQ) */
	int established;	/* senders still in ESTABLISHED */
	bool done;		/* the load is over, the sockets still open */
};

struct memcg {
	char root[256];		/* the cgroup2 mount */
	char dir[320];		/* the test's own cgroup */
	bool mounted;		/* mounted by us (unmounted at the end) */
};

static int memcg_write(const char *dir, const char *file, const char *val)
{
	char path[400];
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* A one-number file (memory.current, memory.peak): -1 if absent */
static long long memcg_read(const struct memcg *cg, const char *file)
{
	char path[400], buf[64] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", cg->dir, file);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return buf[0] ? atoll(buf) : -1;
}

/* One "key value" line of memory.stat or memory.events: -1 if absent */
static long long memcg_key(const struct memcg *cg, const char *file,
			   const char *key)
{
	char path[400];

	snprintf(path, sizeof(path), "%s/%s", cg->dir, file);
	return oss_proc_value(path, key);
}

static bool file_has_word(const char *path, const char *word)
{
	char line[512];
	bool found = false;
	FILE *f = fopen(path, "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *tok, *save;

		for (tok = strtok_r(line, " \t\n", &save); tok && !found;
		     tok = strtok_r(NULL, " \t\n", &save))
			found = !strcmp(tok, word);
	}
	fclose(f);
	return found;
}

/* Where cgroup2 is mounted, "" if nowhere */
static void cgroup2_mount_point(char *out, size_t len)
{
	char dev[256], dir[256], type[64];
	FILE *f = fopen("/proc/self/mounts", "r");

	out[0] = 0;
	if (!f)
		return;
	while (fscanf(f, "%255s %255s %63s %*[^\n]", dev, dir, type) == 3)
		if (!strcmp(type, "cgroup2")) {
			snprintf(out, len, "%s", dir);
			break;
		}
	fclose(f);
}

/*
 * The test's cgroup, memory.max = MEMCG_MAX: 0, 1 when the kernel has no
 * memory cgroups (*why says so), or -errno with *why naming the step.
 */
static int memcg_create(struct memcg *cg, const char **why)
{
	char val[32];
	int ret;

	memset(cg, 0, sizeof(*cg));
	*why = "no cgroup2 in /proc/filesystems (CONFIG_CGROUPS off)";
	if (!file_has_word("/proc/filesystems", "cgroup2"))
		return 1;
	cgroup2_mount_point(cg->root, sizeof(cg->root));
	if (!cg->root[0]) {
		*why = "mkdtemp for the cgroup2 mount";
		strcpy(cg->root, "/tmp/ossuary-cgroup2-XXXXXX");
		if (!mkdtemp(cg->root))
			return -errno;
		*why = "mount -t cgroup2";
		if (mount("cgroup2", cg->root, "cgroup2", 0, NULL)) {
			ret = -errno;
			rmdir(cg->root);
			return ret;
		}
		cg->mounted = true;
	}
	snprintf(cg->dir, sizeof(cg->dir), "%s/cgroup.controllers", cg->root);
	*why = "no memory controller in cgroup v2 (CONFIG_MEMCG off, or cgroup_disable=memory)";
	if (!file_has_word(cg->dir, "memory"))
		return 1;
	*why = "+memory in the root's cgroup.subtree_control";
	ret = memcg_write(cg->root, "cgroup.subtree_control", "+memory");
	if (ret)
		return ret;
	snprintf(cg->dir, sizeof(cg->dir), "%s/ossuary-memcg-%d", cg->root,
		 (int)getpid());
	*why = "mkdir of the test's cgroup";
	if (mkdir(cg->dir, 0755) && errno != EEXIST)
		return -errno;
	*why = "memory.max";
	snprintf(val, sizeof(val), "%lld", MEMCG_MAX);
	ret = memcg_write(cg->dir, "memory.max", val);
	if (ret)
		return ret;
	/* no swap in the guests; where there is, it must not absorb the test */
	memcg_write(cg->dir, "memory.swap.max", "0");
	return 0;
}

static void memcg_destroy(struct memcg *cg)
{
	int i;

	if (!cg->root[0])
		return;
	/* the worker is gone; its cgroup may take a moment to be empty */
	for (i = 0; i < 50 && cg->dir[0] && rmdir(cg->dir) && errno == EBUSY; i++)
		oss_msleep(100);
	if (cg->mounted) {
		umount2(cg->root, MNT_DETACH);
		rmdir(cg->root);
	}
	cg->root[0] = 0;
}

static void memcg_lingerless_close(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* Count how a send failed; false if not as expected */
static bool memcg_send_failed(struct memcg_report *r, int e)
{
	switch (e) {
	case EAGAIN:
		r->n_eagain++;
		return true;
	case ENOMEM:
		r->n_enomem++;
		return true;
	case ENOBUFS:
		r->n_enobufs++;
		return true;
	}
	if (!r->other_errno)
		r->other_errno = e;
	return false;
}

/*
 * One send of len bytes (0: a KEY_UPDATE) on fd: 1 when it went through,
 * 0 when it failed as expected, -1 otherwise.
 */
static int memcg_send(struct memcg_report *r, int fd, size_t len)
{
	static char buf[MEMCG_BIG_WRITE];
	int zero = 0;
	ssize_t n;

	if (!len) {
		if (setsockopt(fd, SOL_OSSUARY, OSSUARY_KEY_UPDATE, &zero,
			       sizeof(zero)))
			return memcg_send_failed(r, errno) ? 0 : -1;
		r->updates++;
		return 1;
	}
	n = send(fd, buf, len, MSG_NOSIGNAL);
	if (n <= 0)
		return memcg_send_failed(r, n ? errno : EPIPE) ? 0 : -1;
	r->sent += n;
	r->ops++;
	return 1;
}

/*
 * Round robin over the senders, each written until its send fails or
 * quota bytes went (0: no quota), until every socket failed three
 * rounds in a row (100 ms apart: TCP's window and the cgroup's margin
 * do not reopen) or the time runs out.
 */
static void memcg_load_run(struct memcg_report *r, int *kfd, size_t len,
			   long long quota, long long t0)
{
	long long done[MEMCG_CONNS] = {};
	int fails[MEMCG_CONNS] = {};
	int i;

	r->stopped = 0;
	while (r->stopped < r->conns && oss_now_ms() - t0 < MEMCG_RUN_MS &&
	       !r->other_errno) {
		bool progress = false;

		for (i = 0; i < r->conns; i++) {
			int k, ret = 1;

			if (fails[i] >= 3)
				continue;
			for (k = 0; k < 4096 && ret == 1; k++) {
				if (quota && done[i] >= quota) {
					ret = 0;
					break;
				}
				ret = memcg_send(r, kfd[i], len);
				if (ret == 1)
					done[i] += len ? len : 1;
			}
			if (ret < 0)
				return;
			if (k)
				progress = true;
			if (ret == 0 && ++fails[i] == 3)
				r->stopped++;
			else if (ret == 1)
				fails[i] = 0;
		}
		if (!progress)
			oss_msleep(100);
	}
}

/*
 * The worker: into the cgroup, then the connections and the load; it
 * reports (a byte on ready_fd), waits for the test's go (a byte on
 * go_fd) and closes.
 */
static void memcg_worker(const struct memcg *cg, enum memcg_load load,
			 struct memcg_report *r, int ready_fd, int go_fd)
{
	int kfd[MEMCG_CONNS], pfd[MEMCG_CONNS], i, ret;
	int sndbuf = MEMCG_SNDBUF, rcvbuf = MEMCG_RCVBUF;
	const char *step = "";
	long long t0;
	char c = 0;

	for (i = 0; i < MEMCG_CONNS; i++)
		kfd[i] = pfd[i] = -1;
#define MEMCG_FAIL(what, e) do {				\
		snprintf(r->step, sizeof(r->step), "%s", what);	\
		r->err = (e);					\
		goto out;					\
	} while (0)
	/* before any socket: they take the cgroup of their creator */
	ret = memcg_write(cg->dir, "cgroup.procs", "0");
	if (ret)
		MEMCG_FAIL("moving the worker into the cgroup", -ret);
	for (i = 0; i < MEMCG_CONNS; i++) {
		ret = oss_tcp_pair(AF_INET, &kfd[i], &pfd[i]);
		if (ret)
			MEMCG_FAIL("loopback pair", -ret);
		r->conns++;
		if (setsockopt(kfd[i], SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf,
			       sizeof(sndbuf)))
			MEMCG_FAIL("SO_SNDBUFFORCE", errno);
		setsockopt(pfd[i], SOL_SOCKET, SO_RCVBUF, &rcvbuf,
			   sizeof(rcvbuf));
		if (load != MEMCG_TCP_BIG) {
			ret = oss_offload_pair(&kfd[i], &pfd[i], &step);
			if (ret)
				MEMCG_FAIL(step, -ret);
		}
		if (oss_set_nonblock(kfd[i], true))
			MEMCG_FAIL("O_NONBLOCK", errno);
	}
	t0 = oss_now_ms();
	switch (load) {
	case MEMCG_TCP_BIG:
		memcg_load_run(r, kfd, MEMCG_BIG_WRITE, 0, t0);
		break;
	case MEMCG_OSS_1B:
		memcg_load_run(r, kfd, 1, 0, t0);
		break;
	case MEMCG_OSS_KEY_UPDATE:
		memcg_load_run(r, kfd, MEMCG_BIG_WRITE,
			       MEMCG_PREFILL / MEMCG_CONNS, t0);
		if (!r->other_errno)
			memcg_load_run(r, kfd, 0, 0, t0);
		break;
	}
	r->ms = oss_now_ms() - t0;
	for (i = 0; i < r->conns; i++) {
		struct tcp_info ti = {};
		socklen_t len = sizeof(ti);
		int v = 0;

		if (!ioctl(kfd[i], SIOCOUTQ, &v))
			r->outq += v;
		if (!getsockopt(kfd[i], SOL_TCP, TCP_INFO, &ti, &len) &&
		    ti.tcpi_state == TCP_ESTABLISHED)
			r->established++;
	}
	r->done = true;
out:
	if (write(ready_fd, &c, 1) != 1 || read(go_fd, &c, 1) < 0)
		c = 0;
	/* the peers first: their resets free what the senders queued */
	for (i = 0; i < MEMCG_CONNS; i++)
		memcg_lingerless_close(pfd[i]);
	for (i = 0; i < MEMCG_CONNS; i++)
		memcg_lingerless_close(kfd[i]);
	_exit(0);
#undef MEMCG_FAIL
}

/* The cgroup and the host, sampled while the worker runs */
struct memcg_seen {
	long long cur, sock, avail;
};

static void memcg_sample(const struct memcg *cg, struct memcg_seen *max)
{
	long long cur = memcg_read(cg, "memory.current");
	long long sock = memcg_key(cg, "memory.stat", "sock");
	long long avail = meminfo_kib("MemAvailable") * 1024;

	if (cur > max->cur)
		max->cur = cur;
	if (sock > max->sock)
		max->sock = sock;
	if (avail < max->avail)
		max->avail = avail;
}

static void memcg_case(struct __test_metadata *_metadata, enum memcg_load load,
		       bool reference)
{
	struct memcg_report *shared, rep, *r = &rep;
	struct memcg_seen seen = { .avail = LLONG_MAX };
	long long avail0, peak, oom, oom_kill, ev_max, deadline;
	long long cur_after = -1, sock_after = -1;
	int ready[2], go[2], status = 0, i, ret;
	bool reported = false, killed;
	const char *why = "";
	struct memcg cg;
	pid_t pid;
	char c = 0;

	if (oss_ulp_listed() != 1)
		SKIP(return, "ossuary module not loaded");
	/* a worker that died must not take the test with it */
	signal(SIGPIPE, SIG_IGN);
	shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, shared);
	memset(shared, 0, sizeof(*shared));
	ASSERT_EQ(0, pipe(ready));
	ASSERT_EQ(0, pipe(go));
	ret = memcg_create(&cg, &why);
	if (ret == 1) {
		memcg_destroy(&cg);
		if (getenv("OSSUARY_MEMCG_REQUIRED") &&
		    !strcmp(getenv("OSSUARY_MEMCG_REQUIRED"), "1"))
			SKIP(return, "%s, and OSSUARY_MEMCG_REQUIRED=1", why);
		SKIP(return, "optional: %s; the memory cgroup case runs under Debian's kernels (tools/testing/check, STOCK_KERNELS)",
		     why);
	}
	if (ret) {
		memcg_destroy(&cg);
		ASSERT_EQ(0, ret) TH_LOG("%s: %s", why, strerror(-ret));
	}
	oss_msleep(300);
	avail0 = meminfo_kib("MemAvailable") * 1024;
	pid = fork();
	if (pid < 0)
		memcg_destroy(&cg);
	ASSERT_LE(0, pid);
	if (!pid) {
		close(ready[0]);
		close(go[1]);
		memcg_worker(&cg, load, shared, ready[1], go[0]);
	}
	close(ready[1]);
	close(go[0]);
	/* the worker's report, or its end (an OOM kill) */
	deadline = oss_now_ms() + MEMCG_RUN_MS + 60000;
	while (oss_now_ms() < deadline) {
		memcg_sample(&cg, &seen);
		if (oss_wait_in(ready[0], 100)) {
			reported = read(ready[0], &c, 1) == 1;
			break;
		}
	}
	oss_msleep(300);
	memcg_sample(&cg, &seen);
	if (write(go[1], &c, 1) != 1)
		c = 0;
	close(go[1]);
	close(ready[0]);
	if (oss_now_ms() >= deadline)
		kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	peak = memcg_read(&cg, "memory.peak");
	oom = memcg_key(&cg, "memory.events", "oom");
	oom_kill = memcg_key(&cg, "memory.events", "oom_kill");
	ev_max = memcg_key(&cg, "memory.events", "max");
	/* closed and reset: TCP frees the queues at once; RCU, skb caches */
	for (i = 0; i < 30; i++) {
		oss_msleep(200);
		cur_after = memcg_read(&cg, "memory.current");
		sock_after = memcg_key(&cg, "memory.stat", "sock");
		if (cur_after <= MEMCG_AFTER_MAX / 2 && !sock_after)
			break;
	}
	memcg_destroy(&cg);
	rep = *shared;
	munmap(shared, sizeof(*shared));
	killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;

	TH_LOG("%s: %d connections, SO_SNDBUF %d each (%lld MiB in all), memory.max %lld MiB",
	       memcg_load_name[load], r->conns, 2 * MEMCG_SNDBUF,
	       (long long)r->conns * 2 * MEMCG_SNDBUF >> 20, MEMCG_MAX >> 20);
	TH_LOG("  sends accepted %lld (%lld bytes), key updates %lld, %lld ms; failed sends: %d EAGAIN, %d ENOMEM, %d ENOBUFS, other errno %d",
	       r->ops, r->sent, r->updates, r->ms, r->n_eagain, r->n_enomem,
	       r->n_enobufs, r->other_errno);
	TH_LOG("  outcome: %s; %d of %d sockets stopped, %d established, TCP holds %lld bytes unsent",
	       reported ? "the sends failed, the worker reported" :
	       killed && oom_kill > 0 ? "the worker was OOM-killed by the cgroup" :
	       "the worker died", r->stopped, r->conns, r->established, r->outq);
	TH_LOG("  most seen: memory.current %lld KiB, memory.stat sock %lld KiB, host MemAvailable down %lld KiB (bound %lld KiB); memory.peak %lld KiB; memory.events max %lld oom %lld oom_kill %lld",
	       seen.cur >> 10, seen.sock >> 10, (avail0 - seen.avail) >> 10,
	       MEMCG_HOST_BOUND >> 10, peak >> 10, ev_max, oom, oom_kill);
	TH_LOG("  after close: memory.current %lld KiB, memory.stat sock %lld KiB",
	       cur_after >> 10, sock_after >> 10);
	ASSERT_EQ(0, r->err) TH_LOG("worker: %s: %s", r->step, strerror(r->err));
	if (reference)
		return;
	/* the sends stopped (every socket's failing as expected), or the
	 * cgroup's OOM killer stopped the worker: nothing else
	 */
	EXPECT_TRUE(reported || (killed && oom_kill > 0))
		TH_LOG("worker status 0x%x", status);
	EXPECT_EQ(0, r->other_errno);
	if (reported) {
		EXPECT_EQ(r->conns, r->stopped);
		EXPECT_LT(r->ms, MEMCG_RUN_MS);
	}
	/* the cgroup bounded them: far less than the send buffers allow */
	EXPECT_LT(r->sent, (long long)r->conns * 2 * MEMCG_SNDBUF / 2);
	/* within the limit, and socket memory is what filled it */
	EXPECT_LE(peak, MEMCG_MAX + MEMCG_SLACK);
	EXPECT_LE(seen.cur, MEMCG_MAX + MEMCG_SLACK);
	EXPECT_GE(seen.sock, MEMCG_MAX / 2);
	/* what the host lost is what the cgroup held, about */
	EXPECT_LE(avail0 - seen.avail, MEMCG_HOST_BOUND);
	/* and closing gives it back */
	EXPECT_LE(cur_after, MEMCG_AFTER_MAX);
	EXPECT_EQ(0, sock_after);
}

FIXTURE(memcg)
{
	int unused;
};

FIXTURE_SETUP(memcg)
{
}

FIXTURE_TEARDOWN(memcg)
{
}

/* 1-byte writes until they fail, in a cgroup; plain TCP first, for the log */
TEST_F_TIMEOUT(memcg, one_byte_writes, 600)
{
	memcg_case(_metadata, MEMCG_TCP_BIG, true);
	/* skipped (no memory cgroups): once is enough */
	if (_metadata->exit_code == KSFT_SKIP)
		return;
	memcg_case(_metadata, MEMCG_OSS_1B, false);
}

/* setsockopt(OSSUARY_KEY_UPDATE) at the cgroup's limit */
TEST_F_TIMEOUT(memcg, key_update_setsockopt, 600)
{
	memcg_case(_metadata, MEMCG_OSS_KEY_UPDATE, false);
}

TEST_HARNESS_MAIN
