/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API robustness: every public function of include/ossuary.h, fed NULL,
 * zero and oversize arguments, returns an error code and never crashes
 * (run it under SAN=1); a call made in the wrong stage returns
 * OSSUARY_ERR_STATE; a refused call changes nothing, so the same
 * connection still works afterwards.
 */
#define HARNESS_MAIN
#include "harness.h"

#include <dlfcn.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ossuary.h"

static uint8_t client_sk[32], client_pk[32], server_sk[32], server_pk[32];
static const uint8_t zero_key[32];

__attribute__((constructor)) static void keys(void)
{
	if (ossuary_generate_auth_keypair(client_sk, client_pk) ||
	    ossuary_generate_auth_keypair(server_sk, server_pk))
		abort();
}

struct wire {
	uint8_t buf[4096];
	size_t len;
};

/* One handshake turn for c: read what is in flight to it, emit what it owes. */
static void turn(OssuaryConnection *c, struct wire *in, struct wire *out)
{
	size_t n = in->len;

	if (n && ossuary_recv_handshake(c, in->buf, &n) >= 0) {
		memmove(in->buf, in->buf + n, in->len - n);
		in->len -= n;
	}
	n = sizeof(out->buf) - out->len;
	ossuary_send_handshake(c, out->buf + out->len, &n);
	out->len += n;
}

/* Runs the handshake as far as it goes (establishment or the client's pause). */
static void run_handshake(OssuaryConnection *cl, OssuaryConnection *sv)
{
	struct wire to_sv = { .len = 0 }, to_cl = { .len = 0 };

	for (int i = 0; i < 4; i++) {
		turn(cl, &to_cl, &to_sv);
		turn(sv, &to_sv, &to_cl);
	}
}

static void established(OssuaryConnection **cl, OssuaryConnection **sv)
{
	*cl = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	*sv = ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER, server_sk);
	CHECK(*cl && *sv);
	CHECK_EQ(ossuary_add_authorized_key(*cl, server_pk), OSSUARY_OK);
	run_handshake(*cl, *sv);
	CHECK_EQ(ossuary_handshake_done(*cl), 1);
	CHECK_EQ(ossuary_handshake_done(*sv), 1);
}

/* DATA goes from a to b and arrives intact: the connection still works. */
static void still_works(OssuaryConnection *a, OssuaryConnection *b)
{
	static const uint8_t msg[] = "still here";
	uint8_t wire[128], out[64];
	size_t wl = sizeof(wire), ol = sizeof(out);

	CHECK_EQ(ossuary_send_data(a, msg, sizeof(msg), wire, &wl), (ssize_t)sizeof(msg));
	CHECK_EQ(ossuary_recv_data(b, wire, &wl, out, &ol), (ssize_t)sizeof(msg));
	CHECK_MEM(out, msg, sizeof(msg));
}

TEST(strerror_total)
{
	static const int codes[] = { 0, 1, -1, -19, -20, -63, -64, -65, -66, 12345,
				     INT_MIN, INT_MAX };

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		const char *s = ossuary_strerror(codes[i]);

		CHECK(s != NULL && s[0] != '\0');
	}
}

TEST(create_destroy)
{
	OssuaryConnection *c;

	CHECK(ossuary_create_connection((connection_type_t)3, NULL) == NULL);
	CHECK(ossuary_create_connection((connection_type_t)-1, NULL) == NULL);
	CHECK(ossuary_create_connection((connection_type_t)0xff, server_sk) == NULL);
	/* An all-zero secret key is no key: refused rather than silently unused. */
	CHECK(ossuary_create_connection(CONN_TYPE_CLIENT, zero_key) == NULL);
	CHECK_EQ(ossuary_destroy_connection(NULL), OSSUARY_ERR_INVALID);
	c = NULL;
	CHECK_EQ(ossuary_destroy_connection(&c), OSSUARY_ERR_INVALID);
	c = ossuary_create_connection(CONN_TYPE_AUTHENTICATED_SERVER, server_sk);
	CHECK(c);
	CHECK_EQ(ossuary_destroy_connection(&c), OSSUARY_OK);
	CHECK(c == NULL);
	CHECK_EQ(ossuary_destroy_connection(&c), OSSUARY_ERR_INVALID);
}

