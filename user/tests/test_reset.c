/* SPDX-License-Identifier: Apache-2.0 */
/*
 * RESET end to end in memory: a record damaged in transit is skipped, the
 * two sides exchange RESET, the client re-handshakes on the same stream
 * and the channel carries data again under new secrets. Four exchanges
 * are allowed per connection; the fifth is refused with DISCONNECT(1).
 *
 * Revision 2.1: the handshake stage's one-way RESET (client only, never
 * answered, counted), the initiator's silence until the peer's RESET, a
 * reset started by a failed record that can never end cleanly, and the
 * two reset events (OSSUARY_EVENT_RESET, _RESET_AFTER_FAILURE).
 */
#define HARNESS_MAIN
/* harness.h's main() keeps locals across setjmp that GCC -O2 flags falsely. */
#include "harness.h"

#include <sodium.h>

#include "internal.h"
#include "util/endpoint.h"

struct pair {
	struct ep c, s;
	uint8_t server_sk[32], server_pk[32], client_sk[32], client_pk[32];
};

static void established_pair(struct pair *p)
{
	CHECK_EQ(ossuary_generate_auth_keypair(p->server_sk, p->server_pk), OSSUARY_OK);
	CHECK_EQ(ossuary_generate_auth_keypair(p->client_sk, p->client_pk), OSSUARY_OK);
	ep_init(&p->c, ossuary_create_connection(CONN_TYPE_CLIENT, p->client_sk));
	ep_init(&p->s, ossuary_create_connection(CONN_TYPE_AUTHENTICATED_SERVER,
						 p->server_sk));
	CHECK_EQ(ossuary_add_authorized_key(p->c.c, p->server_pk), OSSUARY_OK);
	CHECK_EQ(ossuary_add_authorized_key(p->s.c, p->client_pk), OSSUARY_OK);
	ep_handshake(&p->c, &p->s);
	CHECK_EQ(ossuary_handshake_done(p->c.c), 1);
	CHECK_EQ(ossuary_handshake_done(p->s.c), 1);
}

static void free_pair(struct pair *p)
{
	ep_free(&p->c);
	ep_free(&p->s);
}

static size_t count(const struct ep *e, int ev)
{
	size_t n = 0;

	for (size_t i = 0; i < e->n_events; i++)
		n += e->events[i] == ev;
	return n;
}

static void clear(struct ep *e)
{
	bytes_clear(&e->delivered);
	e->n_events = 0;
}

/* Data flows both ways; returns the client's current send secret. */
static void exchange(struct pair *p, uint8_t c_tx[32])
{
	uint8_t rx[32];
	uint64_t a, b;

	clear(&p->c);
	clear(&p->s);
	ep_send(&p->c, "up", 2);
	ep_send(&p->s, "down", 4);
	ep_shuttle(&p->c, &p->s);
	CHECK_EQ(p->c.err, 0);
	CHECK_EQ(p->s.err, 0);
	CHECK_EQ(p->s.delivered.len, 2);
	CHECK_MEM(p->s.delivered.p, "up", 2);
	CHECK_EQ(p->c.delivered.len, 4);
	CHECK_MEM(p->c.delivered.p, "down", 4);
	CHECK_EQ(ossuary__debug_traffic(p->c.c, c_tx, &a, rx, &b), OSSUARY_OK);
}

/* The server sends three records; the middle one is damaged in transit. */
static void damaged_record(struct pair *p)
{
	struct bytes wire;
	size_t first;

	ep_send(&p->s, "one", 3);
	first = p->s.out.len;
	ep_send(&p->s, "two", 3);
	ep_send(&p->s, "three", 5);
	wire = p->s.out;
	memset(&p->s.out, 0, sizeof(p->s.out));
	wire.p[first + 4] ^= 0x01;	/* first ciphertext byte of "two" */
	ep_feed(&p->c, wire.p, wire.len);
	bytes_free(&wire);
}

