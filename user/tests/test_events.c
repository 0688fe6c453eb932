/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Events under a flood: a peer that sends many KEY_UPDATEs before the
 * application looks at its events must not make it miss any of them, nor
 * hold back the data that follows, nor make the library hold more memory.
 */
#define HARNESS_MAIN
#include "harness.h"

#include "internal.h"

#define FLOOD 100

struct stream {
	uint8_t p[64 * 1024];
	size_t len;
};

/* Two connections, each established with the other's send secret. */
static void pair(OssuaryConnection **tx, OssuaryConnection **rx)
{
	uint8_t secret[32];

	memset(secret, 0x5a, sizeof(secret));
	*tx = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	*rx = ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER, NULL);
	CHECK(*tx && *rx);
	CHECK_EQ(ossuary__set_established(*tx, secret, 0, secret, 0, 0, false), OSSUARY_OK);
	CHECK_EQ(ossuary__set_established(*rx, secret, 0, secret, 0, 0, false), OSSUARY_OK);
}

static void flush_into(OssuaryConnection *c, struct stream *s)
{
	ssize_t n = ossuary_flush(c, s->p + s->len, sizeof(s->p) - s->len);

	CHECK(n >= 0);
	s->len += (size_t)n;
}

static void key_update(OssuaryConnection *c, struct stream *s, int request)
{
	CHECK_EQ(ossuary_key_update(c, request), OSSUARY_OK);
	flush_into(c, s);
}

static void send_text(OssuaryConnection *c, struct stream *s, const char *text)
{
	size_t n = sizeof(s->p) - s->len;

	CHECK_EQ(ossuary_send_data(c, (const uint8_t *)text, strlen(text),
				   s->p + s->len, &n), (ssize_t)strlen(text));
	s->len += n;
}

static void disconnect(OssuaryConnection *c, struct stream *s)
{
	CHECK_EQ(ossuary_disconnect(c, OSSUARY_DISCONNECT_CLEAN), OSSUARY_OK);
	flush_into(c, s);
}

/*
 * Feeds the stream to rx at most `chunk` bytes at a time (whatever is
 * left unconsumed is offered again with the next chunk), as an
 * application that reads and never asks for events. Returns the last
 * result: OSSUARY_ERR_EOF once the peer's DISCONNECT(0) is read.
 */
static ssize_t receive(OssuaryConnection *rx, const struct stream *s, size_t chunk,
		       char *got, size_t cap, size_t *got_len)
{
	size_t pos = 0, win = chunk;
	ssize_t r = 0;

	*got_len = 0;
	while (pos < s->len) {
		size_t in = win < s->len - pos ? win : s->len - pos;
		size_t offered = in, room = cap - *got_len;

		r = ossuary_recv_data(rx, s->p + pos, &in, (uint8_t *)got + *got_len, &room);
		if (r < 0 && r != OSSUARY_ERR_WOULD_BLOCK)
			break;
		if (r >= 0)
			*got_len += room;
		pos += in;
		if (in == 0) {
			/* nothing consumed: only a partial record was offered */
			CHECK(offered < s->len - pos + in);
			win += chunk;
		} else {
			win = chunk;
		}
	}
	return r;
}

/* All events now pending, in order; returns how many. */
static size_t events(OssuaryConnection *c, int *ev, size_t cap)
{
	size_t n = 0;
	int e;

	while ((e = ossuary_next_event(c)) > 0) {
		CHECK(n < cap);
		ev[n++] = e;
	}
	CHECK_EQ(e, OSSUARY_EVENT_NONE);
	return n;
}

