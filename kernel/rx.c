// SPDX-License-Identifier: GPL-2.0
/*
 * Ossuary RX: frame records out of the TCP receive queue, open them
 * and deliver the plaintext.
 *
 * Framing runs from sk_data_ready (softirq, bh socket lock) as data
 * arrives, and from recvmsg (owner of the socket lock) when the reader
 * has consumed the previous record, so both contexts are serialised by
 * the socket lock.  A DATA record stays in TCP's receive queue: while
 * it is still arriving it waits there for the rest, and once it is
 * whole its header is read from there, and it is opened straight from
 * TCP's skbs, then taken out with tcp_read_done() (OssuaryRxSkbRecords):
 * no copy of the sealed bytes.
 *
 * Other records are copied out of TCP by a tcp_read_sock() actor into
 * ctx->rxb, a set of order-0 pages allocated as bytes arrive
 * (OssuaryRxStagedBytes), with the header checked as soon as its four
 * bytes are in (a bad one latches EPROTO): control records and empty
 * ones (a few bytes); a DATA record still arriving when TCP could not
 * take the rest of it while it waits (window down to a segment, receive
 * memory short, FIN: ossuary_rx_wait_or_copy(), kTLS's rule), so that
 * TCP's window never waits on a record held back in its queue; one that
 * TCP holds in too many pieces; and one whose pages a local sender may
 * still write to (SKBFL_SHARED_FRAG: a record is read twice, once to
 * verify it and once to decrypt it, so it must not change in between).
 * While a whole record waits for the reader nothing more is taken from
 * TCP, so TCP's receive window is the backpressure, as for a plain TCP
 * reader; a read frames what follows before it returns
 * (ossuary_rx_refill()).
 *
 * Control records (KEY_UPDATE, DISCONNECT, RESET) and empty DATA
 * records carry at most one byte: they are opened as soon as they are
 * framed, in whatever context that is, so a key update never waits
 * for a reader and poll() reports EPOLLIN only for plaintext to read,
 * an error or the end of the stream.  DATA records are opened in
 * process context: straight into the reader's buffer when all of the
 * plaintext fits there (OssuaryRxDirectRecords), otherwise in place in
 * rxb and copied out (OssuaryRxBufferedRecords); splice() lends the
 * opened pages to the pipe instead of copying them.  One read takes as
 * many records as have arrived and fit, as on kTLS.
 *
 * MSG_PEEK opens records without consuming them.  A peek that wants
 * more than rxb's opened record moves it to ctx->rx_held (its pages go
 * with it) and frames the next one into fresh pages; reads, splice and
 * peeks take the held records first, in order.  Held pages are limited
 * to about the size of the receive buffer.
 *
 * Errors (all latched: every later read returns the same one):
 *   EBADMSG     a record failed to open; nothing of it is delivered
 *   EPROTO      bad version/type/length in a header, or a bad value
 *               in a KEY_UPDATE or RESET record
 *   ECONNRESET  DISCONNECT(reason != 0) or RESET from the peer
 *   EPIPE       TCP FIN without DISCONNECT(0) first: truncated stream
 * DISCONNECT(0) reads as end of file (0); bytes after it are a protocol
 * error (EPROTO), reported once the reader has had its end of file.
 */

#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/uio.h>
#include <linux/sched/signal.h>
#include <linux/wait.h>
#include <linux/splice.h>
#include <linux/pipe_fs_i.h>
#include <net/sock.h>
#include <net/tcp.h>

#include "ossuary.h"

/* MSG_CMSG_CLOEXEC only matters for SCM_RIGHTS, which TCP never sends */
#define OSSUARY_RX_FLAGS (MSG_PEEK | MSG_WAITALL | MSG_DONTWAIT | \
			  MSG_NOSIGNAL | MSG_CMSG_COMPAT | MSG_CMSG_CLOEXEC)

/*
 * Reader's pages one record may be opened into: a contiguous buffer
 * needs at most OSSUARY_REC_PAGES; more scattered ones are opened in
 * place and copied.  One more entry stands for the AAD.
 */
#define OSSUARY_RX_DIRECT_SG	(4 * OSSUARY_REC_PAGES + 1)

/* Pieces of TCP's skbs one record may be opened from; more are copied */
#define OSSUARY_RX_SKB_SG	64

/* Small records sk_data_ready opens per call in softirq; rx_work the rest */
#define OSSUARY_RX_SOFTIRQ_SMALL	64

/*
 * A DATA record a peek opened and went past: its plaintext waits, in
 * order, for the reads that consume it (ctx->rx_held, oldest first).
 */
struct ossuary_rx_held {
	struct list_head list;
	struct ossuary_buf buf;
	u32 off;	/* plaintext already consumed */
	u32 plen;
	u32 mem;	/* bytes of pages in buf */
	bool lent;	/* splice() lent its pages to a pipe */
};

/* What the framing actor works with. */
struct ossuary_pull {
	struct ossuary_ctx *ctx;
	gfp_t gfp;
	bool nomem;
};

static void ossuary_rx_next(struct ossuary_ctx *ctx)
{
	/* a pipe still reads the pages splice() lent: take fresh ones */
	if (ctx->rx_lent) {
		ossuary_buf_free(&ctx->rxb);
		ctx->rx_lent = false;
	}
	ctx->rx_have = 0;
	ctx->rx_need = OSSUARY_HEADER_LEN;
	ctx->rx_inq = false;
	ctx->rx_stage = false;
	ctx->rx_ready = false;
	ctx->rx_open = false;
	ctx->rx_off = 0;
	ctx->rx_plen = 0;
	WRITE_ONCE(ctx->rx_avail, false);
}

/* ossuary_rx_error() flags */
#define OSSUARY_RX_ANSWER	BIT(0)	/* answer with DISCONNECT(1) */
#define OSSUARY_RX_REPORT	BIT(1)	/* fatal: sk_err, as tls_err_abort() */
#define OSSUARY_RX_FATAL	(OSSUARY_RX_ANSWER | OSSUARY_RX_REPORT)

static void ossuary_rx_set_sk_err(struct sock *sk, struct ossuary_ctx *ctx,
				  int err)
{
	/* ossuary_tx_push() still hands TCP the DISCONNECT(1) after it */
	WRITE_ONCE(ctx->sk_err_own, err);
	WRITE_ONCE(sk->sk_err, err);
	/* the error is there before anyone woken looks for it */
	smp_wmb();
	sk_error_report(sk);
}

/*
 * Nothing framed and nothing to deliver: give the record pages back, so
 * that an idle socket holds none (they are allocated again as bytes
 * arrive).  Plaintext opened in place is wiped first; pages a pipe
 * still reads are only let go.
 */
static void ossuary_rx_trim(struct ossuary_ctx *ctx)
{
	unsigned int i;

	if (ctx->rx_have || ctx->rx_ready || ctx->rx_open)
		return;
	for (i = 0; i < OSSUARY_REC_PAGES && !ctx->rx_lent; i++)
		if (ctx->rxb.pages[i])
			memzero_explicit(page_address(ctx->rxb.pages[i]),
					 PAGE_SIZE);
	ossuary_buf_free(&ctx->rxb);
	ctx->rx_lent = false;
	kfree(ctx->rx_src);
	ctx->rx_src = NULL;
}

