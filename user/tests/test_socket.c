/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The socket API on real TCP sockets over loopback (127.0.0.1 and ::1):
 * handshakes for every role, blocking and non-blocking; the handshake
 * never reading past its last record; bulk transfers through the
 * userspace record layer; truncation against clean shutdown; offload on
 * a host without the module; timeouts and garbage peers; revision 2.1's
 * resets, failed handshakes and the exit statuses ossuary-cat gives for
 * them. The library against the real module is test_interop.c.
 *
 * Peers run in threads. CHECK only ever runs on the main thread (it
 * longjmps): threads store what they saw and the main thread checks it
 * after pthread_join. Every socket has 30 s send/receive timeouts, so a
 * bug shows as a failure, not as a hang.
 */
#define HARNESS_MAIN
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "ossuary.h"
#include "uapi/linux/ossuary.h"
#include "util/sockpair.h"

/* ---- helpers ---- */

/*
 * A stand-in for the module. The library is linked statically, so this
 * definition of setsockopt() is the one its calls reach: while
 * fake.active is set it plays the "ossuary" ULP (records what it is
 * given, or fails as told); otherwise it is the real system call. This
 * checks the offload path on a host that cannot load modules.
 */
static struct {
	int active;
	int ulp_errno, tx_errno, rx_errno;	/* 0: succeed */
	int ulp_calls, tx_calls, rx_calls;
	char ulp_name[32];
	socklen_t tx_len, rx_len;
	struct ossuary_crypto_info tx, rx;
} fake;

int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	if (fake.active && level == SOL_TCP && name == TCP_ULP) {
		fake.ulp_calls++;
		memset(fake.ulp_name, 0, sizeof(fake.ulp_name));
		memcpy(fake.ulp_name, val,
		       len < sizeof(fake.ulp_name) ? len : sizeof(fake.ulp_name) - 1);
		if (fake.ulp_errno) {
			errno = fake.ulp_errno;
			return -1;
		}
		return 0;
	}
	if (fake.active && level == SOL_OSSUARY &&
	    (name == OSSUARY_TX || name == OSSUARY_RX)) {
		int tx = name == OSSUARY_TX;
		int e = tx ? fake.tx_errno : fake.rx_errno;

		if (tx)
			fake.tx_calls++;
		else
			fake.rx_calls++;
		if (e) {
			errno = e;
			return -1;
		}
		if (len >= sizeof(struct ossuary_crypto_info))
			memcpy(tx ? &fake.tx : &fake.rx, val, sizeof(fake.tx));
		*(tx ? &fake.tx_len : &fake.rx_len) = len;
		return 0;
	}
	return (int)syscall(SYS_setsockopt, fd, level, name, val, len);
}

static void fake_reset(int active)
{
	memset(&fake, 0, sizeof(fake));
	fake.active = active;
}

/* ---- handshakes, every role ---- */

static void basic(int family)
{
	struct setup s;

	setup_pair(&s, family);
	CHECK_EQ(ossuary_mode(s.client), OSSUARY_MODE_USERSPACE);
	CHECK_EQ(ossuary_mode(s.server), OSSUARY_MODE_USERSPACE);
	ping_pong(&s);
	/* Done is done: another step reports success without touching the fd. */
	CHECK_EQ(ossuary_handshake_fd(s.client, s.fds[0], 0), OSSUARY_OK);
	CHECK_EQ(ossuary_handshake_step(s.server, s.fds[1], NULL), OSSUARY_OK);
	teardown(&s);
}

TEST(handshake_unauthenticated_ipv4)
{
	basic(AF_INET);
}

TEST(handshake_unauthenticated_ipv6)
{
	if (!ipv6_available()) {
		harness_note("::1 not available here; skipped");
		return;
	}
	basic(AF_INET6);
}

TEST(handshake_authenticated_both)
{
	uint8_t csk[32], cpk[32], ssk[32], spk[32], k[32];
	OssuaryConnection *cl, *sv;
	struct peer pc, ps;
	int fds[2];

	CHECK_EQ(ossuary_generate_auth_keypair(csk, cpk), OSSUARY_OK);
	CHECK_EQ(ossuary_generate_auth_keypair(ssk, spk), OSSUARY_OK);
	pair_or_fail(ipv6_available() ? AF_INET6 : AF_INET, fds);
	cl = ossuary_create_connection(CONN_TYPE_CLIENT, csk);
	sv = ossuary_create_connection(CONN_TYPE_AUTHENTICATED_SERVER, ssk);
	CHECK(cl && sv);
	CHECK_EQ(ossuary_add_authorized_key(cl, spk), OSSUARY_OK);
	CHECK_EQ(ossuary_add_authorized_key(sv, cpk), OSSUARY_OK);
	peer_init(&pc, cl, fds[0]);
	peer_init(&ps, sv, fds[1]);
	handshake_both(&pc, &ps);
	CHECK_EQ(pc.rc, OSSUARY_OK);
	CHECK_EQ(ps.rc, OSSUARY_OK);
	CHECK_EQ(pc.paused, 0);
	CHECK_EQ(ossuary_remote_public_key(cl, k, sizeof(k)), OSSUARY_OK);
	CHECK_MEM(k, spk, 32);
	CHECK_EQ(ossuary_remote_public_key(sv, k, sizeof(k)), OSSUARY_OK);
	CHECK_MEM(k, cpk, 32);
	{
		struct setup s = { { fds[0], fds[1] }, cl, sv };

		ping_pong(&s);
		teardown(&s);
	}
}

TEST(handshake_server_refuses_unlisted_client)
{
	uint8_t csk[32], cpk[32], ssk[32], spk[32], osk[32], opk[32], b[8];
	OssuaryConnection *cl, *sv;
	struct peer pc, ps;
	int fds[2];
	ssize_t n;

	ossuary_generate_auth_keypair(csk, cpk);
	ossuary_generate_auth_keypair(ssk, spk);
	ossuary_generate_auth_keypair(osk, opk);
	pair_or_fail(AF_INET, fds);
	cl = ossuary_create_connection(CONN_TYPE_CLIENT, csk);
	sv = ossuary_create_connection(CONN_TYPE_AUTHENTICATED_SERVER, ssk);
	CHECK(cl && sv);
	ossuary_add_authorized_key(cl, spk);
	ossuary_add_authorized_key(sv, opk);
	peer_init(&pc, cl, fds[0]);
	peer_init(&ps, sv, fds[1]);
	handshake_both(&pc, &ps);
	CHECK(ps.rc < 0);
	CHECK(ps.rc != OSSUARY_ERR_TIMEOUT);
	/* The client finishes its side; the refusal reaches its reader. */
	if (pc.rc == OSSUARY_OK) {
		n = ossuary_read(cl, fds[0], b, sizeof(b));
		CHECK_EQ(n, OSSUARY_ERR_REFUSED);
	} else {
		CHECK(pc.rc < 0 && pc.rc != OSSUARY_ERR_TIMEOUT);
	}
	ossuary_destroy_connection(&cl);
	ossuary_destroy_connection(&sv);
	close_pair(fds);
}

static void tofu(int approve)
{
	uint8_t ssk[32], spk[32], k[32];
	OssuaryConnection *cl, *sv;
	struct peer pc, ps;
	int fds[2];

	ossuary_generate_auth_keypair(ssk, spk);
	pair_or_fail(AF_INET, fds);
	cl = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	sv = ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER, ssk);
	CHECK(cl && sv);
	peer_init(&pc, cl, fds[0]);
	peer_init(&ps, sv, fds[1]);
	pc.tofu = approve ? TOFU_APPROVE : TOFU_REFUSE;
	/* A refusing client hangs up, so the server is not left waiting. */
	pc.close_after = !approve;
	ps.timeout = 5000;
	handshake_both(&pc, &ps);
	CHECK_EQ(pc.paused, 1);
	if (approve) {
		struct setup s = { { fds[0], fds[1] }, cl, sv };

		CHECK_EQ(pc.rc, OSSUARY_OK);
		CHECK_EQ(ps.rc, OSSUARY_OK);
		CHECK_EQ(ossuary_remote_public_key(cl, k, sizeof(k)), OSSUARY_OK);
		CHECK_MEM(k, spk, 32);
		ping_pong(&s);
		teardown(&s);
		return;
	}
	CHECK(pc.rc < 0);
	CHECK(pc.rc != OSSUARY_ERR_UNTRUSTED_SERVER);
	CHECK(ps.rc < 0);
	CHECK(ps.rc != OSSUARY_ERR_TIMEOUT);
	/* Asking again gives the same failure, not a new handshake. */
	{
		int sp[2];

		CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
		CHECK(ossuary_handshake_step(cl, sp[0], NULL) < 0);
		close(sp[0]);
		close(sp[1]);
	}
	fds[0] = pc.fd;
	ossuary_destroy_connection(&cl);
	ossuary_destroy_connection(&sv);
	close_pair(fds);
}

