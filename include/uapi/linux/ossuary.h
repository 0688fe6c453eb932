/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * Ossuary: ChaCha20-Poly1305 record layer for TCP sockets.
 *
 * The user/kernel contract. Userspace runs the handshake, attaches the
 * "ossuary" ULP with setsockopt(SOL_TCP, TCP_ULP, "ossuary") and then
 * installs one traffic secret per direction at level SOL_OSSUARY.
 * The wire format is docs/PROTOCOL.md, version 2.
 */
#ifndef _UAPI_LINUX_OSSUARY_H
#define _UAPI_LINUX_OSSUARY_H

#include <linux/types.h>
#include <linux/errno.h>

/*
 * Socket option level. Not a number from include/linux/socket.h: the ULP
 * intercepts this level before the socket's TCP handler sees it, so it
 * only has to differ from the levels a TCP socket answers to.
 */
#define SOL_OSSUARY		0x4f53

/*
 * setsockopt/getsockopt option names at SOL_OSSUARY:
 *  OSSUARY_TX, OSSUARY_RX  set: struct ossuary_crypto_info;
 *                          get: struct ossuary_dir_state
 *  OSSUARY_KEY_UPDATE      set only: int, 1 asks the peer to update too
 *  OSSUARY_REKEY_RECORDS   u64: records sealed per TX key before an
 *                          automatic key update
 */
#define OSSUARY_TX		1
#define OSSUARY_RX		2
#define OSSUARY_KEY_UPDATE	3
#define OSSUARY_REKEY_RECORDS	4

/* cmsg types at level SOL_OSSUARY (as kTLS's TLS_{SET,GET}_RECORD_TYPE) */
#define OSSUARY_SET_RECORD_TYPE	1
#define OSSUARY_GET_RECORD_TYPE	2

#define OSSUARY_VERSION_2		2
#define OSSUARY_CIPHER_CHACHA20_POLY1305	1

/* Record types on the wire */
#define OSSUARY_RECORD_CLIENT_HELLO	0x01
#define OSSUARY_RECORD_SERVER_HELLO	0x02
#define OSSUARY_RECORD_CLIENT_AUTH	0x03
#define OSSUARY_RECORD_DISCONNECT	0x10
#define OSSUARY_RECORD_RESET		0x11
#define OSSUARY_RECORD_DATA		0x20
#define OSSUARY_RECORD_KEY_UPDATE	0x21

/* DISCONNECT reasons */
#define OSSUARY_DISCONNECT_CLEAN	0
#define OSSUARY_DISCONNECT_ERROR	1
#define OSSUARY_DISCONNECT_AUTH		2
#define OSSUARY_DISCONNECT_INTERNAL	3

#define OSSUARY_WIRE_VERSION		0x02
#define OSSUARY_HEADER_LEN		4
#define OSSUARY_TAG_LEN			16
#define OSSUARY_SECRET_LEN		32
#define OSSUARY_MAX_PLAINTEXT		16384
#define OSSUARY_MAX_BODY		(OSSUARY_MAX_PLAINTEXT + OSSUARY_TAG_LEN)
/* The last sequence number one secret may seal (with KEY_UPDATE only) */
#define OSSUARY_SEQ_LAST		0xfffffffffffffffeULL

/*
 * OSSUARY_TX / OSSUARY_RX, set: install a direction's traffic secret.
 * The kernel derives key and IV with HKDF-SHA256 ("key", "iv") and
 * ratchets the secret itself on KEY_UPDATE ("next"). Each direction can
 * be installed once; reserved must be zero.
 */
struct ossuary_crypto_info {
	__u16 version;		/* OSSUARY_VERSION_2 */
	__u16 cipher;		/* OSSUARY_CIPHER_CHACHA20_POLY1305 */
	__u32 reserved;		/* must be 0 */
	__u64 seq;		/* first sequence number to seal or open */
	__u8 secret[OSSUARY_SECRET_LEN];
};

/* struct ossuary_dir_state.flags */
#define OSSUARY_STATE_INSTALLED	(1U << 0)	/* a secret is installed */
#define OSSUARY_STATE_ERROR	(1U << 1)	/* the direction failed closed; see error */
#define OSSUARY_STATE_CLOSED	(1U << 2)	/* DISCONNECT sent (TX) or received (RX) */

/*
 * OSSUARY_TX / OSSUARY_RX, get: a direction's state. Never the key.
 */
struct ossuary_dir_state {
	__u16 version;
	__u16 cipher;
	__u32 flags;		/* OSSUARY_STATE_* */
	__u64 seq;		/* next sequence number */
	__u64 generation;	/* key updates applied since install */
	__s32 error;		/* latched errno (positive), 0 if none */
	__u32 reserved;
};

