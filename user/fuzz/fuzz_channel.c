/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Two real endpoints and a hostile network, driven by a script.
 *
 * The raw-record targets cannot forge a record that opens, so the code
 * behind the AEAD (policy, KEY_UPDATE, RESET and re-handshakes,
 * half-close) is reached here: a client and a server run the whole
 * protocol in memory, and the input decides who sends what and when,
 * how the bytes in flight are split, delayed, replayed, cut, bit-flipped
 * or joined by injected garbage.
 *
 * Input: one configuration byte (keys, lists, server type, approval),
 * then operations, each an opcode byte and its arguments.
 *
 * Oracles besides the sanitizers:
 *  - every byte an endpoint delivers was sent by its peer, in order
 *    (delivered is a subsequence of sent: resets may discard, never invent);
 *  - without tampering, no endpoint reports a decryption or protocol
 *    error while its peer is alive, and no reset ever follows a record
 *    that failed to open: two honest peers must always agree.
 */
#include "fuzz.h"

#define SENT_MAX (256 * 1024)

struct side {
	struct fuzz_app app;
	struct fuzz_pipe in;		/* bytes in flight towards this side */
	uint8_t sent[SENT_MAX];		/* everything this side's app sent */
	size_t sent_len;
	size_t cursor;			/* how far the peer's deliveries matched */
};

static struct side sides[2];		/* 0: client, 1: server */
static uint8_t client_sk[32], client_pk[32], server_sk[32], server_pk[32];
static int tampered;

struct script {
	const uint8_t *p;
	size_t n, i;
};

static unsigned int next8(struct script *s)
{
	return s->i < s->n ? s->p[s->i++] : 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_rng_install();
	fuzz_keypair("fuzz client", client_sk, client_pk);
	fuzz_keypair("fuzz server", server_sk, server_pk);
	return 0;
}

/* Byte k of side s's application stream: position-dependent, so a
 * delivered byte out of place or made up does not match by chance. */
static uint8_t stream_byte(int s, size_t k)
{
	uint32_t x = (uint32_t)k * 2654435761u + (uint32_t)s * 0x9e3779b9u;

	return (uint8_t)(x >> 24 ^ x >> 11);
}

/* Delivered bytes must be a subsequence of what the peer sent. */
static void check_delivery(struct fuzz_app *a, const uint8_t *p, size_t n)
{
	struct side *me = a->user, *peer = &sides[me == &sides[0]];

	for (size_t i = 0; i < n; i++) {
		while (peer->cursor < peer->sent_len && peer->sent[peer->cursor] != p[i])
			peer->cursor++;
		if (peer->cursor == peer->sent_len) {
			fprintf(stderr, "side %d delivered a byte its peer never sent\n",
				(int)(me - sides));
			abort();
		}
		peer->cursor++;
	}
}

static void drain(int s)
{
	if (fuzz_drain(sides[s].app.c, &sides[!s].in))
		tampered = 1;	/* lost for lack of room: as if dropped */
}

static void op_send(int s, size_t len)
{
	static uint8_t msg[256 * 160], out[2 * OSSUARY_MAX_RECORD + 4096];
	struct side *me = &sides[s];
	size_t taken = 0;

	if (len > sizeof(msg) || me->sent_len + len > SENT_MAX)
		return;
	for (size_t k = 0; k < len; k++)
		msg[k] = stream_byte(s, me->sent_len + k);
	do {
		size_t room = sizeof(out);
		ssize_t n;

		/* Never overflow the pipe: a sent record would be lost. */
		if (sizeof(sides[!s].in.buf) - sides[!s].in.len < room)
			room = sizeof(sides[!s].in.buf) - sides[!s].in.len;
		if (room == 0)
			break;
		n = ossuary_send_data(me->app.c, msg + taken, len - taken, out, &room);
		if (n < 0)
			break;
		memcpy(sides[!s].in.buf + sides[!s].in.len, out, room);
		sides[!s].in.len += room;
		memcpy(me->sent + me->sent_len, msg + taken, (size_t)n);
		me->sent_len += (size_t)n;
		taken += (size_t)n;
		if (n == 0 && room == 0)
			break;
	} while (taken < len);
}

/* The side reads up to n bytes of what is in flight towards it. */
static void op_deliver(int s, size_t n)
{
	struct side *me = &sides[s];
	size_t used;

	if (n > me->in.len)
		n = me->in.len;
	used = fuzz_app_feed(&me->app, me->in.buf, n, &sides[!s].in);
	if (me->app.dropped)
		tampered = 1;
	fuzz_pipe_consume(&me->in, used);
	/* A side that has failed reads nothing more: its inbox is moot. */
	if (ossuary_handshake_done(me->app.c) < 0 &&
	    ossuary_handshake_done(me->app.c) != OSSUARY_ERR_UNTRUSTED_SERVER)
		me->in.len = 0;
}

