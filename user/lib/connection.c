/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The OssuaryConnection object (creation and destruction, long-term
 * keys, the authorized list), and its stage machine: the one place that
 * moves a connection between the handshake, the established channel and
 * a reset (PROTOCOL.md "Control"), or ends it on the peer's DISCONNECT.
 *
 *   handshake --(CLIENT_AUTH sent / opened)--> established
 *   established --(RESET sent and received)--> handshake
 *   handshake --(client: SERVER_HELLO fails to open; server: cleartext
 *                RESET)--> handshake, one-way, no answer
 *
 * handshake.c and channel.c handle records within their stage and
 * report what a record asks for; this file decides and acts.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "internal.h"

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
	c->peer_reason = -1;
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

/* ---- Entering and leaving the established stage ---- */

static void enter_established(OssuaryConnection *c)
{
	c->stage = OSS_STAGE_ESTABLISHED;
	/* A server that cannot open CLIENT_AUTH answers in cleartext. */
	c->first_after_auth = c->type == CONN_TYPE_CLIENT;
	oss_event(c, OSSUARY_EVENT_HANDSHAKE_DONE);
}

/*
 * A reset is over (both RESETs, or the handshake stage's one-way RESET):
 * application secrets gone, one more reset counted and reported, and the
 * next handshake begins: a client sends its CLIENT_HELLO at once, a
 * server waits for one.
 */
static int back_to_handshake(OssuaryConnection *c, bool after_failure)
{
	c->resets_so_far++;
	oss_wipe_app_keys(c);
	c->reset_sent = false;
	c->reset_after_failure = false;
	c->tx_closed = false;
	c->rx_closed = false;
	c->first_after_auth = false;
	oss_event(c, after_failure ? OSSUARY_EVENT_RESET_AFTER_FAILURE
				   : OSSUARY_EVENT_RESET);
	if (c->type != CONN_TYPE_CLIENT) {
		oss_hs_server_wait(c);
		return OSSUARY_OK;
	}
	/* Input is processed only with OSS_OUTQ_RESERVE free: this fits. */
	if (oss_hs_client_hello(c))
		return oss_fail(c, OSSUARY_ERR_NO_MEMORY, -1);
	return OSSUARY_OK;
}

/* Established: we send RESET and then nothing more until the peer's. */
static int start_reset(OssuaryConnection *c, bool after_failure)
{
	int rc;

	if (c->resets_so_far >= OSS_MAX_RESETS)
		return oss_fail(c, OSSUARY_ERR_TOO_MANY_RESETS,
				OSSUARY_DISCONNECT_ERROR);
	rc = oss_queue_control(c, OSSUARY_RECORD_RESET, 0);
	if (rc)
		return rc;
	c->reset_sent = true;
	c->reset_after_failure = after_failure;
	return OSSUARY_OK;
}

/* Established: a record failed to open (its seq already skipped). */
static int bad_record(OssuaryConnection *c)
{
	/* Mid-reset or half-closed we may send nothing: the failure stands. */
	if (c->reset_sent || c->tx_closed)
		return oss_fail(c, OSSUARY_ERR_DECRYPT, -1);
	if (c->on_bad_record != OSS_BAD_RECORD_RESET)
		return oss_fail(c, OSSUARY_ERR_DECRYPT, OSSUARY_DISCONNECT_ERROR);
	if (start_reset(c, true) == OSSUARY_ERR_WOULD_BLOCK)
		return oss_fail(c, OSSUARY_ERR_DECRYPT, -1);
	return c->stage == OSS_STAGE_FAILED ? c->error : OSSUARY_OK;
}

/* Established: the peer's RESET(0) opened. Answer it, or end ours. */
static int reset_received(OssuaryConnection *c)
{
	bool after_failure = c->reset_after_failure;
	int rc;

	/* Half-closed: we answer nothing, and our reader sees a reset. */
	if (c->tx_closed)
		return oss_fail(c, OSSUARY_ERR_RESET, -1);
	if (!c->reset_sent) {
		if (c->resets_so_far >= OSS_MAX_RESETS)
			return oss_fail(c, OSSUARY_ERR_TOO_MANY_RESETS,
					OSSUARY_DISCONNECT_ERROR);
		/* Our last record under the old secret. */
		if (oss_queue_control(c, OSSUARY_RECORD_RESET, 0))
			return oss_fail(c, OSSUARY_ERR_NO_MEMORY, -1);
		c->reset_sent = true;
	}
	rc = back_to_handshake(c, after_failure);
	return rc ? rc : OSSUARY_ERR_RESET;
}

