// SPDX-License-Identifier: GPL-2.0
/*
 * Ossuary TX: pack sendmsg() bytes into DATA records of at most 16 KiB,
 * seal each into page fragments and hand those to TCP with
 * MSG_SPLICE_PAGES.  Bytes from write() are copied into the record's
 * image (order-0 pages, freed once it is sealed); pages lent by
 * sendfile() or splice() are not copied at all: the AEAD reads them where
 * they are (OssuaryTxZeroCopyBytes counts them).  Either way the AEAD
 * writes the record into fragments of the socket's page_frag, as
 * tcp_sendmsg() copies into its skbs (kTLS seals into sk_msg pages the
 * same way): a record is charged and takes its own size, not whole
 * pages, from a 1-byte write to a full 16 KiB record.
 *
 * State, all under the socket lock:
 *   tx_open   the record being filled (MSG_MORE keeps it open);
 *   tx_queue  sealed records TCP has not taken completely yet.
 * Records are handed to TCP only with MSG_DONTWAIT, so the socket lock
 * is never dropped in the middle of a push and no second pusher can
 * send the same bytes twice.  A blocking sender waits for room itself
 * (ossuary_tx_wait(): SO_SNDTIMEO, signals, as TCP) with nothing but
 * the socket lock, which the wait releases: shutdown(), a key update,
 * tx_work or a failing receive side get in while a writer sleeps, and
 * wake it when they close TX.  At most one sealed DATA record is left
 * queued when a send returns; sk_write_space then schedules tx_work to
 * push it, so bytes reported as sent always leave.
 *
 * Memory: every record we hold is charged to the socket as TCP charges
 * its own buffers (sk_wmem_schedule() and sk_mem_charge(): tcp_mem and
 * the socket's memory cgroup): the structure, each page of its image
 * while it is open, and its bytes on the wire once sealed; uncharged
 * when it is freed.  Sealed records on tx_queue also count in
 * sk_wmem_queued (tx_wmem), so SO_SNDBUF bounds TCP's queue and ours
 * together: a send starts a record only while sk_stream_memory_free(),
 * and a KEY_UPDATE is sealed past a full buffer only
 * OSSUARY_TX_UPDATES_OVER times.  The open record counts in
 * sk_wmem_queued only once sealed, as kTLS's open record.  Once TCP has
 * taken a record it charges the bytes itself, as for any spliced page.
 */

#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/uio.h>
#include <linux/bvec.h>
#include <linux/sched/signal.h>
#include <net/sock.h>
#include <net/tcp.h>

#include "ossuary.h"

#define OSSUARY_TX_FLAGS (MSG_MORE | MSG_DONTWAIT | MSG_NOSIGNAL | MSG_EOR | \
			  MSG_CMSG_COMPAT | MSG_SPLICE_PAGES | \
			  MSG_SENDPAGE_NOPOLICY)

/* How long close() waits to queue its last records (see below). */
#define OSSUARY_CLOSE_TIMEO	(5 * HZ)

/*
 * Sealed records TCP has not taken yet, past which no KEY_UPDATE is
 * sealed until it takes some: neither a peer that sends KEY_UPDATE(1)
 * after KEY_UPDATE(1) while it reads nothing nor a local caller asking
 * again and again may make us hold records without end.  A
 * send adds at most one DATA record and the updates sealed before it.
 */
#define OSSUARY_TX_QUEUE_MAX	8

/* KEY_UPDATEs sealed past a full send buffer before one waits for room */
#define OSSUARY_TX_UPDATES_OVER	4

/*
 * Charge size bytes to the socket for rec: 0, or -ENOBUFS (no memory).
 * With must, never -ENOBUFS: a record whose bytes a send has already
 * reported, or a control record (DISCONNECT, a KEY_UPDATE), must be
 * sealed even when tcp_mem or the memory cgroup is at its limit, or the
 * peer would wait for ever (nothing queued means no sk_write_space to
 * retry from), as TCP forces the charge of its FIN.  What the socket
 * may not have then stays uncharged; the queue limit bounds it.
 */
static int ossuary_rec_charge(struct sock *sk, struct ossuary_tx_rec *rec,
			      int size, bool must)
{
	sock_owned_by_me(sk);
	if (!sk_wmem_schedule(sk, size))
		return must ? 0 : -ENOBUFS;
	sk_mem_charge(sk, size);
	rec->charged += size;
	return 0;
}

static void ossuary_rec_uncharge(struct sock *sk, struct ossuary_tx_rec *rec,
				 int size)
{
	sock_owned_by_me(sk);
	/* a forced record (ossuary_rec_charge()) holds less than its size */
	size = min_t(int, size, rec->charged);
	rec->charged -= size;
	sk_mem_uncharge(sk, size);
}

/* A new record, charged: NULL with *err -ENOMEM or -ENOBUFS (not if must) */
static struct ossuary_tx_rec *ossuary_rec_new(struct sock *sk, int *err,
					      bool must)
{
	struct ossuary_tx_rec *rec;

	rec = kzalloc(sizeof(*rec), sk->sk_allocation);
	if (!rec) {
		*err = -ENOMEM;
		return NULL;
	}
	*err = ossuary_rec_charge(sk, rec, sizeof(*rec), must);
	if (*err) {
		kfree(rec);
		return NULL;
	}
	return rec;
}

static u32 ossuary_rec_npages(const struct ossuary_tx_rec *rec)
{
	u32 i, n = 0;

	for (i = 0; i < OSSUARY_REC_PAGES; i++)
		n += !!rec->buf.pages[i];
	return n;
}

/*
 * Pages for bytes [0, len) of rec's image, each charged: -ENOBUFS when
 * the socket may not have them (never with must), -ENOMEM when there
 * are none.
 */
static int ossuary_rec_buf_alloc(struct sock *sk, struct ossuary_tx_rec *rec,
				 u32 len, bool must)
{
	u32 have = ossuary_rec_npages(rec), want = DIV_ROUND_UP(len, PAGE_SIZE);
	u32 before;
	int err;

	if (want <= have)
		return 0;
	if (!must && !sk_wmem_schedule(sk, (want - have) * PAGE_SIZE))
		return -ENOBUFS;
	err = ossuary_buf_alloc(&rec->buf, len, sk->sk_allocation);
	/* what was allocated is charged, even if not all of it */
	before = rec->charged;
	WARN_ON_ONCE(ossuary_rec_charge(sk, rec,
					(ossuary_rec_npages(rec) - have) *
					PAGE_SIZE, must));
	rec->img_charged += rec->charged - before;
	return err;
}

