/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers of the concurrency suites (stress.c, faults.c, mutate.c):
 * parameters from the environment, failures recorded from any thread
 * (the harness's ASSERT only works on the test's own thread), SHA-256
 * over a stream, and a byte stream anyone can regenerate from its seed
 * and a position. Include after common.h and kselftest_harness.h.
 */
#ifndef OSSUARY_STRESS_UTIL_H
#define OSSUARY_STRESS_UTIL_H

#include <pthread.h>
#include <stdarg.h>
#include <sys/resource.h>

#include <sodium.h>

/* An integer parameter from the environment, def when unset or bad */
static inline long long st_env(const char *name, long long def)
{
	const char *v = getenv(name);
	char *end;
	long long x;

	if (!v || !*v)
		return def;
	x = strtoll(v, &end, 0);
	return *end ? def : x;
}

/* The first failure of any thread, reported by the test's thread */
struct st_fail {
	pthread_mutex_t lock;
	int count;
	char first[512];
};

static struct st_fail st_failure = { .lock = PTHREAD_MUTEX_INITIALIZER };

__attribute__((format(printf, 1, 2), unused))
static void st_fail(const char *fmt, ...)
{
	va_list ap;
	char msg[512];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&st_failure.lock);
	if (st_failure.count++ == 0)
		snprintf(st_failure.first, sizeof(st_failure.first), "%s", msg);
	if (st_failure.count <= 20)
		fprintf(stderr, "# FAIL: %s\n", msg);
	pthread_mutex_unlock(&st_failure.lock);
}

static inline int st_failures(void)
{
	int n;

	pthread_mutex_lock(&st_failure.lock);
	n = st_failure.count;
	pthread_mutex_unlock(&st_failure.lock);
	return n;
}

/* Assert in the test's thread that no thread failed */
#define ST_ASSERT_CLEAN() \
	ASSERT_EQ(0, st_failures()) TH_LOG("%d failures, first: %s", \
					   st_failure.count, st_failure.first)

/* splitmix64: one step */
static inline uint64_t st_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* A small per-thread PRNG */
struct st_rng {
	uint64_t s;
};

static inline uint64_t st_next(struct st_rng *r)
{
	r->s = st_mix(r->s);
	return r->s;
}

/* uniform in [0, n) (n > 0) */
static inline uint64_t st_below(struct st_rng *r, uint64_t n)
{
	return st_next(r) % n;
}

/*
 * The stream of seed: byte at position p is byte p % 8 of
 * st_mix(seed ^ (p / 8) * K), so any range can be made again anywhere.
 */
static inline void st_stream(uint64_t seed, uint64_t pos, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		uint64_t blk = pos / 8, w = st_mix(seed ^ (blk * 0xd1342543de82ef95ULL));
		unsigned int i = pos % 8;

		for (; i < 8 && len; i++, len--, pos++)
			*p++ = (uint8_t)(w >> (8 * i));
	}
}

/* SHA-256 of a stream: bytes and their count */
struct st_hash {
	crypto_hash_sha256_state st;
	uint64_t bytes;
};

static inline void st_hash_init(struct st_hash *h)
{
	crypto_hash_sha256_init(&h->st);
	h->bytes = 0;
}

static inline void st_hash_add(struct st_hash *h, const void *p, size_t n)
{
	crypto_hash_sha256_update(&h->st, p, n);
	h->bytes += n;
}

static inline void st_hash_final(struct st_hash *h, uint8_t out[32])
{
	crypto_hash_sha256_final(&h->st, out);
}

/* At least want descriptors (root in the VM may raise the hard limit) */
static inline int st_nofile(rlim_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return -errno;
	if (rl.rlim_cur >= want)
		return 0;
	if (rl.rlim_max < want)
		rl.rlim_max = want;
	rl.rlim_cur = want;
	return setrlimit(RLIMIT_NOFILE, &rl) ? -errno : 0;
}

static inline const char *st_errname(int e)
{
	switch (e) {
	case 0: return "0 (end of stream)";
	case EPIPE: return "EPIPE";
	case EBADMSG: return "EBADMSG";
	case EPROTO: return "EPROTO";
	case ECONNRESET: return "ECONNRESET";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EFAULT: return "EFAULT";
	case EINTR: return "EINTR";
	case ETIMEDOUT: return "ETIMEDOUT";
	case ENOBUFS: return "ENOBUFS";
	default: return strerror(e);
	}
}

/* Both ends offloaded, secrets from the pair's number (not the fixtures') */
static inline int st_offload_pair(int a, int b, unsigned int id)
{
	uint8_t sa[32], sb[32];
	int ret;

	oss_secret(sa, (uint8_t)(id * 7 + 1));
	oss_secret(sb, (uint8_t)(id * 7 + 100));
	ret = oss_attach(a);
	if (!ret)
		ret = oss_attach(b);
	if (!ret)
		ret = oss_install(a, OSSUARY_TX, sa, 0);
	if (!ret)
		ret = oss_install(b, OSSUARY_RX, sa, 0);
	if (!ret)
		ret = oss_install(b, OSSUARY_TX, sb, 0);
	if (!ret)
		ret = oss_install(a, OSSUARY_RX, sb, 0);
	return ret;
}

/* shutdown(SHUT_WR), retried on EAGAIN/EINTR (documented) until deadline */
static inline int st_shutdown_wr(int fd, long long deadline_ms)
{
	for (;;) {
		if (!shutdown(fd, SHUT_WR))
			return 0;
		if ((errno != EAGAIN && errno != EINTR) || oss_now_ms() > deadline_ms)
			return -errno;
		oss_msleep(1);
	}
}

#endif /* OSSUARY_STRESS_UTIL_H */
