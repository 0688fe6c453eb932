/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Full handshakes in memory with fresh random keys: all three roles, both
 * trust-on-first-use answers, a man in the middle, forward secrecy, key
 * separation (reflection), confidentiality of the wire, and the public
 * API's handling of bad arguments.
 */
#define HARNESS_MAIN
/* harness.h's main() keeps locals across setjmp that GCC -O2 flags falsely. */
#include "harness.h"

#include <sodium.h>

#include "internal.h"
#include "util/endpoint.h"

struct keys {
	uint8_t server_sk[32], server_pk[32], client_sk[32], client_pk[32];
};

static void make_keys(struct keys *k)
{
	CHECK_EQ(ossuary_generate_auth_keypair(k->server_sk, k->server_pk), OSSUARY_OK);
	CHECK_EQ(ossuary_generate_auth_keypair(k->client_sk, k->client_pk), OSSUARY_OK);
	CHECK(memcmp(k->server_pk, k->client_pk, 32) != 0);
}

static void pair(struct ep *c, struct ep *s, connection_type_t stype,
		 const uint8_t *client_sk, const uint8_t *server_sk)
{
	ep_init(c, ossuary_create_connection(CONN_TYPE_CLIENT, client_sk));
	ep_init(s, ossuary_create_connection(stype, server_sk));
}

/* Both established, and application bytes go both ways. */
static void check_channel(struct ep *c, struct ep *s)
{
	CHECK_EQ(c->err, 0);
	CHECK_EQ(s->err, 0);
	CHECK_EQ(ossuary_handshake_done(c->c), 1);
	CHECK_EQ(ossuary_handshake_done(s->c), 1);
	ep_send(c, "ping", 4);
	ep_send(s, "pong!", 5);
	ep_shuttle(c, s);
	CHECK_EQ(s->delivered.len, 4);
	CHECK_MEM(s->delivered.p, "ping", 4);
	CHECK_EQ(c->delivered.len, 5);
	CHECK_MEM(c->delivered.p, "pong!", 5);
}

TEST(mutual_authentication)
{
	struct keys k;
	struct ep c, s;
	uint8_t seen[32];

	make_keys(&k);
	pair(&c, &s, CONN_TYPE_AUTHENTICATED_SERVER, k.client_sk, k.server_sk);
	CHECK_EQ(ossuary_add_authorized_key(c.c, k.server_pk), OSSUARY_OK);
	CHECK_EQ(ossuary_add_authorized_key(s.c, k.client_pk), OSSUARY_OK);
	CHECK_EQ(ossuary_remote_public_key(c.c, seen, 32), OSSUARY_ERR_STATE);
	ep_handshake(&c, &s);
	check_channel(&c, &s);
	CHECK_EQ(ossuary_remote_public_key(c.c, seen, 32), OSSUARY_OK);
	CHECK_MEM(seen, k.server_pk, 32);
	CHECK_EQ(ossuary_remote_public_key(s.c, seen, 32), OSSUARY_OK);
	CHECK_MEM(seen, k.client_pk, 32);
	ep_free(&c);
	ep_free(&s);
}

TEST(authenticated_server_refuses_unlisted_and_anonymous_clients)
{
	struct keys k, other;
	struct ep c, s;

	make_keys(&k);
	make_keys(&other);
	for (int anonymous = 0; anonymous < 2; anonymous++) {
		pair(&c, &s, CONN_TYPE_AUTHENTICATED_SERVER,
		     anonymous ? NULL : k.client_sk, k.server_sk);
		CHECK_EQ(ossuary_add_authorized_key(c.c, k.server_pk), OSSUARY_OK);
		CHECK_EQ(ossuary_add_authorized_key(s.c, other.client_pk), OSSUARY_OK);
		ep_handshake(&c, &s);
		CHECK_EQ(s.err, OSSUARY_ERR_AUTH);
		/* The refusal went out sealed, and the client reads it as such. */
		CHECK_EQ(c.err, OSSUARY_ERR_REFUSED);
		CHECK_EQ(s.delivered.len + c.delivered.len, 0);
		ep_free(&c);
		ep_free(&s);
	}
}

