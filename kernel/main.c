// SPDX-License-Identifier: GPL-2.0
/*
 * Ossuary: a TCP upper-layer protocol that seals and opens
 * ChaCha20-Poly1305 records (PROTOCOL.md, version 2) in the kernel.
 *
 * Attaching swaps the socket's struct proto and proto_ops for copies
 * of TCP's with our hooks in them, one pair per address family, built
 * from whatever TCP proto the socket had (as kTLS does, so a later
 * change of tcpv6_prot is picked up).  The hooks hand everything to
 * TCP until a direction is installed.
 */

#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/mutex.h>
#include <linux/uaccess.h>
#include <linux/sockptr.h>
#include <linux/sockios.h>
#include <asm/ioctls.h>
#include <net/sock.h>
#include <net/tcp.h>
#include <net/inet_common.h>
#include <linux/skmsg.h>

#include "ossuary.h"

enum {
	OSSUARY_IPV4,
	OSSUARY_IPV6,
	OSSUARY_NUM_IP,
};

static struct proto ossuary_prots[OSSUARY_NUM_IP];
/*
 * Our copies of TCP's ops, written at run time: they cannot be const
 * (the declaration is split so that checkpatch's const check, which
 * cannot know that, stays quiet).
 */
static struct
proto_ops ossuary_proto_ops[OSSUARY_NUM_IP];
static const struct proto *saved_tcp_prot[OSSUARY_NUM_IP];
static DEFINE_MUTEX(ossuary_prot_mutex);

static int ossuary_check_info(const struct ossuary_crypto_info *ci)
{
	if (ci->version != OSSUARY_VERSION_2 ||
	    ci->cipher != OSSUARY_CIPHER_CHACHA20_POLY1305 ||
	    ci->reserved || ci->seq > OSSUARY_SEQ_LAST)
		return -EINVAL;
	return 0;
}

static int ossuary_set_dir(struct sock *sk, int optname, sockptr_t optval,
			   unsigned int optlen)
{
	struct ossuary_ctx *ctx = ossuary_get_ctx(sk);
	struct ossuary_crypto_info ci;
	int err;

	if (sockptr_is_null(optval) || optlen != sizeof(ci))
		return -EINVAL;
	/* a fault can leave part of the secret copied: wipe that too */
	if (copy_from_sockptr(&ci, optval, sizeof(ci))) {
		err = -EFAULT;
		goto out;
	}
	err = ossuary_check_info(&ci);
	if (err)
		goto out;

	lock_sock(sk);
	if (optname == OSSUARY_TX) {
		err = ctx->tx_installed ? -EBUSY :
		      ossuary_tx_install(sk, ctx, &ci);
	} else {
		err = ctx->rx_installed ? -EBUSY :
		      ossuary_rx_install(sk, ctx, &ci);
	}
	release_sock(sk);
out:
	memzero_explicit(&ci, sizeof(ci));
	return err;
}

/* An O_NONBLOCK file: setsockopt() does not wait for room either */
static bool ossuary_sock_nonblock(struct sock *sk)
{
	struct socket *sock = sk->sk_socket;

	return sock && sock->file && (sock->file->f_flags & O_NONBLOCK);
}

static int ossuary_setsockopt(struct sock *sk, int level, int optname,
			      sockptr_t optval, unsigned int optlen)
{
	struct ossuary_ctx *ctx = ossuary_get_ctx(sk);
	int err, val;
	long timeo;
	u64 v64;

	if (level != SOL_OSSUARY)
		return ctx->sk_proto->setsockopt(sk, level, optname, optval,
						 optlen);

	switch (optname) {
	case OSSUARY_TX:
	case OSSUARY_RX:
		return ossuary_set_dir(sk, optname, optval, optlen);
	case OSSUARY_KEY_UPDATE:
		if (sockptr_is_null(optval) || optlen != sizeof(int))
			return -EINVAL;
		if (copy_from_sockptr(&val, optval, sizeof(val)))
			return -EFAULT;
		if (val != 0 && val != 1)
			return -EINVAL;
		lock_sock(sk);
		/* a failed RX answers with DISCONNECT(1) and closes TX */
		ossuary_tx_settle(sk, ctx);
		/* a peer that reads nothing: wait as a writer would */
		timeo = sock_sndtimeo(sk, ossuary_sock_nonblock(sk));
		err = ossuary_tx_key_update_wait(sk, ctx, val, &timeo);
		if (!err) {
			err = ossuary_tx_flush(sk, ctx);
			/* sealed and queued: it goes out on write_space */
			if (err == -EAGAIN)
				err = 0;
		}
		release_sock(sk);
		return err;
	case OSSUARY_REKEY_RECORDS:
		if (sockptr_is_null(optval) || optlen != sizeof(u64))
			return -EINVAL;
		if (copy_from_sockptr(&v64, optval, sizeof(v64)))
			return -EFAULT;
		lock_sock(sk);
		ctx->tx_rekey_records = v64;
		release_sock(sk);
		return 0;
	default:
		return -ENOPROTOOPT;
	}
}