TEST(handshake_tofu_approve)
{
	tofu(1);
}

TEST(handshake_tofu_refuse)
{
	tofu(0);
}

/* Both sides in one thread, driven by poll and ossuary_handshake_step. */
TEST(handshake_nonblocking_poll)
{
	OssuaryConnection *c[2];
	int fds[2], rc[2] = { 1, 1 }, blocked = 0, rounds = 0, i;
	uint8_t ssk[32], spk[32];

	ossuary_generate_auth_keypair(ssk, spk);
	pair_or_fail(AF_INET, fds);
	set_nonblock(fds[0], 1);
	set_nonblock(fds[1], 1);
	c[0] = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	c[1] = ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER, ssk);
	CHECK(c[0] && c[1]);
	CHECK_EQ(ossuary_add_authorized_key(c[0], spk), OSSUARY_OK);
	/* handshake_fd on a non-blocking fd: one step, then the caller polls. */
	CHECK_EQ(ossuary_handshake_fd(c[0], fds[0], 1000), OSSUARY_ERR_WOULD_BLOCK);
	while ((rc[0] != OSSUARY_OK || rc[1] != OSSUARY_OK) && rounds++ < 100) {
		struct pollfd p[2];
		int n = 0;

		for (i = 0; i < 2; i++) {
			short ev = 0;

			if (rc[i] == OSSUARY_OK)
				continue;
			rc[i] = ossuary_handshake_step(c[i], fds[i], &ev);
			if (rc[i] == OSSUARY_ERR_WOULD_BLOCK) {
				CHECK(ev == POLLIN || ev == POLLOUT);
				blocked++;
				p[n].fd = fds[i];
				p[n].events = ev;
				n++;
			} else {
				CHECK_EQ(rc[i], OSSUARY_OK);
			}
		}
		if (n)
			CHECK(poll(p, (nfds_t)n, 5000) > 0);
	}
	CHECK_EQ(rc[0], OSSUARY_OK);
	CHECK_EQ(rc[1], OSSUARY_OK);
	CHECK(blocked >= 2);
	/* handshake_fd on a non-blocking fd: one step, and it is done. */
	CHECK_EQ(ossuary_handshake_fd(c[0], fds[0], -1), OSSUARY_OK);
	CHECK_EQ(ossuary_mode(c[0]), OSSUARY_MODE_USERSPACE);
	{
		struct setup s = { { fds[0], fds[1] }, c[0], c[1] };
		char b[8];
		ssize_t n;

		/* Nothing to read yet on a non-blocking fd. */
		CHECK_EQ(ossuary_read(c[1], fds[1], b, sizeof(b)),
			 OSSUARY_ERR_WOULD_BLOCK);
		CHECK_EQ(ossuary_write(c[0], fds[0], "nb", 2), 2);
		set_nonblock(fds[1], 0);
		n = read_exact(c[1], fds[1], b, 2);
		CHECK_EQ(n, 2);
		CHECK_MEM(b, "nb", 2);
		teardown(&s);
	}
}

/* A non-blocking handshake that pauses for trust on first use. */
TEST(handshake_nonblocking_tofu)
{
	OssuaryConnection *c[2];
	int fds[2], rc[2] = { 1, 1 }, rounds = 0, paused = 0, i;
	uint8_t ssk[32], spk[32];

	ossuary_generate_auth_keypair(ssk, spk);
	pair_or_fail(AF_INET, fds);
	set_nonblock(fds[0], 1);
	set_nonblock(fds[1], 1);
	c[0] = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	c[1] = ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER, ssk);
	CHECK(c[0] && c[1]);
	while ((rc[0] != OSSUARY_OK || rc[1] != OSSUARY_OK) && rounds++ < 100) {
		struct pollfd p[2];
		int n = 0;

		for (i = 0; i < 2; i++) {
			short ev = 0;

			if (rc[i] == OSSUARY_OK)
				continue;
			rc[i] = ossuary_handshake_step(c[i], fds[i], &ev);
			if (rc[i] == OSSUARY_ERR_UNTRUSTED_SERVER) {
				CHECK_EQ(i, 0);
				paused++;
				CHECK_EQ(ossuary_approve_server(c[0]), OSSUARY_OK);
				rc[i] = ossuary_handshake_step(c[i], fds[i], &ev);
			}
			if (rc[i] == OSSUARY_ERR_WOULD_BLOCK) {
				p[n].fd = fds[i];
				p[n].events = ev;
				n++;
			} else {
				CHECK_EQ(rc[i], OSSUARY_OK);
			}
		}
		if (n)
			CHECK(poll(p, (nfds_t)n, 5000) > 0);
	}
	CHECK_EQ(paused, 1);
	CHECK_EQ(rc[0], OSSUARY_OK);
	CHECK_EQ(rc[1], OSSUARY_OK);
	{
		struct setup s = { { fds[0], fds[1] }, c[0], c[1] };

		teardown(&s);
	}
}

/* ---- the handshake reads no further than its last record ---- */

/* Peek until want bytes are in the socket (or 5 s pass); returns the count. */
static ssize_t peek_wait(int fd, uint8_t *buf, size_t cap, size_t want)
{
	int64_t end = now_ms() + 5000;
	ssize_t n = 0;

	while (now_ms() < end) {
		n = recv(fd, buf, cap, MSG_PEEK | MSG_DONTWAIT);
		if (n >= (ssize_t)want)
			break;
		usleep(1000);
	}
	return n;
}

TEST(handshake_leaves_first_data_record_in_socket)
{
	struct peer pc, ps;
	struct setup s;
	uint8_t buf[256];
	char got[16];
	int one = 1, zero = 0;
	ssize_t n;

	memset(&s, 0, sizeof(s));
	pair_or_fail(AF_INET, s.fds);
	s.client = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	s.server = ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER, NULL);
	CHECK(s.client && s.server);
	/*
	 * Cork the client: its CLIENT_AUTH and its first DATA record leave
	 * in one segment, so the server's last handshake read finds both.
	 */
	CHECK(setsockopt(s.fds[0], SOL_TCP, TCP_CORK, &one, sizeof(one)) == 0);
	peer_init(&pc, s.client, s.fds[0]);
	peer_init(&ps, s.server, s.fds[1]);
	pc.first_data = "C-first";
	ps.first_data = "S-first!";
	handshake_both(&pc, &ps);
	CHECK(setsockopt(s.fds[0], SOL_TCP, TCP_CORK, &zero, sizeof(zero)) == 0);
	CHECK_EQ(pc.rc, OSSUARY_OK);
	CHECK_EQ(ps.rc, OSSUARY_OK);
	CHECK_EQ(pc.first_rc, 7);
	CHECK_EQ(ps.first_rc, 8);

	/* Server side: exactly the client's DATA record, 4 + 7 + 16 bytes. */
	n = peek_wait(s.fds[1], buf, sizeof(buf), 27);
	CHECK_EQ(n, 27);
	CHECK_EQ(buf[0], 0x02);
	CHECK_EQ(buf[1], 0x20);
	CHECK_EQ(buf[2], 0x00);
	CHECK_EQ(buf[3], 7 + 16);
	/* Client side: the server's DATA record, 4 + 8 + 16 bytes. */
	n = peek_wait(s.fds[0], buf, sizeof(buf), 28);
	CHECK_EQ(n, 28);
	CHECK_EQ(buf[0], 0x02);
	CHECK_EQ(buf[1], 0x20);
	CHECK_EQ(buf[2], 0x00);
	CHECK_EQ(buf[3], 8 + 16);

	CHECK_EQ(read_exact(s.server, s.fds[1], got, 7), 7);
	CHECK_MEM(got, "C-first", 7);
	CHECK_EQ(read_exact(s.client, s.fds[0], got, 8), 8);
	CHECK_MEM(got, "S-first!", 8);
	teardown(&s);
}