/*
 * Behaviour of an offloaded socket (kernel/ossuary.ko), for reference.
 *
 * Attach: setsockopt(SOL_TCP, TCP_ULP, "ossuary") on an ESTABLISHED TCP
 * socket, or one in CLOSE_WAIT (the peer's FIN is in: what it sent before
 * is still read as records), only (ENOTCONN otherwise, EEXIST if a ULP
 * is already set, EBUSY if the socket is in a BPF sockmap).
 * Until a direction is installed, that direction is plain TCP.
 *
 * setsockopt(SOL_OSSUARY, OSSUARY_TX or OSSUARY_RX): optlen must be
 * sizeof(struct ossuary_crypto_info) and version, cipher and reserved as
 * documented, seq <= OSSUARY_SEQ_LAST (EINVAL otherwise, nothing
 * changes); EBUSY once that direction is installed.  Bytes that reached
 * the socket before OSSUARY_RX was installed and were not read are
 * parsed as records.
 * OSSUARY_KEY_UPDATE (int 0 or 1): seal KEY_UPDATE(value) now and move
 * TX to the next secret (EINVAL if TX is not installed, EPIPE after a
 * DISCONNECT was sent).  A full send buffer (SO_SNDBUF, which counts
 * sealed records TCP has not taken yet) takes four more; after that,
 * or while eight sealed records still wait for room in TCP (a peer
 * that reads nothing), it waits as a write does: SO_SNDTIMEO, then
 * EAGAIN with nothing sealed; at once on O_NONBLOCK.  The answer the
 * kernel owes a peer's KEY_UPDATE(1) waits for room the same way, and
 * for TCP to have sent everything before it; requests that arrive
 * meanwhile are answered by that one KEY_UPDATE(0).
 * OSSUARY_REKEY_RECORDS (__u64, also readable):
 * send KEY_UPDATE(0) automatically after that many records under one
 * secret; 0 (the default) = only when the sequence number runs out.
 * Unknown option names: ENOPROTOOPT.
 * getsockopt(SOL_OSSUARY, OSSUARY_TX or OSSUARY_RX) fills a struct
 * ossuary_dir_state (EINVAL if optlen is smaller); all zero while the
 * direction is not installed.
 *
 * Reading (errors are latched: once a read returns one of them, every
 * later read returns the same one, and nothing of a bad record is
 * ever delivered):
 *   0           the peer sent DISCONNECT(0): clean end of stream (any
 *               byte after it is then reported as EPROTO)
 *   EBADMSG     a record failed to open (bad tag, replayed, reordered or
 *               dropped record, seq 2^64-1)
 *   EPROTO      a header with a bad version, an unknown or out-of-stage
 *               type or a length not allowed for its type (detected
 *               from the 4 header bytes), or a bad KEY_UPDATE/RESET value
 *   ECONNRESET  the peer sent DISCONNECT(reason != 0) or RESET (answered
 *               with DISCONNECT(1): the kernel does not re-handshake);
 *               after a DISCONNECT(reason != 0) this side's TX is closed
 *               too (no record, not even a DISCONNECT, is sent any more:
 *               a send reports the reset once, then EPIPE)
 *   OSSUARY_TRUNCATED_ERRNO (EPIPE)
 *               TCP FIN without DISCONNECT(0) before it, at a record
 *               boundary or inside a record: a truncated stream
 *   the TCP connection's own error (ECONNRESET after a TCP reset,
 *               ETIMEDOUT...), after the records that arrived before it
 *               were read; latched too, unlike on plain TCP
 * A TCP urgent byte (MSG_OOB) in the stream is EPROTO.  After
 * shutdown(SHUT_RD) on this socket, reads return 0 once the records
 * already there are read, as on TCP (no truncation is reported).
 * EBADMSG, EPROTO and a RESET also send DISCONNECT(1) to the peer if
 * this side's TX is installed and has not sent a DISCONNECT yet; from
 * then on DISCONNECT(1) is the only record this side seals: sends fail
 * with EPIPE, and shutdown() or close() send DISCONNECT(1), never
 * DISCONNECT(0).  Counters in /proc/net/ossuary_stat say which error it
 * was.  EBADMSG, EPROTO and ECONNRESET from a DISCONNECT or RESET record
 * are also fatal errors of the socket, as on kTLS: SO_ERROR returns the
 * same errno once and poll() reports EPOLLERR until then (as soon as
 * the DISCONNECT(1), if one is due, is sealed; it still goes out after
 * the error is set).  A send reports it once too, then EPIPE.  A
 * truncation is not a socket error: it is TCP's end of stream (EPOLLIN,
 * EPOLLRDHUP).
 * A reader that passes a control buffer gets a cmsg (SOL_OSSUARY,
 * OSSUARY_GET_RECORD_TYPE, one byte) with each read: the record type.
 * DATA reads carry type OSSUARY_RECORD_DATA; a DISCONNECT with a
 * non-zero reason is delivered once as a 1-byte read of type
 * OSSUARY_RECORD_DISCONNECT whose byte is the reason, and only then do
 * reads report ECONNRESET.  KEY_UPDATE is consumed by the kernel.
 * One read returns as many DATA records as have arrived and fit in its
 * buffer, as on kTLS; it stops before that DISCONNECT record and before
 * an error (the bytes read so far are returned, the error by the next
 * read).  Once it has bytes it waits for no more unless they are fewer
 * than SO_RCVLOWAT, or than len with MSG_WAITALL, as on TCP.  But TCP
 * wakes readers and poll() by the ciphertext it still holds, so an
 * SO_RCVLOWAT above 1 can delay the wakeup for a record's end: leave it
 * at 1 on an offloaded socket.
 * MSG_PEEK does the same without consuming anything: it spans records
 * (MSG_PEEK | MSG_WAITALL waits for len bytes), as far as the opened
 * records it holds stay within about SO_RCVBUF bytes.  poll() reports
 * EPOLLIN only when a whole DATA record, an error or the end of the
 * stream is there; control records are acted on as soon as they arrive.
 * Supported recv flags: MSG_PEEK, MSG_WAITALL, MSG_DONTWAIT,
 * MSG_ERRQUEUE, MSG_CMSG_CLOEXEC, MSG_NOSIGNAL (accepted and ignored, as
 * on TCP); others (MSG_OOB, MSG_TRUNC...) give EOPNOTSUPP.
 *
 * Writing: DATA records of at most OSSUARY_MAX_PLAINTEXT bytes; MSG_MORE
 * keeps the last record open for the next send; blocking, EAGAIN and
 * partial counts as on TCP.  Supported send flags: MSG_MORE,
 * MSG_DONTWAIT, MSG_NOSIGNAL, MSG_EOR (ends the record; EINVAL with
 * MSG_MORE); others give EOPNOTSUPP.  A cmsg (SOL_OSSUARY,
 * OSSUARY_SET_RECORD_TYPE, one byte) with OSSUARY_RECORD_DISCONNECT and
 * exactly one byte of payload (the reason, 0..3) seals any open record,
 * then DISCONNECT(reason); with OSSUARY_RECORD_KEY_UPDATE and one byte
 * (0 or 1) it is the same as OSSUARY_KEY_UPDATE (EAGAIN, nothing sealed,
 * when there is no room).  Other types: EINVAL.
 * After a DISCONNECT has been sent, sends fail with EPIPE.  Bytes a send
 * reports as sent are sealed (unless MSG_MORE) and go out, also when
 * the send stopped early on a fault or a signal.
 * shutdown(SHUT_WR) sends DISCONNECT(0) before TCP's FIN and, as on
 * TCP, never waits: when TCP's send buffer has no room for it, it stays
 * queued in the kernel and goes out, then the FIN, as soon as the peer
 * reads; on an O_NONBLOCK socket shutdown then fails with EAGAIN, and a
 * retry returns 0 once both are in TCP (a blocking socket gets 0 at
 * once); ENOMEM means nothing was sent (no FIN either): retry it.
 * Sends fail with EPIPE from the first call on, and a writer
 * blocked in another thread returns at once (the bytes it reported,
 * else EPIPE).  close() sends any open record and
 * DISCONNECT(0) too; a blocking close waits at most
 * min(SO_SNDTIMEO, max(linger time, 5 s)) for send buffer space.  A
 * close that must not block, of an O_NONBLOCK socket or by an exiting
 * process, never waits: it hands TCP the open record and DISCONNECT(0)
 * only as far as the send buffer has room at that moment, and if they
 * do not fit whole, its peer reads a truncated stream (EPIPE), never a
 * clean end.  SO_LINGER with a zero timeout closes abortively, and so
 * does the close of a process being killed by a signal (its peer reads
 * a truncated stream).  sendfile()/splice() into the socket seal
 * straight from the lent pages; splice() out of the socket lends the
 * opened record's pages to the pipe (one record per call).
 * connect(AF_UNSPEC) on an attached socket gives EOPNOTSUPP.
 */
#define OSSUARY_TRUNCATED_ERRNO	EPIPE

#endif /* _UAPI_LINUX_OSSUARY_H */
