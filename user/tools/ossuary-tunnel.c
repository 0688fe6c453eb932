/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ossuary-tunnel: put Ossuary encryption in front of an unmodified TCP
 * service, in the manner of spiped's two modes.
 *
 *   ossuary-tunnel -e -s SOURCE -t TARGET ...   plain in, Ossuary out
 *   ossuary-tunnel -d -s SOURCE -t TARGET ...   Ossuary in, plain out
 *   ossuary-tunnel -c CONFIG                    several tunnels, one a line
 *
 * -e accepts plain connections on SOURCE, connects to the remote tunnel
 * at TARGET and runs the handshake as the protocol's client; -d accepts
 * Ossuary connections on SOURCE, runs the handshake as the server, and
 * only then connects to the plain service at TARGET.
 *
 * After the handshake the record layer goes to the kernel module, and
 * the bytes are moved with splice(2) through one pipe per direction:
 * plain socket -> pipe -> offloaded socket (the module seals from the
 * pipe's pages) and offloaded socket -> pipe -> plain socket (the module
 * lends the opened record pages to the pipe). The plaintext never enters
 * this process. --mode copy moves it with read/write instead, --mode
 * user keeps the record layer in this process (no module needed).
 *
 * One thread, one epoll set, edge-triggered: every socket has a "can
 * read" and a "can write" flag that an event sets and EAGAIN clears, and
 * a connection is pumped until nothing moves. Handshakes are the
 * library's non-blocking ones, so a slow or silent peer never holds up
 * the others; a deadline (--handshake-timeout) ends them.
 *
 * Endings: a clean end of one direction is carried through (a plain FIN
 * becomes DISCONNECT(0) and FIN, the peer's DISCONNECT(0) becomes a FIN
 * on the plain side). Any failure (a reset, a record that fails to open,
 * a truncated stream, a write to a closed socket) resets both sockets:
 * every socket has SO_LINGER 0 until its connection ends cleanly, so an
 * error, or this process dying, is seen as a reset on both sides and
 * never as a clean end of the data.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <sodium.h>

#include "ossuary.h"
#include "uapi/linux/ossuary.h"
#include "common/clock.h"
#include "common/fingerprint.h"
#include "common/msg.h"
#include "common/sockaddr.h"
#include "common/ulp.h"

#define PROG "ossuary-tunnel"
#ifndef OSSUARY_VERSION
#define OSSUARY_VERSION "unknown"
#endif

const char tool_name[] = PROG;

enum {
	EX_OK = 0,
	EX_FAIL = 1,		/* key files, addresses, listening */
	EX_USAGE = 2,
	EX_NO_KERNEL = 3,	/* --mode splice/copy without the module */
};

enum { ENCRYPT = 1, DECRYPT = 2 };
enum { M_SPLICE, M_COPY, M_USER };
static const char *const mode_names[] = { "splice", "copy", "user" };

#define DEFAULT_MAX_CONNS 1000
#define DEFAULT_HS_TIMEOUT 10
#define COPY_BUF (64 * 1024)
#define PIPE_SIZE (256 * 1024)
#define SPLICE_LEN (1024 * 1024)
#define MAX_TUNNELS 64
#define MAX_ARGS 64

struct tunnel {
	int dir;
	const char *source, *target;
	const char *key_path, *authorized_path, *known_hosts_path;
	int accept_new, any_client, mode, max_conns, hs_timeout;
	char *argbuf;			/* the config line the strings point into */

	struct addrinfo *target_ai;
	char khname[NI_MAXHOST + NI_MAXSERV + 4];	/* known-hosts name of TARGET */
	uint8_t sk[OSSUARY_KEY_LEN];
	int have_key;
	uint8_t (*auth)[OSSUARY_KEY_LEN];
	size_t nauth;

	int lfd;
	struct ep *lep;
	char here[NI_MAXHOST + NI_MAXSERV + 4];
	int nconns, paused;
};

enum { EP_LISTEN, EP_PLAIN, EP_ENC };

struct conn;
struct ep {
	int kind;
	int fd;
	int rd, wr;			/* an event said so; EAGAIN clears */
	struct conn *c;
	struct tunnel *t;		/* EP_LISTEN */
};

/* One direction: src -> (pipe or buffer) -> dst. */
struct half {
	int pipe[2];
	size_t inpipe;
	uint8_t *buf;
	size_t off, len;
	int eof, shut;
	uint64_t bytes;
};

enum { C_CONNECT, C_SHAKE, C_RUN, C_DEAD };

struct conn {
	struct tunnel *t;
	struct conn *prev, *next;
	unsigned long id;
	int state;
	struct ep plain, enc;
	OssuaryConnection *oc;
	struct addrinfo *ai;		/* the target address being tried */
	struct half up, down;		/* up: plain -> enc, down: enc -> plain */
	int flush;			/* user mode: ciphertext the library holds */
	int peeked;			/* kernel modes: the first record was looked at */
	int retry;			/* a write refused with room: try again soon */
	double t0, deadline;
	char from[NI_MAXHOST + NI_MAXSERV + 4];
	char to[NI_MAXHOST + NI_MAXSERV + 4];
	char fpr[64];
};

static struct tunnel tunnels[MAX_TUNNELS];
static int ntunnels;
static int epfd = -1;
static struct conn *conns;
static struct conn *dead;
static unsigned long next_id = 1;
static volatile sig_atomic_t got_hup, got_term, got_usr1;

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: " PROG " -e|-d -s SOURCE -t TARGET [OPTIONS]\n"
		"       " PROG " -c CONFIG [OPTIONS]\n"
		"Encrypt an unmodified TCP service with Ossuary. The encryption runs in\n"
		"the kernel (module ossuary.ko), and the bytes never leave it: splice(2)\n"
		"moves them between the plain and the encrypted socket.\n"
		"\n"
		"  -e, --encrypt          accept plain connections on SOURCE, send them\n"
		"                         encrypted to the decrypting tunnel at TARGET\n"
		"                         (the protocol's client)\n"
		"  -d, --decrypt          accept encrypted connections on SOURCE, pass them\n"
		"                         on in plain to the service at TARGET (the server)\n"
		"  -s, --source ADDR      where to listen: HOST:PORT, [IPV6]:PORT, or :PORT\n"
		"                         for every address (IPv6 and IPv4); port 0 takes a\n"
		"                         free port, printed as \"listening on ...\"\n"
		"  -t, --target ADDR      where to connect: HOST:PORT or [IPV6]:PORT\n"
		"      --key FILE         this side's secret key file (ossuary-keygen);\n"
		"                         required with -d\n"
		"      --authorized FILE  public keys to accept, one per line. -d: the\n"
		"                         clients let in (required, or --any-client);\n"
		"                         -e: the keys the decrypting end may present.\n"
		"                         Read again on SIGHUP\n"
		"      --known-hosts FILE -e: accept the key FILE lists for TARGET\n"
		"      --accept-new       -e: trust a TARGET missing from --known-hosts on\n"
		"                         first use, and add it; a changed key is refused\n"
		"      --any-client       -d: let in clients with any key, or none\n"
		"  -m, --mode MODE        splice (default): kernel record layer, splice(2);\n"
		"                         copy: kernel record layer, read/write;\n"
		"                         user: record layer in this process, no module\n"
		"  -n, --max-conns N      connections at once per tunnel (default %d);\n"
		"                         more wait in the listen queue\n"
		"  -w, --handshake-timeout SECONDS\n"
		"                         time to connect and finish the handshake\n"
		"                         (default %d)\n"
		"  -c, --config FILE      several tunnels: each line holds the options of\n"
		"                         one (as on the command line, # comments); options\n"
		"                         given beside -c are every line's defaults\n"
		"  -v, --verbose          a line as each connection starts, too\n"
		"  -h, --help             show this help\n"
		"      --version          show the version\n"
		"\n"
		"Each connection ends with one line on standard error: addresses, the\n"
		"peer's key fingerprint, the mode, bytes each way, and how it ended. A\n"
		"failure on either side (reset, integrity, truncation) resets the other\n"
		"side too; a clean end of either direction is passed on as one.\n"
		"\n"
		"Exit status: 0 stopped by SIGTERM or SIGINT; 1 setup failed (key files,\n"
		"addresses); 2 usage; 3 the ossuary kernel module is not loaded (load it,\n"
		"or use --mode user).\n",
		DEFAULT_MAX_CONNS, DEFAULT_HS_TIMEOUT);
}

