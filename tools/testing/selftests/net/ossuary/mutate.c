// SPDX-License-Identifier: GPL-2.0
/*
 * Stream-mutation fuzzer: valid record streams, sealed with known keys
 * (wire.c, libsodium), mutated at random (bit flips, insertions,
 * deletions, cuts, duplicated, dropped and swapped records, changed
 * lengths, types and versions) and written raw into an offloaded
 * socket's plain TCP peer. The property, for every case:
 *
 *  - nothing of a damaged record is ever delivered: the DATA read is
 *    exactly the plaintext of the records before the first changed byte
 *    (the records that are intact, at their place);
 *  - the read ends as the contract says (include/uapi/linux/ossuary.h):
 *    0 for an intact DISCONNECT(0), the reason byte then ECONNRESET for
 *    an intact DISCONNECT(r), EPIPE for a stream cut short, and one of
 *    EBADMSG, EPROTO, EPIPE once a byte before the end was changed; and
 *    the error is latched (the next read says it again);
 *  - no read stalls, and the kernel reports nothing (the VM runner).
 *
 * Every case has its own seed, printed with any failure; rerun one with
 * OSSUARY_MUTATE_CASE=<seed>. OSSUARY_MUTATE_ITERS (3000) cases, at most
 * OSSUARY_MUTATE_SECONDS (600), base seed OSSUARY_MUTATE_SEED (time),
 * on OSSUARY_MUTATE_THREADS (2) threads at once.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/uio.h>

#include "common.h"
#include "wire.h"

#include "kselftest_harness.h"
#include "stress_util.h"

#define MAX_RECS	32
#define MAX_STREAM	((MAX_RECS + 4) * (WIRE_MAX_REC + 64) + 4096)

enum term { TERM_CLEAN, TERM_REASON, TERM_NONE };

struct mcase {
	uint64_t seed;
	int family;
	bool use_splice;
	/* the original stream */
	uint8_t *orig;
	size_t orig_len;
	size_t nrec;
	size_t rec_off[MAX_RECS + 1], rec_end[MAX_RECS + 1];
	size_t pt_end[MAX_RECS + 1];	/* DATA plaintext up to and with record i */
	uint8_t *pt;			/* all DATA plaintext */
	size_t pt_len;
	enum term term;
	uint8_t reason;
	/* the mutated one */
	uint8_t *mut;
	size_t mut_len;
	char what[256];			/* the mutations, for the log */
};

struct mstats {
	unsigned long cases, intact, cut, damaged;
	unsigned long end_clean, end_reason, end_epipe, end_ebadmsg, end_eproto;
	unsigned long splice_cases;
	unsigned long long delivered;
};

static void mc_append(struct mcase *m, size_t at, const char *fmt, ...)
{
	va_list ap;
	size_t l = strlen(m->what);

	(void)at;
	if (l + 2 >= sizeof(m->what))
		return;
	if (l)
		m->what[l++] = ' ';
	va_start(ap, fmt);
	vsnprintf(m->what + l, sizeof(m->what) - l, fmt, ap);
	va_end(ap);
}

/* A valid stream: DATA and KEY_UPDATE records, then the terminal one */
static void mc_build(struct mcase *m, struct st_rng *r)
{
	struct wire_dir d;
	uint8_t body[WIRE_MAX_PT];
	size_t n = 1 + st_below(r, MAX_RECS - 2), off = 0;
	unsigned int t = st_below(r, 20);

	wire_dir_init(&d, oss_secret_b(), 0);
	m->pt_len = 0;
	m->nrec = 0;
	m->term = t < 15 ? TERM_CLEAN : t < 17 ? TERM_REASON : TERM_NONE;
	if (m->use_splice && m->term == TERM_REASON)
		m->term = TERM_CLEAN;	/* splice has no cmsg for the reason byte */
	for (size_t i = 0; i < n; i++) {
		unsigned int k = st_below(r, 100);
		size_t len;

		m->rec_off[m->nrec] = off;
		if (k < 88) {
			unsigned int sz = st_below(r, 10);

			len = 1 + st_below(r, sz < 6 ? 64 : sz < 9 ? 2048 : WIRE_MAX_PT);
			st_stream(m->seed, m->pt_len, m->pt + m->pt_len, len);
			off += wire_seal(&d, OSSUARY_RECORD_DATA, m->pt + m->pt_len, len,
					 m->orig + off);
			m->pt_len += len;
		} else {
			uint8_t req = k >= 96;	/* sometimes ask the kernel to update too */

			off += wire_seal(&d, OSSUARY_RECORD_KEY_UPDATE, &req, 1, m->orig + off);
			wire_dir_next(&d);
		}
		m->rec_end[m->nrec] = off;
		m->pt_end[m->nrec] = m->pt_len;
		m->nrec++;
	}
	if (m->term != TERM_NONE) {
		m->reason = m->term == TERM_CLEAN ? 0 : 1 + st_below(r, 3);
		m->rec_off[m->nrec] = off;
		off += wire_seal(&d, OSSUARY_RECORD_DISCONNECT, &m->reason, 1, m->orig + off);
		m->rec_end[m->nrec] = off;
		m->pt_end[m->nrec] = m->pt_len;
		m->nrec++;
	}
	(void)body;
	m->orig_len = off;
}

