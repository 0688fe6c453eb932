// SPDX-License-Identifier: GPL-2.0
/*
 * Ossuary RX: frame records out of the TCP receive queue, open them
 * and deliver the plaintext.
 *
 * Framing is done by a tcp_read_sock() actor that gathers one record
 * into ctx->rxb, a set of order-0 pages.  It runs from sk_data_ready
 * (softirq, bh socket lock) as data arrives, and from recvmsg (owner
 * of the socket lock) when the reader has consumed the previous record,
 * so both contexts are serialised by the socket lock.  The header is
 * checked as soon as its four bytes are in, before any body byte is
 * taken; a bad one latches EPROTO.  While a whole record sits in rxb
 * nothing more is taken from TCP, so TCP's receive window is the
 * backpressure, as for a plain TCP reader.
 *
 * Opening happens in process context only (recvmsg), in place, under
 * the socket lock.  poll() reports EPOLLIN only when a whole record,
 * an error or the end of the stream is there.
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
#include <linux/uio.h>
#include <linux/sched/signal.h>
#include <linux/wait.h>
#include <net/sock.h>
#include <net/tcp.h>

#include "ossuary.h"

/* MSG_CMSG_CLOEXEC only matters for SCM_RIGHTS, which TCP never sends */
#define OSSUARY_RX_FLAGS (MSG_PEEK | MSG_WAITALL | MSG_DONTWAIT | \
			  MSG_NOSIGNAL | MSG_CMSG_COMPAT | MSG_CMSG_CLOEXEC)

static void ossuary_rx_next(struct ossuary_ctx *ctx)
{
	ctx->rx_have = 0;
	ctx->rx_need = OSSUARY_HEADER_LEN;
	ctx->rx_ready = false;
	ctx->rx_open = false;
	ctx->rx_off = 0;
	ctx->rx_plen = 0;
	WRITE_ONCE(ctx->rx_avail, false);
}

/*
 * Latch a receive error.  A record that fails to open and a protocol
 * error both end the connection with DISCONNECT(1) where it can still
 * be sent, and so does a RESET (the kernel cannot re-handshake); TX is
 * driven under the socket lock from tx_work or the caller's recvmsg.
 */
static void ossuary_rx_error(struct sock *sk, struct ossuary_ctx *ctx,
			     int err, int mib, bool notify)
{
	if (!ctx->rx_err)
		WRITE_ONCE(ctx->rx_err, err);
	if (mib >= 0)
		ossuary_stat_add(sk, mib, 1);
	WRITE_ONCE(ctx->rx_avail, false);
	if (notify)
		ossuary_tx_schedule_fail(sk, ctx);
}

static int ossuary_rx_actor(read_descriptor_t *desc, struct sk_buff *skb,
			    unsigned int offset, size_t len)
{
	struct ossuary_ctx *ctx = desc->arg.data;
	u32 n, done = 0;

	if (!desc->count || ctx->rx_err || ctx->rx_ready)
		return 0;
	if (ctx->rx_eof) {
		/*
		 * No record may follow DISCONNECT(0).  The reader still gets
		 * its end of file first (see recvmsg), then this error.
		 */
		ossuary_rx_error(ctx->sk, ctx, EPROTO, OSSUARY_MIB_PROTO_ERR,
				 true);
		desc->count = 0;
		return 0;
	}
	n = min_t(size_t, len, ctx->rx_need - ctx->rx_have);
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

	if (ctx->rx_need == OSSUARY_HEADER_LEN &&
	    ctx->rx_have == OSSUARY_HEADER_LEN) {
		u8 hdr[OSSUARY_HEADER_LEN];
		u32 blen;
		u8 type;

		ossuary_buf_read(&ctx->rxb, 0, hdr, sizeof(hdr));
		if (ossuary_hdr_check(hdr, &type, &blen)) {
			ossuary_rx_error(ctx->sk, ctx, EPROTO,
					 OSSUARY_MIB_PROTO_ERR, true);
			desc->count = 0;
			return done;
		}
		ctx->rx_type = type;
		ctx->rx_need += blen;
	}
	if (ctx->rx_have == ctx->rx_need) {
		ctx->rx_ready = true;
		WRITE_ONCE(ctx->rx_avail, true);
		desc->count = 0;
	}
	return done;
}

/* Socket lock held (as owner or bh): take the next record from TCP. */
static void ossuary_rx_pull(struct sock *sk, struct ossuary_ctx *ctx)
{
	read_descriptor_t desc = {
		.arg.data = ctx,
		.count = 1,
	};

	if (ctx->rx_err || ctx->rx_ready || ctx->rx_open)
		return;
	tcp_read_sock(sk, &desc, ossuary_rx_actor);
}

bool ossuary_rx_readable(struct sock *sk, struct ossuary_ctx *ctx)
{
	return READ_ONCE(ctx->rx_avail) || READ_ONCE(ctx->rx_err) ||
	       READ_ONCE(ctx->rx_eof) || READ_ONCE(sk->sk_err) ||
	       (READ_ONCE(sk->sk_shutdown) & RCV_SHUTDOWN);
}

