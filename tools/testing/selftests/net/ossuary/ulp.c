// SPDX-License-Identifier: GPL-2.0
/*
 * Ossuary foundation tests: the "ossuary" TCP ULP is registered and
 * attaches where kTLS would, and fails where kTLS does.
 */

#include <sys/syscall.h>

#include "common.h"

#include "kselftest_harness.h"

/*
 * A skip whose reason starts with "optional:" is an environment that
 * lacks something besides ossuary; run.sh does not turn those into
 * failures. Every other skip means the module is missing.
 */
#define REQUIRE_OSSUARY() do {						\
	if (oss_ulp_listed() != 1)					\
		SKIP(return, "ossuary ULP not registered (module not loaded)"); \
} while (0)

TEST(available_ulp)
{
	int listed = oss_ulp_listed();

	ASSERT_NE(-1, listed) TH_LOG("cannot read tcp_available_ulp");
	if (!listed)
		SKIP(return, "ossuary ULP not registered (module not loaded)");
	ASSERT_EQ(1, listed);
}

FIXTURE(ulp)
{
	int client;
	int server;
};

FIXTURE_VARIANT(ulp)
{
	int family;
	bool mapped;
};

FIXTURE_VARIANT_ADD(ulp, ipv4)
{
	.family = AF_INET,
};

FIXTURE_VARIANT_ADD(ulp, ipv6)
{
	.family = AF_INET6,
};

/* An AF_INET6 socket carrying IPv4 (::ffff:127.0.0.1): IPv4 ops under v6 */
FIXTURE_VARIANT_ADD(ulp, ipv6_mapped)
{
	.family = AF_INET6,
	.mapped = true,
};

FIXTURE_SETUP(ulp)
{
	int ret;

	self->client = self->server = -1;
	REQUIRE_OSSUARY();
	ret = oss_tcp_pair_ex(variant->family, variant->mapped,
			      &self->client, &self->server);
	ASSERT_EQ(0, ret) TH_LOG("%s loopback pair: %s",
				 oss_family_name(variant->family), strerror(-ret));
}

FIXTURE_TEARDOWN(ulp)
{
	if (self->client >= 0)
		close(self->client);
	if (self->server >= 0)
		close(self->server);
}

static void ulp_name(int fd, char *name, size_t size)
{
	socklen_t len = size;

	memset(name, 0, size);
	if (getsockopt(fd, SOL_TCP, TCP_ULP, name, &len))
		snprintf(name, size, "<getsockopt: %s>", strerror(errno));
}

TEST_F(ulp, attach_client)
{
	char name[32];

	ASSERT_EQ(0, oss_attach(self->client));
	ulp_name(self->client, name, sizeof(name));
	EXPECT_STREQ(OSS_ULP_NAME, name);
}

TEST_F(ulp, attach_accepted)
{
	char name[32];

	ASSERT_EQ(0, oss_attach(self->server));
	ulp_name(self->server, name, sizeof(name));
	EXPECT_STREQ(OSS_ULP_NAME, name);
}

TEST_F(ulp, attach_both_ends)
{
	ASSERT_EQ(0, oss_attach(self->client));
	ASSERT_EQ(0, oss_attach(self->server));
}

TEST_F(ulp, attach_twice_eexist)
{
	char name[32];

	ASSERT_EQ(0, oss_attach(self->client));
	EXPECT_EQ(-EEXIST, oss_attach(self->client));
	/* the first attachment is intact */
	ulp_name(self->client, name, sizeof(name));
	EXPECT_STREQ(OSS_ULP_NAME, name);
}

TEST_F(ulp, attach_after_tls_eexist)
{
	static const char tls[] = "tls";

	if (setsockopt(self->client, SOL_TCP, TCP_ULP, tls, sizeof(tls))) {
		if (errno == ENOENT)
			SKIP(return, "optional: tls ULP not available");
		ASSERT_EQ(0, -errno) TH_LOG("attach tls: %s", strerror(errno));
	}
	EXPECT_EQ(-EEXIST, oss_attach(self->client));
}

TEST_F(ulp, tls_after_attach_fails)
{
	static const char tls[] = "tls";
	char name[32];
	int ret;

	ASSERT_EQ(0, oss_attach(self->client));
	ret = setsockopt(self->client, SOL_TCP, TCP_ULP, tls, sizeof(tls));
	EXPECT_EQ(-1, ret);
	/* EEXIST, or ENOENT when the tls module is absent */
	EXPECT_TRUE(errno == EEXIST || errno == ENOENT)
		TH_LOG("errno %d (%s)", errno, strerror(errno));
	ulp_name(self->client, name, sizeof(name));
	EXPECT_STREQ(OSS_ULP_NAME, name);
}