static void ossuary_fill_state(struct ossuary_ctx *ctx, bool tx,
			       struct ossuary_dir_state *st)
{
	struct ossuary_keys *k = tx ? &ctx->tx : &ctx->rx;
	bool installed = tx ? ctx->tx_installed : ctx->rx_installed;
	int err = tx ? ctx->tx_err : ctx->rx_err;
	bool closed = tx ? ctx->tx_closed : ctx->rx_eof;

	memset(st, 0, sizeof(*st));
	if (!installed)
		return;
	st->version = OSSUARY_VERSION_2;
	st->cipher = OSSUARY_CIPHER_CHACHA20_POLY1305;
	st->flags = OSSUARY_STATE_INSTALLED;
	if (err) {
		st->flags |= OSSUARY_STATE_ERROR;
		st->error = err;
	}
	/* A DISCONNECT with an error reason also closes the direction. */
	if (closed || (!tx && ctx->rx_reason))
		st->flags |= OSSUARY_STATE_CLOSED;
	st->seq = k->seq;
	st->generation = k->generation;
}

static int ossuary_getsockopt(struct sock *sk, int level, int optname,
			      char __user *optval, int __user *optlen)
{
	struct ossuary_ctx *ctx = ossuary_get_ctx(sk);
	struct ossuary_dir_state st;
	u64 v64;
	int len;

	/*
	 * TCP's zero-copy receive would hand the reader sealed bytes and
	 * move TCP's read position under a record being framed.
	 */
	if (level == SOL_TCP && optname == TCP_ZEROCOPY_RECEIVE &&
	    READ_ONCE(ctx->rx_installed))
		return -EOPNOTSUPP;
	if (level != SOL_OSSUARY)
		return ctx->sk_proto->getsockopt(sk, level, optname, optval,
						 optlen);
	if (get_user(len, optlen))
		return -EFAULT;

	switch (optname) {
	case OSSUARY_TX:
	case OSSUARY_RX:
		if (len < (int)sizeof(st))
			return -EINVAL;
		lock_sock(sk);
		ossuary_fill_state(ctx, optname == OSSUARY_TX, &st);
		release_sock(sk);
		len = sizeof(st);
		if (copy_to_user(optval, &st, len))
			return -EFAULT;
		break;
	case OSSUARY_REKEY_RECORDS:
		if (len < (int)sizeof(v64))
			return -EINVAL;
		lock_sock(sk);
		v64 = ctx->tx_rekey_records;
		release_sock(sk);
		len = sizeof(v64);
		if (copy_to_user(optval, &v64, len))
			return -EFAULT;
		break;
	default:
		return -ENOPROTOOPT;
	}
	if (put_user(len, optlen))
		return -EFAULT;
	return 0;
}

/*
 * connect(AF_UNSPEC) would reset the TCP state under the record layer
 * (and its sequence numbers); refuse it as kTLS does.
 */
static int ossuary_disconnect(struct sock *sk, int flags)
{
	return -EOPNOTSUPP;
}

/*
 * SIOCINQ (FIONREAD): what a read can return now, i.e. the plaintext of
 * the record at hand, not TCP's count of sealed bytes.
 */
static int ossuary_ioctl(struct sock *sk, int cmd, OSSUARY_IOCTL_ARG karg)
{
	struct ossuary_ctx *ctx = ossuary_get_ctx(sk);
	int answ;

	if (cmd != SIOCINQ || !READ_ONCE(ctx->rx_installed))
		return ctx->sk_proto->ioctl(sk, cmd, karg);
	lock_sock(sk);
	answ = ossuary_rx_inq(ctx);
	release_sock(sk);
	return ossuary_ioctl_answer(karg, answ);
}

