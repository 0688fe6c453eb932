/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The socket layer's view of the core connection.
 *
 * socket.c builds only on the public filter API, plus the two narrow
 * hooks below, which export.c implements against the core's private
 * struct (internal.h). Nothing else of the core is touched from here.
 */
#ifndef OSSUARY_SOCKET_INTERNAL_H
#define OSSUARY_SOCKET_INTERNAL_H

#include <stdint.h>

#include "ossuary.h"

/*
 * Copy out the current application traffic secrets and the next
 * sequence number of each direction (tx: what we seal, rx: what we
 * open). OSSUARY_ERR_STATE unless the connection is established.
 * The caller wipes the secrets when done with them.
 */
int ossuary__export_traffic(const OssuaryConnection *c, uint8_t tx_secret[32],
			    uint64_t *tx_seq, uint8_t rx_secret[32],
			    uint64_t *rx_seq);

/*
 * Per-connection socket state, owned by socket.c. It hangs off the
 * connection so that it lives and dies with it: ossuary__sock_attach()
 * stores it, with its destructor, in the connection's sock and
 * sock_destroy fields; ossuary_destroy_connection() calls the destructor
 * before it wipes and frees the connection.
 */
struct ossuary_sock;
struct ossuary_sock *ossuary__sock_get(const OssuaryConnection *c);
int ossuary__sock_attach(OssuaryConnection *c, struct ossuary_sock *s,
			 void (*destroy)(struct ossuary_sock *s));

/*
 * peer_detect.c. oss_peer_foreign: 1 when p[0..n) (n >= 1, a prefix of
 * the first record the peer ever sent) cannot start an Ossuary stream
 * for our role (client != 0: the peer should be a server), 0 when it
 * could, so far.
 */
int oss_peer_foreign(int client, const uint8_t *p, size_t n);
/*
 * The peer's very first bytes on the fd: OSSUARY_OK
 * when they may start an Ossuary record for our role; otherwise the
 * connection fails with OSSUARY_ERR_NOT_OSSUARY (a cleartext
 * DISCONNECT(1) owed) and that code is returned.
 */
int ossuary__peer_check(OssuaryConnection *c, const uint8_t *p, size_t n);

#endif /* OSSUARY_SOCKET_INTERNAL_H */