/* ---- helpers ---- */

static int again(int e)
{
	return e == EAGAIN || e == EWOULDBLOCK;
}


/* "HOST:PORT", "[V6]:PORT", ":PORT" (listen: any) into host and port. */
static int split_addr(const char *a, char *host, size_t hcap, char *port, size_t pcap)
{
	const char *colon;
	size_t hl;

	if (a[0] == '[') {
		const char *close = strchr(a, ']');

		if (!close || close[1] != ':')
			return -1;
		hl = (size_t)(close - a - 1);
		if (hl >= hcap)
			return -1;
		memcpy(host, a + 1, hl);
		host[hl] = '\0';
		colon = close + 1;
	} else {
		colon = strrchr(a, ':');
		if (!colon || strchr(a, ':') != colon)
			return -1;
		hl = (size_t)(colon - a);
		if (hl >= hcap)
			return -1;
		memcpy(host, a, hl);
		host[hl] = '\0';
	}
	if (strlen(colon + 1) >= pcap || !colon[1])
		return -1;
	strcpy(port, colon + 1);
	for (const char *p = port; *p; p++)
		if (*p < '0' || *p > '9')
			return -1;
	if (strtol(port, NULL, 10) > 65535)
		return -1;
	return 0;
}

static int resolve(const char *what, const char *addr, int passive, struct addrinfo **res)
{
	char host[NI_MAXHOST], port[NI_MAXSERV];
	struct addrinfo hints;
	int r;

	if (split_addr(addr, host, sizeof(host), port, sizeof(port)) < 0) {
		msg("bad %s '%s': HOST:PORT, [IPV6]:PORT%s, with a port from %d to 65535",
		    what, addr, passive ? " or :PORT" : "", passive ? 0 : 1);
		return -1;
	}
	if (!passive && (!host[0] || strtol(port, NULL, 10) == 0)) {
		msg("bad %s '%s': a host and a port from 1 to 65535", what, addr);
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = passive ? AI_PASSIVE : 0;
	r = getaddrinfo(host[0] ? host : NULL, port, &hints, res);
	if (r != 0) {
		msg("cannot resolve %s '%s': %s", what, addr,
		    r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		return -1;
	}
	return 0;
}

/* ---- keys ---- */

/*
 * The authorized keys of a tunnel, kept in memory so that each
 * connection gets them without reading the file, and SIGHUP replaces
 * them. The library checks the file (its messages say what is wrong and
 * where); the keys are then the first word of each line that is no
 * comment, blank or type line.
 */
static int load_authorized(struct tunnel *t, int reload)
{
	OssuaryConnection *probe = ossuary_create_connection(CONN_TYPE_AUTHENTICATED_SERVER, NULL);
	uint8_t (*keys)[OSSUARY_KEY_LEN] = NULL;
	size_t n = 0, cap = 0;
	char *line = NULL;
	size_t lcap = 0;
	FILE *f;
	int r;

	if (!probe) {
		msg("out of memory");
		return -1;
	}
	r = ossuary_load_authorized_keys(probe, t->authorized_path);
	ossuary_destroy_connection(&probe);
	if (r <= 0) {
		if (r == 0)
			msg("--authorized %s holds no key%s", t->authorized_path,
			    reload ? "; keeping the keys loaded before" : "");
		else
			msg("--authorized %s%s", ossuary_key_file_error(),
			    reload ? "; keeping the keys loaded before" : "");
		return -1;
	}
	f = fopen(t->authorized_path, "re");
	if (!f) {
		msg("cannot open --authorized %s: %s", t->authorized_path, strerror(errno));
		return -1;
	}
	while (getline(&line, &lcap, f) >= 0) {
		char *p = line + strspn(line, " \t");
		size_t w = strcspn(p, " \t\r\n");
		uint8_t key[OSSUARY_KEY_LEN];
		size_t kl;

		if (w == 0 || *p == '#' || w != 2 * OSSUARY_KEY_LEN)
			continue;
		if (sodium_hex2bin(key, sizeof(key), p, w, NULL, &kl, NULL) != 0 ||
		    kl != sizeof(key))
			continue;
		if (n == cap) {
			void *nk;

			cap = cap ? 2 * cap : 16;
			nk = realloc(keys, cap * sizeof(*keys));
			if (!nk) {
				msg("out of memory");
				free(keys);
				free(line);
				fclose(f);
				return -1;
			}
			keys = nk;
		}
		memcpy(keys[n++], key, sizeof(key));
	}
	free(line);
	fclose(f);
	if (n != (size_t)r) {
		msg("--authorized %s changed while it was read; %s", t->authorized_path,
		    reload ? "keeping the keys loaded before" : "try again");
		free(keys);
		return -1;
	}
	free(t->auth);
	t->auth = keys;
	t->nauth = n;
	if (reload)
		msg("reloaded %zu authorized key%s from %s", n, n == 1 ? "" : "s",
		    t->authorized_path);
	else
		info("%zu authorized key%s from %s", n, n == 1 ? "" : "s", t->authorized_path);
	return 0;
}

/* ---- connections ---- */

static int ep_add(struct ep *e)
{
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
		.data.ptr = e,
	};

	return epoll_ctl(epfd, EPOLL_CTL_ADD, e->fd, &ev);
}

static void close_half(struct half *h)
{
	if (h->pipe[0] >= 0)
		close(h->pipe[0]);
	if (h->pipe[1] >= 0)
		close(h->pipe[1]);
	h->pipe[0] = h->pipe[1] = -1;
	free(h->buf);
	h->buf = NULL;
}

static void accept_more(struct tunnel *t);

/*
 * The one line a connection leaves. how: "closed cleanly", or what went
 * wrong. abort: the sockets to reset (linger 0) rather than close; a
 * failed handshake closes the encrypted one, so that the peer reads the
 * DISCONNECT the library sent, and resets the plain one.
 */
enum { ABORT_PLAIN = 1, ABORT_ENC = 2, ABORT_BOTH = 3 };
static void conn_end(struct conn *c, int abort, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void conn_end(struct conn *c, int abort, const char *fmt, ...)
{
	struct tunnel *t = c->t;
	char how[256];
	va_list ap;

	if (c->state == C_DEAD)
		return;
	va_start(ap, fmt);
	vsnprintf(how, sizeof(how), fmt, ap);
	va_end(ap);
	msg("conn %lu %s %s -> %s peer %s mode %s: %" PRIu64 " bytes %s, %" PRIu64
	    " bytes %s, %.3f s, %s",
	    c->id, t->dir == ENCRYPT ? "encrypt" : "decrypt", c->from,
	    c->to[0] ? c->to : t->target, c->fpr[0] ? c->fpr : "-",
	    c->state == C_RUN ? mode_names[t->mode] : "none",
	    c->up.bytes, "to the tunnel", c->down.bytes, "from the tunnel",
	    now_s() - c->t0, how);
	for (struct ep *e = &c->plain; e; e = e == &c->plain ? &c->enc : NULL) {
		if (e->fd < 0)
			continue;
		set_linger(e->fd, !!(abort & (e->kind == EP_ENC ? ABORT_ENC : ABORT_PLAIN)));
		close(e->fd);	/* also takes it out of the epoll set */
		e->fd = -1;
	}
	close_half(&c->up);
	close_half(&c->down);
	if (c->oc)
		ossuary_destroy_connection(&c->oc);
	c->state = C_DEAD;
	/* Out of the live list; freed after this batch of events. */
	if (c->prev)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = dead;
	dead = c;
	t->nconns--;
	if (t->paused && t->nconns < t->max_conns) {
		t->paused = 0;
		accept_more(t);
	}
}

static struct conn *conn_new(struct tunnel *t)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->t = t;
	c->id = next_id++;
	c->plain.kind = EP_PLAIN;
	c->enc.kind = EP_ENC;
	c->plain.fd = c->enc.fd = -1;
	c->plain.c = c->enc.c = c;
	c->up.pipe[0] = c->up.pipe[1] = c->down.pipe[0] = c->down.pipe[1] = -1;
	c->t0 = now_s();
	c->deadline = c->t0 + t->hs_timeout;
	c->next = conns;
	if (conns)
		conns->prev = c;
	conns = c;
	t->nconns++;
	return c;
}

/* The next target address, non-blocking; the connect completes on EPOLLOUT. */
static int start_connect(struct conn *c, struct ep *e)
{
	for (; c->ai; c->ai = c->ai->ai_next) {
		int fd = socket(c->ai->ai_family, c->ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
				c->ai->ai_protocol);

		if (fd < 0)
			continue;
		set_linger(fd, 1);
		name_addr(c->ai->ai_addr, c->ai->ai_addrlen, c->to, sizeof(c->to));
		if (connect(fd, c->ai->ai_addr, c->ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
			info("conn %lu: cannot connect to %s: %s", c->id, c->to, strerror(errno));
			close(fd);
			continue;
		}
		e->fd = fd;
		e->rd = e->wr = 0;
		if (ep_add(e) < 0) {
			close(fd);
			e->fd = -1;
			return -1;
		}
		c->state = C_CONNECT;
		return 0;
	}
	return -1;
}

static void conn_pump(struct conn *c);

static int set_pipes(struct half *h)
{
	if (pipe2(h->pipe, O_NONBLOCK | O_CLOEXEC) < 0)
		return -1;
	/* Larger pipes, where the per-user limit allows: fewer wakeups. */
	(void)fcntl(h->pipe[1], F_SETPIPE_SZ, PIPE_SIZE);
	return 0;
}

/* Both sockets are connected and the channel is up: start moving bytes. */
static void conn_run(struct conn *c)
{
	struct tunnel *t = c->t;
	int one = 1;

	setsockopt(c->plain.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (t->mode == M_SPLICE) {
		if (set_pipes(&c->up) < 0 || set_pipes(&c->down) < 0) {
			conn_end(c, ABORT_BOTH, "ended: cannot make pipes: %s; reset", strerror(errno));
			return;
		}
	} else {
		c->up.buf = malloc(COPY_BUF);
		c->down.buf = malloc(COPY_BUF);
		if (!c->up.buf || !c->down.buf) {
			conn_end(c, ABORT_BOTH, "ended: out of memory; reset");
			return;
		}
	}
	c->state = C_RUN;
	c->peeked = t->mode == M_USER;
	/* Bytes may be waiting already: an edge we will never see. */
	c->plain.rd = c->plain.wr = c->enc.rd = c->enc.wr = 1;
	info("conn %lu %s -> %s: mode %s", c->id, c->from, c->to, mode_names[t->mode]);
	conn_pump(c);
}

/* After the handshake: the record layer to the kernel, unless --mode user. */
static int hand_over(struct conn *c)
{
	struct tunnel *t = c->t;
	struct timeval tv = { .tv_sec = 0, .tv_usec = 10000 };
	int r;

	if (t->mode == M_USER)
		return 0;
	r = ossuary_offload(c->oc, c->enc.fd, 0);
	if (r != OSSUARY_MODE_KERNEL) {
		int e = errno;

		conn_end(c, ABORT_BOTH, "ended: cannot hand the connection to the kernel: %s%s%s; reset",
			 ossuary_strerror(r), r == OSSUARY_ERR_IO ? ": " : "",
			 r == OSSUARY_ERR_IO ? strerror(e) : "");
		return -1;
	}
	/* shutdown(SHUT_WR) waits this long at most to queue DISCONNECT(0). */
	setsockopt(c->enc.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return 0;
}

/* Refuse the server's key: DISCONNECT(2) goes out before the close. */
static void refuse(struct conn *c)
{
	short w;

	ossuary_refuse_server(c->oc);
	(void)ossuary_handshake_step(c->oc, c->enc.fd, &w);
}

/* A client paused on a server key not in --authorized. 0 approve, -1 refused. */
static int decide_trust(struct conn *c)
{
	struct tunnel *t = c->t;
	uint8_t key[OSSUARY_KEY_LEN];
	struct fpr f;
	int r;

	if (ossuary_remote_public_key(c->oc, key, sizeof(key)) != OSSUARY_OK) {
		refuse(c);
		conn_end(c, ABORT_PLAIN, "refused: the server presented no key; reset");
		return -1;
	}
	f = fingerprint(key);
	snprintf(c->fpr, sizeof(c->fpr), "%s", f.s);
	if (!t->known_hosts_path) {
		refuse(c);
		conn_end(c, ABORT_PLAIN, "refused: the server's key %s is not in %s; reset", f.s,
			 t->authorized_path);
		return -1;
	}
	r = ossuary_known_hosts_check(t->known_hosts_path, t->khname, key);
	if (r == OSSUARY_OK)
		return 0;
	if (r == OSSUARY_ERR_KEY_CHANGED) {
		refuse(c);
		conn_end(c, ABORT_PLAIN, "refused: THE KEY OF %s HAS CHANGED (now %s): %s; reset",
			 t->khname, f.s, ossuary_key_file_error());
		return -1;
	}
	if (r != OSSUARY_ERR_UNTRUSTED_SERVER) {
		refuse(c);
		conn_end(c, ABORT_PLAIN, "refused: --known-hosts %s; reset", ossuary_key_file_error());
		return -1;
	}
	if (!t->accept_new) {
		refuse(c);
		conn_end(c, ABORT_PLAIN, "refused: %s is not in --known-hosts %s (its key %s; "
			 "--accept-new trusts it on first use); reset", t->khname,
			 t->known_hosts_path, f.s);
		return -1;
	}
	if (ossuary_known_hosts_add(t->known_hosts_path, t->khname, key) != OSSUARY_OK) {
		refuse(c);
		conn_end(c, ABORT_PLAIN, "refused: cannot remember %s in --known-hosts %s; reset",
			 t->khname, ossuary_key_file_error());
		return -1;
	}
	msg("added %s %s to %s", t->khname, f.s, t->known_hosts_path);
	return 0;
}

static const char *hs_why(int r)
{
	switch (r) {
	case OSSUARY_ERR_AUTH:
		return "refused: the peer's key is not authorized";
	case OSSUARY_ERR_REFUSED:
		return "refused by the peer: it does not accept our key";
	case OSSUARY_ERR_NOT_OSSUARY:
		return "handshake failed: the peer does not speak Ossuary (wrong port?)";
	case OSSUARY_ERR_TRUNCATED:
		return "handshake failed: the peer closed the connection";
	case OSSUARY_ERR_HANDSHAKE_FAILED:
		return "handshake failed: the server could not open our CLIENT_AUTH";
	default:
		return NULL;
	}
}

/* Handshake steps until it would block, fails or is done. */
static void conn_shake(struct conn *c)
{
	struct tunnel *t = c->t;
	uint8_t key[OSSUARY_KEY_LEN];
	short wait = 0;
	int r;

	for (;;) {
		r = ossuary_handshake_step(c->oc, c->enc.fd, &wait);
		if (r != OSSUARY_ERR_UNTRUSTED_SERVER)
			break;
		if (decide_trust(c) < 0)
			return;
		r = ossuary_approve_server(c->oc);
		if (r != OSSUARY_OK)
			break;
	}
	if (r == OSSUARY_ERR_WOULD_BLOCK)
		return;
	if (r < 0) {
		const char *why = hs_why(r);
		int e = errno;

		if (ossuary_remote_public_key(c->oc, key, sizeof(key)) == OSSUARY_OK)
			snprintf(c->fpr, sizeof(c->fpr), "%s", fingerprint(key).s);
		if (why)
			conn_end(c, ABORT_PLAIN, "%s; reset", why);
		else
			conn_end(c, ABORT_PLAIN, "handshake failed: %s%s%s; reset", ossuary_strerror(r),
				 r == OSSUARY_ERR_IO ? ": " : "", r == OSSUARY_ERR_IO ? strerror(e) : "");
		return;
	}
	if (ossuary_remote_public_key(c->oc, key, sizeof(key)) == OSSUARY_OK)
		snprintf(c->fpr, sizeof(c->fpr), "%s", fingerprint(key).s);
	else
		snprintf(c->fpr, sizeof(c->fpr), "anonymous");
	if (hand_over(c) < 0)
		return;
	if (t->dir == ENCRYPT) {
		conn_run(c);
		return;
	}
	/* -d: only an authenticated peer gets a connection to the service. */
	c->ai = t->target_ai;
	if (start_connect(c, &c->plain) < 0)
		conn_end(c, ABORT_BOTH, "ended: cannot connect to %s: %s; reset", t->target,
			 strerror(errno));
}

/* The outgoing connect finished (EPOLLOUT) or failed. */
static void conn_connected(struct conn *c, struct ep *e)
{
	struct tunnel *t = c->t;
	socklen_t l = sizeof(int);
	int err = 0;

	if (getsockopt(e->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
		err = errno;
	if (err == 0 && !e->wr)
		return;	/* still connecting */
	if (err) {
		info("conn %lu: cannot connect to %s: %s", c->id, c->to, strerror(err));
		close(e->fd);
		e->fd = -1;
		c->ai = c->ai->ai_next;
		if (start_connect(c, e) < 0)
			conn_end(c, ABORT_BOTH, "ended: cannot connect to %s: %s; reset", t->target,
				 strerror(err));
		return;
	}
	if (t->dir == ENCRYPT) {
		c->state = C_SHAKE;
		conn_shake(c);
	} else {
		conn_run(c);
	}
}

/* ---- moving bytes ---- */

/* Words for a failure on the encrypted side, by errno (kernel) ... */
static const char *enc_errno_why(int e)
{
	switch (e) {
	case EBADMSG:
		return "integrity failure: a record failed to open (altered in transit)";
	case EPROTO:
		return "protocol error: not a valid Ossuary record";
	case EPIPE:
		return "truncated: the tunnel's stream ended without DISCONNECT(0)";
	case ECONNRESET:
		return "reset by the tunnel";
	default:
		return NULL;
	}
}

/* ... and by library code (user mode). */
static const char *enc_code_why(int r)
{
	switch (r) {
	case OSSUARY_ERR_DECRYPT:
	case OSSUARY_ERR_RESET:
		return "integrity failure: a record failed to open (altered in transit)";
	case OSSUARY_ERR_PROTOCOL:
	case OSSUARY_ERR_TOO_MANY_RESETS:
		return "protocol error: not a valid Ossuary record";
	case OSSUARY_ERR_TRUNCATED:
		return "truncated: the tunnel's stream ended without DISCONNECT(0)";
	case OSSUARY_ERR_DISCONNECTED:
		return "the tunnel ended the connection with an error";
	case OSSUARY_ERR_REFUSED:
		return "refused by the peer: it does not accept our key";
	default:
		return NULL;
	}
}

/*
 * Kernel modes: the first record from the tunnel, peeked at with the
 * record-type cmsg, so that a DISCONNECT with a reason (the server
 * refusing our key right after the handshake) is told apart from a
 * reset; splice() alone would only say ECONNRESET. 1 done, 0 try again
 * later, -1 ended.
 */
static int peek_first(struct conn *c)
{
	union {
		char buf[CMSG_SPACE(sizeof(uint8_t))];
		struct cmsghdr align;
	} ctl;
	uint8_t b;
	struct iovec iov = { .iov_base = &b, .iov_len = 1 };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
	};
	ssize_t n = recvmsg(c->enc.fd, &mh, MSG_PEEK | MSG_DONTWAIT);

	if (n < 0 && (again(errno) || errno == EINTR)) {
		c->enc.rd = 0;
		return 0;
	}
	c->peeked = 1;
	if (n != 1)
		return 1;	/* the end, or an error: splice says it again */
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level == SOL_OSSUARY && cm->cmsg_type == OSSUARY_GET_RECORD_TYPE &&
		    cm->cmsg_len >= CMSG_LEN(1) && *CMSG_DATA(cm) == OSSUARY_RECORD_DISCONNECT) {
			if (b == OSSUARY_DISCONNECT_AUTH)
				conn_end(c, ABORT_BOTH, "refused by the peer: it does not accept "
					 "our key; reset");
			else
				conn_end(c, ABORT_BOTH, "the tunnel ended the connection with an "
					 "error (DISCONNECT reason %u); reset", b);
			return -1;
		}
	}
	return 1;
}

static void fail_errno(struct conn *c, struct ep *e, const char *what, int err)
{
	const char *side = e->kind == EP_ENC ? "tunnel"
			   : c->t->dir == ENCRYPT ? "client" : "service";
	const char *why = e->kind == EP_ENC ? enc_errno_why(err) : NULL;

	if (why)
		conn_end(c, ABORT_BOTH, "%s while %s; reset", why, what);
	else if (err == ECONNRESET || err == EPIPE || err == ENOTCONN)
		conn_end(c, ABORT_BOTH, "reset by the %s while %s; reset", side, what);
	else
		conn_end(c, ABORT_BOTH, "%s: %s side: %s; reset", what, side, strerror(err));
}

static void fail_code(struct conn *c, const char *what, int r)
{
	const char *why = enc_code_why(r);
	int e = errno;

	if (r == OSSUARY_ERR_IO) {
		fail_errno(c, &c->enc, what, e);
		return;
	}
	if (why)
		conn_end(c, ABORT_BOTH, "%s while %s; reset", why, what);
	else
		conn_end(c, ABORT_BOTH, "%s: tunnel side: %s; reset", what, ossuary_strerror(r));
}

/*
 * A write to e would block. Edge-triggered epoll reports EPOLLOUT only
 * when the socket's write_space wakes it, and TCP calls that only for a
 * socket marked SOCK_NOSPACE. The module's sendmsg can refuse with
 * EAGAIN before TCP is asked (its "TCP has no room" check) and then
 * nothing marks it, so the wakeup never comes. poll() marks it (as
 * tcp_poll does for any poller that finds no room), and says whether
 * there is room by now: then the write is tried again soon.
 */
static void write_blocked(struct conn *c, struct ep *e)
{
	struct pollfd p = { .fd = e->fd, .events = POLLOUT };

	if (e->kind == EP_ENC && c->t->mode != M_USER && poll(&p, 1, 0) == 1 &&
	    (p.revents & POLLOUT)) {
		c->retry = 1;
		return;
	}
	e->wr = 0;
}

/* End our write direction on dst. 1 done, 0 try later, -1 failed (conn ended). */
static int shut_dst(struct conn *c, struct ep *dst)
{
	int r;

	if (dst->kind == EP_ENC && c->t->mode == M_USER) {
		r = ossuary_shutdown(c->oc, dst->fd);
		if (r == OSSUARY_ERR_WOULD_BLOCK) {
			write_blocked(c, dst);
			return 0;
		}
		if (r < 0) {
			fail_code(c, "closing the direction", r);
			return -1;
		}
		return 1;
	}
	if (shutdown(dst->fd, SHUT_WR) < 0) {
		if (again(errno) || errno == EINTR) {
			write_blocked(c, dst);
			return 0;
		}
		fail_errno(c, dst, "closing the direction", errno);
		return -1;
	}
	return 1;
}

/*
 * A clean end of the source is passed on to dst once nothing of it is
 * held any more (held: bytes still in the pipe or the buffer), by both
 * modes alike. 1 done now (progress), 0 not yet due or already done,
 * -1 failed (conn ended).
 */
static int pass_on_eof(struct conn *c, struct half *h, struct ep *dst, size_t held)
{
	int r;

	if (!h->eof || held || h->shut || !dst->wr)
		return 0;
	r = shut_dst(c, dst);
	if (r < 0)
		return -1;
	h->shut = r;
	return r;
}

/* splice mode: src -> pipe -> dst. 1 progress, 0 none, -1 ended. */
static int step_splice(struct conn *c, struct half *h, struct ep *src, struct ep *dst)
{
	int progress = 0, done;
	ssize_t n;

	if (h->inpipe && dst->wr) {
		n = splice(h->pipe[0], NULL, dst->fd, NULL, h->inpipe,
			   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			h->inpipe -= (size_t)n;
			h->bytes += (uint64_t)n;
			progress = 1;
		} else if (n < 0 && again(errno)) {
			write_blocked(c, dst);
		} else if (n < 0 && errno != EINTR) {
			fail_errno(c, dst, "sending", errno);
			return -1;
		}
	}
	if (!h->eof && src->rd && (src->kind != EP_ENC || c->peeked)) {
		n = splice(src->fd, NULL, h->pipe[1], NULL, SPLICE_LEN,
			   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			h->inpipe += (size_t)n;
			progress = 1;
		} else if (n == 0) {
			h->eof = 1;
			progress = 1;
		} else if (again(errno)) {
			/* The source is dry, or the pipe is full: only an empty
			 * pipe tells them apart. */
			if (!h->inpipe)
				src->rd = 0;
		} else if (errno != EINTR) {
			fail_errno(c, src, "receiving", errno);
			return -1;
		}
	}
	done = pass_on_eof(c, h, dst, h->inpipe);
	return done < 0 ? -1 : progress | done;
}

/* copy and user modes: src -> buffer -> dst. */
static int step_copy(struct conn *c, struct half *h, struct ep *src, struct ep *dst)
{
	int user = c->t->mode == M_USER, progress = 0, done;
	ssize_t n;

	if (h->len && dst->wr) {
		if (user && dst->kind == EP_ENC) {
			n = ossuary_write(c->oc, dst->fd, h->buf + h->off, h->len);
			if (n == OSSUARY_ERR_WOULD_BLOCK) {
				write_blocked(c, dst);
				n = 0;
			} else if (n < 0) {
				fail_code(c, "sending", (int)n);
				return -1;
			} else {
				c->flush = 1;
			}
		} else {
			n = send(dst->fd, h->buf + h->off, h->len, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n < 0 && again(errno)) {
				write_blocked(c, dst);
				n = 0;
			} else if (n < 0 && errno == EINTR) {
				n = 0;
			} else if (n < 0) {
				fail_errno(c, dst, "sending", errno);
				return -1;
			}
		}
		if (n > 0) {
			h->off += (size_t)n;
			h->len -= (size_t)n;
			h->bytes += (uint64_t)n;
			if (!h->len)
				h->off = 0;
			progress = 1;
		}
	}
	if (!h->eof && !h->len && src->rd && (src->kind != EP_ENC || c->peeked)) {
		if (user && src->kind == EP_ENC) {
			n = ossuary_read(c->oc, src->fd, h->buf, COPY_BUF);
			/* A read may owe the peer a reply (KEY_UPDATE(0)). */
			c->flush = 1;
			if (n == OSSUARY_ERR_WOULD_BLOCK) {
				src->rd = 0;
			} else if (n < 0) {
				fail_code(c, "receiving", (int)n);
				return -1;
			}
		} else {
			n = recv(src->fd, h->buf, COPY_BUF, MSG_DONTWAIT);
			if (n < 0 && again(errno)) {
				src->rd = 0;
			} else if (n < 0 && errno != EINTR) {
				fail_errno(c, src, "receiving", errno);
				return -1;
			}
		}
		if (n > 0) {
			h->len = (size_t)n;
			progress = 1;
		} else if (n == 0) {
			h->eof = 1;
			progress = 1;
		}
	}
	if (user && c->flush && c->enc.wr) {
		n = ossuary_write(c->oc, c->enc.fd, NULL, 0);
		if (n == OSSUARY_ERR_WOULD_BLOCK) {
			write_blocked(c, &c->enc);
		} else if (n < 0) {
			fail_code(c, "sending", (int)n);
			return -1;
		} else {
			c->flush = 0;
		}
	}
	done = pass_on_eof(c, h, dst, h->len);
	return done < 0 ? -1 : progress | done;
}

static void conn_pump(struct conn *c)
{
	int (*step)(struct conn *, struct half *, struct ep *, struct ep *) =
		c->t->mode == M_SPLICE ? step_splice : step_copy;

	for (;;) {
		int a, b;

		if (!c->peeked && c->enc.rd && peek_first(c) < 0)
			return;
		a = step(c, &c->up, &c->plain, &c->enc);
		if (a < 0)
			return;
		b = step(c, &c->down, &c->enc, &c->plain);
		if (b < 0)
			return;
		if (c->up.shut && c->down.shut) {
			conn_end(c, 0, "closed cleanly");
			return;
		}
		if (!a && !b)
			return;
	}
}

/*
 * Connections whose last write was refused though poll() saw room (see
 * write_blocked()): no event may come for them, so they are pumped from
 * the main loop.
 */
static int pump_retries(void)
{
	int any = 0;

	for (struct conn *c = conns, *nx; c; c = nx) {
		nx = c->next;
		if (c->state == C_RUN && c->retry) {
			c->retry = 0;
			conn_pump(c);
			any = 1;
		}
	}
	return any;
}

static void conn_event(struct conn *c, struct ep *e, uint32_t ev)
{
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		e->rd = 1;
	if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		e->wr = 1;
	switch (c->state) {
	case C_CONNECT:
		/* The socket being connected is the one without an Ossuary
		 * peer yet (-e: enc; -d: plain); events on the other wait. */
		if ((c->t->dir == ENCRYPT) == (e->kind == EP_ENC))
			conn_connected(c, e);
		break;
	case C_SHAKE:
		if (e->kind == EP_ENC)
			conn_shake(c);
		break;
	case C_RUN:
		conn_pump(c);
		break;
	}
}

/* ---- listening ---- */

static void conn_accepted(struct tunnel *t, int fd, const struct sockaddr *sa, socklen_t sl)
{
	struct conn *c = conn_new(t);
	connection_type_t type;

	if (!c) {
		msg("out of memory: connection dropped");
		set_linger(fd, 1);
		close(fd);
		return;
	}
	set_linger(fd, 1);
	name_addr(sa, sl, c->from, sizeof(c->from));
	if (t->dir == ENCRYPT) {
		type = CONN_TYPE_CLIENT;
		c->plain.fd = fd;
	} else {
		type = t->nauth ? CONN_TYPE_AUTHENTICATED_SERVER : CONN_TYPE_UNAUTHENTICATED_SERVER;
		c->enc.fd = fd;
	}
	c->oc = ossuary_create_connection(type, t->have_key ? t->sk : NULL);
	if (!c->oc || (t->nauth && ossuary_add_authorized_keys(c->oc, t->auth, t->nauth) < 0)) {
		conn_end(c, ABORT_BOTH, "ended: cannot create the connection (out of memory?); reset");
		return;
	}
	if (ep_add(t->dir == ENCRYPT ? &c->plain : &c->enc) < 0) {
		conn_end(c, ABORT_BOTH, "ended: epoll: %s; reset", strerror(errno));
		return;
	}
	info("conn %lu %s: from %s", c->id, t->dir == ENCRYPT ? "encrypt" : "decrypt", c->from);
	if (t->dir == ENCRYPT) {
		c->ai = t->target_ai;
		if (start_connect(c, &c->enc) < 0)
			conn_end(c, ABORT_BOTH, "ended: cannot connect to %s: %s; reset", t->target,
				 strerror(errno));
	} else {
		c->state = C_SHAKE;
		snprintf(c->to, sizeof(c->to), "%s", t->target);
		c->enc.rd = c->enc.wr = 1;
		conn_shake(c);
	}
}

static void accept_more(struct tunnel *t)
{
	while (!t->paused) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd;

		if (t->nconns >= t->max_conns) {
			t->paused = 1;
			info("%s: %d connections, the limit: the next ones wait", t->here,
			     t->nconns);
			return;
		}
		fd = accept4(t->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (!again(errno))
				msg("accept on %s: %s", t->here, strerror(errno));
			return;
		}
		conn_accepted(t, fd, (struct sockaddr *)&ss, sl);
	}
}

static int listen_on(struct tunnel *t)
{
	struct addrinfo *res, *ai;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int one = 1, zero = 0, e = 0;
	int any = t->source[0] == ':';

	if (resolve("--source", t->source, 1, &res) < 0)
		return -1;
	t->lfd = -1;
	/* ":PORT": the IPv6 wildcard first, which takes IPv4 too. */
	for (int pass = 0; pass < 2 && t->lfd < 0; pass++) {
		for (ai = res; ai && t->lfd < 0; ai = ai->ai_next) {
			if (any && (ai->ai_family == AF_INET6) != (pass == 0))
				continue;
			if (!any && pass == 1)
				break;
			t->lfd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
					ai->ai_protocol);
			if (t->lfd < 0) {
				e = errno;
				continue;
			}
			setsockopt(t->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (ai->ai_family == AF_INET6)
				setsockopt(t->lfd, IPPROTO_IPV6, IPV6_V6ONLY, any ? &zero : &one,
					   sizeof(int));
			if (bind(t->lfd, ai->ai_addr, ai->ai_addrlen) == 0 &&
			    listen(t->lfd, SOMAXCONN) == 0)
				break;
			e = errno;
			close(t->lfd);
			t->lfd = -1;
		}
	}
	freeaddrinfo(res);
	if (t->lfd < 0) {
		msg("cannot listen on %s: %s", t->source, strerror(e));
		return -1;
	}
	if (getsockname(t->lfd, (struct sockaddr *)&ss, &sl) == 0)
		name_addr((struct sockaddr *)&ss, sl, t->here, sizeof(t->here));
	t->lep = calloc(1, sizeof(*t->lep));
	if (!t->lep)
		return -1;
	t->lep->kind = EP_LISTEN;
	t->lep->fd = t->lfd;
	t->lep->t = t;
	if (ep_add(t->lep) < 0) {
		msg("epoll: %s", strerror(errno));
		return -1;
	}
	msg("listening on %s (%s to %s, mode %s)", t->here,
	    t->dir == ENCRYPT ? "encrypt" : "decrypt", t->target, mode_names[t->mode]);
	return 0;
}

/* ---- options ---- */

static int parse_int(const char *what, const char *s, int min, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > INT_MAX / 1000) {
		msg("bad %s '%s': a number from %d", what, s, min);
		return -1;
	}
	*out = (int)v;
	return 0;
}

/*
 * Options into t (whose fields already hold the defaults); *config set
 * by -c. Works on a config line's words as on the command line.
 */
static int parse_args(int argc, char **argv, struct tunnel *t, const char **config)
{
	enum { OPT_KEY = 256, OPT_AUTH, OPT_KH, OPT_ACCEPT, OPT_ANY, OPT_VERSION };
	static const struct option opts[] = {
		{ "encrypt", no_argument, NULL, 'e' },
		{ "decrypt", no_argument, NULL, 'd' },
		{ "source", required_argument, NULL, 's' },
		{ "target", required_argument, NULL, 't' },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "authorized", required_argument, NULL, OPT_AUTH },
		{ "known-hosts", required_argument, NULL, OPT_KH },
		{ "accept-new", no_argument, NULL, OPT_ACCEPT },
		{ "any-client", no_argument, NULL, OPT_ANY },
		{ "mode", required_argument, NULL, 'm' },
		{ "max-conns", required_argument, NULL, 'n' },
		{ "handshake-timeout", required_argument, NULL, 'w' },
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 0;	/* glibc: start afresh, for every config line */
	while ((c = getopt_long(argc, argv, "eds:t:m:n:w:c:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'e': t->dir = ENCRYPT; break;
		case 'd': t->dir = DECRYPT; break;
		case 's': t->source = optarg; break;
		case 't': t->target = optarg; break;
		case OPT_KEY: t->key_path = optarg; break;
		case OPT_AUTH: t->authorized_path = optarg; break;
		case OPT_KH: t->known_hosts_path = optarg; break;
		case OPT_ACCEPT: t->accept_new = 1; break;
		case OPT_ANY: t->any_client = 1; break;
		case 'm':
			if (!strcmp(optarg, "splice"))
				t->mode = M_SPLICE;
			else if (!strcmp(optarg, "copy"))
				t->mode = M_COPY;
			else if (!strcmp(optarg, "user") || !strcmp(optarg, "userspace"))
				t->mode = M_USER;
			else {
				msg("bad --mode '%s': splice, copy or user", optarg);
				return -1;
			}
			break;
		case 'n':
			if (parse_int("--max-conns", optarg, 1, &t->max_conns) < 0)
				return -1;
			break;
		case 'w':
			if (parse_int("--handshake-timeout", optarg, 1, &t->hs_timeout) < 0)
				return -1;
			break;
		case 'c':
			if (!config) {
				msg("-c in a config file");
				return -1;
			}
			*config = optarg;
			break;
		case 'v': verbose = 1; break;
		case 'h':
			usage(stdout);
			exit(EX_OK);
		case OPT_VERSION:
			printf(PROG " " OSSUARY_VERSION "\n");
			exit(EX_OK);
		default:
			return -1;
		}
	}
	if (optind < argc) {
		msg("unexpected argument '%s'", argv[optind]);
		return -1;
	}
	return 0;
}

/* A complete tunnel? (After the command line, or a config line.) */
static int check_tunnel(const struct tunnel *t, const char *where)
{
	const char *w = where ? where : "";
	const char *sep = where ? ": " : "";

	if (!t->dir) {
		msg("%s%s-e (encrypt) or -d (decrypt)?", w, sep);
		return -1;
	}
	if (!t->source || !t->target) {
		msg("%s%s-s SOURCE and -t TARGET are both needed", w, sep);
		return -1;
	}
	if (t->dir == DECRYPT) {
		if (!t->key_path) {
			msg("%s%s-d needs --key: the decrypting end proves who it is", w, sep);
			return -1;
		}
		if (!t->authorized_path && !t->any_client) {
			msg("%s%s-d needs --authorized FILE (the clients let in), or "
			    "--any-client", w, sep);
			return -1;
		}
		if (t->known_hosts_path || t->accept_new) {
			msg("%s%s--known-hosts and --accept-new are for -e", w, sep);
			return -1;
		}
	} else {
		if (t->any_client) {
			msg("%s%s--any-client is for -d", w, sep);
			return -1;
		}
		if (!t->authorized_path && !t->known_hosts_path) {
			msg("%s%s-e needs --authorized or --known-hosts: which keys may "
			    "the decrypting end have?", w, sep);
			return -1;
		}
		if (t->accept_new && !t->known_hosts_path) {
			msg("%s%s--accept-new needs --known-hosts", w, sep);
			return -1;
		}
	}
	return 0;
}

/* Split a config line into words (blanks; # starts a comment). */
static int split_words(char *line, char **words, int max)
{
	int n = 0;
	char *p = line;

	for (;;) {
		p += strspn(p, " \t\r\n");
		if (!*p || *p == '#')
			return n;
		if (n == max)
			return -1;
		words[n++] = p;
		p += strcspn(p, " \t\r\n");
		if (*p)
			*p++ = '\0';
	}
}

static int read_config(const char *path, const struct tunnel *defaults, int gargc, char **gargv)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	unsigned int no = 0;

	if (!f) {
		msg("cannot open config %s: %s", path, strerror(errno));
		return -1;
	}
	while (getline(&line, &cap, f) >= 0) {
		char *words[MAX_ARGS], *argv[2 * MAX_ARGS + 2], where[PATH_MAX + 16];
		struct tunnel *t;
		int n, argc = 0;
		char *copy;

		no++;
		copy = strdup(line);
		if (!copy) {
			msg("out of memory");
			goto fail;
		}
		n = split_words(copy, words, MAX_ARGS);
		if (n <= 0) {
			free(copy);
			if (n < 0) {
				msg("%s:%u: more than %d words", path, no, MAX_ARGS);
				goto fail;
			}
			continue;
		}
		if (ntunnels == MAX_TUNNELS) {
			msg("%s:%u: more than %d tunnels", path, no, MAX_TUNNELS);
			free(copy);
			goto fail;
		}
		t = &tunnels[ntunnels++];
		*t = *defaults;
		t->argbuf = copy;
		argv[argc++] = (char *)PROG;
		/* The command line's options first: the line's own override them. */
		for (int i = 1; i < gargc && argc < MAX_ARGS; i++) {
			if (!strcmp(gargv[i], "-c") || !strcmp(gargv[i], "--config")) {
				i++;
				continue;
			}
			if (!strncmp(gargv[i], "--config=", 9) || !strncmp(gargv[i], "-c", 2))
				continue;
			argv[argc++] = gargv[i];
		}
		for (int i = 0; i < n; i++)
			argv[argc++] = words[i];
		argv[argc] = NULL;
		snprintf(where, sizeof(where), "%s:%u", path, no);
		if (parse_args(argc, argv, t, NULL) < 0) {
			msg("in %s", where);
			goto fail;
		}
		if (check_tunnel(t, where) < 0)
			goto fail;
	}
	free(line);
	fclose(f);
	if (!ntunnels) {
		msg("%s lists no tunnel", path);
		return -1;
	}
	return 0;
fail:
	free(line);
	fclose(f);
	return -1;
}

/* Keys, target addresses: everything but listening. */
static int setup_tunnel(struct tunnel *t)
{
	char host[NI_MAXHOST], port[NI_MAXSERV];

	if (t->key_path) {
		if (ossuary_load_secret_key(t->key_path, t->sk) < 0) {
			msg("--key %s", ossuary_key_file_error());
			return -1;
		}
		t->have_key = 1;
	}
	if (t->authorized_path && load_authorized(t, 0) < 0)
		return -1;
	if (resolve("--target", t->target, 0, &t->target_ai) < 0)
		return -1;
	/* Known hosts are keyed by the name given and the port, as ossuary-cat's. */
	split_addr(t->target, host, sizeof(host), port, sizeof(port));
	snprintf(t->khname, sizeof(t->khname), strchr(host, ':') ? "[%s]:%s" : "%s:%s",
		 host, port);
	return 0;
}

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		got_hup = 1;
	else if (sig == SIGUSR1)
		got_usr1 = 1;
	else
		got_term = 1;
}