#ifdef OSSUARY_COMPAT_SENDPAGE
/*
 * 6.1: sendfile() and splice() to the socket come here a page at a
 * time.  The page goes to ossuary_sendmsg() as a one-page bvec with
 * MSG_SPLICE_PAGES, so it is sealed from where it is, as on 6.12.
 * MSG_SENDPAGE_NOTLAST (more of this splice follows) is MSG_MORE; a
 * sendfile() that ends short is sealed by splice_eof.
 */
static int ossuary_sendpage(struct sock *sk, struct page *page, int offset,
			    size_t size, int flags)
{
	struct ossuary_ctx *ctx = ossuary_get_ctx(sk);
	struct msghdr msg = {};
	struct bio_vec bvec;

	if (!READ_ONCE(ctx->tx_installed))
		return ctx->sk_proto->sendpage(sk, page, offset, size, flags);
	if (flags & MSG_SENDPAGE_NOTLAST)
		flags = (flags & ~MSG_SENDPAGE_NOTLAST) | MSG_MORE;
	msg.msg_flags = flags | MSG_SPLICE_PAGES;
	bvec_set_page(&bvec, page, size, offset);
	iov_iter_bvec(&msg.msg_iter, ITER_SOURCE, &bvec, 1, size);
	return ossuary_sendmsg(sk, &msg, size);
}
#endif

static void ossuary_ctx_free_rcu(struct rcu_head *head)
{
	kfree(container_of(head, struct ossuary_ctx, rcu));
}

static void ossuary_close(struct sock *sk, long timeout)
{
	struct inet_connection_sock *icsk = inet_csk(sk);
	struct ossuary_ctx *ctx = ossuary_get_ctx(sk);
	struct proto *base = ctx->sk_proto;

	/* Keep tx_work from being queued again, then wait both works out:
	 * they take the socket lock, which we are about to take.
	 */
	set_bit(OSSUARY_CLOSING, &ctx->tx_flags);
	set_bit(OSSUARY_TX_SCHEDULED, &ctx->tx_flags);
	cancel_work_sync(&ctx->tx_work);
	cancel_work_sync(&ctx->rx_work);

	lock_sock(sk);
	if (ctx->tx_installed)
		ossuary_tx_flush_on_close(sk, ctx, timeout);

	write_lock_bh(&sk->sk_callback_lock);
	rcu_assign_pointer(icsk->icsk_ulp_data, NULL);
	WRITE_ONCE(sk->sk_prot, base);
	if (ctx->rx_installed)
		WRITE_ONCE(sk->sk_data_ready, ctx->saved_data_ready);
	if (ctx->tx_installed)
		WRITE_ONCE(sk->sk_write_space, ctx->saved_write_space);
	write_unlock_bh(&sk->sk_callback_lock);

	if (ctx->tx_installed)
		ossuary_tx_release(sk, ctx);
	if (ctx->rx_installed)
		ossuary_rx_release(sk, ctx);
	release_sock(sk);

	/* write_space and data_ready may have queued work before the
	 * hooks were restored; with OSSUARY_CLOSING set it does nothing,
	 * but it must be gone before the context is.
	 */
	cancel_work_sync(&ctx->tx_work);
	cancel_work_sync(&ctx->rx_work);
	base->close(sk, timeout);
	call_rcu(&ctx->rcu, ossuary_ctx_free_rcu);
}

/*
 * poll: TCP's answer, except that readability means "a whole record
 * (or an error or end of stream) is there", not "some bytes are".
 */
static __poll_t ossuary_poll(struct file *file, struct socket *sock,
			     struct poll_table_struct *wait)
{
	struct sock *sk = sock->sk;
	struct ossuary_ctx *ctx = ossuary_get_ctx(sk);
	__poll_t mask = tcp_poll(file, sock, wait);

	if (!ctx || !READ_ONCE(ctx->rx_installed))
		return mask;
	mask &= ~(EPOLLIN | EPOLLRDNORM);
	if (ossuary_rx_readable(sk, ctx))
		mask |= EPOLLIN | EPOLLRDNORM;
	return mask;
}

/*
 * TCP's half of shutdown(SHUT_WR), as inet_shutdown() does it, once the
 * DISCONNECT(0) is in TCP: its FIN goes after it (socket lock owned).
 */