static void check_flood(size_t chunk)
{
	OssuaryConnection *tx, *rx;
	static struct stream s;
	static int ev[4 * FLOOD];
	char got[256];
	size_t got_len, n, i;

	pair(&tx, &rx);
	s.len = 0;
	send_text(tx, &s, "before ");
	for (i = 0; i < FLOOD; i++)
		key_update(tx, &s, 0);
	send_text(tx, &s, "between ");
	for (i = 0; i < FLOOD; i++)
		key_update(tx, &s, 1);
	send_text(tx, &s, "after");
	disconnect(tx, &s);

	CHECK_EQ(receive(rx, &s, chunk, got, sizeof(got), &got_len), OSSUARY_ERR_EOF);
	CHECK_EQ(got_len, strlen("before between after"));
	CHECK_MEM(got, "before between after", got_len);
	/* every update applied: rx's receive key is tx's send key */
	{
		uint8_t t[32], r[32], t2[32], r2[32];
		uint64_t a, b, a2, b2;

		CHECK_EQ(ossuary__debug_traffic(tx, t, &a, r, &b), OSSUARY_OK);
		CHECK_EQ(ossuary__debug_traffic(rx, t2, &a2, r2, &b2), OSSUARY_OK);
		CHECK_MEM(r2, t, 32);
		CHECK_EQ(b2, a);
	}
	n = events(rx, ev, sizeof(ev) / sizeof(ev[0]));
	CHECK_EQ(n, 2 * FLOOD + 1);
	for (i = 0; i < FLOOD; i++)
		CHECK_EQ(ev[i], OSSUARY_EVENT_KEY_UPDATE);
	for (; i < 2 * FLOOD; i++)
		CHECK_EQ(ev[i], OSSUARY_EVENT_KEY_UPDATE_REQUESTED);
	CHECK_EQ(ev[i], OSSUARY_EVENT_END_OF_FILE);
	CHECK_EQ(ossuary_next_event(rx), OSSUARY_EVENT_NONE);
	ossuary_destroy_connection(&tx);
	ossuary_destroy_connection(&rx);
}

/* The whole stream in one call: every event reported, in order, all data in. */
TEST(key_update_flood_all_at_once)
{
	check_flood(SIZE_MAX / 2);
}

/* The same stream a record's worth and a byte at a time. */
TEST(key_update_flood_in_pieces)
{
	check_flood(21);
	check_flood(1);
}

/* 0, 1, 0, 1, ...: the kinds alternate, so no two updates share a run. */
static void alternating(OssuaryConnection *tx, struct stream *s, size_t n)
{
	s->len = 0;
	send_text(tx, s, "before ");
	for (size_t i = 0; i < n; i++)
		key_update(tx, s, (int)(i & 1));
	send_text(tx, s, "after");
	disconnect(tx, s);
}

/*
 * An application that never asks for events until the end still gets
 * every update counted by kind, the first ones in exact order, and all
 * its data; the events kept take no more room however many there are.
 */
TEST(alternating_key_updates_counted_by_kind)
{
	OssuaryConnection *tx, *rx;
	static struct stream s;
	static int ev[4 * FLOOD];
	const size_t exact = OSS_EVENTS_MAX - OSS_EVENTS_RESERVE;
	size_t got_len, n, i, kind[2] = { 0, 0 };
	char got[64];

	pair(&tx, &rx);
	alternating(tx, &s, 3 * FLOOD);
	CHECK_EQ(receive(rx, &s, SIZE_MAX / 2, got, sizeof(got), &got_len),
		 OSSUARY_ERR_EOF);
	CHECK_EQ(got_len, strlen("before after"));
	CHECK_MEM(got, "before after", got_len);
	n = events(rx, ev, sizeof(ev) / sizeof(ev[0]));
	CHECK_EQ(n, 3 * FLOOD + 1);
	for (i = 0; i < exact; i++)
		CHECK_EQ(ev[i], i & 1 ? OSSUARY_EVENT_KEY_UPDATE_REQUESTED
				      : OSSUARY_EVENT_KEY_UPDATE);
	for (i = 0; i < 3 * FLOOD; i++) {
		CHECK(ev[i] == OSSUARY_EVENT_KEY_UPDATE ||
		      ev[i] == OSSUARY_EVENT_KEY_UPDATE_REQUESTED);
		kind[ev[i] == OSSUARY_EVENT_KEY_UPDATE_REQUESTED]++;
	}
	CHECK_EQ(kind[0], 3 * FLOOD / 2);
	CHECK_EQ(kind[1], 3 * FLOOD / 2);
	CHECK_EQ(ev[n - 1], OSSUARY_EVENT_END_OF_FILE);
	ossuary_destroy_connection(&tx);
	ossuary_destroy_connection(&rx);
}

