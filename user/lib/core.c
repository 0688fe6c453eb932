/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What every stage of a connection shares, below the stage files: the
 * queue of owed output, events, sealing the next record of our
 * direction, the authorized list, wiping, and failing.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "internal.h"

int oss_lazy_init(void)
{
	/* 1 means "already initialised", which is fine. */
	return sodium_init() < 0 ? OSSUARY_ERR_CRYPTO : OSSUARY_OK;
}

/* ---- The authorized list ---- */

bool oss_key_listed(const OssuaryConnection *c, const uint8_t key[32])
{
	for (size_t i = 0; i < c->n_authorized; i++)
		if (sodium_memcmp(c->authorized[i], key, 32) == 0)
			return true;
	return false;
}

int oss_add_key(OssuaryConnection *c, const uint8_t key[32])
{
	if (oss_key_listed(c, key))
		return OSSUARY_OK;
	if (c->n_authorized >= OSS_MAX_AUTHORIZED)
		return OSSUARY_ERR_NO_MEMORY;
	if (c->n_authorized == c->cap_authorized) {
		size_t cap = c->cap_authorized ? 2 * c->cap_authorized : 4;
		uint8_t (*k)[32] = realloc(c->authorized, cap * 32);

		if (!k)
			return OSSUARY_ERR_NO_MEMORY;
		c->authorized = k;
		c->cap_authorized = cap;
	}
	memcpy(c->authorized[c->n_authorized++], key, 32);
	return OSSUARY_OK;
}

/* ---- Owed output ---- */

size_t oss_outq_room(const OssuaryConnection *c)
{
	return OSS_OUTQ_SIZE - c->outq_len;
}

uint8_t *oss_outq_claim(OssuaryConnection *c, size_t n)
{
	uint8_t *p;

	if (oss_outq_room(c) < n)
		return NULL;
	p = c->outq + c->outq_len;
	c->outq_len += n;
	return p;
}

/* Bytes of whole queued records that fit in room. */
static size_t outq_fit(const OssuaryConnection *c, size_t room)
{
	size_t n = 0;

	while (n + OSS_HDR <= c->outq_len) {
		size_t rec = OSS_HDR + ((size_t)c->outq[n + 2] << 8 | c->outq[n + 3]);

		if (n + rec > room)
			break;
		n += rec;
	}
	return n;
}

ssize_t oss_outq_drain(OssuaryConnection *c, uint8_t *out, size_t room)
{
	size_t n = outq_fit(c, room);

	if (n == 0 && c->outq_len)
		return OSSUARY_ERR_BUFFER_TOO_SMALL;
	memcpy(out, c->outq, n);
	memmove(c->outq, c->outq + n, c->outq_len - n);
	c->outq_len -= n;
	c->outq_reply_ku_end = c->outq_reply_ku_end > n ? c->outq_reply_ku_end - n : 0;
	return (ssize_t)n;
}

size_t oss_outq_take_all(OssuaryConnection *c, uint8_t *out)
{
	size_t n = c->outq_len;

	memcpy(out, c->outq, n);
	c->outq_len = 0;
	c->outq_reply_ku_end = 0;
	return n;
}

ssize_t ossuary_flush(OssuaryConnection *conn, uint8_t *out, size_t out_len)
{
	if (!conn || !out || out_len == 0 || out_len > SSIZE_MAX)
		return OSSUARY_ERR_INVALID;
	return oss_outq_drain(conn, out, out_len);
}

/* ---- Events ---- */

static bool is_key_update_event(int ev)
{
	return ev == OSSUARY_EVENT_KEY_UPDATE ||
	       ev == OSSUARY_EVENT_KEY_UPDATE_REQUESTED;
}

/* Never drops: internal.h says why a slot is free whenever one is needed. */
void oss_event(OssuaryConnection *c, int ev)
{
	struct oss_ev_run *last = NULL;

	if (c->ev_count)
		last = &c->events[(c->ev_head + c->ev_count - 1) % OSS_EVENTS_MAX];
	if (last && last->ev == ev && last->n_other == 0) {
		last->n++;
		return;
	}
	if (last && is_key_update_event(ev) && is_key_update_event(last->ev) &&
	    c->ev_count >= OSS_EVENTS_MAX - OSS_EVENTS_RESERVE) {
		/* Out of key-update slots: counted in the last run, by kind. */
		if (ev == last->ev)
			last->n++;
		else
			last->n_other++;
		return;
	}
	/* Unreachable (internal.h); never overwrite the oldest run if it were. */
	if (c->ev_count == OSS_EVENTS_MAX)
		return;
	last = &c->events[(c->ev_head + c->ev_count) % OSS_EVENTS_MAX];
	last->ev = ev;
	last->n = 1;
	last->n_other = 0;
	c->ev_count++;
}

