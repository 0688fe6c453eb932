/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The established channel (PROTOCOL.md "Established channel"): opening
 * DATA, KEY_UPDATE and control records, and the application's calls
 * that seal (send_data, key_update, disconnect).
 *
 * What a control record asks for (answer a RESET, end a reset, a clean
 * or an error close) is decided in connection.c, which owns the stage
 * transitions: records that need it come back as OSS_NEXT_* outcomes.
 */
#include <limits.h>
#include <string.h>

#include <sodium.h>

#include "internal.h"

/* While a re-handshake runs, the app keeps hearing "reset", not "state". */
int oss_ch_not_established(const OssuaryConnection *c)
{
	if (c->stage == OSS_STAGE_FAILED)
		return c->error;
	return c->resets_so_far ? OSSUARY_ERR_RESET : OSSUARY_ERR_STATE;
}

/*
 * Established-stage header rules: everything is sealed, nothing of the
 * handshake, except the cleartext DISCONNECT a client may get as the
 * very first record after its CLIENT_AUTH.
 */
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
	case OSSUARY_RECORD_DISCONNECT:
		if (len == 1 && c->first_after_auth)
			return OSSUARY_OK;
		/* fall through */
	case OSSUARY_RECORD_KEY_UPDATE:
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
 * KEY_UPDATE(1) is answered by one KEY_UPDATE(0), sealed now: it then
 * precedes any record we seal later, and follows every record sealed
 * before. While it waits unsent at the tail of the queue, it answers
 * every further request too (PROTOCOL.md: requests are coalesced).
 */
static void on_key_update(OssuaryConnection *c, uint8_t value)
{
	oss_dir_ratchet(&c->rx);
	/* While resetting: applied, neither reported nor answered. */
	if (c->reset_sent)
		return;
	if (value == 1 && !c->tx_closed &&
	    !(c->outq_reply_ku_end && c->outq_reply_ku_end == c->outq_len)) {
		static const uint8_t zero;

		if (oss_queue_sealed(c, OSSUARY_RECORD_KEY_UPDATE, &zero, 1) == 0)
			c->outq_reply_ku_end = c->outq_len;
	}
	oss_event(c, value ? OSSUARY_EVENT_KEY_UPDATE_REQUESTED
			   : OSSUARY_EVENT_KEY_UPDATE);
}

int oss_ch_input(OssuaryConnection *c, const uint8_t *in, size_t avail,
		 size_t *pos, uint8_t *out, size_t room, size_t *got)
{
	const size_t start = *pos;

	while (avail - *pos >= OSS_HDR && oss_outq_room(c) >= OSS_OUTQ_RESERVE) {
		const uint8_t *rec = in + *pos;
		size_t body = (size_t)rec[2] << 8 | rec[3];
		uint8_t type = rec[1];
		size_t ptlen;
		int rc = check_header(c, rec);

		if (rc) {
			/* Hand over what came before; the error waits for the next call. */
			if (*got)
				return 0;
			return oss_fail(c, rc, OSSUARY_DISCONNECT_ERROR);
		}
		if (avail - *pos < OSS_HDR + body)
			return 0;
		if (body == 1) {
			/* The cleartext DISCONNECT check_header let through. */
			*pos += OSS_HDR + body;
			c->first_after_auth = false;
			c->peer_reason = rec[OSS_HDR];
			return OSS_NEXT_CLEAR_DISCONNECT;
		}
		ptlen = body - OSS_TAG;
		if (type == OSSUARY_RECORD_DATA && !c->reset_sent &&
		    ptlen > room - *got) {
			/* Too small only when nothing at all could be done. */
			if (*got == 0 && *pos == start)
				return OSSUARY_ERR_BUFFER_TOO_SMALL;
			return 0;
		}
		if (oss_open(&c->rx, c->rx.seq, rec, NULL, 0, rec + OSS_HDR, body,
			     c->scratch) != 0) {
			if (*got)
				return 0;	/* what may stop us goes first next time */
			*pos += OSS_HDR + body;
			c->first_after_auth = false;
			/* Skipped: the peer sealed something at this seq. */
			c->rx.seq++;
			return OSS_NEXT_BAD_RECORD;
		}
		if (type == OSSUARY_RECORD_KEY_UPDATE) {
			if (c->scratch[0] > 1) {
				if (*got)
					return 0;	/* opened again, and refused, next call */
				return oss_fail(c, OSSUARY_ERR_PROTOCOL,
						OSSUARY_DISCONNECT_ERROR);
			}
			/* Never stops the call: requests in one input share one reply. */
			*pos += OSS_HDR + body;
			c->first_after_auth = false;
			on_key_update(c, c->scratch[0]);
			continue;
		}
		if (type == OSSUARY_RECORD_DATA) {
			*pos += OSS_HDR + body;
			c->first_after_auth = false;
			c->rx.seq++;
			/* An initiator discards DATA until the peer's RESET. */
			if (!c->reset_sent) {
				memcpy(out + *got, c->scratch, ptlen);
				*got += ptlen;
			}
			continue;
		}
		/* DISCONNECT or RESET: after delivered bytes, next call. */
		if (*got)
			return 0;
		*pos += OSS_HDR + body;
		c->first_after_auth = false;
		c->rx.seq++;
		if (type == OSSUARY_RECORD_DISCONNECT) {
			c->peer_reason = c->scratch[0];
			return OSS_NEXT_DISCONNECT;
		}
		if (c->scratch[0] != 0)
			return oss_fail(c, OSSUARY_ERR_PROTOCOL, OSSUARY_DISCONNECT_ERROR);
		return OSS_NEXT_RESET;
	}
	return 0;
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
		return oss_ch_not_established(c);
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
