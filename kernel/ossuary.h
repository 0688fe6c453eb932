/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Ossuary: ChaCha20-Poly1305 record layer for TCP, as an upper-layer
 * protocol.  Internal definitions shared by the module's files and its
 * KUnit test module.
 */
#ifndef _OSSUARY_INTERNAL_H
#define _OSSUARY_INTERNAL_H

#include <linux/types.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/workqueue.h>
#include <linux/mutex.h>
#include <linux/scatterlist.h>
#include <linux/rcupdate.h>
#include <net/inet_connection_sock.h>
#include <linux/ossuary.h>

#include "compat.h"

#define OSSUARY_NONCE_LEN	12
#define OSSUARY_KEY_LEN		32

/* Largest record on the wire: header plus the largest sealed body. */
#define OSSUARY_REC_MAX		(OSSUARY_HEADER_LEN + OSSUARY_MAX_BODY)
/*
 * Order-0 pages that hold one record's image (RX, and TX plaintext):
 * never a high-order page there.  TX's sealed records go into page
 * fragments instead (struct ossuary_tx_piece).
 */
#define OSSUARY_REC_PAGES	DIV_ROUND_UP(OSSUARY_REC_MAX, PAGE_SIZE)
/* One scatterlist entry per page, plus one spare for a chain end. */
#define OSSUARY_REC_SG		(OSSUARY_REC_PAGES + 1)

/*
 * A record image: byte i of the record lives in pages[i / PAGE_SIZE].
 * The header sits at offset 0 so that header (the AAD), body and tag
 * form one contiguous byte range that seals and opens in place.
 */
struct ossuary_buf {
	struct page *pages[OSSUARY_REC_PAGES];
};

/* One direction's keys and counters. */
struct ossuary_keys {
	u32 key[OSSUARY_KEY_LEN / 4];	/* ChaCha20 key, as state words */
	u8 secret[OSSUARY_SECRET_LEN];
	u8 iv[OSSUARY_NONCE_LEN];
	u64 seq;
	u64 generation;
};

/*
 * Plaintext an open record refers to instead of holding: part of a page
 * that sendfile() or splice() lent us (MSG_SPLICE_PAGES).  The AEAD
 * reads it where it is when the record is sealed.
 */
struct ossuary_tx_frag {
	struct page *page;	/* we hold a reference */
	u32 off;		/* in page */
	u32 len;
	u32 pos;		/* plaintext offset in the record */
};

/*
 * Page-sized frags fill a record with five; the rest is slack for
 * splices that do not start on a page boundary.  A record whose table
 * is full is sealed early, which is legal, only shorter.
 */
#define OSSUARY_TX_FRAGS	8
/* Source scatterlist of a sealing: frags and the image around them. */
#define OSSUARY_TX_SRC_SG	(2 * OSSUARY_TX_FRAGS + OSSUARY_REC_PAGES + 1)

/*
 * A piece of a sealed record as TCP gets it: bytes of a page fragment
 * taken from the socket's page_frag (sk_page_frag()), as tcp_sendmsg()
 * fills its own skbs, so a record takes its size and not whole pages.
 */
struct ossuary_tx_piece {
	struct page *page;	/* we hold a reference */
	u32 off;		/* in page, which may be compound */
	u32 len;
};

/*
 * Pieces of one record: a new fragment page holds at least a page, and
 * the first piece may be the tail of the previous one.
 */
#define OSSUARY_TX_PIECES	(OSSUARY_REC_PAGES + 1)

/*
 * A TX record: open (plaintext being gathered) or sealed and queued.
 * Plaintext byte p is at image offset OSSUARY_HEADER_LEN + p, unless a
 * frag covers p: copied bytes are put in place in the image, lent
 * pages are left where they are.  Sealing reads both and writes the
 * record into its pieces, the only copy of the ciphertext.
 */
struct ossuary_tx_rec {
	struct list_head list;
	/* open: header and copied plaintext; freed once sealed */
	struct ossuary_buf buf;
	u32 plen;	/* plaintext bytes */
	u32 len;	/* sealed: bytes on the wire */
	u32 sent;	/* sealed: bytes already handed to TCP */
	u32 charged;	/* bytes charged to the socket (sk_mem_charge) */
	u32 img_charged;	/* of which for buf's pages */
	/* sealed: the record on the wire, in order */
	u32 npieces;
	struct ossuary_tx_piece pieces[OSSUARY_TX_PIECES];
	u32 nfrags;
	struct ossuary_tx_frag frags[OSSUARY_TX_FRAGS];
};

/* ossuary_ctx.tx_flags bits */
enum {
	OSSUARY_TX_SCHEDULED,	/* tx_work queued or must not be queued */
	OSSUARY_CLOSING,	/* close() started: tx_work, rx_work stay idle */
};

struct ossuary_ctx {
	struct sock *sk;
	struct proto *sk_proto;		/* TCP's proto for this socket */
	void (*saved_data_ready)(struct sock *sk);
	void (*saved_write_space)(struct sock *sk);