TEST(unauthenticated_server_accepts_anyone_and_shows_the_key)
{
	struct keys k;
	struct ep c, s;
	uint8_t seen[32];

	make_keys(&k);
	/* A client with a key: verified and exposed. */
	pair(&c, &s, CONN_TYPE_UNAUTHENTICATED_SERVER, k.client_sk, NULL);
	ep_handshake(&c, &s);
	check_channel(&c, &s);
	CHECK_EQ(ossuary_remote_public_key(s.c, seen, 32), OSSUARY_OK);
	CHECK_MEM(seen, k.client_pk, 32);
	CHECK_EQ(ossuary_remote_public_key(c.c, seen, 32), OSSUARY_ERR_STATE);
	ep_free(&c);
	ep_free(&s);
	/* Nobody has a key. */
	pair(&c, &s, CONN_TYPE_UNAUTHENTICATED_SERVER, NULL, NULL);
	ep_handshake(&c, &s);
	check_channel(&c, &s);
	CHECK_EQ(ossuary_remote_public_key(s.c, seen, 32), OSSUARY_ERR_STATE);
	ep_free(&c);
	ep_free(&s);
}

TEST(client_refuses_anonymous_server_when_it_lists_keys)
{
	struct keys k;
	struct ep c, s;

	make_keys(&k);
	pair(&c, &s, CONN_TYPE_UNAUTHENTICATED_SERVER, NULL, NULL);
	CHECK_EQ(ossuary_add_authorized_key(c.c, k.server_pk), OSSUARY_OK);
	ep_handshake(&c, &s);
	CHECK(!c.paused);
	CHECK_EQ(c.err, OSSUARY_ERR_AUTH);
	CHECK_EQ(s.err, OSSUARY_ERR_REFUSED);
	ep_free(&c);
	ep_free(&s);
}

TEST(trust_on_first_use_approve)
{
	struct keys k;
	struct ep c, s;
	uint8_t seen[32];

	make_keys(&k);
	pair(&c, &s, CONN_TYPE_UNAUTHENTICATED_SERVER, NULL, k.server_sk);
	CHECK_EQ(ossuary_approve_server(c.c), OSSUARY_ERR_STATE);
	ep_handshake(&c, &s);
	CHECK(c.paused);
	CHECK_EQ(ossuary_handshake_done(c.c), OSSUARY_ERR_UNTRUSTED_SERVER);
	CHECK_EQ(ossuary_remote_public_key(c.c, seen, 32), OSSUARY_OK);
	CHECK_MEM(seen, k.server_pk, 32);
	CHECK(!oss_key_listed(c.c, k.server_pk));
	CHECK_EQ(ossuary_approve_server(c.c), OSSUARY_OK);
	c.paused = false;
	CHECK(oss_key_listed(c.c, k.server_pk));
	ep_drain(&c);
	ep_shuttle(&c, &s);
	check_channel(&c, &s);
	ep_free(&c);
	ep_free(&s);
}

TEST(trust_on_first_use_refuse)
{
	struct keys k;
	struct ep c, s;

	make_keys(&k);
	pair(&c, &s, CONN_TYPE_UNAUTHENTICATED_SERVER, NULL, k.server_sk);
	ep_handshake(&c, &s);
	CHECK(c.paused);
	CHECK_EQ(ossuary_refuse_server(c.c), OSSUARY_OK);
	c.paused = false;
	ep_pump(&c);
	CHECK_EQ(c.err, OSSUARY_ERR_AUTH);
	/* A cleartext DISCONNECT(2): the server holds no application keys yet. */
	CHECK_EQ(c.out.len, 5);
	CHECK_MEM(c.out.p, "\x02\x10\x00\x01\x02", 5);
	ep_shuttle(&c, &s);
	CHECK_EQ(s.err, OSSUARY_ERR_REFUSED);
	CHECK(!oss_key_listed(c.c, k.server_pk));
	ep_free(&c);
	ep_free(&s);
}