/* ---- bulk transfers ---- */

/*
 * 64 MiB each way at once, non-blocking, random chunks, SHA-256 compared.
 * In the emulated test VM (OSSUARY_VM set) 8 MiB: the same code paths,
 * without minutes of emulated crypto.
 */
TEST(bulk_64mib_each_way_nonblocking)
{
	struct bulk a, b;
	struct setup s;
	pthread_t t;
	int64_t t0;

	setup_pair(&s, AF_INET);
	set_nonblock(s.fds[0], 1);
	set_nonblock(s.fds[1], 1);
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.c = s.client;
	a.fd = s.fds[0];
	a.seed = 1;
	b.c = s.server;
	b.fd = s.fds[1];
	b.seed = 2;
	a.total = b.total = getenv("OSSUARY_VM") ? 8 * MiB : 64 * MiB;
	a.nonblocking = b.nonblocking = 1;
	t0 = now_ms();
	CHECK(pthread_create(&t, NULL, bulk_main, &b) == 0);
	bulk_main(&a);
	pthread_join(t, NULL);
	harness_note("2 x %zu MiB through the userspace layer in %lld ms, "
		     "%d + %d writes would block", a.total / MiB,
		     (long long)(now_ms() - t0), a.wouldblock_w, b.wouldblock_w);
	check_bulk(&a, &b);
	check_bulk(&b, &a);
	teardown(&s);
}

/* Blocking fds, one way, 16 MiB; each blocking write takes it all. */
TEST(bulk_blocking_one_way_ipv6)
{
	struct bulk w, r;
	struct setup s;
	pthread_t t;

	setup_pair(&s, ipv6_available() ? AF_INET6 : AF_INET);
	memset(&w, 0, sizeof(w));
	memset(&r, 0, sizeof(r));
	w.c = s.server;
	w.fd = s.fds[1];
	w.seed = 3;
	w.total = 16 * MiB;
	w.no_read = 1;
	r.c = s.client;
	r.fd = s.fds[0];
	r.no_write = 1;
	CHECK(pthread_create(&t, NULL, bulk_main, &w) == 0);
	bulk_main(&r);
	pthread_join(t, NULL);
	check_bulk(&w, &r);
	CHECK_EQ(w.wouldblock_w, 0);
	teardown(&s);
}

/* A non-blocking writer against a slow blocking reader. */
TEST(nonblocking_writer_slow_reader)
{
	struct bulk w, r;
	struct setup s;
	pthread_t t;
	int small = 64 * 1024;

	setup_pair(&s, AF_INET);
	/* Small fixed buffers (no autotuning): the socket fills for sure. */
	CHECK(setsockopt(s.fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)) == 0);
	CHECK(setsockopt(s.fds[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)) == 0);
	set_nonblock(s.fds[0], 1);
	memset(&w, 0, sizeof(w));
	memset(&r, 0, sizeof(r));
	w.c = s.client;
	w.fd = s.fds[0];
	w.seed = 4;
	w.total = 6 * MiB;
	w.nonblocking = 1;
	w.no_read = 1;
	r.c = s.server;
	r.fd = s.fds[1];
	r.no_write = 1;
	r.slow = 1;
	CHECK(pthread_create(&t, NULL, bulk_main, &r) == 0);
	bulk_main(&w);
	pthread_join(t, NULL);
	check_bulk(&w, &r);
	CHECK(w.wouldblock_w > 0);
	teardown(&s);
}

/*
 * A relay between two socket pairs that forwards 1 to maxchunk bytes at
 * a time, so every record reaches the library in pieces: headers split,
 * bodies split, records glued together.
 */
struct relay {
	int a, b;
	int maxchunk;
	uint64_t rng;
	int err;
	size_t moved;
};

static void *relay_main(void *arg)
{
	struct relay *r = arg;
	int open[2] = { 1, 1 };
	uint8_t buf[64];

	while (open[0] || open[1]) {
		struct pollfd p[2] = {
			{ .fd = r->a, .events = open[0] ? POLLIN : 0 },
			{ .fd = r->b, .events = open[1] ? POLLIN : 0 },
		};
		int n = poll(p, 2, 10000), i;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r->err = n ? errno : ETIMEDOUT;
			return NULL;
		}
		for (i = 0; i < 2; i++) {
			int src = i ? r->b : r->a, dst = i ? r->a : r->b;
			size_t want = 1 + splitmix(&r->rng) % (uint64_t)r->maxchunk;
			ssize_t k;

			if (!open[i] || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			k = recv(src, buf, want, MSG_DONTWAIT);
			if (k > 0) {
				if (send_all(dst, buf, (size_t)k) < 0) {
					r->err = errno;
					return NULL;
				}
				r->moved += (size_t)k;
			} else if (k == 0) {
				shutdown(dst, SHUT_WR);
				open[i] = 0;
			} else if (errno != EINTR && errno != EAGAIN) {
				r->err = errno;
				return NULL;
			}
		}
	}
	return NULL;
}

/* Everything through a relay that splits records at random places. */
TEST(handshake_and_data_in_small_pieces)
{
	OssuaryConnection *cl, *sv;
	struct peer pc, ps;
	struct relay rl;
	struct bulk a, b;
	pthread_t tr, tb;
	int p1[2], p2[2];
	uint8_t ssk[32], spk[32];

	ossuary_generate_auth_keypair(ssk, spk);
	pair_or_fail(AF_INET, p1);
	pair_or_fail(AF_INET, p2);
	memset(&rl, 0, sizeof(rl));
	rl.a = p1[1];
	rl.b = p2[0];
	rl.maxchunk = 7;
	rl.rng = 99;
	CHECK(pthread_create(&tr, NULL, relay_main, &rl) == 0);
	cl = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	sv = ossuary_create_connection(CONN_TYPE_AUTHENTICATED_SERVER, ssk);
	CHECK(cl && sv);
	ossuary_add_authorized_key(cl, spk);
	/* Mutual authentication: every handshake record at full size. */
	{
		uint8_t csk[32], cpk[32];

		ossuary_generate_auth_keypair(csk, cpk);
		CHECK_EQ(ossuary_set_secret_key(cl, csk), OSSUARY_OK);
		CHECK_EQ(ossuary_add_authorized_key(sv, cpk), OSSUARY_OK);
	}
	peer_init(&pc, cl, p1[0]);
	peer_init(&ps, sv, p2[1]);
	handshake_both(&pc, &ps);
	CHECK_EQ(pc.rc, OSSUARY_OK);
	CHECK_EQ(ps.rc, OSSUARY_OK);

	set_nonblock(p1[0], 1);
	set_nonblock(p2[1], 1);
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.c = cl;
	a.fd = p1[0];
	a.seed = 7;
	b.c = sv;
	b.fd = p2[1];
	b.seed = 8;
	a.total = b.total = 160 * 1024;
	a.nonblocking = b.nonblocking = 1;
	CHECK(pthread_create(&tb, NULL, bulk_main, &b) == 0);
	bulk_main(&a);
	pthread_join(tb, NULL);
	pthread_join(tr, NULL);
	harness_note("relay moved %zu bytes, at most %d at a time", rl.moved,
		     rl.maxchunk);
	CHECK_EQ(rl.err, 0);
	CHECK(rl.moved > 2 * a.total);
	check_bulk(&a, &b);
	check_bulk(&b, &a);
	ossuary_destroy_connection(&cl);
	ossuary_destroy_connection(&sv);
	close_pair(p1);
	close_pair(p2);
}

