/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The established channel (PROTOCOL.md "Established channel", "Control"):
 * DATA, KEY_UPDATE, DISCONNECT, the two-way RESET exchange and its
 * limit, and end-of-file versus truncation.
 */
#include <limits.h>
#include <string.h>

#include <sodium.h>

#include "internal.h"

/* While a re-handshake runs, the app keeps hearing "reset", not "state". */
static int not_established(const OssuaryConnection *c)
{
	if (c->stage == OSS_STAGE_FAILED)
		return c->error;
	return c->resets_so_far ? OSSUARY_ERR_RESET : OSSUARY_ERR_STATE;
}

int oss_reset_complete(OssuaryConnection *c)
{
	int rc = OSSUARY_OK;

	c->resets_so_far++;
	oss_wipe_app_keys(c);
	c->reset_sent = false;
	c->tx_closed = false;
	c->rx_closed = false;
	oss_event(c, OSSUARY_EVENT_RESET);
	if (c->type == CONN_TYPE_CLIENT)
		rc = oss_hs_start_client(c);
	else
		c->stage = OSS_STAGE_WAIT_CH;
	return rc ? oss_fail(c, rc, -1) : OSSUARY_ERR_RESET;
}

int oss_reset_received(OssuaryConnection *c)
{
	/* A half-closed side answers nothing; its reader sees the end. */
	if (c->tx_closed)
		return oss_fail(c, OSSUARY_ERR_DISCONNECTED, -1);
	if (!c->reset_sent) {
		int rc;

		if (c->resets_so_far >= OSS_MAX_RESETS)
			return oss_fail(c, OSSUARY_ERR_TOO_MANY_RESETS,
					OSSUARY_DISCONNECT_ERROR);
		/* Our last record under the old secret. */
		rc = oss_queue_control(c, OSSUARY_RECORD_RESET, 0);
		if (rc)
			return oss_fail(c, OSSUARY_ERR_NO_MEMORY, -1);
		c->reset_sent = true;
	}
	return oss_reset_complete(c);
}

int ossuary_reset(OssuaryConnection *conn)
{
	int rc;

	if (!conn)
		return OSSUARY_ERR_INVALID;
	/* A peer that closed its side answers nothing, so no exchange could end. */
	if (conn->stage != OSS_STAGE_ESTABLISHED || conn->reset_sent ||
	    conn->tx_closed || conn->rx_closed)
		return conn->stage == OSS_STAGE_FAILED ? conn->error
						       : OSSUARY_ERR_STATE;
	if (oss_outq_room(conn) < OSS_HDR + OSS_SEALED_CTRL_BODY + OSS_OUTQ_RESERVE)
		return OSSUARY_ERR_WOULD_BLOCK;
	if (conn->resets_so_far >= OSS_MAX_RESETS)
		return oss_fail(conn, OSSUARY_ERR_TOO_MANY_RESETS,
				OSSUARY_DISCONNECT_ERROR);
	rc = oss_queue_control(conn, OSSUARY_RECORD_RESET, 0);
	if (rc)
		return rc;
	conn->reset_sent = true;
	return OSSUARY_OK;
}

/* Established-stage header rules: everything is sealed, nothing handshake. */
static int check_header(const OssuaryConnection *c, const uint8_t hdr[4])
{
	size_t len = (size_t)hdr[2] << 8 | hdr[3];

	if (hdr[0] != OSSUARY_WIRE_VERSION || c->rx_closed)
		return OSSUARY_ERR_PROTOCOL;
	switch (hdr[1]) {
	case OSSUARY_RECORD_DATA:
		if (len < OSS_TAG || len > OSSUARY_MAX_BODY)
			return OSSUARY_ERR_PROTOCOL;
		break;
	case OSSUARY_RECORD_KEY_UPDATE:
	case OSSUARY_RECORD_DISCONNECT:
	case OSSUARY_RECORD_RESET:
		if (len != OSS_SEALED_CTRL_BODY)
			return OSSUARY_ERR_PROTOCOL;
		break;
	default:
		return OSSUARY_ERR_PROTOCOL;
	}
	/* 2^64 - 1 is never a valid seq: the peer should have updated. */
	if (c->rx.seq == UINT64_MAX)
		return OSSUARY_ERR_PROTOCOL;
	return OSSUARY_OK;
}

/*
 * A record with intact framing failed to open. Userspace recovers by a
 * RESET, skipping the record's seq; once a reset is under way, or when
 * the reset budget is spent, or in disconnect mode, the connection fails.
 */