	/*
	 * TX: everything below is under the socket lock, owned by process
	 * context (sock_owned_by_me()).  Records are handed to TCP only
	 * with MSG_DONTWAIT, which never drops the lock, so pushers need
	 * nothing more to keep from sending the same bytes twice; whoever
	 * waits for room sleeps with no lock held.  The receive path only
	 * sets the *_pending flags from softirq and leaves sealing and
	 * pushing to process context (ossuary_tx_settle()).
	 */
	bool tx_installed;
	bool tx_closed;			/* DISCONNECT sealed: nothing follows */
	bool tx_shut_pending;		/* shutdown(SHUT_WR): FIN once it is out */
	int tx_err;			/* latched positive errno */
	struct ossuary_keys tx;
	u64 tx_rekey_records;		/* 0: no automatic key update */
	u64 tx_since_update;
	struct ossuary_tx_rec *tx_open;	/* MSG_MORE record, not sealed yet */
	struct list_head tx_queue;	/* sealed, not fully in TCP yet */
	u32 tx_nrecs;			/* records on tx_queue */
	/*
	 * What tx_queue's records are charged, also counted in
	 * sk_wmem_queued: SO_SNDBUF bounds TCP's queue and ours together.
	 */
	u32 tx_wmem;
	u32 tx_updates_over;		/* KEY_UPDATEs past a full SO_SNDBUF */
	bool tx_queued;			/* !list_empty(tx_queue), for softirq */
	bool tx_fail_pending;		/* RX failed: only DISCONNECT(1) now */
	bool tx_update_pending;		/* peer sent KEY_UPDATE(1): ours due */
	bool tx_seal_due;		/* tx_open is complete: seal it */
	int sk_err_own;			/* errno RX failure put in sk_err */
	unsigned long tx_flags;
	struct work_struct tx_work;

	/*
	 * RX: under the socket lock, taken either as owner (process
	 * context) or as the bh spinlock when TCP calls sk_data_ready
	 * from softirq.  Fields read by poll() without the lock are
	 * written with WRITE_ONCE.
	 */
	struct ossuary_keys rx;
	/*
	 * The record being framed/opened.  Its pages are allocated as bytes
	 * arrive (an idle socket holds none) and replaced after splice()
	 * lent them to a pipe (rx_lent).
	 */
	struct ossuary_buf rxb;
	struct work_struct rx_work;	/* framing when softirq had no memory */
	u32 rx_have;			/* bytes of it gathered */
	u32 rx_need;			/* header, then header + body */
	u8 rx_type;
	/*
	 * rx_inq: the DATA record is framed where it lies in TCP's receive
	 * queue (only its header was read; rx_have stays 0) and is opened
	 * from TCP's skbs.  rx_src describes it there, filled by the reader
	 * right before opening (an array kept while records come, freed
	 * with rxb's pages); rx_stage: this record is copied into rxb.
	 */
	bool rx_inq;
	bool rx_stage;
	bool rx_installed;
	bool rx_lent;			/* see rxb */
	struct scatterlist *rx_src;
	bool rx_ready;			/* a whole sealed DATA record is ready */
	bool rx_open;			/* rxb holds opened DATA, rx_off.. */
	u32 rx_off;
	u32 rx_plen;
	bool rx_avail;			/* plaintext to deliver, for poll */
	bool rx_eof;			/* DISCONNECT(0) opened */
	bool rx_eof_read;		/* ... and a read returned 0 for it */
	int rx_err;			/* latched positive errno */
	bool rx_report_pending;		/* rx_err for sk_err after DISCONNECT(1) */
	bool rx_shut;			/* shutdown(SHUT_RD) on this socket */
	bool rx_nomem;			/* bytes left in TCP for want of pages */
	u8 rx_reason;			/* DISCONNECT reason when rx_err */
	bool rx_reason_pending;		/* not yet reported through a cmsg */
	/*
	 * DATA records a MSG_PEEK opened ahead of the reader, oldest
	 * first; they come before rxb's record.  rx_held_bytes is their
	 * plaintext not yet read (for poll), rx_held_mem their pages.
	 */
	struct list_head rx_held;
	u32 rx_held_bytes;
	u32 rx_held_mem;

	struct rcu_head rcu;
};

static inline struct ossuary_ctx *ossuary_get_ctx(const struct sock *sk)
{
	const struct inet_connection_sock *icsk = inet_csk(sk);

	/*
	 * The socket lock or the socket's own lifetime keeps the context:
	 * it is freed only by close(), after the hooks are restored.
	 */
	return (__force void *)icsk->icsk_ulp_data;
}

/* crypto.c */
int ossuary_hkdf_expand(const u8 *prk, const char *info, size_t info_len,
			u8 *out, size_t out_len);
