/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libossuary core: the private connection struct and the helpers the
 * core's files share. Nothing here is part of the public API.
 *
 * The whole OssuaryConnection lives in one sodium_malloc() region
 * (guard pages, mlock, wiped on free), so every secret it holds, and the
 * scratch buffer plaintext passes through, never sits in ordinary heap.
 */
#ifndef OSSUARY_INTERNAL_H
#define OSSUARY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ossuary.h"
#include "uapi/linux/ossuary.h"

#define OSS_HDR OSSUARY_HEADER_LEN
#define OSS_TAG OSSUARY_TAG_LEN
#define OSS_CH_BODY 76
#define OSS_SH_CLEAR 44
#define OSS_SH_INNER 128
#define OSS_SH_BODY (OSS_SH_CLEAR + OSS_SH_INNER + OSS_TAG)
#define OSS_CA_INNER 96
#define OSS_CA_BODY (OSS_CA_INNER + OSS_TAG)
#define OSS_TRANSCRIPT_MAX (OSS_CH_BODY + OSS_SH_CLEAR + OSS_SH_INNER + OSS_CA_INNER)
#define OSS_SEALED_CTRL_BODY (1 + OSS_TAG)

/*
 * Owed output waits here, already sealed, in the order it was sealed:
 * sealing a reply the moment it is owed is what makes it "the very next
 * record" in our direction. OSS_OUTQ_RESERVE is kept free for replies to
 * a received record (the largest chain is SERVER_HELLO, or RESET then
 * CLIENT_HELLO), so processing input never has to stop for lack of room.
 */
#define OSS_OUTQ_SIZE 2048
#define OSS_OUTQ_RESERVE 256

/*
 * Pending events are kept as runs: consecutive equal events share one
 * slot and a count, so a peer's flood of KEY_UPDATEs of one kind takes
 * one slot however long it is, and nothing is ever dropped.
 *
 * Only the two key-update events are unbounded; the others happen a
 * bounded number of times per connection (OSS_EVENTS_BOUNDED: the first
 * HANDSHAKE_DONE, a reset event and a HANDSHAKE_DONE per reset,
 * END_OF_FILE, HANDSHAKE_FAILED). Key-update runs may start a new slot
 * only while fewer than OSS_EVENTS_MAX - OSS_EVENTS_RESERVE are taken,
 * or right after one of the bounded events; past that, a key update of
 * the other kind joins the last run as its "other" count (reported after
 * the run's own kind). The reserve covers every bounded event and the
 * one key-update run each may be followed by, so a slot is always free
 * when one is needed, and the memory a peer can make us hold is fixed.
 */
#define OSS_EVENTS_MAX 64
#define OSS_EVENTS_BOUNDED (1 + 2 * OSS_MAX_RESETS + 2)
#define OSS_EVENTS_RESERVE (2 * OSS_EVENTS_BOUNDED)
#define OSS_INJECT_MAX 8
#define OSS_MAX_AUTHORIZED 65536
#define OSS_MAX_RESETS 4	/* reset exchanges allowed; the fifth is refused */

/* One direction's traffic state: secret, derived key and IV, next seq. */
struct oss_dir {
	uint8_t secret[32];
	uint8_t key[32];
	uint8_t iv[12];
	uint64_t seq;
};

enum oss_stage {
	OSS_STAGE_NEW = 0,	/* client: CLIENT_HELLO not built yet */
	OSS_STAGE_WAIT_CH,	/* server */
	OSS_STAGE_WAIT_SH,	/* client */
	OSS_STAGE_PAUSED,	/* client: trust-on-first-use pause */
	OSS_STAGE_WAIT_CA,	/* server */
	OSS_STAGE_ESTABLISHED,
	OSS_STAGE_FAILED,
};

enum oss_on_bad_record {
	OSS_BAD_RECORD_RESET = 0,	/* userspace default: recover by RESET */
	OSS_BAD_RECORD_DISCONNECT = 1,	/* fail with DISCONNECT(1), as the kernel does */
};