/* One recovery: RESET, RESET, then a new handshake on the same stream. */
static void recover(struct pair *p, unsigned int n)
{
	clear(&p->c);
	clear(&p->s);
	damaged_record(p);
	/* "one" only; "three" opened and discarded; no error for the app. */
	CHECK_EQ(p->c.err, 0);
	CHECK_EQ(p->c.delivered.len, 3);
	CHECK_MEM(p->c.delivered.p, "one", 3);
	CHECK(p->c.c->reset_sent);
	CHECK_EQ(p->c.out.len, 21);
	CHECK_EQ(p->c.out.p[1], OSSUARY_RECORD_RESET);
	ep_shuttle(&p->c, &p->s);
	CHECK_EQ(p->c.err, 0);
	CHECK_EQ(p->s.err, 0);
	/* The client started it on a failed record; the server was asked. */
	CHECK_EQ(count(&p->c, OSSUARY_EVENT_RESET_AFTER_FAILURE), 1);
	CHECK_EQ(count(&p->c, OSSUARY_EVENT_RESET), 0);
	CHECK_EQ(count(&p->s, OSSUARY_EVENT_RESET), 1);
	CHECK_EQ(count(&p->s, OSSUARY_EVENT_RESET_AFTER_FAILURE), 0);
	CHECK_EQ(count(&p->c, OSSUARY_EVENT_HANDSHAKE_DONE), 1);
	CHECK_EQ(count(&p->s, OSSUARY_EVENT_HANDSHAKE_DONE), 1);
	CHECK_EQ(p->c.c->resets_so_far, n);
	CHECK_EQ(p->s.c->resets_so_far, n);
	CHECK_EQ(ossuary_handshake_done(p->c.c), 1);
	CHECK_EQ(ossuary_handshake_done(p->s.c), 1);
}

TEST(reset_recovers_after_a_damaged_record)
{
	struct pair p;
	uint8_t before[32], after[32];

	established_pair(&p);
	exchange(&p, before);
	recover(&p, 1);
	exchange(&p, after);
	CHECK(memcmp(before, after, 32) != 0);
	free_pair(&p);
}

/* The application sees OSSUARY_ERR_RESET from recv_data each time. */
TEST(application_sees_reset)
{
	struct pair p;
	uint8_t in[64], out[64];
	size_t in_len, room;

	established_pair(&p);
	CHECK_EQ(ossuary_reset(p.s.c), OSSUARY_OK);
	CHECK_EQ(ossuary_reset(p.s.c), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_flush(p.s.c, in, sizeof(in)), 21);
	room = sizeof(out);
	CHECK_EQ(ossuary_send_data(p.s.c, (const uint8_t *)"x", 1, out, &room),
		 OSSUARY_ERR_RESET);
	in_len = 21;
	room = sizeof(out);
	CHECK_EQ(ossuary_recv_data(p.c.c, in, &in_len, out, &room), OSSUARY_ERR_RESET);
	CHECK_EQ(in_len, 21);
	CHECK_EQ(ossuary_handshake_done(p.c.c), 0);
	/* The client answered RESET, then CLIENT_HELLO. */
	CHECK_EQ(ossuary_flush(p.c.c, in, sizeof(in)), 21);
	in_len = 21;
	room = sizeof(out);
	CHECK_EQ(ossuary_recv_data(p.s.c, in, &in_len, out, &room), OSSUARY_ERR_RESET);
	CHECK_EQ(ossuary_handshake_done(p.s.c), 0);
	room = sizeof(out);
	CHECK_EQ(ossuary_recv_data(p.s.c, in, &in_len, out, &room), OSSUARY_ERR_RESET);
	ep_drain(&p.c);
	CHECK_EQ(p.c.out.len, 80);
	ep_shuttle(&p.c, &p.s);
	CHECK_EQ(ossuary_handshake_done(p.c.c), 1);
	CHECK_EQ(ossuary_handshake_done(p.s.c), 1);
	free_pair(&p);
}

TEST(fifth_reset_refused_after_damage)
{
	struct pair p;
	uint8_t k[32];

	established_pair(&p);
	for (unsigned int i = 1; i <= 4; i++) {
		recover(&p, i);
		exchange(&p, k);
	}
	clear(&p.c);
	clear(&p.s);
	damaged_record(&p);
	CHECK_EQ(p.c.err, OSSUARY_ERR_TOO_MANY_RESETS);
	/* DISCONNECT(1), sealed: the server still holds its receive secret. */
	CHECK_EQ(p.c.out.len, 21);
	CHECK_EQ(p.c.out.p[1], OSSUARY_RECORD_DISCONNECT);
	ep_shuttle(&p.c, &p.s);
	CHECK_EQ(p.s.err, OSSUARY_ERR_DISCONNECTED);
	free_pair(&p);
}

