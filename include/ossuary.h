/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libossuary: the Ossuary handshake and record layer (docs/PROTOCOL.md, version 2).
 *
 * Two ways to use it:
 *  - as a filter over buffers, for any transport (the original Ossuary
 *    API): the application moves bytes, the library seals and opens;
 *  - on a connected socket: ossuary_handshake_fd() runs the handshake,
 *    then ossuary_offload() hands the record layer to the kernel module
 *    (plain read/write/sendfile from then on), or ossuary_read() and
 *    ossuary_write() keep it in userspace on the same fd.
 *
 * Every function returns a negative OSSUARY_ERR_* code on failure.
 */
#ifndef OSSUARY_H
#define OSSUARY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library builds with -fvisibility=hidden: what this header declares is its ABI. */
#pragma GCC visibility push(default)

typedef struct OssuaryConnection OssuaryConnection;

typedef enum {
	CONN_TYPE_CLIENT = 0x00,
	CONN_TYPE_AUTHENTICATED_SERVER = 0x01,
	CONN_TYPE_UNAUTHENTICATED_SERVER = 0x02,
} connection_type_t;

enum {
	OSSUARY_OK = 0,
	OSSUARY_ERR_INVALID = -1,		/* a bad argument (NULL, zero, oversize) */
	OSSUARY_ERR_BUFFER_TOO_SMALL = -2,	/* the output buffer cannot hold the next record */
	OSSUARY_ERR_PROTOCOL = -3,		/* malformed or unexpected record from the peer */
	OSSUARY_ERR_DECRYPT = -4,		/* a record failed to open */
	OSSUARY_ERR_AUTH = -5,			/* peer signature bad, or peer key not authorized */
	OSSUARY_ERR_STATE = -6,			/* call not valid in the connection's current stage */
	OSSUARY_ERR_RESET = -7,			/* channel dropped back to the handshake (RESET exchange) */
	OSSUARY_ERR_EOF = -8,			/* peer closed its direction cleanly (DISCONNECT(0)) */
	OSSUARY_ERR_TRUNCATED = -9,		/* transport ended without DISCONNECT(0) */
	OSSUARY_ERR_DISCONNECTED = -10,		/* peer ended the connection with an error reason */
	OSSUARY_ERR_REFUSED = -11,		/* peer refused our authentication (DISCONNECT(2)) */
	OSSUARY_ERR_TOO_MANY_RESETS = -12,	/* fifth reset exchange refused; connection failed */
	OSSUARY_ERR_NO_MEMORY = -13,
	OSSUARY_ERR_IO = -14,			/* the transport failed; errno says why */
	OSSUARY_ERR_TIMEOUT = -15,
	OSSUARY_ERR_NO_KERNEL = -16,		/* the ossuary kernel module is not available */
	OSSUARY_ERR_KEY_FILE = -17,		/* key file unreadable, malformed or too open */
	OSSUARY_ERR_KEY_CHANGED = -18,		/* known-hosts: the host presented a different key */
	OSSUARY_ERR_CRYPTO = -19,		/* crypto library failure */
	OSSUARY_ERR_HANDSHAKE_FAILED = -20,	/* the server could not open our CLIENT_AUTH
						 * (cleartext DISCONNECT right after it) */
	OSSUARY_ERR_NOT_OSSUARY = -21,		/* the peer's first bytes are not Ossuary (wrong port?) */
	OSSUARY_ERR_WOULD_BLOCK = -64,		/* need more input or output room; call again */
	OSSUARY_ERR_UNTRUSTED_SERVER = -65,	/* TOFU pause: approve the key or refuse */
};

#define OSSUARY_KEY_LEN 32			/* Ed25519 secret seed and public key */
#define OSSUARY_MAX_PLAINTEXT 16384		/* bytes of application data per record */
#define OSSUARY_MAX_RECORD (4 + 16384 + 16)	/* largest record on the wire */

/* A human-readable message for an OSSUARY_* code. Never NULL. */
const char *ossuary_strerror(int err);

/* ---- The filter API (the seeds' C API, lengths widened to size_t) ---- */

/* auth_secret_key: NULL, or this side's 32-byte Ed25519 secret seed. */
OssuaryConnection *ossuary_create_connection(connection_type_t type,
					     const uint8_t auth_secret_key[32]);