/* Sealed: the image goes, and exactly what it was charged with it. */
static void ossuary_rec_buf_free(struct sock *sk, struct ossuary_tx_rec *rec)
{
	ossuary_buf_free(&rec->buf);
	ossuary_rec_uncharge(sk, rec, rec->img_charged);
	rec->img_charged = 0;
}

static void ossuary_rec_put_frags(struct ossuary_tx_rec *rec)
{
	u32 i;

	for (i = 0; i < rec->nfrags; i++)
		put_page(rec->frags[i].page);
	rec->nfrags = 0;
}

static void ossuary_rec_put_pieces(struct ossuary_tx_rec *rec)
{
	u32 i;

	for (i = 0; i < rec->npieces; i++)
		put_page(rec->pieces[i].page);
	rec->npieces = 0;
}

static void ossuary_rec_free(struct sock *sk, struct ossuary_tx_rec *rec)
{
	if (!rec)
		return;
	ossuary_rec_put_frags(rec);
	ossuary_buf_free(&rec->buf);
	ossuary_rec_put_pieces(rec);
	ossuary_rec_uncharge(sk, rec, rec->charged);
	kfree(rec);
}

/* Off tx_queue: no longer counted in sk_wmem_queued */
static void ossuary_rec_dequeue(struct sock *sk, struct ossuary_ctx *ctx,
				struct ossuary_tx_rec *rec)
{
	list_del(&rec->list);
	ctx->tx_nrecs--;
	ctx->tx_wmem -= rec->charged;
	sk_wmem_queued_add(sk, -(int)rec->charged);
}

/*
 * Room for a record of len bytes on the wire, from the page_frag TCP's
 * own sendmsg() would copy into (sk_page_frag(): the task's, or the
 * socket's for sockets used in memory reclaim), described in dst: 0 or
 * -ENOMEM.  A record starts where the last one ended and goes on in a
 * new fragment page when this one is full, so records pack back to back
 * whatever their size.  A fragment page is reused from its start only
 * once no skb holds it (skb_page_frag_refill()), so a record's bytes
 * never change while TCP has them (see MSG_NO_SHARED_FRAGS below).
 * Process context only: the task's page_frag is not for softirq (a
 * kworker's is fine: tx_work and rx_work seal with it).
 */
static int ossuary_rec_pieces(struct sock *sk, struct ossuary_tx_rec *rec,
			      u32 len, struct scatterlist *dst)
{
	struct page_frag *pfrag = sk_page_frag(sk);
	u32 at = 0;

	sock_owned_by_me(sk);
	might_sleep();
	sg_init_table(dst, OSSUARY_TX_PIECES);
	while (at < len) {
		struct ossuary_tx_piece *p;

		/* the first piece has the header: refill leaves >= 32 bytes */
		if (WARN_ON_ONCE(rec->npieces == OSSUARY_TX_PIECES) ||
		    !sk_page_frag_refill(sk, pfrag)) {
			ossuary_rec_put_pieces(rec);
			return -ENOMEM;
		}
		p = &rec->pieces[rec->npieces];
		p->page = pfrag->page;
		p->off = pfrag->offset;
		p->len = min_t(u32, len - at, pfrag->size - pfrag->offset);
		get_page(p->page);
		pfrag->offset += p->len;
		sg_set_page(&dst[rec->npieces], p->page, p->len, p->off);
		rec->npieces++;
		at += p->len;
	}
	sg_mark_end(&dst[rec->npieces - 1]);
	return 0;
}

static void ossuary_tx_key_update_done(struct sock *sk,
				       struct ossuary_ctx *ctx);

/* TX cannot go on (err < 0): latched, and in sk_err as the uapi says */
static void ossuary_tx_fatal(struct sock *sk, struct ossuary_ctx *ctx,
			     int err)
{
	if (ctx->tx_err)
		return;
	WRITE_ONCE(ctx->tx_err, -err);
	WRITE_ONCE(sk->sk_err, -err);
	/* wakes writers asleep in ossuary_tx_wait() too */
	sk_error_report(sk);
}

/*
 * Seal rec as one record of the given type and queue it.  Before any
 * record other than KEY_UPDATE, a key update is due when the sequence
 * number reached the last one a secret may seal (PROTOCOL.md) or when
 * the OSSUARY_REKEY_RECORDS budget is spent.
 */
static int __ossuary_tx_seal(struct sock *sk, struct ossuary_ctx *ctx,
			     struct ossuary_tx_rec *rec, u8 type)
{
	struct scatterlist dst[OSSUARY_TX_PIECES];
	u8 hdr[OSSUARY_HEADER_LEN];
	u32 len = OSSUARY_HEADER_LEN + rec->plen + OSSUARY_TAG_LEN;
	int err;

	sock_owned_by_me(sk);
	/* nothing may follow a DISCONNECT in this direction */
	if (ctx->tx_closed)
		return -EPIPE;
	/* once RX failed, DISCONNECT(1) is the only record left to seal */
	if (ctx->tx_fail_pending && type != OSSUARY_RECORD_DISCONNECT)
		return -EPIPE;
	if (ctx->tx.seq > OSSUARY_SEQ_LAST)
		return -EKEYEXPIRED;
	/*
	 * The image holds the header (the AAD) and the copied plaintext,
	 * which ossuary_rec_fill() gave pages; a record of lent pages
	 * needs one for its header only.  The bytes are reported as sent
	 * already: sealed whatever the limit.
	 */
	err = ossuary_rec_buf_alloc(sk, rec, OSSUARY_HEADER_LEN, true);
	if (!err)
		err = ossuary_rec_pieces(sk, rec, len, dst);
	if (err)
		return -ENOMEM;
	ossuary_hdr_build(hdr, type, rec->plen + OSSUARY_TAG_LEN);
	ossuary_buf_write(&rec->buf, 0, hdr, sizeof(hdr));
	sg_copy_from_buffer(dst, rec->npieces, hdr, sizeof(hdr));
	err = ossuary_seal(&ctx->tx, &rec->buf, rec->frags, rec->nfrags,
			   rec->plen, ctx->tx.seq, dst);
	/* the record is in its pieces: lent pages and the image go back */
	ossuary_rec_put_frags(rec);
	ossuary_rec_buf_free(sk, rec);
	if (err) {
		/* a sealing failure leaves the stream unusable */
		ossuary_rec_put_pieces(rec);
		ossuary_tx_fatal(sk, ctx, err);
		return err;
	}
	/* from now on charged by its bytes on the wire, as TCP charges them */
	ossuary_rec_charge(sk, rec, len, true);
	ctx->tx.seq++;
	ctx->tx_since_update++;
	rec->len = len;
	rec->sent = 0;
	list_add_tail(&rec->list, &ctx->tx_queue);
	ctx->tx_nrecs++;
	ctx->tx_wmem += rec->charged;
	sk_wmem_queued_add(sk, rec->charged);
	WRITE_ONCE(ctx->tx_queued, true);
	ossuary_stat_add(sk, OSSUARY_MIB_SEALED, 1);
	return 0;
}

