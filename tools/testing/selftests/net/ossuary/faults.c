// SPDX-License-Identifier: GPL-2.0
/*
 * Fault injection across the module's entry points: setsockopt (attach,
 * install, key update), sendmsg, sendfile, splice into the socket,
 * recvmsg and splice out of it. /proc/thread-self/fail-nth fails the Nth
 * allocation (failslab, fail_page_alloc) or user copy (fail_usercopy) of
 * the calling thread, for N = 1, 2, ... until the call gets through
 * without reaching the Nth; a second test fails at random (probability,
 * task-filter and make-it-fail) while streams run.
 *
 * Every injected failure must give a clean error (or a short count, or a
 * retry that works), never a hang, never a lost, changed or duplicated
 * byte: the receiver's bytes are checked with SHA-256 against what the
 * sender's calls accepted, and a stream its writer ended cleanly must
 * end with 0 at the reader (never a false EPIPE). A direction that
 * latched an error must say so in getsockopt and in every later call.
 *
 * Needs CONFIG_FAULT_INJECTION (fail-nth), CONFIG_FAILSLAB,
 * CONFIG_FAIL_PAGE_ALLOC, CONFIG_FAULT_INJECTION_USERCOPY and
 * CONFIG_FAULT_INJECTION_DEBUG_FS (the kcsan and faults VM kernels);
 * skips ("optional:") without fail-nth. OSSUARY_FAULTS_MAX_NTH (40) is
 * the largest N tried per call, OSSUARY_FAULTS_SECONDS (20) the length
 * of the random run.
 */
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/uio.h>

#include "common.h"

#include "kselftest_harness.h"
#include "stress_util.h"

#define DBG	"/sys/kernel/debug"

/* ---- debugfs knobs, restored afterwards ---- */

struct knob {
	const char *path;
	const char *value;
	char saved[64];
	bool changed;
};

static struct knob knobs[] = {
	{ DBG "/failslab/ignore-gfp-wait", "N" },
	{ DBG "/failslab/verbose", "0" },
	{ DBG "/fail_page_alloc/ignore-gfp-wait", "N" },
	{ DBG "/fail_page_alloc/min-order", "0" },
	{ DBG "/fail_page_alloc/verbose", "0" },
	{ DBG "/fail_usercopy/verbose", "0" },
};

static int knob_rw(const char *path, char *in, size_t inlen, const char *out)
{
	int fd = open(path, out ? O_WRONLY : O_RDONLY), ret = 0;

	if (fd < 0)
		return -errno;
	if (out) {
		if (write(fd, out, strlen(out)) < 0)
			ret = -errno;
	} else {
		ssize_t n = read(fd, in, inlen - 1);

		if (n < 0)
			ret = -errno;
		else
			in[n] = 0;
		if (n > 0 && in[n - 1] == '\n')
			in[n - 1] = 0;
	}
	close(fd);
	return ret;
}

static void knobs_set(void)
{
	for (size_t i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++) {
		struct knob *k = &knobs[i];

		if (knob_rw(k->path, k->saved, sizeof(k->saved), NULL))
			continue;
		k->changed = !knob_rw(k->path, NULL, 0, k->value);
	}
}

static void knobs_restore(void)
{
	for (size_t i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++)
		if (knobs[i].changed)
			knob_rw(knobs[i].path, NULL, 0, knobs[i].saved);
}

/* ---- fail-nth of this thread ---- */

static int nth_set(unsigned int n)
{
	char b[16];

	snprintf(b, sizeof(b), "%u", n);
	return knob_rw("/proc/thread-self/fail-nth", NULL, 0, b);
}

/* true if the Nth fault point was reached (and failed); resets to 0 */
static bool nth_fired(void)
{
	char b[16] = "";

	knob_rw("/proc/thread-self/fail-nth", b, sizeof(b), NULL);
	nth_set(0);
	return atoi(b) == 0;
}

/* ---- the stream check (no faults): bytes each way, SHA-256 ---- */

struct xfer {
	pthread_t thr;
	int fd;
	uint64_t seed;
	size_t len;
	struct st_hash h;
	int err;
	bool eof;
};

static void *xfer_read_fn(void *arg)
{
	struct xfer *x = arg;
	uint8_t buf[8192];

	st_hash_init(&x->h);
	for (;;) {
		ssize_t n = recv(x->fd, buf, sizeof(buf), 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			x->err = errno;
			return NULL;
		}
		if (!n) {
			x->eof = true;
			return NULL;
		}
		st_hash_add(&x->h, buf, n);
	}
}