static void op_tamper(int s, struct script *sc, unsigned int kind)
{
	struct fuzz_pipe *in = &sides[s].in;
	size_t pos, n;

	tampered = 1;
	switch (kind) {
	case 0:		/* flip one bit */
		if (!in->len)
			return;
		pos = (next8(sc) << 8 | next8(sc)) % in->len;
		in->buf[pos] ^= (uint8_t)(1u << (next8(sc) & 7));
		break;
	case 1:		/* drop bytes from the front */
		n = next8(sc) + 1;
		fuzz_pipe_consume(in, n < in->len ? n : in->len);
		break;
	case 2:		/* inject bytes from the script */
		n = next8(sc);
		for (size_t k = 0; k < n && in->len < sizeof(in->buf); k++)
			in->buf[in->len++] = (uint8_t)next8(sc);
		break;
	default:	/* replay the front bytes at the end */
		n = (next8(sc) << 4) + 1;
		if (n > in->len)
			n = in->len;
		if (in->len + n <= sizeof(in->buf)) {
			memcpy(in->buf + in->len, in->buf, n);
			in->len += n;
		}
		break;
	}
}

static void setup(unsigned int cfg)
{
	connection_type_t st = cfg & 1 ? CONN_TYPE_AUTHENTICATED_SERVER
				       : CONN_TYPE_UNAUTHENTICATED_SERVER;
	OssuaryConnection *cl, *sv;

	fuzz_rng_seed(5);
	tampered = 0;
	cl = ossuary_create_connection(CONN_TYPE_CLIENT, cfg & 2 ? client_sk : NULL);
	sv = ossuary_create_connection(st, cfg & 4 ? server_sk : NULL);
	if (!cl || !sv)
		abort();
	if ((cfg & 8) && ossuary_add_authorized_key(cl, server_pk))
		abort();
	if ((cfg & 16) && ossuary_add_authorized_key(sv, client_pk))
		abort();
	for (int s = 0; s < 2; s++) {
		sides[s].in.len = 0;
		sides[s].sent_len = 0;
		sides[s].cursor = 0;
		fuzz_app_init(&sides[s].app, s ? sv : cl, !(cfg & 32));
		sides[s].app.on_data = check_delivery;
		sides[s].app.user = &sides[s];
	}
}

/*
 * A peer that gives up mid-handshake sends a cleartext DISCONNECT: a
 * client right after its CLIENT_AUTH reports a failed handshake, a side
 * further on a protocol error (PROTOCOL.md "Control"). So the rule holds
 * while the peer lives. A record that failed to open (a reset after a
 * failure, a failed handshake) needs tampering, or a peer that failed.
 */
static void check_honest(void)
{
	for (int s = 0; s < 2; s++) {
		int rc = sides[s].app.r.last_rc;
		int peer = ossuary_handshake_done(sides[!s].app.c);
		int peer_failed = peer < 0 && peer != OSSUARY_ERR_UNTRUSTED_SERVER;

		if (!tampered && !peer_failed &&
		    (rc == OSSUARY_ERR_DECRYPT || rc == OSSUARY_ERR_PROTOCOL ||
		     rc == OSSUARY_ERR_HANDSHAKE_FAILED)) {
			fprintf(stderr, "side %d reported %d (%s) between honest peers\n", s,
				rc, ossuary_strerror(rc));
			abort();
		}
		if (!tampered && sides[s].app.failed_record && !peer_failed) {
			fprintf(stderr, "side %d saw a failed record between honest peers\n", s);
			abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct script sc = { data, size, 0 };

	if (size > 4096)
		return -1;
	setup(next8(&sc));
	/* The client speaks first: its CLIENT_HELLO is the first thing in flight. */
	op_deliver(0, 0);
	while (sc.i < sc.n) {
		unsigned int op = next8(&sc);
		int s = op >> 7;
		OssuaryConnection *c = sides[s].app.c;

		switch (op & 15) {
		case 0: case 1: case 2:
			op_send(s, (size_t)next8(&sc) * ((op & 15) == 2 ? 157 : 1));
			break;
		case 3:
			ossuary_key_update(c, (op >> 4) & 1);
			break;
		case 4:
			ossuary_disconnect(c, (op >> 4) & 3);
			break;
		case 5:
			ossuary_reset(c);
			break;
		case 6: case 7: case 8:
			op_deliver(s, sides[s].in.len);
			break;
		case 9:
			op_deliver(s, next8(&sc));
			break;
		case 10:
			/* The transport ends: only meaningful once nothing is in flight. */
			if (!sides[s].in.len)
				sides[s].app.r.last_rc = ossuary_recv_eof(c);
			break;
		default:
			op_tamper(s, &sc, (op & 15) - 11);
			break;
		}
		drain(0);
		drain(1);
		check_honest();
	}
	/* Let the network settle: everything in flight is read. */
	for (int round = 0; round < 8; round++) {
		op_deliver(0, sides[0].in.len);
		op_deliver(1, sides[1].in.len);
		drain(0);
		drain(1);
	}
	check_honest();
	for (int s = 0; s < 2; s++) {
		fuzz_app_finish(&sides[s].app);
		ossuary_destroy_connection(&sides[s].app.c);
	}
	return 0;
}
