// SPDX-License-Identifier: Apache-2.0
/*
 * Socket helpers shared by test_socket.c and test_interop.c; see
 * sockpair.h. Every socket gets 30 s send/receive timeouts, so a bug
 * shows as a failure, not as a hang.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "../harness.h"
#include "sockpair.h"

int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void set_timeouts(int fd, int secs)
{
	struct timeval tv = { .tv_sec = secs };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

void set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);

	fcntl(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK));
}

int tcp_pair(int family, int fds[2])
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int l, c, a, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_addr = in6addr_loopback;
		sl = sizeof(*in6);
	}
	l = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		return -1;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)&ss, sl) < 0 || listen(l, 4) < 0 ||
	    getsockname(l, (struct sockaddr *)&ss, &sl) < 0) {
		close(l);
		return -1;
	}
	c = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&ss, sl) < 0) {
		if (c >= 0)
			close(c);
		close(l);
		return -1;
	}
	a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	close(l);
	if (a < 0) {
		close(c);
		return -1;
	}
	set_timeouts(c, 30);
	set_timeouts(a, 30);
	fds[0] = c;
	fds[1] = a;
	return 0;
}

void pair_or_fail(int family, int fds[2])
{
	CHECK(tcp_pair(family, fds) == 0);
}

void close_pair(int fds[2])
{
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	fds[0] = fds[1] = -1;
}

int ipv6_available(void)
{
	int fds[2];

	if (tcp_pair(AF_INET6, fds) < 0)
		return 0;
	close_pair(fds);
	return 1;
}

int send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t read_exact(OssuaryConnection *c, int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = ossuary_read(c, fd, (uint8_t *)buf + got, len - got);

		if (n <= 0)
			return n;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* ---- handshake peers ---- */

int run_handshake(OssuaryConnection *c, int fd, int timeout, int tofu,
		  int *paused)
{
	int r = ossuary_handshake_fd(c, fd, timeout);

	if (r == OSSUARY_ERR_UNTRUSTED_SERVER) {
		(*paused)++;
		if (tofu == TOFU_APPROVE) {
			if (ossuary_approve_server(c) < 0)
				return -1000;
		} else if (tofu == TOFU_REFUSE) {
			ossuary_refuse_server(c);
		} else {
			return r;
		}
		r = ossuary_handshake_fd(c, fd, timeout);
	}
	return r;
}

void *peer_main(void *arg)
{
	struct peer *p = arg;
	int64_t t0 = now_ms();

	p->rc = run_handshake(p->c, p->fd, p->timeout, p->tofu, &p->paused);
	p->elapsed = now_ms() - t0;
	if (p->rc == OSSUARY_OK && p->first_data)
		p->first_rc = ossuary_write(p->c, p->fd, p->first_data,
					    strlen(p->first_data));
	if (p->close_after) {
		close(p->fd);
		p->fd = -1;
	}
	return NULL;
}

void peer_init(struct peer *p, OssuaryConnection *c, int fd)
{
	memset(p, 0, sizeof(*p));
	p->c = c;
	p->fd = fd;
	p->timeout = HS_TIMEOUT;
	p->rc = -999;
}

void handshake_both(struct peer *cl, struct peer *sv)
{
	pthread_t t;

	CHECK(pthread_create(&t, NULL, peer_main, sv) == 0);
	peer_main(cl);
	pthread_join(t, NULL);
}

void setup_pair(struct setup *s, int family)
{
	struct peer cl, sv;

	memset(s, 0, sizeof(*s));
	s->fds[0] = s->fds[1] = -1;
	pair_or_fail(family, s->fds);
	s->client = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	s->server = ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER, NULL);
	CHECK(s->client && s->server);
	peer_init(&cl, s->client, s->fds[0]);
	peer_init(&sv, s->server, s->fds[1]);
	handshake_both(&cl, &sv);
	CHECK_EQ(cl.rc, OSSUARY_OK);
	CHECK_EQ(sv.rc, OSSUARY_OK);
}

void teardown(struct setup *s)
{
	ossuary_destroy_connection(&s->client);
	ossuary_destroy_connection(&s->server);
	close_pair(s->fds);
}

void ping_pong(struct setup *s)
{
	char buf[16];

	CHECK_EQ(ossuary_write(s->client, s->fds[0], "ping", 4), 4);
	CHECK_EQ(read_exact(s->server, s->fds[1], buf, 4), 4);
	CHECK_MEM(buf, "ping", 4);
	CHECK_EQ(ossuary_write(s->server, s->fds[1], "pong!", 5), 5);
	CHECK_EQ(read_exact(s->client, s->fds[0], buf, 5), 5);
	CHECK_MEM(buf, "pong!", 5);
}

/* ---- seeded data ---- */

uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void fill(uint64_t *x, uint8_t *p, size_t n)
{
	while (n >= 8) {
		uint64_t v = splitmix(x);

		memcpy(p, &v, 8);
		p += 8;
		n -= 8;
	}
	if (n) {
		uint64_t v = splitmix(x);

		memcpy(p, &v, n);
	}
}

/* ---- bulk transfers ---- */

#define BULK_FAIL(b, code)                    \
	do {                                  \
		(b)->err = (int)(code);       \
		(b)->where = __LINE__;        \
		goto out;                     \
	} while (0)

/*
 * The peer's key updates, as the library reports them. Drained after
 * every read, so the library's queue of 32 events never overflows: a
 * lost event would show as a count that does not match the peer's.
 */
static void count_events(struct bulk *b, int disconnect_queued)
{
	int ev;

	while ((ev = ossuary_next_event(b->c)) > 0) {
		if (ev == OSSUARY_EVENT_KEY_UPDATE) {
			b->ku_seen[0]++;
		} else if (ev == OSSUARY_EVENT_KEY_UPDATE_REQUESTED) {
			b->ku_seen[1]++;
			/* after our DISCONNECT, nothing more is answered */
			if (!disconnect_queued)
				b->ku_answered++;
		}
	}
}

