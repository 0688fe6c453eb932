/* SPDX-License-Identifier: Apache-2.0 */
/*
 * records.json: every record sealed and opened at its seq, both by the
 * record layer directly and through a connection's public calls; the
 * `next` chain; the cleartext control records; the 4-record stream.
 */
#define HARNESS_MAIN
/* harness.h's main() keeps locals across setjmp that GCC -O2 flags falsely. */
#include "harness.h"

#include "internal.h"
#include "util/endpoint.h"
#include "util/vectors.h"

static const struct json *doc(void)
{
	return vec_load("records.json");
}

static const uint8_t *secret(const struct json *d)
{
	return vec_hex_n(d, "traffic_secret", 32);
}

/* A client established with the vectors' secret in both directions. */
static OssuaryConnection *conn_at(const uint8_t *s, uint64_t send_seq,
				  uint64_t recv_seq)
{
	OssuaryConnection *c = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);

	CHECK(c);
	CHECK_EQ(ossuary__set_established(c, s, send_seq, s, recv_seq, 0, false),
		 OSSUARY_OK);
	ossuary__set_on_bad_record(c, OSS_BAD_RECORD_DISCONNECT);
	return c;
}

TEST(key_iv_and_next_chain)
{
	const struct json *d = doc(), *chain = vec_array(d, "next_chain");
	struct oss_dir dir;

	oss_dir_install(&dir, secret(d), 0);
	CHECK_MEM(dir.key, vec_hex_n(d, "key", 32), 32);
	CHECK_MEM(dir.iv, vec_hex_n(d, "iv", 12), 12);
	CHECK_EQ(json_len(chain), 3);
	for (size_t i = 0; i < json_len(chain); i++) {
		const struct json *e = json_at(chain, i);

		if (i)
			oss_dir_ratchet(&dir);
		CHECK_MEM(dir.secret, vec_hex_n(e, "secret", 32), 32);
		CHECK_MEM(dir.key, vec_hex_n(e, "key", 32), 32);
		CHECK_MEM(dir.iv, vec_hex_n(e, "iv", 12), 12);
		CHECK(dir.seq == 0);
	}
	vec_release();
}

static const char *type_name(long long type)
{
	switch (type) {
	case OSSUARY_RECORD_DATA: return "DATA";
	case OSSUARY_RECORD_KEY_UPDATE: return "KEY_UPDATE";
	case OSSUARY_RECORD_DISCONNECT: return "DISCONNECT";
	case OSSUARY_RECORD_RESET: return "RESET";
	default: harness_fail(__FILE__, __LINE__, "unknown record type %lld", type);
	}
}

/* The record layer alone: nonce, header, seal, open. */
TEST(records_sealed_and_opened)
{
	const struct json *d = doc(), *recs = vec_array(d, "records");
	struct oss_dir dir;

	CHECK(json_len(recs) >= 80);
	oss_dir_install(&dir, secret(d), 0);
	for (size_t i = 0; i < json_len(recs); i++) {
		const struct json *r = json_at(recs, i);
		uint64_t seq = vec_be64(r, "seq");
		long long type = vec_int(r, "type");
		size_t plen, rlen;
		const uint8_t *pt = vec_hex(r, "plaintext", &plen);
		const uint8_t *rec = vec_hex(r, "record", &rlen);
		uint8_t nonce[12], hdr[4];
		uint8_t *buf = vec_alloc(rlen), *opened = vec_alloc(plen);

		CHECK(strcmp(vec_str(r, "type_name"), type_name(type)) == 0);
		CHECK_EQ(plen, vec_int(r, "plaintext_len"));
		CHECK_EQ(rlen, plen + 20);
		oss_nonce(nonce, dir.iv, seq);
		CHECK_MEM(nonce, vec_hex_n(r, "nonce", 12), 12);
		oss_put_header(hdr, (uint8_t)type, plen + 16);
		CHECK_MEM(hdr, vec_hex_n(r, "header", 4), 4);
		oss_seal(&dir, seq, (uint8_t)type, pt, plen, NULL, 0, buf);
		CHECK_MEM(buf, rec, rlen);
		CHECK_EQ(oss_open(&dir, seq, rec, NULL, 0, rec + 4, rlen - 4, opened), 0);
		CHECK_MEM(opened, pt, plen);
		/* One seq off, or one header bit off, and it must not open. */
		CHECK(oss_open(&dir, seq ^ 1, rec, NULL, 0, rec + 4, rlen - 4, opened) != 0);
		hdr[1] ^= 0x80;
		CHECK(oss_open(&dir, seq, hdr, NULL, 0, rec + 4, rlen - 4, opened) != 0);
	}
	vec_release();
}

