/* SPDX-License-Identifier: Apache-2.0 */
/*
 * handshake.json: every handshake reproduced byte for byte by two real
 * endpoints (fed whole and byte by byte), and every transcript value and
 * traffic key recomputed from the brief's formulas.
 */
#define HARNESS_MAIN
/* harness.h's main() keeps locals across setjmp that GCC -O2 flags falsely. */
#include "harness.h"

#include <sodium.h>

#include "internal.h"
#include "util/endpoint.h"
#include "util/vectors.h"

#define HEX(obj, key, n) vec_hex_n(obj, key, n)

static const struct json *handshakes(void)
{
	const struct json *hs = vec_array(vec_load("handshake.json"), "handshakes");

	CHECK_EQ(json_len(hs), 5);
	return hs;
}

static void make_side(struct ep *e, const struct json *side)
{
	connection_type_t role = ep_role(vec_str(side, "role"));
	const struct json *keys = vec_array(side, "authorized_keys");
	size_t len;
	const uint8_t *secret = vec_hex(side, "auth_secret", &len);

	ep_init(e, ossuary_create_connection(role, secret));
	for (size_t i = 0; i < json_len(keys); i++) {
		const uint8_t *k = vec_unhex(json_str(json_at(keys, i)), &len);

		CHECK(k && len == 32);
		CHECK_EQ(ossuary_add_authorized_key(e->c, k), OSSUARY_OK);
	}
	CHECK_EQ(ossuary__inject_handshake_inputs(e->c, HEX(side, "eph_secret", 32),
						  HEX(side, "nonce", 12),
						  HEX(side, "challenge", 32)),
		 OSSUARY_OK);
}

static void feed(struct ep *e, const uint8_t *p, size_t n, bool bytewise)
{
	if (!bytewise) {
		ep_feed(e, p, n);
		return;
	}
	for (size_t i = 0; i < n; i++)
		ep_feed(e, p + i, 1);
}

static void check_key_seen(OssuaryConnection *c, const struct json *result,
			   const char *field)
{
	size_t len;
	const uint8_t *want = vec_hex(result, field, &len);
	uint8_t got[32];
	int rc = ossuary_remote_public_key(c, got, sizeof(got));

	if (!want) {
		CHECK_EQ(rc, OSSUARY_ERR_STATE);
		return;
	}
	CHECK_EQ(rc, OSSUARY_OK);
	CHECK_MEM(got, want, 32);
}