/* Any connected stream socket will do: a unix socketpair. */
TEST(unix_socketpair)
{
	struct setup s;
	struct peer pc, ps;

	memset(&s, 0, sizeof(s));
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s.fds) == 0);
	set_timeouts(s.fds[0], 30);
	set_timeouts(s.fds[1], 30);
	s.client = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	s.server = ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER, NULL);
	CHECK(s.client && s.server);
	peer_init(&pc, s.client, s.fds[0]);
	peer_init(&ps, s.server, s.fds[1]);
	handshake_both(&pc, &ps);
	CHECK_EQ(pc.rc, OSSUARY_OK);
	CHECK_EQ(ps.rc, OSSUARY_OK);
	ping_pong(&s);
	teardown(&s);
}

/* ---- end of stream ---- */

TEST(truncation_is_not_eof)
{
	struct setup s;
	char b[8];

	setup_pair(&s, AF_INET);
	CHECK_EQ(ossuary_write(s.server, s.fds[1], "abc", 3), 3);
	close(s.fds[1]); /* no DISCONNECT(0) */
	s.fds[1] = -1;
	CHECK_EQ(read_exact(s.client, s.fds[0], b, 3), 3);
	CHECK_MEM(b, "abc", 3);
	CHECK_EQ(ossuary_read(s.client, s.fds[0], b, sizeof(b)),
		 OSSUARY_ERR_TRUNCATED);
	CHECK_EQ(ossuary_read(s.client, s.fds[0], b, sizeof(b)),
		 OSSUARY_ERR_TRUNCATED);
	teardown(&s);
}

TEST(truncation_mid_record)
{
	static const uint8_t part[] = { 0x02, 0x20, 0x00, 0x20, 1, 2, 3, 4, 5 };
	struct setup s;
	char b[8];

	setup_pair(&s, AF_INET);
	CHECK_EQ(send_all(s.fds[1], part, sizeof(part)), 0);
	close(s.fds[1]);
	s.fds[1] = -1;
	CHECK_EQ(ossuary_read(s.client, s.fds[0], b, sizeof(b)),
		 OSSUARY_ERR_TRUNCATED);
	teardown(&s);
}

TEST(clean_shutdown_is_eof_and_half_close)
{
	struct setup s;
	char b[8];

	setup_pair(&s, AF_INET);
	CHECK_EQ(ossuary_write(s.server, s.fds[1], "abc", 3), 3);
	CHECK_EQ(ossuary_shutdown(s.server, s.fds[1]), OSSUARY_OK);
	CHECK_EQ(ossuary_shutdown(s.server, s.fds[1]), OSSUARY_OK);
	CHECK(ossuary_write(s.server, s.fds[1], "x", 1) < 0);
	CHECK_EQ(read_exact(s.client, s.fds[0], b, 3), 3);
	CHECK_MEM(b, "abc", 3);
	CHECK_EQ(ossuary_read(s.client, s.fds[0], b, sizeof(b)), 0);
	CHECK_EQ(ossuary_read(s.client, s.fds[0], b, sizeof(b)), 0);
	/* The other direction is still open. */
	CHECK_EQ(ossuary_write(s.client, s.fds[0], "xyz", 3), 3);
	CHECK_EQ(ossuary_shutdown(s.client, s.fds[0]), OSSUARY_OK);
	CHECK_EQ(read_exact(s.server, s.fds[1], b, 3), 3);
	CHECK_MEM(b, "xyz", 3);
	CHECK_EQ(ossuary_read(s.server, s.fds[1], b, sizeof(b)), 0);
	teardown(&s);
}

/* Drains the connection's events; 1 if ev was among them. */
static int saw_event(OssuaryConnection *c, int ev)
{
	int e, seen = 0;

	while ((e = ossuary_next_event(c)) > 0)
		if (e == ev)
			seen = 1;
	return seen;
}

/*
 * One flipped bit: nothing of the record is delivered; the userspace
 * layer recovers with a RESET exchange and a new handshake on the same
 * stream, and the plaintext was never on the wire.
 */
TEST(corrupted_record_resets_and_rehandshakes)
{
	struct peer pc, ps;
	struct setup s;
	struct pollfd p;
	uint8_t wire[64];
	char b[16];
	int sp[2];
	ssize_t n;

	setup_pair(&s, AF_INET);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
	/* The server seals onto a side channel; we forward it, damaged. */
	CHECK_EQ(ossuary_write(s.server, sp[0], "secret", 6), 6);
	n = peek_wait(sp[1], wire, sizeof(wire), 26);
	CHECK_EQ(n, 26);
	CHECK_EQ(recv(sp[1], wire, 26, 0), 26);
	CHECK(memmem(wire, 26, "secret", 6) == NULL);
	close(sp[0]);
	close(sp[1]);
	wire[10] ^= 0x01;
	CHECK_EQ(send_all(s.fds[1], wire, 26), 0);

	set_nonblock(s.fds[0], 1);
	p.fd = s.fds[0];
	p.events = POLLIN;
	CHECK(poll(&p, 1, 5000) == 1);
	/* Nothing delivered; the client sent RESET and waits for the answer. */
	n = ossuary_read(s.client, s.fds[0], b, sizeof(b));
	CHECK_EQ(n, OSSUARY_ERR_WOULD_BLOCK);
	CHECK_EQ(ossuary_write(s.client, s.fds[0], "x", 1), OSSUARY_ERR_RESET);
	set_nonblock(s.fds[0], 0);
	/* The server answers the RESET and drops back to the handshake. */
	CHECK_EQ(ossuary_read(s.server, s.fds[1], b, sizeof(b)), OSSUARY_ERR_RESET);
	CHECK_EQ(ossuary_mode(s.server), OSSUARY_MODE_HANDSHAKE);
	CHECK_EQ(ossuary_read(s.client, s.fds[0], b, sizeof(b)), OSSUARY_ERR_RESET);
	CHECK_EQ(ossuary_read(s.client, s.fds[0], b, sizeof(b)), OSSUARY_ERR_RESET);
	/* Reported: the client's reset followed a record that failed to open. */
	CHECK(saw_event(s.client, OSSUARY_EVENT_RESET_AFTER_FAILURE));
	CHECK(saw_event(s.server, OSSUARY_EVENT_RESET));
	/* A new handshake on the same stream, and the channel works again. */
	peer_init(&pc, s.client, s.fds[0]);
	peer_init(&ps, s.server, s.fds[1]);
	handshake_both(&pc, &ps);
	CHECK_EQ(pc.rc, OSSUARY_OK);
	CHECK_EQ(ps.rc, OSSUARY_OK);
	ping_pong(&s);
	teardown(&s);
}

/*
 * A peer's flood of key updates before any data: a reader that never
 * asks for events is not held up, and the events are all there when it
 * does ask, requests and not, in order while they came in runs.
 */
TEST(key_update_flood_then_data)
{
	struct setup s;
	char b[16];
	int e, n[2] = { 0, 0 }, first = 1, i;

	setup_pair(&s, AF_INET);
	for (i = 0; i < 200; i++) {
		CHECK_EQ(ossuary_key_update(s.client, i >= 100), OSSUARY_OK);
		CHECK_EQ(ossuary_write(s.client, s.fds[0], NULL, 0), 0);
	}
	CHECK_EQ(ossuary_write(s.client, s.fds[0], "after", 5), 5);
	CHECK_EQ(read_exact(s.server, s.fds[1], b, 5), 5);
	CHECK_MEM(b, "after", 5);
	while ((e = ossuary_next_event(s.server)) > 0) {
		if (first && e == OSSUARY_EVENT_HANDSHAKE_DONE)
			continue;
		first = 0;
		CHECK(e == OSSUARY_EVENT_KEY_UPDATE ||
		      e == OSSUARY_EVENT_KEY_UPDATE_REQUESTED);
		/* every KEY_UPDATE(0) comes before the first request */
		CHECK(e == OSSUARY_EVENT_KEY_UPDATE_REQUESTED || n[1] == 0);
		n[e == OSSUARY_EVENT_KEY_UPDATE_REQUESTED]++;
	}
	CHECK_EQ(n[0], 100);
	CHECK_EQ(n[1], 100);
	ping_pong(&s);
	teardown(&s);
}