TEST(fifth_reset_refused_when_asked)
{
	struct pair p;
	uint8_t k[32];

	established_pair(&p);
	for (unsigned int i = 1; i <= 4; i++) {
		recover(&p, i);
		exchange(&p, k);
	}
	CHECK_EQ(ossuary_reset(p.s.c), OSSUARY_ERR_TOO_MANY_RESETS);
	ep_drain(&p.s);
	CHECK_EQ(p.s.out.len, 21);
	ep_shuttle(&p.c, &p.s);
	CHECK_EQ(p.c.err, OSSUARY_ERR_DISCONNECTED);
	free_pair(&p);
}

/* A peer at its limit refuses our RESET with DISCONNECT(1). */
TEST(fifth_reset_refused_by_the_peer)
{
	struct pair p;

	established_pair(&p);
	p.s.c->resets_so_far = 4;
	CHECK_EQ(ossuary_reset(p.c.c), OSSUARY_OK);
	ep_drain(&p.c);
	ep_shuttle(&p.c, &p.s);
	CHECK_EQ(p.s.err, OSSUARY_ERR_TOO_MANY_RESETS);
	CHECK_EQ(p.c.err, OSSUARY_ERR_DISCONNECTED);
	free_pair(&p);
}

/* Both sides start a reset at once: each answers nobody, both recover. */
TEST(simultaneous_reset)
{
	struct pair p;
	uint8_t k[32];

	established_pair(&p);
	clear(&p.c);
	clear(&p.s);
	CHECK_EQ(ossuary_reset(p.c.c), OSSUARY_OK);
	CHECK_EQ(ossuary_reset(p.s.c), OSSUARY_OK);
	ep_drain(&p.c);
	ep_drain(&p.s);
	ep_shuttle(&p.c, &p.s);
	CHECK_EQ(count(&p.c, OSSUARY_EVENT_RESET), 1);
	CHECK_EQ(count(&p.s, OSSUARY_EVENT_RESET), 1);
	exchange(&p, k);
	free_pair(&p);
}

/* A half-closed side answers a RESET with nothing, and reports a reset. */
TEST(reset_to_half_closed_side)
{
	struct pair p;

	established_pair(&p);
	CHECK_EQ(ossuary_disconnect(p.c.c, 0), OSSUARY_OK);
	CHECK_EQ(ossuary_reset(p.c.c), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_reset(p.s.c), OSSUARY_OK);
	ep_drain(&p.c);
	ep_drain(&p.s);
	ep_shuttle(&p.c, &p.s);
	CHECK_EQ(p.c.err, OSSUARY_ERR_RESET);
	CHECK_EQ(p.c.out.len, 0);
	free_pair(&p);
}

/*
 * Resets started by either side at random moments, with data and key
 * updates in flight in both directions and bytes delivered in random
 * pieces: nobody reports an error, and after the dust settles both
 * sides are established again and talk.
 */
TEST(random_resets_with_traffic_in_flight)
{
	static uint8_t buf[4096];
	struct pair p;
	struct ep *side[2];
	uint8_t k[32];

	established_pair(&p);
	side[0] = &p.c;
	side[1] = &p.s;
	while (p.c.c->resets_so_far < 4) {
		int who = (int)randombytes_uniform(2);
		struct ep *e = side[who], *peer = side[!who];

		switch (randombytes_uniform(6)) {
		case 0:
			if (ossuary_handshake_done(e->c) == 1 && !e->c->reset_sent &&
			    e->c->resets_so_far < 4)
				CHECK_EQ(ossuary_reset(e->c), OSSUARY_OK);
			ep_drain(e);
			break;
		case 1:
			if (ossuary_handshake_done(e->c) == 1 && !e->c->reset_sent)
				CHECK_EQ(ossuary_key_update(e->c, (int)randombytes_uniform(2)),
					 OSSUARY_OK);
			ep_drain(e);
			break;
		case 2:
			if (ossuary_handshake_done(e->c) == 1 && !e->c->reset_sent) {
				size_t n = randombytes_uniform(sizeof(buf));

				randombytes_buf(buf, n);
				ep_send(e, buf, n);
			}
			break;
		default: {
			size_t n = randombytes_uniform((uint32_t)e->out.len + 1);
			struct bytes now = e->out, rest = { 0 };

			bytes_add(&rest, now.p + n, now.len - n);
			e->out = rest;
			ep_feed(peer, now.p, n);
			bytes_free(&now);
			break;
		}
		}
		CHECK_EQ(p.c.err, 0);
		CHECK_EQ(p.s.err, 0);
		p.c.n_events = p.s.n_events = 0;
	}
	ep_shuttle(&p.c, &p.s);
	CHECK_EQ(p.c.err, 0);
	CHECK_EQ(p.s.err, 0);
	CHECK_EQ(p.s.c->resets_so_far, 4);
	exchange(&p, k);
	free_pair(&p);
}