static int on_bad_record(OssuaryConnection *c)
{
	if (c->reset_sent || c->tx_closed)
		return oss_fail(c, OSSUARY_ERR_DECRYPT, -1);
	if (c->on_bad_record != OSS_BAD_RECORD_RESET)
		return oss_fail(c, OSSUARY_ERR_DECRYPT, OSSUARY_DISCONNECT_ERROR);
	if (c->resets_so_far >= OSS_MAX_RESETS)
		return oss_fail(c, OSSUARY_ERR_TOO_MANY_RESETS,
				OSSUARY_DISCONNECT_ERROR);
	c->rx.seq++;
	if (oss_queue_control(c, OSSUARY_RECORD_RESET, 0))
		return oss_fail(c, OSSUARY_ERR_DECRYPT, -1);
	c->reset_sent = true;
	return OSSUARY_OK;
}

static void on_key_update(OssuaryConnection *c, uint8_t value)
{
	oss_dir_ratchet(&c->rx);
	/* While resetting: applied, neither reported nor answered. */
	if (c->reset_sent)
		return;
	if (value == 1 && !c->tx_closed) {
		/* One unsent reply already answers every request before it. */
		if (!(c->outq_reply_ku_end && c->outq_reply_ku_end == c->outq_len)) {
			static const uint8_t zero;

			oss_queue_sealed(c, OSSUARY_RECORD_KEY_UPDATE, &zero, 1);
			c->outq_reply_ku_end = c->outq_len;
		}
	}
	oss_event(c, value ? OSSUARY_EVENT_KEY_UPDATE_REQUESTED
			   : OSSUARY_EVENT_KEY_UPDATE);
}