/*
 * A man in the middle swaps both ephemeral keys for its own and relays
 * the server's genuine signature inside a SERVER_HELLO it seals itself.
 * The signature covers the server's transcript, not the client's: the
 * client must refuse, before any pause even if it would approve.
 */
TEST(man_in_the_middle_swapping_ephemeral_keys)
{
	struct keys k;
	struct ep c, s;
	uint8_t m_sk[32], m_pk[32], ch[80], sh_inner[128], th[32];
	uint8_t dh[32], prk[32], hs[32], s_hs[32], buf[512], sh[192];
	struct oss_dir d;

	make_keys(&k);
	for (int approving = 0; approving < 2; approving++) {
		pair(&c, &s, CONN_TYPE_UNAUTHENTICATED_SERVER, NULL, k.server_sk);
		if (!approving)
			CHECK_EQ(ossuary_add_authorized_key(c.c, k.server_pk), OSSUARY_OK);
		randombytes_buf(m_sk, 32);
		crypto_scalarmult_base(m_pk, m_sk);

		/* Client -> MITM: swap the client's ephemeral key for ours. */
		{
			uint8_t forged[80];
			size_t n = sizeof(forged);

			CHECK_EQ(ossuary_send_handshake(c.c, forged, &n), 80);
			memcpy(ch, forged + 4, 76);	/* what the client sent */
			memcpy(forged + 4, m_pk, 32);
			ep_feed(&s, forged, 80);
		}
		CHECK_EQ(s.out.len, 192);

		/* The MITM opens the server's SERVER_HELLO: it knows that dh. */
		CHECK_EQ(crypto_scalarmult(dh, m_sk, s.out.p + 4), 0);
		oss_hkdf_extract(prk, (const uint8_t *)"ossuary2", 8, dh, 32);
		memcpy(buf, ch, 76);
		memcpy(buf, m_pk, 32);
		memcpy(buf + 76, s.out.p + 4, 44);
		crypto_hash_sha256(th, buf, 120);
		oss_derive(hs, prk, "hs", th, 32);
		oss_derive(s_hs, hs, "s hs", NULL, 0);
		oss_dir_install(&d, s_hs, 0);
		CHECK_EQ(oss_open(&d, 0, s.out.p, s.out.p + 4, 44, s.out.p + 48, 144,
				  sh_inner), 0);

		/* ... and re-seals it for the client with its own ephemeral key. */
		CHECK_EQ(crypto_scalarmult(dh, m_sk, ch), 0);
		oss_hkdf_extract(prk, (const uint8_t *)"ossuary2", 8, dh, 32);
		memcpy(buf, ch, 76);
		memcpy(buf + 76, m_pk, 32);
		memcpy(buf + 108, s.out.p + 36, 12);
		crypto_hash_sha256(th, buf, 120);
		oss_derive(hs, prk, "hs", th, 32);
		oss_derive(s_hs, hs, "s hs", NULL, 0);
		oss_dir_install(&d, s_hs, 0);
		oss_seal(&d, 0, OSSUARY_RECORD_SERVER_HELLO, sh_inner, 128, buf + 76, 44, sh);
		ep_feed(&c, sh, sizeof(sh));
		CHECK(!c.paused);
		CHECK_EQ(c.err, OSSUARY_ERR_AUTH);
		CHECK_EQ(ossuary_handshake_done(c.c), OSSUARY_ERR_AUTH);
		ep_free(&c);
		ep_free(&s);
	}
}