/*
 * Latch a receive error (socket lock held in some form).  A record that
 * fails to open and a protocol error both end the connection with
 * DISCONNECT(1) where it can still be sent (OSSUARY_RX_ANSWER), and so
 * does a RESET (the kernel cannot re-handshake).  From then on TX seals
 * nothing else; the record itself is sealed in process context, by the
 * reader before its read returns or by tx_work.  Fatal errors are also
 * put in sk_err (SO_ERROR, EPOLLERR) once, with the errno reads return;
 * when a DISCONNECT(1) is due, once it is sealed (ossuary_tx_settle()).
 */
static void ossuary_rx_error(struct sock *sk, struct ossuary_ctx *ctx,
			     int err, int mib, unsigned int flags)
{
	bool first = !ctx->rx_err;

	lockdep_assert(lockdep_sock_is_held(sk));
	if (first)
		WRITE_ONCE(ctx->rx_err, err);
	if (mib >= 0)
		ossuary_stat_add(sk, mib, 1);
	WRITE_ONCE(ctx->rx_avail, false);
	if (first && (flags & OSSUARY_RX_REPORT)) {
		if ((flags & OSSUARY_RX_ANSWER) && ctx->tx_installed &&
		    !ctx->tx_closed && !ctx->tx_err)
			ctx->rx_report_pending = true;
		else
			ossuary_rx_set_sk_err(sk, ctx, err);
	}
	if (flags & OSSUARY_RX_ANSWER)
		ossuary_tx_schedule_fail(sk, ctx);
}

/* After the DISCONNECT(1) (ossuary_tx_settle()): the deferred sk_err. */
void ossuary_rx_report(struct sock *sk, struct ossuary_ctx *ctx)
{
	if (!ctx->rx_report_pending)
		return;
	ctx->rx_report_pending = false;
	ossuary_rx_set_sk_err(sk, ctx, ctx->rx_err);
}

static int ossuary_rx_actor(read_descriptor_t *desc, struct sk_buff *skb,
			    unsigned int offset, size_t len)
{
	struct ossuary_pull *pull = desc->arg.data;
	struct ossuary_ctx *ctx = pull->ctx;
	u32 n, done = 0;

	if (!desc->count || ctx->rx_err || ctx->rx_ready)
		return 0;
	if (ctx->rx_eof) {
		/*
		 * No record may follow DISCONNECT(0).  The reader still gets
		 * its end of file first (see recvmsg), then this error.
		 */
		ossuary_rx_error(ctx->sk, ctx, EPROTO, OSSUARY_MIB_PROTO_ERR,
				 OSSUARY_RX_FATAL);
		desc->count = 0;
		return 0;
	}
	n = min_t(size_t, len, ctx->rx_need - ctx->rx_have);
	if (ossuary_buf_alloc(&ctx->rxb, ctx->rx_have + n, pull->gfp)) {
		/* the bytes stay in TCP until there is memory */
		pull->nomem = true;
		desc->count = 0;
		return 0;
	}
	while (done < n) {
		u32 off = ctx->rx_have + done;
		u32 poff = offset_in_page(off);
		u32 chunk = min_t(u32, n - done, PAGE_SIZE - poff);
		void *dst = page_address(ctx->rxb.pages[off / PAGE_SIZE]);

		if (skb_copy_bits(skb, offset + done, dst + poff, chunk)) {
			desc->error = -EFAULT;
			desc->count = 0;
			break;
		}
		done += chunk;
	}
	ctx->rx_have += done;
	ossuary_stat_add(ctx->sk, OSSUARY_MIB_RX_STAGED, done);

	if (ctx->rx_need == OSSUARY_HEADER_LEN &&
	    ctx->rx_have == OSSUARY_HEADER_LEN) {
		u8 hdr[OSSUARY_HEADER_LEN];
		u32 blen;
		u8 type;

		ossuary_buf_read(&ctx->rxb, 0, hdr, sizeof(hdr));
		if (ossuary_hdr_check(hdr, &type, &blen)) {
			ossuary_rx_error(ctx->sk, ctx, EPROTO,
					 OSSUARY_MIB_PROTO_ERR, OSSUARY_RX_FATAL);
			desc->count = 0;
			return done;
		}
		ctx->rx_type = type;
		ctx->rx_need += blen;
	}
	if (ctx->rx_have == ctx->rx_need) {
		ctx->rx_ready = true;
		desc->count = 0;
	}
	return done;
}

/*
 * Call fn on the first len bytes of TCP's receive queue that no one has
 * read yet, a piece of an skb at a time, taking nothing out.  Socket
 * lock held (owner or bh): the queue stays as it is meanwhile.  0, fn's
 * error, or -ENODATA when fewer bytes are there.
 */
static int ossuary_rx_inq_walk(struct sock *sk, u32 len,
			       int (*fn)(struct sk_buff *skb, u32 off,
					 u32 len, void *arg),
			       void *arg)
{
	u32 seq = tcp_sk(sk)->copied_seq, off;
	struct sk_buff *skb;
	int err;

	lockdep_assert(lockdep_sock_is_held(sk));
	skb = tcp_recv_skb(sk, seq, &off);
	while (skb && len) {
		if (off < skb->len) {
			u32 n = min(len, skb->len - off);

			err = fn(skb, off, n, arg);
			if (err)
				return err;
			seq += n;
			len -= n;
		}
		if (!len || skb_queue_is_last(&sk->sk_receive_queue, skb))
			break;
		skb = skb->next;
		/* an skb may repeat bytes it overlaps: start at seq */
		if (after(TCP_SKB_CB(skb)->seq, seq))
			return -ENODATA;
		off = seq - TCP_SKB_CB(skb)->seq;
	}
	return len ? -ENODATA : 0;
}

static int ossuary_rx_inq_copy(struct sk_buff *skb, u32 off, u32 len,
			       void *arg)
{
	u8 **to = arg;
	int err = skb_copy_bits(skb, off, *to, len);

	*to += len;
	return err;
}

/* A scatterlist over TCP's skbs; sg NULL counts the entries only. */
struct ossuary_rx_map {
	struct scatterlist *sg;
	unsigned int n;
	unsigned int max;
};

static int ossuary_rx_map_add(struct ossuary_rx_map *m, struct page *page,
			      u32 len, u32 off)
{
	if (m->n >= m->max)
		return -EMSGSIZE;
	if (m->sg) {
		/* the array is reused: an end mark may be left from before */
		sg_unmark_end(&m->sg[m->n]);
		sg_set_page(&m->sg[m->n], page, len, off);
	}
	m->n++;
	return 0;
}