static void mc_insert(struct mcase *m, size_t pos, const uint8_t *p, size_t n)
{
	if (m->mut_len + n > MAX_STREAM)
		return;
	memmove(m->mut + pos + n, m->mut + pos, m->mut_len - pos);
	memcpy(m->mut + pos, p, n);
	m->mut_len += n;
}

static void mc_delete(struct mcase *m, size_t pos, size_t n)
{
	if (pos + n > m->mut_len)
		n = m->mut_len - pos;
	memmove(m->mut + pos, m->mut + pos + n, m->mut_len - pos - n);
	m->mut_len -= n;
}

/* 1 to 3 mutations; record-level ones only first (record table is the original's) */
static void mc_mutate(struct mcase *m, struct st_rng *r)
{
	unsigned int nmut = 1 + st_below(r, 3) / 2 + (st_below(r, 8) == 0);

	memcpy(m->mut, m->orig, m->orig_len);
	m->mut_len = m->orig_len;
	m->what[0] = 0;
	/*
	 * One case in 32 is a control: the stream as sealed, or with bytes
	 * after its end only. It checks the oracle, and that every kind of
	 * end (0, a DISCONNECT reason then ECONNRESET, EPIPE) is seen.
	 */
	if (st_below(r, 32) == 0) {
		if (st_below(r, 2)) {
			uint8_t junk[16];

			for (size_t q = 0; q < sizeof(junk); q++)
				junk[q] = st_next(r);
			mc_insert(m, m->mut_len, junk, 1 + st_below(r, sizeof(junk)));
			mc_append(m, m->orig_len, "append");
		} else {
			mc_append(m, 0, "none");
		}
		return;
	}
	for (unsigned int k = 0; k < nmut; k++) {
		unsigned int op = st_below(r, k == 0 ? 11 : 5);
		size_t len = m->mut_len;
		size_t i = st_below(r, m->nrec), j;
		uint8_t tmp[64];

		switch (op) {
		case 0: {	/* bit flip */
			size_t pos;
			unsigned int bit = st_below(r, 8);

			if (!len)
				break;
			/* half of them in a header, where the framing is */
			pos = st_below(r, 2) ? m->rec_off[i] + st_below(r, 4) : st_below(r, len);
			if (pos >= len)
				pos = st_below(r, len);
			m->mut[pos] ^= 1 << bit;
			mc_append(m, pos, "flip@%zu.%u", pos, bit);
			break;
		}
		case 1: {	/* insert random bytes, or a plausible header */
			size_t pos = st_below(r, len + 1), n = 1 + st_below(r, 24);

			for (size_t q = 0; q < n; q++)
				tmp[q] = st_next(r);
			if (n >= 4 && st_below(r, 2)) {
				tmp[0] = 0x02;
				tmp[1] = st_below(r, 2) ? OSSUARY_RECORD_DATA : tmp[1];
			}
			mc_insert(m, pos, tmp, n);
			mc_append(m, pos, "insert@%zu+%zu", pos, n);
			break;
		}
		case 2: {	/* delete a range */
			size_t pos, n;

			if (!len)
				break;
			pos = st_below(r, len);
			n = 1 + st_below(r, st_below(r, 2) ? 4 : 64);
			mc_delete(m, pos, n);
			mc_append(m, pos, "delete@%zu-%zu", pos, n);
			break;
		}
		case 3: {	/* cut short */
			size_t pos = st_below(r, len ? len : 1);

			if (st_below(r, 2))
				pos = m->rec_off[i] + st_below(r, 5);	/* near a boundary */
			if (pos < len) {
				m->mut_len = pos;
				mc_append(m, pos, "cut@%zu", pos);
			}
			break;
		}
		case 4: {	/* change a length field */
			size_t h = m->rec_off[i];
			uint16_t l;

			if (h + 4 > len)
				break;
			l = (uint16_t)(m->mut[h + 2] << 8 | m->mut[h + 3]);
			switch (st_below(r, 4)) {
			case 0: l += 1 + st_below(r, 16); break;
			case 1: l -= 1 + st_below(r, 16); break;
			case 2: l = st_below(r, 65536); break;
			default: l = st_below(r, 2) ? 16 : 17; break;
			}
			if (m->mut[h + 2] == (l >> 8) && m->mut[h + 3] == (l & 0xff))
				l ^= 1;
			m->mut[h + 2] = l >> 8;
			m->mut[h + 3] = (uint8_t)l;
			mc_append(m, h, "len#%zu=%u", i, l);
			break;
		}
		case 5: {	/* change a type */
			static const uint8_t types[] = { 0x01, 0x02, 0x03, 0x10, 0x11, 0x20, 0x21, 0x00, 0xff };
			size_t h = m->rec_off[i];
			uint8_t t = types[st_below(r, sizeof(types))];

			if (h + 4 > len)
				break;
			if (t == m->mut[h + 1])
				t ^= 0x40;
			m->mut[h + 1] = t;
			mc_append(m, h, "type#%zu=%02x", i, t);
			break;
		}
		case 6: {	/* change the version */
			size_t h = m->rec_off[i];
			uint8_t v = st_below(r, 256);

			if (h + 4 > len)
				break;
			if (v == 0x02)
				v = 0x01;
			m->mut[h] = v;
			mc_append(m, h, "version#%zu=%02x", i, v);
			break;
		}
		case 7: {	/* duplicate a record (replayed), at its end or later */
			size_t rl = m->rec_end[i] - m->rec_off[i];
			size_t at = m->rec_end[st_below(r, m->nrec - i) + i];
			uint8_t *copy = malloc(rl);

			if (!copy)
				break;
			memcpy(copy, m->orig + m->rec_off[i], rl);
			mc_insert(m, at, copy, rl);
			free(copy);
			mc_append(m, at, "dup#%zu@%zu", i, at);
			break;
		}
		case 8: {	/* drop a record */
			mc_delete(m, m->rec_off[i], m->rec_end[i] - m->rec_off[i]);
			mc_append(m, m->rec_off[i], "drop#%zu", i);
			break;
		}
		case 9: {	/* swap two records (reordered) */
			size_t a, b, la, lb, mid;
			uint8_t *buf;

			j = st_below(r, m->nrec);
			if (i == j)
				j = (i + 1) % m->nrec;
			if (i == j)
				break;
			a = i < j ? i : j;
			b = i < j ? j : i;
			la = m->rec_end[a] - m->rec_off[a];
			lb = m->rec_end[b] - m->rec_off[b];
			mid = m->rec_off[b] - m->rec_end[a];
			buf = malloc(la + lb + mid);
			if (!buf)
				break;
			memcpy(buf, m->orig + m->rec_off[b], lb);
			memcpy(buf + lb, m->orig + m->rec_end[a], mid);
			memcpy(buf + lb + mid, m->orig + m->rec_off[a], la);
			memcpy(m->mut + m->rec_off[a], buf, la + lb + mid);
			free(buf);
			mc_append(m, m->rec_off[a], "swap#%zu#%zu", a, b);
			break;
		}
		default: {	/* a record sealed under a wrong key or seq, in place */
			struct wire_dir d;
			uint8_t rec[WIRE_HDR + 64 + WIRE_TAG], p[64];
			size_t n = 1 + st_below(r, 64), rl;
			uint8_t s[32];

			/*
			 * a wrong secret, or the right one at a sequence number
			 * no record of the stream has (never a valid record)
			 */
			oss_secret(s, (uint8_t)st_next(r));
			if (!memcmp(s, oss_secret_b(), 32))
				s[0] ^= 1;
			if (st_below(r, 2))
				wire_dir_init(&d, s, st_below(r, 4));
			else
				wire_dir_init(&d, oss_secret_b(), 1000 + st_below(r, 1000));
			st_stream(m->seed ^ 77, 0, p, n);
			rl = wire_seal(&d, OSSUARY_RECORD_DATA, p, n, rec);
			mc_insert(m, m->rec_off[i], rec, rl);
			mc_append(m, m->rec_off[i], "forged@%zu", m->rec_off[i]);
			break;
		}
		}
	}
}