/* Whatever the connection wrote since the last look. */
static size_t take(OssuaryConnection *c, uint8_t *out, size_t room)
{
	ssize_t n = ossuary_flush(c, out, room);

	CHECK(n >= 0);
	return (size_t)n;
}

/* The same records from the public calls of a connection at that seq. */
TEST(records_through_a_connection)
{
	const struct json *d = doc(), *recs = vec_array(d, "records");
	static uint8_t out[OSSUARY_MAX_RECORD + 64], got[OSSUARY_MAX_PLAINTEXT];

	for (size_t i = 0; i < json_len(recs); i++) {
		const struct json *r = json_at(recs, i);
		uint64_t seq = vec_be64(r, "seq");
		long long type = vec_int(r, "type");
		size_t plen, rlen, n = sizeof(out), in_len, room = sizeof(got);
		const uint8_t *pt = vec_hex(r, "plaintext", &plen);
		const uint8_t *rec = vec_hex(r, "record", &rlen);
		OssuaryConnection *tx = conn_at(secret(d), seq, 0);
		OssuaryConnection *rx = conn_at(secret(d), 0, seq);
		ssize_t rc;

		switch (type) {
		case OSSUARY_RECORD_DATA:
			CHECK_EQ(ossuary_send_data(tx, pt, plen, out, &n), (ssize_t)plen);
			break;
		case OSSUARY_RECORD_KEY_UPDATE:
			CHECK_EQ(ossuary_key_update(tx, pt[0]), OSSUARY_OK);
			n = take(tx, out, n);
			break;
		case OSSUARY_RECORD_DISCONNECT:
			CHECK_EQ(ossuary_disconnect(tx, pt[0]), OSSUARY_OK);
			n = take(tx, out, n);
			break;
		case OSSUARY_RECORD_RESET:
			CHECK_EQ(ossuary_reset(tx), OSSUARY_OK);
			n = take(tx, out, n);
			break;
		default:
			CHECK(0);
		}
		CHECK_EQ(n, rlen);
		CHECK_MEM(out, rec, rlen);

		in_len = rlen;
		rc = ossuary_recv_data(rx, rec, &in_len, got, &room);
		CHECK_EQ(in_len, rlen);
		switch (type) {
		case OSSUARY_RECORD_DATA:
			CHECK_EQ(rc, (ssize_t)plen);
			CHECK_EQ(room, plen);
			CHECK_MEM(got, pt, plen);
			break;
		case OSSUARY_RECORD_KEY_UPDATE:
			CHECK_EQ(rc, 0);
			CHECK_EQ(ossuary_next_event(rx), pt[0] ? OSSUARY_EVENT_KEY_UPDATE_REQUESTED
							     : OSSUARY_EVENT_KEY_UPDATE);
			break;
		case OSSUARY_RECORD_DISCONNECT:
			CHECK_EQ(rc, pt[0] == 0 ? OSSUARY_ERR_EOF
				 : pt[0] == 2 ? OSSUARY_ERR_REFUSED : OSSUARY_ERR_DISCONNECTED);
			break;
		case OSSUARY_RECORD_RESET:
			CHECK_EQ(rc, OSSUARY_ERR_RESET);
			CHECK_EQ(ossuary_handshake_done(rx), 0);
			break;
		}
		CHECK_EQ(room, type == OSSUARY_RECORD_DATA ? plen : 0);
		ossuary_destroy_connection(&tx);
		ossuary_destroy_connection(&rx);
		CHECK(tx == NULL && rx == NULL);
	}
	vec_release();
}