/* Established: the peer's sealed DISCONNECT opened. */
static int disconnect_received(OssuaryConnection *c)
{
	/*
	 * A reset we started because a record failed to open cannot end
	 * cleanly: the bytes of that record are missing. The failure stands,
	 * whatever the peer closes with.
	 */
	if (c->reset_sent && c->reset_after_failure)
		return oss_fail(c, OSSUARY_ERR_DECRYPT, -1);
	if (c->peer_reason == OSSUARY_DISCONNECT_CLEAN) {
		c->rx_closed = true;
		oss_event(c, OSSUARY_EVENT_END_OF_FILE);
		return OSSUARY_ERR_EOF;
	}
	return oss_fail(c, c->peer_reason == OSSUARY_DISCONNECT_AUTH ?
			OSSUARY_ERR_REFUSED : OSSUARY_ERR_DISCONNECTED, -1);
}

/* Handshake stage, client: the SERVER_HELLO failed to open. */
static int hello_failed(OssuaryConnection *c)
{
	if (c->on_bad_record != OSS_BAD_RECORD_RESET)
		return oss_fail(c, OSSUARY_ERR_DECRYPT, OSSUARY_DISCONNECT_ERROR);
	if (c->resets_so_far >= OSS_MAX_RESETS)
		return oss_fail(c, OSSUARY_ERR_TOO_MANY_RESETS,
				OSSUARY_DISCONNECT_ERROR);
	/* One-way: a cleartext RESET and at once a fresh CLIENT_HELLO. */
	oss_wipe_handshake(c);
	if (oss_queue_control(c, OSSUARY_RECORD_RESET, 0))
		return oss_fail(c, OSSUARY_ERR_NO_MEMORY, -1);
	return back_to_handshake(c, true);
}

/* Handshake stage, server: a cleartext RESET(0) from the client. */
static int hello_reset_received(OssuaryConnection *c)
{
	/* Counted like any reset, never answered. */
	if (c->resets_so_far >= OSS_MAX_RESETS)
		return oss_fail(c, OSSUARY_ERR_TOO_MANY_RESETS,
				OSSUARY_DISCONNECT_ERROR);
	return back_to_handshake(c, false);
}

/* ---- The handshake stage ---- */

int ossuary_send_handshake(OssuaryConnection *conn, uint8_t *out,
			   size_t *out_len)
{
	ssize_t n;

	if (!conn || !out || !out_len || *out_len == 0 || *out_len > SSIZE_MAX)
		return OSSUARY_ERR_INVALID;
	if (conn->stage == OSS_STAGE_NEW) {
		int rc = oss_hs_client_hello(conn);

		if (rc) {
			*out_len = 0;
			return rc;
		}
	}
	n = oss_outq_drain(conn, out, *out_len);
	if (n < 0) {
		*out_len = 0;
		return (int)n;
	}
	*out_len = (size_t)n;
	if (n == 0 && conn->stage == OSS_STAGE_FAILED)
		return conn->error;
	return (int)n;
}

int ossuary_recv_handshake(OssuaryConnection *conn, const uint8_t *in,
			   size_t *in_len)
{
	size_t avail, pos = 0;
	int rc = OSSUARY_OK;

	if (!conn || !in_len || (!in && *in_len))
		return OSSUARY_ERR_INVALID;
	avail = *in_len;
	*in_len = 0;
	if (conn->stage == OSS_STAGE_NEW) {
		rc = oss_hs_client_hello(conn);
		if (rc)
			return rc;
	}
	switch (conn->stage) {
	case OSS_STAGE_FAILED:
		return conn->error;
	case OSS_STAGE_ESTABLISHED:
		return OSSUARY_ERR_STATE;
	case OSS_STAGE_PAUSED:
		return OSSUARY_ERR_UNTRUSTED_SERVER;
	default:
		break;
	}
	/* Whole records only, and never past the last handshake record. */
	while (avail - pos >= OSS_HDR && oss_outq_room(conn) >= OSS_OUTQ_RESERVE) {
		const uint8_t *rec = in + pos;
		size_t len = OSS_HDR + ((size_t)rec[2] << 8 | rec[3]);

		rc = oss_hs_check_header(conn, rec);
		if (rc) {
			rc = oss_fail(conn, rc, OSSUARY_DISCONNECT_ERROR);
			break;
		}
		if (avail - pos < len)
			break;
		pos += len;
		rc = oss_hs_record(conn, rec);
		switch (rc) {
		case OSS_NEXT_ESTABLISHED:
			enter_established(conn);
			rc = OSSUARY_OK;
			break;
		case OSS_NEXT_BAD_RECORD:
			rc = hello_failed(conn);
			break;
		case OSS_NEXT_RESET:
			rc = hello_reset_received(conn);
			break;
		default:
			break;
		}
		if (rc || conn->stage == OSS_STAGE_ESTABLISHED ||
		    conn->stage == OSS_STAGE_PAUSED)
			break;
	}
	sodium_memzero(conn->scratch, OSS_SH_INNER);
	*in_len = pos;
	if (rc)
		return rc;
	return pos ? OSSUARY_OK : OSSUARY_ERR_WOULD_BLOCK;
}

