/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Telling "not an Ossuary peer at all" from a damaged handshake: the
 * classifier on header prefixes, then the socket handshake against an
 * HTTP server, an HTTP client, an echo service and a peer that sends
 * one stray byte, each of which must fail at once with
 * OSSUARY_ERR_NOT_OSSUARY (not a protocol error, not a timeout).
 */
#define HARNESS_MAIN
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ossuary.h"
#include "socket_internal.h"
#include "util/sockpair.h"

/* ---- the classifier ---- */

struct prefix_case {
	int client;
	uint8_t b[4];
	int foreign_from;	/* first prefix length judged foreign; 0 never */
};

TEST(classifier)
{
	static const struct prefix_case cases[] = {
		/* what a server may send first */
		{ 1, { 0x02, 0x02, 0x00, 0xbc }, 0 },		/* SERVER_HELLO */
		{ 1, { 0x02, 0x10, 0x00, 0x01 }, 0 },		/* cleartext DISCONNECT */
		{ 1, { 0x02, 0x02, 0x00, 0xbd }, 4 },		/* wrong length */
		{ 1, { 0x02, 0x02, 0x01, 0xbc }, 3 },
		{ 1, { 0x02, 0x01, 0x00, 0x4c }, 2 },		/* our hello, echoed */
		{ 1, { 0x02, 0x20, 0x00, 0x20 }, 2 },		/* DATA before keys */
		{ 1, { 0x02, 0x10, 0x00, 0x11 }, 4 },		/* sealed DISCONNECT */
		{ 1, { 'H', 'T', 'T', 'P' }, 1 },
		{ 1, { 'S', 'S', 'H', '-' }, 1 },
		{ 1, { 0x03, 0x02, 0x00, 0xbc }, 1 },		/* another version */
		/* what a client may send first */
		{ 0, { 0x02, 0x01, 0x00, 0x4c }, 0 },		/* CLIENT_HELLO */
		{ 0, { 0x02, 0x11, 0x00, 0x01 }, 0 },		/* cleartext RESET */
		{ 0, { 0x02, 0x02, 0x00, 0xbc }, 2 },		/* a SERVER_HELLO to a server */
		{ 0, { 0x02, 0x01, 0x00, 0x4d }, 4 },
		{ 0, { 'G', 'E', 'T', ' ' }, 1 },
		{ 0, { 0x16, 0x03, 0x01, 0x02 }, 1 },		/* TLS ClientHello */
		{ 0, { 0x02, 0x77, 0x00, 0x01 }, 2 },		/* unknown type */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct prefix_case *c = &cases[i];

		for (size_t n = 1; n <= 4; n++) {
			int want = c->foreign_from && n >= (size_t)c->foreign_from;

			if (oss_peer_foreign(c->client, c->b, n) != want) {
				harness_note("case %zu, %zu bytes", i, n);
				CHECK_EQ(oss_peer_foreign(c->client, c->b, n), want);
			}
		}
	}
	CHECK_EQ(oss_peer_foreign(1, NULL, 0), 0);
}

/* ---- against foreign peers on loopback ---- */

enum { ROLE_HTTP_SERVER, ROLE_ECHO, ROLE_STRAY_BYTE, ROLE_HTTP_CLIENT, ROLE_SILENT_CLIENT };

struct foreign {
	int fd;
	int role;
	int done;
};

