/* SPDX-License-Identifier: Apache-2.0 */
/*
 * negative.json: every vector and every bit flip, each applied to a fresh
 * receiver in one piece and byte by byte, then end-of-file; once by an
 * endpoint that fails on a bad record (DISCONNECT(1), as the kernel
 * does), once by one that recovers by RESET (the userspace default).
 *
 * A recovering receiver in the established stage sends its sealed RESET
 * and, when the stream then ends, reports the record that failed to open
 * (OSSUARY_ERR_DECRYPT), never a clean end. A recovering client in the
 * handshake stage sends a cleartext RESET and a fresh CLIENT_HELLO, and
 * the end of the stream is a truncation.
 */
#define HARNESS_MAIN
/* harness.h's main() keeps locals across setjmp that GCC -O2 flags falsely. */
#include "harness.h"

#include "internal.h"
#include "util/endpoint.h"
#include "util/vectors.h"

struct expect {
	const char *name;
	const uint8_t *delivered;
	size_t delivered_len;
	bool fails_before_eof;
	bool may_reset;
	const uint8_t *error_response;	/* NULL: open */
	size_t error_response_len;
	const uint8_t *pauses_with;	/* NULL: must not pause */
};

static bool handshake_done_event(const struct ep *e)
{
	for (size_t i = 0; i < e->n_events; i++)
		if (e->events[i] == OSSUARY_EVENT_HANDSHAKE_DONE)
			return true;
	return false;
}

/* Feeds the stream, answering a pause as the context's application would. */
static void feed(struct ep *e, const struct json *ctx, const uint8_t *s, size_t n,
		 bool bytewise, const struct expect *x, bool *paused)
{
	for (size_t i = 0; i < n; i += bytewise ? 1 : n) {
		ep_feed(e, s + i, bytewise ? 1 : n);
		if (e->paused) {
			const char *answer = vec_str(ctx, "at_untrusted_server");
			uint8_t key[32];

			CHECK(!*paused);
			*paused = true;
			if (!x->pauses_with)
				harness_fail(__FILE__, __LINE__, "%s: paused, must not", x->name);
			CHECK_EQ(ossuary_remote_public_key(e->c, key, 32), OSSUARY_OK);
			CHECK_MEM(key, x->pauses_with, 32);
			CHECK(answer);
			if (strcmp(answer, "approve") == 0)
				CHECK_EQ(ossuary_approve_server(e->c), OSSUARY_OK);
			else if (strcmp(answer, "refuse") == 0)
				CHECK_EQ(ossuary_refuse_server(e->c), OSSUARY_OK);
			else
				harness_fail(__FILE__, __LINE__, "unknown answer %s", answer);
			e->paused = false;
			ep_pump(e);
		}
	}
}

/* The RESET a recovering receiver sends: sealed with send_secret at send_seq. */
static void expected_reset(const struct json *ctx, uint8_t rec[21])
{
	struct oss_dir d;
	static const uint8_t zero;

	oss_dir_install(&d, vec_hex_n(ctx, "send_secret", 32), vec_be64(ctx, "send_seq"));
	oss_seal(&d, d.seq, OSSUARY_RECORD_RESET, &zero, 1, NULL, 0, rec);
}