int ossuary_next_event(OssuaryConnection *conn)
{
	struct oss_ev_run *run;
	int ev;

	if (!conn)
		return OSSUARY_ERR_INVALID;
	if (conn->ev_count == 0)
		return OSSUARY_EVENT_NONE;
	run = &conn->events[conn->ev_head];
	if (run->n) {
		ev = run->ev;
		run->n--;
	} else {
		ev = run->ev == OSSUARY_EVENT_KEY_UPDATE ?
			     OSSUARY_EVENT_KEY_UPDATE_REQUESTED :
			     OSSUARY_EVENT_KEY_UPDATE;
		run->n_other--;
	}
	if (run->n == 0 && run->n_other == 0) {
		conn->ev_head = (conn->ev_head + 1) % OSS_EVENTS_MAX;
		conn->ev_count--;
	}
	return ev;
}

/* ---- Sealing ---- */

size_t oss_seal_need(const OssuaryConnection *c, uint8_t type, size_t len)
{
	size_t n = OSS_HDR + len + OSS_TAG;

	if (type != OSSUARY_RECORD_KEY_UPDATE && c->tx.seq >= OSSUARY_SEQ_LAST)
		n += OSS_HDR + OSS_SEALED_CTRL_BODY;
	return n;
}

size_t oss_seal_next(OssuaryConnection *c, uint8_t type, const uint8_t *pt,
		     size_t len, uint8_t *out)
{
	size_t n = 0;

	if (type != OSSUARY_RECORD_KEY_UPDATE && c->tx.seq >= OSSUARY_SEQ_LAST) {
		/* Only KEY_UPDATE may use the last seq of a secret. */
		static const uint8_t zero;

		oss_seal(&c->tx, c->tx.seq, OSSUARY_RECORD_KEY_UPDATE, &zero, 1,
			 NULL, 0, out);
		oss_dir_ratchet(&c->tx);
		n = OSS_HDR + OSS_SEALED_CTRL_BODY;
	}
	oss_seal(&c->tx, c->tx.seq, type, pt, len, NULL, 0, out + n);
	if (type == OSSUARY_RECORD_KEY_UPDATE)
		oss_dir_ratchet(&c->tx);
	else
		c->tx.seq++;
	return n + OSS_HDR + len + OSS_TAG;
}

int oss_queue_sealed(OssuaryConnection *c, uint8_t type, const uint8_t *pt,
		     size_t len)
{
	size_t need = oss_seal_need(c, type, len);

	if (oss_outq_room(c) < need)
		return OSSUARY_ERR_WOULD_BLOCK;
	oss_seal_next(c, type, pt, len, oss_outq_claim(c, need));
	return OSSUARY_OK;
}

int oss_queue_control(OssuaryConnection *c, uint8_t type, uint8_t value)
{
	uint8_t *p;

	if (c->have_app_keys)
		return oss_queue_sealed(c, type, &value, 1);
	p = oss_outq_claim(c, OSS_HDR + 1);
	if (!p)
		return OSSUARY_ERR_WOULD_BLOCK;
	oss_put_header(p, type, 1);
	p[OSS_HDR] = value;
	return OSSUARY_OK;
}

/* ---- Wiping and failing ---- */

void oss_wipe_app_keys(OssuaryConnection *c)
{
	oss_dir_wipe(&c->tx);
	oss_dir_wipe(&c->rx);
	c->have_app_keys = false;
}

void oss_wipe_handshake(OssuaryConnection *c)
{
	sodium_memzero(c->eph_sk, sizeof(c->eph_sk));
	sodium_memzero(c->prk, sizeof(c->prk));
	oss_dir_wipe(&c->hs_tx);
	oss_dir_wipe(&c->hs_rx);
}

int oss_fail(OssuaryConnection *c, int err, int reason)
{
	if (c->stage == OSS_STAGE_FAILED)
		return c->error;
	/* After our DISCONNECT or RESET we answer nothing more. */
	if (reason >= 0 && !c->tx_closed && !c->reset_sent)
		oss_queue_control(c, OSSUARY_RECORD_DISCONNECT, (uint8_t)reason);
	c->tx_closed = true;
	c->stage = OSS_STAGE_FAILED;
	c->error = err;
	oss_wipe_handshake(c);
	oss_wipe_app_keys(c);
	return err;
}