/* Wipes all key material and frees; sets *conn to NULL. */
int ossuary_destroy_connection(OssuaryConnection **conn);
int ossuary_set_secret_key(OssuaryConnection *conn, const uint8_t key[32]);
int ossuary_add_authorized_key(OssuaryConnection *conn, const uint8_t key[32]);
int ossuary_add_authorized_keys(OssuaryConnection *conn,
				const uint8_t (*keys)[32], size_t count);
/* Copies the peer's public key (32 bytes); OSSUARY_ERR_STATE before one is known. */
int ossuary_remote_public_key(OssuaryConnection *conn, uint8_t *key_buf,
			      size_t key_buf_len);
int ossuary_generate_auth_keypair(uint8_t secret_key[32], uint8_t public_key[32]);

/*
 * Handshake. recv: *in_len is the bytes available in, and on return the
 * bytes consumed. send: *out_len is the room in out, and on return the
 * bytes written. Both return >= 0 on progress or a negative code.
 */
int ossuary_recv_handshake(OssuaryConnection *conn, const uint8_t *in,
			   size_t *in_len);
int ossuary_send_handshake(OssuaryConnection *conn, uint8_t *out,
			   size_t *out_len);
/*
 * 1 when established, 0 while handshaking, OSSUARY_ERR_UNTRUSTED_SERVER
 * at the trust-on-first-use pause (approve with ossuary_approve_server(),
 * or refuse with ossuary_refuse_server()), another negative code when
 * the handshake failed.
 */
int ossuary_handshake_done(const OssuaryConnection *conn);
int ossuary_approve_server(OssuaryConnection *conn);
int ossuary_refuse_server(OssuaryConnection *conn);

/*
 * Established channel. send_data seals in_len bytes (split into records
 * of at most OSSUARY_MAX_PLAINTEXT) into out; returns bytes of input
 * taken, *out_len set to bytes written. recv_data opens whole records
 * from in (*in_len: available, then consumed) into out (*out_len: room,
 * then written); returns bytes delivered, or OSSUARY_ERR_WOULD_BLOCK
 * for a partial record, OSSUARY_ERR_EOF, OSSUARY_ERR_RESET, ...
 */
ssize_t ossuary_send_data(OssuaryConnection *conn, const uint8_t *in,
			  size_t in_len, uint8_t *out, size_t *out_len);
ssize_t ossuary_recv_data(OssuaryConnection *conn, const uint8_t *in,
			  size_t *in_len, uint8_t *out, size_t *out_len);
/* Writes any owed output (replies, RESET, DISCONNECT); returns bytes written. */
ssize_t ossuary_flush(OssuaryConnection *conn, uint8_t *out, size_t out_len);
/* Queue a KEY_UPDATE (request_reply 0 or 1) and a DISCONNECT(reason). */
int ossuary_key_update(OssuaryConnection *conn, int request_reply);
int ossuary_disconnect(OssuaryConnection *conn, int reason);
/* Tell the library that the transport reported end-of-file. */
int ossuary_recv_eof(OssuaryConnection *conn);
/*
 * The reason byte of the peer's DISCONNECT (OSSUARY_DISCONNECT_*: 1 is
 * "protocol or decryption error", i.e. the peer could not open our
 * records), or OSSUARY_ERR_STATE when none arrived.
 */
int ossuary_peer_disconnect_reason(const OssuaryConnection *conn);
/*
 * How the filter calls fit together (userspace record layer):
 *  - Input is never buffered inside: a partial record consumes nothing
 *    (OSSUARY_ERR_WOULD_BLOCK), so keep unconsumed bytes and call again
 *    with more. A record longer than OSSUARY_MAX_RECORD is refused from
 *    its 4-byte header.
 *  - recv_data may return 0 after consuming input: records that deliver
 *    nothing (KEY_UPDATE, an empty DATA, data discarded during a reset).
 *    OSSUARY_ERR_EOF is a clean end of the peer's direction, and stays.
 *  - Replies the library owes (KEY_UPDATE(0), RESET, DISCONNECT, the
 *    next handshake record) are queued; send_data writes them first,
 *    and ossuary_flush() or ossuary_send_handshake() write them alone.
 *    Call one of them after every recv.
 *  - A record that fails to open starts a RESET instead of failing.
 *    When an exchange completes, recv_data returns OSSUARY_ERR_RESET
 *    with the RESET consumed; handshake_done() is then 0 and the bytes
 *    after it belong to ossuary_recv_handshake(). recv_handshake never
 *    consumes past the last handshake record, so the bytes after that
 *    belong to recv_data again.
 *  - A reset started because a record failed to open never ends in a
 *    clean end-of-file: if the peer closes (DISCONNECT of any reason, or
 *    FIN) before its RESET arrives, the error is OSSUARY_ERR_DECRYPT.
 *  - In the handshake stage a client whose SERVER_HELLO fails to open
 *    sends a cleartext RESET and at once a fresh CLIENT_HELLO (one-way:
 *    the server counts it and waits, answering nothing). A server that
 *    cannot open CLIENT_AUTH answers with a cleartext DISCONNECT(1); the
 *    client, already established on its side, then fails with
 *    OSSUARY_ERR_HANDSHAKE_FAILED (event OSSUARY_EVENT_HANDSHAKE_FAILED).
 *  - KEY_UPDATE(1) is answered by a KEY_UPDATE(0) queued as the request
 *    is opened, ahead of anything sealed later; requests opened while
 *    that answer is still unsent share it (one answer for a batch).
 */