static void apply(const struct json *ctx, const uint8_t *s, size_t n,
		  const struct expect *x, bool bytewise, int mode)
{
	struct ep e;
	bool paused = false, recovers;
	int before_eof, at_eof;
	size_t out_before_eof;

	ep_from_context(&e, ctx, mode);
	feed(&e, ctx, s, n, bytewise, x, &paused);
	before_eof = e.err;
	out_before_eof = e.out.len;
	at_eof = ossuary_recv_eof(e.c);
	ep_drain(&e);

	if (x->pauses_with && !paused)
		harness_fail(__FILE__, __LINE__, "%s: did not pause", x->name);
	if (e.delivered.len != x->delivered_len ||
	    (x->delivered_len && memcmp(e.delivered.p, x->delivered, x->delivered_len) != 0))
		harness_fail(__FILE__, __LINE__, "%s: delivered %zu bytes, want %zu",
			     x->name, e.delivered.len, x->delivered_len);
	if (handshake_done_event(&e) || ossuary_handshake_done(e.c) == 1)
		harness_fail(__FILE__, __LINE__, "%s: handshake completed", x->name);
	if (at_eof >= 0)
		harness_fail(__FILE__, __LINE__, "%s: no error even at EOF", x->name);

	recovers = x->may_reset && mode == OSS_BAD_RECORD_RESET;
	if (recovers && strcmp(vec_str(ctx, "stage"), "handshake") == 0) {
		static const uint8_t clear_reset[5] = { 2, OSSUARY_RECORD_RESET, 0, 1, 0 };

		/* One-way: cleartext RESET, at once a fresh CLIENT_HELLO; no error. */
		CHECK(ep_role(vec_str(ctx, "role")) == CONN_TYPE_CLIENT);
		if (before_eof || out_before_eof != 85 || e.out.len != 85 ||
		    memcmp(e.out.p, clear_reset, 5) != 0 || e.out.p[5] != 2 ||
		    e.out.p[6] != OSSUARY_RECORD_CLIENT_HELLO || e.out.p[8] != 76)
			harness_fail(__FILE__, __LINE__, "%s: wrote %s (%s), want RESET, CLIENT_HELLO",
				     x->name, vec_tohex(e.out.p, e.out.len),
				     ossuary_strerror(before_eof));
		CHECK_EQ(e.c->resets_so_far, 1);
		CHECK_EQ(at_eof, OSSUARY_ERR_TRUNCATED);
		return ep_free(&e);
	}
	if (recovers) {
		uint8_t rst[21];

		/* The RESET goes out as the bad record is seen; no DISCONNECT. */
		expected_reset(ctx, rst);
		if (out_before_eof != 21 || e.out.len != 21 || memcmp(e.out.p, rst, 21) != 0)
			harness_fail(__FILE__, __LINE__, "%s: wrote %s, want RESET",
				     x->name, vec_tohex(e.out.p, e.out.len));
		/*
		 * The skipped record's bytes are missing: the end is no clean
		 * end. What follows may fail too (swapped records, or a flipped
		 * length leaving a bad header behind): that ends the reset at
		 * once, and the failure stands at end-of-file.
		 */
		CHECK_EQ(at_eof, before_eof ? before_eof : OSSUARY_ERR_DECRYPT);
		return ep_free(&e);
	}
	if (x->fails_before_eof && !before_eof)
		harness_fail(__FILE__, __LINE__, "%s: error only at EOF (%s)", x->name,
			     ossuary_strerror(at_eof));
	if (!x->fails_before_eof && before_eof)
		harness_fail(__FILE__, __LINE__, "%s: error before EOF (%s)", x->name,
			     ossuary_strerror(before_eof));
	if (!x->fails_before_eof)
		CHECK_EQ(at_eof, OSSUARY_ERR_TRUNCATED);
	if (x->error_response) {
		/* A server's own SERVER_HELLOs precede its answer. */
		size_t skip = 0;

		while (e.out.len - skip >= 196 && e.out.p[skip] == 2 &&
		       e.out.p[skip + 1] == OSSUARY_RECORD_SERVER_HELLO)
			skip += 192;

		if (e.out.len - skip != x->error_response_len ||
		    memcmp(e.out.p + skip, x->error_response, x->error_response_len) != 0)
			harness_fail(__FILE__, __LINE__, "%s: wrote %s", x->name,
				     vec_tohex(e.out.p + skip, e.out.len - skip));
	}
	ep_free(&e);
}

static void apply_all_ways(const struct json *ctx, const uint8_t *s, size_t n,
			   const struct expect *x)
{
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		apply(ctx, s, n, x, bytewise, OSS_BAD_RECORD_DISCONNECT);
		apply(ctx, s, n, x, bytewise, OSS_BAD_RECORD_RESET);
	}
}

static const struct json *contexts(void)
{
	return vec_field(vec_load("negative.json"), "contexts");
}

static const struct json *context(const char *name)
{
	const struct json *ctx = json_get(contexts(), name);

	if (!ctx)
		harness_fail(__FILE__, __LINE__, "unknown context %s", name);
	return ctx;
}

TEST(negative_vectors)
{
	const struct json *vs = vec_array(vec_load("negative.json"), "vectors");

	CHECK_EQ(json_len(vs), 72);
	for (size_t i = 0; i < json_len(vs); i++) {
		const struct json *v = json_at(vs, i);
		struct expect x = { .name = vec_str(v, "name") };
		size_t n, plen;
		const uint8_t *s = vec_hex(v, "stream", &n);

		x.delivered = vec_hex(v, "delivered", &x.delivered_len);
		x.fails_before_eof = vec_bool(v, "fails_before_eof");
		x.may_reset = vec_bool(v, "may_reset");
		x.error_response = vec_hex(v, "error_response", &x.error_response_len);
		if (json_str(vec_field(v, "error_response")) && !x.error_response)
			x.error_response = (const uint8_t *)"";	/* "": nothing at all */
		x.pauses_with = vec_hex(v, "pauses_with", &plen);
		CHECK(!x.pauses_with || plen == 32);
		CHECK(s && n);
		apply_all_ways(context(vec_str(v, "context")), s, n, &x);
	}
	harness_note("%zu vectors, each 4 ways", json_len(vs));
	vec_release();
}