/* ---- Revision 2.1 ---- */

static const uint8_t CLEAR_RESET[5] = { 2, OSSUARY_RECORD_RESET, 0, 1, 0 };
static const uint8_t CLEAR_DISCONNECT_1[5] = { 2, OSSUARY_RECORD_DISCONNECT, 0, 1, 1 };

/* Moves e's unread output into *b (the caller frees it). */
static void take(struct ep *e, struct bytes *b)
{
	*b = e->out;
	memset(&e->out, 0, sizeof(e->out));
}

/* Delivers e's unread output to peer, optionally flipping its last bit. */
static void pass(struct ep *e, struct ep *peer, bool damage)
{
	struct bytes w;

	take(e, &w);
	if (damage && w.len)
		w.p[w.len - 1] ^= 0x01;
	ep_feed(peer, w.p, w.len);
	bytes_free(&w);
}

/* A client whose CLIENT_HELLO the server has answered: SERVER_HELLO in s.out. */
static void hello_pair(struct pair *p)
{
	uint8_t buf[128];
	size_t n = sizeof(buf);

	CHECK_EQ(ossuary_generate_auth_keypair(p->server_sk, p->server_pk), OSSUARY_OK);
	CHECK_EQ(ossuary_generate_auth_keypair(p->client_sk, p->client_pk), OSSUARY_OK);
	ep_init(&p->c, ossuary_create_connection(CONN_TYPE_CLIENT, p->client_sk));
	ep_init(&p->s, ossuary_create_connection(CONN_TYPE_AUTHENTICATED_SERVER,
						 p->server_sk));
	CHECK_EQ(ossuary_add_authorized_key(p->c.c, p->server_pk), OSSUARY_OK);
	CHECK_EQ(ossuary_add_authorized_key(p->s.c, p->client_pk), OSSUARY_OK);
	CHECK_EQ(ossuary_send_handshake(p->c.c, buf, &n), 80);
	ep_feed(&p->s, buf, n);
	CHECK_EQ(p->s.out.len, 192);
}

/*
 * Handshake stage: a SERVER_HELLO that fails to open makes the client
 * send a cleartext RESET and at once a fresh CLIENT_HELLO; the server
 * counts it, answers only the CLIENT_HELLO, and the handshake completes.
 */
TEST(handshake_reset_after_a_damaged_server_hello)
{
	struct pair p;
	uint8_t k[32];

	hello_pair(&p);
	pass(&p.s, &p.c, true);
	CHECK_EQ(p.c.err, 0);
	CHECK_EQ(p.c.out.len, 5 + 80);
	CHECK_MEM(p.c.out.p, CLEAR_RESET, 5);
	CHECK_EQ(p.c.out.p[6], OSSUARY_RECORD_CLIENT_HELLO);
	CHECK_EQ(count(&p.c, OSSUARY_EVENT_RESET_AFTER_FAILURE), 1);
	CHECK_EQ(p.c.c->resets_so_far, 1);
	CHECK_EQ(ossuary_handshake_done(p.c.c), 0);
	clear(&p.c);
	pass(&p.c, &p.s, false);
	CHECK_EQ(p.s.err, 0);
	CHECK_EQ(p.s.out.len, 192);	/* SERVER_HELLO, nothing for the RESET */
	CHECK_EQ(p.s.out.p[1], OSSUARY_RECORD_SERVER_HELLO);
	CHECK_EQ(count(&p.s, OSSUARY_EVENT_RESET), 1);
	CHECK_EQ(p.s.c->resets_so_far, 1);
	ep_shuttle(&p.c, &p.s);
	CHECK_EQ(ossuary_handshake_done(p.c.c), 1);
	CHECK_EQ(ossuary_handshake_done(p.s.c), 1);
	exchange(&p, k);
	free_pair(&p);
}