/* One that asks after every read sees every update in exact order. */
TEST(alternating_key_updates_in_order_when_polled)
{
	OssuaryConnection *tx, *rx;
	static struct stream s;
	size_t pos = 0, n = 0, got_len = 0;
	char got[64];
	ssize_t r = 0;
	int e;

	pair(&tx, &rx);
	alternating(tx, &s, 3 * FLOOD);
	/* a few records per read: more updates than a run of slots holds in all */
	while (pos < s.len) {
		size_t in = s.len - pos < 200 ? s.len - pos : 200;
		size_t room = sizeof(got) - got_len;

		r = ossuary_recv_data(rx, s.p + pos, &in, (uint8_t *)got + got_len, &room);
		while ((e = ossuary_next_event(rx)) > 0) {
			if (n < 3 * FLOOD)
				CHECK_EQ(e, n & 1 ? OSSUARY_EVENT_KEY_UPDATE_REQUESTED
						  : OSSUARY_EVENT_KEY_UPDATE);
			else
				CHECK_EQ(e, OSSUARY_EVENT_END_OF_FILE);
			n++;
		}
		if (r < 0 && r != OSSUARY_ERR_WOULD_BLOCK)
			break;
		if (r > 0)
			got_len += room;
		pos += in;
		CHECK(in > 0 || s.len - pos > 200);
	}
	CHECK_EQ(r, OSSUARY_ERR_EOF);
	CHECK_EQ(n, 3 * FLOOD + 1);
	CHECK_EQ(got_len, strlen("before after"));
	CHECK_MEM(got, "before after", got_len);
	ossuary_destroy_connection(&tx);
	ossuary_destroy_connection(&rx);
}

/*
 * The worst a peer can do to the slots, driven straight at the queue:
 * between every event that can happen only a bounded number of times per
 * connection, a long alternation of both key-update kinds, none read.
 * Every event comes out once; none of the bounded ones moves past a key
 * update, nor a key update past one of them.
 */
TEST(bounded_events_keep_their_place_among_key_updates)
{
	static const int bounded[OSS_EVENTS_BOUNDED] = {
		OSSUARY_EVENT_HANDSHAKE_DONE,
		OSSUARY_EVENT_RESET, OSSUARY_EVENT_HANDSHAKE_DONE,
		OSSUARY_EVENT_RESET_AFTER_FAILURE, OSSUARY_EVENT_HANDSHAKE_DONE,
		OSSUARY_EVENT_RESET, OSSUARY_EVENT_HANDSHAKE_DONE,
		OSSUARY_EVENT_RESET_AFTER_FAILURE, OSSUARY_EVENT_HANDSHAKE_DONE,
		OSSUARY_EVENT_END_OF_FILE, OSSUARY_EVENT_HANDSHAKE_FAILED,
	};
	OssuaryConnection *c = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	size_t b, i, kind[2];
	int e;

	CHECK(c);
	for (b = 0; b < OSS_EVENTS_BOUNDED; b++) {
		for (i = 0; i < 3 * FLOOD; i++)
			oss_event(c, i & 1 ? OSSUARY_EVENT_KEY_UPDATE_REQUESTED
					   : OSSUARY_EVENT_KEY_UPDATE);
		oss_event(c, bounded[b]);
		CHECK(c->ev_count < OSS_EVENTS_MAX);
	}
	for (i = 0; i < 3 * FLOOD; i++)
		oss_event(c, i & 1 ? OSSUARY_EVENT_KEY_UPDATE_REQUESTED
				   : OSSUARY_EVENT_KEY_UPDATE);
	/* the most slots this can take: all of them, and no more */
	CHECK_EQ(c->ev_count, OSS_EVENTS_MAX);
	for (b = 0; b < OSS_EVENTS_BOUNDED; b++) {
		kind[0] = kind[1] = 0;
		for (i = 0; i < 3 * FLOOD; i++) {
			e = ossuary_next_event(c);
			CHECK(e == OSSUARY_EVENT_KEY_UPDATE ||
			      e == OSSUARY_EVENT_KEY_UPDATE_REQUESTED);
			kind[e == OSSUARY_EVENT_KEY_UPDATE_REQUESTED]++;
		}
		CHECK_EQ(kind[0], 3 * FLOOD / 2);
		CHECK_EQ(kind[1], 3 * FLOOD / 2);
		CHECK_EQ(ossuary_next_event(c), bounded[b]);
	}
	for (i = 0; i < 3 * FLOOD; i++) {
		e = ossuary_next_event(c);
		CHECK(e == OSSUARY_EVENT_KEY_UPDATE ||
		      e == OSSUARY_EVENT_KEY_UPDATE_REQUESTED);
	}
	CHECK_EQ(ossuary_next_event(c), OSSUARY_EVENT_NONE);
	ossuary_destroy_connection(&c);
}