TEST_F(ulp, attach_listening_enotconn)
{
	struct sockaddr_storage ss = {};
	socklen_t len;
	int lfd;

	lfd = socket(variant->mapped ? AF_INET6 : variant->family,
		     SOCK_STREAM, 0);
	ASSERT_GE(lfd, 0);
	if (variant->family == AF_INET) {
		struct sockaddr_in *a = (void *)&ss;

		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (void *)&ss;

		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		len = sizeof(*a);
	}
	ASSERT_EQ(0, bind(lfd, (void *)&ss, len));
	ASSERT_EQ(0, listen(lfd, 1));
	EXPECT_EQ(-ENOTCONN, oss_attach(lfd));
	/* the listener still works and its children are plain TCP */
	close(lfd);
}

TEST_F(ulp, attach_unconnected_enotconn)
{
	int fd = socket(variant->mapped ? AF_INET6 : variant->family,
			SOCK_STREAM, 0);

	ASSERT_GE(fd, 0);
	EXPECT_EQ(-ENOTCONN, oss_attach(fd));
	/* and a failed attach leaves no ULP behind: a second try fails the same */
	EXPECT_EQ(-ENOTCONN, oss_attach(fd));
	close(fd);
}

TEST_F(ulp, attach_bound_unconnected_enotconn)
{
	struct sockaddr_storage ss = {};
	socklen_t len;
	int fd = socket(variant->mapped ? AF_INET6 : variant->family,
			SOCK_STREAM, 0);

	ASSERT_GE(fd, 0);
	if (variant->family == AF_INET) {
		struct sockaddr_in *a = (void *)&ss;

		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (void *)&ss;

		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		len = sizeof(*a);
	}
	ASSERT_EQ(0, bind(fd, (void *)&ss, len));
	EXPECT_EQ(-ENOTCONN, oss_attach(fd));
	close(fd);
}

/* A failed attach must not leave the socket unusable */
TEST_F(ulp, listening_child_attach_after_failure)
{
	struct sockaddr_storage ss = {};
	socklen_t len = sizeof(ss);
	int lfd, c, s;

	lfd = socket(variant->mapped ? AF_INET6 : variant->family,
		     SOCK_STREAM, 0);
	ASSERT_GE(lfd, 0);
	if (variant->family == AF_INET) {
		struct sockaddr_in *a = (void *)&ss;

		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (void *)&ss;

		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		len = sizeof(*a);
	}
	ASSERT_EQ(0, bind(lfd, (void *)&ss, len));
	ASSERT_EQ(0, listen(lfd, 1));
	ASSERT_EQ(-ENOTCONN, oss_attach(lfd));
	ASSERT_EQ(0, getsockname(lfd, (void *)&ss, &len));
	c = socket(ss.ss_family, SOCK_STREAM, 0);
	ASSERT_GE(c, 0);
	ASSERT_EQ(0, connect(c, (void *)&ss, len));
	s = accept(lfd, NULL, NULL);
	ASSERT_GE(s, 0);
	/* the accepted child has no ULP yet: attaching it works */
	EXPECT_EQ(0, oss_attach(s));
	close(s);
	close(c);
	close(lfd);
}

/*
 * CLOSE_WAIT: unlike kTLS, the attach works (a peer may reply and close
 * before our setsockopt; see close_wait_handover below).
 */
TEST_F(ulp, attach_after_peer_fin)
{
	char c;

	ASSERT_EQ(0, shutdown(self->server, SHUT_WR));
	ASSERT_EQ(0, recv(self->client, &c, 1, 0));
	EXPECT_EQ(0, oss_attach(self->client));
}

TEST_F(ulp, attach_then_close_with_pending_data)
{
	char buf[64] = "plain bytes before the attach";

	/* bytes queued before attach, unread, then everything closes */
	ASSERT_EQ((ssize_t)sizeof(buf), send(self->client, buf, sizeof(buf), 0));
	ASSERT_EQ(0, oss_attach(self->server));
	ASSERT_EQ(0, oss_attach(self->client));
	close(self->server);
	self->server = -1;
	close(self->client);
	self->client = -1;
}

TEST_F(ulp, many_attach_close_cycles)
{
	for (int i = 0; i < 32; i++) {
		int c, s;

		ASSERT_EQ(0, oss_tcp_pair_ex(variant->family, variant->mapped,
					     &c, &s));
		ASSERT_EQ(0, oss_attach(c)) TH_LOG("cycle %d", i);
		ASSERT_EQ(0, oss_attach(s)) TH_LOG("cycle %d", i);
		close(i & 1 ? c : s);
		close(i & 1 ? s : c);
	}
}

/*
 * The module cannot go away under a socket that uses it: unloading is
 * refused while an attached socket exists (with and without keys).
 */