/* Where the client would fail instead (kernel-like policy): DISCONNECT(1). */
TEST(damaged_server_hello_without_recovery)
{
	struct pair p;

	hello_pair(&p);
	ossuary__set_on_bad_record(p.c.c, OSS_BAD_RECORD_DISCONNECT);
	pass(&p.s, &p.c, true);
	CHECK_EQ(p.c.err, OSSUARY_ERR_DECRYPT);
	CHECK_EQ(p.c.out.len, 5);
	CHECK_MEM(p.c.out.p, CLEAR_DISCONNECT_1, 5);
	free_pair(&p);
}

/* Servers never send RESET in the handshake stage: a client refuses one. */
TEST(client_in_handshake_refuses_reset)
{
	struct pair p;

	hello_pair(&p);
	ep_feed(&p.c, CLEAR_RESET, 5);
	CHECK_EQ(p.c.err, OSSUARY_ERR_PROTOCOL);
	CHECK_EQ(p.c.out.len, 5);
	CHECK_MEM(p.c.out.p, CLEAR_DISCONNECT_1, 5);
	CHECK_EQ(p.c.c->resets_so_far, 0);
	CHECK_EQ(count(&p.c, OSSUARY_EVENT_RESET), 0);
	free_pair(&p);
}

/* Handshake-stage resets count: the client's fifth is refused. */
TEST(fifth_handshake_reset_refused_by_the_client)
{
	struct pair p;

	hello_pair(&p);
	for (unsigned int i = 1; i <= 4; i++) {
		pass(&p.s, &p.c, true);
		CHECK_EQ(p.c.err, 0);
		CHECK_EQ(p.c.c->resets_so_far, i);
		pass(&p.c, &p.s, false);
		CHECK_EQ(p.s.err, 0);
		CHECK_EQ(p.s.c->resets_so_far, i);
		CHECK_EQ(p.s.out.len, 192);
	}
	pass(&p.s, &p.c, true);
	CHECK_EQ(p.c.err, OSSUARY_ERR_TOO_MANY_RESETS);
	CHECK_EQ(p.c.out.len, 5);
	CHECK_MEM(p.c.out.p, CLEAR_DISCONNECT_1, 5);
	pass(&p.c, &p.s, false);
	CHECK_EQ(p.s.err, OSSUARY_ERR_DISCONNECTED);
	free_pair(&p);
}

/* ... and a server refuses the fifth cleartext RESET, waiting or not. */
TEST(fifth_handshake_reset_refused_by_the_server)
{
	struct pair p;

	hello_pair(&p);
	clear(&p.s);
	bytes_clear(&p.s.out);
	for (unsigned int i = 1; i <= 4; i++) {
		ep_feed(&p.s, CLEAR_RESET, 5);
		CHECK_EQ(p.s.err, 0);
		CHECK_EQ(p.s.c->resets_so_far, i);
		CHECK_EQ(p.s.out.len, 0);
	}
	CHECK_EQ(count(&p.s, OSSUARY_EVENT_RESET), 4);
	ep_feed(&p.s, CLEAR_RESET, 5);
	CHECK_EQ(p.s.err, OSSUARY_ERR_TOO_MANY_RESETS);
	CHECK_EQ(p.s.out.len, 5);
	CHECK_MEM(p.s.out.p, CLEAR_DISCONNECT_1, 5);
	free_pair(&p);
}

/*
 * A reset started because a record failed to open: if the peer closes
 * (DISCONNECT(0), DISCONNECT(1), or just FIN) before its RESET arrives,
 * the reader gets the integrity error, never end-of-file.
 */
