// SPDX-License-Identifier: Apache-2.0
/*
 * The socket layer's two hooks into the core connection (see
 * socket_internal.h): the traffic secrets for the kernel, and the slot
 * where socket.c keeps its per-connection state.
 */
#include <string.h>

#include "internal.h"
#include "socket_internal.h"

int ossuary__export_traffic(const OssuaryConnection *c, uint8_t tx_secret[32],
			    uint64_t *tx_seq, uint8_t rx_secret[32],
			    uint64_t *rx_seq)
{
	if (!c || !tx_secret || !tx_seq || !rx_secret || !rx_seq)
		return OSSUARY_ERR_INVALID;
	if (c->stage != OSS_STAGE_ESTABLISHED || !c->have_app_keys || c->error ||
	    c->tx_closed || c->rx_closed || c->reset_sent)
		return OSSUARY_ERR_STATE;
	memcpy(tx_secret, c->tx.secret, 32);
	*tx_seq = c->tx.seq;
	memcpy(rx_secret, c->rx.secret, 32);
	*rx_seq = c->rx.seq;
	return OSSUARY_OK;
}

struct ossuary_sock *ossuary__sock_get(const OssuaryConnection *c)
{
	return c ? c->sock : NULL;
}

int ossuary__sock_attach(OssuaryConnection *c, struct ossuary_sock *s,
			 void (*destroy)(struct ossuary_sock *s))
{
	if (!c)
		return OSSUARY_ERR_INVALID;
	if (c->sock && c->sock != s)
		return OSSUARY_ERR_STATE;
	c->sock = s;
	c->sock_destroy = destroy;
	return OSSUARY_OK;
}