/* Same long-term keys twice: unrelated traffic secrets. */
TEST(forward_secrecy)
{
	struct keys k;
	uint8_t tx[2][32], rx[2][32], stx[32], srx[32];
	uint64_t a, b;

	make_keys(&k);
	for (int i = 0; i < 2; i++) {
		struct ep c, s;

		pair(&c, &s, CONN_TYPE_AUTHENTICATED_SERVER, k.client_sk, k.server_sk);
		CHECK_EQ(ossuary_add_authorized_key(c.c, k.server_pk), OSSUARY_OK);
		CHECK_EQ(ossuary_add_authorized_key(s.c, k.client_pk), OSSUARY_OK);
		ep_handshake(&c, &s);
		check_channel(&c, &s);
		CHECK_EQ(ossuary__debug_traffic(c.c, tx[i], &a, rx[i], &b), OSSUARY_OK);
		CHECK_EQ(ossuary__debug_traffic(s.c, stx, &a, srx, &b), OSSUARY_OK);
		CHECK_MEM(stx, rx[i], 32);
		CHECK_MEM(srx, tx[i], 32);
		/* One secret per direction. */
		CHECK(memcmp(tx[i], rx[i], 32) != 0);
		ep_free(&c);
		ep_free(&s);
	}
	CHECK(memcmp(tx[0], tx[1], 32) != 0);
	CHECK(memcmp(rx[0], rx[1], 32) != 0);
	CHECK(memcmp(tx[0], rx[1], 32) != 0);
	CHECK(memcmp(rx[0], tx[1], 32) != 0);
}

/* A side's own records, reflected back to it, never open. */
TEST(reflection_fails)
{
	struct ep c, s;

	for (int mode = 0; mode < 2; mode++) {
		pair(&c, &s, CONN_TYPE_UNAUTHENTICATED_SERVER, NULL, NULL);
		ep_handshake(&c, &s);
		check_channel(&c, &s);
		ossuary__set_on_bad_record(c.c, mode ? OSS_BAD_RECORD_RESET
						     : OSS_BAD_RECORD_DISCONNECT);
		ep_send(&c, "secret", 6);
		{
			struct bytes mine = c.out;

			memset(&c.out, 0, sizeof(c.out));
			ep_feed(&c, mine.p, mine.len);
			bytes_free(&mine);
		}
		CHECK_EQ(c.delivered.len, 5);	/* only the earlier "pong!" */
		if (mode)
			CHECK(c.err == 0 && c.c->reset_sent);
		else
			CHECK_EQ(c.err, OSSUARY_ERR_DECRYPT);
		ep_free(&c);
		ep_free(&s);
	}
	/* A SERVER_HELLO sent back to its server is simply out of place. */
	pair(&c, &s, CONN_TYPE_UNAUTHENTICATED_SERVER, NULL, NULL);
	{
		uint8_t ch[80];
		size_t n = sizeof(ch);

		CHECK_EQ(ossuary_send_handshake(c.c, ch, &n), 80);
		ep_feed(&s, ch, n);
		CHECK_EQ(s.out.len, 192);
		ep_feed(&s, s.out.p, s.out.len);
		CHECK_EQ(s.err, OSSUARY_ERR_PROTOCOL);
	}
	ep_free(&c);
	ep_free(&s);
}

/* Application bytes never appear on the wire; big writes split and rejoin. */
TEST(confidentiality_and_large_transfer)
{
	struct ep c, s;
	size_t n = 200000;
	uint8_t *msg = malloc(n);

	CHECK(msg);
	for (size_t i = 0; i < n; i++)
		msg[i] = (uint8_t)("ATTACK AT DAWN "[i % 15]);
	pair(&c, &s, CONN_TYPE_UNAUTHENTICATED_SERVER, NULL, NULL);
	ep_handshake(&c, &s);
	ep_send(&c, msg, n);
	CHECK_EQ(c.err, 0);
	CHECK(c.out.len >= n + 20 * (n / OSSUARY_MAX_PLAINTEXT + 1));
	CHECK(memmem(c.out.p, c.out.len, "ATTACK AT DAWN", 14) == NULL);
	ep_shuttle(&c, &s);
	CHECK_EQ(s.err, 0);
	CHECK_EQ(s.delivered.len, n);
	CHECK_MEM(s.delivered.p, msg, n);
	free(msg);
	ep_free(&c);
	ep_free(&s);
}

