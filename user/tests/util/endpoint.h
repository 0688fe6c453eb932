/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A test endpoint: one connection driven the way an application drives
 * it. Input is fed as bytes arrive; ep_pump() hands whole records to
 * recv_handshake or recv_data depending on the stage, collects every
 * delivered byte, every byte of owed output, the events and the first
 * error, and stops at the trust-on-first-use pause.
 */
#ifndef OSSUARY_TEST_ENDPOINT_H
#define OSSUARY_TEST_ENDPOINT_H

#include <stdbool.h>

#include "ossuary.h"
#include "vectors.h"

#define EP_MAX_EVENTS 64

struct ep {
	OssuaryConnection *c;
	struct bytes in;	/* received, not yet consumed */
	struct bytes out;	/* written by the endpoint, not yet taken */
	struct bytes delivered;
	int events[EP_MAX_EVENTS];
	size_t n_events;
	int err;		/* first error reported, 0 if none */
	bool paused;		/* at the untrusted-server pause */
};

/* Takes ownership of c. */
void ep_init(struct ep *e, OssuaryConnection *c);
void ep_free(struct ep *e);
/* Appends bytes from the peer and processes what can be processed. */
void ep_feed(struct ep *e, const uint8_t *p, size_t n);
void ep_pump(struct ep *e);
/* Moves owed output into e->out and events into e->events. */
void ep_drain(struct ep *e);
/* Records an application call's result: errors latch into e->err. */
void ep_note(struct ep *e, int rc);

/*
 * Builds an endpoint from a vector's context or stream side: role, keys,
 * stage ("handshake", "established" or "new"), handshake inputs. A
 * client in stage "handshake" has already sent its CLIENT_HELLO.
 * on_bad_record: OSS_BAD_RECORD_* to use when the context names none.
 */
void ep_from_context(struct ep *e, const struct json *ctx, int on_bad_record);
connection_type_t ep_role(const char *role);
/* "handshake_done", "key_update(0)", ... as OSSUARY_EVENT_*; fails if unknown. */
int ep_event_code(const char *name);



/*
 * Moves each side's output into the other until nothing moves (or one
 * side pauses or fails). Application bytes delivered on the way stay in
 * each side's `delivered`.
 */
void ep_shuttle(struct ep *a, struct ep *b);
/* Client starts; shuttles until both sides are done, paused or failed. */
void ep_handshake(struct ep *client, struct ep *server);
/* Seals p with send_data and queues it for the peer (into e->out). */
void ep_send(struct ep *e, const void *p, size_t n);
#endif /* OSSUARY_TEST_ENDPOINT_H */
