/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * Ossuary: ChaCha20-Poly1305 record layer for TCP sockets.
 *
 * The user/kernel contract. Userspace runs the handshake, attaches the
 * "ossuary" ULP with setsockopt(SOL_TCP, TCP_ULP, "ossuary") and then
 * installs one traffic secret per direction at level SOL_OSSUARY.
 * The wire format is PROTOCOL.md, version 2.
 */
#ifndef _UAPI_LINUX_OSSUARY_H
#define _UAPI_LINUX_OSSUARY_H

#include <linux/types.h>

/*
 * Socket option level. Not a number from include/linux/socket.h: the ULP
 * intercepts this level before the socket's TCP handler sees it, so it
 * only has to differ from the levels a TCP socket answers to.
 */
#define SOL_OSSUARY		0x4f53

/* setsockopt/getsockopt option names at SOL_OSSUARY */
#define OSSUARY_TX		1	/* struct ossuary_crypto_info in, struct ossuary_dir_state out */
#define OSSUARY_RX		2	/* as OSSUARY_TX, for the receive direction */
#define OSSUARY_KEY_UPDATE	3	/* set only: int, 0 or 1 = ask the peer to update too */
#define OSSUARY_REKEY_RECORDS	4	/* u64: records sealed per TX key before an automatic update */

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

#endif /* _UAPI_LINUX_OSSUARY_H */