static int ossuary_rx_map_skb(struct ossuary_rx_map *m, struct sk_buff *skb,
			      u32 off, u32 len, bool nested)
{
	const struct skb_shared_info *si = skb_shinfo(skb);
	u32 start = skb_headlen(skb), end;
	struct sk_buff *frag;
	unsigned int i;
	int err;

	/*
	 * Frags a local sender may still write to (see the top of the
	 * file), or device memory the CPU cannot read: copy the record.
	 */
	if ((si->flags & SKBFL_SHARED_FRAG) || !skb_frags_readable(skb))
		return -EPERM;
	if (off < start) {
		u32 n = min(len, start - off);
		void *p = skb->data + off;

		err = ossuary_rx_map_add(m, virt_to_page(p), n,
					 offset_in_page(p));
		if (err)
			return err;
		off += n;
		len -= n;
	}
	for (i = 0; i < si->nr_frags && len; i++, start = end) {
		const skb_frag_t *f = &si->frags[i];
		u32 n;

		end = start + skb_frag_size(f);
		if (off >= end)
			continue;
		n = min(len, end - off);
		err = ossuary_rx_map_add(m, skb_frag_page(f), n,
					 skb_frag_off(f) + off - start);
		if (err)
			return err;
		off += n;
		len -= n;
	}
	skb_walk_frags(skb, frag) {
		u32 n;

		if (!len)
			break;
		end = start + frag->len;
		if (off < end) {
			/* GRO nests one level; deeper is left to the copy */
			if (nested)
				return -EMSGSIZE;
			n = min(len, end - off);
			err = ossuary_rx_map_skb(m, frag, off - start, n, true);
			if (err)
				return err;
			off += n;
			len -= n;
		}
		start = end;
	}
	return len ? -EFAULT : 0;
}

static int ossuary_rx_map_cb(struct sk_buff *skb, u32 off, u32 len, void *arg)
{
	return ossuary_rx_map_skb(arg, skb, off, len, false);
}

/* The record framed in TCP's queue is to be copied out after all. */
static void ossuary_rx_stage(struct ossuary_ctx *ctx)
{
	ctx->rx_inq = false;
	ctx->rx_stage = true;
	ctx->rx_ready = false;
	ctx->rx_need = OSSUARY_HEADER_LEN;
	WRITE_ONCE(ctx->rx_avail, false);
}

/* What the framer does with the next record in TCP's receive queue */
enum ossuary_rx_frame {
	OSSUARY_RX_FRAME_COPY,	/* the copying actor frames it */
	OSSUARY_RX_FRAME_READY,	/* whole there: framed, opened from there */
	OSSUARY_RX_FRAME_WAIT,	/* still arriving: left there for now */
};

/*
 * A record still arriving is left in TCP's queue until the rest is in
 * (each arriving segment calls data_ready, which frames again), unless
 * TCP could not take the rest meanwhile, as kTLS decides: the window
 * left to the peer is down to about one segment, the socket's receive
 * memory is nearly all used, or memory is short (TCP's own test for
 * waking a reader whatever its SO_RCVLOWAT, with a target no queue
 * reaches); TCP just dropped a segment for want of memory (it calls
 * data_ready then too); or the rest will never come (FIN).  Then copy
 * mode: this record is copied out as it comes, to its end (rx_stage).
 * By default TCP never moves the right edge of its window back, so as
 * long as more than a segment of it is left the peer can send, and its
 * segment brings data_ready; when it is not, the record is copied now.
 * With net.ipv4.tcp_shrink_window TCP may advertise a zero window once
 * its free space is below a segment, after the data_ready that decided
 * to wait: that free space is a reason to copy too.
 */
static enum ossuary_rx_frame ossuary_rx_wait_or_copy(struct sock *sk,
						     struct ossuary_ctx *ctx)
{
	if (!tcp_epollin_ready(sk, INT_MAX) && !ossuary_tcp_rcv_nomem(sk) &&
	    (!ossuary_tcp_may_shrink(sk) ||
	     tcp_space(sk) >= (int)inet_csk(sk)->icsk_ack.rcv_mss) &&
	    !(READ_ONCE(sk->sk_shutdown) & RCV_SHUTDOWN) &&
	    !sock_flag(sk, SOCK_DONE))
		return OSSUARY_RX_FRAME_WAIT;
	ctx->rx_stage = true;
	return OSSUARY_RX_FRAME_COPY;
}

/*
 * Frame the next record where it lies in TCP's receive queue if it is a
 * DATA record that is all there and can be opened from there (READY).
 * A DATA record (or a header) still arriving waits there (WAIT) or is
 * copied (see ossuary_rx_wait_or_copy()).  The copying actor frames
 * everything else (see the top of the file), and reports a bad header,
 * urgent data or bytes after DISCONNECT(0).  Whether a record is whole
 * is TCP's count of bytes in order (tcp_inq()), never the queue walk:
 * a record the walk cannot describe is copied, it never waits.
 */
static enum ossuary_rx_frame ossuary_rx_frame_inq(struct sock *sk,
						  struct ossuary_ctx *ctx)
{
	struct ossuary_rx_map m = { .max = OSSUARY_RX_SKB_SG };
	u8 hdr[OSSUARY_HEADER_LEN], *to = hdr;
	u32 inq, blen;
	u8 type;

	lockdep_assert(lockdep_sock_is_held(sk));
	if (ctx->rx_have || ctx->rx_stage || ctx->rx_eof ||
	    READ_ONCE(tcp_sk(sk)->urg_data))
		return OSSUARY_RX_FRAME_COPY;
	inq = tcp_inq(sk);
	if (!inq)
		return OSSUARY_RX_FRAME_COPY;
	if (inq < OSSUARY_HEADER_LEN)
		return ossuary_rx_wait_or_copy(sk, ctx);
	if (ossuary_rx_inq_walk(sk, sizeof(hdr), ossuary_rx_inq_copy, &to) ||
	    ossuary_hdr_check(hdr, &type, &blen) ||
	    type != OSSUARY_RECORD_DATA || blen <= OSSUARY_TAG_LEN)
		return OSSUARY_RX_FRAME_COPY;
	if (inq < OSSUARY_HEADER_LEN + blen)
		return ossuary_rx_wait_or_copy(sk, ctx);
	if (ossuary_rx_inq_walk(sk, OSSUARY_HEADER_LEN + blen,
				ossuary_rx_map_cb, &m))
		return OSSUARY_RX_FRAME_COPY;
	ctx->rx_inq = true;
	ctx->rx_type = type;
	ctx->rx_need = OSSUARY_HEADER_LEN + blen;
	ctx->rx_ready = true;
	return OSSUARY_RX_FRAME_READY;
}

static void ossuary_rx_open_small(struct sock *sk, struct ossuary_ctx *ctx);

/*
 * Socket lock held (as owner or bh): frame records from TCP, opening
 * the one-byte ones on the spot, until a DATA record with plaintext is
 * ready, TCP has nothing more, or an error.
 */