TEST(keys_null_zero_oversize)
{
	uint8_t sk[32], pk[32], buf[64];
	uint8_t keys[2][32];
	OssuaryConnection *c = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);

	CHECK(c);
	CHECK_EQ(ossuary_generate_auth_keypair(NULL, pk), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_generate_auth_keypair(sk, NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_set_secret_key(NULL, client_sk), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_set_secret_key(c, NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_set_secret_key(c, zero_key), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_add_authorized_key(NULL, server_pk), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_add_authorized_key(c, NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_add_authorized_key(c, zero_key), OSSUARY_ERR_INVALID);
	memcpy(keys[0], server_pk, 32);
	memcpy(keys[1], client_pk, 32);
	CHECK_EQ(ossuary_add_authorized_keys(NULL, (const uint8_t (*)[32])keys, 2),
		 OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_add_authorized_keys(c, NULL, 2), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_add_authorized_keys(c, (const uint8_t (*)[32])keys, 0),
		 OSSUARY_ERR_INVALID);
	/* Oversize counts are refused before the array is read. */
	CHECK_EQ(ossuary_add_authorized_keys(c, (const uint8_t (*)[32])keys, SIZE_MAX),
		 OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_add_authorized_keys(c, (const uint8_t (*)[32])keys,
					     SIZE_MAX / 32 + 1), OSSUARY_ERR_INVALID);
	/* All or nothing: a zero key among good ones adds none of them. */
	memset(keys[1], 0, 32);
	CHECK_EQ(ossuary_add_authorized_keys(c, (const uint8_t (*)[32])keys, 2),
		 OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_remote_public_key(NULL, buf, 32), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_remote_public_key(c, NULL, 32), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_remote_public_key(c, buf, 0), OSSUARY_ERR_INVALID);
	CHECK(ossuary_remote_public_key(c, buf, 31) < 0);
	/* Before the peer's key is known. */
	CHECK_EQ(ossuary_remote_public_key(c, buf, sizeof(buf)), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_handshake_done(NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_next_event(NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_next_event(c), OSSUARY_EVENT_NONE);
	ossuary_destroy_connection(&c);
}

TEST(handshake_args)
{
	OssuaryConnection *cl = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	OssuaryConnection *sv = ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER,
							  NULL);
	uint8_t buf[256];
	size_t n;

	CHECK(cl && sv);
	n = sizeof(buf);
	CHECK_EQ(ossuary_send_handshake(NULL, buf, &n), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_send_handshake(cl, NULL, &n), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_send_handshake(cl, buf, NULL), OSSUARY_ERR_INVALID);
	n = 0;
	CHECK_EQ(ossuary_send_handshake(cl, buf, &n), OSSUARY_ERR_INVALID);
	n = SIZE_MAX;
	CHECK_EQ(ossuary_send_handshake(cl, buf, &n), OSSUARY_ERR_INVALID);
	/* Too small for CLIENT_HELLO (80 bytes): refused, nothing lost. */
	n = 79;
	CHECK_EQ(ossuary_send_handshake(cl, buf, &n), OSSUARY_ERR_BUFFER_TOO_SMALL);
	CHECK_EQ(n, 0);
	n = 1;
	CHECK_EQ(ossuary_recv_handshake(NULL, buf, &n), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_recv_handshake(sv, buf, NULL), OSSUARY_ERR_INVALID);
	n = 1;
	CHECK_EQ(ossuary_recv_handshake(sv, NULL, &n), OSSUARY_ERR_INVALID);
	n = SIZE_MAX;
	CHECK(ossuary_recv_handshake(sv, NULL, &n) < 0);
	/* Nothing available is not an error, just nothing done. */
	n = 0;
	CHECK_EQ(ossuary_recv_handshake(sv, buf, &n), OSSUARY_ERR_WOULD_BLOCK);
	CHECK_EQ(n, 0);
	CHECK_EQ(ossuary_approve_server(NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_refuse_server(NULL), OSSUARY_ERR_INVALID);

	/* After all that, the same two connections still shake hands. */
	run_handshake(cl, sv);
	CHECK_EQ(ossuary_handshake_done(cl), 1);
	CHECK_EQ(ossuary_handshake_done(sv), 1);
	still_works(cl, sv);
	still_works(sv, cl);
	ossuary_destroy_connection(&cl);
	ossuary_destroy_connection(&sv);
}

TEST(channel_args)
{
	OssuaryConnection *cl, *sv;
	uint8_t in[64] = { 0 }, out[256];
	size_t il, ol;

	established(&cl, &sv);
	ol = sizeof(out);
	CHECK_EQ(ossuary_send_data(NULL, in, 1, out, &ol), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_send_data(cl, in, 1, NULL, &ol), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_send_data(cl, in, 1, out, NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_send_data(cl, NULL, 1, out, &ol), OSSUARY_ERR_INVALID);
	ol = 0;
	CHECK_EQ(ossuary_send_data(cl, in, 1, out, &ol), OSSUARY_ERR_INVALID);
	ol = SIZE_MAX;
	CHECK_EQ(ossuary_send_data(cl, in, 1, out, &ol), OSSUARY_ERR_INVALID);
	ol = sizeof(out);
	CHECK_EQ(ossuary_send_data(cl, in, SIZE_MAX, out, &ol), OSSUARY_ERR_INVALID);
	/* Room for no record at all. */
	ol = 20;
	CHECK_EQ(ossuary_send_data(cl, in, 1, out, &ol), OSSUARY_ERR_BUFFER_TOO_SMALL);
	CHECK_EQ(ol, 0);

	il = 1;
	ol = sizeof(out);
	CHECK_EQ(ossuary_recv_data(NULL, in, &il, out, &ol), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_recv_data(sv, in, NULL, out, &ol), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_recv_data(sv, in, &il, NULL, &ol), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_recv_data(sv, in, &il, out, NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_recv_data(sv, NULL, &il, out, &ol), OSSUARY_ERR_INVALID);
	il = SIZE_MAX;
	CHECK_EQ(ossuary_recv_data(sv, in, &il, out, &ol), OSSUARY_ERR_INVALID);
	il = 1;
	ol = SIZE_MAX;
	CHECK_EQ(ossuary_recv_data(sv, in, &il, out, &ol), OSSUARY_ERR_INVALID);
	/* Nothing available, or half a header: wait, consume nothing. */
	il = 0;
	ol = sizeof(out);
	CHECK_EQ(ossuary_recv_data(sv, in, &il, out, &ol), OSSUARY_ERR_WOULD_BLOCK);
	il = 3;
	ol = sizeof(out);
	CHECK_EQ(ossuary_recv_data(sv, in, &il, out, &ol), OSSUARY_ERR_WOULD_BLOCK);
	CHECK_EQ(il, 0);

	CHECK_EQ(ossuary_flush(NULL, out, sizeof(out)), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_flush(cl, NULL, sizeof(out)), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_flush(cl, out, 0), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_flush(cl, out, SIZE_MAX), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_key_update(NULL, 0), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_key_update(cl, 2), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_key_update(cl, -1), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_disconnect(NULL, 0), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_disconnect(cl, -1), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_disconnect(cl, 256), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_recv_eof(NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_reset(NULL), OSSUARY_ERR_INVALID);
	/* Nothing refused above left a trace: data still flows both ways. */
	still_works(cl, sv);
	still_works(sv, cl);
	ossuary_destroy_connection(&cl);
	ossuary_destroy_connection(&sv);
}

TEST(record_too_long_refused_from_header)
{
	/* A DATA header claiming 16401 bytes: refused at once, no body needed. */
	uint8_t hdr[4] = { 0x02, 0x20, 0x40, 0x11 }, out[64];
	OssuaryConnection *cl, *sv;
	size_t il = sizeof(hdr), ol = sizeof(out);

	established(&cl, &sv);
	CHECK_EQ(ossuary_recv_data(sv, hdr, &il, out, &ol), OSSUARY_ERR_PROTOCOL);
	CHECK_EQ(ol, 0);
	ossuary_destroy_connection(&cl);
	ossuary_destroy_connection(&sv);
}

TEST(small_output_buffer_loses_nothing)
{
	static const uint8_t msg[100] = { 1, 2, 3 };
	uint8_t wire[256], out[128];
	OssuaryConnection *cl, *sv;
	size_t wl = sizeof(wire), il, ol;

	established(&cl, &sv);
	CHECK_EQ(ossuary_send_data(cl, msg, sizeof(msg), wire, &wl), (ssize_t)sizeof(msg));
	/* Room for less than the record's plaintext: refused, nothing consumed. */
	il = wl;
	ol = 99;
	CHECK_EQ(ossuary_recv_data(sv, wire, &il, out, &ol), OSSUARY_ERR_BUFFER_TOO_SMALL);
	CHECK_EQ(il, 0);
	CHECK_EQ(ol, 0);
	il = wl;
	ol = sizeof(out);
	CHECK_EQ(ossuary_recv_data(sv, wire, &il, out, &ol), (ssize_t)sizeof(msg));
	CHECK_EQ(il, wl);
	CHECK_MEM(out, msg, sizeof(msg));
	ossuary_destroy_connection(&cl);
	ossuary_destroy_connection(&sv);
}

/* ---- wrong stage ---- */

TEST(channel_calls_before_handshake)
{
	OssuaryConnection *c[3] = {
		ossuary_create_connection(CONN_TYPE_CLIENT, NULL),
		ossuary_create_connection(CONN_TYPE_AUTHENTICATED_SERVER, server_sk),
		ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER, NULL),
	};
	uint8_t in[32] = { 0 }, out[256], key[32];

	for (int i = 0; i < 3; i++) {
		size_t il = 0, ol = sizeof(out);

		CHECK(c[i]);
		CHECK_EQ(ossuary_send_data(c[i], in, 1, out, &ol), OSSUARY_ERR_STATE);
		ol = sizeof(out);
		CHECK_EQ(ossuary_recv_data(c[i], in, &il, out, &ol), OSSUARY_ERR_STATE);
		CHECK_EQ(ossuary_key_update(c[i], 0), OSSUARY_ERR_STATE);
		CHECK_EQ(ossuary_key_update(c[i], 1), OSSUARY_ERR_STATE);
		CHECK_EQ(ossuary_reset(c[i]), OSSUARY_ERR_STATE);
		CHECK_EQ(ossuary_approve_server(c[i]), OSSUARY_ERR_STATE);
		CHECK_EQ(ossuary_refuse_server(c[i]), OSSUARY_ERR_STATE);
		CHECK_EQ(ossuary_remote_public_key(c[i], key, sizeof(key)), OSSUARY_ERR_STATE);
		CHECK_EQ(ossuary_handshake_done(c[i]), 0);
	}
	/* The client mid-handshake (CLIENT_HELLO sent) is still not established. */
	{
		size_t n = sizeof(out), il = 0, ol = sizeof(out);

		CHECK(ossuary_send_handshake(c[0], out, &n) > 0);
		CHECK_EQ(ossuary_send_data(c[0], in, 1, out, &ol), OSSUARY_ERR_STATE);
		ol = sizeof(out);
		CHECK_EQ(ossuary_recv_data(c[0], in, &il, out, &ol), OSSUARY_ERR_STATE);
		CHECK_EQ(ossuary_key_update(c[0], 0), OSSUARY_ERR_STATE);
		CHECK_EQ(ossuary_reset(c[0]), OSSUARY_ERR_STATE);
		/* A long-term key changed mid-handshake would sign a foreign transcript. */
		CHECK_EQ(ossuary_set_secret_key(c[0], client_sk), OSSUARY_ERR_STATE);
	}
	for (int i = 0; i < 3; i++)
		ossuary_destroy_connection(&c[i]);
}

TEST(handshake_calls_after_handshake)
{
	OssuaryConnection *cl, *sv;
	uint8_t buf[128] = { 0 }, key[32];
	size_t n = 0;

	established(&cl, &sv);
	CHECK_EQ(ossuary_recv_handshake(cl, buf, &n), OSSUARY_ERR_STATE);
	n = 80;
	CHECK_EQ(ossuary_recv_handshake(sv, buf, &n), OSSUARY_ERR_STATE);
	CHECK_EQ(n, 0);
	CHECK_EQ(ossuary_approve_server(cl), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_refuse_server(cl), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_set_secret_key(cl, client_sk), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_set_secret_key(sv, server_sk), OSSUARY_ERR_STATE);
	/* The server's key is known to the client now; the client has none. */
	CHECK_EQ(ossuary_remote_public_key(cl, key, sizeof(key)), OSSUARY_OK);
	CHECK_MEM(key, server_pk, 32);
	CHECK_EQ(ossuary_remote_public_key(sv, key, sizeof(key)), OSSUARY_ERR_STATE);
	still_works(cl, sv);
	ossuary_destroy_connection(&cl);
	ossuary_destroy_connection(&sv);
}

TEST(calls_at_the_pause)
{
	OssuaryConnection *cl = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	OssuaryConnection *sv = ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER,
							  server_sk);
	uint8_t in[8] = { 0 }, out[256], key[32];
	size_t il = 0, ol = sizeof(out);

	CHECK(cl && sv);
	run_handshake(cl, sv);	/* empty list, signing server: trust on first use */
	CHECK_EQ(ossuary_handshake_done(cl), OSSUARY_ERR_UNTRUSTED_SERVER);
	CHECK_EQ(ossuary_remote_public_key(cl, key, sizeof(key)), OSSUARY_OK);
	CHECK_MEM(key, server_pk, 32);
	CHECK_EQ(ossuary_send_data(cl, in, 1, out, &ol), OSSUARY_ERR_STATE);
	ol = sizeof(out);
	CHECK_EQ(ossuary_recv_data(cl, in, &il, out, &ol), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_key_update(cl, 0), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_reset(cl), OSSUARY_ERR_STATE);
	/* The server cannot approve anything. */
	CHECK_EQ(ossuary_approve_server(sv), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_approve_server(cl), OSSUARY_OK);
	CHECK_EQ(ossuary_approve_server(cl), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_refuse_server(cl), OSSUARY_ERR_STATE);
	run_handshake(cl, sv);
	CHECK_EQ(ossuary_handshake_done(sv), 1);
	still_works(cl, sv);
	ossuary_destroy_connection(&cl);
	ossuary_destroy_connection(&sv);
}

TEST(calls_after_disconnect)
{
	OssuaryConnection *cl, *sv;
	uint8_t in[8] = { 0 }, out[256];
	size_t ol = sizeof(out);

	established(&cl, &sv);
	CHECK_EQ(ossuary_disconnect(cl, 0), OSSUARY_OK);
	/* Our direction is closed: nothing more may be sealed in it. */
	CHECK_EQ(ossuary_disconnect(cl, 0), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_send_data(cl, in, 1, out, &ol), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_key_update(cl, 1), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_reset(cl), OSSUARY_ERR_STATE);
	/* The other direction still works (half-close). */
	still_works(sv, cl);
	ossuary_destroy_connection(&cl);
	ossuary_destroy_connection(&sv);
}

TEST(reset_twice)
{
	OssuaryConnection *cl, *sv;

	established(&cl, &sv);
	CHECK_EQ(ossuary_reset(cl), OSSUARY_OK);
	/* A reset is under way: a second is not a new one, and nothing is sealed. */
	CHECK(ossuary_reset(cl) < 0);
	CHECK(ossuary_key_update(cl, 0) < 0);
	ossuary_destroy_connection(&cl);
	ossuary_destroy_connection(&sv);
}

/* ---- the socket API ---- */

TEST(socket_api_args)
{
	OssuaryConnection *c = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	uint8_t buf[16];
	short ev = 0;
	int sv[2];

	CHECK(c);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	CHECK_EQ(ossuary_handshake_fd(NULL, sv[0], 0), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_handshake_fd(c, -1, 0), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_handshake_step(NULL, sv[0], &ev), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_handshake_step(c, -1, &ev), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_offload(NULL, sv[0], 0), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_offload(c, -1, 0), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_offload(c, sv[0], 0x80), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_mode(NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_write(NULL, sv[0], buf, 1), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_write(c, -1, buf, 1), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_write(c, sv[0], NULL, 1), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_read(NULL, sv[0], buf, 1), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_read(c, -1, buf, 1), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_read(c, sv[0], NULL, 1), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_shutdown(NULL, sv[0]), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_shutdown(c, -1), OSSUARY_ERR_INVALID);

	/* Before the handshake: nothing to offload, read, write or shut. */
	CHECK_EQ(ossuary_mode(c), OSSUARY_MODE_HANDSHAKE);
	CHECK_EQ(ossuary_offload(c, sv[0], 0), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_offload(c, sv[0], OSSUARY_OFFLOAD_FALLBACK), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_write(c, sv[0], buf, 1), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_read(c, sv[0], buf, 1), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_shutdown(c, sv[0]), OSSUARY_ERR_STATE);
	/* None of that wrote a byte to the peer. */
	{
		ssize_t n = recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT);

		CHECK(n < 0);
	}
	close(sv[0]);
	close(sv[1]);
	ossuary_destroy_connection(&c);
}

TEST(key_file_api_args)
{
	uint8_t k[32];
	OssuaryConnection *c = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);

	CHECK(c);
	CHECK_EQ(ossuary_write_keypair(NULL, NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_write_keypair("", ""), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_load_secret_key(NULL, NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_load_secret_key("", k), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_load_public_key(NULL, k), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_load_public_key("x", NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_load_authorized_keys(NULL, NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_load_authorized_keys(c, ""), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_known_hosts_check(NULL, NULL, NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_known_hosts_check("x", "", k), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_known_hosts_add(NULL, NULL, NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_known_hosts_add("x", "h", zero_key), OSSUARY_ERR_INVALID);
	{
		/* A host name longer than any DNS name. */
		char host[300];

		memset(host, 'a', sizeof(host) - 1);
		host[sizeof(host) - 1] = '\0';
		CHECK_EQ(ossuary_known_hosts_check("x", host, k), OSSUARY_ERR_INVALID);
	}
	ossuary_destroy_connection(&c);
}

/* ---- the shared library exports the whole API ---- */

/*
 * The library is built with -fvisibility=hidden, so a public function
 * that lacks its export attribute links in the static library (and so
 * in every other test) but is missing from libossuary.so. This binary is
 * O/tests/NAME; the shared library is O/libossuary.so.
 */
TEST(shared_library_exports_every_function)
{
	static const char *const names[] = {
		"ossuary_strerror", "ossuary_create_connection", "ossuary_destroy_connection",
		"ossuary_set_secret_key", "ossuary_add_authorized_key",
		"ossuary_add_authorized_keys", "ossuary_remote_public_key",
		"ossuary_generate_auth_keypair", "ossuary_recv_handshake",
		"ossuary_send_handshake", "ossuary_handshake_done", "ossuary_approve_server",
		"ossuary_refuse_server", "ossuary_send_data", "ossuary_recv_data",
		"ossuary_flush", "ossuary_key_update", "ossuary_disconnect", "ossuary_recv_eof",
		"ossuary_reset", "ossuary_next_event", "ossuary_handshake_fd",
		"ossuary_handshake_step", "ossuary_offload", "ossuary_mode", "ossuary_write",
		"ossuary_read", "ossuary_shutdown", "ossuary_write_keypair",
		"ossuary_load_secret_key", "ossuary_load_public_key",
		"ossuary_load_authorized_keys", "ossuary_known_hosts_check",
		"ossuary_known_hosts_add", "ossuary_key_file_error",
	};
	char self[PATH_MAX], so[PATH_MAX + 32], missing[1024] = "";
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;
	void *h;

	CHECK(n > 0);
	self[n] = '\0';
	slash = strrchr(self, '/');
	CHECK(slash);
	*slash = '\0';
	snprintf(so, sizeof(so), "%s/../libossuary.so", self);
	if (access(so, R_OK) != 0) {
		/* `make tests` builds only the static library. */
		harness_note("SKIP shared_library_exports_every_function: %s not built", so);
		return;
	}
	{
		/* A shared library older than the static one is a leftover, not the code under test. */
		char a[PATH_MAX + 32];
		struct stat st_so, st_a;

		snprintf(a, sizeof(a), "%s/../libossuary.a", self);
		if (stat(so, &st_so) == 0 && stat(a, &st_a) == 0 &&
		    st_so.st_mtim.tv_sec < st_a.st_mtim.tv_sec) {
			harness_note("SKIP shared_library_exports_every_function: %s is stale "
				     "(make lib)", so);
			return;
		}
	}
	h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		harness_fail(__FILE__, __LINE__, "dlopen: %s", dlerror());
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!dlsym(h, names[i]) && strlen(missing) + strlen(names[i]) + 2 < sizeof(missing)) {
			strcat(missing, " ");
			strcat(missing, names[i]);
		}
	}
	dlclose(h);
	if (missing[0])
		harness_fail(__FILE__, __LINE__, "not exported by libossuary.so:%s", missing);
}
