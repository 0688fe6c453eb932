/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The OssuaryConnection object: creation and destruction, long-term keys,
 * the authorized list, the queue of owed output, events, and failing.
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

static bool valid_type(connection_type_t type)
{
	return type == CONN_TYPE_CLIENT ||
	       type == CONN_TYPE_AUTHENTICATED_SERVER ||
	       type == CONN_TYPE_UNAUTHENTICATED_SERVER;
}

OssuaryConnection *ossuary_create_connection(connection_type_t type,
					     const uint8_t auth_secret_key[32])
{
	OssuaryConnection *c;

	if (!valid_type(type) || oss_lazy_init() != OSSUARY_OK)
		return NULL;
	c = sodium_malloc(sizeof(*c));
	if (!c)
		return NULL;
	memset(c, 0, sizeof(*c));
	c->type = type;
	c->stage = type == CONN_TYPE_CLIENT ? OSS_STAGE_NEW : OSS_STAGE_WAIT_CH;
	c->on_bad_record = OSS_BAD_RECORD_RESET;
	if (auth_secret_key &&
	    ossuary_set_secret_key(c, auth_secret_key) != OSSUARY_OK) {
		ossuary_destroy_connection(&c);
		return NULL;
	}
	return c;
}

int ossuary_destroy_connection(OssuaryConnection **conn)
{
	OssuaryConnection *c;

	if (!conn || !*conn)
		return OSSUARY_ERR_INVALID;
	c = *conn;
	if (c->sock_destroy && c->sock)
		c->sock_destroy(c->sock);
	free(c->authorized);
	/* sodium_free() wipes too; wiping here first says so in our own code. */
	sodium_memzero(c, sizeof(*c));
	sodium_free(c);
	*conn = NULL;
	return OSSUARY_OK;
}

int ossuary_set_secret_key(OssuaryConnection *conn, const uint8_t key[32])
{
	if (!conn || !key || oss_is_zero(key, 32))
		return OSSUARY_ERR_INVALID;
	/* A key changed mid-handshake would sign a transcript it did not start. */
	if (conn->stage != OSS_STAGE_NEW && conn->stage != OSS_STAGE_WAIT_CH)
		return OSSUARY_ERR_STATE;
	if (conn->transcript_len)
		return OSSUARY_ERR_STATE;
	crypto_sign_ed25519_seed_keypair(conn->auth_pk, conn->auth_sk, key);
	conn->have_auth_key = true;
	return OSSUARY_OK;
}

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

int ossuary_add_authorized_key(OssuaryConnection *conn, const uint8_t key[32])
{
	if (!conn || !key || oss_is_zero(key, 32))
		return OSSUARY_ERR_INVALID;
	return oss_add_key(conn, key);
}

int ossuary_add_authorized_keys(OssuaryConnection *conn,
				const uint8_t (*keys)[32], size_t count)
{
	if (!conn || !keys || count == 0 || count > OSS_MAX_AUTHORIZED)
		return OSSUARY_ERR_INVALID;
	/* All or nothing: check every key before adding any. */
	for (size_t i = 0; i < count; i++)
		if (oss_is_zero(keys[i], 32))
			return OSSUARY_ERR_INVALID;
	for (size_t i = 0; i < count; i++) {
		int rc = oss_add_key(conn, keys[i]);

		if (rc)
			return rc;
	}
	return OSSUARY_OK;
}

int ossuary_remote_public_key(OssuaryConnection *conn, uint8_t *key_buf,
			      size_t key_buf_len)
{
	if (!conn || !key_buf || key_buf_len == 0)
		return OSSUARY_ERR_INVALID;
	if (key_buf_len < 32)
		return OSSUARY_ERR_BUFFER_TOO_SMALL;
	if (!conn->peer_key_known)
		return OSSUARY_ERR_STATE;
	memcpy(key_buf, conn->peer_auth_pk, 32);
	return OSSUARY_OK;
}

int ossuary_generate_auth_keypair(uint8_t secret_key[32], uint8_t public_key[32])
{
	uint8_t sk[64];

	if (!secret_key || !public_key)
		return OSSUARY_ERR_INVALID;
	if (oss_lazy_init() != OSSUARY_OK)
		return OSSUARY_ERR_CRYPTO;
	do
		randombytes_buf(secret_key, 32);
	while (oss_is_zero(secret_key, 32));
	crypto_sign_ed25519_seed_keypair(public_key, sk, secret_key);
	sodium_memzero(sk, sizeof(sk));
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

/* Moves whole records to out; BUFFER_TOO_SMALL if not even the first fits. */
static ssize_t outq_drain(OssuaryConnection *c, uint8_t *out, size_t room)
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
	return outq_drain(conn, out, out_len);
}

int ossuary_send_handshake(OssuaryConnection *conn, uint8_t *out,
			   size_t *out_len)
{
	ssize_t n;

	if (!conn || !out || !out_len || *out_len == 0 || *out_len > SSIZE_MAX)
		return OSSUARY_ERR_INVALID;
	if (conn->stage == OSS_STAGE_NEW) {
		int rc = oss_hs_start_client(conn);

		if (rc) {
			*out_len = 0;
			return rc;
		}
	}
	n = outq_drain(conn, out, *out_len);
	if (n < 0) {
		*out_len = 0;
		return (int)n;
	}
	*out_len = (size_t)n;
	if (n == 0 && conn->stage == OSS_STAGE_FAILED)
		return conn->error;
	return (int)n;
}

/* ---- Events ---- */

void oss_event(OssuaryConnection *c, int ev)
{
	unsigned int slot = (c->ev_head + c->ev_count) % OSS_EVENTS_MAX;

	c->events[slot] = ev;
	if (c->ev_count < OSS_EVENTS_MAX)
		c->ev_count++;
	else
		c->ev_head = (c->ev_head + 1) % OSS_EVENTS_MAX;
}

int ossuary_next_event(OssuaryConnection *conn)
{
	int ev;

	if (!conn)
		return OSSUARY_ERR_INVALID;
	if (conn->ev_count == 0)
		return OSSUARY_EVENT_NONE;
	ev = conn->events[conn->ev_head];
	conn->ev_head = (conn->ev_head + 1) % OSS_EVENTS_MAX;
	conn->ev_count--;
	return ev;
}

/* ---- Failing and control records ---- */

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

void oss_wipe_app_keys(OssuaryConnection *c)
{
	oss_dir_wipe(&c->tx);
	oss_dir_wipe(&c->rx);
	c->have_app_keys = false;
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

int ossuary_handshake_done(const OssuaryConnection *conn)
{
	if (!conn)
		return OSSUARY_ERR_INVALID;
	switch (conn->stage) {
	case OSS_STAGE_ESTABLISHED:
		return 1;
	case OSS_STAGE_PAUSED:
		return OSSUARY_ERR_UNTRUSTED_SERVER;
	case OSS_STAGE_FAILED:
		return conn->error;
	default:
		return 0;
	}
}