/* sk_data_ready: called by TCP with the socket lock held in some form. */
void ossuary_data_ready(struct sock *sk)
{
	struct ossuary_ctx *ctx = ossuary_get_ctx(sk);

	ossuary_rx_pull(sk, ctx);
	/* wake readers and pollers only for something they can read */
	if (ossuary_rx_readable(sk, ctx))
		ctx->saved_data_ready(sk);
}

/* Open the record in rxb and act on it.  Process context, socket lock. */
static int ossuary_rx_open(struct sock *sk, struct ossuary_ctx *ctx)
{
	struct scatterlist sg[OSSUARY_REC_SG];
	u32 blen = ctx->rx_need - OSSUARY_HEADER_LEN;
	u32 plen = blen - OSSUARY_TAG_LEN;
	int err = -EBADMSG;
	u8 val = 0;

	ctx->rx_ready = false;
	/* seq 2^64 - 1 is never sealed: refuse it as a failed open */
	if (ctx->rx.seq <= OSSUARY_SEQ_LAST) {
		ossuary_buf_sg(&ctx->rxb, ctx->rx_need, sg);
		err = ossuary_crypt(&ctx->rx, false, sg, sg, blen,
				    ctx->rx.seq);
	}
	if (err) {
		ossuary_rx_error(sk, ctx, EBADMSG, OSSUARY_MIB_DECRYPT_ERR,
				 true);
		return -EBADMSG;
	}
	ctx->rx.seq++;
	ossuary_stat_add(sk, OSSUARY_MIB_OPENED, 1);

	if (ctx->rx_type == OSSUARY_RECORD_DATA) {
		if (!plen) {
			/* valid, and delivers nothing */
			ossuary_rx_next(ctx);
			return 0;
		}
		ctx->rx_open = true;
		ctx->rx_off = 0;
		ctx->rx_plen = plen;
		return 0;
	}

	ossuary_buf_read(&ctx->rxb, OSSUARY_HEADER_LEN, &val, 1);
	ossuary_rx_next(ctx);
	switch (ctx->rx_type) {
	case OSSUARY_RECORD_KEY_UPDATE:
		if (val > 1) {
			ossuary_rx_error(sk, ctx, EPROTO,
					 OSSUARY_MIB_PROTO_ERR, true);
			return -EPROTO;
		}
		/* every later record from the peer uses the next secret */
		err = ossuary_keys_ratchet(&ctx->rx);
		if (err) {
			ossuary_rx_error(sk, ctx, -err, -1, true);
			return err;
		}
		ossuary_stat_add(sk, OSSUARY_MIB_KEY_UPDATE_RX, 1);
		/* KEY_UPDATE(1): ours must be the very next record we seal */
		if (val == 1 && ctx->tx_installed && !ctx->tx_closed &&
		    !ctx->tx_err && !ossuary_tx_key_update(sk, ctx, 0))
			ossuary_tx_schedule(ctx);
		return 0;
	case OSSUARY_RECORD_DISCONNECT:
		if (!val) {
			WRITE_ONCE(ctx->rx_eof, true);
			return 0;
		}
		/* an error close: the reader sees a reset */
		ctx->rx_reason = val;
		ctx->rx_reason_pending = true;
		ossuary_rx_error(sk, ctx, ECONNRESET, -1, false);
		return 0;
	case OSSUARY_RECORD_RESET:
		if (val) {
			ossuary_rx_error(sk, ctx, EPROTO,
					 OSSUARY_MIB_PROTO_ERR, true);
			return -EPROTO;
		}
		/* no re-handshake on this stream: DISCONNECT(1), reset */
		ossuary_rx_error(sk, ctx, ECONNRESET, -1, true);
		return 0;
	}
	/* ossuary_hdr_check() let nothing else through */
	WARN_ON_ONCE(1);
	return -EPROTO;
}

static int ossuary_rx_copy(struct ossuary_ctx *ctx, struct msghdr *msg,
			   u32 n)
{
	u32 off = OSSUARY_HEADER_LEN + ctx->rx_off;

	while (n) {
		u32 poff = offset_in_page(off);
		u32 chunk = min_t(u32, n, PAGE_SIZE - poff);

		if (copy_page_to_iter(ctx->rxb.pages[off / PAGE_SIZE], poff,
				      chunk, &msg->msg_iter) != chunk)
			return -EFAULT;
		off += chunk;
		n -= chunk;
	}
	return 0;
}