/* what the writer's calls accepted, as a hash to compare */
struct sent {
	struct st_hash h;
	uint64_t seed;
	bool latched;		/* a call failed for good: the direction is dead */
	int err;
};

static void sent_init(struct sent *s, uint64_t seed)
{
	st_hash_init(&s->h);
	s->seed = seed;
	s->latched = false;
	s->err = 0;
}

/* send len more bytes of the stream (blocking), retrying transient errors */
static int sent_more(struct sent *s, int fd, size_t len)
{
	uint8_t buf[4096];
	int tries = 0;

	while (len) {
		size_t n = len < sizeof(buf) ? len : sizeof(buf);
		ssize_t r;

		st_stream(s->seed, s->h.bytes, buf, n);
		r = send(fd, buf, n, MSG_NOSIGNAL);
		if (r < 0) {
			if ((errno == EINTR || errno == EAGAIN || errno == ENOMEM ||
			     errno == ENOBUFS) && ++tries < 50)
				continue;
			s->latched = true;
			s->err = errno;
			return -errno;
		}
		st_hash_add(&s->h, buf, r);
		len -= r;
	}
	return 0;
}

static bool is_documented_end(int err)
{
	return err == EPIPE || err == ECONNRESET || err == EBADMSG || err == EPROTO;
}

/*
 * After the faulted call: send more both ways, close cleanly, and check
 * what each reader got against what each writer's calls accepted.
 * sc/ss carry the bytes already accepted before (by the faulted call).
 * Returns 0, or -1 with a message in why.
 */
static int check_streams(int c, int s, struct sent *sc, struct sent *ss,
			 size_t more, char *why, size_t whylen)
{
	struct xfer rs = { .fd = s }, rc = { .fd = c };
	uint8_t h1[32], h2[32];
	int ret = 0, shut_c = -1, shut_s = -1;

	oss_set_timeouts(c, 10);
	oss_set_timeouts(s, 10);
	if (pthread_create(&rs.thr, NULL, xfer_read_fn, &rs) ||
	    pthread_create(&rc.thr, NULL, xfer_read_fn, &rc)) {
		snprintf(why, whylen, "pthread_create");
		return -1;
	}
	if (!sc->latched)
		sent_more(sc, c, more);
	if (!ss->latched)
		sent_more(ss, s, more);
	shut_c = st_shutdown_wr(c, oss_now_ms() + 20000);
	shut_s = st_shutdown_wr(s, oss_now_ms() + 20000);
	pthread_join(rs.thr, NULL);
	pthread_join(rc.thr, NULL);

	for (int d = 0; d < 2 && !ret; d++) {
		struct sent *w = d ? ss : sc;
		struct xfer *r = d ? &rc : &rs;
		int shut = d ? shut_s : shut_c;
		const char *name = d ? "server -> client" : "client -> server";

		st_hash_final(&w->h, h1);
		st_hash_final(&r->h, h2);
		if (r->err == EAGAIN) {
			snprintf(why, whylen, "%s: the reader stalled (10 s) after %llu of %llu bytes",
				 name, (unsigned long long)r->h.bytes,
				 (unsigned long long)w->h.bytes);
			ret = -1;
		} else if (r->h.bytes > w->h.bytes ||
			   (r->h.bytes == w->h.bytes && memcmp(h1, h2, 32))) {
			snprintf(why, whylen, "%s: read %llu bytes, the writer's calls accepted %llu%s",
				 name, (unsigned long long)r->h.bytes,
				 (unsigned long long)w->h.bytes,
				 r->h.bytes == w->h.bytes ? " (other bytes: SHA-256 differs)" :
				 " (duplicated or made up)");
			ret = -1;
		} else if (!w->latched && !shut && !r->eof) {
			/* the writer saw no error and shut down cleanly */
			snprintf(why, whylen, "%s: clean writer, but the reader got %s after %llu of %llu bytes%s",
				 name, st_errname(r->err), (unsigned long long)r->h.bytes,
				 (unsigned long long)w->h.bytes,
				 r->err == EPIPE ? " (a false EPIPE)" : "");
			ret = -1;
		} else if (!w->latched && !shut && r->h.bytes != w->h.bytes) {
			snprintf(why, whylen, "%s: %llu bytes accepted, %llu read before the end (lost)",
				 name, (unsigned long long)w->h.bytes,
				 (unsigned long long)r->h.bytes);
			ret = -1;
		} else if (r->eof && r->h.bytes != w->h.bytes) {
			snprintf(why, whylen, "%s: a clean end of stream after %llu bytes, %llu were accepted (lost)",
				 name, (unsigned long long)r->h.bytes,
				 (unsigned long long)w->h.bytes);
			ret = -1;
		} else if (!r->eof && !is_documented_end(r->err)) {
			snprintf(why, whylen, "%s: the reader ended with %s", name, st_errname(r->err));
			ret = -1;
		}
	}
	return ret;
}