struct mwriter {
	pthread_t thr;
	int fd;
	const uint8_t *p;
	size_t len;
	int err;
};

static void *mwriter_fn(void *arg)
{
	struct mwriter *w = arg;
	size_t done = 0;

	while (done < w->len) {
		ssize_t n = send(w->fd, w->p + done, w->len - done, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			w->err = errno;	/* the kernel end gave up on the stream: fine */
			return NULL;
		}
		done += n;
	}
	shutdown(w->fd, SHUT_WR);
	return NULL;
}

/*
 * One read: DATA bytes into buf (returns the count), 0 at the end,
 * -errno on error; *type gets the record type of a recvmsg read.
 */
static ssize_t mc_read(int fd, int pfd[2], bool use_splice, uint8_t *buf, size_t max,
		       uint8_t *type, struct st_rng *r)
{
	size_t want = 1 + st_below(r, st_below(r, 4) ? max : 64);

	*type = OSSUARY_RECORD_DATA;
	if (use_splice) {
		ssize_t n = splice(fd, NULL, pfd[1], NULL, want, 0), got = 0;

		if (n <= 0)
			return n < 0 ? -errno : 0;
		while (got < n) {
			ssize_t k = read(pfd[0], buf + got, n - got);

			if (k <= 0)
				return -EIO;
			got += k;
		}
		return n;
	} else {
		char cbuf[CMSG_SPACE(1)];
		struct iovec iov = { .iov_base = buf, .iov_len = want };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *c;
		ssize_t n = recvmsg(fd, &mh, 0);

		if (n < 0)
			return -errno;
		for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == SOL_OSSUARY && c->cmsg_type == OSSUARY_GET_RECORD_TYPE)
				*type = *CMSG_DATA(c);
		return n;
	}
}