TEST(cleartext_control_records)
{
	const struct json *d = doc(), *recs = vec_array(d, "cleartext_records");

	CHECK_EQ(json_len(recs), 5);
	for (size_t i = 0; i < json_len(recs); i++) {
		const struct json *r = json_at(recs, i);
		long long type = vec_int(r, "type"), value = vec_int(r, "value");
		size_t rlen;
		const uint8_t *rec = vec_hex(r, "record", &rlen);
		struct ep c;
		uint8_t out[256];
		size_t n = sizeof(out);

		/* A client that has sent CLIENT_HELLO holds no application keys. */
		ep_init(&c, ossuary_create_connection(CONN_TYPE_CLIENT, NULL));
		CHECK(ossuary_send_handshake(c.c, out, &n) >= 0);
		if (type == OSSUARY_RECORD_DISCONNECT) {
			CHECK_EQ(ossuary_disconnect(c.c, (int)value), OSSUARY_OK);
			ep_drain(&c);
			CHECK_EQ(c.out.len, rlen);
			CHECK_MEM(c.out.p, rec, rlen);
		} else {
			/*
			 * The handshake stage's one-way RESET: a client sends it
			 * when a SERVER_HELLO fails to open, a server takes it.
			 */
			struct ep s;

			CHECK_EQ(type, OSSUARY_RECORD_RESET);
			ep_init(&s, ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER,
							      NULL));
			ep_feed(&s, out, n);
			CHECK_EQ(s.out.len, 192);
			s.out.p[s.out.len - 1] ^= 0x01;
			ep_feed(&c, s.out.p, s.out.len);
			CHECK_EQ(c.err, 0);
			CHECK(c.out.len == rlen + 80);
			CHECK_MEM(c.out.p, rec, rlen);
			bytes_clear(&s.out);
			ep_feed(&s, rec, rlen);
			CHECK_EQ(s.err, 0);
			CHECK_EQ(s.out.len, 0);
			ep_free(&s);
		}
		ep_free(&c);
	}
	vec_release();
}

TEST(four_record_stream)
{
	const struct json *st = vec_field(doc(), "stream");
	const struct json *recs = vec_array(st, "records");
	const uint8_t *s = vec_hex_n(st, "secret", 32);
	size_t slen, dlen;
	const uint8_t *stream = vec_hex(st, "stream", &slen);
	const uint8_t *want = vec_hex(st, "delivered", &dlen);
	struct ep rx;
	OssuaryConnection *tx = conn_at(s, 0, 0);
	static uint8_t out[4096];
	size_t n, off = 0;

	CHECK_EQ(json_len(recs), 4);
	/* Sender: DATA, KEY_UPDATE(0), DATA, DISCONNECT(0), as the vector says. */
	n = sizeof(out);
	CHECK_EQ(ossuary_send_data(tx, (const uint8_t *)"hello", 5, out, &n), 5);
	off += n;
	CHECK_EQ(ossuary_key_update(tx, 0), OSSUARY_OK);
	off += take(tx, out + off, sizeof(out) - off);
	n = sizeof(out) - off;
	CHECK_EQ(ossuary_send_data(tx, (const uint8_t *)"world", 5, out + off, &n), 5);
	off += n;
	CHECK_EQ(ossuary_disconnect(tx, 0), OSSUARY_OK);
	off += take(tx, out + off, sizeof(out) - off);
	CHECK_EQ(off, slen);
	CHECK_MEM(out, stream, slen);
	n = sizeof(out);
	CHECK_EQ(ossuary_send_data(tx, (const uint8_t *)"x", 1, out, &n), OSSUARY_ERR_STATE);
	ossuary_destroy_connection(&tx);

	for (int bytewise = 0; bytewise < 2; bytewise++) {
		ep_init(&rx, conn_at(s, 0, 0));
		if (bytewise)
			for (size_t i = 0; i < slen; i++)
				ep_feed(&rx, stream + i, 1);
		else
			ep_feed(&rx, stream, slen);
		CHECK_EQ(rx.err, 0);
		CHECK_EQ(rx.delivered.len, dlen);
		CHECK_MEM(rx.delivered.p, want, dlen);
		CHECK_EQ(rx.n_events, 2);
		CHECK_EQ(rx.events[0], OSSUARY_EVENT_KEY_UPDATE);
		CHECK_EQ(rx.events[1], OSSUARY_EVENT_END_OF_FILE);
		CHECK_EQ(ossuary_recv_eof(rx.c), OSSUARY_OK);
		ep_free(&rx);
	}
	vec_release();
}