/* ---- the cases ---- */

struct fcase {
	const char *name;
	/* set up c/s (no faults) */
	int (*prep)(int c, int s, struct sent *sc, struct sent *ss, void *priv);
	/* the call under fault: 0 / count, or -errno */
	long (*op)(int c, int s, struct sent *sc, struct sent *ss, void *priv);
	/* after it (no faults): fix up what a failed call left; 0 or -1 + why */
	int (*after)(int c, int s, long r, struct sent *sc, struct sent *ss, void *priv,
		     char *why, size_t whylen);
};

static int prep_plain(int c, int s, struct sent *sc, struct sent *ss, void *priv)
{
	return 0;
}

static int prep_offloaded(int c, int s, struct sent *sc, struct sent *ss, void *priv)
{
	return st_offload_pair(c, s, 5);
}

/* keys of the pair made by st_offload_pair(.., 5), for the install cases */
static void keys5(uint8_t sa[32], uint8_t sb[32])
{
	oss_secret(sa, (uint8_t)(5 * 7 + 1));
	oss_secret(sb, (uint8_t)(5 * 7 + 100));
}

static bool errno_ok(long r)
{
	return r == -ENOMEM || r == -ENOBUFS || r == -EFAULT || r == -EAGAIN || r == -EINTR;
}

/* attach: fails cleanly (plain TCP still), then attaches */
static long op_attach(int c, int s, struct sent *sc, struct sent *ss, void *priv)
{
	return oss_attach(c);
}

static int after_attach(int c, int s, long r, struct sent *sc, struct sent *ss, void *priv,
			char *why, size_t whylen)
{
	uint8_t sa[32], sb[32];
	int ret;

	if (r) {
		char b[3] = "";

		if (!errno_ok(r) && r != -ENOENT) {
			snprintf(why, whylen, "attach failed with %s", strerror(-r));
			return -1;
		}
		/* still a plain TCP socket */
		if (send(c, "ok", 2, 0) != 2 || recv(s, b, 2, MSG_WAITALL) != 2 || memcmp(b, "ok", 2)) {
			snprintf(why, whylen, "plain TCP after a failed attach (%s): %s",
				 strerror(-r), strerror(errno));
			return -1;
		}
		ret = oss_attach(c);
		if (ret) {
			snprintf(why, whylen, "attach again after %s: %s", strerror(-r), strerror(-ret));
			return -1;
		}
	}
	keys5(sa, sb);
	ret = oss_attach(s);
	if (!ret)
		ret = oss_install(c, OSSUARY_TX, sa, 0);
	if (!ret)
		ret = oss_install(s, OSSUARY_RX, sa, 0);
	if (!ret)
		ret = oss_install(s, OSSUARY_TX, sb, 0);
	if (!ret)
		ret = oss_install(c, OSSUARY_RX, sb, 0);
	if (ret) {
		snprintf(why, whylen, "keys after the attach: %s", strerror(-ret));
		return -1;
	}
	return 0;
}

/*
 * install TX on c (s is ready), with records the other way already in
 * flight for the RX case.
 */
static int prep_install(int c, int s, struct sent *sc, struct sent *ss, void *priv)
{
	uint8_t sa[32], sb[32];
	bool rx = priv != NULL;
	int ret;

	keys5(sa, sb);
	ret = oss_attach(c);
	if (!ret)
		ret = oss_attach(s);
	if (!ret)
		ret = oss_install(s, OSSUARY_RX, sa, 0);
	if (!ret)
		ret = oss_install(s, OSSUARY_TX, sb, 0);
	if (!ret && rx) {
		ret = oss_install(c, OSSUARY_TX, sa, 0);
		/* records for c's RX, there before it is installed */
		if (!ret)
			ret = sent_more(ss, s, 20000);
		oss_msleep(5);
	}
	return ret;
}

static long op_install(int c, int s, struct sent *sc, struct sent *ss, void *priv)
{
	uint8_t sa[32], sb[32];

	keys5(sa, sb);
	return priv ? oss_install(c, OSSUARY_RX, sb, 0) : oss_install(c, OSSUARY_TX, sa, 0);
}