/* An application-initiated RESET and KEY_UPDATE pushed with a zero write. */
TEST(key_update_and_reset_through_zero_write)
{
	struct peer pc, ps;
	struct setup s;
	char b[16];

	setup_pair(&s, AF_INET);
	CHECK_EQ(ossuary_key_update(s.client, 1), OSSUARY_OK);
	CHECK_EQ(ossuary_write(s.client, s.fds[0], NULL, 0), 0);
	CHECK_EQ(ossuary_write(s.client, s.fds[0], "after", 5), 5);
	CHECK_EQ(read_exact(s.server, s.fds[1], b, 5), 5);
	CHECK_MEM(b, "after", 5);
	/* The server's KEY_UPDATE(0) reply went out with its read. */
	CHECK_EQ(ossuary_write(s.server, s.fds[1], "reply", 5), 5);
	CHECK_EQ(read_exact(s.client, s.fds[0], b, 5), 5);
	CHECK_MEM(b, "reply", 5);
	CHECK(saw_event(s.server, OSSUARY_EVENT_KEY_UPDATE_REQUESTED));
	CHECK(saw_event(s.client, OSSUARY_EVENT_KEY_UPDATE));

	CHECK_EQ(ossuary_reset(s.server), OSSUARY_OK);
	CHECK_EQ(ossuary_write(s.server, s.fds[1], NULL, 0), 0);
	CHECK_EQ(ossuary_read(s.client, s.fds[0], b, sizeof(b)), OSSUARY_ERR_RESET);
	CHECK_EQ(ossuary_read(s.server, s.fds[1], b, sizeof(b)), OSSUARY_ERR_RESET);
	peer_init(&pc, s.client, s.fds[0]);
	peer_init(&ps, s.server, s.fds[1]);
	handshake_both(&pc, &ps);
	CHECK_EQ(pc.rc, OSSUARY_OK);
	CHECK_EQ(ps.rc, OSSUARY_OK);
	ping_pong(&s);
	teardown(&s);
}

/* ---- offload ---- */

TEST(offload_without_module)
{
	struct setup s;
	OssuaryConnection *fresh;
	int r;

	fresh = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	CHECK(fresh);
	setup_pair(&s, AF_INET);
	CHECK_EQ(ossuary_offload(NULL, s.fds[0], 0), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_offload(s.client, -1, 0), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_offload(s.client, s.fds[0], 0x80), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_offload(fresh, s.fds[0], 0), OSSUARY_ERR_STATE);

	r = ossuary_offload(s.client, s.fds[0], 0);
	if (r == OSSUARY_MODE_KERNEL) {
		harness_note("the ossuary module is loaded here; host checks skipped");
		ossuary_destroy_connection(&fresh);
		teardown(&s);
		return;
	}
	CHECK_EQ(r, OSSUARY_ERR_NO_KERNEL);
	CHECK_EQ(ossuary_mode(s.client), OSSUARY_MODE_USERSPACE);
	CHECK_EQ(ossuary_offload(s.client, s.fds[0], OSSUARY_OFFLOAD_FALLBACK),
		 OSSUARY_MODE_USERSPACE);
	CHECK_EQ(ossuary_offload(s.server, s.fds[1], OSSUARY_OFFLOAD_FALLBACK),
		 OSSUARY_MODE_USERSPACE);
	CHECK_EQ(ossuary_mode(s.client), OSSUARY_MODE_USERSPACE);
	CHECK_EQ(ossuary_mode(s.server), OSSUARY_MODE_USERSPACE);
	/* The socket is untouched: the userspace layer carries on. */
	ping_pong(&s);
	/* After userspace I/O the kernel would miss bytes: refused. */
	CHECK_EQ(ossuary_offload(s.client, s.fds[0], OSSUARY_OFFLOAD_FALLBACK),
		 OSSUARY_ERR_STATE);
	ossuary_destroy_connection(&fresh);
	teardown(&s);
}

/* A ULP failure other than "module absent" is its own error, never a fallback. */
TEST(offload_other_failure_is_not_fallback)
{
	struct setup s;
	int sv[2], r;

	setup_pair(&s, AF_INET);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	/* TCP_ULP on a unix socket fails, but not with ENOENT. */
	r = ossuary_offload(s.client, sv[0], OSSUARY_OFFLOAD_FALLBACK);
	if (r == OSSUARY_MODE_USERSPACE || r == OSSUARY_ERR_NO_KERNEL)
		harness_note("TCP_ULP on AF_UNIX answered like a missing module");
	else
		CHECK_EQ(r, OSSUARY_ERR_IO);
	close(sv[0]);
	close(sv[1]);
	teardown(&s);
}

static void check_info(const struct ossuary_crypto_info *i, socklen_t len)
{
	static const uint8_t zero[OSSUARY_SECRET_LEN];

	CHECK_EQ(len, sizeof(struct ossuary_crypto_info));
	CHECK_EQ(i->version, OSSUARY_VERSION_2);
	CHECK_EQ(i->cipher, OSSUARY_CIPHER_CHACHA20_POLY1305);
	CHECK_EQ(i->reserved, 0);
	CHECK_EQ(i->seq, 0);
	CHECK(memcmp(i->secret, zero, sizeof(zero)) != 0);
}

/* Both directions installed, crosswise equal between the two ends. */
TEST(offload_installs_both_directions)
{
	struct ossuary_crypto_info ctx, crx;
	struct setup s;
	char b[16];

	setup_pair(&s, AF_INET);
	fake_reset(1);
	CHECK_EQ(ossuary_offload(s.client, s.fds[0], 0), OSSUARY_MODE_KERNEL);
	CHECK_EQ(fake.ulp_calls, 1);
	CHECK(strcmp(fake.ulp_name, "ossuary") == 0);
	CHECK_EQ(fake.tx_calls, 1);
	CHECK_EQ(fake.rx_calls, 1);
	check_info(&fake.tx, fake.tx_len);
	check_info(&fake.rx, fake.rx_len);
	ctx = fake.tx;
	crx = fake.rx;
	CHECK(memcmp(ctx.secret, crx.secret, 32) != 0);
	fake_reset(1);
	CHECK_EQ(ossuary_offload(s.server, s.fds[1], OSSUARY_OFFLOAD_FALLBACK),
		 OSSUARY_MODE_KERNEL);
	check_info(&fake.tx, fake.tx_len);
	check_info(&fake.rx, fake.rx_len);
	CHECK_MEM(fake.tx.secret, crx.secret, 32);
	CHECK_MEM(fake.rx.secret, ctx.secret, 32);
	/* Offloaded is offloaded: no second install. */
	fake_reset(1);
	CHECK_EQ(ossuary_offload(s.client, s.fds[0], 0), OSSUARY_MODE_KERNEL);
	CHECK_EQ(fake.ulp_calls + fake.tx_calls + fake.rx_calls, 0);
	fake_reset(0);
	sodium_memzero(&ctx, sizeof(ctx));
	sodium_memzero(&crx, sizeof(crx));
	CHECK_EQ(ossuary_mode(s.client), OSSUARY_MODE_KERNEL);
	CHECK_EQ(ossuary_mode(s.server), OSSUARY_MODE_KERNEL);
	CHECK_EQ(ossuary_handshake_step(s.client, s.fds[0], NULL), OSSUARY_OK);
	/* Pass-through: (here, with no module) the bytes go as they are. */
	CHECK_EQ(ossuary_write(s.client, s.fds[0], "plain", 5), 5);
	CHECK_EQ(peek_wait(s.fds[1], (uint8_t *)b, sizeof(b), 5), 5);
	CHECK_MEM(b, "plain", 5);
	CHECK_EQ(read_exact(s.server, s.fds[1], b, 5), 5);
	CHECK_MEM(b, "plain", 5);
	CHECK_EQ(ossuary_shutdown(s.client, s.fds[0]), OSSUARY_OK);
	CHECK_EQ(ossuary_read(s.server, s.fds[1], b, sizeof(b)), 0);
	teardown(&s);
}