/* Fixed handshake inputs for deterministic tests, consumed in order. */
struct oss_hs_inputs {
	uint8_t eph_secret[32];
	uint8_t nonce[12];
	uint8_t challenge[32];
};

struct ossuary_sock;

struct OssuaryConnection {
	connection_type_t type;
	enum oss_stage stage;
	int error;		/* latched once the connection failed */
	int on_bad_record;

	bool have_auth_key;
	uint8_t auth_sk[64];	/* libsodium's seed || public form */
	uint8_t auth_pk[32];

	uint8_t (*authorized)[32];	/* ordinary heap: public keys only */
	size_t n_authorized, cap_authorized;

	/* Current handshake. */
	uint8_t eph_sk[32], eph_pk[32];
	uint8_t nonce[12], challenge[32];
	uint8_t transcript[OSS_TRANSCRIPT_MAX];
	size_t transcript_len;
	uint8_t prk[32];
	struct oss_dir hs_tx, hs_rx;
	uint8_t peer_auth_pk[32];
	bool peer_key_known;

	struct oss_hs_inputs inject[OSS_INJECT_MAX];
	size_t n_inject;

	/* Established channel. */
	bool have_app_keys;
	struct oss_dir tx, rx;
	bool tx_closed;		/* we sent DISCONNECT (any reason) */
	bool rx_closed;		/* peer sent DISCONNECT(0) */
	bool reset_sent;	/* RESET sent, waiting for the peer's */
	bool reset_after_failure; /* ... because a record failed to open */
	bool first_after_auth;	/* client: nothing received since CLIENT_AUTH */
	int peer_reason;	/* reason byte of the peer's DISCONNECT, or -1 */
	unsigned int resets_so_far;

	uint8_t outq[OSS_OUTQ_SIZE];
	size_t outq_len;
	size_t outq_reply_ku_end;	/* end of a not yet flushed KEY_UPDATE(0) reply, or 0 */

	struct oss_ev_run {
		int ev;			/* OSSUARY_EVENT_* */
		uint64_t n;		/* ev, this many times in a row */
		uint64_t n_other;	/* then the other key-update kind, this many */
	} events[OSS_EVENTS_MAX];
	unsigned int ev_head, ev_count;

	struct ossuary_sock *sock;
	void (*sock_destroy)(struct ossuary_sock *s);

	uint8_t scratch[OSSUARY_MAX_PLAINTEXT + OSS_TAG];
};

/* hkdf.c: RFC 5869 over HMAC-SHA256. */
void oss_hkdf_extract(uint8_t prk[32], const uint8_t *salt, size_t salt_len,
		      const uint8_t *ikm, size_t ikm_len);
int oss_hkdf_expand(uint8_t *out, size_t out_len, const uint8_t prk[32],
		    const uint8_t *info, size_t info_len);
/* HKDF-Expand(prk, label || ctx, 32), the shape every derivation here takes. */
void oss_derive(uint8_t out[32], const uint8_t prk[32], const char *label,
		const uint8_t *ctx, size_t ctx_len);

/* record.c */
void oss_dir_install(struct oss_dir *d, const uint8_t secret[32], uint64_t seq);
void oss_dir_ratchet(struct oss_dir *d);
void oss_dir_wipe(struct oss_dir *d);
void oss_nonce(uint8_t nonce[12], const uint8_t iv[12], uint64_t seq);
void oss_put_header(uint8_t hdr[4], uint8_t type, size_t body_len);
/* Seals one record (header included) into out, which holds len + 20 bytes. */
void oss_seal(const struct oss_dir *d, uint64_t seq, uint8_t type,
	      const uint8_t *pt, size_t len, const uint8_t *extra_aad,
	      size_t extra_aad_len, uint8_t *out);