static int after_install(int c, int s, long r, struct sent *sc, struct sent *ss, void *priv,
			 char *why, size_t whylen)
{
	int dir = priv ? OSSUARY_RX : OSSUARY_TX;
	struct ossuary_dir_state st;
	uint8_t sa[32], sb[32];
	int ret;

	keys5(sa, sb);
	if (r) {
		if (!errno_ok(r)) {
			snprintf(why, whylen, "install %s failed with %s", priv ? "RX" : "TX",
				 strerror(-r));
			return -1;
		}
		ret = oss_state(c, dir, &st);
		if (ret || (st.flags & OSSUARY_STATE_INSTALLED)) {
			snprintf(why, whylen, "install %s failed (%s) but the state says installed",
				 priv ? "RX" : "TX", strerror(-r));
			return -1;
		}
		ret = op_install(c, s, sc, ss, priv);
		if (ret) {
			snprintf(why, whylen, "install %s again after %s: %s", priv ? "RX" : "TX",
				 strerror(-r), strerror(-ret));
			return -1;
		}
	}
	ret = priv ? 0 : oss_install(c, OSSUARY_RX, sb, 0);
	if (ret) {
		snprintf(why, whylen, "RX after TX: %s", strerror(-ret));
		return -1;
	}
	return 0;
}

/* key update, asking the peer (1) or not (0) */
static long op_key_update(int c, int s, struct sent *sc, struct sent *ss, void *priv)
{
	int v = priv != NULL;

	return setsockopt(c, SOL_OSSUARY, OSSUARY_KEY_UPDATE, &v, sizeof(v)) ? -errno : 0;
}

/* a direction whose call failed: latched (state says so) or still fine */
static int after_latch(int fd, int dir, long r, struct sent *w, const char *what,
		       char *why, size_t whylen)
{
	struct ossuary_dir_state st;

	if (r >= 0)
		return 0;
	if (!errno_ok(r)) {
		snprintf(why, whylen, "%s failed with %s", what, strerror(-r));
		return -1;
	}
	if (oss_state(fd, dir, &st)) {
		snprintf(why, whylen, "%s: getsockopt state: %s", what, strerror(errno));
		return -1;
	}
	if (st.flags & OSSUARY_STATE_ERROR) {
		w->latched = true;
		w->err = st.error;
	}
	return 0;
}

static int after_key_update(int c, int s, long r, struct sent *sc, struct sent *ss,
			    void *priv, char *why, size_t whylen)
{
	return after_latch(c, OSSUARY_TX, r, sc, "KEY_UPDATE", why, whylen);
}

/* sendmsg of 48 KiB (copied) */
static long op_send(int c, int s, struct sent *sc, struct sent *ss, void *priv)
{
	size_t len = 48 << 10;
	uint8_t *buf = malloc(len);
	ssize_t r;

	if (!buf)
		return -ENOMEM;
	st_stream(sc->seed, sc->h.bytes, buf, len);
	r = send(c, buf, len, MSG_NOSIGNAL | (priv ? MSG_MORE : 0));
	if (r > 0)
		st_hash_add(&sc->h, buf, r);
	free(buf);
	return r < 0 ? -errno : r;
}

static int after_send(int c, int s, long r, struct sent *sc, struct sent *ss, void *priv,
		      char *why, size_t whylen)
{
	return after_latch(c, OSSUARY_TX, r, sc, "send", why, whylen);
}

/* sendfile / splice: the data source is a file of the stream's bytes */
static int tmpfile_of(uint64_t seed, uint64_t pos, size_t len)
{
	uint8_t *buf = malloc(len);
	int fd = oss_tmpfile("/tmp", 0, 0);

	if (fd < 0 || !buf) {
		free(buf);
		return -1;
	}
	st_stream(seed, pos, buf, len);
	if (pwrite(fd, buf, len, 0) != (ssize_t)len) {
		close(fd);
		fd = -1;
	}
	free(buf);
	return fd;
}

static long op_sendfile(int c, int s, struct sent *sc, struct sent *ss, void *priv)
{
	size_t len = 40 << 10;
	int f = tmpfile_of(sc->seed, sc->h.bytes, len);
	uint8_t *buf = malloc(len);
	off_t off = 0;
	ssize_t r;

	if (f < 0 || !buf) {
		free(buf);
		return -ENOMEM;
	}
	st_stream(sc->seed, sc->h.bytes, buf, len);
	/* the file is written before the faults: only sendfile is under them */
	nth_set(*(unsigned int *)priv);
	r = sendfile(c, f, &off, len);
	if (r < 0)
		r = -errno;
	*(unsigned int *)priv = nth_fired();
	if (r > 0)
		st_hash_add(&sc->h, buf, r);
	free(buf);
	close(f);
	return r;
}