ssize_t ossuary_recv_data(OssuaryConnection *conn, const uint8_t *in,
			  size_t *in_len, uint8_t *out, size_t *out_len)
{
	OssuaryConnection *c = conn;
	size_t avail, room, pos = 0, got = 0;
	int rc = OSSUARY_OK;

	if (!c || !in_len || !out || !out_len || (!in && *in_len) ||
	    *in_len > SSIZE_MAX || *out_len > SSIZE_MAX)
		return OSSUARY_ERR_INVALID;
	avail = *in_len;
	room = *out_len;
	*in_len = 0;
	*out_len = 0;
	if (c->stage != OSS_STAGE_ESTABLISHED)
		return not_established(c);
	if (c->rx_closed && avail == 0)
		return OSSUARY_ERR_EOF;

	while (avail - pos >= OSS_HDR && oss_outq_room(c) >= OSS_OUTQ_RESERVE) {
		const uint8_t *rec = in + pos;
		size_t body = (size_t)rec[2] << 8 | rec[3];
		size_t ptlen = body - OSS_TAG;
		uint8_t type = rec[1];
		bool opened;

		rc = check_header(c, rec);
		if (rc) {
			/* Hand over what came before; the error waits for the next call. */
			if (got)
				rc = OSSUARY_OK;
			else
				rc = oss_fail(c, rc, OSSUARY_DISCONNECT_ERROR);
			break;
		}
		if (avail - pos < OSS_HDR + body)
			break;
		if (type == OSSUARY_RECORD_DATA && !c->reset_sent &&
		    ptlen > room - got) {
			if (pos == 0)
				rc = OSSUARY_ERR_BUFFER_TOO_SMALL;
			break;
		}
		opened = oss_open(&c->rx, c->rx.seq, rec, NULL, 0, rec + OSS_HDR,
				  body, c->scratch) == 0;
		if (got && (!opened || type != OSSUARY_RECORD_DATA))
			break;	/* anything that may stop us goes first next time */
		pos += OSS_HDR + body;
		if (!opened) {
			rc = on_bad_record(c);
			if (rc)
				break;
			continue;
		}
		if (type == OSSUARY_RECORD_KEY_UPDATE) {
			if (c->scratch[0] > 1) {
				rc = oss_fail(c, OSSUARY_ERR_PROTOCOL,
					      OSSUARY_DISCONNECT_ERROR);
				break;
			}
			on_key_update(c, c->scratch[0]);
			continue;
		}
		c->rx.seq++;
		if (type == OSSUARY_RECORD_DATA) {
			if (!c->reset_sent) {
				memcpy(out + got, c->scratch, ptlen);
				got += ptlen;
			}
			continue;
		}
		if (type == OSSUARY_RECORD_DISCONNECT) {
			if (c->scratch[0] == OSSUARY_DISCONNECT_CLEAN) {
				c->rx_closed = true;
				oss_event(c, OSSUARY_EVENT_END_OF_FILE);
				rc = OSSUARY_ERR_EOF;
			} else {
				rc = oss_fail(c, c->scratch[0] == OSSUARY_DISCONNECT_AUTH ?
					      OSSUARY_ERR_REFUSED : OSSUARY_ERR_DISCONNECTED, -1);
			}
			break;
		}
		/* RESET */
		if (c->scratch[0] != 0)
			rc = oss_fail(c, OSSUARY_ERR_PROTOCOL, OSSUARY_DISCONNECT_ERROR);
		else
			rc = oss_reset_received(c);
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

/* Room app calls must leave, so replies to input can always be queued. */
static int app_room(const OssuaryConnection *c, size_t n)
{
	return oss_outq_room(c) >= n + OSS_HDR + OSS_SEALED_CTRL_BODY +
					   OSS_OUTQ_RESERVE ?
		       OSSUARY_OK : OSSUARY_ERR_WOULD_BLOCK;
}

static int can_seal(const OssuaryConnection *c)
{
	if (c->stage != OSS_STAGE_ESTABLISHED)
		return not_established(c);
	if (c->reset_sent)
		return OSSUARY_ERR_RESET;
	if (c->tx_closed)
		return OSSUARY_ERR_STATE;
	return OSSUARY_OK;
}

ssize_t ossuary_send_data(OssuaryConnection *conn, const uint8_t *in,
			  size_t in_len, uint8_t *out, size_t *out_len)
{
	OssuaryConnection *c = conn;
	size_t room, taken = 0, written;
	int rc;

	if (!c || !out || !out_len || *out_len == 0 || (!in && in_len) ||
	    in_len > SSIZE_MAX || *out_len > SSIZE_MAX)
		return OSSUARY_ERR_INVALID;
	room = *out_len;
	*out_len = 0;
	if (!in)
		in = (const uint8_t *)"";	/* the empty record: no pointer arithmetic on NULL */
	rc = can_seal(c);
	if (rc)
		return rc;
	/*
	 * Owed records go first, so order on the wire is sealing order. The
	 * room must take all of them and at least one byte of input (or the
	 * empty record).
	 */
	if (room < c->outq_len + oss_seal_need(c, OSSUARY_RECORD_DATA, in_len ? 1 : 0))
		return OSSUARY_ERR_BUFFER_TOO_SMALL;
	written = oss_outq_take_all(c, out);
	do {
		size_t overhead = oss_seal_need(c, OSSUARY_RECORD_DATA, 0);
		size_t chunk = in_len - taken;

		if (chunk > OSSUARY_MAX_PLAINTEXT)
			chunk = OSSUARY_MAX_PLAINTEXT;
		if (room - written < overhead + (chunk ? 1 : 0))
			break;
		if (chunk > room - written - overhead)
			chunk = room - written - overhead;
		written += oss_seal_next(c, OSSUARY_RECORD_DATA, in + taken, chunk,
					 out + written);
		taken += chunk;
	} while (taken < in_len);
	*out_len = written;
	return (ssize_t)taken;
}

int ossuary_key_update(OssuaryConnection *conn, int request_reply)
{
	uint8_t v = (uint8_t)request_reply;
	int rc;

	if (!conn || (request_reply != 0 && request_reply != 1))
		return OSSUARY_ERR_INVALID;
	rc = can_seal(conn);
	if (!rc)
		rc = app_room(conn, OSS_HDR + OSS_SEALED_CTRL_BODY);
	if (!rc)
		rc = oss_queue_sealed(conn, OSSUARY_RECORD_KEY_UPDATE, &v, 1);
	return rc;
}

int ossuary_disconnect(OssuaryConnection *conn, int reason)
{
	int rc;

	if (!conn || reason < OSSUARY_DISCONNECT_CLEAN ||
	    reason > OSSUARY_DISCONNECT_INTERNAL)
		return OSSUARY_ERR_INVALID;
	if (conn->stage == OSS_STAGE_FAILED)
		return conn->error;
	if (conn->tx_closed || conn->reset_sent)
		return OSSUARY_ERR_STATE;
	rc = app_room(conn, OSS_HDR + OSS_SEALED_CTRL_BODY);
	if (rc)
		return rc;
	if (conn->stage == OSS_STAGE_ESTABLISHED && reason == OSSUARY_DISCONNECT_CLEAN) {
		/* Closes our direction only; we still read the peer's. */
		rc = oss_queue_control(conn, OSSUARY_RECORD_DISCONNECT, 0);
		if (!rc)
			conn->tx_closed = true;
		return rc;
	}
	oss_fail(conn, OSSUARY_ERR_DISCONNECTED, reason);
	return OSSUARY_OK;
}

int ossuary_recv_eof(OssuaryConnection *conn)
{
	if (!conn)
		return OSSUARY_ERR_INVALID;
	if (conn->stage == OSS_STAGE_FAILED)
		return conn->error;
	if (conn->stage == OSS_STAGE_ESTABLISHED && conn->rx_closed)
		return OSSUARY_OK;
	/* A FIN without DISCONNECT(0) first is never a clean end. */
	return oss_fail(conn, OSSUARY_ERR_TRUNCATED, -1);
}
