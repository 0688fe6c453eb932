/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Socket helpers shared by the tests that run the library on real TCP
 * sockets (test_socket.c, test_interop.c): loopback pairs, handshake
 * peers, and a bulk transfer that writes and reads random-sized pieces
 * of a seeded stream through the socket API and hashes both sides.
 *
 * Functions that CHECK (pair_or_fail, setup_pair, check_bulk, ...) run
 * on the main thread only: a failed CHECK longjmps. Thread bodies
 * (peer_main, bulk_main) store what they saw for the main thread.
 */
#ifndef OSSUARY_TEST_SOCKPAIR_H
#define OSSUARY_TEST_SOCKPAIR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ossuary.h"

#define MiB (1024 * 1024)
#define HS_TIMEOUT 10000

int64_t now_ms(void);
void set_timeouts(int fd, int secs);
void set_nonblock(int fd, int on);
/*
 * A connected TCP pair on loopback: fds[0] connected, fds[1] accepted,
 * both with 30 s send/receive timeouts. 0, or -1 when the family is not
 * available here.
 */
int tcp_pair(int family, int fds[2]);
void pair_or_fail(int family, int fds[2]);
void close_pair(int fds[2]);
int ipv6_available(void);
/* send() all of it, no SIGPIPE. 0 or -1. */
int send_all(int fd, const void *buf, size_t len);
/* Blocking read of exactly len plaintext bytes through the library. */
ssize_t read_exact(OssuaryConnection *c, int fd, void *buf, size_t len);

/* ---- handshake peers ---- */

enum { TOFU_NONE = 0, TOFU_APPROVE, TOFU_REFUSE };

struct peer {
	OssuaryConnection *c;
	int fd;
	int timeout;
	int tofu;
	int paused;
	int rc;
	int64_t elapsed;
	/* optional: written right after the handshake */
	const char *first_data;
	ssize_t first_rc;
	int close_after;
};

int run_handshake(OssuaryConnection *c, int fd, int timeout, int tofu,
		  int *paused);
void *peer_main(void *arg);
void peer_init(struct peer *p, OssuaryConnection *c, int fd);
/* Handshake client (cl) against server (sv), server in a thread. */
void handshake_both(struct peer *cl, struct peer *sv);

struct setup {
	int fds[2];	/* [0] the client's end, [1] the server's */
	OssuaryConnection *client, *server;
};

/* An established unauthenticated pair over family. */
void setup_pair(struct setup *s, int family);
void teardown(struct setup *s);
/* A short exchange both ways through the socket API. */
void ping_pong(struct setup *s);

/* ---- seeded data ---- */

uint64_t splitmix(uint64_t *x);
/* n bytes of the stream seeded by *x. */
void fill(uint64_t *x, uint8_t *p, size_t n);

/* ---- bulk transfers through the socket API ---- */

#define CHUNK_MAX 100000

struct bulk {
	OssuaryConnection *c;
	int fd;
	size_t total;
	uint64_t seed;
	size_t chunk_max;	/* writes and reads of 1..chunk_max; 0: CHUNK_MAX */
	int nonblocking;
	int slow;	/* reader: small reads with pauses */
	int no_write;	/* only read */
	int no_read;	/* only write (then shut down) */
	/*
	 * After a write, 1 in ku_one_in asks for a key update
	 * (ossuary_key_update, request_reply chosen at random); 0: never.
	 */
	unsigned int ku_one_in;
	/*
	 * Non-blocking: bytes written before turning to read even if the
	 * socket takes more (0: write until it is full). A writer faster
	 * than its peer's reader otherwise writes all before reading.
	 */
	size_t burst_max;
	/*
	 * Send DISCONNECT(0) only once this many of the peer's bytes were
	 * read (0: as soon as all is written). Nothing is answered after a
	 * DISCONNECT: with the peer's total here, every KEY_UPDATE(1) it
	 * sends before its last byte is answered.
	 */
	size_t shut_after_recv;
	/* results */
	size_t sent, recvd;
	int err;	/* first unexpected code, 0 if none */
	int where;	/* line of the failure */
	int wouldblock_w;
	int bad_count;	/* a write returned more than asked */
	unsigned int ku_sent[2];	/* our key updates, by request_reply */
	/* the peer's KEY_UPDATE(0) and KEY_UPDATE(1), from the events */
	unsigned int ku_seen[2];
	/* the peer's KEY_UPDATE(1) opened before our DISCONNECT was queued:
	 * requests the library owes an answer to (requests that arrive
	 * before that answer is sealed share it, so answers <= requests) */
	unsigned int ku_answered;
	uint8_t sent_hash[32], recv_hash[32];
};

/* One side of a transfer: writes its stream and reads the peer's. */
void *bulk_main(void *arg);
/* w's stream arrived whole at r. */
void check_bulk(const struct bulk *w, const struct bulk *r);

#endif /* OSSUARY_TEST_SOCKPAIR_H */