/*
 * Start a RESET exchange ("drop back to the handshake"): queues a RESET;
 * nothing more is sealed (send_data and key_update return
 * OSSUARY_ERR_RESET) and the peer's records are opened and discarded
 * until its RESET arrives, when recv_data returns OSSUARY_ERR_RESET and
 * the handshake runs again on the same stream. If the peer closes with
 * DISCONNECT(0) first, recv_data returns OSSUARY_ERR_EOF. Resets are
 * counted per connection, the handshake stage's one-way RESETs too; the
 * fifth is refused (OSSUARY_ERR_TOO_MANY_RESETS).
 */
int ossuary_reset(OssuaryConnection *conn);

/*
 * Events, in the order they happened, for applications that want more
 * than the return codes say (a key update applied, for instance).
 * ossuary_next_event() returns the oldest unread one and forgets it, or
 * 0 when none is left. Reading them is optional, and none is dropped:
 * they are kept in fixed memory as runs of equal events, so a flood of
 * key updates neither loses events nor holds up recv_data. Only when
 * about 40 runs of key updates wait unread (a peer alternating
 * KEY_UPDATE(0) and (1)) are the later ones reported grouped by kind,
 * each still once, in place of their exact interleaving.
 */
enum {
	OSSUARY_EVENT_NONE = 0,
	OSSUARY_EVENT_HANDSHAKE_DONE = 1,	/* the channel is established */
	OSSUARY_EVENT_KEY_UPDATE = 2,		/* peer updated its key: KEY_UPDATE(0) */
	OSSUARY_EVENT_KEY_UPDATE_REQUESTED = 3,	/* KEY_UPDATE(1): updated, our reply queued */
	OSSUARY_EVENT_END_OF_FILE = 4,		/* peer sent DISCONNECT(0) */
	OSSUARY_EVENT_RESET = 5,		/* a reset completed (see below) */
	OSSUARY_EVENT_HANDSHAKE_FAILED = 6,	/* client: the server could not open CLIENT_AUTH */
	OSSUARY_EVENT_RESET_AFTER_FAILURE = 7,	/* a reset we started because a record
						 * failed to open completed (see below) */
};
/*
 * Every completed reset is reported by exactly one of the two reset
 * events: an exchange (both RESETs) in the established stage, a
 * client's one-way RESET after a SERVER_HELLO that failed to open, or
 * a server's receipt of one. OSSUARY_EVENT_RESET_AFTER_FAILURE says this
 * side started it because a record from the peer failed to open: that
 * record's bytes, and any DATA discarded while waiting for the peer's
 * RESET, are missing from what recv_data delivered. OSSUARY_EVENT_RESET
 * (the application or the peer asked for the reset) can hide dropped
 * bytes too: whatever either side sealed after the other's RESET was
 * discarded. A byte-stream application treats either as lost data
 * unless its own protocol recovers.
 */
int ossuary_next_event(OssuaryConnection *conn);

/* ---- The socket API ---- */

/*
 * Run the whole handshake on a connected stream fd. Blocking fds block
 * (at most timeout_ms, < 0 for none); non-blocking fds return
 * OSSUARY_ERR_WOULD_BLOCK with *wait_events (POLLIN/POLLOUT) to poll
 * for before calling ossuary_handshake_step() again. Never reads past
 * the last handshake record. OSSUARY_ERR_NOT_OSSUARY when the peer's
 * very first bytes cannot start an Ossuary stream (an HTTP server or
 * client, an echo service: the wrong port), said from the first byte.
 */