void ossuary_shutdown_send(struct sock *sk, struct ossuary_ctx *ctx)
{
	sock_owned_by_me(sk);
	ctx->tx_shut_pending = false;
	WRITE_ONCE(sk->sk_shutdown, sk->sk_shutdown | SEND_SHUTDOWN);
	if (ctx->sk_proto->shutdown)
		ctx->sk_proto->shutdown(sk, SEND_SHUTDOWN);
	sk->sk_state_change(sk);
}

/*
 * shutdown(SHUT_WR) must put a sealed DISCONNECT(0) on the wire before
 * TCP's FIN, so it runs before inet_shutdown() marks SEND_SHUTDOWN
 * (after which TCP accepts no more bytes).  It never waits, as TCP's
 * shutdown does not: when TCP has no room for the record now, it stays
 * queued (TX is closed all the same), tx_work pushes it on write_space
 * and then sends TCP's FIN (ossuary_shutdown_send()).  A blocking
 * socket gets 0 then; an O_NONBLOCK one gets EAGAIN until a retry finds
 * the record in TCP, so that an event loop knows when a close() of its
 * socket (which never waits either) no longer cuts the stream short.
 */
static int ossuary_shutdown(struct socket *sock, int how)
{
	struct sock *sk = sock->sk;
	struct ossuary_ctx *ctx = ossuary_get_ctx(sk);
	int err = 0;

	if (!ctx || how < SHUT_RD || how > SHUT_RDWR)
		return inet_shutdown(sock, how);
	/* a local SHUT_RD reads as end of file, as on TCP (rx.c) */
	if ((how + 1) & RCV_SHUTDOWN)
		WRITE_ONCE(ctx->rx_shut, true);
	if (((how + 1) & SEND_SHUTDOWN) && ctx->tx_installed) {
		lock_sock(sk);
		ossuary_tx_settle(sk, ctx);
		if ((1 << sk->sk_state) & (TCPF_ESTABLISHED | TCPF_CLOSE_WAIT)) {
			long timeo = 0;

			/* DISCONNECT(1) instead once RX failed (tx.c) */
			err = ossuary_tx_disconnect(sk, ctx,
						    OSSUARY_DISCONNECT_CLEAN,
						    &timeo);
			/* sealed and queued: the FIN waits for it */
			ctx->tx_shut_pending = err == -EAGAIN;
		}
		release_sock(sk);
		/* no DISCONNECT(0) sealed: no FIN either, the caller retries */
		if (err == -ENOMEM)
			return err;
		/* an O_NONBLOCK caller learns it is not out yet (retry: 0) */
		if (err == -EAGAIN && ossuary_sock_nonblock(sk))
			return err;
		if (err == -EAGAIN)
			return how == SHUT_RDWR ? inet_shutdown(sock, SHUT_RD) : 0;
	}
	return inet_shutdown(sock, how);
}

static void ossuary_build_protos(int ip, const struct proto *base,
				 const struct proto_ops *base_ops)
{
	struct proto *p = &ossuary_prots[ip];

	*p = *base;
	p->setsockopt = ossuary_setsockopt;
	p->getsockopt = ossuary_getsockopt;
	p->disconnect = ossuary_disconnect;
	p->ioctl = ossuary_ioctl;
	p->close = ossuary_close;
	p->sendmsg = ossuary_sendmsg;
	p->recvmsg = ossuary_recvmsg;
	/* sendfile()'s end: seal the open record, then push as TCP does */
	p->splice_eof = ossuary_splice_eof;
#ifdef OSSUARY_COMPAT_SENDPAGE
	/* 6.1: sendfile() and splice() lend pages through sendpage */
	p->sendpage = ossuary_sendpage;
#endif

	ossuary_proto_ops[ip] = *base_ops;
	ossuary_proto_ops[ip].poll = ossuary_poll;
	ossuary_proto_ops[ip].shutdown = ossuary_shutdown;
	/* splice() from the socket lends opened record pages to the pipe */
	ossuary_proto_ops[ip].splice_read = ossuary_splice_read;
	/* These read or map TCP's payload directly: no record layer. */
	ossuary_proto_ops[ip].read_sock = NULL;
	ossuary_proto_ops[ip].read_skb = NULL;
	ossuary_proto_ops[ip].mmap = NULL;
	ossuary_proto_ops[ip].set_peek_off = NULL;
}