static void run_handshake(const struct json *h, bool bytewise)
{
	const struct json *cl = vec_field(h, "client"), *sv = vec_field(h, "server");
	const struct json *wire = vec_field(h, "wire"), *tr = vec_field(h, "transcript");
	const struct json *result = vec_field(h, "result");
	const struct json *apps = vec_array(h, "application_records");
	const char *tofu = vec_str(cl, "at_untrusted_server");
	size_t ch_len, sh_len, ca_len, len;
	const uint8_t *ch = vec_hex(wire, "client_hello", &ch_len);
	const uint8_t *sh = vec_hex(wire, "server_hello", &sh_len);
	const uint8_t *ca = vec_hex(wire, "client_auth", &ca_len);
	const uint8_t *pause_key = vec_hex(result, "client_pauses_with", &len);
	const struct json *after = vec_array(result, "client_authorized_keys_after");
	struct ep c, s;
	uint8_t out[64], tx[32], rx[32];
	size_t n = sizeof(out);
	uint64_t txs, rxs;

	harness_note("%s%s", vec_str(h, "name"), bytewise ? " (byte by byte)" : "");
	make_side(&c, cl);
	make_side(&s, sv);

	/* CLIENT_HELLO must not fit a too-small buffer, and then must fit. */
	CHECK_EQ(ossuary_send_handshake(c.c, out, &n), OSSUARY_ERR_BUFFER_TOO_SMALL);
	CHECK_EQ(n, 0);
	ep_drain(&c);
	CHECK_EQ(c.out.len, ch_len);
	CHECK_MEM(c.out.p, ch, ch_len);
	bytes_clear(&c.out);

	feed(&s, ch, ch_len, bytewise);
	CHECK_EQ(s.err, 0);
	CHECK_EQ(s.out.len, sh_len);
	CHECK_MEM(s.out.p, sh, sh_len);
	CHECK_EQ(ossuary_handshake_done(s.c), 0);
	bytes_clear(&s.out);

	feed(&c, sh, sh_len, bytewise);
	CHECK_EQ(c.err, 0);
	if (pause_key) {
		uint8_t key[32];

		CHECK(tofu && strcmp(tofu, "approve") == 0);
		CHECK(c.paused);
		CHECK_EQ(c.out.len, 0);
		CHECK_EQ(ossuary_handshake_done(c.c), OSSUARY_ERR_UNTRUSTED_SERVER);
		CHECK_EQ(ossuary_remote_public_key(c.c, key, sizeof(key)), OSSUARY_OK);
		CHECK_MEM(key, pause_key, 32);
		CHECK_EQ(ossuary_approve_server(c.c), OSSUARY_OK);
		ep_drain(&c);
	} else {
		CHECK(!c.paused);
	}
	CHECK_EQ(ossuary_handshake_done(c.c), 1);
	CHECK_EQ(c.out.len, ca_len);
	CHECK_MEM(c.out.p, ca, ca_len);
	bytes_clear(&c.out);
	CHECK_EQ(c.n_events, 1);
	CHECK_EQ(c.events[0], OSSUARY_EVENT_HANDSHAKE_DONE);

	feed(&s, ca, ca_len, bytewise);
	CHECK_EQ(s.err, 0);
	CHECK_EQ(s.out.len, 0);
	CHECK_EQ(ossuary_handshake_done(s.c), 1);
	CHECK_EQ(s.n_events, 1);
	CHECK_EQ(s.events[0], OSSUARY_EVENT_HANDSHAKE_DONE);

	/* Traffic secrets, the accepted keys, the client's list afterwards. */
	CHECK_EQ(ossuary__debug_traffic(c.c, tx, &txs, rx, &rxs), OSSUARY_OK);
	CHECK_MEM(tx, HEX(tr, "c_app", 32), 32);
	CHECK_MEM(rx, HEX(tr, "s_app", 32), 32);
	CHECK(txs == 0 && rxs == 0);
	CHECK_EQ(ossuary__debug_traffic(s.c, tx, &txs, rx, &rxs), OSSUARY_OK);
	CHECK_MEM(tx, HEX(tr, "s_app", 32), 32);
	CHECK_MEM(rx, HEX(tr, "c_app", 32), 32);
	CHECK(vec_bool(result, "client_accepts") && vec_bool(result, "server_accepts"));
	check_key_seen(c.c, result, "server_key_seen_by_client");
	check_key_seen(s.c, result, "client_key_seen_by_server");
	CHECK_EQ(c.c->n_authorized, json_len(after));
	for (size_t i = 0; i < json_len(after); i++) {
		const uint8_t *k = vec_unhex(json_str(json_at(after, i)), &len);

		CHECK(k && oss_key_listed(c.c, k));
	}

	/* The first DATA record each way. */
	CHECK_EQ(json_len(apps), 2);
	for (size_t i = 0; i < 2; i++) {
		const struct json *a = json_at(apps, i);
		bool from_client = strcmp(vec_str(a, "direction"), "client->server") == 0;
		struct ep *snd = from_client ? &c : &s, *rcv = from_client ? &s : &c;
		size_t plen, rlen;
		const uint8_t *pt = vec_hex(a, "plaintext", &plen);
		const uint8_t *rec = vec_hex(a, "record", &rlen);
		uint8_t buf[256];
		size_t room = sizeof(buf);

		CHECK(from_client || strcmp(vec_str(a, "direction"), "server->client") == 0);
		CHECK_EQ(vec_int(a, "type"), OSSUARY_RECORD_DATA);
		CHECK_EQ(ossuary_send_data(snd->c, pt, plen, buf, &room), (ssize_t)plen);
		CHECK_EQ(room, rlen);
		CHECK_MEM(buf, rec, rlen);
		feed(rcv, rec, rlen, bytewise);
		CHECK_EQ(rcv->err, 0);
		CHECK_EQ(rcv->delivered.len, plen);
		CHECK_MEM(rcv->delivered.p, pt, plen);
	}
	ep_free(&c);
	ep_free(&s);
}

TEST(handshakes_whole)
{
	const struct json *hs = handshakes();

	for (size_t i = 0; i < json_len(hs); i++)
		run_handshake(json_at(hs, i), false);
	vec_release();
}

TEST(handshakes_byte_by_byte)
{
	const struct json *hs = handshakes();

	for (size_t i = 0; i < json_len(hs); i++)
		run_handshake(json_at(hs, i), true);
	vec_release();
}

static void check_derive(const uint8_t *prk, const char *label, const uint8_t *ctx,
			 size_t ctx_len, const uint8_t *want)
{
	uint8_t got[32];

	oss_derive(got, prk, label, ctx, ctx_len);
	CHECK_MEM(got, want, 32);
}

