/* SPDX-License-Identifier: Apache-2.0 */
/*
 * streams.json: positive exchanges between a client and a server, run
 * step by step against one endpoint per side. Each step's output bytes,
 * delivered bytes and events must match; every "receive" input must be
 * exactly what the other side wrote and nobody has read yet (unless the
 * vector says it was altered or injected). Run twice: inputs whole, and
 * byte by byte (except a step marked in_one_piece, whose requests are
 * answered together only when read together).
 *
 * A "reset" event is OSSUARY_EVENT_RESET_AFTER_FAILURE on a side that
 * started the reset because a record failed to open, OSSUARY_EVENT_RESET
 * otherwise. A side that recovers by RESET started it so when a receive
 * step makes it send a RESET that answers nothing: a cleartext one (the
 * handshake stage's), or one in a step that completes no reset.
 * A "handshake_failed" step ends its side with OSSUARY_ERR_HANDSHAKE_FAILED.
 */
#define HARNESS_MAIN
#include "harness.h"

#include "internal.h"
#include "util/endpoint.h"
#include "util/vectors.h"

struct side {
	bool present;
	bool recovers;		/* answers a record that fails to open with RESET */
	bool failed_record;	/* ... and was fed one: its next reset says so */
	struct ep e;
	struct bytes unread;	/* written, not yet received by the peer */
};

static struct side *pick(struct side *sides, const char *name)
{
	if (name && strcmp(name, "client") == 0)
		return &sides[0];
	if (name && strcmp(name, "server") == 0)
		return &sides[1];
	harness_fail(__FILE__, __LINE__, "unknown side \"%s\"", name ? name : "(null)");
}

static void app_call(struct side *sd, int rc, const char *what)
{
	if (rc < 0)
		harness_fail(__FILE__, __LINE__, "%s: %s", what, ossuary_strerror(rc));
	ep_drain(&sd->e);
}

static void do_send_data(struct side *sd, const uint8_t *p, size_t n)
{
	static uint8_t out[OSSUARY_MAX_RECORD + 64];
	size_t taken = 0;

	do {
		size_t room = sizeof(out);
		ssize_t r = ossuary_send_data(sd->e.c, p + taken, n - taken, out, &room);

		if (r < 0)
			harness_fail(__FILE__, __LINE__, "send_data: %s",
				     ossuary_strerror((int)r));
		bytes_add(&sd->e.out, out, room);
		taken += (size_t)r;
	} while (taken < n);
	ep_drain(&sd->e);
}

static bool step_has_event(const struct json *st, const char *name)
{
	const struct json *evs = vec_array(st, "events");

	for (size_t i = 0; i < json_len(evs); i++)
		if (strcmp(json_str(json_at(evs, i)), name) == 0)
			return true;
	return false;
}

static void do_receive(struct side *sides, struct side *sd, const struct json *st,
		       bool bytewise)
{
	const char *from = vec_str(st, "input_from");
	size_t n;
	const uint8_t *in = vec_hex(st, "input", &n);

	if (!from)
		harness_fail(__FILE__, __LINE__, "receive without input_from");
	if (strcmp(from, "client") == 0 || strcmp(from, "server") == 0) {
		struct side *peer = pick(sides, from);

		if (peer->unread.len != n || memcmp(peer->unread.p, in, n) != 0)
			harness_fail(__FILE__, __LINE__, "input is not what %s wrote", from);
		bytes_clear(&peer->unread);
	} else if (strstr(from, "altered in transit")) {
		struct side *peer = pick(sides, strncmp(from, "client", 6) == 0 ? "client"
									 : "server");

		CHECK_EQ(peer->unread.len, n);
		bytes_clear(&peer->unread);
	} else if (strcmp(from, "injected") != 0) {
		harness_fail(__FILE__, __LINE__, "unknown input_from \"%s\"", from);
	}
	if (json_get(st, "in_one_piece") && vec_bool(st, "in_one_piece"))
		bytewise = false;
	if (bytewise)
		for (size_t i = 0; i < n; i++)
			ep_feed(&sd->e, in + i, 1);
	else
		ep_feed(&sd->e, in, n);
	if (sd->e.err && !(sd->e.err == OSSUARY_ERR_HANDSHAKE_FAILED &&
			   step_has_event(st, "handshake_failed")))
		harness_fail(__FILE__, __LINE__, "receive: %s", ossuary_strerror(sd->e.err));
}