/* Too-small buffers change nothing; partial records wait for the rest. */
TEST(buffers_and_partial_records)
{
	struct ep c, s;
	uint8_t rec[64], out[64];
	size_t n, room, in_len;

	pair(&c, &s, CONN_TYPE_UNAUTHENTICATED_SERVER, NULL, NULL);
	ep_handshake(&c, &s);
	room = 20;
	CHECK_EQ(ossuary_send_data(c.c, (const uint8_t *)"hello", 5, rec, &room),
		 OSSUARY_ERR_BUFFER_TOO_SMALL);
	CHECK_EQ(room, 0);
	room = 21;	/* room for one byte of it */
	CHECK_EQ(ossuary_send_data(c.c, (const uint8_t *)"hello", 5, rec, &room), 1);
	CHECK_EQ(room, 21);
	n = sizeof(rec) - 21;
	CHECK_EQ(ossuary_send_data(c.c, (const uint8_t *)"ello", 4, rec + 21, &n), 4);
	n += 21;
	CHECK_EQ(n, 45);
	/* Partial: nothing consumed. */
	in_len = 20;
	room = sizeof(out);
	CHECK_EQ(ossuary_recv_data(s.c, rec, &in_len, out, &room), OSSUARY_ERR_WOULD_BLOCK);
	CHECK_EQ(in_len, 0);
	CHECK_EQ(room, 0);
	/* Too small for the first record's plaintext: nothing changes. */
	in_len = n;
	room = 0;
	CHECK_EQ(ossuary_recv_data(s.c, rec, &in_len, out, &room),
		 OSSUARY_ERR_BUFFER_TOO_SMALL);
	CHECK_EQ(in_len, 0);
	in_len = n;
	room = 1;
	CHECK_EQ(ossuary_recv_data(s.c, rec, &in_len, out, &room), 1);
	CHECK_EQ(in_len, 21);
	CHECK_EQ(out[0], 'h');
	in_len = n - 21;
	room = 3;
	CHECK_EQ(ossuary_recv_data(s.c, rec + 21, &in_len, out, &room),
		 OSSUARY_ERR_BUFFER_TOO_SMALL);
	CHECK_EQ(in_len, 0);
	in_len = n - 21;
	room = 4;
	CHECK_EQ(ossuary_recv_data(s.c, rec + 21, &in_len, out, &room), 4);
	CHECK_MEM(out, "ello", 4);
	ep_free(&c);
	ep_free(&s);
}

/* A body over 16400 is refused from its header alone. */
TEST(oversize_length_refused_from_header)
{
	struct ep c, s;
	uint8_t hdr[4] = { 2, 0x20, 0x40, 0x11 };
	uint8_t out[16];
	size_t in_len = 4, room = sizeof(out);

	pair(&c, &s, CONN_TYPE_UNAUTHENTICATED_SERVER, NULL, NULL);
	ep_handshake(&c, &s);
	CHECK_EQ(ossuary_recv_data(s.c, hdr, &in_len, out, &room), OSSUARY_ERR_PROTOCOL);
	ep_free(&c);
	ep_free(&s);
}