static long op_splice_in(int c, int s, struct sent *sc, struct sent *ss, void *priv)
{
	size_t len = 32 << 10;
	uint8_t *buf = malloc(len);
	int p[2];
	ssize_t r;

	if (!buf || pipe(p)) {
		free(buf);
		return -ENOMEM;
	}
	st_stream(sc->seed, sc->h.bytes, buf, len);
	if (write(p[1], buf, len) != (ssize_t)len) {
		free(buf);
		return -EIO;
	}
	nth_set(*(unsigned int *)priv);
	r = splice(p[0], NULL, c, NULL, len, 0);
	if (r < 0)
		r = -errno;
	*(unsigned int *)priv = nth_fired();
	if (r > 0)
		st_hash_add(&sc->h, buf, r);
	free(buf);
	close(p[0]);
	close(p[1]);
	return r;
}

static int after_sendfile(int c, int s, long r, struct sent *sc, struct sent *ss, void *priv,
			  char *why, size_t whylen)
{
	return after_latch(c, OSSUARY_TX, r, sc, "sendfile/splice", why, whylen);
}

/*
 * recvmsg / splice out under fault: s has sent records to c (no faults),
 * c reads under fault; what it reads is accounted in the reader's hash
 * by the check through rbytes.
 */
struct rx_priv {
	unsigned int nth;
	bool splice;
	uint8_t *got;
	size_t got_len;
};

static int prep_rx(int c, int s, struct sent *sc, struct sent *ss, void *priv)
{
	int ret = st_offload_pair(c, s, 5);

	if (!ret)
		ret = sent_more(ss, s, 30000);
	if (!ret)
		oss_wait_in(c, 5000);
	return ret;
}

static long op_rx(int c, int s, struct sent *sc, struct sent *ss, void *priv)
{
	struct rx_priv *p = priv;
	size_t len = 20000;
	int pp[2] = { -1, -1 };
	ssize_t r;

	p->got = malloc(len);
	p->got_len = 0;
	if (!p->got || (p->splice && pipe(pp)))
		return -ENOMEM;
	nth_set(p->nth);
	if (p->splice)
		r = splice(c, NULL, pp[1], NULL, len, 0);
	else
		r = recv(c, p->got, len, 0);
	if (r < 0)
		r = -errno;
	p->nth = nth_fired();
	if (r > 0 && p->splice && read(pp[0], p->got, r) != r)
		r = -EIO;
	if (r > 0)
		p->got_len = r;
	if (pp[0] >= 0) {
		close(pp[0]);
		close(pp[1]);
	}
	return r;
}

/* run one case for N = 1.. until the call no longer reaches the Nth fault */
struct fres {
	unsigned int n_max;	/* last N tried */
	unsigned int errors;	/* calls that failed (clean error) */
	unsigned int shorts;	/* partial counts */
	unsigned int latched;	/* directions dead after a failure */
	bool exhausted;		/* the call got through without reaching N */
};