static void ossuary_rx_process(struct sock *sk, struct ossuary_ctx *ctx,
			       gfp_t gfp)
{
	struct ossuary_pull pull = {
		.ctx = ctx,
		.gfp = gfp,
	};
	read_descriptor_t desc = {
		.arg.data = &pull,
	};
	bool atomic = !gfpflags_allow_blocking(gfp);
	unsigned int small = 0;

	lockdep_assert(lockdep_sock_is_held(sk));
	while (!ctx->rx_err && !ctx->rx_open) {
		/* a small record softirq left ready is opened first */
		if (!ctx->rx_ready) {
			enum ossuary_rx_frame f = ossuary_rx_frame_inq(sk, ctx);

			/* the rest of the record will call data_ready */
			if (f == OSSUARY_RX_FRAME_WAIT)
				break;
			if (f == OSSUARY_RX_FRAME_COPY) {
				desc.count = 1;
				tcp_read_sock(sk, &desc, ossuary_rx_actor);
			}
		}
		if (!ctx->rx_ready) {
			/*
			 * tcp_read_sock() never reads past urgent data, so
			 * the stream would stall there for good; no record
			 * is ever sent as urgent data.
			 */
			if (unlikely(READ_ONCE(tcp_sk(sk)->urg_data)) &&
			    !pull.nomem && !ctx->rx_err)
				ossuary_rx_error(sk, ctx, EPROTO,
						 OSSUARY_MIB_PROTO_ERR,
						 OSSUARY_RX_FATAL);
			break;
		}
		if (ctx->rx_type == OSSUARY_RECORD_DATA &&
		    ctx->rx_need > OSSUARY_HEADER_LEN + OSSUARY_TAG_LEN) {
			WRITE_ONCE(ctx->rx_avail, true);
			break;
		}
		/*
		 * A peer can send any number of small records in a row:
		 * softirq opens a bounded batch and leaves the rest to
		 * rx_work.
		 */
		if (atomic && ++small > OSSUARY_RX_SOFTIRQ_SMALL) {
			ossuary_stat_add(sk, OSSUARY_MIB_RX_DEFERRED, 1);
			schedule_work(&ctx->rx_work);
			break;
		}
		/* process context may meet a whole receive buffer of them */
		if (!atomic && !(++small % OSSUARY_RX_SOFTIRQ_SMALL))
			cond_resched();
		ossuary_rx_open_small(sk, ctx);
	}
	WRITE_ONCE(ctx->rx_nomem, pull.nomem);
	/* atomic context had no page: process context will retry */
	if (pull.nomem && atomic)
		schedule_work(&ctx->rx_work);
}

/* Plaintext bytes a read can have without waiting.  Socket locked. */
int ossuary_rx_inq(struct ossuary_ctx *ctx)
{
	u32 held = ctx->rx_held_bytes;

	if (ctx->rx_open)
		return held + ctx->rx_plen - ctx->rx_off;
	if (ctx->rx_ready)
		return held + ctx->rx_need - OSSUARY_HEADER_LEN -
		       OSSUARY_TAG_LEN;
	return held;
}

/* Something for a reader besides the records a peek holds. */
static bool ossuary_rx_more(struct sock *sk, struct ossuary_ctx *ctx)
{
	return READ_ONCE(ctx->rx_avail) || READ_ONCE(ctx->rx_err) ||
	       READ_ONCE(ctx->rx_eof) || READ_ONCE(sk->sk_err) ||
	       (READ_ONCE(sk->sk_shutdown) & RCV_SHUTDOWN);
}

bool ossuary_rx_readable(struct sock *sk, struct ossuary_ctx *ctx)
{
	return READ_ONCE(ctx->rx_held_bytes) || ossuary_rx_more(sk, ctx);
}

/* sk_data_ready: called by TCP with the socket lock held in some form. */
void ossuary_data_ready(struct sock *sk)
{
	struct ossuary_ctx *ctx = ossuary_get_ctx(sk);

	ossuary_rx_process(sk, ctx, GFP_ATOMIC | __GFP_NOWARN);
	/* wake readers and pollers only for something they can read */
	if (ossuary_rx_readable(sk, ctx))
		ctx->saved_data_ready(sk);
}

/*
 * Open the whole sealed record, from TCP's skbs (rx_inq: ctx->rx_src,
 * then taken out of TCP) or from rxb: into dst when given (its first
 * entry stands for the AAD, which the AEAD reads from the source only),
 * else into rxb (in place for a record copied there).  Any context,
 * socket lock held; rx_inq only in process context.
 */
static int ossuary_rx_decrypt(struct sock *sk, struct ossuary_ctx *ctx,
			      struct scatterlist *dst)
{
	struct scatterlist sg[OSSUARY_REC_SG], *src = sg;
	u32 blen = ctx->rx_need - OSSUARY_HEADER_LEN;
	int err = -EBADMSG;

	lockdep_assert(lockdep_sock_is_held(sk));
	ctx->rx_ready = false;
	WRITE_ONCE(ctx->rx_avail, false);
	if (ctx->rx_inq)
		src = ctx->rx_src;
	if (!ctx->rx_inq || !dst)
		ossuary_buf_sg(&ctx->rxb, ctx->rx_need, sg);
	/* seq 2^64 - 1 is never sealed: refuse it as a failed open */
	if (ctx->rx.seq <= OSSUARY_SEQ_LAST && !WARN_ON_ONCE(!src))
		err = ossuary_crypt(&ctx->rx, false, src, dst ? dst : sg, blen,
				    ctx->rx.seq);
	if (ctx->rx_inq) {
		sock_owned_by_me(sk);
		/*
		 * Done with it either way: TCP may let go of it (and open
		 * its window).  A forged record is read as the copy path
		 * reads it, so that close() ends with a FIN, not a reset
		 * for unread data.
		 */
		tcp_read_done(sk, ctx->rx_need);
		ctx->rx_inq = false;
		if (!err)
			ossuary_stat_add(sk, OSSUARY_MIB_RX_SKB, 1);
	}
	if (err) {
		ossuary_rx_error(sk, ctx, EBADMSG, OSSUARY_MIB_DECRYPT_ERR,
				 OSSUARY_RX_FATAL);
		return -EBADMSG;
	}
	ctx->rx.seq++;
	ossuary_stat_add(sk, OSSUARY_MIB_OPENED, 1);
	return 0;
}

