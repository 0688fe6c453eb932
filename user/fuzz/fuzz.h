/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared pieces of the libFuzzer targets. Public API only.
 *
 * - A deterministic randombytes implementation, reseeded before every
 *   input: ephemeral keys, nonces and challenges are then the same on
 *   every run, so a crash found once reproduces from its input alone.
 * - A real in-memory handshake between two endpoints.
 * - An "application" that feeds received bytes to an endpoint the way a
 *   real one must (handshake or channel calls by stage, approving at the
 *   trust-on-first-use pause, draining owed output), and records what
 *   was delivered so that two feeds of one stream can be compared: the
 *   protocol requires every split of a stream to give the same result.
 */
#ifndef OSSUARY_FUZZ_H
#define OSSUARY_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ossuary.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_UNUSED __attribute__((unused))

/* ---- deterministic randomness (splitmix64: fast; secrecy is moot here) ---- */

static uint64_t fuzz_rng_state;

static uint64_t fuzz_rng_next(void)
{
	uint64_t z = (fuzz_rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static const char *fuzz_rng_name(void)
{
	return "ossuary-fuzz-deterministic";
}

static uint32_t fuzz_rng_random(void)
{
	return (uint32_t)fuzz_rng_next();
}

static void fuzz_rng_buf(void *buf, size_t n)
{
	uint8_t *p = buf;

	while (n) {
		uint64_t v = fuzz_rng_next();
		size_t k = n < 8 ? n : 8;

		memcpy(p, &v, k);
		p += k;
		n -= k;
	}
}

static randombytes_implementation fuzz_rng_impl = {
	.implementation_name = fuzz_rng_name,
	.random = fuzz_rng_random,
	.stir = NULL,
	.uniform = NULL,
	.buf = fuzz_rng_buf,
	.close = NULL,
};

/* Before sodium_init(), i.e. before the library's first call. */
static FUZZ_UNUSED void fuzz_rng_install(void)
{
	if (randombytes_set_implementation(&fuzz_rng_impl) != 0 || sodium_init() < 0)
		abort();
}

static FUZZ_UNUSED void fuzz_rng_seed(uint64_t seed)
{
	fuzz_rng_state = seed;
}

/* A fixed long-term key pair, derived from a label. */
static FUZZ_UNUSED void fuzz_keypair(const char *label, uint8_t sk[32], uint8_t pk[32])
{
	uint8_t full[64];

	crypto_hash_sha256(sk, (const uint8_t *)label, strlen(label));
	crypto_sign_seed_keypair(pk, full, sk);
}

/* ---- in-memory transport ---- */

struct fuzz_pipe {
	uint8_t buf[2 * OSSUARY_MAX_RECORD + 4096];
	size_t len;
};

/*
 * Moves every byte conn owes into p (dropped when p is NULL or full).
 * Returns 1 when bytes meant for a pipe were dropped for lack of room.
 */
static FUZZ_UNUSED int fuzz_drain(OssuaryConnection *conn, struct fuzz_pipe *p)
{
	uint8_t tmp[4096];
	ssize_t n;
	int dropped = 0;

	while ((n = ossuary_flush(conn, tmp, sizeof(tmp))) > 0) {
		if (p && p->len + (size_t)n <= sizeof(p->buf)) {
			memcpy(p->buf + p->len, tmp, (size_t)n);
			p->len += (size_t)n;
		} else if (p) {
			dropped = 1;
		}
	}
	return dropped;
}

static FUZZ_UNUSED void fuzz_pipe_consume(struct fuzz_pipe *p, size_t n)
{
	memmove(p->buf, p->buf + n, p->len - n);
	p->len -= n;
}

/* Runs one endpoint's handshake step on what waits in its inbox. */
static FUZZ_UNUSED void fuzz_hs_step(OssuaryConnection *c, struct fuzz_pipe *in,
				     struct fuzz_pipe *out)
{
	uint8_t tmp[1024];
	size_t n = sizeof(tmp);

	if (ossuary_handshake_done(c) != 0)
		return;
	ossuary_send_handshake(c, tmp, &n);
	if (out && out->len + n <= sizeof(out->buf)) {
		memcpy(out->buf + out->len, tmp, n);
		out->len += n;
	}
	n = in->len;
	if (n && ossuary_recv_handshake(c, in->buf, &n) >= 0)
		fuzz_pipe_consume(in, n);
	else if (n && ossuary_handshake_done(c) < 0)
		in->len = 0;
}

/*
 * A full handshake; the client approves an untrusted server when
 * approve is set. Returns 1 when both sides are established.
 */
static FUZZ_UNUSED int fuzz_handshake(OssuaryConnection *cl, OssuaryConnection *sv,
				      int approve)
{
	static struct fuzz_pipe to_sv, to_cl;

	to_sv.len = to_cl.len = 0;
	for (int round = 0; round < 8; round++) {
		if (ossuary_handshake_done(cl) == OSSUARY_ERR_UNTRUSTED_SERVER) {
			if (approve)
				ossuary_approve_server(cl);
			else
				ossuary_refuse_server(cl);
		}
		fuzz_hs_step(cl, &to_cl, &to_sv);
		fuzz_drain(cl, &to_sv);
		fuzz_hs_step(sv, &to_sv, &to_cl);
		fuzz_drain(sv, &to_cl);
		if (ossuary_handshake_done(cl) == 1 && ossuary_handshake_done(sv) == 1 &&
		    !to_sv.len && !to_cl.len)
			return 1;
	}
	return 0;
}

/* ---- the receiving application ---- */

struct fuzz_result {
	uint8_t digest[32];	/* SHA-256 of every byte delivered */
	size_t delivered;
	int last_rc;		/* the last error code the endpoint reported */
	int done;		/* ossuary_handshake_done() at the end */
	int eof_rc;		/* ossuary_recv_eof() after the stream */
	int events[16];
	size_t n_events;
};

struct fuzz_app {
	OssuaryConnection *c;
	crypto_hash_sha256_state h;
	struct fuzz_result r;
	int approve;		/* answer at the trust-on-first-use pause */
	int dropped;		/* owed output did not fit the outgoing pipe */
	int failed_record;	/* saw OSSUARY_EVENT_RESET_AFTER_FAILURE or _HANDSHAKE_FAILED */
	/* Optional: sees every delivered byte, in order. */
	void (*on_data)(struct fuzz_app *a, const uint8_t *p, size_t n);
	void *user;
};

static FUZZ_UNUSED void fuzz_app_init(struct fuzz_app *a, OssuaryConnection *c, int approve)
{
	memset(a, 0, sizeof(*a));
	a->c = c;
	a->approve = approve;
	crypto_hash_sha256_init(&a->h);
}

static void fuzz_app_events(struct fuzz_app *a)
{
	int ev;

	while ((ev = ossuary_next_event(a->c)) > 0) {
		if (ev == OSSUARY_EVENT_RESET_AFTER_FAILURE ||
		    ev == OSSUARY_EVENT_HANDSHAKE_FAILED)
			a->failed_record = 1;
		if (a->r.n_events < sizeof(a->r.events) / sizeof(a->r.events[0]))
			a->r.events[a->r.n_events++] = ev;
	}
}

/*
 * Offers in[0..len) to the endpoint, as many calls as it takes; returns
 * the bytes it consumed (the rest waits for more input). Owed output is
 * drained to out (may be NULL).
 */
static FUZZ_UNUSED size_t fuzz_app_feed(struct fuzz_app *a, const uint8_t *in, size_t len,
					struct fuzz_pipe *out)
{
	static uint8_t buf[OSSUARY_MAX_PLAINTEXT];
	size_t pos = 0;

	for (int guard = 0; guard < 100000; guard++) {
		int done = ossuary_handshake_done(a->c);
		size_t n = len - pos, room = sizeof(buf);
		ssize_t rc;

		if (done == OSSUARY_ERR_UNTRUSTED_SERVER) {
			rc = a->approve ? ossuary_approve_server(a->c)
					: ossuary_refuse_server(a->c);
			n = 0;
		} else if (done < 0) {
			break;		/* failed: nothing more is read */
		} else if (done == 0) {
			rc = ossuary_recv_handshake(a->c, in + pos, &n);
		} else {
			rc = ossuary_recv_data(a->c, in + pos, &n, buf, &room);
			if (rc > 0) {
				if ((size_t)rc != room || room > sizeof(buf))
					abort();	/* return value and *out_len disagree */
				crypto_hash_sha256_update(&a->h, buf, room);
				a->r.delivered += room;
				if (a->on_data)
					a->on_data(a, buf, room);
			} else if (room) {
				abort();	/* delivered bytes without saying so */
			}
		}
		if (n > len - pos)
			abort();		/* consumed more than offered */
		pos += n;
		a->dropped |= fuzz_drain(a->c, out);
		fuzz_app_events(a);
		if (rc < 0 && rc != OSSUARY_ERR_WOULD_BLOCK)
			a->r.last_rc = (int)rc;
		/* Stop when a call neither consumed nor changed the stage. */
		if (n == 0 && ossuary_handshake_done(a->c) == done &&
		    done != OSSUARY_ERR_UNTRUSTED_SERVER)
			break;
	}
	return pos;
}

/* Ends the stream: FIN from the transport. */
static FUZZ_UNUSED void fuzz_app_finish(struct fuzz_app *a)
{
	a->r.eof_rc = ossuary_recv_eof(a->c);
	fuzz_drain(a->c, NULL);
	fuzz_app_events(a);
	a->r.done = ossuary_handshake_done(a->c);
	crypto_hash_sha256_final(&a->h, a->r.digest);
}

/* Feeds the whole stream at once, the way a big read() would. */
static FUZZ_UNUSED void fuzz_feed_whole(struct fuzz_app *a, const uint8_t *data, size_t size)
{
	fuzz_app_feed(a, data, size, NULL);
	fuzz_app_finish(a);
}

/* Feeds the stream one byte at a time, keeping what is not consumed. */
static FUZZ_UNUSED void fuzz_feed_bytewise(struct fuzz_app *a, const uint8_t *data, size_t size)
{
	size_t pos = 0;

	for (size_t avail = 1; avail <= size; avail++)
		pos += fuzz_app_feed(a, data + pos, avail - pos, NULL);
	fuzz_app_finish(a);
}

/* Any split must give the same result: a difference is a bug. */
static FUZZ_UNUSED void fuzz_same_result(const struct fuzz_result *x, const struct fuzz_result *y)
{
	if (x->delivered != y->delivered || memcmp(x->digest, y->digest, 32) != 0 ||
	    x->done != y->done || x->eof_rc != y->eof_rc || x->n_events != y->n_events ||
	    memcmp(x->events, y->events, x->n_events * sizeof(x->events[0])) != 0) {
		fprintf(stderr,
			"split changed the result: delivered %zu/%zu done %d/%d eof %d/%d "
			"events %zu/%zu last_rc %d/%d\n",
			x->delivered, y->delivered, x->done, y->done, x->eof_rc, y->eof_rc,
			x->n_events, y->n_events, x->last_rc, y->last_rc);
		abort();
	}
}

static FUZZ_UNUSED void fuzz_feed(struct fuzz_app *a, const uint8_t *data,
				  size_t size, int bytewise)
{
	if (bytewise)
		fuzz_feed_bytewise(a, data, size);
	else
		fuzz_feed_whole(a, data, size);
}

/*
 * The parser targets' entry point: run() one input in one piece and
 * again byte by byte; a split must never change the outcome.
 */
typedef void (*fuzz_run_fn)(const uint8_t *data, size_t size, int bytewise,
			    struct fuzz_result *r);

static FUZZ_UNUSED int fuzz_whole_vs_bytewise(const uint8_t *data, size_t size,
					      fuzz_run_fn run)
{
	struct fuzz_result whole, bytewise;

	if (size > 4 * OSSUARY_MAX_RECORD)
		return -1;	/* longer streams add time, not coverage */
	run(data, size, 0, &whole);
	run(data, size, 1, &bytewise);
	fuzz_same_result(&whole, &bytewise);
	return 0;
}

#endif /* OSSUARY_FUZZ_H */