int ossuary_approve_server(OssuaryConnection *conn)
{
	int rc;

	if (!conn)
		return OSSUARY_ERR_INVALID;
	if (conn->stage != OSS_STAGE_PAUSED)
		return OSSUARY_ERR_STATE;
	rc = oss_add_key(conn, conn->peer_auth_pk);
	if (rc)
		return rc;
	rc = oss_hs_client_finish(conn);
	if (rc != OSS_NEXT_ESTABLISHED)
		return rc;
	enter_established(conn);
	return OSSUARY_OK;
}

/* ---- The established stage ---- */

ssize_t ossuary_recv_data(OssuaryConnection *conn, const uint8_t *in,
			  size_t *in_len, uint8_t *out, size_t *out_len)
{
	OssuaryConnection *c = conn;
	size_t avail, room, pos = 0, got = 0;
	int rc;

	if (!c || !in_len || !out || !out_len || (!in && *in_len) ||
	    *in_len > SSIZE_MAX || *out_len > SSIZE_MAX)
		return OSSUARY_ERR_INVALID;
	avail = *in_len;
	room = *out_len;
	*in_len = 0;
	*out_len = 0;
	if (c->stage != OSS_STAGE_ESTABLISHED)
		return oss_ch_not_established(c);
	if (c->rx_closed && avail == 0)
		return OSSUARY_ERR_EOF;
	for (;;) {
		rc = oss_ch_input(c, in, avail, &pos, out, room, &got);
		if (rc == OSS_NEXT_BAD_RECORD) {
			rc = bad_record(c);
			if (rc == OSSUARY_OK)
				continue;	/* resetting: open and discard the rest */
		} else if (rc == OSS_NEXT_RESET) {
			rc = reset_received(c);
		} else if (rc == OSS_NEXT_DISCONNECT) {
			rc = disconnect_received(c);
		} else if (rc == OSS_NEXT_CLEAR_DISCONNECT) {
			/* Unauthenticated, so whatever its reason: no answer. */
			oss_event(c, OSSUARY_EVENT_HANDSHAKE_FAILED);
			rc = oss_fail(c, OSSUARY_ERR_HANDSHAKE_FAILED, -1);
		}
		break;
	}
	sodium_memzero(c->scratch, sizeof(c->scratch));
	*in_len = pos;
	*out_len = got;
	if (rc)
		return rc;
	if (got || pos)
		return (ssize_t)got;
	return OSSUARY_ERR_WOULD_BLOCK;
}

int ossuary_reset(OssuaryConnection *conn)
{
	if (!conn)
		return OSSUARY_ERR_INVALID;
	/* A peer that closed its side answers nothing, so no exchange could end. */
	if (conn->stage != OSS_STAGE_ESTABLISHED || conn->reset_sent ||
	    conn->tx_closed || conn->rx_closed)
		return conn->stage == OSS_STAGE_FAILED ? conn->error
						       : OSSUARY_ERR_STATE;
	if (oss_outq_room(conn) < OSS_HDR + OSS_SEALED_CTRL_BODY + OSS_OUTQ_RESERVE)
		return OSSUARY_ERR_WOULD_BLOCK;
	return start_reset(conn, false);
}

int ossuary_recv_eof(OssuaryConnection *conn)
{
	if (!conn)
		return OSSUARY_ERR_INVALID;
	if (conn->stage == OSS_STAGE_FAILED)
		return conn->error;
	/* Bytes of a record that failed to open are missing: never a clean end. */
	if (conn->stage == OSS_STAGE_ESTABLISHED && conn->reset_sent &&
	    conn->reset_after_failure)
		return oss_fail(conn, OSSUARY_ERR_DECRYPT, -1);
	if (conn->stage == OSS_STAGE_ESTABLISHED && conn->rx_closed)
		return OSSUARY_OK;
	/* A FIN without DISCONNECT(0) first is never a clean end. */
	return oss_fail(conn, OSSUARY_ERR_TRUNCATED, -1);
}

int ossuary_peer_disconnect_reason(const OssuaryConnection *conn)
{
	if (!conn)
		return OSSUARY_ERR_INVALID;
	return conn->peer_reason >= 0 ? conn->peer_reason : OSSUARY_ERR_STATE;
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