TEST(offload_failures_are_distinct)
{
	struct setup s;
	char b[4];

	setup_pair(&s, AF_INET);
	/* Another ULP already there: an error, never a silent fallback. */
	fake_reset(1);
	fake.ulp_errno = EEXIST;
	CHECK_EQ(ossuary_offload(s.client, s.fds[0], OSSUARY_OFFLOAD_FALLBACK),
		 OSSUARY_ERR_IO);
	CHECK_EQ(errno, EEXIST);
	CHECK_EQ(fake.tx_calls + fake.rx_calls, 0);
	CHECK_EQ(ossuary_mode(s.client), OSSUARY_MODE_USERSPACE);
	/* No TCP_ULP support at all counts as "no module". */
	fake_reset(1);
	fake.ulp_errno = ENOPROTOOPT;
	CHECK_EQ(ossuary_offload(s.client, s.fds[0], 0), OSSUARY_ERR_NO_KERNEL);
	CHECK_EQ(ossuary_offload(s.client, s.fds[0], OSSUARY_OFFLOAD_FALLBACK),
		 OSSUARY_MODE_USERSPACE);
	fake_reset(0);
	ping_pong(&s);

	/* The ULP attached but a key install failed: unusable, and says so. */
	fake_reset(1);
	fake.rx_errno = EINVAL;
	CHECK_EQ(ossuary_offload(s.server, s.fds[1], OSSUARY_OFFLOAD_FALLBACK),
		 OSSUARY_ERR_STATE); /* it already moved bytes in userspace */
	fake_reset(0);
	teardown(&s);

	setup_pair(&s, AF_INET);
	fake_reset(1);
	fake.rx_errno = EINVAL;
	CHECK_EQ(ossuary_offload(s.server, s.fds[1], OSSUARY_OFFLOAD_FALLBACK),
		 OSSUARY_ERR_IO);
	CHECK_EQ(errno, EINVAL);
	CHECK_EQ(fake.tx_calls, 1);
	fake_reset(0);
	CHECK_EQ(ossuary_mode(s.server), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_write(s.server, s.fds[1], "x", 1), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_read(s.server, s.fds[1], b, sizeof(b)), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_shutdown(s.server, s.fds[1]), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_offload(s.server, s.fds[1], 0), OSSUARY_ERR_STATE);
	teardown(&s);
}

/* ---- timeouts, garbage, bad input ---- */

TEST(handshake_timeout_then_resume)
{
	OssuaryConnection *cl, *sv;
	struct peer ps;
	pthread_t t;
	int fds[2], r;
	int64_t t0, dt;

	pair_or_fail(AF_INET, fds);
	cl = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	sv = ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER, NULL);
	CHECK(cl && sv);
	/* The server says nothing: the client gives up on time. */
	t0 = now_ms();
	r = ossuary_handshake_fd(cl, fds[0], 300);
	dt = now_ms() - t0;
	CHECK_EQ(r, OSSUARY_ERR_TIMEOUT);
	CHECK(dt >= 290 && dt < 3000);
	/* A server with no client times out too. */
	{
		OssuaryConnection *sv2 =
			ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER, NULL);
		int f2[2];

		pair_or_fail(AF_INET, f2);
		t0 = now_ms();
		CHECK_EQ(ossuary_handshake_fd(sv2, f2[1], 200), OSSUARY_ERR_TIMEOUT);
		CHECK(now_ms() - t0 >= 190);
		CHECK_EQ(ossuary_handshake_fd(sv2, f2[1], 0), OSSUARY_ERR_TIMEOUT);
		ossuary_destroy_connection(&sv2);
		close_pair(f2);
	}
	/* The server turns up late; the client resumes where it was. */
	peer_init(&ps, sv, fds[1]);
	CHECK(pthread_create(&t, NULL, peer_main, &ps) == 0);
	r = ossuary_handshake_fd(cl, fds[0], HS_TIMEOUT);
	pthread_join(t, NULL);
	CHECK_EQ(r, OSSUARY_OK);
	CHECK_EQ(ps.rc, OSSUARY_OK);
	{
		struct setup s = { { fds[0], fds[1] }, cl, sv };

		ping_pong(&s);
		teardown(&s);
	}
}

/* The peer writes bytes and then keeps the connection open. */
static int against(connection_type_t role, const void *junk, size_t len,
		   int close_after, int64_t *dt)
{
	OssuaryConnection *c = ossuary_create_connection(role, NULL);
	int fds[2], r;
	int64_t t0;

	if (!c || tcp_pair(AF_INET, fds) < 0)
		return -2000;
	if (send_all(fds[1], junk, len) < 0)
		return -2001;
	if (close_after) {
		close(fds[1]);
		fds[1] = -1;
	}
	t0 = now_ms();
	r = ossuary_handshake_fd(c, fds[0], 5000);
	*dt = now_ms() - t0;
	ossuary_destroy_connection(&c);
	close_pair(fds);
	return r;
}

TEST(handshake_against_garbage)
{
	static const char http[] = "GET / HTTP/1.1\r\nHost: example\r\n\r\n";
	static const uint8_t huge[] = { 0x02, 0x01, 0xff, 0xff };
	static const uint8_t wrong_type[] = { 0x02, 0x20, 0x00, 0x20 };
	static const uint8_t wrong_len[] = { 0x02, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5 };
	static const uint8_t short_hdr[] = { 0x02, 0x01 };
	uint8_t rnd[300];
	uint64_t x = 42;
	int64_t dt;
	int r, role;

	fill(&x, rnd, sizeof(rnd));
	rnd[0] = 0x7f;
	for (role = 0; role < 2; role++) {
		connection_type_t t = role ? CONN_TYPE_UNAUTHENTICATED_SERVER
					   : CONN_TYPE_CLIENT;

		r = against(t, http, sizeof(http) - 1, 0, &dt);
		CHECK(r < 0 && r > -1000);
		CHECK(r != OSSUARY_ERR_TIMEOUT && dt < 4000);
		r = against(t, rnd, sizeof(rnd), 0, &dt);
		CHECK(r < 0 && r > -1000);
		CHECK(r != OSSUARY_ERR_TIMEOUT && dt < 4000);
		/* An oversized length is refused from the header alone (as no
		 * Ossuary peer at all: it cannot start a first record). */
		r = against(t, huge, sizeof(huge), 0, &dt);
		CHECK(r == OSSUARY_ERR_PROTOCOL || r == OSSUARY_ERR_NOT_OSSUARY);
		CHECK(dt < 4000);
		r = against(t, wrong_type, sizeof(wrong_type), 0, &dt);
		CHECK(r < 0 && r > -1000);
		CHECK(r != OSSUARY_ERR_TIMEOUT && dt < 4000);
		r = against(t, wrong_len, sizeof(wrong_len), 0, &dt);
		CHECK(r < 0 && r > -1000);
		CHECK(r != OSSUARY_ERR_TIMEOUT && dt < 4000);
		/* Half a header, then the peer hangs up. */
		r = against(t, short_hdr, sizeof(short_hdr), 1, &dt);
		CHECK(r < 0 && r > -1000);
		CHECK(r != OSSUARY_ERR_TIMEOUT && dt < 4000);
	}
}

TEST(handshake_peer_hangs_up)
{
	OssuaryConnection *c = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	int fds[2], r;

	CHECK(c);
	pair_or_fail(AF_INET, fds);
	close(fds[1]);
	fds[1] = -1;
	r = ossuary_handshake_fd(c, fds[0], 5000);
	CHECK(r == OSSUARY_ERR_TRUNCATED || r == OSSUARY_ERR_IO);
	ossuary_destroy_connection(&c);
	close_pair(fds);
}