int ossuary_handshake_fd(OssuaryConnection *conn, int fd, int timeout_ms);
int ossuary_handshake_step(OssuaryConnection *conn, int fd, short *wait_events);

#define OSSUARY_OFFLOAD_FALLBACK 0x1	/* stay in userspace if the module is absent */
enum ossuary_mode {
	OSSUARY_MODE_HANDSHAKE = 0,
	OSSUARY_MODE_USERSPACE = 1,	/* ossuary_read()/ossuary_write() seal and open */
	OSSUARY_MODE_KERNEL = 2,	/* the socket itself seals and opens */
};
/*
 * After the handshake: attach the "ossuary" ULP and install both traffic
 * secrets. Returns OSSUARY_MODE_KERNEL, or OSSUARY_ERR_NO_KERNEL when
 * the module is missing (OSSUARY_MODE_USERSPACE with the FALLBACK flag).
 * The same holds for an fd that is not a TCP socket (a unix socketpair,
 * a pipe), where the kernel layer cannot be had at all: errno is then
 * ENOTSOCK or EOPNOTSUPP rather than ENOENT.
 */
int ossuary_offload(OssuaryConnection *conn, int fd, unsigned int flags);
int ossuary_mode(const OssuaryConnection *conn);

/* Read/write application bytes on fd in either mode (pass-through once offloaded). */
ssize_t ossuary_write(OssuaryConnection *conn, int fd, const void *buf, size_t len);
ssize_t ossuary_read(OssuaryConnection *conn, int fd, void *buf, size_t len);
/* Send DISCONNECT(0) and shut down the write side. */
int ossuary_shutdown(OssuaryConnection *conn, int fd);

/* ---- Key files ---- */

/*
 * Formats (user/lib/keyfile.c and known_hosts.c have the details). A key
 * file's first line says what it holds, and is checked:
 *
 *   ossuary-secret-key-v1        ossuary-public-key-v1
 *   # comment lines, blanks      64 hex digits [blank comment]
 *   64 hex digits
 *
 * Loading the wrong kind fails (OSSUARY_ERR_KEY_FILE, errno EINVAL), so a
 * public key is never used as a secret seed. Files from before the type
 * line are read only where the kind is certain: a public key named
 * *.pub; a secret key not named *.pub and private to its owner (0600).
 * Authorized-keys files list public keys, `HEX [comment]` a line (the
 * line ossuary-public-key-v1 may appear and is skipped, so .pub files
 * can be appended whole); known-hosts files have `HOST HEX` lines. A
 * secret key type line in either is refused.
 *
 * Every call below, on failure, leaves a message for a person:
 * ossuary_key_file_error().
 */

/*
 * Writes a new pair: the secret key file with mode 0600, the public one
 * with 0644; never replaces a file. A missing last directory of a path
 * is made, mode 0700 (as ssh-keygen makes ~/.ssh); higher ones are not.
 */
int ossuary_write_keypair(const char *secret_path, const char *public_path);
/* Refuses a public key file, and a secret key file that group or others can use. */
int ossuary_load_secret_key(const char *path, uint8_t key[32]);
/* Refuses a secret key file, and the all-zero key. */
int ossuary_load_public_key(const char *path, uint8_t key[32]);
/* One or more public keys, one per line; returns the count loaded (all or none). */
int ossuary_load_authorized_keys(OssuaryConnection *conn, const char *path);
/*
 * Known hosts (trust on first use): OSSUARY_OK when host is listed with
 * this key, OSSUARY_ERR_UNTRUSTED_SERVER when the host is not listed,
 * OSSUARY_ERR_KEY_CHANGED when it is listed with a different key.
 * ossuary_known_hosts_add() creates the file (0600), and its last
 * directory (0700) when missing.
 */
int ossuary_known_hosts_check(const char *path, const char *host,
			      const uint8_t key[32]);
int ossuary_known_hosts_add(const char *path, const char *host,
			    const uint8_t key[32]);
/*
 * Why the last key-file call above failed on this thread, in words:
 * "PATH[:LINE]: what is wrong[; what to do]", e.g.
 *   "bob.pub is a public key; pass the secret key file (without .pub: bob)"
 *   "auth:3: expected 64 hex digits of an Ed25519 public key; a SHA256:
 *    fingerprint is not a key"
 * For OSSUARY_ERR_KEY_CHANGED it names the line that lists the other key.
 * "" after a success. Never NULL, never quotes key material; valid until
 * the thread's next key-file call.
 */
const char *ossuary_key_file_error(void);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif /* OSSUARY_H */