static int ossuary_tx_seal_control(struct sock *sk, struct ossuary_ctx *ctx,
				   u8 type, u8 val);

static int ossuary_tx_seal(struct sock *sk, struct ossuary_ctx *ctx,
			   struct ossuary_tx_rec *rec, u8 type)
{
	int err;

	/* RX failed: DISCONNECT(1) alone, no key update before it */
	if (ctx->tx_fail_pending)
		return __ossuary_tx_seal(sk, ctx, rec, type);
	/* the answer to the peer's KEY_UPDATE(1) is our very next record */
	if (type != OSSUARY_RECORD_KEY_UPDATE && ctx->tx_update_pending) {
		err = ossuary_tx_seal_control(sk, ctx,
					      OSSUARY_RECORD_KEY_UPDATE, 0);
		if (err)
			return err;
	}
	if (type != OSSUARY_RECORD_KEY_UPDATE &&
	    (ctx->tx.seq >= OSSUARY_SEQ_LAST ||
	     (ctx->tx_rekey_records &&
	      ctx->tx_since_update >= ctx->tx_rekey_records))) {
		err = ossuary_tx_seal_control(sk, ctx,
					      OSSUARY_RECORD_KEY_UPDATE, 0);
		if (err)
			return err;
	}
	return __ossuary_tx_seal(sk, ctx, rec, type);
}

/* A one-byte control record: KEY_UPDATE, DISCONNECT. */
static int ossuary_tx_seal_control(struct sock *sk, struct ossuary_ctx *ctx,
				   u8 type, u8 val)
{
	struct ossuary_tx_rec *rec;
	int err;

	if (type == OSSUARY_RECORD_DISCONNECT && ctx->tx_fail_pending)
		val = OSSUARY_DISCONNECT_ERROR;
	/* KEY_UPDATE(0) is the answer; KEY_UPDATE(1) must follow it */
	if (type == OSSUARY_RECORD_KEY_UPDATE && ctx->tx_update_pending && val) {
		err = ossuary_tx_seal_control(sk, ctx, type, 0);
		if (err)
			return err;
	}
	rec = ossuary_rec_new(sk, &err, true);
	if (!rec)
		return -ENOMEM;
	err = ossuary_rec_buf_alloc(sk, rec, OSSUARY_HEADER_LEN + 1, true);
	if (err) {
		err = -ENOMEM;
		goto err_free;
	}
	ossuary_buf_write(&rec->buf, OSSUARY_HEADER_LEN, &val, 1);
	rec->plen = 1;
	err = ossuary_tx_seal(sk, ctx, rec, type);
	if (err)
		goto err_free;
	if (type == OSSUARY_RECORD_KEY_UPDATE) {
		/* an owed answer is paid only once it is sealed */
		WRITE_ONCE(ctx->tx_update_pending, false);
		ossuary_tx_key_update_done(sk, ctx);
	}
	return 0;

err_free:
	ossuary_rec_free(sk, rec);
	return err;
}

/* After sealing KEY_UPDATE with the old secret: S' for what follows. */
static void ossuary_tx_key_update_done(struct sock *sk,
				       struct ossuary_ctx *ctx)
{
	int err = ossuary_keys_ratchet(&ctx->tx);

	if (err)
		ossuary_tx_fatal(sk, ctx, err);
	ctx->tx_since_update = 0;
	ossuary_stat_add(sk, OSSUARY_MIB_KEY_UPDATE_TX, 1);
}

static int ossuary_tx_seal_open(struct sock *sk, struct ossuary_ctx *ctx)
{
	struct ossuary_tx_rec *rec = ctx->tx_open;
	int err;

	if (!rec)
		return 0;
	err = ossuary_tx_seal(sk, ctx, rec, OSSUARY_RECORD_DATA);
	if (!err)
		ctx->tx_open = NULL;
	return err;
}

/*
 * A socket error other than the one a failed RX put there (for SO_ERROR
 * and EPOLLERR): that one must not keep the DISCONNECT(1) answering the
 * failure, or the records before it, from TCP.
 */
static bool ossuary_tx_sk_err(struct sock *sk, struct ossuary_ctx *ctx)
{
	int err = READ_ONCE(sk->sk_err);

	return err && err != READ_ONCE(ctx->sk_err_own);
}

/*
 * Hand queued records to TCP, socket lock owned, never waiting:
 * tcp_sendmsg_locked() with MSG_DONTWAIT keeps the lock throughout, so
 * the bytes of a record cannot go out twice.  Returns 0 once the queue
 * is empty, -EAGAIN when TCP has no room (see ossuary_tx_wait()), or
 * -EPIPE when the socket has an error or SEND_SHUTDOWN: sk_err is left
 * for whoever reports it (sk_stream_error()), not consumed here.
 */