TEST(bad_input)
{
	OssuaryConnection *c = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	int fds[2];
	short ev = 123;
	char b[4];

	CHECK(c);
	pair_or_fail(AF_INET, fds);
	CHECK_EQ(ossuary_handshake_fd(NULL, fds[0], 0), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_handshake_fd(c, -1, 0), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_handshake_step(NULL, fds[0], &ev), OSSUARY_ERR_INVALID);
	CHECK_EQ(ev, 0);
	CHECK_EQ(ossuary_mode(NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_mode(c), OSSUARY_MODE_HANDSHAKE);
	CHECK_EQ(ossuary_read(NULL, fds[0], b, 4), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_write(NULL, fds[0], b, 4), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_write(c, fds[0], NULL, 4), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_read(c, fds[0], NULL, 4), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_read(c, -3, b, 4), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_shutdown(NULL, fds[0]), OSSUARY_ERR_INVALID);
	/* Before the handshake there is no channel. */
	CHECK_EQ(ossuary_read(c, fds[0], b, 4), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_write(c, fds[0], "x", 1), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_shutdown(c, fds[0]), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_offload(c, fds[0], 0), OSSUARY_ERR_STATE);
	/* A closed descriptor is a transport error, not a crash. */
	{
		OssuaryConnection *c2 = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
		int dead = dup(fds[0]);

		close(dead);
		CHECK_EQ(ossuary_handshake_fd(c2, dead, 100), OSSUARY_ERR_IO);
		CHECK_EQ(ossuary_handshake_step(c2, dead, &ev), OSSUARY_ERR_IO);
		ossuary_destroy_connection(&c2);
	}
	ossuary_destroy_connection(&c);
	close_pair(fds);
}

/* ---- signals: EINTR everywhere ---- */

static volatile sig_atomic_t ticks;

static void on_alarm(int sig)
{
	(void)sig;
	ticks++;
}

TEST(signals_interrupt_nothing)
{
	struct sigaction sa, old;
	struct itimerval it = { { 0, 2000 }, { 0, 2000 } }, off = { { 0, 0 }, { 0, 0 } };
	struct bulk w, r;
	struct setup s;
	pthread_t t;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm; /* no SA_RESTART: calls see EINTR */
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGALRM, &sa, &old) == 0);
	ticks = 0;
	setitimer(ITIMER_REAL, &it, NULL);
	setup_pair(&s, AF_INET);
	memset(&w, 0, sizeof(w));
	memset(&r, 0, sizeof(r));
	w.c = s.client;
	w.fd = s.fds[0];
	w.seed = 5;
	w.total = 8 * MiB;
	w.no_read = 1;
	r.c = s.server;
	r.fd = s.fds[1];
	r.no_write = 1;
	r.slow = 1;
	CHECK(pthread_create(&t, NULL, bulk_main, &w) == 0);
	bulk_main(&r);
	pthread_join(t, NULL);
	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old, NULL);
	harness_note("%d signals during the transfer", (int)ticks);
	check_bulk(&w, &r);
	CHECK(ticks > 0);
	teardown(&s);
}

/* ---- revision 2.1: resets and failed handshakes on a socket ---- */

static void recv_exact_raw(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = recv(fd, buf + got, len - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			harness_fail(__FILE__, __LINE__, "recv: %zd after %zu of %zu bytes",
				     n, got, len);
		got += (size_t)n;
	}
}

/* Moves what the core owes (handshake records, DISCONNECT) onto fd, raw. */
static size_t push_owed(OssuaryConnection *c, int fd, uint8_t *copy)
{
	uint8_t buf[512];
	size_t n = sizeof(buf);

	CHECK(ossuary_send_handshake(c, buf, &n) >= 0 || n == 0);
	if (copy)
		memcpy(copy, buf, n);
	CHECK_EQ(send_all(fd, buf, n), 0);
	return n;
}

/*
 * The server half of a handshake driven by hand over the raw socket, so
 * that a test can damage what crosses. damage_sh: flip the last bit of
 * the first SERVER_HELLO. Returns with CLIENT_AUTH read (in ca, 116 bytes,
 * not yet given to the server).
 */
static void manual_server(OssuaryConnection *sv, int fd, int damage_sh, uint8_t ca[116])
{
	uint8_t buf[256];
	size_t n;

	recv_exact_raw(fd, buf, 80);
	n = 80;
	CHECK_EQ(ossuary_recv_handshake(sv, buf, &n), OSSUARY_OK);
	n = sizeof(buf);
	CHECK_EQ(ossuary_send_handshake(sv, buf, &n), 192);
	if (damage_sh) {
		buf[191] ^= 0x01;
		CHECK_EQ(send_all(fd, buf, 192), 0);
		/* One-way: a cleartext RESET and at once a fresh CLIENT_HELLO. */
		recv_exact_raw(fd, buf, 85);
		CHECK_MEM(buf, "\x02\x11\x00\x01\x00", 5);
		n = 85;
		CHECK_EQ(ossuary_recv_handshake(sv, buf, &n), OSSUARY_OK);
		CHECK_EQ(n, 85);
		CHECK(saw_event(sv, OSSUARY_EVENT_RESET));
		n = sizeof(buf);
		CHECK_EQ(ossuary_send_handshake(sv, buf, &n), 192);	/* nothing for the RESET */
	}
	CHECK_EQ(send_all(fd, buf, 192), 0);
	recv_exact_raw(fd, ca, 116);
}

/* A SERVER_HELLO damaged in transit: the client restarts the handshake alone. */
TEST(handshake_reset_on_a_damaged_server_hello)
{
	struct setup s;
	struct peer pc;
	pthread_t t;
	uint8_t ca[116];
	size_t n = sizeof(ca);

	memset(&s, 0, sizeof(s));
	pair_or_fail(AF_INET, s.fds);
	s.client = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	s.server = ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER, NULL);
	CHECK(s.client && s.server);
	peer_init(&pc, s.client, s.fds[0]);
	CHECK(pthread_create(&t, NULL, peer_main, &pc) == 0);
	manual_server(s.server, s.fds[1], 1, ca);
	CHECK_EQ(ossuary_recv_handshake(s.server, ca, &n), OSSUARY_OK);
	pthread_join(t, NULL);
	CHECK_EQ(pc.rc, OSSUARY_OK);
	CHECK_EQ(ossuary_handshake_done(s.server), 1);
	CHECK(saw_event(s.client, OSSUARY_EVENT_RESET_AFTER_FAILURE));
	ping_pong(&s);
	teardown(&s);
}

/*
 * A CLIENT_AUTH the server cannot open: it answers a cleartext
 * DISCONNECT(1); the client's handshake had completed on its side, and
 * its first read reports the failed handshake.
 */
TEST(handshake_failed_after_client_auth)
{
	struct setup s;
	struct peer pc;
	pthread_t t;
	uint8_t ca[116], dc[8];
	size_t n = sizeof(ca);
	char b[8];

	memset(&s, 0, sizeof(s));
	pair_or_fail(AF_INET, s.fds);
	s.client = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	s.server = ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER, NULL);
	CHECK(s.client && s.server);
	peer_init(&pc, s.client, s.fds[0]);
	CHECK(pthread_create(&t, NULL, peer_main, &pc) == 0);
	manual_server(s.server, s.fds[1], 0, ca);
	pthread_join(t, NULL);
	CHECK_EQ(pc.rc, OSSUARY_OK);
	ca[50] ^= 0x04;
	CHECK_EQ(ossuary_recv_handshake(s.server, ca, &n), OSSUARY_ERR_DECRYPT);
	CHECK_EQ(push_owed(s.server, s.fds[1], dc), 5);
	CHECK_MEM(dc, "\x02\x10\x00\x01\x01", 5);
	CHECK_EQ(ossuary_read(s.client, s.fds[0], b, sizeof(b)), OSSUARY_ERR_HANDSHAKE_FAILED);
	CHECK_EQ(ossuary_read(s.client, s.fds[0], b, sizeof(b)), OSSUARY_ERR_HANDSHAKE_FAILED);
	CHECK_EQ(ossuary_mode(s.client), OSSUARY_ERR_HANDSHAKE_FAILED);
	CHECK(saw_event(s.client, OSSUARY_EVENT_HANDSHAKE_FAILED));
	CHECK_EQ(ossuary_peer_disconnect_reason(s.client), OSSUARY_DISCONNECT_ERROR);
	teardown(&s);
}

/* Seals "secret" for the client and sends it with one bit flipped. */
static void send_damaged(struct setup *s)
{
	uint8_t wire[64];
	size_t n = sizeof(wire);

	CHECK_EQ(ossuary_send_data(s->server, (const uint8_t *)"secret", 6, wire, &n), 6);
	CHECK_EQ(n, 26);
	wire[10] ^= 0x01;
	CHECK_EQ(send_all(s->fds[1], wire, n), 0);
}

/*
 * A reset started because a record failed to open, overtaken by the
 * peer's clean close: the reader gets the integrity error, never 0.
 */