/* A worker's own listeners (IPv4, IPv6): a case connects and accepts */
struct mlisten {
	int fd[2];
	struct sockaddr_storage addr[2];
	socklen_t len[2];
};

static int ml_open(struct mlisten *l)
{
	for (int f = 0; f < 2; f++) {
		struct sockaddr_storage *a = &l->addr[f];
		int one = 1;

		l->fd[f] = socket(f ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
		if (l->fd[f] < 0)
			return -errno;
		setsockopt(l->fd[f], SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		memset(a, 0, sizeof(*a));
		if (!f) {
			((struct sockaddr_in *)a)->sin_family = AF_INET;
			((struct sockaddr_in *)a)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			l->len[f] = sizeof(struct sockaddr_in);
		} else {
			((struct sockaddr_in6 *)a)->sin6_family = AF_INET6;
			((struct sockaddr_in6 *)a)->sin6_addr = in6addr_loopback;
			l->len[f] = sizeof(struct sockaddr_in6);
		}
		if (bind(l->fd[f], (void *)a, l->len[f]) || listen(l->fd[f], 16) ||
		    getsockname(l->fd[f], (void *)a, &l->len[f]))
			return -errno;
	}
	return 0;
}

static void ml_close(struct mlisten *l)
{
	close(l->fd[0]);
	close(l->fd[1]);
}

/* as oss_raw_pair(): kfd offloaded (TX A, RX B), pfd plain */
static int ml_pair(struct mlisten *l, int family, int *kfd, int *pfd, const char **step)
{
	int f = family == AF_INET6, ret;

	*step = "connect";
	*pfd = -1;
	*kfd = socket(family, SOCK_STREAM, 0);
	if (*kfd < 0)
		return -errno;
	if (connect(*kfd, (void *)&l->addr[f], l->len[f])) {
		ret = -errno;
		close(*kfd);
		return ret;
	}
	*step = "accept";
	*pfd = accept(l->fd[f], NULL, NULL);
	if (*pfd < 0) {
		ret = -errno;
		close(*kfd);
		return ret;
	}
	return oss_offload_pair(kfd, pfd, step);
}

/* Run one case; returns 0, or -1 with the reason printed (seed included) */
static int mc_run(struct mlisten *l, struct mcase *m, struct mstats *stats, uint8_t *got)
{
	struct st_rng r = { m->seed };
	struct mwriter w = {};
	int kfd, pfd, ret, pipefd[2] = { -1, -1 }, fail = 0;
	const char *step;
	size_t d, intact = 0, exp_len, got_len = 0;
	int exp_end;		/* 0, EPIPE, ECONNRESET, or -1: one of the damaged set */
	int end = -1000, again = -1000;
	bool reason_read = false;
	uint8_t reason_byte = 0;
	char why[512] = "";

	m->family = st_below(&r, 2) ? AF_INET6 : AF_INET;
	m->use_splice = st_below(&r, 4) == 0;
	mc_build(m, &r);
	mc_mutate(m, &r);

	/* the first changed byte decides what is intact */
	for (d = 0; d < m->mut_len && d < m->orig_len && m->mut[d] == m->orig[d]; d++)
		;
	while (intact < m->nrec && m->rec_end[intact] <= d)
		intact++;
	exp_len = intact ? m->pt_end[intact - 1] : 0;
	if (m->term != TERM_NONE && d >= m->rec_end[m->nrec - 1]) {
		exp_end = m->term == TERM_CLEAN ? 0 : ECONNRESET;
		stats->intact++;
	} else if (d == m->mut_len) {
		exp_end = EPIPE;	/* a prefix of the stream: truncated */
		stats->cut++;
	} else {
		exp_end = -1;
		stats->damaged++;
	}

	ret = ml_pair(l, m->family, &kfd, &pfd, &step);
	if (ret) {
		printf("# seed %#llx: %s: %s\n", (unsigned long long)m->seed, step, strerror(-ret));
		return -1;
	}
	oss_set_timeouts(kfd, 10);
	oss_set_timeouts(pfd, 10);
	if (m->use_splice && pipe(pipefd)) {
		oss_close_pair(&kfd, &pfd);
		return -1;
	}
	w.fd = pfd;
	w.p = m->mut;
	w.len = m->mut_len;
	if (pthread_create(&w.thr, NULL, mwriter_fn, &w)) {
		oss_close_pair(&kfd, &pfd);
		return -1;
	}
	for (;;) {
		uint8_t type;
		ssize_t n = mc_read(kfd, pipefd, m->use_splice, got + got_len,
				    MAX_RECS * WIRE_MAX_PT - got_len, &type, &r);

		if (n == -EINTR)
			continue;
		if (n <= 0) {
			end = n < 0 ? (int)-n : 0;
			break;
		}
		if (type == OSSUARY_RECORD_DISCONNECT) {
			if (n != 1 || reason_read) {
				snprintf(why, sizeof(why), "DISCONNECT read of %zd bytes%s", n,
					 reason_read ? " (a second one)" : "");
				fail = 1;
				break;
			}
			reason_read = true;
			reason_byte = got[got_len];
			continue;
		}
		if (type != OSSUARY_RECORD_DATA || reason_read) {
			snprintf(why, sizeof(why), "a read of %zd bytes of type %#x%s", n, type,
				 reason_read ? " after the DISCONNECT" : "");
			fail = 1;
			break;
		}
		got_len += n;
		if (got_len > exp_len)
			break;	/* judged below */
	}
	if (!fail && end != -1000 && end != EAGAIN) {
		uint8_t type;
		ssize_t n = mc_read(kfd, pipefd, m->use_splice, got + got_len, 16, &type, &r);

		again = n < 0 ? (int)-n : n == 0 ? 0 : 1000 + (int)n;
	}
	/* the kernel end may have stopped reading: let the writer go */
	close(kfd);
	kfd = -1;
	pthread_join(w.thr, NULL);
	oss_close_pair(&kfd, &pfd);
	if (pipefd[0] >= 0) {
		close(pipefd[0]);
		close(pipefd[1]);
	}

	stats->cases++;
	stats->splice_cases += m->use_splice;
	stats->delivered += got_len;
	if (!fail) {
		if (got_len > exp_len || memcmp(got, m->pt, got_len)) {
			size_t i = 0;

			while (i < got_len && i < m->pt_len && got[i] == m->pt[i])
				i++;
			snprintf(why, sizeof(why),
				 "DELIVERED %zu bytes, only %zu are of intact records (first wrong byte at %zu)",
				 got_len, exp_len, i);
			fail = 1;
		} else if (got_len < exp_len) {
			snprintf(why, sizeof(why), "delivered %zu bytes of the %zu of intact records, then %s",
				 got_len, exp_len, end == -1000 ? "-" : st_errname(end));
			fail = 1;
		} else if (end == EAGAIN) {
			snprintf(why, sizeof(why), "the read stalled (10 s) after %zu bytes", got_len);
			fail = 1;
		} else if (exp_end == -1 ?
			   !(end == EBADMSG || end == EPROTO || end == EPIPE) :
			   end != exp_end) {
			snprintf(why, sizeof(why), "the read ended with %s, expected %s", st_errname(end),
				 exp_end == -1 ? "EBADMSG, EPROTO or EPIPE" : st_errname(exp_end));
			fail = 1;
		} else if (exp_end == ECONNRESET && (!reason_read || reason_byte != m->reason)) {
			snprintf(why, sizeof(why), "DISCONNECT(%u): reason read %d, byte %u",
				 m->reason, reason_read, reason_byte);
			fail = 1;
		} else if (exp_end != ECONNRESET && reason_read) {
			snprintf(why, sizeof(why), "a DISCONNECT reason (%u) was read", reason_byte);
			fail = 1;
		} else if (end != 0 && again != end) {
			snprintf(why, sizeof(why), "error %s not latched: the next read gave %s",
				 st_errname(end), again >= 1000 ? "data" : st_errname(again));
			fail = 1;
		}
	}
	switch (end) {
	case 0: stats->end_clean++; break;
	case ECONNRESET: stats->end_reason++; break;
	case EPIPE: stats->end_epipe++; break;
	case EBADMSG: stats->end_ebadmsg++; break;
	case EPROTO: stats->end_eproto++; break;
	}
	if (fail) {
		printf("# FAIL seed %#llx (rerun: OSSUARY_MUTATE_CASE=%#llx): %s\n"
		       "#   %s, %s, %zu records, %zu bytes, terminal %s; mutations: %s\n"
		       "#   first changed byte %zu, %zu intact records\n",
		       (unsigned long long)m->seed, (unsigned long long)m->seed, why,
		       m->family == AF_INET ? "IPv4" : "IPv6", m->use_splice ? "splice" : "recvmsg",
		       m->nrec, m->orig_len,
		       m->term == TERM_CLEAN ? "DISCONNECT(0)" : m->term == TERM_REASON ?
		       "DISCONNECT(r)" : "none", m->what, d, intact);
		return -1;
	}
	return 0;
}

struct mworker {
	pthread_t thr;
	struct mcase m;
	uint8_t *got;
	struct mlisten l;
	struct mstats stats;
	int failed;
};

static atomic_llong mc_next;
static long long mc_iters, mc_stop_ms;
static uint64_t mc_base;
static atomic_int mc_failed;

static void *mworker_fn(void *arg)
{
	struct mworker *w = arg;

	for (;;) {
		long long i = atomic_fetch_add(&mc_next, 1);

		if (i >= mc_iters || oss_now_ms() > mc_stop_ms || atomic_load(&mc_failed) >= 20)
			break;
		w->m.seed = st_mix(mc_base + i);
		if (mc_run(&w->l, &w->m, &w->stats, w->got)) {
			w->failed++;
			atomic_fetch_add(&mc_failed, 1);
		}
	}
	return NULL;
}

static int mworker_init(struct mworker *w)
{
	memset(w, 0, sizeof(*w));
	w->m.orig = malloc(MAX_STREAM);
	w->m.mut = malloc(MAX_STREAM);
	w->m.pt = malloc(MAX_RECS * WIRE_MAX_PT);
	w->got = malloc(MAX_RECS * WIRE_MAX_PT + 64);
	if (!w->m.orig || !w->m.mut || !w->m.pt || !w->got)
		return -ENOMEM;
	return ml_open(&w->l);
}

static void mworker_free(struct mworker *w)
{
	ml_close(&w->l);
	free(w->m.orig);
	free(w->m.mut);
	free(w->m.pt);
	free(w->got);
}

FIXTURE(mut)
{
	int unused;
};

FIXTURE_SETUP(mut)
{
	ASSERT_EQ(0, wire_init());
	if (oss_ulp_listed() != 1)
		SKIP(return, "ossuary ULP not registered (module not loaded)");
	signal(SIGPIPE, SIG_IGN);
}

FIXTURE_TEARDOWN(mut)
{
}

TEST_F_TIMEOUT(mut, mutated_streams, 7200)
{
	long long secs = st_env("OSSUARY_MUTATE_SECONDS", 600);
	long long one = st_env("OSSUARY_MUTATE_CASE", -1);
	int nthreads = st_env("OSSUARY_MUTATE_THREADS", 2);
	long long t0 = oss_now_ms();
	struct mworker *w = calloc(nthreads, sizeof(*w));
	struct mstats st = {};

	ASSERT_NE(NULL, w);
	ASSERT_GE(nthreads, 1);
	mc_iters = st_env("OSSUARY_MUTATE_ITERS", 3000);
	mc_base = st_env("OSSUARY_MUTATE_SEED", (long long)time(NULL));
	mc_stop_ms = t0 + secs * 1000;
	if (one != -1) {
		ASSERT_EQ(0, mworker_init(&w[0]));
		w[0].m.seed = (uint64_t)one;
		EXPECT_EQ(0, mc_run(&w[0].l, &w[0].m, &w[0].stats, w[0].got));
		mworker_free(&w[0]);
		free(w);
		return;
	}
	TH_LOG("base seed %#llx (OSSUARY_MUTATE_SEED), up to %lld cases in %lld s on %d threads",
	       (unsigned long long)mc_base, mc_iters, secs, nthreads);
	for (int k = 0; k < nthreads; k++) {
		ASSERT_EQ(0, mworker_init(&w[k]));
		ASSERT_EQ(0, pthread_create(&w[k].thr, NULL, mworker_fn, &w[k]));
	}
	for (int k = 0; k < nthreads; k++) {
		struct mstats *x = &w[k].stats;

		pthread_join(w[k].thr, NULL);
		st.cases += x->cases;
		st.intact += x->intact;
		st.cut += x->cut;
		st.damaged += x->damaged;
		st.end_clean += x->end_clean;
		st.end_reason += x->end_reason;
		st.end_epipe += x->end_epipe;
		st.end_ebadmsg += x->end_ebadmsg;
		st.end_eproto += x->end_eproto;
		st.splice_cases += x->splice_cases;
		st.delivered += x->delivered;
		mworker_free(&w[k]);
	}
	if (oss_now_ms() > mc_stop_ms)
		TH_LOG("time limit (%lld s) reached", secs);
	TH_LOG("%lu cases in %.1f s (%lu splice): %lu intact, %lu cut, %lu damaged; ends: %lu clean, %lu DISCONNECT(r), %lu EPIPE, %lu EBADMSG, %lu EPROTO; %llu bytes delivered",
	       st.cases, (oss_now_ms() - t0) / 1000.0, st.splice_cases, st.intact,
	       st.cut, st.damaged, st.end_clean, st.end_reason, st.end_epipe,
	       st.end_ebadmsg, st.end_eproto, st.delivered);
	free(w);
	EXPECT_EQ(0, atomic_load(&mc_failed));
	EXPECT_GE(st.cases, mc_iters < 100 ? mc_iters : 100);
}

TEST_HARNESS_MAIN