TEST(failed_record_reset_never_ends_in_eof)
{
	for (int how = 0; how < 3; how++) {
		struct pair p;
		uint8_t out[64];
		size_t il = 0, ol = sizeof(out);

		established_pair(&p);
		clear(&p.c);
		damaged_record(&p);
		CHECK(p.c.c->reset_sent);
		CHECK_EQ(p.c.out.len, 21);
		/* The server closes before it reads the client's RESET. */
		if (how < 2) {
			CHECK_EQ(ossuary_disconnect(p.s.c, how), OSSUARY_OK);
			ep_drain(&p.s);
			pass(&p.s, &p.c, false);
			CHECK_EQ(p.c.err, OSSUARY_ERR_DECRYPT);
		}
		CHECK_EQ(ossuary_recv_eof(p.c.c), OSSUARY_ERR_DECRYPT);
		CHECK_EQ(ossuary_recv_data(p.c.c, NULL, &il, out, &ol), OSSUARY_ERR_DECRYPT);
		CHECK_EQ(ossuary_handshake_done(p.c.c), OSSUARY_ERR_DECRYPT);
		ep_drain(&p.c);
		CHECK_EQ(count(&p.c, OSSUARY_EVENT_END_OF_FILE), 0);
		CHECK_EQ(p.c.delivered.len, 3);	/* "one", never anything after */
		CHECK_EQ(p.c.out.len, 21);	/* its RESET; nothing answers the close */
		free_pair(&p);
	}
}

/* An application's reset that the peer's DISCONNECT(0) overtakes reads end-of-file. */
TEST(asked_reset_ends_in_eof_when_the_peer_closes)
{
	struct pair p;
	uint8_t out[64];
	size_t il = 0, ol = sizeof(out);

	established_pair(&p);
	clear(&p.c);
	CHECK_EQ(ossuary_reset(p.c.c), OSSUARY_OK);
	ep_drain(&p.c);
	CHECK_EQ(ossuary_disconnect(p.s.c, 0), OSSUARY_OK);
	ep_drain(&p.s);
	pass(&p.s, &p.c, false);
	CHECK_EQ(p.c.err, 0);
	CHECK_EQ(count(&p.c, OSSUARY_EVENT_END_OF_FILE), 1);
	CHECK_EQ(ossuary_recv_data(p.c.c, NULL, &il, out, &ol), OSSUARY_ERR_EOF);
	CHECK_EQ(ossuary_recv_eof(p.c.c), OSSUARY_OK);
	free_pair(&p);
}

/*
 * The initiator seals nothing more until the peer's RESET: no DATA, no
 * KEY_UPDATE, no answer to KEY_UPDATE(1); what the peer sealed before it
 * saw our RESET is opened and dropped. Then both recover.
 */
TEST(reset_initiator_sends_nothing_more)
{
	struct pair p;
	uint8_t out[64], k[32];
	size_t room = sizeof(out);

	established_pair(&p);
	clear(&p.c);
	clear(&p.s);
	CHECK_EQ(ossuary_reset(p.c.c), OSSUARY_OK);
	ep_drain(&p.c);
	CHECK_EQ(p.c.out.len, 21);
	CHECK_EQ(ossuary_send_data(p.c.c, (const uint8_t *)"x", 1, out, &room),
		 OSSUARY_ERR_RESET);
	CHECK_EQ(ossuary_key_update(p.c.c, 0), OSSUARY_ERR_RESET);
	CHECK_EQ(ossuary_disconnect(p.c.c, 0), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_reset(p.c.c), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_key_update(p.s.c, 1), OSSUARY_OK);
	ep_drain(&p.s);
	ep_send(&p.s, "lost", 4);
	pass(&p.s, &p.c, false);
	CHECK_EQ(p.c.err, 0);
	CHECK_EQ(p.c.out.len, 21);
	CHECK_EQ(p.c.delivered.len, 0);
	CHECK_EQ(p.c.n_events, 0);
	ep_shuttle(&p.c, &p.s);
	CHECK_EQ(count(&p.c, OSSUARY_EVENT_RESET), 1);
	CHECK_EQ(count(&p.s, OSSUARY_EVENT_RESET), 1);
	exchange(&p, k);
	free_pair(&p);
}

