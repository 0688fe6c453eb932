/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Ossuary: the kernel series the module builds against, and what the
 * older one lacks.  Everything is a test on the kernel's own version,
 * so one source tree builds for each.
 *
 * Supported and tested: 6.1 from 6.1.72 (the first 6.1 with splice_eof,
 * Debian 12's kernel) and 6.12.  6.5 to 6.11 have every interface 6.12
 * has and build only on request (-DOSSUARY_UNTESTED_KERNEL); anything
 * newer than 6.12 builds with a warning.
 *
 * What 6.1 lacks, and what stands in for it here:
 *  - MSG_SPLICE_PAGES in TCP (6.5): tcp_sendmsg_locked() below hands
 *    sealed records to tcp_sendpage_locked(), a page at a time, still
 *    without a copy;
 *  - sendfile() and splice() reach a socket through proto->sendpage
 *    rather than sendmsg(MSG_SPLICE_PAGES): ossuary_sendpage() hands
 *    the page to ossuary_sendmsg() as a one-page bvec, so it is sealed
 *    from where it is, as on 6.12;
 *  - iov_iter_extract_pages() (6.3) and extract_iter_to_sg() (6.5):
 *    the versions below pin user pages as upstream does.  A reader's
 *    buffer that is not user memory (kvec, bvec) is not opened into
 *    directly on 6.1: such a record counts as OssuaryRxBufferedRecords;
 *  - proto->ioctl with a kernel int (6.5): 6.1 passes the user pointer;
 *  - copy_splice_read() (6.5): generic_file_splice_read() does the same
 *    through the socket's read_iter;
 *  - <linux/unaligned.h> (6.12): <asm/unaligned.h>;
 *  - skb_frags_readable() (6.12, device memory TCP): before it, every
 *    frag is memory the CPU can read;
 *  - ICSK_ACK_NOMEM (tested here on 6.12): ossuary_tcp_rcv_nomem() is
 *    false before it;
 *  - net.ipv4.tcp_shrink_window (6.5): ossuary_tcp_may_shrink().
 */
#ifndef _OSSUARY_COMPAT_H
#define _OSSUARY_COMPAT_H

#include <linux/version.h>

/* Whether the kernel built against is version a.b.c or later. */
#define OSSUARY_KERNEL_SINCE(a, b, c) \
	(KERNEL_VERSION(a, b, c) <= LINUX_VERSION_CODE)

#if !OSSUARY_KERNEL_SINCE(6, 1, 72)
#error "Ossuary supports Linux 6.1 (6.1.72 or later) and 6.12; this kernel is older"
#elif OSSUARY_KERNEL_SINCE(6, 2, 0) && !OSSUARY_KERNEL_SINCE(6, 5, 0)
#error "Ossuary supports Linux 6.1 (6.1.72 or later) and 6.12; 6.2 to 6.4 lack splice_eof"
#elif OSSUARY_KERNEL_SINCE(6, 5, 0) && !OSSUARY_KERNEL_SINCE(6, 12, 0) && \
	!defined(OSSUARY_UNTESTED_KERNEL)
#error "Ossuary supports Linux 6.1 and 6.12; to try this one: KCFLAGS=-DOSSUARY_UNTESTED_KERNEL"
#elif OSSUARY_KERNEL_SINCE(6, 13, 0)
#warning "Ossuary is tested on Linux 6.1 and 6.12 only; this kernel is newer"
#endif

#include <linux/types.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/uio.h>
#include <linux/uaccess.h>
#include <linux/scatterlist.h>
#include <net/sock.h>
#include <net/tcp.h>

#if OSSUARY_KERNEL_SINCE(6, 12, 0)
#include <linux/unaligned.h>
#else
#include <asm/unaligned.h>

static inline bool skb_frags_readable(const struct sk_buff *skb)
{
	return true;
}
#endif

/*
 * TCP just had no memory for an arriving segment (6.12 marks the ACK it
 * owes for it; the data_ready it calls then comes before the ACK).
 * 6.1 does not say; the receive memory test stands in for it there.
 */
#if OSSUARY_KERNEL_SINCE(6, 12, 0)
static inline bool ossuary_tcp_rcv_nomem(const struct sock *sk)
{
	return READ_ONCE(inet_csk(sk)->icsk_ack.pending) & ICSK_ACK_NOMEM;
}
#else
static inline bool ossuary_tcp_rcv_nomem(const struct sock *sk)
{
	return false;
}
#endif

/*
 * net.ipv4.tcp_shrink_window (6.5; backported to some 6.1.y, not all):
 * TCP may pull its window's right edge back.  Before 6.5 whether the
 * sysctl exists is unknown, so it is taken as on.
 */
#if OSSUARY_KERNEL_SINCE(6, 5, 0)
static inline bool ossuary_tcp_may_shrink(const struct sock *sk)
{
	return READ_ONCE(sock_net(sk)->ipv4.sysctl_tcp_shrink_window);
}
#else
static inline bool ossuary_tcp_may_shrink(const struct sock *sk)
{
	return true;
}
#endif

#if OSSUARY_KERNEL_SINCE(6, 5, 0)

/* proto->ioctl's argument, and how SIOCINQ's answer is returned in it */
#define OSSUARY_IOCTL_ARG	int *

static inline int ossuary_ioctl_answer(int *karg, int answ)
{
	*karg = answ;
	return 0;
}

#else /* 6.1 */

#define OSSUARY_COMPAT_SENDPAGE	1

#define OSSUARY_IOCTL_ARG	unsigned long

static inline int ossuary_ioctl_answer(unsigned long arg, int answ)
{
	return put_user(answ, (int __user *)arg);
}

static inline ssize_t copy_splice_read(struct file *in, loff_t *ppos,
				       struct pipe_inode_info *pipe,
				       size_t len, unsigned int flags)
{
	return generic_file_splice_read(in, ppos, pipe, len, flags);
}

/*
 * iov_iter_extract_pages() for a bvec iterator, the only kind Ossuary
 * extracts from on the send side: as upstream, no reference is left on
 * the pages, which the iterator's owner keeps alive.  The caller
 * supplies the page array.
 */
static inline ssize_t iov_iter_extract_pages(struct iov_iter *i,
					     struct page ***pages,
					     size_t maxsize,
					     unsigned int maxpages,
					     unsigned int extraction_flags,
					     size_t *offset0)
{
	unsigned int n, k;
	ssize_t ret;

	if (WARN_ON_ONCE(!iov_iter_is_bvec(i) || !*pages))
		return -EFAULT;
	ret = iov_iter_get_pages2(i, *pages, maxsize, maxpages, offset0);
	if (ret <= 0)
		return ret;
	n = DIV_ROUND_UP(*offset0 + ret, PAGE_SIZE);
	for (k = 0; k < n; k++)
		put_page((*pages)[k]);
	return ret;
}

static inline bool iov_iter_extract_will_pin(const struct iov_iter *i)
{
	return user_backed_iter(i);
}

/* The user address and length of what is left of i's current segment. */
static inline unsigned long ossuary_iter_user_seg(const struct iov_iter *i,
						  size_t *len)
{
	if (iter_is_ubuf(i)) {
		*len = i->count;
		return (unsigned long)i->ubuf + i->iov_offset;
	}
	*len = min(i->count, i->iov->iov_len - i->iov_offset);
	return (unsigned long)i->iov->iov_base + i->iov_offset;
}

/*
 * extract_iter_to_sg() for user memory (UBUF, IOVEC): each page is
 * pinned, as upstream, and released with unpin_user_page().  Other
 * iterators extract nothing, which makes the caller copy instead.
 */
static inline ssize_t extract_iter_to_sg(struct iov_iter *iter,
					 size_t maxsize,
					 struct sg_table *sgtable,
					 unsigned int sg_max,
					 unsigned int extraction_flags)
{
	unsigned int gup_flags = 0;
	ssize_t ret = 0;

	if (!user_backed_iter(iter))
		return 0;
	if (iov_iter_rw(iter) != WRITE)
		gup_flags |= FOLL_WRITE;
	if (iter->nofault)
		gup_flags |= FOLL_NOFAULT;
	maxsize = min(maxsize, iov_iter_count(iter));
	while (maxsize && sg_max) {
		struct page *page;
		unsigned long addr;
		size_t len, off;
		int res;

		addr = ossuary_iter_user_seg(iter, &len);
		if (!len) {
			/* an empty iovec: step over it */
			iov_iter_advance(iter, 0);
			continue;
		}
		off = offset_in_page(addr);
		len = min_t(size_t, min(len, maxsize), PAGE_SIZE - off);
		res = pin_user_pages_fast(addr - off, 1, gup_flags, &page);
		if (res != 1) {
			while (sgtable->nents > sgtable->orig_nents)
				unpin_user_page(sg_page(&sgtable->sgl[--sgtable->nents]));
			return res < 0 ? res : -EFAULT;
		}
		sg_set_page(&sgtable->sgl[sgtable->nents++], page, len, off);
		sg_max--;
		iov_iter_advance(iter, len);
		maxsize -= len;
		ret += len;
	}
	return ret;
}

/*
 * 6.1's tcp_sendmsg_locked() copies what MSG_SPLICE_PAGES asks it to
 * take by reference.  This one gives a bvec iterator with that flag to
 * tcp_sendpage_locked() a page at a time, which takes it by reference
 * (unless the route cannot gather, where TCP copies, as on 6.12); the
 * rest goes to TCP as it is.  Only the last page may push.  A page that
 * fails after others went reports those, and the error (with its
 * SIGPIPE) comes with the next call, as from tcp_sendmsg_locked().
 */
static inline int ossuary_tcp_sendmsg_locked(struct sock *sk,
					     struct msghdr *msg, size_t size)
{
	int flags = msg->msg_flags & ~MSG_SPLICE_PAGES;
	size_t sent = 0;

	if (!(msg->msg_flags & MSG_SPLICE_PAGES) ||
	    !iov_iter_is_bvec(&msg->msg_iter))
		return tcp_sendmsg_locked(sk, msg, size);
	while (sent < size) {
		struct page *page, **pages = &page;
		int f = flags, ret;
		size_t off;
		ssize_t n;

		n = iov_iter_extract_pages(&msg->msg_iter, &pages, size - sent,
					   1, 0, &off);
		if (n <= 0)
			return sent ? sent : (n ? n : -EIO);
		if (sent + n < size)
			f |= MSG_SENDPAGE_NOTLAST | MSG_MORE;
		if (sent)
			f |= MSG_NOSIGNAL;
		ret = tcp_sendpage_locked(sk, page, off, n, f);
		if (ret <= 0)
			return sent ? sent : ret;
		sent += ret;
		if (ret < n) {
			iov_iter_revert(&msg->msg_iter, n - ret);
			break;
		}
	}
	return sent;
}

#define tcp_sendmsg_locked	ossuary_tcp_sendmsg_locked

#endif /* 6.1 */

#endif /* _OSSUARY_COMPAT_H */