static int run_case(struct __test_metadata *_metadata, const struct fcase *fc, void *priv,
		    int family, unsigned int max_nth, struct fres *res)
{
	unsigned int n = 1;

	memset(res, 0, sizeof(*res));
	while (n <= max_nth) {
		struct sent sc, ss;
		char why[512] = "";
		int c, s, ret;
		long r;
		bool fired;
		unsigned int nth = n;

		ret = oss_tcp_pair(family, &c, &s);
		if (ret) {
			TH_LOG("%s N=%u: pair: %s", fc->name, n, strerror(-ret));
			return -1;
		}
		oss_set_timeouts(c, 10);
		oss_set_timeouts(s, 10);
		sent_init(&sc, st_mix(n * 2 + 1));
		sent_init(&ss, st_mix(n * 2 + 2));
		ret = fc->prep(c, s, &sc, &ss, priv);
		if (ret) {
			TH_LOG("%s N=%u: setup: %s", fc->name, n, strerror(-ret));
			oss_close_pair(&c, &s);
			return -1;
		}
		if (fc->op == op_sendfile || fc->op == op_splice_in) {
			/* these arm fail-nth themselves, after their own setup */
			r = fc->op(c, s, &sc, &ss, &nth);
			fired = nth;
		} else if (fc->op == op_rx) {
			((struct rx_priv *)priv)->nth = n;
			r = fc->op(c, s, &sc, &ss, priv);
			fired = ((struct rx_priv *)priv)->nth;
		} else {
			nth_set(n);
			r = fc->op(c, s, &sc, &ss, priv);
			fired = nth_fired();
		}
		if (r < 0)
			res->errors++;
		ret = fc->after ? fc->after(c, s, r, &sc, &ss, priv, why, sizeof(why)) : 0;
		if (!ret && fc->op == op_rx) {
			/* the bytes read under fault come first in c's stream */
			struct rx_priv *p = priv;
			struct xfer rc = { .fd = c };
			struct ossuary_dir_state st;
			uint8_t h1[32], h2[32];
			uint8_t *exp = malloc(ss.h.bytes ? ss.h.bytes : 1);

			if (r < 0 && !errno_ok(r)) {
				snprintf(why, sizeof(why), "%s failed with %s",
					 p->splice ? "splice" : "recv", strerror(-r));
				ret = -1;
			}
			if (!oss_state(c, OSSUARY_RX, &st) && (st.flags & OSSUARY_STATE_ERROR))
				res->latched++;
			/* the rest, after a clean shutdown of the sender */
			st_shutdown_wr(s, oss_now_ms() + 20000);
			xfer_read_fn(&rc);
			st_stream(ss.seed, 0, exp, ss.h.bytes);
			if (!ret && (p->got_len > ss.h.bytes || memcmp(exp, p->got, p->got_len))) {
				snprintf(why, sizeof(why), "read %zu bytes under fault, not the stream's first",
					 p->got_len);
				ret = -1;
			}
			if (!ret) {
				crypto_hash_sha256(h1, exp + p->got_len, ss.h.bytes - p->got_len);
				st_hash_final(&rc.h, h2);
				if (!(st.flags & OSSUARY_STATE_ERROR) &&
				    (rc.h.bytes != ss.h.bytes - p->got_len || memcmp(h1, h2, 32) ||
				     !rc.eof))
					snprintf(why, sizeof(why),
						 "after a read under fault (%s, %zu bytes): %llu more bytes of %llu, %s (%s)",
						 r < 0 ? strerror(-r) : "ok", p->got_len,
						 (unsigned long long)rc.h.bytes,
						 (unsigned long long)(ss.h.bytes - p->got_len),
						 rc.h.bytes == ss.h.bytes - p->got_len &&
						 memcmp(h1, h2, 32) ? "other bytes" : "",
						 rc.eof ? "end of stream" : st_errname(rc.err)),
					ret = -1;
				else if ((st.flags & OSSUARY_STATE_ERROR) && rc.eof)
					snprintf(why, sizeof(why), "RX latched %d but a read returned 0",
						 st.error), ret = -1;
			}
			free(exp);
			free(p->got);
			p->got = NULL;
		} else if (!ret) {
			if (r > 0 && fc->op != op_attach && fc->op != op_install &&
			    fc->op != op_key_update && r < (48 << 10) && fired)
				res->shorts++;
			ret = check_streams(c, s, &sc, &ss, 6000, why, sizeof(why));
			res->latched += sc.latched;
		}
		oss_close_pair(&c, &s);
		if (ret) {
			TH_LOG("%s (%s) N=%u: call returned %ld (%s): %s", fc->name,
			       oss_family_name(family), n, r, r < 0 ? strerror(-r) : "ok", why);
			return -1;
		}
		res->n_max = n;
		if (!fired) {
			res->exhausted = true;
			break;
		}
		n += n < 64 ? 1 : n / 8;
	}
	return 0;
}

FIXTURE(flt)
{
	int unused;
};

FIXTURE_SETUP(flt)
{
	if (oss_ulp_listed() != 1)
		SKIP(return, "ossuary ULP not registered (module not loaded)");
	if (access("/proc/thread-self/fail-nth", W_OK))
		SKIP(return, "optional: no /proc/thread-self/fail-nth (kernel without CONFIG_FAULT_INJECTION)");
	ASSERT_EQ(0, sodium_init() < 0 ? -1 : 0);
	signal(SIGPIPE, SIG_IGN);
	knobs_set();
}

FIXTURE_TEARDOWN(flt)
{
	nth_set(0);
	knobs_restore();
}

static const struct fcase cases[] = {
	{ "attach (TCP_ULP)", prep_plain, op_attach, after_attach },
	{ "install TX", prep_install, op_install, after_install },
	{ "install RX (records waiting)", prep_install, op_install, after_install },
	{ "KEY_UPDATE(0)", prep_offloaded, op_key_update, after_key_update },
	{ "KEY_UPDATE(1)", prep_offloaded, op_key_update, after_key_update },
	{ "sendmsg", prep_offloaded, op_send, after_send },
	{ "sendmsg MSG_MORE", prep_offloaded, op_send, after_send },
	{ "sendfile", prep_offloaded, op_sendfile, after_sendfile },
	{ "splice into the socket", prep_offloaded, op_splice_in, after_sendfile },
	{ "recvmsg", prep_rx, op_rx, NULL },
	{ "splice out of the socket", prep_rx, op_rx, NULL },
};