static void *foreign_main(void *arg)
{
	struct foreign *f = arg;
	static const char http_resp[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
	static const char http_req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
	uint8_t buf[512];
	ssize_t n;

	switch (f->role) {
	case ROLE_HTTP_SERVER:
		(void)recv(f->fd, buf, sizeof(buf), 0);
		(void)send_all(f->fd, http_resp, sizeof(http_resp) - 1);
		break;
	case ROLE_ECHO:
		while ((n = recv(f->fd, buf, sizeof(buf), 0)) > 0)
			if (send_all(f->fd, buf, (size_t)n) < 0)
				break;
		break;
	case ROLE_STRAY_BYTE:
		(void)send_all(f->fd, "x", 1);
		break;
	case ROLE_HTTP_CLIENT:
		(void)send_all(f->fd, http_req, sizeof(http_req) - 1);
		break;
	}
	/* then stay connected, silent, until the test side closes */
	while (f->role != ROLE_ECHO && recv(f->fd, buf, sizeof(buf), 0) > 0)
		;
	f->done = 1;
	return NULL;
}

/* Handshake as `type` against a foreign peer; returns the code and the time it took. */
static int against(connection_type_t type, int role, int64_t *ms)
{
	struct foreign f;
	OssuaryConnection *c;
	pthread_t t;
	int fds[2], r;
	int64_t t0;

	pair_or_fail(AF_INET, fds);
	memset(&f, 0, sizeof(f));
	f.fd = fds[1];
	f.role = role;
	CHECK(pthread_create(&t, NULL, foreign_main, &f) == 0);
	c = ossuary_create_connection(type, NULL);
	CHECK(c);
	t0 = now_ms();
	r = ossuary_handshake_fd(c, fds[0], 5000);
	*ms = now_ms() - t0;
	/* the failure is latched: asked again, the same answer */
	if (r == OSSUARY_ERR_NOT_OSSUARY) {
		CHECK_EQ(ossuary_handshake_fd(c, fds[0], 100), OSSUARY_ERR_NOT_OSSUARY);
		CHECK_EQ(ossuary_handshake_done(c), OSSUARY_ERR_NOT_OSSUARY);
		CHECK_EQ(ossuary_mode(c), OSSUARY_ERR_NOT_OSSUARY);
	}
	shutdown(fds[0], SHUT_RDWR);
	pthread_join(t, NULL);
	ossuary_destroy_connection(&c);
	close_pair(fds);
	return r;
}

TEST(client_meets_http_server)
{
	int64_t ms;

	CHECK_EQ(against(CONN_TYPE_CLIENT, ROLE_HTTP_SERVER, &ms), OSSUARY_ERR_NOT_OSSUARY);
	CHECK(ms < 2000);
}

TEST(client_meets_echo_service)
{
	int64_t ms;

	CHECK_EQ(against(CONN_TYPE_CLIENT, ROLE_ECHO, &ms), OSSUARY_ERR_NOT_OSSUARY);
	CHECK(ms < 2000);
}

TEST(client_meets_one_stray_byte)
{
	int64_t ms;

	CHECK_EQ(against(CONN_TYPE_CLIENT, ROLE_STRAY_BYTE, &ms), OSSUARY_ERR_NOT_OSSUARY);
	CHECK(ms < 2000);
}

TEST(server_meets_http_client)
{
	int64_t ms;

	CHECK_EQ(against(CONN_TYPE_UNAUTHENTICATED_SERVER, ROLE_HTTP_CLIENT, &ms),
		 OSSUARY_ERR_NOT_OSSUARY);
	CHECK(ms < 2000);
	CHECK_EQ(against(CONN_TYPE_AUTHENTICATED_SERVER, ROLE_HTTP_CLIENT, &ms),
		 OSSUARY_ERR_NOT_OSSUARY);
}

/* A peer that says nothing cannot be judged: the handshake's own timeout. */
TEST(silent_peer_times_out)
{
	struct foreign f;
	OssuaryConnection *c;
	pthread_t t;
	int fds[2];

	pair_or_fail(AF_INET, fds);
	memset(&f, 0, sizeof(f));
	f.fd = fds[1];
	f.role = ROLE_SILENT_CLIENT;
	CHECK(pthread_create(&t, NULL, foreign_main, &f) == 0);
	c = ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER, NULL);
	CHECK(c);
	CHECK_EQ(ossuary_handshake_fd(c, fds[0], 200), OSSUARY_ERR_TIMEOUT);
	shutdown(fds[0], SHUT_RDWR);
	pthread_join(t, NULL);
	ossuary_destroy_connection(&c);
	close_pair(fds);
}

TEST(strerror_names_it)
{
	CHECK(strstr(ossuary_strerror(OSSUARY_ERR_NOT_OSSUARY), "Ossuary") != NULL);
}