/* A control record or an empty DATA record: open it and act on it. */
static void ossuary_rx_open_small(struct sock *sk, struct ossuary_ctx *ctx)
{
	u8 type = ctx->rx_type;
	u8 val = 0;
	int err;

	if (ossuary_rx_decrypt(sk, ctx, NULL))
		return;
	if (type != OSSUARY_RECORD_DATA)
		ossuary_buf_read(&ctx->rxb, OSSUARY_HEADER_LEN, &val, 1);
	ossuary_rx_next(ctx);
	switch (type) {
	case OSSUARY_RECORD_DATA:
		/* valid, and delivers nothing */
		return;
	case OSSUARY_RECORD_KEY_UPDATE:
		if (val > 1) {
			ossuary_rx_error(sk, ctx, EPROTO,
					 OSSUARY_MIB_PROTO_ERR, OSSUARY_RX_FATAL);
			return;
		}
		/* every later record from the peer uses the next secret */
		err = ossuary_keys_ratchet(&ctx->rx);
		if (err) {
			ossuary_rx_error(sk, ctx, -err, -1, OSSUARY_RX_FATAL);
			return;
		}
		ossuary_stat_add(sk, OSSUARY_MIB_KEY_UPDATE_RX, 1);
		/* KEY_UPDATE(1): the peer asks us to update ours too */
		if (val == 1 && ctx->tx_installed)
			ossuary_tx_schedule_key_update(ctx);
		return;
	case OSSUARY_RECORD_DISCONNECT:
		if (!val) {
			WRITE_ONCE(ctx->rx_eof, true);
			return;
		}
		/* an error close: the reader sees a reset */
		ctx->rx_reason = val;
		ctx->rx_reason_pending = true;
		/*
		 * The connection is over (PROTOCOL.md): nothing more is
		 * sealed for this peer, not even our DISCONNECT; writers
		 * get the reset, then EPIPE.
		 */
		if (ctx->tx_installed)
			WRITE_ONCE(ctx->tx_closed, true);
		ossuary_rx_error(sk, ctx, ECONNRESET, -1, OSSUARY_RX_REPORT);
		return;
	case OSSUARY_RECORD_RESET:
		if (val) {
			ossuary_rx_error(sk, ctx, EPROTO,
					 OSSUARY_MIB_PROTO_ERR, OSSUARY_RX_FATAL);
			return;
		}
		/* no re-handshake on this stream: DISCONNECT(1), reset */
		ossuary_rx_error(sk, ctx, ECONNRESET, -1, OSSUARY_RX_FATAL);
		return;
	}
	/* ossuary_hdr_check() let nothing else through */
	WARN_ON_ONCE(1);
}

/*
 * Open the ready DATA record into rxb, to be copied or lent from there:
 * in place, or from TCP's skbs into pages taken now.
 */
static int ossuary_rx_open_buffered(struct sock *sk, struct ossuary_ctx *ctx)
{
	u32 plen = ctx->rx_need - OSSUARY_HEADER_LEN - OSSUARY_TAG_LEN;

	if (ctx->rx_inq &&
	    ossuary_buf_alloc(&ctx->rxb, ctx->rx_need,
			      sk->sk_allocation | __GFP_NOWARN))
		return -ENOMEM;
	if (ossuary_rx_decrypt(sk, ctx, NULL))
		return -EBADMSG;
	ctx->rx_open = true;
	ctx->rx_off = 0;
	ctx->rx_plen = plen;
	WRITE_ONCE(ctx->rx_avail, true);
	ossuary_stat_add(sk, OSSUARY_MIB_RX_BUFFERED, 1);
	return 0;
}

static void ossuary_rx_unpin(struct iov_iter *it, struct sg_table *t)
{
	unsigned int i;

	/* entry 0 stands for the header, never pinned */
	if (!iov_iter_extract_will_pin(it))
		return;
	for (i = 1; i < t->nents; i++) {
		struct page *page = sg_page(&t->sgl[i]);

		unpin_user_pages_dirty_lock(&page, 1, true);
	}
}

/*
 * Open the ready DATA record straight into the reader's buffer, which
 * has room for all plen bytes of it: the AEAD writes the plaintext
 * there and no copy follows.  Returns plen, 0 when the buffer is too
 * scattered to describe (the caller opens in place instead), or
 * -EBADMSG with the buffer untouched.
 */
static int ossuary_rx_open_direct(struct sock *sk, struct ossuary_ctx *ctx,
				  struct msghdr *msg, u32 plen)
{
	struct scatterlist sg[OSSUARY_RX_DIRECT_SG];
	struct sg_table t = { .sgl = sg, .nents = 1, .orig_nents = 1 };
	struct iov_iter *it = &msg->msg_iter;
	size_t before = iov_iter_count(it);
	ssize_t got;
	int err;

	sg_init_table(sg, ARRAY_SIZE(sg));
	/* the AEAD neither reads nor writes dst's header: any page will do */
	sg_set_page(&sg[0], ZERO_PAGE(0), OSSUARY_HEADER_LEN, 0);
	got = extract_iter_to_sg(it, plen, &t, ARRAY_SIZE(sg) - 1, 0);
	if (got != plen) {
		if (got > 0)
			ossuary_rx_unpin(it, &t);
		iov_iter_revert(it, before - iov_iter_count(it));
		return 0;
	}
	sg_mark_end(&sg[t.nents - 1]);
	err = ossuary_rx_decrypt(sk, ctx, sg);
	/*
	 * The tag is checked before any plaintext is written, so a record
	 * that fails to open has left the reader's buffer as it was: only
	 * the iterator is wound back.
	 */
	if (err)
		iov_iter_revert(it, plen);
	ossuary_rx_unpin(it, &t);
	if (err)
		return err;
	ossuary_stat_add(sk, OSSUARY_MIB_RX_DIRECT, 1);
	ossuary_rx_next(ctx);
	return plen;
}

/*
 * Process context, before the ready record is opened: describe it where
 * it lies in TCP's queue, in ctx->rx_src (kept while records come, given
 * back with rxb's pages when the reader waits with nothing framed).  The
 * owner's lock, held from here until the record is opened and taken out
 * of TCP, keeps the queue as described.  If it cannot be described, copy
 * it out like any record.  0, -ENOMEM (wait as for any page), or an
 * error the copy latched.
 */
static int ossuary_rx_prepare(struct sock *sk, struct ossuary_ctx *ctx)
{
	struct ossuary_rx_map m = { .max = OSSUARY_RX_SKB_SG };

	sock_owned_by_me(sk);
	if (!ctx->rx_inq)
		return 0;
	if (!ctx->rx_src) {
		ctx->rx_src = kmalloc_array(OSSUARY_RX_SKB_SG,
					    sizeof(*ctx->rx_src),
					    sk->sk_allocation | __GFP_NOWARN);
		if (!ctx->rx_src)
			return -ENOMEM;
		sg_init_table(ctx->rx_src, OSSUARY_RX_SKB_SG);
	}
	m.sg = ctx->rx_src;
	if (!ossuary_rx_inq_walk(sk, ctx->rx_need, ossuary_rx_map_cb, &m)) {
		sg_mark_end(&m.sg[m.n - 1]);
		return 0;
	}
	ossuary_rx_stage(ctx);
	ossuary_rx_process(sk, ctx, sk->sk_allocation);
	if (ctx->rx_ready)
		return 0;
	if (ctx->rx_err)
		return -ctx->rx_err;
	if (ctx->rx_nomem)
		return -ENOMEM;
	/* the record was whole in TCP a moment ago: its bytes are gone */
	ossuary_rx_error(sk, ctx, EPROTO, OSSUARY_MIB_PROTO_ERR,
			 OSSUARY_RX_FATAL);
	return -EPROTO;
}

/*
 * Open the ready DATA record: straight into the reader's buffer when
 * msg is given and room holds all of it (returns its length), else into
 * rxb (returns 0).  Or -ENOMEM, -EBADMSG.
 */
static int ossuary_rx_open_ready(struct sock *sk, struct ossuary_ctx *ctx,
				 struct msghdr *msg, size_t room)
{
	u32 plen;
	int ret;