TEST_F_TIMEOUT(flt, fail_nth_each_call, 7200)
{
	unsigned int max_nth = st_env("OSSUARY_FAULTS_MAX_NTH", 40);
	static int one = 1;
	long long t0 = oss_now_ms();
	int failed = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct fcase *fc = &cases[i];
		struct rx_priv rxp = { .splice = strstr(fc->name, "splice out") != NULL };
		void *priv = NULL;
		struct fres res;
		int family = i % 2 ? AF_INET6 : AF_INET;

		if (strstr(fc->name, "RX (records") || strstr(fc->name, "(1)") ||
		    strstr(fc->name, "MSG_MORE"))
			priv = &one;
		if (fc->op == op_rx)
			priv = &rxp;
		if (run_case(_metadata, fc, priv, family, max_nth, &res)) {
			failed++;
			continue;
		}
		TH_LOG("%-30s N=1..%u%s: %u clean errors, %u short counts, %u directions latched",
		       fc->name, res.n_max, res.exhausted ? " (all its fault points)" : "",
		       res.errors, res.shorts, res.latched);
	}
	TH_LOG("%.1f s", (oss_now_ms() - t0) / 1000.0);
	EXPECT_EQ(0, failed);
}

/* ---- random failures (task-filter, make-it-fail) while streams run ---- */

static int make_it_fail(int on)
{
	return knob_rw("/proc/thread-self/make-it-fail", NULL, 0, on ? "1" : "0");
}

struct rnd_side {
	pthread_t thr;
	int fd;
	struct sent w;
	struct st_hash r;
	bool eof;
	int rerr;
	int shut;
	long long stop;
	unsigned long calls, errors;
};

/* one thread per socket: writes (send, sendfile), reads, key updates; faults on */
static void *rnd_fn(void *arg)
{
	struct rnd_side *x = arg;
	struct st_rng rng = { x->w.seed };
	uint8_t *buf = malloc(65536);
	int f = tmpfile_of(x->w.seed ^ 5, 0, 65536);
	uint8_t *fbuf = malloc(65536);
	bool shut = false;

	if (!buf || !fbuf || f < 0) {
		st_fail("random: setup");
		return NULL;
	}
	st_stream(x->w.seed ^ 5, 0, fbuf, 65536);
	memset(buf, 0, 65536);
	oss_set_nonblock(x->fd, true);
	make_it_fail(1);
	while (!(shut && (x->eof || x->rerr))) {
		unsigned int op = st_below(&rng, 5);
		ssize_t r;

		if (oss_now_ms() > x->stop + 60000) {
			st_fail("random: no end of stream 60 s after the end");
			break;
		}
		if (!shut && (oss_now_ms() > x->stop || x->w.latched)) {
			make_it_fail(0);
			x->shut = st_shutdown_wr(x->fd, oss_now_ms() + 20000);
			shut = true;
			continue;
		}
		x->calls++;
		if (op == 0 && !shut) {
			size_t n = 1 + st_below(&rng, 32768);

			st_stream(x->w.seed, x->w.h.bytes, buf, n);
			r = send(x->fd, buf, n, MSG_NOSIGNAL);
			if (r > 0)
				st_hash_add(&x->w.h, buf, r);
		} else if (op == 1 && !shut) {
			/* sendfile of a range of the file: hashes the file's bytes */
			off_t off = st_below(&rng, 60000), o = off;

			r = sendfile(x->fd, f, &o, 1 + st_below(&rng, 5000));
			if (r > 0)
				st_hash_add(&x->w.h, fbuf + off, r);
		} else if (op == 2 && !shut) {
			int v = st_below(&rng, 2);

			r = setsockopt(x->fd, SOL_OSSUARY, OSSUARY_KEY_UPDATE, &v, sizeof(v));
		} else {
			struct pollfd p = { .fd = x->fd, .events = POLLIN };

			poll(&p, 1, 2);
			r = recv(x->fd, buf, 65536, 0);
			if (r > 0)
				st_hash_add(&x->r, buf, r);
			else if (r == 0)
				x->eof = true;
			else if (errno != EAGAIN && errno != EINTR && errno != ENOMEM &&
				 errno != EFAULT && errno != ENOBUFS)
				x->rerr = errno;
		}
		if (r < 0 && errno != EAGAIN) {
			x->errors++;
			if (op <= 2 && !shut) {
				struct ossuary_dir_state st;

				if (!oss_state(x->fd, OSSUARY_TX, &st) &&
				    (st.flags & OSSUARY_STATE_ERROR)) {
					x->w.latched = true;
					x->w.err = st.error;
				} else if (errno != ENOMEM && errno != EFAULT && errno != ENOBUFS &&
					   errno != EINTR) {
					st_fail("random: op %u failed with %s, TX not latched", op,
						strerror(errno));
					x->w.latched = true;
				}
			}
		}
	}
	make_it_fail(0);
	free(buf);
	free(fbuf);
	close(f);
	return NULL;
}