TEST(bad_arguments)
{
	OssuaryConnection *c = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	OssuaryConnection *null = NULL;
	uint8_t zero[32] = { 0 }, key[32], buf[64];
	size_t n = sizeof(buf), z = 0;

	CHECK(c);
	CHECK(ossuary_create_connection((connection_type_t)7, NULL) == NULL);
	CHECK(ossuary_create_connection(CONN_TYPE_CLIENT, zero) == NULL);
	CHECK_EQ(ossuary_destroy_connection(NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_destroy_connection(&null), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_set_secret_key(NULL, key), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_set_secret_key(c, NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_set_secret_key(c, zero), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_add_authorized_key(c, zero), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_add_authorized_key(NULL, key), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_add_authorized_key(c, NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_add_authorized_keys(c, NULL, 1), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_add_authorized_keys(c, (const uint8_t (*)[32])key, 0),
		 OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_add_authorized_keys(c, (const uint8_t (*)[32])zero, 1),
		 OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_remote_public_key(c, NULL, 32), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_remote_public_key(c, key, 31), OSSUARY_ERR_BUFFER_TOO_SMALL);
	CHECK_EQ(ossuary_remote_public_key(NULL, key, 32), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_generate_auth_keypair(NULL, key), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_generate_auth_keypair(key, NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_recv_handshake(NULL, buf, &n), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_recv_handshake(c, NULL, &n), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_recv_handshake(c, buf, NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_send_handshake(NULL, buf, &n), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_send_handshake(c, NULL, &n), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_send_handshake(c, buf, NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_send_handshake(c, buf, &z), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_handshake_done(NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_approve_server(NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_refuse_server(NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_refuse_server(c), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_send_data(NULL, buf, 1, buf, &n), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_send_data(c, NULL, 1, buf, &n), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_send_data(c, buf, 1, NULL, &n), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_send_data(c, buf, 1, buf, NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_send_data(c, buf, (size_t)-1, buf, &n), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_send_data(c, buf, 1, buf, &n), OSSUARY_ERR_STATE);
	n = sizeof(buf);
	CHECK_EQ(ossuary_recv_data(NULL, buf, &n, buf, &n), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_recv_data(c, NULL, &n, buf, &n), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_recv_data(c, buf, NULL, buf, &n), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_recv_data(c, buf, &n, NULL, &n), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_recv_data(c, buf, &n, buf, NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_recv_data(c, buf, &n, buf, &n), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_flush(NULL, buf, 1), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_flush(c, NULL, 1), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_flush(c, buf, 0), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_flush(c, buf, (size_t)-1), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_key_update(NULL, 0), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_key_update(c, 2), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_key_update(c, 1), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_disconnect(NULL, 0), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_disconnect(c, -1), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_disconnect(c, 4), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_recv_eof(NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_reset(NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_reset(c), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_next_event(NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_next_event(c), OSSUARY_EVENT_NONE);
	CHECK(ossuary_strerror(12345) != NULL);
	CHECK(ossuary_strerror(OSSUARY_ERR_RESET) != NULL);
	/* Nothing above disturbed the connection: it still handshakes. */
	n = sizeof(buf);
	CHECK_EQ(ossuary_send_handshake(c, buf, &n), OSSUARY_ERR_BUFFER_TOO_SMALL);
	CHECK_EQ(n, 0);
	{
		uint8_t big[128];

		n = sizeof(big);
		CHECK_EQ(ossuary_send_handshake(c, big, &n), 80);
		CHECK_EQ(big[1], OSSUARY_RECORD_CLIENT_HELLO);
	}
	CHECK_EQ(ossuary_destroy_connection(&c), OSSUARY_OK);
	CHECK(c == NULL);
}

/*
 * Random bytes behind plausible headers, fed to every kind of receiver
 * whole and in random pieces: nothing crashes, nothing is delivered
 * out of thin air, and every call returns a documented code.
 */
TEST(random_input_never_crashes)
{
	static const uint8_t types[] = { 1, 2, 3, 0x10, 0x11, 0x20, 0x21, 0x7f };
	static uint8_t junk[2048], out[OSSUARY_MAX_PLAINTEXT];
	uint8_t secret[32];

	randombytes_buf(secret, sizeof(secret));
	for (int round = 0; round < 600; round++) {
		int kind = round % 4;
		OssuaryConnection *c = ossuary_create_connection(
			kind == 1 ? CONN_TYPE_AUTHENTICATED_SERVER
				  : kind == 2 ? CONN_TYPE_UNAUTHENTICATED_SERVER
					      : CONN_TYPE_CLIENT, NULL);
		size_t len = 1 + randombytes_uniform(sizeof(junk)), pos = 0;

		CHECK(c);
		if (kind == 3)
			CHECK_EQ(ossuary__set_established(c, secret, 0, secret, 0, 0, false),
				 OSSUARY_OK);
		randombytes_buf(junk, len);
		/* Mostly well-formed headers, so the parsers go deeper. */
		for (size_t off = 0; off + 4 <= len; off += 4 + junk[off + 3]) {
			if (randombytes_uniform(8) == 0)
				break;
			junk[off] = 2;
			junk[off + 1] = types[randombytes_uniform(sizeof(types))];
			junk[off + 2] = 0;
		}
		while (pos < len) {
			size_t n = 1 + randombytes_uniform((uint32_t)(len - pos));
			size_t room = sizeof(out);
			int hd = ossuary_handshake_done(c);
			ssize_t r;

			if (hd == 1)
				r = ossuary_recv_data(c, junk + pos, &n, out, &room);
			else if (hd == OSSUARY_ERR_UNTRUSTED_SERVER)
				r = ossuary_refuse_server(c);
			else
				r = ossuary_recv_handshake(c, junk + pos, &n);
			CHECK(n <= len - pos);
			if (r == OSSUARY_ERR_WOULD_BLOCK && n == 0)
				break;
			CHECK(r >= 0 || strcmp(ossuary_strerror((int)r), "unknown error") != 0);
			if (r < 0 && r != OSSUARY_ERR_RESET && r != OSSUARY_ERR_EOF &&
			    r != OSSUARY_ERR_WOULD_BLOCK)
				break;
			pos += n;
			while (ossuary_flush(c, out, sizeof(out)) > 0)
				;
		}
		ossuary_recv_eof(c);
		while (ossuary_flush(c, out, sizeof(out)) > 0)
			;
		CHECK_EQ(ossuary_destroy_connection(&c), OSSUARY_OK);
	}
}

/*
 * A random conversation: both sides write random amounts and update keys
 * (asking for a reply or not) in random order, in random-sized pieces;
 * each reads exactly what the other wrote, then both close cleanly.
 */
TEST(random_conversation)
{
	static uint8_t buf[3 * OSSUARY_MAX_PLAINTEXT];
	struct ep c, s;
	struct bytes sent[2] = { { 0 } };
	struct ep *side[2] = { &c, &s };

	pair(&c, &s, CONN_TYPE_UNAUTHENTICATED_SERVER, NULL, NULL);
	ep_handshake(&c, &s);
	for (int round = 0; round < 400; round++) {
		int who = (int)randombytes_uniform(2);
		struct ep *e = side[who], *peer = side[!who];

		switch (randombytes_uniform(4)) {
		case 0: {
			size_t n = randombytes_uniform(sizeof(buf));

			randombytes_buf(buf, n);
			ep_send(e, buf, n);
			bytes_add(&sent[who], buf, n);
			break;
		}
		case 1:
			CHECK_EQ(ossuary_key_update(e->c, (int)randombytes_uniform(2)),
				 OSSUARY_OK);
			ep_drain(e);
			break;
		default: {
			/* Deliver part of what is in flight, cut anywhere. */
			size_t n = randombytes_uniform((uint32_t)e->out.len + 1);
			struct bytes rest = { 0 };

			bytes_add(&rest, e->out.p + n, e->out.len - n);
			e->out.len = n;
			{
				struct bytes now = e->out;

				e->out = rest;
				ep_feed(peer, now.p, now.len);
				bytes_free(&now);
			}
			break;
		}
		}
		CHECK_EQ(c.err, 0);
		CHECK_EQ(s.err, 0);
		c.n_events = s.n_events = 0;
	}
	CHECK_EQ(ossuary_disconnect(c.c, 0), OSSUARY_OK);
	CHECK_EQ(ossuary_disconnect(s.c, 0), OSSUARY_OK);
	ep_drain(&c);
	ep_drain(&s);
	ep_shuttle(&c, &s);
	CHECK_EQ(c.err, 0);
	CHECK_EQ(s.err, 0);
	CHECK_EQ(s.delivered.len, sent[0].len);
	CHECK(sent[0].len == 0 || memcmp(s.delivered.p, sent[0].p, sent[0].len) == 0);
	CHECK_EQ(c.delivered.len, sent[1].len);
	CHECK(sent[1].len == 0 || memcmp(c.delivered.p, sent[1].p, sent[1].len) == 0);
	CHECK_EQ(ossuary_recv_eof(c.c), OSSUARY_OK);
	CHECK_EQ(ossuary_recv_eof(s.c), OSSUARY_OK);
	bytes_free(&sent[0]);
	bytes_free(&sent[1]);
	ep_free(&c);
	ep_free(&s);
}