/* Opens body (body_len >= 16) against hdr; 0 or -1. pt gets body_len - 16. */
int oss_open(const struct oss_dir *d, uint64_t seq, const uint8_t hdr[4],
	     const uint8_t *extra_aad, size_t extra_aad_len, const uint8_t *body,
	     size_t body_len, uint8_t *pt);
bool oss_is_zero(const uint8_t *p, size_t n);

/*
 * The library is layered; each file uses only what is below it:
 *
 *   connection.c  the object, and the stage machine: handshake ->
 *                 established -> reset -> handshake, failing, closing
 *   handshake.c   handshake-stage records      channel.c  established-stage
 *                                                         records, app calls
 *   core.c        owed output, events, sealing the next record, failing
 *   record.c, hkdf.c
 *
 * handshake.c and channel.c never call each other, and never start or
 * end a stage: they report what a record asks for (the OSS_NEXT_*
 * outcomes below) and connection.c acts on it.
 */

/* core.c: output queue, events, sealing, failing. */
int oss_lazy_init(void);
size_t oss_outq_room(const OssuaryConnection *c);
uint8_t *oss_outq_claim(OssuaryConnection *c, size_t n);
size_t oss_outq_take_all(OssuaryConnection *c, uint8_t *out);
/* Moves whole queued records that fit in room; BUFFER_TOO_SMALL if none fits. */
ssize_t oss_outq_drain(OssuaryConnection *c, uint8_t *out, size_t room);
void oss_event(OssuaryConnection *c, int ev);
/* Latches err; queues DISCONNECT(reason) first when reason >= 0 and we may. */
int oss_fail(OssuaryConnection *c, int err, int reason);
/* Queues a 1-byte control record, sealed with the app TX secret if we hold one. */
int oss_queue_control(OssuaryConnection *c, uint8_t type, uint8_t value);
/* Bytes oss_seal_next() writes for a len-byte plaintext. */
size_t oss_seal_need(const OssuaryConnection *c, uint8_t type, size_t len);
/* Seals the next record in our direction into out; returns bytes written. */
size_t oss_seal_next(OssuaryConnection *c, uint8_t type, const uint8_t *pt,
		     size_t len, uint8_t *out);
/* Seals and queues one app-keyed record, key-updating first at the seq limit. */
int oss_queue_sealed(OssuaryConnection *c, uint8_t type, const uint8_t *pt,
		     size_t len);
bool oss_key_listed(const OssuaryConnection *c, const uint8_t key[32]);
int oss_add_key(OssuaryConnection *c, const uint8_t key[32]);
void oss_wipe_app_keys(OssuaryConnection *c);
/* Wipes the ephemeral secret, PRK and handshake traffic secrets. */
void oss_wipe_handshake(OssuaryConnection *c);

/*
 * What a stage file asks connection.c to do about the record it just
 * consumed (positive, so that they never collide with OSSUARY_ERR_*).
 */
enum oss_next {
	OSS_NEXT_NONE = 0,
	OSS_NEXT_ESTABLISHED,	/* handshake: the application secrets are installed */
	OSS_NEXT_BAD_RECORD,	/* a record failed to open, framing intact; its seq is skipped */
	OSS_NEXT_RESET,		/* the peer's RESET(0) (sealed, or a server's cleartext one) */
	OSS_NEXT_DISCONNECT,	/* the peer's sealed DISCONNECT; reason in peer_reason */
	OSS_NEXT_CLEAR_DISCONNECT, /* client: cleartext DISCONNECT right after CLIENT_AUTH */
};