TEST(bitflips)
{
	const struct json *bf = vec_field(vec_load("negative.json"), "bitflips");
	const struct json *flips = vec_array(bf, "flips");
	const struct json *ctx = context(vec_str(bf, "context"));
	size_t rlen;
	const uint8_t *rec = vec_hex(bf, "record", &rlen);

	CHECK_EQ(json_len(flips), 200);
	CHECK_EQ(rlen * 8, 200);
	for (size_t i = 0; i < json_len(flips); i++) {
		const struct json *f = json_at(flips, i);
		static char name[64];
		struct expect x = { .name = name };
		long long byte = vec_int(f, "byte"), bit = vec_int(f, "bit");
		size_t n;
		const uint8_t *s = vec_hex(f, "stream", &n);
		uint8_t *mine = vec_alloc(rlen);

		snprintf(name, sizeof(name), "bitflip of byte %lld bit %lld", byte, bit);
		/* The flip is exactly the one named. */
		CHECK_EQ(n, rlen);
		memcpy(mine, rec, rlen);
		mine[byte] ^= (uint8_t)(1u << bit);
		CHECK_MEM(mine, s, n);
		x.fails_before_eof = vec_bool(f, "fails_before_eof");
		x.may_reset = vec_bool(f, "may_reset");
		x.delivered = (const uint8_t *)"";
		apply_all_ways(ctx, s, n, &x);
	}
	vec_release();
}

/* Every context names a stage this test knows, and every role. */
TEST(contexts_known)
{
	const struct json *cs = contexts();

	CHECK(json_len(cs) >= 10);
	for (size_t i = 0; i < json_len(cs); i++) {
		const struct json *c = cs->items[i];
		const char *stage = vec_str(c, "stage");

		ep_role(vec_str(c, "role"));
		CHECK(stage && (strcmp(stage, "handshake") == 0 ||
				strcmp(stage, "established") == 0));
	}
	vec_release();
}

/*
 * The vectors new in revision 2.1 (and the two that may now reset),
 * with the exact error this library reports for each, whole and byte by
 * byte, by an endpoint that does not recover.
 */
TEST(revision_2_1_errors)
{
	static const struct {
		const char *name;
		int err;
	} want[] = {
		{ "cleartext_disconnect_0_after_data", OSSUARY_ERR_PROTOCOL },
		{ "cleartext_disconnect_1_after_data", OSSUARY_ERR_PROTOCOL },
		{ "cleartext_reset_to_client_during_handshake", OSSUARY_ERR_PROTOCOL },
		{ "fifth_handshake_reset_refused", OSSUARY_ERR_TOO_MANY_RESETS },
		{ "client_auth_after_handshake_reset", OSSUARY_ERR_PROTOCOL },
		{ "server_hello_bad_tag", OSSUARY_ERR_DECRYPT },
		{ "server_hello_cleartext_part_bit_flip", OSSUARY_ERR_DECRYPT },
		{ "client_auth_bad_tag", OSSUARY_ERR_DECRYPT },
		{ "fifth_reset_refused", OSSUARY_ERR_TOO_MANY_RESETS },
		{ "cleartext_disconnect_during_handshake", OSSUARY_ERR_DISCONNECTED },
	};
	const struct json *vs = vec_array(vec_load("negative.json"), "vectors");
	size_t found = 0;

	for (size_t i = 0; i < json_len(vs); i++) {
		const struct json *v = json_at(vs, i);
		const char *name = vec_str(v, "name");
		size_t n;
		const uint8_t *s;

		for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
			if (strcmp(name, want[w].name) != 0)
				continue;
			found++;
			s = vec_hex(v, "stream", &n);
			for (int bytewise = 0; bytewise < 2; bytewise++) {
				struct ep e;

				ep_from_context(&e, context(vec_str(v, "context")),
						OSS_BAD_RECORD_DISCONNECT);
				for (size_t k = 0; k < n; k += bytewise ? 1 : n)
					ep_feed(&e, s + k, bytewise ? 1 : n);
				if (e.err != want[w].err)
					harness_fail(__FILE__, __LINE__, "%s: %s, want %s", name,
						     ossuary_strerror(e.err),
						     ossuary_strerror(want[w].err));
				/* The fifth handshake reset: four were counted first. */
				if (want[w].err == OSSUARY_ERR_TOO_MANY_RESETS)
					CHECK_EQ(e.c->resets_so_far, 4);
				ep_free(&e);
			}
		}
	}
	CHECK_EQ(found, sizeof(want) / sizeof(want[0]));
	vec_release();
}