/* SIGUSR1: a line for each connection open, for a person debugging a stall. */
static void dump_conns(void)
{
	static const char *const states[] = { "connecting", "handshake", "running", "dead" };
	int n = 0;

	for (struct conn *c = conns; c; c = c->next, n++)
		msg("conn %lu %s %s -> %s: %s, %.1f s; plain rd %d wr %d, enc rd %d wr %d; "
		    "up %" PRIu64 " bytes, %zu in pipe, %zu in buffer, eof %d shut %d; down %"
		    PRIu64 " bytes, %zu in pipe, %zu in buffer, eof %d shut %d",
		    c->id, c->t->dir == ENCRYPT ? "encrypt" : "decrypt", c->from, c->to,
		    states[c->state], now_s() - c->t0, c->plain.rd, c->plain.wr, c->enc.rd,
		    c->enc.wr, c->up.bytes, c->up.inpipe, c->up.len, c->up.eof, c->up.shut,
		    c->down.bytes, c->down.inpipe, c->down.len, c->down.eof, c->down.shut);
	msg("%d connection%s open", n, n == 1 ? "" : "s");
}

static void sweep_deadlines(void)
{
	double now = now_s();

	for (struct conn *c = conns, *nx; c; c = nx) {
		nx = c->next;
		if (c->state != C_RUN && now >= c->deadline)
			conn_end(c, ABORT_BOTH, "%s timed out after %d s; reset",
				 c->state == C_CONNECT ? "connecting" : "the handshake",
				 c->t->hs_timeout);
	}
}