static int ossuary_tx_push(struct sock *sk, struct ossuary_ctx *ctx)
{
	struct ossuary_tx_rec *rec;

	sock_owned_by_me(sk);
	while ((rec = list_first_entry_or_null(&ctx->tx_queue,
					       struct ossuary_tx_rec, list))) {
		while (rec->sent < rec->len) {
			struct bio_vec bvec[OSSUARY_TX_PIECES];
			struct msghdr msg = {};
			u32 skip = rec->sent, size = rec->len - rec->sent;
			int n = 0, ret, own;
			u32 i;

			if (ossuary_tx_sk_err(sk, ctx) ||
			    (READ_ONCE(sk->sk_shutdown) & SEND_SHUTDOWN))
				return -EPIPE;

			for (i = 0; i < rec->npieces; i++) {
				const struct ossuary_tx_piece *p =
					&rec->pieces[i];

				if (skip >= p->len) {
					skip -= p->len;
					continue;
				}
				bvec_set_page(&bvec[n++], p->page,
					      p->len - skip, p->off + skip);
				skip = 0;
			}
			/*
			 * Our record bytes never change while an skb holds
			 * them (a fragment page is reused from its start only
			 * when nobody else holds it; otherwise records go on
			 * after the bytes already there): a receiver on this
			 * host may open the record straight from them (see
			 * rx.c), as it may not from pages a file or a pipe
			 * lent to TCP.
			 */
			msg.msg_flags = MSG_SPLICE_PAGES | MSG_DONTWAIT |
					MSG_NOSIGNAL | MSG_NO_SHARED_FRAGS;
			if (!list_is_last(&rec->list, &ctx->tx_queue))
				msg.msg_flags |= MSG_MORE;
			iov_iter_bvec(&msg.msg_iter, ITER_SOURCE, bvec, n, size);
			/*
			 * TCP sends nothing while sk_err is set: lift our own
			 * error for the call.  With the socket owned, only
			 * this call's backlog can set another (a reset),
			 * which then stays; SO_ERROR may miss ours meanwhile
			 * and gets it afterwards.
			 */
			own = READ_ONCE(sk->sk_err);
			if (own)
				WRITE_ONCE(sk->sk_err, 0);
			/*
			 * TCP judges its room by its own queue: ours, in
			 * sk_wmem_queued too, is lifted for the call, or a
			 * queue of ours that alone fills SO_SNDBUF could
			 * never be handed over.
			 */
			sk_wmem_queued_add(sk, -(int)ctx->tx_wmem);
			ret = tcp_sendmsg_locked(sk, &msg, size);
			sk_wmem_queued_add(sk, ctx->tx_wmem);
			if (own)
				cmpxchg(&sk->sk_err, 0, own);
			if (ret <= 0)
				return ret ? ret : -EAGAIN;
			rec->sent += ret;
		}
		ossuary_rec_dequeue(sk, ctx, rec);
		ossuary_rec_free(sk, rec);
	}
	WRITE_ONCE(ctx->tx_queued, false);
	return 0;
}

/*
 * An answer to the peer's KEY_UPDATE(1) waits, beyond room, until TCP
 * sent everything before it: a peer that asks again and again while it
 * reads nothing gets one answer per window it opens, its requests
 * meanwhile sharing the one owed.
 */
static bool ossuary_tx_all_sent(struct sock *sk, struct ossuary_ctx *ctx)
{
	const struct tcp_sock *tp = tcp_sk(sk);

	return list_empty(&ctx->tx_queue) &&
	       READ_ONCE(tp->write_seq) == READ_ONCE(tp->snd_nxt);
}

static bool ossuary_tx_has_room(struct sock *sk, struct ossuary_ctx *ctx,
				bool answer)
{
	if (ctx->tx_nrecs >= OSSUARY_TX_QUEUE_MAX)
		return false;
	if (sk_stream_memory_free(sk) &&
	    (!answer || ossuary_tx_all_sent(sk, ctx))) {
		ctx->tx_updates_over = 0;
		return true;
	}
	/*
	 * A full send buffer still takes a few, as TCP lets a send grow
	 * its last segment past SO_SNDBUF: a key update does not wait
	 * behind a writer that filled it.  The caller seals one now.
	 */
	if (ctx->tx_updates_over < OSSUARY_TX_UPDATES_OVER) {
		ctx->tx_updates_over++;
		return true;
	}
	return false;
}

/*
 * Room for another KEY_UPDATE: fewer than OSSUARY_TX_QUEUE_MAX records
 * queued and room in the send buffer (SO_SNDBUF), or fewer than
 * OSSUARY_TX_UPDATES_OVER updates sealed since it was last found with
 * room, after handing TCP what it takes now: 0, or -EAGAIN with
 * SOCK_NOSPACE set, so that write_space comes (and schedules tx_work
 * for an owed answer).
 */
static int ossuary_tx_queue_room(struct sock *sk, struct ossuary_ctx *ctx,
				 bool answer)
{
	if (ossuary_tx_has_room(sk, ctx, answer))
		return 0;
	ossuary_tx_push(sk, ctx);
	if (ossuary_tx_has_room(sk, ctx, answer))
		return 0;
	if (sk->sk_socket)
		set_bit(SOCK_NOSPACE, &sk->sk_socket->flags);
	return -EAGAIN;
}

/*
 * ossuary_tx_wait(): something other than room ends the wait.  Also
 * read with the socket lock released, hence READ_ONCE().
 */
static bool ossuary_tx_wait_over(struct sock *sk, struct ossuary_ctx *ctx,
				 bool stop_on_close)
{
	if (ossuary_tx_sk_err(sk, ctx) ||
	    (READ_ONCE(sk->sk_shutdown) & SEND_SHUTDOWN))
		return true;
	return stop_on_close && (READ_ONCE(ctx->tx_closed) ||
				 READ_ONCE(ctx->tx_err) ||
				 READ_ONCE(ctx->tx_fail_pending));
}

/*
 * The caller found no room in TCP (a push got -EAGAIN, or the send
 * buffer is full): wait for some, socket lock owned (sk_wait_event()
 * releases it while sleeping).  A writer (stop_on_close) also stops, with
 * -EPIPE, as soon as TX is closed or failed by someone else, so that
 * shutdown() or a failed receive side ends its send at once.  Returns
 * 0 when there is room, -EPIPE on a socket error or SEND_SHUTDOWN (the
 * caller reports it with sk_stream_error()), -EAGAIN when *timeo ran
 * out, or the signal's error.
 */