TEST(unload_refused_while_attached)
{
	uint8_t secret[32];
	int c, s, ret, e;

	REQUIRE_OSSUARY();
	oss_secret(secret, 1);
	ASSERT_EQ(0, oss_tcp_pair(AF_INET, &c, &s));
	ASSERT_EQ(0, oss_attach(c));
	ret = syscall(SYS_delete_module, OSS_ULP_NAME, O_NONBLOCK);
	e = errno;
	EXPECT_EQ(-1, ret) TH_LOG("the module unloaded under an attached socket");
	EXPECT_TRUE(e == EBUSY || e == EWOULDBLOCK) TH_LOG("%s", strerror(e));
	ASSERT_EQ(0, oss_attach(s));
	ASSERT_EQ(0, oss_install(s, OSSUARY_TX, secret, 0));
	ASSERT_EQ(0, oss_install(s, OSSUARY_RX, secret, 0));
	close(c);
	ret = syscall(SYS_delete_module, OSS_ULP_NAME, O_NONBLOCK);
	e = errno;
	EXPECT_EQ(-1, ret) TH_LOG("the module unloaded under a socket with keys");
	EXPECT_TRUE(e == EBUSY || e == EWOULDBLOCK) TH_LOG("%s", strerror(e));
	EXPECT_EQ(1, oss_ulp_listed());
	close(s);
}

/* TCP state of fd (TCP_INFO), or -errno */
static int tcp_state(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, SOL_TCP, TCP_INFO, &ti, &len))
		return -errno;
	return ti.tcpi_state;
}

/*
 * The peer finishes, sends its last records, DISCONNECT(0) and FIN, all
 * before this side attaches (a short reply right after the handshake).
 * Once the FIN is in (CLOSE_WAIT), the attach and both installs still
 * work, every byte the peer sent is read, then a clean end of file; and
 * this side can still answer, which the peer reads in full.
 */
TEST(close_wait_handover)
{
	static const int families[] = { AF_INET, AF_INET6 };
	static uint8_t sent[40000], got[sizeof(sent) + 1];
	static const char reply[] = "the answer after the peer closed";
	char back[sizeof(reply) + 1];
	int i, e, st = -1, c, s;
	ssize_t n;

	REQUIRE_OSSUARY();
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, oss_tcp_pair(families[i], &c, &s));
		oss_set_timeouts(c, OSS_IO_TIMEOUT_S);
		oss_set_timeouts(s, OSS_IO_TIMEOUT_S);
		/* the peer (s): offloaded, sends, then closes its direction */
		ASSERT_EQ(0, oss_attach(s));
		ASSERT_EQ(0, oss_install(s, OSSUARY_TX, oss_secret_b(), 0));
		ASSERT_EQ(0, oss_install(s, OSSUARY_RX, oss_secret_a(), 0));
		oss_fill(sent, sizeof(sent), 7 + i);
		ASSERT_EQ((ssize_t)sizeof(sent), oss_write_all(s, sent, sizeof(sent)));
		ASSERT_EQ(0, shutdown(s, SHUT_WR));

		/* this side (c): plain TCP until the peer's FIN is in */
		for (e = 0; e < 500 && (st = tcp_state(c)) != TCP_CLOSE_WAIT; e++)
			oss_msleep(10);
		ASSERT_EQ(TCP_CLOSE_WAIT, st) TH_LOG("%s: no FIN after 5 s",
						     oss_family_name(families[i]));

		ASSERT_EQ(0, oss_attach(c));
		ASSERT_EQ(0, oss_install(c, OSSUARY_TX, oss_secret_a(), 0));
		ASSERT_EQ(0, oss_install(c, OSSUARY_RX, oss_secret_b(), 0));
		n = oss_read_full(c, got, sizeof(got), &e);
		ASSERT_EQ((ssize_t)sizeof(sent), n) TH_LOG("%s: stopped by %s",
			oss_family_name(families[i]), strerror(e));
		EXPECT_EQ(0, e) TH_LOG("not a clean end: %s", strerror(e));
		EXPECT_EQ(0, memcmp(sent, got, sizeof(sent)));
		/* the end of file stays */
		EXPECT_EQ(0, recv(c, got, 1, 0));

		/* our direction is still open: a reply and our clean close */
		ASSERT_EQ((ssize_t)sizeof(reply),
			  oss_write_all(c, reply, sizeof(reply)));
		ASSERT_EQ(0, shutdown(c, SHUT_WR));
		n = oss_read_full(s, back, sizeof(back), &e);
		EXPECT_EQ((ssize_t)sizeof(reply), n) TH_LOG("%s", strerror(e));
		EXPECT_EQ(0, e);
		EXPECT_EQ(0, memcmp(reply, back, sizeof(reply)));
		close(c);
		close(s);
	}
}

TEST_HARNESS_MAIN