/* Did this step make a recovering side start a reset on a failed record? */
static bool starts_reset_on_failure(const struct side *sd, const struct json *st)
{
	const struct json *recs = json_get(st, "output_records");

	if (!sd->recovers || strcmp(vec_str(st, "action"), "receive") != 0)
		return false;
	for (size_t i = 0; i < json_len(recs); i++) {
		const struct json *r = json_at(recs, i);

		if (strcmp(vec_str(r, "type_name"), "RESET") != 0)
			continue;
		return strcmp(vec_str(r, "sealing"), "cleartext") == 0 ||
		       !step_has_event(st, "reset");
	}
	return false;
}

static void check_step(struct side *sd, const struct json *st, size_t k)
{
	const struct json *evs = vec_array(st, "events");
	size_t n;
	const uint8_t *out = vec_hex(st, "output", &n);
	const uint8_t *dlv = NULL;
	size_t dlen = 0;

	if (starts_reset_on_failure(sd, st))
		sd->failed_record = true;

	if (json_get(st, "delivered"))
		dlv = vec_hex(st, "delivered", &dlen);
	if (sd->e.out.len != n || (n && memcmp(sd->e.out.p, out, n) != 0))
		harness_fail(__FILE__, __LINE__, "step %zu: wrote %zu bytes %s, want %zu",
			     k, sd->e.out.len, vec_tohex(sd->e.out.p, sd->e.out.len), n);
	if (sd->e.delivered.len != dlen ||
	    (dlen && memcmp(sd->e.delivered.p, dlv, dlen) != 0))
		harness_fail(__FILE__, __LINE__, "step %zu: delivered %zu bytes, want %zu",
			     k, sd->e.delivered.len, dlen);
	if (sd->e.n_events != json_len(evs))
		harness_fail(__FILE__, __LINE__, "step %zu: %zu events, want %zu", k,
			     sd->e.n_events, json_len(evs));
	for (size_t i = 0; i < json_len(evs); i++) {
		int want = ep_event_code(json_str(json_at(evs, i)));

		if (want == OSSUARY_EVENT_RESET && sd->failed_record) {
			want = OSSUARY_EVENT_RESET_AFTER_FAILURE;
			sd->failed_record = false;
		}
		if (sd->e.events[i] != want)
			harness_fail(__FILE__, __LINE__, "step %zu: event %zu is %d, want %d (%s)",
				     k, i, sd->e.events[i], want, json_str(json_at(evs, i)));
	}
	if (step_has_event(st, "handshake_failed"))
		CHECK_EQ(sd->e.err, OSSUARY_ERR_HANDSHAKE_FAILED);
	bytes_add(&sd->unread, sd->e.out.p, sd->e.out.len);
	bytes_clear(&sd->e.out);
	bytes_clear(&sd->e.delivered);
	sd->e.n_events = 0;
}