static int ossuary_tx_wait(struct sock *sk, struct ossuary_ctx *ctx,
			   long *timeo, bool stop_on_close)
{
	DEFINE_WAIT_FUNC(wait, woken_wake_function);
	/*
	 * TCP refused bytes though its send buffer has room: memory
	 * accounting under pressure.  Sleep a little once rather than spin.
	 */
	bool short_nap = sk_stream_memory_free(sk);
	int err = 0;

	sock_owned_by_me(sk);
	add_wait_queue(sk_sleep(sk), &wait);
	for (;;) {
		if (ossuary_tx_wait_over(sk, ctx, stop_on_close)) {
			err = -EPIPE;
			break;
		}
		if (!*timeo) {
			/* as TCP: write_space, hence EPOLLOUT, comes */
			set_bit(SOCK_NOSPACE, &sk->sk_socket->flags);
			err = -EAGAIN;
			break;
		}
		if (signal_pending(current)) {
			err = sock_intr_errno(*timeo);
			break;
		}
		sk_clear_bit(SOCKWQ_ASYNC_NOSPACE, sk);
		if (!short_nap && sk_stream_memory_free(sk))
			break;
		set_bit(SOCK_NOSPACE, &sk->sk_socket->flags);
		sk->sk_write_pending++;
		if (short_nap) {
			long nap = min_t(long, *timeo, HZ / 50 + 1), left = nap;

			sk_wait_event(sk, &left,
				      ossuary_tx_wait_over(sk, ctx,
							   stop_on_close),
				      &wait);
			if (*timeo != MAX_SCHEDULE_TIMEOUT)
				*timeo -= nap - left;
			short_nap = false;
		} else {
			sk_wait_event(sk, timeo,
				      ossuary_tx_wait_over(sk, ctx,
							   stop_on_close) ||
				      sk_stream_memory_free(sk), &wait);
		}
		sk->sk_write_pending--;
	}
	remove_wait_queue(sk_sleep(sk), &wait);
	return err;
}

/* Push everything queued, waiting for room up to *timeo. */
static int ossuary_tx_push_wait(struct sock *sk, struct ossuary_ctx *ctx,
				long *timeo, bool stop_on_close)
{
	int err;

	for (;;) {
		err = ossuary_tx_push(sk, ctx);
		if (err != -EAGAIN)
			return err;
		err = ossuary_tx_wait(sk, ctx, timeo, stop_on_close);
		if (err)
			return err;
	}
}

/* TX was closed: writers asleep in ossuary_tx_wait() stop. */
static void ossuary_tx_wake_writers(struct sock *sk)
{
	struct socket_wq *wq;

	rcu_read_lock();
	wq = rcu_dereference(sk->sk_wq);
	if (skwq_has_sleeper(wq))
		wake_up_interruptible_all(&wq->wait);
	rcu_read_unlock();
}

static void ossuary_tx_work(struct work_struct *work)
{
	struct ossuary_ctx *ctx = container_of(work, struct ossuary_ctx,
					       tx_work);
	struct sock *sk = ctx->sk;

	if (test_bit(OSSUARY_CLOSING, &ctx->tx_flags))
		return;
	lock_sock(sk);
	if (!test_bit(OSSUARY_CLOSING, &ctx->tx_flags)) {
		/* cleared before pushing: a later write_space requeues us */
		clear_bit(OSSUARY_TX_SCHEDULED, &ctx->tx_flags);
		ossuary_tx_settle(sk, ctx);
		/* all out, DISCONNECT(0) included: shutdown's FIN follows */
		if (!ossuary_tx_push(sk, ctx) && ctx->tx_shut_pending)
			ossuary_shutdown_send(sk, ctx);
		/* an answer the full queue held back: room now, maybe */
		if (ctx->tx_update_pending)
			ossuary_tx_settle(sk, ctx);
	}
	release_sock(sk);
}

/* Any context: have tx_work push what is queued. */
void ossuary_tx_schedule(struct ossuary_ctx *ctx)
{
	if (!test_and_set_bit(OSSUARY_TX_SCHEDULED, &ctx->tx_flags))
		schedule_work(&ctx->tx_work);
}

/* Socket lock owned: hand what is queued to TCP if it has room. */
int ossuary_tx_flush(struct sock *sk, struct ossuary_ctx *ctx)
{
	return ossuary_tx_push(sk, ctx);
}

/*
 * The receive side failed (or was reset): from now on the only record
 * this side may seal is DISCONNECT(1) (tx_fail_pending stays set).  Any
 * context, socket lock held in some form; the record is sealed in
 * process context by the next reader, writer or tx_work.
 */
void ossuary_tx_schedule_fail(struct sock *sk, struct ossuary_ctx *ctx)
{
	WRITE_ONCE(ctx->tx_fail_pending, true);
	ossuary_tx_schedule(ctx);
}

/*
 * The peer's KEY_UPDATE(1) was opened (any context, socket lock held in
 * some form): our own KEY_UPDATE(0) is due as the next record we seal.
 * A sender that seals anything first seals it (ossuary_tx_seal()), a
 * reader in process context seals it before its read returns
 * (ossuary_tx_settle()), otherwise tx_work does.
 */
void ossuary_tx_schedule_key_update(struct ossuary_ctx *ctx)
{
	WRITE_ONCE(ctx->tx_update_pending, true);
	ossuary_tx_schedule(ctx);
}

static int __ossuary_tx_key_update(struct sock *sk, struct ossuary_ctx *ctx,
				   u8 request, bool answer);

/*
 * Socket lock owned, process context, not inside a push: seal what the
 * receive side made due (DISCONNECT(1) after a failure, else the answer
 * to KEY_UPDATE(1)), push it if TCP has room (tx_work pushes the rest),
 * then report a receive failure in sk_err.  The DISCONNECT(1) is sealed
 * first, since nothing may be sealed after the failure; what TCP has no
 * room for yet still goes out later (ossuary_tx_push() looks past this
 * error).
 */
void ossuary_tx_settle(struct sock *sk, struct ossuary_ctx *ctx)
{
	sock_owned_by_me(sk);
	if (ctx->tx_fail_pending) {
		if (ctx->tx_installed && !ctx->tx_closed && !ctx->tx_err &&
		    ((1 << sk->sk_state) & (TCPF_ESTABLISHED | TCPF_CLOSE_WAIT))) {
			long timeo = 0;

			ossuary_tx_disconnect(sk, ctx, OSSUARY_DISCONNECT_ERROR,
					      &timeo);
		}
		ossuary_rx_report(sk, ctx);
		return;
	}
	/* a send that could not seal its last record (no memory) */
	if (ctx->tx_seal_due && !ctx->tx_closed && !ctx->tx_err &&
	    !ossuary_tx_seal_open(sk, ctx)) {
		WRITE_ONCE(ctx->tx_seal_due, false);
		ossuary_tx_push(sk, ctx);
	}
	/*
	 * The owed answer.  With OSSUARY_TX_QUEUE_MAX records still waiting
	 * for TCP it stays owed (nothing else can be sealed before it), and
	 * tx_work seals it once write_space says TCP took some.
	 */
	if (ctx->tx_update_pending && ctx->tx_installed && !ctx->tx_closed &&
	    !ctx->tx_err && !__ossuary_tx_key_update(sk, ctx, 0, true))
		ossuary_tx_push(sk, ctx);
}