static void ossuary_build_proto(struct sock *sk)
{
	int ip = sk->sk_family == AF_INET6 ? OSSUARY_IPV6 : OSSUARY_IPV4;
	struct proto *prot = READ_ONCE(sk->sk_prot);

	/* pairs with the release below: the tables are complete once seen */
	if (likely(prot == smp_load_acquire(&saved_tcp_prot[ip])))
		return;
	mutex_lock(&ossuary_prot_mutex);
	if (prot != saved_tcp_prot[ip]) {
		ossuary_build_protos(ip, prot, sk->sk_socket->ops);
		/* publish only after the tables are written */
		smp_store_release(&saved_tcp_prot[ip], prot);
	}
	mutex_unlock(&ossuary_prot_mutex);
}

static bool ossuary_has_psock(struct sock *sk)
{
	bool ret;

	rcu_read_lock();
	ret = sk_psock(sk);
	rcu_read_unlock();
	return ret;
}

/* Called by tcp_set_ulp() with the socket locked. */
/*
 * What an idle offloaded socket costs is mostly its context: keep it in
 * kmalloc-512 (a field in the wrong place pushes it to kmalloc-1k).
 * Lock debugging makes work_struct larger, so only plain 64-bit builds
 * are held to it.
 */
static_assert(!IS_ENABLED(CONFIG_64BIT) || IS_ENABLED(CONFIG_LOCKDEP) ||
	      sizeof(struct ossuary_ctx) <= 512);

static int ossuary_init(struct sock *sk)
{
	struct inet_connection_sock *icsk = inet_csk(sk);
	int ip = sk->sk_family == AF_INET6 ? OSSUARY_IPV6 : OSSUARY_IPV4;
	struct ossuary_ctx *ctx;

	/*
	 * Only a connected socket: a listener would share one context
	 * among its children, and a socket that is not connected yet has
	 * no peer to agree keys with.  CLOSE_WAIT counts as connected: a
	 * peer that replied and closed right after the handshake has left
	 * its last records (and its FIN) in our receive queue, and they
	 * are opened like any bytes that arrive before OSSUARY_RX.
	 */
	if (!((1 << sk->sk_state) & (TCPF_ESTABLISHED | TCPF_CLOSE_WAIT)) ||
	    !sk->sk_socket)
		return -ENOTCONN;
	/*
	 * A sockmap's psock has swapped sk_prot and the data callbacks
	 * already: ours would be built on top of BPF's, and either layer
	 * would read the other's bytes.
	 */
	if (ossuary_has_psock(sk))
		return -EBUSY;

	ossuary_build_proto(sk);

	ctx = kzalloc(sizeof(*ctx), GFP_KERNEL);
	if (!ctx)
		return -ENOMEM;
	ctx->sk = sk;
	ctx->sk_proto = READ_ONCE(sk->sk_prot);
	ossuary_tx_init(ctx);
	ossuary_rx_init(ctx);

	write_lock_bh(&sk->sk_callback_lock);
	rcu_assign_pointer(icsk->icsk_ulp_data, ctx);
	WRITE_ONCE(sk->sk_prot, &ossuary_prots[ip]);
	WRITE_ONCE(sk->sk_socket->ops, &ossuary_proto_ops[ip]);
	write_unlock_bh(&sk->sk_callback_lock);
	return 0;
}

static struct tcp_ulp_ops ossuary_ulp_ops __read_mostly = {
	.name	= "ossuary",
	.owner	= THIS_MODULE,
	.init	= ossuary_init,
};

static int __init ossuary_module_init(void)
{
	int err;

	err = ossuary_stats_init();
	if (err)
		return err;
	err = tcp_register_ulp(&ossuary_ulp_ops);
	if (err)
		ossuary_stats_exit();
	return err;
}

static void __exit ossuary_module_exit(void)
{
	tcp_unregister_ulp(&ossuary_ulp_ops);
	ossuary_stats_exit();
	/* contexts are freed with call_rcu() */
	rcu_barrier();
}

module_init(ossuary_module_init);
module_exit(ossuary_module_exit);

MODULE_DESCRIPTION("Ossuary: ChaCha20-Poly1305 record layer for TCP");
MODULE_LICENSE("GPL");
MODULE_ALIAS_TCP_ULP("ossuary");