int ossuary_derive(const u8 *secret, u8 *key, u8 *iv);
void ossuary_nonce(const u8 *iv, u64 seq, u8 *nonce);
void ossuary_hdr_build(u8 *hdr, u8 type, u16 body_len);
int ossuary_hdr_check(const u8 *hdr, u8 *type, u32 *body_len);
int ossuary_keys_init(struct ossuary_keys *k, const u8 *secret, u64 seq);
void ossuary_keys_free(struct ossuary_keys *k);
int ossuary_keys_ratchet(struct ossuary_keys *k);
int ossuary_crypt(struct ossuary_keys *k, bool enc, struct scatterlist *src,
		  struct scatterlist *dst, unsigned int cryptlen, u64 seq);
int ossuary_seal(struct ossuary_keys *k, struct ossuary_buf *b,
		 const struct ossuary_tx_frag *frags, u32 nfrags, u32 plen,
		 u64 seq, struct scatterlist *dst);
int ossuary_buf_alloc(struct ossuary_buf *b, unsigned int len, gfp_t gfp);
void ossuary_buf_free(struct ossuary_buf *b);
unsigned int ossuary_buf_sg(struct ossuary_buf *b, unsigned int len,
			    struct scatterlist *sg);
void ossuary_buf_write(struct ossuary_buf *b, unsigned int off,
		       const void *src, unsigned int len);
void ossuary_buf_read(struct ossuary_buf *b, unsigned int off, void *dst,
		      unsigned int len);

/* tx.c */
void ossuary_tx_init(struct ossuary_ctx *ctx);
int ossuary_tx_install(struct sock *sk, struct ossuary_ctx *ctx,
		       const struct ossuary_crypto_info *ci);
void ossuary_tx_release(struct sock *sk, struct ossuary_ctx *ctx);
int ossuary_sendmsg(struct sock *sk, struct msghdr *msg, size_t size);
void ossuary_splice_eof(struct socket *sock);
int ossuary_tx_disconnect(struct sock *sk, struct ossuary_ctx *ctx, u8 reason,
			  long *timeo);
int ossuary_tx_key_update(struct sock *sk, struct ossuary_ctx *ctx,
			  u8 request);
int ossuary_tx_key_update_wait(struct sock *sk, struct ossuary_ctx *ctx,
			       u8 request, long *timeo);
int ossuary_tx_flush(struct sock *sk, struct ossuary_ctx *ctx);
void ossuary_tx_settle(struct sock *sk, struct ossuary_ctx *ctx);
void ossuary_tx_schedule(struct ossuary_ctx *ctx);
void ossuary_tx_flush_on_close(struct sock *sk, struct ossuary_ctx *ctx,
			       long timeout);
void ossuary_write_space(struct sock *sk);
void ossuary_tx_schedule_fail(struct sock *sk, struct ossuary_ctx *ctx);
void ossuary_tx_schedule_key_update(struct ossuary_ctx *ctx);

/* main.c */
void ossuary_shutdown_send(struct sock *sk, struct ossuary_ctx *ctx);

/* rx.c */
void ossuary_rx_init(struct ossuary_ctx *ctx);
int ossuary_rx_install(struct sock *sk, struct ossuary_ctx *ctx,
		       const struct ossuary_crypto_info *ci);
void ossuary_rx_release(struct sock *sk, struct ossuary_ctx *ctx);
int ossuary_recvmsg(struct sock *sk, struct msghdr *msg, size_t len,
		    int flags, int *addr_len);
ssize_t ossuary_splice_read(struct socket *sock, loff_t *ppos,
			    struct pipe_inode_info *pipe, size_t len,
			    unsigned int flags);
bool ossuary_rx_readable(struct sock *sk, struct ossuary_ctx *ctx);
void ossuary_rx_report(struct sock *sk, struct ossuary_ctx *ctx);
int ossuary_rx_inq(struct ossuary_ctx *ctx);
void ossuary_data_ready(struct sock *sk);

/* stats.c */
enum ossuary_mib {
	OSSUARY_MIB_CURR_TX,
	OSSUARY_MIB_CURR_RX,
	OSSUARY_MIB_TOTAL_TX,
	OSSUARY_MIB_TOTAL_RX,
	OSSUARY_MIB_SEALED,
	OSSUARY_MIB_OPENED,
	OSSUARY_MIB_DECRYPT_ERR,
	OSSUARY_MIB_PROTO_ERR,
	OSSUARY_MIB_TRUNCATED,
	OSSUARY_MIB_KEY_UPDATE_TX,
	OSSUARY_MIB_KEY_UPDATE_RX,
	OSSUARY_MIB_TX_COPIED,
	OSSUARY_MIB_TX_ZEROCOPY,
	OSSUARY_MIB_RX_DIRECT,
	OSSUARY_MIB_RX_BUFFERED,
	OSSUARY_MIB_RX_SPLICED,
	OSSUARY_MIB_RX_DEFERRED,
	OSSUARY_MIB_RX_SKB,
	OSSUARY_MIB_RX_STAGED,
	OSSUARY_MIB_RX_COPIED,
	OSSUARY_MIB_MAX
};

void ossuary_stat_add(const struct sock *sk, enum ossuary_mib mib, long v);
int ossuary_stats_init(void);
void ossuary_stats_exit(void);

#endif /* _OSSUARY_INTERNAL_H */