	ret = ossuary_rx_prepare(sk, ctx);
	plen = ctx->rx_need - OSSUARY_HEADER_LEN - OSSUARY_TAG_LEN;
	if (!ret && msg && room >= plen)
		ret = ossuary_rx_open_direct(sk, ctx, msg, plen);
	return ret ? ret : ossuary_rx_open_buffered(sk, ctx);
}

/*
 * A page or a scatterlist could not be had (socket locked, nothing read
 * yet): retry soon; a reader that cannot wait has rx_work retry and
 * wake it.  1 to try again, or an error.
 */
static int ossuary_rx_nap(struct sock *sk, struct ossuary_ctx *ctx,
			  long *timeo)
{
	long nap, left;

	if (!*timeo) {
		schedule_work(&ctx->rx_work);
		return -EAGAIN;
	}
	if (signal_pending(current))
		return sock_intr_errno(*timeo);
	nap = min_t(long, *timeo, HZ / 50 + 1);
	release_sock(sk);
	left = schedule_timeout_interruptible(nap);
	lock_sock(sk);
	if (*timeo != MAX_SCHEDULE_TIMEOUT)
		*timeo -= nap - left;
	return 1;
}

/* Copy n plaintext bytes of an opened record image, from pos on. */
static int ossuary_rx_copy(struct sock *sk, struct ossuary_buf *b, u32 pos,
			   struct msghdr *msg, u32 n)
{
	u32 off = OSSUARY_HEADER_LEN + pos, left = n;

	while (left) {
		u32 poff = offset_in_page(off);
		u32 chunk = min_t(u32, left, PAGE_SIZE - poff);

		if (copy_page_to_iter(b->pages[off / PAGE_SIZE], poff,
				      chunk, &msg->msg_iter) != chunk)
			return -EFAULT;
		off += chunk;
		left -= chunk;
	}
	ossuary_stat_add(sk, OSSUARY_MIB_RX_COPIED, n);
	return 0;
}

/*
 * Give an opened record's pages back, wiping the plaintext first unless
 * a pipe still reads them.
 */
static void ossuary_rx_wipe_free(struct ossuary_buf *b, bool lent)
{
	unsigned int i;

	for (i = 0; i < OSSUARY_REC_PAGES && !lent; i++)
		if (b->pages[i])
			memzero_explicit(page_address(b->pages[i]), PAGE_SIZE);
	ossuary_buf_free(b);
}

/* n bytes of the oldest held record were read: drop it once all were. */
static void ossuary_rx_held_consume(struct sock *sk, struct ossuary_ctx *ctx,
				    struct ossuary_rx_held *h, u32 n)
{
	sock_owned_by_me(sk);
	h->off += n;
	WRITE_ONCE(ctx->rx_held_bytes, ctx->rx_held_bytes - n);
	if (h->off < h->plen)
		return;
	list_del(&h->list);
	ctx->rx_held_mem -= h->mem;
	ossuary_rx_wipe_free(&h->buf, h->lent);
	kfree(h);
}

/*
 * A peek went past rxb's opened record: hold it, so that rxb can frame
 * and open the next one.  False when no more may be held: the pages
 * held for peeks stay within about the receive buffer's size (at least
 * one record), as TCP holds no more for a peek than its window lets in.
 */
static bool ossuary_rx_park(struct sock *sk, struct ossuary_ctx *ctx)
{
	struct ossuary_rx_held *h;
	unsigned int i;

	sock_owned_by_me(sk);
	if (ctx->rx_held_mem >= (u32)READ_ONCE(sk->sk_rcvbuf))
		return false;
	h = kzalloc(sizeof(*h), sk->sk_allocation | __GFP_NOWARN);
	if (!h)
		return false;
	h->buf = ctx->rxb;
	memset(&ctx->rxb, 0, sizeof(ctx->rxb));
	h->off = ctx->rx_off;
	h->plen = ctx->rx_plen;
	h->lent = ctx->rx_lent;
	for (i = 0; i < OSSUARY_REC_PAGES; i++)
		if (h->buf.pages[i])
			h->mem += PAGE_SIZE;
	list_add_tail(&h->list, &ctx->rx_held);
	ctx->rx_held_mem += h->mem;
	WRITE_ONCE(ctx->rx_held_bytes, ctx->rx_held_bytes + h->plen - h->off);
	/* rxb starts afresh: its pages are the held record's now */
	ctx->rx_lent = false;
	ossuary_rx_next(ctx);
	return true;
}

/* Socket locked: wait for more than the records a peek already holds. */
static void ossuary_rx_wait(struct sock *sk, struct ossuary_ctx *ctx,
			    long *timeo)
{
	DEFINE_WAIT_FUNC(wait, woken_wake_function);

	add_wait_queue(sk_sleep(sk), &wait);
	sk_set_bit(SOCKWQ_ASYNC_WAITDATA, sk);
	sk_wait_event(sk, timeo, ossuary_rx_more(sk, ctx), &wait);
	sk_clear_bit(SOCKWQ_ASYNC_WAITDATA, sk);
	remove_wait_queue(sk_sleep(sk), &wait);
}

/*
 * Nothing to deliver and nothing delivered yet (socket locked): the
 * end of the stream (0), an error (< 0), or wait and try again (1).
 */
static int ossuary_rx_idle(struct sock *sk, struct ossuary_ctx *ctx,
			   long *timeo, bool peek)
{
	/* DISCONNECT(0): one end of file before anything after it */
	if (ctx->rx_eof && !ctx->rx_eof_read) {
		if (!peek)
			ctx->rx_eof_read = true;
		return 0;
	}
	int err;

	sock_owned_by_me(sk);
	if (ctx->rx_err)
		return -ctx->rx_err;
	if (ctx->rx_eof)
		return 0;
	/*
	 * The connection's own error (a reset, a timeout): TCP reports it
	 * once and then reads 0.  Latched here, so that no later read
	 * takes what follows for a truncated stream.
	 */
	if (sk->sk_err) {
		err = sock_error(sk);
		if (err) {
			ossuary_rx_error(sk, ctx, -err, -1, 0);
			return err;
		}
	}
	/*
	 * Bytes are still in TCP for want of a page: neither an end nor a
	 * reason to sleep until more data comes.
	 */
	if (ctx->rx_nomem)
		return ossuary_rx_nap(sk, ctx, timeo);
	if (sk->sk_shutdown & RCV_SHUTDOWN) {
		/* shutdown(SHUT_RD) on this side: end of file, as TCP */
		if (READ_ONCE(ctx->rx_shut))
			return 0;
		if (!sock_flag(sk, SOCK_DONE)) {
			if (sk->sk_state != TCP_CLOSE)
				return 0;
			/* torn down without a FIN; its error was read */
			ossuary_rx_error(sk, ctx, ECONNRESET, -1, 0);
			return -ECONNRESET;
		}
		/* FIN, and no DISCONNECT(0) before it */
		ossuary_rx_error(sk, ctx, EPIPE, OSSUARY_MIB_TRUNCATED, 0);
		return -EPIPE;
	}
	/* the reader waits for the peer: no pages held meanwhile */
	ossuary_rx_trim(ctx);
	if (!*timeo)
		return -EAGAIN;
	if (signal_pending(current))
		return sock_intr_errno(*timeo);
	ossuary_rx_wait(sk, ctx, timeo);
	return 1;
}