void *bulk_main(void *arg)
{
	struct bulk *b = arg;
	crypto_hash_sha256_state hs_tx, hs_rx;
	uint64_t data_rng = b->seed, size_rng = b->seed ^ 0x5555;
	uint64_t ku_rng = b->seed ^ 0xaaaa;
	size_t cmax = b->chunk_max ? b->chunk_max : CHUNK_MAX;
	uint8_t *chunk = malloc(cmax), *rbuf = malloc(cmax);
	size_t chunk_len = 0, chunk_off = 0;
	int eof = b->no_read, shut = b->no_write, idle = 0, disc = 0;

	crypto_hash_sha256_init(&hs_tx);
	crypto_hash_sha256_init(&hs_rx);
	if (!chunk || !rbuf)
		BULK_FAIL(b, OSSUARY_ERR_NO_MEMORY);
	if (b->slow)
		usleep(200000); /* let the writer fill the socket first */
	while (!eof || !shut) {
		size_t burst = 0;
		int progress = 0;
		short ev = 0;

		/* Write until the socket is full (or burst_max is written). */
		while (!shut) {
			ssize_t n;

			if (b->sent == b->total && b->recvd < b->shut_after_recv &&
			    !eof)
				break;	/* the peer's stream first */
			if (b->sent == b->total) {
				/* Push buffered ciphertext, then close cleanly. */
				n = ossuary_write(b->c, b->fd, NULL, 0);
				if (n == 0) {
					disc = 1;
					n = ossuary_shutdown(b->c, b->fd);
				}
				if (n == OSSUARY_OK) {
					shut = 1;
					progress = 1;
				} else if (n == OSSUARY_ERR_WOULD_BLOCK) {
					ev |= POLLOUT;
				} else {
					BULK_FAIL(b, n);
				}
				break;
			}
			if (chunk_off == chunk_len) {
				chunk_len = 1 + splitmix(&size_rng) % cmax;
				if (chunk_len > b->total - b->sent)
					chunk_len = b->total - b->sent;
				fill(&data_rng, chunk, chunk_len);
				chunk_off = 0;
			}
			n = ossuary_write(b->c, b->fd, chunk + chunk_off,
					  chunk_len - chunk_off);
			if (n == OSSUARY_ERR_WOULD_BLOCK) {
				b->wouldblock_w++;
				ev |= POLLOUT;
				break;
			}
			if (n <= 0)
				BULK_FAIL(b, n ? n : -1000);
			if ((size_t)n > chunk_len - chunk_off)
				b->bad_count++;
			crypto_hash_sha256_update(&hs_tx, chunk + chunk_off,
						  (size_t)n);
			chunk_off += (size_t)n;
			b->sent += (size_t)n;
			progress = 1;
			burst += (size_t)n;
			if (b->ku_one_in && splitmix(&ku_rng) % b->ku_one_in == 0) {
				/* queued: it goes out ahead of the next write */
				int rr = (int)(splitmix(&ku_rng) & 1);
				int r = ossuary_key_update(b->c, rr);

				if (r < 0)
					BULK_FAIL(b, r);
				b->ku_sent[rr]++;
			}
			if (!b->nonblocking || (b->burst_max && burst >= b->burst_max))
				break; /* interleave with reads */
		}
		/* Read until nothing is left. */
		while (!eof) {
			size_t want = 1 + splitmix(&size_rng) % cmax;
			ssize_t n;

			if (b->slow)
				want = 1 + want % 3000;
			n = ossuary_read(b->c, b->fd, rbuf, want);
			count_events(b, disc);
			if (n == OSSUARY_ERR_WOULD_BLOCK) {
				ev |= POLLIN;
				break;
			}
			if (n == 0) {
				eof = 1;
				progress = 1;
				break;
			}
			if (n < 0)
				BULK_FAIL(b, n);
			if ((size_t)n > want)
				b->bad_count++;
			crypto_hash_sha256_update(&hs_rx, rbuf, (size_t)n);
			b->recvd += (size_t)n;
			progress = 1;
			if (b->slow && (b->recvd / 3000) % 64 == 0)
				usleep(2000);
			if (!b->nonblocking)
				break;
		}
		if (b->nonblocking && !progress && ev) {
			struct pollfd p = { .fd = b->fd, .events = ev };
			int r = poll(&p, 1, 10000);

			if (r == 0)
				BULK_FAIL(b, OSSUARY_ERR_TIMEOUT);
			if (r < 0 && errno != EINTR)
				BULK_FAIL(b, OSSUARY_ERR_IO);
		}
		if (!progress && !ev && ++idle > 1000000)
			BULK_FAIL(b, -1001);
	}
out:
	crypto_hash_sha256_final(&hs_tx, b->sent_hash);
	crypto_hash_sha256_final(&hs_rx, b->recv_hash);
	free(chunk);
	free(rbuf);
	return NULL;
}

void check_bulk(const struct bulk *w, const struct bulk *r)
{
	if (w->err)
		harness_note("writer side failed: %d at line %d", w->err, w->where);
	if (r->err)
		harness_note("reader side failed: %d at line %d", r->err, r->where);
	CHECK_EQ(w->err, 0);
	CHECK_EQ(r->err, 0);
	CHECK_EQ(w->bad_count, 0);
	CHECK_EQ(r->bad_count, 0);
	CHECK_EQ(w->sent, w->total);
	CHECK_EQ(r->recvd, w->total);
	CHECK_MEM(w->sent_hash, r->recv_hash, 32);
}