/* Requests read in one input share one KEY_UPDATE(0); read apart, one each. */
TEST(key_update_requests_coalesce)
{
	struct pair p;
	uint8_t k[32];

	established_pair(&p);
	clear(&p.s);
	CHECK_EQ(ossuary_key_update(p.c.c, 1), OSSUARY_OK);
	ep_drain(&p.c);
	ep_send(&p.c, "between", 7);
	CHECK_EQ(ossuary_key_update(p.c.c, 1), OSSUARY_OK);
	ep_drain(&p.c);
	pass(&p.c, &p.s, false);
	CHECK_EQ(p.s.err, 0);
	CHECK_EQ(count(&p.s, OSSUARY_EVENT_KEY_UPDATE_REQUESTED), 2);
	CHECK_EQ(p.s.delivered.len, 7);
	CHECK_EQ(p.s.out.len, 21);
	exchange(&p, k);

	clear(&p.s);
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(ossuary_key_update(p.c.c, 1), OSSUARY_OK);
		ep_drain(&p.c);
		pass(&p.c, &p.s, false);
	}
	CHECK_EQ(count(&p.s, OSSUARY_EVENT_KEY_UPDATE_REQUESTED), 2);
	CHECK_EQ(p.s.out.len, 42);
	exchange(&p, k);
	free_pair(&p);
}

/*
 * A CLIENT_AUTH that fails to open: the server answers a cleartext
 * DISCONNECT(1); the client, established on its side, reports a failed
 * handshake (its own code and event) and sends nothing back, whatever
 * the reason byte says.
 */
TEST(client_auth_that_fails_to_open)
{
	for (uint8_t reason = 0; reason < 4; reason++) {
		struct pair p;
		uint8_t clear_dc[5] = { 2, OSSUARY_RECORD_DISCONNECT, 0, 1, reason };

		hello_pair(&p);
		pass(&p.s, &p.c, false);
		CHECK_EQ(ossuary_handshake_done(p.c.c), 1);
		CHECK_EQ(p.c.out.len, 116);
		if (reason == 1) {
			pass(&p.c, &p.s, true);	/* the real server's answer */
			CHECK_EQ(p.s.err, OSSUARY_ERR_DECRYPT);
			CHECK_EQ(p.s.out.len, 5);
			CHECK_MEM(p.s.out.p, CLEAR_DISCONNECT_1, 5);
			pass(&p.s, &p.c, false);
		} else {
			bytes_clear(&p.c.out);
			ep_feed(&p.c, clear_dc, 5);
		}
		CHECK_EQ(p.c.err, OSSUARY_ERR_HANDSHAKE_FAILED);
		CHECK_EQ(ossuary_handshake_done(p.c.c), OSSUARY_ERR_HANDSHAKE_FAILED);
		CHECK_EQ(count(&p.c, OSSUARY_EVENT_HANDSHAKE_FAILED), 1);
		CHECK_EQ(p.c.out.len, 0);
		CHECK_EQ(ossuary_peer_disconnect_reason(p.c.c), reason);
		free_pair(&p);
	}
}

/* Only the very first record after CLIENT_AUTH may be cleartext. */
TEST(cleartext_disconnect_after_a_sealed_record)
{
	struct pair p;

	established_pair(&p);
	ep_send(&p.s, "hi", 2);
	pass(&p.s, &p.c, false);
	CHECK_EQ(p.c.err, 0);
	ep_feed(&p.c, CLEAR_DISCONNECT_1, 5);
	CHECK_EQ(p.c.err, OSSUARY_ERR_PROTOCOL);
	CHECK_EQ(count(&p.c, OSSUARY_EVENT_HANDSHAKE_FAILED), 0);
	/* Answered sealed: DISCONNECT(1) under the client's send secret. */
	CHECK_EQ(p.c.out.len, 21);
	CHECK_EQ(p.c.out.p[1], OSSUARY_RECORD_DISCONNECT);
	free_pair(&p);
}

/* The peer's DISCONNECT reason is there for the application to explain. */
TEST(peer_disconnect_reason)
{
	struct pair p;

	established_pair(&p);
	CHECK_EQ(ossuary_peer_disconnect_reason(p.c.c), OSSUARY_ERR_STATE);
	CHECK_EQ(ossuary_disconnect(p.s.c, OSSUARY_DISCONNECT_ERROR), OSSUARY_OK);
	ep_drain(&p.s);
	pass(&p.s, &p.c, false);
	CHECK_EQ(p.c.err, OSSUARY_ERR_DISCONNECTED);
	CHECK_EQ(ossuary_peer_disconnect_reason(p.c.c), OSSUARY_DISCONNECT_ERROR);
	CHECK_EQ(ossuary_peer_disconnect_reason(NULL), OSSUARY_ERR_INVALID);
	free_pair(&p);
}