static void check_traffic(const struct json *traffic, const char *name)
{
	const struct json *t = vec_field(traffic, name);
	struct oss_dir d;

	oss_dir_install(&d, HEX(t, "secret", 32), 0);
	CHECK_MEM(d.key, HEX(t, "key", 32), 32);
	CHECK_MEM(d.iv, HEX(t, "iv", 12), 12);
}

/* Each value of the key schedule from the brief's formulas. */
TEST(transcripts_recomputed)
{
	const struct json *hs = handshakes();

	for (size_t i = 0; i < json_len(hs); i++) {
		const struct json *h = json_at(hs, i), *tr = vec_field(h, "transcript");
		const struct json *cl = vec_field(h, "client"), *sv = vec_field(h, "server");
		uint8_t buf[512], th[32], pub[32], dh[32], prk[32];
		size_t n = 0, len;
		const uint8_t *ch = vec_hex(tr, "ch_body", &len);

		CHECK_EQ(len, 76);
		crypto_scalarmult_base(pub, HEX(cl, "eph_secret", 32));
		CHECK_MEM(pub, HEX(cl, "eph_pub", 32), 32);
		crypto_scalarmult_base(pub, HEX(sv, "eph_secret", 32));
		CHECK_MEM(pub, HEX(sv, "eph_pub", 32), 32);
		CHECK_EQ(crypto_scalarmult(dh, HEX(cl, "eph_secret", 32),
					   HEX(sv, "eph_pub", 32)), 0);
		CHECK_MEM(dh, HEX(tr, "dh", 32), 32);
		oss_hkdf_extract(prk, (const uint8_t *)"ossuary2", 8, dh, 32);
		CHECK_MEM(prk, HEX(tr, "prk", 32), 32);

		memcpy(buf, ch, 76);
		memcpy(buf + 76, HEX(tr, "sh_clear", 44), 44);
		n = 120;
		crypto_hash_sha256(th, buf, n);
		CHECK_MEM(th, HEX(tr, "th1", 32), 32);
		check_derive(prk, "hs", th, 32, HEX(tr, "hs", 32));
		check_derive(HEX(tr, "hs", 32), "s hs", NULL, 0, HEX(tr, "s_hs", 32));
		check_derive(HEX(tr, "hs", 32), "c hs", NULL, 0, HEX(tr, "c_hs", 32));

		memcpy(buf + n, HEX(tr, "sh_inner", 128), 128);
		n += 128;
		crypto_hash_sha256(th, buf, n);
		CHECK_MEM(th, HEX(tr, "th2", 32), 32);
		memcpy(buf + n, HEX(tr, "ca_inner", 96), 96);
		n += 96;
		crypto_hash_sha256(th, buf, n);
		CHECK_MEM(th, HEX(tr, "th3", 32), 32);
		check_derive(prk, "app", th, 32, HEX(tr, "app", 32));
		check_derive(HEX(tr, "app", 32), "c app", NULL, 0, HEX(tr, "c_app", 32));
		check_derive(HEX(tr, "app", 32), "s app", NULL, 0, HEX(tr, "s_app", 32));

		check_traffic(vec_field(h, "traffic"), "s_hs");
		check_traffic(vec_field(h, "traffic"), "c_hs");
		check_traffic(vec_field(h, "traffic"), "c_app");
		check_traffic(vec_field(h, "traffic"), "s_app");
		{
			uint8_t nonce[12];

			oss_nonce(nonce, HEX(vec_field(vec_field(h, "traffic"), "s_hs"), "iv", 12), 0);
			CHECK_MEM(nonce, HEX(tr, "sh_aead_nonce", 12), 12);
		}
	}
	vec_release();
}

/* RFC 5869 test case 1 (HKDF-SHA256): the primitive under everything. */
TEST(hkdf_rfc5869)
{
	size_t len;
	const uint8_t *ikm = vec_unhex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", &len);
	const uint8_t *salt = vec_unhex("000102030405060708090a0b0c", &len);
	const uint8_t *info = vec_unhex("f0f1f2f3f4f5f6f7f8f9", &len);
	const uint8_t *prk = vec_unhex(
		"077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5", &len);
	const uint8_t *okm = vec_unhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865", &len);
	uint8_t got[42];

	CHECK_EQ(len, 42);
	oss_hkdf_extract(got, salt, 13, ikm, 22);
	CHECK_MEM(got, prk, 32);
	CHECK_EQ(oss_hkdf_expand(got, 42, prk, info, 10), OSSUARY_OK);
	CHECK_MEM(got, okm, 42);
	vec_release();
}