/*
 * Before a read or splice returns (socket lock owned): frame what
 * follows the records it took.  While a record waits for the reader
 * nothing behind it is framed, and TCP may call data_ready no more (the
 * peer has sent all, or the window is closed): a whole record must be
 * framed now for poll() to see it, and one still arriving may have to
 * be copied now for the window to open (ossuary_rx_wait_or_copy()).
 * Pollers are woken when that made the socket readable.
 */
static void ossuary_rx_refill(struct sock *sk, struct ossuary_ctx *ctx)
{
	bool was;

	sock_owned_by_me(sk);
	if (ctx->rx_err || ctx->rx_ready || ctx->rx_open)
		return;
	was = ossuary_rx_readable(sk, ctx);
	ossuary_rx_process(sk, ctx, sk->sk_allocation);
	if (!was && ossuary_rx_readable(sk, ctx))
		ctx->saved_data_ready(sk);
}

static void ossuary_rx_put_type(struct msghdr *msg, u8 type, bool *typed)
{
	if (!*typed && msg->msg_controllen)
		put_cmsg(msg, SOL_OSSUARY, OSSUARY_GET_RECORD_TYPE,
			 sizeof(type), &type);
	*typed = true;
}

/*
 * Read: as many DATA records as have arrived and fit, opened straight
 * into the reader's buffer where each fits whole.  It stops at a record
 * of another kind (a DISCONNECT reason for a typed reader), before an
 * error (the bytes read so far first; the error on the next read), and
 * once SO_RCVLOWAT bytes (len with MSG_WAITALL) are read and nothing
 * more is there, as on TCP.  A peek does the same without consuming.
 */
int ossuary_recvmsg(struct sock *sk, struct msghdr *msg, size_t len,
		    int flags, int *addr_len)
{
	struct ossuary_ctx *ctx = ossuary_get_ctx(sk);
	struct ossuary_rx_held *h = NULL;
	bool peek = flags & MSG_PEEK;
	bool held_seen = false;		/* a peek went through rx_held */
	bool rxb_seen = false;		/* a peek copied rxb's record */
	bool typed = false;
	size_t copied = 0;
	int target, err = 0;
	long timeo;

	if (unlikely(flags & MSG_ERRQUEUE))
		return ctx->sk_proto->recvmsg(sk, msg, len, flags, addr_len);

	lock_sock(sk);
	if (!ctx->rx_installed) {
		release_sock(sk);
		return ctx->sk_proto->recvmsg(sk, msg, len, flags, addr_len);
	}
	if (flags & ~OSSUARY_RX_FLAGS) {
		err = -EOPNOTSUPP;
		goto out;
	}
	timeo = sock_rcvtimeo(sk, flags & MSG_DONTWAIT);
	target = sock_rcvlowat(sk, flags & MSG_WAITALL, len);

	while (copied < len) {
		int ret;
		u32 n;

		/* records a peek opened ahead come before rxb's */
		if (!held_seen && !list_empty(&ctx->rx_held)) {
			if (!peek || !h)
				h = list_first_entry(&ctx->rx_held,
						     struct ossuary_rx_held,
						     list);
			else if (list_is_last(&h->list, &ctx->rx_held))
				h = NULL;
			else
				h = list_next_entry(h, list);
			if (!h) {
				held_seen = true;
				continue;
			}
			n = min_t(size_t, len - copied, h->plen - h->off);
			ossuary_rx_put_type(msg, OSSUARY_RECORD_DATA, &typed);
			err = ossuary_rx_copy(sk, &h->buf, h->off, msg, n);
			if (err)
				break;
			copied += n;
			if (!peek)
				ossuary_rx_held_consume(sk, ctx, h, n);
			continue;
		}

		ossuary_rx_process(sk, ctx, sk->sk_allocation);
		if (ctx->rx_ready) {
			ret = ossuary_rx_open_ready(sk, ctx, peek ? NULL : msg,
						    len - copied);
			if (ret == -ENOMEM && !copied) {
				ret = ossuary_rx_nap(sk, ctx, &timeo);
				if (ret > 0)
					continue;
			}
			if (ret < 0) {
				err = ret;
				break;
			}
			if (ret > 0)
				ossuary_rx_put_type(msg, OSSUARY_RECORD_DATA,
						    &typed);
			copied += ret;
			continue;
		}
		if (ctx->rx_open) {
			if (rxb_seen) {
				/* a peek wants more: hold it, open the next */
				if (!ossuary_rx_park(sk, ctx))
					break;
				/* it is copied already, as all held before it */
				held_seen = true;
				rxb_seen = false;
				continue;
			}
			n = min_t(size_t, len - copied,
				  ctx->rx_plen - ctx->rx_off);
			ossuary_rx_put_type(msg, OSSUARY_RECORD_DATA, &typed);
			err = ossuary_rx_copy(sk, &ctx->rxb, ctx->rx_off, msg, n);
			if (err)
				break;
			copied += n;
			if (peek) {
				rxb_seen = true;
				continue;
			}
			ctx->rx_off += n;
			if (ctx->rx_off == ctx->rx_plen)
				ossuary_rx_next(ctx);
			continue;
		}
		/*
		 * An error DISCONNECT's reason goes to a reader that asked
		 * for record types, as a one-byte DISCONNECT record, before
		 * the reads that report the reset.
		 */
		if (ctx->rx_reason_pending && msg->msg_controllen &&
		    !copied) {
			u8 type = OSSUARY_RECORD_DISCONNECT;

			put_cmsg(msg, SOL_OSSUARY, OSSUARY_GET_RECORD_TYPE,
				 sizeof(type), &type);
			if (copy_to_iter(&ctx->rx_reason, 1,
					 &msg->msg_iter) != 1) {
				err = -EFAULT;
				break;
			}
			if (!peek)
				ctx->rx_reason_pending = false;
			copied = 1;
			break;
		}
		if (copied) {
			if (copied >= target || ctx->rx_eof || ctx->rx_err ||
			    ctx->rx_nomem || sk->sk_err ||
			    (sk->sk_shutdown & RCV_SHUTDOWN) ||
			    !timeo || signal_pending(current))
				break;
			ossuary_rx_wait(sk, ctx, &timeo);
			continue;
		}
		ret = ossuary_rx_idle(sk, ctx, &timeo, peek);
		if (ret <= 0) {
			err = ret;
			break;
		}
	}
out:
	/*
	 * What this read opened may call for a record of ours: the answer
	 * to KEY_UPDATE(1), or DISCONNECT(1) after a failure.  Sealed now,
	 * before the read returns, rather than by tx_work later.
	 */
	ossuary_rx_refill(sk, ctx);
	ossuary_tx_settle(sk, ctx);
	release_sock(sk);
	return copied ? copied : err;
}

static void ossuary_spd_release(struct splice_pipe_desc *spd, unsigned int i)
{
	put_page(spd->pages[i]);
}