TEST_F_TIMEOUT(flt, random_failures_while_streaming, 7200)
{
	static const char *const prob[] = {
		DBG "/failslab/probability", DBG "/failslab/interval", DBG "/failslab/times",
		DBG "/failslab/task-filter",
		DBG "/fail_page_alloc/probability", DBG "/fail_page_alloc/interval",
		DBG "/fail_page_alloc/times", DBG "/fail_page_alloc/task-filter",
		DBG "/fail_usercopy/probability", DBG "/fail_usercopy/interval",
		DBG "/fail_usercopy/times", DBG "/fail_usercopy/task-filter",
	};
	static const char *const val[] = { "3", "1", "-1", "Y" };
	char saved[12][32];
	long long secs = st_env("OSSUARY_FAULTS_SECONDS", 20);
	int npairs = 4, bad = 0;
	struct rnd_side *sides = calloc(2 * npairs, sizeof(*sides));
	unsigned long calls = 0, errors = 0, latched = 0;
	uint64_t bytes = 0;

	ASSERT_NE(NULL, sides);
	for (int i = 0; i < 12; i++) {
		ASSERT_EQ(0, knob_rw(prob[i], saved[i], sizeof(saved[i]), NULL))
			TH_LOG("%s", prob[i]);
	}
	for (int i = 0; i < 12; i++) {
		ASSERT_EQ(0, knob_rw(prob[i], NULL, 0, val[i % 4])) TH_LOG("%s", prob[i]);
	}
	for (int i = 0; i < npairs; i++) {
		int c, s;

		ASSERT_EQ(0, oss_tcp_pair(i % 2 ? AF_INET6 : AF_INET, &c, &s));
		ASSERT_EQ(0, st_offload_pair(c, s, i));
		for (int d = 0; d < 2; d++) {
			struct rnd_side *x = &sides[2 * i + d];

			x->fd = d ? s : c;
			sent_init(&x->w, st_mix(0x7a000 + 2 * i + d));
			st_hash_init(&x->r);
			x->stop = oss_now_ms() + secs * 1000;
		}
	}
	for (int i = 0; i < 2 * npairs; i++) {
		ASSERT_EQ(0, pthread_create(&sides[i].thr, NULL, rnd_fn, &sides[i]));
	}
	for (int i = 0; i < 2 * npairs; i++)
		pthread_join(sides[i].thr, NULL);
	for (int i = 0; i < 12; i++)
		knob_rw(prob[i], NULL, 0, saved[i]);
	for (int i = 0; i < 2 * npairs; i++) {
		struct rnd_side *w = &sides[i], *r = &sides[i ^ 1];
		uint8_t h1[32], h2[32];

		st_hash_final(&w->w.h, h1);
		st_hash_final(&r->r, h2);
		calls += w->calls;
		errors += w->errors;
		latched += w->w.latched;
		bytes += r->r.bytes;
		if (r->r.bytes > w->w.h.bytes ||
		    (r->r.bytes == w->w.h.bytes && memcmp(h1, h2, 32)) ||
		    (!w->w.latched && !w->shut && (!r->eof || r->r.bytes != w->w.h.bytes))) {
			bad++;
			TH_LOG("side %d -> %d: accepted %llu, read %llu (%s), SHA-256 %s, writer %s",
			       i, i ^ 1, (unsigned long long)w->w.h.bytes,
			       (unsigned long long)r->r.bytes,
			       r->eof ? "end of stream" : st_errname(r->rerr),
			       memcmp(h1, h2, 32) ? "differs" : "same",
			       w->w.latched ? "latched an error" : "clean");
		}
		close(w->fd);
	}
	TH_LOG("%d sockets, %lld s: %lu calls, %lu failed, %lu directions latched, %llu bytes read",
	       2 * npairs, secs, calls, errors, latched, (unsigned long long)bytes);
	free(sides);
	EXPECT_EQ(0, bad);
	ST_ASSERT_CLEAN();
}

TEST_HARNESS_MAIN