/*
 * TCP made room.  Records we reported as sent may still be waiting for
 * it: push them from process context, since that needs the socket lock.
 */
void ossuary_write_space(struct sock *sk)
{
	struct ossuary_ctx *ctx = ossuary_get_ctx(sk);

	if (READ_ONCE(ctx->tx_queued) || READ_ONCE(ctx->tx_seal_due) ||
	    READ_ONCE(ctx->tx_update_pending))
		ossuary_tx_schedule(ctx);
	ctx->saved_write_space(sk);
}

/* Socket locked.  The ULP is attached; ci is validated. */
int ossuary_tx_install(struct sock *sk, struct ossuary_ctx *ctx,
		       const struct ossuary_crypto_info *ci)
{
	int err;

	sock_owned_by_me(sk);
	err = ossuary_keys_init(&ctx->tx, ci->secret, ci->seq);
	if (err)
		return err;

	write_lock_bh(&sk->sk_callback_lock);
	ctx->saved_write_space = sk->sk_write_space;
	WRITE_ONCE(sk->sk_write_space, ossuary_write_space);
	write_unlock_bh(&sk->sk_callback_lock);
	WRITE_ONCE(ctx->tx_installed, true);
	ossuary_stat_add(sk, OSSUARY_MIB_CURR_TX, 1);
	ossuary_stat_add(sk, OSSUARY_MIB_TOTAL_TX, 1);
	return 0;
}

/* Socket locked, hooks already restored: drop everything. */
void ossuary_tx_release(struct sock *sk, struct ossuary_ctx *ctx)
{
	struct ossuary_tx_rec *rec, *tmp;

	sock_owned_by_me(sk);
	ossuary_rec_free(sk, ctx->tx_open);
	ctx->tx_open = NULL;
	list_for_each_entry_safe(rec, tmp, &ctx->tx_queue, list) {
		ossuary_rec_dequeue(sk, ctx, rec);
		ossuary_rec_free(sk, rec);
	}
	WARN_ON_ONCE(ctx->tx_nrecs || ctx->tx_wmem);
	WRITE_ONCE(ctx->tx_queued, false);
	ossuary_keys_free(&ctx->tx);
	ossuary_stat_add(sk, OSSUARY_MIB_CURR_TX, -1);
}

/*
 * Seal whatever is open, then DISCONNECT(reason), and push, waiting up
 * to *timeo for room (socket lock owned).  Nothing may follow a
 * DISCONNECT in this direction, so TX is closed even if the push has to
 * wait, and writers asleep waiting for room stop; a retry just pushes
 * again.  Once RX failed, the open record is dropped and the reason is
 * always 1: DISCONNECT(1) is the only record that may still be sealed.
 */
int ossuary_tx_disconnect(struct sock *sk, struct ossuary_ctx *ctx, u8 reason,
			  long *timeo)
{
	int err;

	sock_owned_by_me(sk);
	if (!ctx->tx_closed) {
		if (ctx->tx_err)
			return -ctx->tx_err;
		if (ctx->tx_fail_pending) {
			ossuary_rec_free(sk, ctx->tx_open);
			ctx->tx_open = NULL;
			reason = OSSUARY_DISCONNECT_ERROR;
		}
		err = ossuary_tx_seal_open(sk, ctx);
		if (!err)
			err = ossuary_tx_seal_control(sk, ctx,
						      OSSUARY_RECORD_DISCONNECT,
						      reason);
		if (err)
			return err;
		WRITE_ONCE(ctx->tx_closed, true);
		WRITE_ONCE(ctx->tx_seal_due, false);
		ossuary_tx_wake_writers(sk);
	}
	return ossuary_tx_push_wait(sk, ctx, timeo, false);
}

/*
 * Seal KEY_UPDATE(request) with the current secret and queue it (socket
 * lock held; the caller pushes or schedules tx_work).  Every later
 * record uses the next secret; an open MSG_MORE record is not sealed
 * yet, so it simply goes out under the new key.  -EAGAIN, with nothing
 * sealed, while OSSUARY_TX_QUEUE_MAX records wait for TCP, or the send
 * buffer is full (SO_SNDBUF, our queue counted) and already took
 * OSSUARY_TX_UPDATES_OVER updates past it.
 */
static int __ossuary_tx_key_update(struct sock *sk, struct ossuary_ctx *ctx,
				   u8 request, bool answer)
{
	int err;

	sock_owned_by_me(sk);
	if (!ctx->tx_installed)
		return -EINVAL;
	if (ctx->tx_closed)
		return -EPIPE;
	if (ctx->tx_err)
		return -ctx->tx_err;
	err = ossuary_tx_queue_room(sk, ctx, answer);
	if (err)
		return err;
	return ossuary_tx_seal_control(sk, ctx, OSSUARY_RECORD_KEY_UPDATE,
				       request);
}

int ossuary_tx_key_update(struct sock *sk, struct ossuary_ctx *ctx,
			  u8 request)
{
	return __ossuary_tx_key_update(sk, ctx, request, false);
}

/*
 * The application's KEY_UPDATE: while there is no room for it (see
 * ossuary_tx_key_update()), wait up to *timeo for TCP to take some, as
 * a writer waits for room (-EAGAIN, nothing sealed, when the time runs
 * out, at once if it is 0).
 */
int ossuary_tx_key_update_wait(struct sock *sk, struct ossuary_ctx *ctx,
			       u8 request, long *timeo)
{
	int err;

	while ((err = ossuary_tx_key_update(sk, ctx, request)) == -EAGAIN) {
		err = ossuary_tx_wait(sk, ctx, timeo, true);
		if (err)
			break;
	}
	return err;
}