/*
 * splice() from the socket: open the next DATA record in place and lend
 * its pages to the pipe; they are never reused for another record
 * (ossuary_rx_next() takes fresh ones), so the pipe reads them later
 * without a copy.  One record, or what of it fits, per call, as on
 * kTLS; a record a peek holds (rx_held) goes first.
 */
ssize_t ossuary_splice_read(struct socket *sock, loff_t *ppos,
			    struct pipe_inode_info *pipe, size_t len,
			    unsigned int flags)
{
	struct page *pages[OSSUARY_REC_PAGES];
	struct partial_page partial[OSSUARY_REC_PAGES];
	struct splice_pipe_desc spd = {
		.pages = pages,
		.partial = partial,
		.nr_pages_max = OSSUARY_REC_PAGES,
		.ops = &nosteal_pipe_buf_ops,
		.spd_release = ossuary_spd_release,
	};
	struct sock *sk = sock->sk;
	struct ossuary_ctx *ctx = ossuary_get_ctx(sk);
	bool nonblock = (flags & SPLICE_F_NONBLOCK) ||
			(sock->file->f_flags & O_NONBLOCK);
	struct ossuary_rx_held *h = NULL;
	struct ossuary_buf *b;
	u32 off, end, pos, plen;
	ssize_t ret;
	long timeo;

	lock_sock(sk);
	if (!ctx->rx_installed) {
		/* TCP's bytes as they are, through our recvmsg */
		release_sock(sk);
		return copy_splice_read(sock->file, ppos, pipe, len, flags);
	}
	timeo = sock_rcvtimeo(sk, nonblock);
	for (;;) {
		if (!list_empty(&ctx->rx_held)) {
			h = list_first_entry(&ctx->rx_held,
					     struct ossuary_rx_held, list);
			break;
		}
		ossuary_rx_process(sk, ctx, sk->sk_allocation);
		if (ctx->rx_ready) {
			ret = ossuary_rx_open_ready(sk, ctx, NULL, 0);
			if (ret == -ENOMEM) {
				ret = ossuary_rx_nap(sk, ctx, &timeo);
				if (ret > 0)
					continue;
			}
			if (ret < 0)
				goto out;
		}
		if (ctx->rx_open)
			break;
		ret = ossuary_rx_idle(sk, ctx, &timeo, false);
		if (ret <= 0)
			goto out;
	}

	b = h ? &h->buf : &ctx->rxb;
	pos = h ? h->off : ctx->rx_off;
	plen = h ? h->plen : ctx->rx_plen;
	off = OSSUARY_HEADER_LEN + pos;
	end = off + min_t(size_t, len, plen - pos);
	while (off < end) {
		u32 poff = offset_in_page(off);
		u32 chunk = min_t(u32, end - off, PAGE_SIZE - poff);
		struct page *page = b->pages[off / PAGE_SIZE];

		get_page(page);
		pages[spd.nr_pages] = page;
		partial[spd.nr_pages].offset = poff;
		partial[spd.nr_pages].len = chunk;
		spd.nr_pages++;
		off += chunk;
	}
	ret = splice_to_pipe(pipe, &spd);
	if (ret > 0 && h) {
		h->lent = true;
		ossuary_stat_add(sk, OSSUARY_MIB_RX_SPLICED, ret);
		ossuary_rx_held_consume(sk, ctx, h, ret);
	} else if (ret > 0) {
		ctx->rx_lent = true;
		ctx->rx_off += ret;
		ossuary_stat_add(sk, OSSUARY_MIB_RX_SPLICED, ret);
		if (ctx->rx_off == ctx->rx_plen)
			ossuary_rx_next(ctx);
	}
out:
	ossuary_rx_refill(sk, ctx);
	ossuary_tx_settle(sk, ctx);
	release_sock(sk);
	return ret;
}

/* Socket locked, ULP attached, ci validated. */
int ossuary_rx_install(struct sock *sk, struct ossuary_ctx *ctx,
		       const struct ossuary_crypto_info *ci)
{
	int err;

	sock_owned_by_me(sk);
	err = ossuary_keys_init(&ctx->rx, ci->secret, ci->seq);
	if (err)
		return err;
	ossuary_rx_next(ctx);

	write_lock_bh(&sk->sk_callback_lock);
	ctx->saved_data_ready = sk->sk_data_ready;
	WRITE_ONCE(sk->sk_data_ready, ossuary_data_ready);
	write_unlock_bh(&sk->sk_callback_lock);
	WRITE_ONCE(ctx->rx_installed, true);
	ossuary_stat_add(sk, OSSUARY_MIB_CURR_RX, 1);
	ossuary_stat_add(sk, OSSUARY_MIB_TOTAL_RX, 1);

	/* bytes that arrived before the key are records too */
	ossuary_rx_process(sk, ctx, GFP_KERNEL);
	if (ossuary_rx_readable(sk, ctx))
		ctx->saved_data_ready(sk);
	return 0;
}

/* Socket locked, hooks already restored. */
void ossuary_rx_release(struct sock *sk, struct ossuary_ctx *ctx)
{
	struct ossuary_rx_held *h, *tmp;
	unsigned int i;

	sock_owned_by_me(sk);
	ossuary_keys_free(&ctx->rx);
	list_for_each_entry_safe(h, tmp, &ctx->rx_held, list) {
		list_del(&h->list);
		ossuary_rx_wipe_free(&h->buf, h->lent);
		kfree(h);
	}
	WRITE_ONCE(ctx->rx_held_bytes, 0);
	ctx->rx_held_mem = 0;
	/*
	 * The pages may hold opened plaintext: wipe them before reuse,
	 * unless a pipe still has them to read.
	 */
	for (i = 0; i < OSSUARY_REC_PAGES && !ctx->rx_lent; i++)
		if (ctx->rxb.pages[i])
			memzero_explicit(page_address(ctx->rxb.pages[i]),
					 PAGE_SIZE);
	ossuary_buf_free(&ctx->rxb);
	kfree(ctx->rx_src);
	ctx->rx_src = NULL;
	ossuary_stat_add(sk, OSSUARY_MIB_CURR_RX, -1);
}

/* Framing that atomic context left for want of a page. */
static void ossuary_rx_work(struct work_struct *work)
{
	struct ossuary_ctx *ctx = container_of(work, struct ossuary_ctx,
					       rx_work);
	struct sock *sk = ctx->sk;

	if (test_bit(OSSUARY_CLOSING, &ctx->tx_flags))
		return;
	lock_sock(sk);
	if (!test_bit(OSSUARY_CLOSING, &ctx->tx_flags) && ctx->rx_installed) {
		ossuary_rx_process(sk, ctx, GFP_KERNEL);
		ossuary_tx_settle(sk, ctx);
		if (ossuary_rx_readable(sk, ctx))
			ctx->saved_data_ready(sk);
	}
	release_sock(sk);
}

void ossuary_rx_init(struct ossuary_ctx *ctx)
{
	INIT_WORK(&ctx->rx_work, ossuary_rx_work);
	INIT_LIST_HEAD(&ctx->rx_held);
}