int main(int argc, char **argv)
{
	struct tunnel defaults;
	const char *config = NULL;
	struct sigaction sa;
	struct rlimit rl;
	int need_kernel = 0, pending_retry;

	memset(&defaults, 0, sizeof(defaults));
	defaults.max_conns = DEFAULT_MAX_CONNS;
	defaults.hs_timeout = DEFAULT_HS_TIMEOUT;
	defaults.mode = M_SPLICE;
	defaults.lfd = -1;
	tunnels[0] = defaults;
	if (parse_args(argc, argv, &tunnels[0], &config) < 0)
		goto usage;
	if (config) {
		if (read_config(config, &defaults, argc, argv) < 0)
			return EX_USAGE;
	} else {
		ntunnels = 1;
		if (check_tunnel(&tunnels[0], NULL) < 0)
			goto usage;
	}
	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	if (sodium_init() < 0) {
		msg("libsodium failed to initialise");
		return EX_FAIL;
	}
	/* Six descriptors a connection in splice mode: take what we may. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	for (int i = 0; i < ntunnels; i++) {
		if (setup_tunnel(&tunnels[i]) < 0)
			return EX_FAIL;
		need_kernel |= tunnels[i].mode != M_USER;
	}
	if (need_kernel && !ulp_available()) {
		msg("the ossuary kernel module is not loaded: load it (modprobe ossuary, or "
		    "insmod ossuary.ko), or pass --mode user to encrypt in this process");
		return EX_NO_KERNEL;
	}
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0) {
		msg("epoll: %s", strerror(errno));
		return EX_FAIL;
	}
	for (int i = 0; i < ntunnels; i++)
		if (listen_on(&tunnels[i]) < 0)
			return EX_FAIL;

	pending_retry = 0;
	while (!got_term) {
		struct epoll_event evs[256];
		int n = epoll_wait(epfd, evs, 256, pending_retry ? 1 : 500);

		if (n < 0 && errno != EINTR) {
			msg("epoll_wait: %s", strerror(errno));
			return EX_FAIL;
		}
		for (int i = 0; i < n; i++) {
			struct ep *e = evs[i].data.ptr;

			if (e->kind == EP_LISTEN) {
				accept_more(e->t);
				continue;
			}
			if (e->c->state == C_DEAD || e->fd < 0)
				continue;
			conn_event(e->c, e, evs[i].events);
		}
		while (dead) {
			struct conn *c = dead;

			dead = c->next;
			free(c);
		}
		sweep_deadlines();
		pending_retry = pump_retries();
		if (got_usr1) {
			got_usr1 = 0;
			dump_conns();
		}
		if (got_hup) {
			got_hup = 0;
			for (int i = 0; i < ntunnels; i++)
				if (tunnels[i].authorized_path)
					(void)load_authorized(&tunnels[i], 1);
		}
	}
	msg("stopping: %s", "resetting the connections still open");
	while (conns)
		conn_end(conns, ABORT_BOTH, "ended: the tunnel stopped; reset");
	return EX_OK;
usage:
	fprintf(stderr, "Usage: " PROG " -e|-d -s SOURCE -t TARGET [OPTIONS]\n"
		"       " PROG " -c CONFIG [OPTIONS]\n"
		"Try '" PROG " --help' for more.\n");
	return EX_USAGE;
}