/*
 * close(): the application is done, so the stream ends cleanly with
 * DISCONNECT(0) after whatever it wrote, unless it asked for an abortive
 * close (SO_LINGER with a zero timeout), it is being killed by a
 * signal, or the connection is gone.
 * TCP's own close does not block; a blocking close waits at most
 * SO_SNDTIMEO, the linger time, or OSSUARY_CLOSE_TIMEO for TCP to take
 * the last records, so a peer that stopped reading cannot hang close()
 * for ever.  A close that must not block at all (an O_NONBLOCK file,
 * as an event loop has, or an exiting process) hands TCP only what its
 * send buffer has room for right now: what does not fit is dropped,
 * and the peer then reads a truncated stream, never a clean end.
 */
void ossuary_tx_flush_on_close(struct sock *sk, struct ossuary_ctx *ctx,
			       long timeout)
{
	struct socket *sock = sk->sk_socket;
	long timeo = 0;

	sock_owned_by_me(sk);
	if (sock_flag(sk, SOCK_LINGER) && !sk->sk_lingertime)
		return;
	/*
	 * A process killed by a signal did not finish what it was saying:
	 * its peer must see a truncated stream (EPIPE), not a clean end.
	 */
	if ((current->flags & PF_EXITING) &&
	    (READ_ONCE(current->signal->group_exit_code) & 0x7f))
		return;
	if (ossuary_tx_sk_err(sk, ctx) || (sk->sk_shutdown & SEND_SHUTDOWN) ||
	    !((1 << sk->sk_state) & (TCPF_ESTABLISHED | TCPF_CLOSE_WAIT)))
		return;
	if (!(current->flags & PF_EXITING) &&
	    !(sock && sock->file && (sock->file->f_flags & O_NONBLOCK)))
		timeo = min_t(long, sk->sk_sndtimeo,
			      max_t(long, timeout, OSSUARY_CLOSE_TIMEO));
	ossuary_tx_disconnect(sk, ctx, OSSUARY_DISCONNECT_CLEAN, &timeo);
}

/* sendmsg with OSSUARY_SET_RECORD_TYPE: a control record. */
static int ossuary_tx_cmsg(struct msghdr *msg, u8 *type)
{
	struct cmsghdr *cmsg;

	for_each_cmsghdr(cmsg, msg) {
		if (!CMSG_OK(msg, cmsg))
			return -EINVAL;
		if (cmsg->cmsg_level != SOL_OSSUARY)
			continue;
		if (cmsg->cmsg_type != OSSUARY_SET_RECORD_TYPE ||
		    cmsg->cmsg_len != CMSG_LEN(sizeof(u8)))
			return -EINVAL;
		*type = *(u8 *)CMSG_DATA(cmsg);
	}
	return 0;
}

static int ossuary_tx_control_msg(struct sock *sk, struct ossuary_ctx *ctx,
				  struct msghdr *msg, u8 type, int flags,
				  long *timeo)
{
	u8 val;
	int err;

	/* one byte of body: the reason or the request flag */
	if (type != OSSUARY_RECORD_DISCONNECT &&
	    type != OSSUARY_RECORD_KEY_UPDATE)
		return -EINVAL;
	if (msg_data_left(msg) != 1 || (flags & MSG_MORE))
		return -EINVAL;
	if (copy_from_iter(&val, 1, &msg->msg_iter) != 1)
		return -EFAULT;
	if (type == OSSUARY_RECORD_DISCONNECT) {
		if (val > OSSUARY_DISCONNECT_INTERNAL)
			return -EINVAL;
		err = ossuary_tx_disconnect(sk, ctx, val, timeo);
	} else {
		if (val > 1)
			return -EINVAL;
		/* no room: EAGAIN (or the wait's error), nothing sealed */
		err = ossuary_tx_key_update_wait(sk, ctx, val, timeo);
		if (err)
			return err;
		err = ossuary_tx_push_wait(sk, ctx, timeo, false);
	}
	/* sealed and queued: it is sent, TCP just has no room right now */
	if (err == -EAGAIN)
		err = 0;
	return err ? err : 1;
}

/* Copy up to n bytes from the caller into the open record. */
static size_t ossuary_rec_fill(struct sock *sk, struct ossuary_tx_rec *rec,
			       struct iov_iter *from, size_t n, int *err)
{
	u32 off = OSSUARY_HEADER_LEN + rec->plen;
	size_t done = 0;

	*err = ossuary_rec_buf_alloc(sk, rec, off + n, false);
	if (*err)
		return 0;
	while (done < n) {
		u32 poff = offset_in_page(off);
		size_t chunk = min_t(size_t, n - done, PAGE_SIZE - poff);
		size_t c;

		c = copy_page_from_iter(rec->buf.pages[off / PAGE_SIZE], poff,
					chunk, from);
		done += c;
		off += c;
		if (c != chunk) {
			*err = -EFAULT;
			break;
		}
	}
	rec->plen += done;
	ossuary_stat_add(sk, OSSUARY_MIB_TX_COPIED, done);
	return done;
}

/*
 * Take up to n bytes of lent pages (sendfile, splice: a bvec iterator
 * with MSG_SPLICE_PAGES) into the open record by reference.  Stops
 * early when the frag table is full; the caller then seals the record.
 */
static size_t ossuary_rec_lend(struct sock *sk, struct ossuary_tx_rec *rec,
			       struct iov_iter *from, size_t n, int *err)
{
	size_t done = 0;

	*err = 0;
	while (done < n) {
		struct ossuary_tx_frag *f = NULL;
		struct page *page, **pages = &page;
		ssize_t part;
		size_t off;

		if (rec->nfrags)
			f = &rec->frags[rec->nfrags - 1];
		if (rec->nfrags == OSSUARY_TX_FRAGS)
			break;
		part = iov_iter_extract_pages(from, &pages, n - done, 1, 0,
					      &off);
		if (part <= 0) {
			*err = part ? part : -EIO;
			break;
		}
		if (!sendpage_ok(page)) {
			/* a slab page cannot be held by reference: copy it */
			iov_iter_revert(from, part);
			part = ossuary_rec_fill(sk, rec, from, part, err);
			done += part;
			if (*err)
				break;
			continue;
		}
		if (f && f->page == page && f->off + f->len == off &&
		    f->pos + f->len == rec->plen) {
			f->len += part;
		} else {
			f = &rec->frags[rec->nfrags++];
			get_page(page);
			f->page = page;
			f->off = off;
			f->len = part;
			f->pos = rec->plen;
		}
		rec->plen += part;
		done += part;
		ossuary_stat_add(sk, OSSUARY_MIB_TX_ZEROCOPY, part);
	}
	return done;
}