TEST(failed_record_then_peer_shutdown_is_not_eof)
{
	struct setup s;
	struct pollfd p;
	char b[16];

	setup_pair(&s, AF_INET);
	send_damaged(&s);
	set_nonblock(s.fds[0], 1);
	p.fd = s.fds[0];
	p.events = POLLIN;
	CHECK(poll(&p, 1, 5000) == 1);
	CHECK_EQ(ossuary_read(s.client, s.fds[0], b, sizeof(b)), OSSUARY_ERR_WOULD_BLOCK);
	set_nonblock(s.fds[0], 0);
	/* The server closes before it reads the client's RESET. */
	CHECK_EQ(ossuary_shutdown(s.server, s.fds[1]), OSSUARY_OK);
	CHECK_EQ(ossuary_read(s.client, s.fds[0], b, sizeof(b)), OSSUARY_ERR_DECRYPT);
	CHECK_EQ(ossuary_read(s.client, s.fds[0], b, sizeof(b)), OSSUARY_ERR_DECRYPT);
	teardown(&s);
}

/* ---- ossuary-cat's exit statuses (userspace mode) against a test server ---- */

struct cat_run {
	pid_t pid;
	int fd;			/* our end of the connection */
	int in;			/* write end of ossuary-cat's standard input */
	char err[128];		/* its standard error, in a file */
};

static int cat_binary(char *path, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0)
		return 0;
	exe[n] = 0;
	*strrchr(exe, '/') = 0;
	snprintf(path, len, "%s/../bin/ossuary-cat", exe);
	return access(path, X_OK) == 0;
}

/* Starts ossuary-cat --userspace connecting to a listener of ours. */
static void cat_start(struct cat_run *r)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	char path[PATH_MAX + 32], port[16];
	struct pollfd p;
	int lfd, efd, in[2];

	if (!cat_binary(path, sizeof(path)))
		harness_skip("no ossuary-cat beside the tests (make tools)");
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(lfd >= 0);
	CHECK(bind(lfd, (struct sockaddr *)&a, sizeof(a)) == 0);
	CHECK(listen(lfd, 1) == 0);
	CHECK(getsockname(lfd, (struct sockaddr *)&a, &alen) == 0);
	snprintf(port, sizeof(port), "%u", ntohs(a.sin_port));
	snprintf(r->err, sizeof(r->err), "/tmp/ossuary-test-cat.XXXXXX");
	efd = mkstemp(r->err);
	CHECK(efd >= 0);
	CHECK(pipe2(in, O_CLOEXEC) == 0);
	r->pid = fork();
	CHECK(r->pid >= 0);
	if (r->pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(in[0], 0);
		dup2(null, 1);
		dup2(efd, 2);
		execl(path, "ossuary-cat", "--userspace", "--accept-new", "-w", "20",
		      "127.0.0.1", port, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(efd);
	r->in = in[1];
	p.fd = lfd;
	p.events = POLLIN;
	CHECK(poll(&p, 1, 20000) == 1);
	r->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	close(lfd);
	CHECK(r->fd >= 0);
	set_timeouts(r->fd, 30);
}

/* Its exit status (killed after 30 s); its standard error into msg. */
static int cat_finish(struct cat_run *r, char *msg, size_t len)
{
	int64_t end = now_ms() + 30000;
	int st = 0, fd;
	ssize_t n;

	while (waitpid(r->pid, &st, WNOHANG) == 0) {
		if (now_ms() > end) {
			kill(r->pid, SIGKILL);
			waitpid(r->pid, &st, 0);
			break;
		}
		usleep(5000);
	}
	close(r->in);
	if (r->fd >= 0)
		close(r->fd);
	fd = open(r->err, O_RDONLY);
	n = fd >= 0 ? read(fd, msg, len - 1) : -1;
	msg[n > 0 ? n : 0] = 0;
	while (n > 0 && msg[n - 1] == '\n')
		msg[--n] = 0;
	if (fd >= 0)
		close(fd);
	unlink(r->err);
	harness_note("ossuary-cat: %s", msg);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Our server's handshake with the ossuary-cat client. */
static OssuaryConnection *cat_server(struct cat_run *r)
{
	uint8_t sk[32], pk[32];
	OssuaryConnection *sv;

	CHECK_EQ(ossuary_generate_auth_keypair(sk, pk), OSSUARY_OK);
	sv = ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER, sk);
	CHECK(sv);
	CHECK_EQ(ossuary_handshake_fd(sv, r->fd, 20000), OSSUARY_OK);
	return sv;
}

enum cat_case {
	CAT_PEER_RESET,		/* we reset the session */
	CAT_DAMAGED_THEN_RESET,	/* a damaged record; we answer its RESET */
	CAT_DAMAGED_THEN_CLOSE,	/* a damaged record; we close cleanly instead */
	CAT_PEER_CANNOT_OPEN,	/* we send DISCONNECT(1) */
	CAT_HANDSHAKE_FAILED,	/* we cannot open its CLIENT_AUTH */
};

static int cat_case(enum cat_case k, char *msg, size_t len)
{
	struct cat_run r;
	OssuaryConnection *sv;
	struct setup s;
	char b[16];
	int rc;

	cat_start(&r);
	if (k == CAT_HANDSHAKE_FAILED) {
		uint8_t ca[116];
		size_t n = sizeof(ca);

		sv = ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER, NULL);
		CHECK(sv);
		manual_server(sv, r.fd, 0, ca);
		ca[50] ^= 0x04;
		CHECK_EQ(ossuary_recv_handshake(sv, ca, &n), OSSUARY_ERR_DECRYPT);
		CHECK_EQ(push_owed(sv, r.fd, NULL), 5);
	} else {
		sv = cat_server(&r);
	}
	switch (k) {
	case CAT_PEER_RESET:
		CHECK_EQ(ossuary_reset(sv), OSSUARY_OK);
		CHECK_EQ(ossuary_write(sv, r.fd, NULL, 0), 0);
		/* Its RESET (and a CLIENT_HELLO nobody will answer). */
		CHECK_EQ(ossuary_read(sv, r.fd, b, sizeof(b)), OSSUARY_ERR_RESET);
		break;
	case CAT_DAMAGED_THEN_RESET:
	case CAT_DAMAGED_THEN_CLOSE:
		s.server = sv;
		s.fds[1] = r.fd;
		send_damaged(&s);
		if (k == CAT_DAMAGED_THEN_RESET)
			CHECK_EQ(ossuary_read(sv, r.fd, b, sizeof(b)), OSSUARY_ERR_RESET);
		else
			CHECK_EQ(ossuary_shutdown(sv, r.fd), OSSUARY_OK);
		break;
	case CAT_PEER_CANNOT_OPEN:
		CHECK_EQ(ossuary_disconnect(sv, OSSUARY_DISCONNECT_ERROR), OSSUARY_OK);
		ossuary_write(sv, r.fd, NULL, 0);
		break;
	case CAT_HANDSHAKE_FAILED:
		break;
	}
	rc = cat_finish(&r, msg, len);
	ossuary_destroy_connection(&sv);
	return rc;
}

TEST(cat_peer_reset_exits_7)
{
	char msg[1024];

	CHECK_EQ(cat_case(CAT_PEER_RESET, msg, sizeof(msg)), 7);
	CHECK(strstr(msg, "reset the session") && strstr(msg, "dropped"));
}

TEST(cat_reset_after_our_failed_record_exits_9)
{
	char msg[1024];

	CHECK_EQ(cat_case(CAT_DAMAGED_THEN_RESET, msg, sizeof(msg)), 9);
	CHECK(strstr(msg, "failed to open"));
}

TEST(cat_failed_record_then_clean_close_exits_9)
{
	char msg[1024];

	CHECK_EQ(cat_case(CAT_DAMAGED_THEN_CLOSE, msg, sizeof(msg)), 9);
	CHECK(strstr(msg, "failed to open"));
}

TEST(cat_peer_could_not_open_our_records_exits_9)
{
	char msg[1024];

	CHECK_EQ(cat_case(CAT_PEER_CANNOT_OPEN, msg, sizeof(msg)), 9);
	CHECK(strstr(msg, "the peer could not open our records"));
}

TEST(cat_handshake_failed_exits_9)
{
	char msg[1024];

	CHECK_EQ(cat_case(CAT_HANDSHAKE_FAILED, msg, sizeof(msg)), 9);
	CHECK(strstr(msg, "could not open our CLIENT_AUTH"));
}