static void run_stream(const struct json *s, bool bytewise)
{
	struct side sides[2];
	const struct json *steps = vec_array(s, "steps");
	const char *names[2] = { "client", "server" };

	harness_note("%s%s", vec_str(s, "name"), bytewise ? " (byte by byte)" : "");
	memset(sides, 0, sizeof(sides));
	for (int i = 0; i < 2; i++) {
		const struct json *ctx = vec_field(s, names[i]);

		if (json_is_null(ctx))
			continue;
		sides[i].present = true;
		ep_from_context(&sides[i].e, ctx, OSS_BAD_RECORD_DISCONNECT);
		sides[i].recovers = sides[i].e.c->on_bad_record == OSS_BAD_RECORD_RESET;
		CHECK_EQ(ep_role(vec_str(ctx, "role")) == CONN_TYPE_CLIENT, i == 0);
	}
	CHECK(json_len(steps) > 0);
	for (size_t k = 0; k < json_len(steps); k++) {
		const struct json *st = json_at(steps, k);
		struct side *sd = pick(sides, vec_str(st, "side"));
		const char *action = vec_str(st, "action");
		size_t n;

		if (!sd->present)
			harness_fail(__FILE__, __LINE__, "step for an absent side");
		if (!action)
			harness_fail(__FILE__, __LINE__, "step without action");
		if (strcmp(action, "start") == 0) {
			uint8_t buf[256];

			n = sizeof(buf);
			app_call(sd, ossuary_send_handshake(sd->e.c, buf, &n), action);
			bytes_add(&sd->e.out, buf, n);
			ep_drain(&sd->e);
		} else if (strcmp(action, "send_data") == 0) {
			const uint8_t *d = vec_hex(st, "data", &n);

			do_send_data(sd, d, n);
		} else if (strcmp(action, "key_update") == 0) {
			app_call(sd, ossuary_key_update(sd->e.c, vec_bool(st, "request_reply")),
				 action);
		} else if (strcmp(action, "disconnect") == 0) {
			app_call(sd, ossuary_disconnect(sd->e.c, (int)vec_int(st, "reason")),
				 action);
		} else if (strcmp(action, "reset") == 0) {
			app_call(sd, ossuary_reset(sd->e.c), action);
		} else if (strcmp(action, "receive") == 0) {
			do_receive(sides, sd, st, bytewise);
		} else if (strcmp(action, "eof") == 0) {
			app_call(sd, ossuary_recv_eof(sd->e.c), action);
		} else {
			harness_fail(__FILE__, __LINE__, "unknown action \"%s\"", action);
		}
		check_step(sd, st, k);
	}
	for (int i = 0; i < 2; i++) {
		if (sides[i].present)
			ep_free(&sides[i].e);
		bytes_free(&sides[i].unread);
	}
}

static const struct json *streams(void)
{
	const struct json *ss = vec_array(vec_load("streams.json"), "streams");

	CHECK_EQ(json_len(ss), 12);
	return ss;
}

TEST(streams_whole)
{
	const struct json *ss = streams();

	for (size_t i = 0; i < json_len(ss); i++)
		run_stream(json_at(ss, i), false);
	vec_release();
}

TEST(streams_byte_by_byte)
{
	const struct json *ss = streams();

	for (size_t i = 0; i < json_len(ss); i++)
		run_stream(json_at(ss, i), true);
	vec_release();
}

/* The later handshakes' transcripts agree with their traffic secrets. */
TEST(stream_handshake_secrets)
{
	const struct json *ss = streams();
	size_t seen = 0;

	for (size_t i = 0; i < json_len(ss); i++) {
		const struct json *s = json_at(ss, i), *secrets = vec_field(s, "secrets");
		const struct json *hs = vec_array(s, "handshakes");

		for (size_t j = 0; j < json_len(hs); j++) {
			const struct json *tr = vec_field(json_at(hs, j), "transcript");
			const struct json *c2 = json_get(secrets, "c_app#2");
			const struct json *s2 = json_get(secrets, "s_app#2");
			size_t len;

			if (c2)
				CHECK_MEM(vec_unhex(json_str(c2), &len), vec_hex_n(tr, "c_app", 32), 32);
			if (s2)
				CHECK_MEM(vec_unhex(json_str(s2), &len), vec_hex_n(tr, "s_app", 32), 32);
			seen++;
		}
	}
	CHECK(seen >= 4);
	vec_release();
}