/* handshake.c */
/* Client: fresh inputs, CLIENT_HELLO queued, waits for SERVER_HELLO. */
int oss_hs_client_hello(OssuaryConnection *c);
/* Server: drops any handshake in progress and waits for a CLIENT_HELLO. */
void oss_hs_server_wait(OssuaryConnection *c);
/* Checks one handshake-stage header (no app RX keys); 0 or a negative code. */
int oss_hs_check_header(OssuaryConnection *c, const uint8_t hdr[4]);
/* Handles one whole handshake-stage record: 0, an OSS_NEXT_* or an error. */
int oss_hs_record(OssuaryConnection *c, const uint8_t *rec);
/* Client: CLIENT_AUTH queued, app secrets in; OSS_NEXT_ESTABLISHED or an error. */
int oss_hs_client_finish(OssuaryConnection *c);

/* channel.c */
/*
 * Opens whole established-stage records from in[*pos, avail) into
 * out[*got, room), advancing both. Returns 0 when it stopped (input or
 * room ran out, or delivered bytes go first), an OSS_NEXT_* for the
 * record just consumed, or an error (the connection has failed).
 */
int oss_ch_input(OssuaryConnection *c, const uint8_t *in, size_t avail,
		 size_t *pos, uint8_t *out, size_t room, size_t *got);
/* Established-stage app calls are refused with this while not established. */
int oss_ch_not_established(const OssuaryConnection *c);

/* keyhex.c */
/* Decodes exactly 64 hex digits at hex into key; 0, or -1 if any is not hex. */
int oss_key_from_hex(const char *hex, uint8_t key[32]);
/* The first line of a key file says what it holds (keyfile.c has the format). */
#define OSS_SECRET_KEY_TYPE "ossuary-secret-key-v1"
#define OSS_PUBLIC_KEY_TYPE "ossuary-public-key-v1"
enum {
	OSS_MARK_NONE = 0,	/* anything else */
	OSS_MARK_SECRET_TYPE,	/* the line OSS_SECRET_KEY_TYPE */
	OSS_MARK_PUBLIC_TYPE,	/* the line OSS_PUBLIC_KEY_TYPE */
	OSS_MARK_OTHER_TYPE,	/* "ossuary-..." alone: another kind or version */
	OSS_MARK_OLD_SECRET,	/* the comment older keygens put in a secret key file */
	OSS_MARK_OLD_PUBLIC,	/* ... and in a public key file */
};
/* What one line (no newline) says about the kind of file it is in. */
int oss_key_mark(const char *line, size_t len);
/* An OSS_MARK_OTHER_TYPE line, quoted for a message if it is safe to repeat. */
void oss_key_type_name(const char *line, size_t len, char *out, size_t cap);
/* Why the text where a key should be is not 64 hex digits (+ blank, comment). */
void oss_key_text_problem(const char *s, size_t len, char *out, size_t cap);
/* Sets ossuary_key_file_error()'s text and errno (err); returns rc. */
int oss_key_error(int rc, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void oss_key_error_clear(void);
/* Makes path's missing directory (the last one only, mode 0700); -1 + errno. */
int oss_key_parent_dir(const char *path, int *created);

/* ---- testing.c: hooks for deterministic tests, never for applications ---- */

/* Queue fixed inputs for the next handshake this side starts. */
int ossuary__inject_handshake_inputs(OssuaryConnection *c,
				     const uint8_t eph_secret[32],
				     const uint8_t nonce[12],
				     const uint8_t challenge[32]);
/* Put the connection straight into the established stage. */
int ossuary__set_established(OssuaryConnection *c, const uint8_t send_secret[32],
			     uint64_t send_seq, const uint8_t recv_secret[32],
			     uint64_t recv_seq, unsigned int resets_so_far,
			     bool reset_sent);
/* OSS_BAD_RECORD_RESET or OSS_BAD_RECORD_DISCONNECT. */
int ossuary__set_on_bad_record(OssuaryConnection *c, int mode);
/* Copies the current application traffic secrets and next seqs. */
int ossuary__debug_traffic(const OssuaryConnection *c, uint8_t tx_secret[32],
			   uint64_t *tx_seq, uint8_t rx_secret[32],
			   uint64_t *rx_seq);

#endif /* OSSUARY_INTERNAL_H */
