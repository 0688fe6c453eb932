/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ossuary_offload() on an fd the kernel record layer can never take
 * (a unix socketpair, a file): with OSSUARY_OFFLOAD_FALLBACK the
 * connection stays in userspace and keeps working on that fd, as on a
 * host without the module; without the flag it is OSSUARY_ERR_NO_KERNEL
 * (errno says why), never a transport error.
 */
#define HARNESS_MAIN
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ossuary.h"
#include "util/sockpair.h"

/* An established pair over a unix socketpair. */
static void unix_setup(struct setup *s)
{
	struct peer pc, ps;

	memset(s, 0, sizeof(*s));
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s->fds) == 0);
	set_timeouts(s->fds[0], 30);
	set_timeouts(s->fds[1], 30);
	s->client = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	s->server = ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER, NULL);
	CHECK(s->client && s->server);
	peer_init(&pc, s->client, s->fds[0]);
	peer_init(&ps, s->server, s->fds[1]);
	handshake_both(&pc, &ps);
	CHECK_EQ(pc.rc, OSSUARY_OK);
	CHECK_EQ(ps.rc, OSSUARY_OK);
}

TEST(socketpair_falls_back_to_userspace)
{
	struct setup s;

	unix_setup(&s);
	CHECK_EQ(ossuary_offload(s.client, s.fds[0], OSSUARY_OFFLOAD_FALLBACK),
		 OSSUARY_MODE_USERSPACE);
	CHECK_EQ(ossuary_offload(s.server, s.fds[1], OSSUARY_OFFLOAD_FALLBACK),
		 OSSUARY_MODE_USERSPACE);
	CHECK_EQ(ossuary_mode(s.client), OSSUARY_MODE_USERSPACE);
	CHECK_EQ(ossuary_mode(s.server), OSSUARY_MODE_USERSPACE);
	ping_pong(&s);
	/* a clean end through the same fd */
	CHECK_EQ(ossuary_shutdown(s.client, s.fds[0]), OSSUARY_OK);
	{
		char b[4];

		CHECK_EQ(ossuary_read(s.server, s.fds[1], b, sizeof(b)), 0);
	}
	teardown(&s);
}

TEST(socketpair_without_fallback_is_no_kernel)
{
	struct setup s;

	unix_setup(&s);
	errno = 0;
	CHECK_EQ(ossuary_offload(s.client, s.fds[0], 0), OSSUARY_ERR_NO_KERNEL);
	CHECK_EQ(errno, EOPNOTSUPP);
	/* Nothing was touched: the userspace layer still works, and the
	 * flag still gives the fallback afterwards. */
	CHECK_EQ(ossuary_mode(s.client), OSSUARY_MODE_USERSPACE);
	CHECK_EQ(ossuary_offload(s.client, s.fds[0], OSSUARY_OFFLOAD_FALLBACK),
		 OSSUARY_MODE_USERSPACE);
	CHECK_EQ(ossuary_offload(s.server, s.fds[1], OSSUARY_OFFLOAD_FALLBACK),
		 OSSUARY_MODE_USERSPACE);
	ping_pong(&s);
	teardown(&s);
}

/* Not a socket at all: ENOTSOCK, and the same fallback. */
TEST(not_a_socket)
{
	struct setup s;
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	CHECK(fd >= 0);
	unix_setup(&s);
	errno = 0;
	CHECK_EQ(ossuary_offload(s.client, fd, 0), OSSUARY_ERR_NO_KERNEL);
	CHECK_EQ(errno, ENOTSOCK);
	CHECK_EQ(ossuary_offload(s.client, fd, OSSUARY_OFFLOAD_FALLBACK),
		 OSSUARY_MODE_USERSPACE);
	close(fd);
	CHECK_EQ(ossuary_offload(s.server, s.fds[1], OSSUARY_OFFLOAD_FALLBACK),
		 OSSUARY_MODE_USERSPACE);
	ping_pong(&s);
	teardown(&s);
}

/* A UDP socket is a socket, but not TCP: the same answer. */
TEST(udp_socket)
{
	struct setup s;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	unix_setup(&s);
	errno = 0;
	CHECK_EQ(ossuary_offload(s.client, fd, 0), OSSUARY_ERR_NO_KERNEL);
	CHECK_EQ(errno, EOPNOTSUPP);
	CHECK_EQ(ossuary_offload(s.client, fd, OSSUARY_OFFLOAD_FALLBACK),
		 OSSUARY_MODE_USERSPACE);
	close(fd);
	teardown(&s);
}

/* The state checks still come first: no fallback for a connection that is not ready. */
TEST(fallback_keeps_state_checks)
{
	OssuaryConnection *fresh = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	int sv[2];

	CHECK(fresh);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	CHECK_EQ(ossuary_offload(fresh, sv[0], OSSUARY_OFFLOAD_FALLBACK),
		 OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_offload(fresh, sv[0], 0x80), OSSUARY_ERR_INVALID);
	close(sv[0]);
	close(sv[1]);
	ossuary_destroy_connection(&fresh);
}
