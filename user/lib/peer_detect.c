// SPDX-License-Identifier: Apache-2.0
/*
 * Is the peer an Ossuary endpoint at all?
 *
 * The first bytes a peer sends on a fresh connection can only be the
 * start of one of a few records: a server answers with SERVER_HELLO (or
 * gives up with a one-byte cleartext DISCONNECT), a client opens with
 * CLIENT_HELLO. Anything else, from the very first byte on, is not a
 * confused Ossuary peer but something else listening or connecting on
 * that port: an HTTP server or client ("HTTP/1.1 400", "GET "), an SSH
 * banner, a TLS hello, an echo service that hands our CLIENT_HELLO back.
 * Telling that apart from a damaged record lets a tool say "wrong port"
 * at once instead of "data altered in transit" (or waiting for the rest
 * of a 4-byte header that never comes).
 *
 * Only the peer's first record is judged, from its header bytes alone,
 * as they arrive: one byte may be enough. Later records belong to the
 * handshake's own checks.
 */
#include "internal.h"
#include "socket_internal.h"

/* The body length a first record of this type may have, or 0 if none. */
static size_t first_body_len(int client, uint8_t type)
{
	switch (type) {
	case OSSUARY_RECORD_SERVER_HELLO:
		return client ? OSS_SH_BODY : 0;
	case OSSUARY_RECORD_CLIENT_HELLO:
		/* To a client, this is its own hello coming back: an echo. */
		return client ? 0 : OSS_CH_BODY;
	case OSSUARY_RECORD_DISCONNECT:
	case OSSUARY_RECORD_RESET:
		/* Cleartext control: before keys exist, one byte. Let the
		 * handshake judge whether it may come here. */
		return 1;
	default:
		return 0;
	}
}

int oss_peer_foreign(int client, const uint8_t *p, size_t n)
{
	size_t body;

	if (!p || n == 0)
		return 0;
	if (p[0] != OSSUARY_WIRE_VERSION)
		return 1;
	if (n < 2)
		return 0;
	body = first_body_len(client, p[1]);
	if (body == 0)
		return 1;
	if (n >= 3 && p[2] != (uint8_t)(body >> 8))
		return 1;
	if (n >= 4 && p[3] != (uint8_t)(body & 0xff))
		return 1;
	return 0;
}

int ossuary__peer_check(OssuaryConnection *c, const uint8_t *p, size_t n)
{
	if (!c)
		return OSSUARY_ERR_INVALID;
	if (!oss_peer_foreign(c->type == CONN_TYPE_CLIENT, p, n))
		return OSSUARY_OK;
	/*
	 * Fail the connection for good, as any protocol error would (a
	 * cleartext DISCONNECT(1) is owed, in case it is an Ossuary peer
	 * after all), but under the code that says what happened.
	 */
	return oss_fail(c, OSSUARY_ERR_NOT_OSSUARY, OSSUARY_DISCONNECT_ERROR);
}