static void ossuary_rx_wait(struct sock *sk, struct ossuary_ctx *ctx,
			    long *timeo)
{
	DEFINE_WAIT_FUNC(wait, woken_wake_function);

	add_wait_queue(sk_sleep(sk), &wait);
	sk_set_bit(SOCKWQ_ASYNC_WAITDATA, sk);
	sk_wait_event(sk, timeo, ossuary_rx_readable(sk, ctx), &wait);
	sk_clear_bit(SOCKWQ_ASYNC_WAITDATA, sk);
	remove_wait_queue(sk_sleep(sk), &wait);
}

int ossuary_recvmsg(struct sock *sk, struct msghdr *msg, size_t len,
		    int flags, int *addr_len)
{
	struct ossuary_ctx *ctx = ossuary_get_ctx(sk);
	bool peek = flags & MSG_PEEK;
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
		if (ctx->rx_open) {
			u32 n = min_t(size_t, len - copied,
				      ctx->rx_plen - ctx->rx_off);

			if (!typed && msg->msg_controllen) {
				u8 type = OSSUARY_RECORD_DATA;

				put_cmsg(msg, SOL_OSSUARY,
					 OSSUARY_GET_RECORD_TYPE,
					 sizeof(type), &type);
			}
			typed = true;
			err = ossuary_rx_copy(ctx, msg, n);
			if (err)
				break;
			copied += n;
			/* a peek sees the current record only */
			if (peek)
				break;
			ctx->rx_off += n;
			if (ctx->rx_off == ctx->rx_plen) {
				ossuary_rx_next(ctx);
				ossuary_rx_pull(sk, ctx);
			}
			continue;
		}
		if (ctx->rx_ready) {
			err = ossuary_rx_open(sk, ctx);
			if (err)
				break;
			ossuary_rx_pull(sk, ctx);
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
		/* DISCONNECT(0): one end of file before anything after it */
		if (ctx->rx_eof && !ctx->rx_eof_read) {
			if (!copied && !peek)
				ctx->rx_eof_read = true;
			break;
		}
		if (ctx->rx_err) {
			err = -ctx->rx_err;
			break;
		}
		if (ctx->rx_eof)
			break;
		ossuary_rx_pull(sk, ctx);
		if (ctx->rx_ready || ctx->rx_err)
			continue;

		if (copied >= target)
			break;
		if (copied) {
			if (sk->sk_err || (sk->sk_shutdown & RCV_SHUTDOWN) ||
			    !timeo || signal_pending(current))
				break;
		} else {
			if (sk->sk_err) {
				err = sock_error(sk);
				break;
			}
			if (sk->sk_shutdown & RCV_SHUTDOWN) {
				/* FIN, and no DISCONNECT(0) before it */
				ossuary_rx_error(sk, ctx, EPIPE,
						 OSSUARY_MIB_TRUNCATED, false);
				err = -EPIPE;
				break;
			}
			if (!timeo) {
				err = -EAGAIN;
				break;
			}
			if (signal_pending(current)) {
				err = sock_intr_errno(timeo);
				break;
			}
		}
		ossuary_rx_wait(sk, ctx, &timeo);
	}
out:
	release_sock(sk);
	return copied ? copied : err;
}

/* Socket locked, ULP attached, ci validated. */
int ossuary_rx_install(struct sock *sk, struct ossuary_ctx *ctx,
		       const struct ossuary_crypto_info *ci)
{
	int err;

	err = ossuary_buf_alloc(&ctx->rxb, OSSUARY_REC_MAX, GFP_KERNEL);
	if (err)
		goto err_buf;
	err = ossuary_keys_init(&ctx->rx, ci->secret, ci->seq);
	if (err)
		goto err_buf;
	ossuary_rx_next(ctx);

	write_lock_bh(&sk->sk_callback_lock);
	ctx->saved_data_ready = sk->sk_data_ready;
	WRITE_ONCE(sk->sk_data_ready, ossuary_data_ready);
	write_unlock_bh(&sk->sk_callback_lock);
	WRITE_ONCE(ctx->rx_installed, true);
	ossuary_stat_add(sk, OSSUARY_MIB_CURR_RX, 1);
	ossuary_stat_add(sk, OSSUARY_MIB_TOTAL_RX, 1);

	/* bytes that arrived before the key are records too */
	ossuary_rx_pull(sk, ctx);
	if (ossuary_rx_readable(sk, ctx))
		ctx->saved_data_ready(sk);
	return 0;

err_buf:
	ossuary_buf_free(&ctx->rxb);
	return err;
}

/* Socket locked, hooks already restored. */
void ossuary_rx_release(struct sock *sk, struct ossuary_ctx *ctx)
{
	unsigned int i;

	ossuary_keys_free(&ctx->rx);
	/* the pages may hold opened plaintext: wipe them before reuse */
	for (i = 0; i < OSSUARY_REC_PAGES; i++)
		if (ctx->rxb.pages[i])
			memzero_explicit(page_address(ctx->rxb.pages[i]),
					 PAGE_SIZE);
	ossuary_buf_free(&ctx->rxb);
	ossuary_stat_add(sk, OSSUARY_MIB_CURR_RX, -1);
}