int ossuary_sendmsg(struct sock *sk, struct msghdr *msg, size_t size)
{
	struct ossuary_ctx *ctx = ossuary_get_ctx(sk);
	int flags = msg->msg_flags;
	u8 type = OSSUARY_RECORD_DATA;
	size_t copied = 0;
	int err = 0;
	long timeo;

	lock_sock(sk);
	if (!ctx->tx_installed) {
		release_sock(sk);
		return ctx->sk_proto->sendmsg(sk, msg, size);
	}
	if (flags & ~OSSUARY_TX_FLAGS) {
		err = -EOPNOTSUPP;
		goto out;
	}
	if ((flags & MSG_MORE) && (flags & MSG_EOR)) {
		err = -EINVAL;
		goto out;
	}
	if (msg->msg_controllen) {
		err = ossuary_tx_cmsg(msg, &type);
		if (err)
			goto out;
	}
	/* RX failed: DISCONNECT(1) goes first, and TX is closed */
	ossuary_tx_settle(sk, ctx);
	if (ctx->tx_err) {
		err = -ctx->tx_err;
		goto out;
	}
	/* as TCP: the pending socket error, else EPIPE and SIGPIPE */
	if (ctx->tx_closed || sk->sk_err ||
	    (sk->sk_shutdown & SEND_SHUTDOWN)) {
		err = -EPIPE;
		goto out;
	}
	timeo = sock_sndtimeo(sk, flags & MSG_DONTWAIT);
	if (type != OSSUARY_RECORD_DATA) {
		err = ossuary_tx_control_msg(sk, ctx, msg, type, flags, &timeo);
		goto out;
	}

	while (msg_data_left(msg)) {
		struct ossuary_tx_rec *rec;
		size_t n;

		/* the lock was dropped while waiting: RX may have failed */
		if (ctx->tx_closed || ctx->tx_err || ctx->tx_fail_pending) {
			err = ctx->tx_err ? -ctx->tx_err : -EPIPE;
			break;
		}
		/* keep at most one sealed DATA record waiting for TCP */
		if (ctx->tx_queued) {
			err = ossuary_tx_push(sk, ctx);
			if (err == -EAGAIN)
				err = ossuary_tx_wait(sk, ctx, &timeo, true);
			if (err)
				break;
			continue;
		}
		if (!ctx->tx_open) {
			/*
			 * Start a record only when TCP has room, as TCP
			 * itself would: non-blocking callers get EAGAIN,
			 * blocking ones wait (SO_SNDTIMEO, signals).
			 */
			if (!sk_stream_memory_free(sk)) {
				err = ossuary_tx_wait(sk, ctx, &timeo, true);
				if (err)
					break;
				continue;
			}
			ctx->tx_open = ossuary_rec_new(sk, &err, false);
			if (!ctx->tx_open)
				goto no_memory;
		}
		rec = ctx->tx_open;
		n = min_t(size_t, msg_data_left(msg),
			  OSSUARY_MAX_PLAINTEXT - rec->plen);
		if ((flags & MSG_SPLICE_PAGES) &&
		    iov_iter_is_bvec(&msg->msg_iter))
			copied += ossuary_rec_lend(sk, rec, &msg->msg_iter, n,
						   &err);
		else
			copied += ossuary_rec_fill(sk, rec, &msg->msg_iter, n,
						   &err);
		if (err)
			goto no_memory;
		if (rec->plen == OSSUARY_MAX_PLAINTEXT ||
		    rec->nfrags == OSSUARY_TX_FRAGS ||
		    (!msg_data_left(msg) && !(flags & MSG_MORE))) {
			err = ossuary_tx_seal_open(sk, ctx);
			if (err)
				break;
		}
		continue;
no_memory:
		/*
		 * The socket may not have more memory now (-ENOBUFS from
		 * the charge, as tcp_sendmsg() under memory pressure): wait
		 * for it as for room.  No record at all: -ENOBUFS, as before.
		 */
		if (err != -ENOBUFS) {
			if (!ctx->tx_open)
				err = -ENOBUFS;
			break;
		}
		err = ossuary_tx_wait(sk, ctx, &timeo, true);
		if (err)
			break;
	}
	/*
	 * Bytes a send reports are sealed and pushed: without MSG_MORE the
	 * open record ends here even when the send stopped early (a fault,
	 * no memory, a signal), and so does an open record on a zero-length
	 * send.  If sealing it has no memory now, tx_work tries again.
	 */
	if (ctx->tx_open && !(flags & MSG_MORE) && (copied || !size) &&
	    !ctx->tx_closed && !ctx->tx_err && !ctx->tx_fail_pending) {
		int serr = ossuary_tx_seal_open(sk, ctx);

		if (serr == -ENOMEM) {
			WRITE_ONCE(ctx->tx_seal_due, true);
			ossuary_tx_schedule(ctx);
		}
		if (!err)
			err = serr;
	}
	/* what TCP has no room for now goes out on write_space (tx_work) */
	if (ctx->tx_queued) {
		int perr = ossuary_tx_push_wait(sk, ctx, &timeo, true);

		if (!err && perr != -EAGAIN)
			err = perr;
	}

out:
	release_sock(sk);
	if (copied)
		return copied;
	if (err == -EPIPE)
		err = sk_stream_error(sk, flags, err);
	return err;
}

/* The end of a sendfile()/splice(): the open record is complete. */
void ossuary_splice_eof(struct socket *sock)
{
	struct sock *sk = sock->sk;
	struct ossuary_ctx *ctx = ossuary_get_ctx(sk);

	lock_sock(sk);
	if (!ctx->tx_installed) {
		release_sock(sk);
		/* TCP pushes what MSG_MORE held back */
		if (ctx->sk_proto->splice_eof)
			ctx->sk_proto->splice_eof(sock);
		return;
	}
	if (!ctx->tx_closed && !ctx->tx_err && !ctx->tx_fail_pending &&
	    ctx->tx_open && !ossuary_tx_seal_open(sk, ctx))
		ossuary_tx_push(sk, ctx);
	release_sock(sk);
}

void ossuary_tx_init(struct ossuary_ctx *ctx)
{
	INIT_LIST_HEAD(&ctx->tx_queue);
	INIT_WORK(&ctx->tx_work, ossuary_tx_work);
}
