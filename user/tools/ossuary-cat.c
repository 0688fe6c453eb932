/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ossuary-cat: netcat over an Ossuary-encrypted TCP connection.
 *
 *   ossuary-cat [OPTIONS] -l [HOST] PORT   accept one connection
 *   ossuary-cat [OPTIONS] HOST PORT        connect
 *
 * The listener is the protocol's server, the connecting side its client.
 * After the handshake the record layer goes to the kernel module
 * (ossuary_offload); from then on the tool moves bytes with plain
 * read/write, and `--send FILE` with sendfile(2), so the kernel's
 * encryption is the only pass over the file's bytes. `--userspace`
 * keeps the record layer in this process (ossuary_read/ossuary_write).
 *
 * Data flow: the source (standard input, or --send FILE) goes to the
 * peer; what the peer sends goes to the sink (standard output, or
 * --recv FILE). When the source ends, our direction is closed cleanly
 * (ossuary_shutdown: DISCONNECT(0), then FIN). With --recv and no
 * --send there is no source: our direction is closed once the peer's
 * has ended and the file is written, which tells a --send peer that
 * everything arrived. The tool exits once the peer's direction has
 * ended and ours is closed (or at once when the peer has ended and
 * standard input is a terminal).
 *
 * The socket is non-blocking during the transfer and one poll() loop
 * drives both directions, so two peers sending to each other never
 * deadlock. Everything the tool says goes to standard error.
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
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <sodium.h>

#include "ossuary.h"
#include "uapi/linux/ossuary.h"
#include "common/clock.h"
#include "common/fingerprint.h"
#include "common/msg.h"
#include "common/sockaddr.h"
#include "common/ulp.h"

#define PROG "ossuary-cat"
#ifndef OSSUARY_VERSION
#define OSSUARY_VERSION "unknown"	/* user/Makefile passes VERSION */
#endif

/* Exit statuses: stable, documented in --help and README.md. */
enum {
	EX_OK = 0,
	EX_FAIL = 1,		/* anything else: files, sockets, bad key file */
	EX_USAGE = 2,
	EX_NO_KERNEL = 3,	/* the module is not loaded (and no --userspace) */
	EX_REFUSED = 4,		/* the peer refused our key */
	EX_UNTRUSTED = 5,	/* we refused the peer's key (or it had none) */
	EX_KEY_CHANGED = 6,	/* known hosts lists another key for this host */
	EX_LOST = 7,		/* connection failed, reset, timed out, closed early */
	EX_TRUNCATED = 8,	/* the peer's data ended without a clean close */
	EX_INTEGRITY = 9,	/* a record failed to open: data altered in transit */
};

#define DEFAULT_TIMEOUT 60		/* seconds, connect and handshake */
#define BUF_LEN (256 * 1024)
#define SENDFILE_CHUNK (4 * 1024 * 1024)
#define PROGRESS_MS 250

const char tool_name[] = PROG;

struct options {
	int listen;
	int family;			/* AF_UNSPEC, AF_INET, AF_INET6 */
	const char *host;		/* NULL: any (listen only) */
	const char *port;
	const char *send_path, *recv_path;
	const char *key_path, *authorized_path, *known_hosts_path;
	int accept_new, userspace, verbose, timeout_s;
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: " PROG " [OPTIONS] -l [HOST] PORT   accept one connection on PORT\n"
		"       " PROG " [OPTIONS] HOST PORT        connect to HOST PORT\n"
		"Netcat over an Ossuary-encrypted TCP connection: standard input goes to\n"
		"the peer, the peer's data to standard output. The encryption runs in the\n"
		"kernel (module ossuary.ko) once the handshake is done.\n"
		"\n"
		"  -l, --listen           accept one connection (the protocol's server)\n"
		"      --send FILE        send FILE instead of standard input (sendfile(2)\n"
		"                         from the page cache when the kernel encrypts)\n"
		"      --recv FILE        write what the peer sends to FILE instead of\n"
		"                         standard output; with no --send, nothing is sent\n"
		"      --key FILE         this side's secret key file (from ossuary-keygen,\n"
		"                         the one without .pub);\n"
		"                         without it this side is anonymous\n"
		"      --authorized FILE  peer public keys to accept, one per line.\n"
		"                         Listener: only these clients get in. Connecting:\n"
		"                         the server's key must be listed (or known, below)\n"
		"      --known-hosts FILE trust on first use (connecting side): accept the\n"
		"                         key FILE lists for HOST:PORT ([HOST]:PORT for an\n"
		"                         IPv6 address); a new host is asked about on the\n"
		"                         terminal, and remembered\n"
		"      --accept-new       accept (and remember) a host key never seen before\n"
		"                         without asking; a changed key is still refused\n"
		"      --userspace        keep the encryption in this process (no module)\n"
		"  -w, --timeout SECONDS  limit for connecting and the handshake (default %d,\n"
		"                         0 = none)\n"
		"  -4, -6                 IPv4 or IPv6 only\n"
		"  -v, --verbose          report keys, mode, bytes, SHA-256 and throughput\n"
		"  -h, --help             show this help\n"
		"      --version          show the version\n"
		"\n"
		"PORT is a number from 1 to 65535. A listener may give 0 for any free\n"
		"port: the one it got is printed on standard error (\"listening on\n"
		"[ADDRESS]:PORT\"), with or without -v.\n"
		"\n"
		"A connecting side without --authorized or --known-hosts trusts a server key\n"
		"only when told to (terminal prompt, or --accept-new); with --authorized\n"
		"alone, an unlisted key is refused. A progress line goes to standard error\n"
		"when it is a terminal, unless the data comes from or goes to the terminal.\n"
		"\n"
		"Exit status:\n"
		"  0  success: everything sent was delivered, the peer's data ended cleanly\n"
		"  1  other error (files, addresses, key files)\n"
		"  2  usage\n"
		"  3  the ossuary kernel module is not loaded (insmod ossuary.ko, or use\n"
		"     --userspace)\n"
		"  4  handshake refused: the peer does not accept our key\n"
		"  5  untrusted key: we refused the peer's key (or it sent none)\n"
		"  6  changed key: --known-hosts lists another key for this host\n"
		"  7  connection lost (cannot connect, reset, timeout, closed early, or\n"
		"     the peer does not speak Ossuary: wrong port?)\n"
		"  8  truncated: the peer's data ended without a clean close\n"
		"  9  integrity: a record failed to open (data altered in transit)\n",
		DEFAULT_TIMEOUT);
}

/* ---- small helpers ---- */

static void hex(char *out, const uint8_t *in, size_t len)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * len] = '\0';
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* An inherited O_NONBLOCK descriptor: wait for room. */
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };

			if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
				return -1;
			continue;
		}
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -1;
	fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
	return fcntl(fd, F_SETFL, fl);
}

/* Where an ossuary error lands among the exit statuses. */
static int exit_for(int err)
{
	switch (err) {
	case OSSUARY_ERR_NO_KERNEL:
		return EX_NO_KERNEL;
	case OSSUARY_ERR_REFUSED:
		return EX_REFUSED;
	case OSSUARY_ERR_AUTH:
	case OSSUARY_ERR_UNTRUSTED_SERVER:
		return EX_UNTRUSTED;
	case OSSUARY_ERR_KEY_CHANGED:
		return EX_KEY_CHANGED;
	case OSSUARY_ERR_TRUNCATED:
		return EX_TRUNCATED;
	case OSSUARY_ERR_DECRYPT:
	case OSSUARY_ERR_PROTOCOL:
	case OSSUARY_ERR_TOO_MANY_RESETS:
	case OSSUARY_ERR_HANDSHAKE_FAILED:	/* the peer could not open CLIENT_AUTH */
		return EX_INTEGRITY;
	case OSSUARY_ERR_RESET:			/* the peer reset the session */
	case OSSUARY_ERR_IO:
	case OSSUARY_ERR_DISCONNECTED:
	case OSSUARY_ERR_TIMEOUT:
	case OSSUARY_ERR_EOF:
		return EX_LOST;
	default:
		return EX_FAIL;
	}
}

/* ---- connecting ---- */

static int resolve(const struct options *o, int passive, struct addrinfo **res)
{
	struct addrinfo hints;
	int r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = o->family;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = passive ? AI_PASSIVE : AI_ADDRCONFIG;
	r = getaddrinfo(o->host, o->port, &hints, res);
	if (r == EAI_ADDRFAMILY || (r == EAI_NONAME && !passive && o->host)) {
		/* AI_ADDRCONFIG hides ::1 when only loopback has IPv6. */
		hints.ai_flags = 0;
		r = getaddrinfo(o->host, o->port, &hints, res);
	}
	if (r != 0) {
		msg("cannot resolve %s port %s: %s", o->host ? o->host : "*", o->port,
		    r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		return -1;
	}
	return 0;
}

/* Connect with a deadline; the socket is left blocking. */
static int connect_timeout(int fd, const struct sockaddr *sa, socklen_t len, int timeout_s)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	socklen_t elen = sizeof(int);
	int r, err = 0;

	if (set_nonblock(fd, 1) < 0)
		return -1;
	r = connect(fd, sa, len);
	if (r < 0 && errno != EINPROGRESS)
		return -1;
	if (r < 0) {
		do
			r = poll(&pfd, 1, timeout_s > 0 ? timeout_s * 1000 : -1);
		while (r < 0 && errno == EINTR);
		if (r < 0)
			return -1;
		if (r == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
			return -1;
		if (err) {
			errno = err;
			return -1;
		}
	}
	return set_nonblock(fd, 0);
}

static int dial(const struct options *o, char *peer, size_t cap)
{
	struct addrinfo *res, *ai;
	int fd = -1, e = 0;

	if (resolve(o, 0, &res) < 0)
		return -1;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		name_addr(ai->ai_addr, ai->ai_addrlen, peer, cap);
		if (connect_timeout(fd, ai->ai_addr, ai->ai_addrlen, o->timeout_s) == 0)
			break;
		e = errno;
		info("cannot connect to %s: %s", peer, strerror(e));
		close(fd);
		fd = -1;
	}
	if (fd < 0)
		msg("cannot connect to %s port %s: %s", o->host, o->port, strerror(e));
	freeaddrinfo(res);
	return fd;
}

/* Listen on HOST (default: every address, IPv6 and IPv4) and accept one. */
static int accept_one(const struct options *o, char *peer, size_t cap)
{
	struct addrinfo *res, *ai;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char here[NI_MAXHOST + NI_MAXSERV + 4];
	int lfd = -1, fd, e = 0, one = 1, zero = 0;

	if (resolve(o, 1, &res) < 0)
		return -1;
	/* With no HOST, prefer the IPv6 wildcard: it takes IPv4 too. */
	for (int pass = 0; pass < 2 && lfd < 0; pass++) {
		for (ai = res; ai && lfd < 0; ai = ai->ai_next) {
			if (!o->host && o->family == AF_UNSPEC &&
			    (ai->ai_family == AF_INET6) != (pass == 0))
				continue;
			if (o->host && pass == 1)
				break;
			lfd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
				     ai->ai_protocol);
			if (lfd < 0) {
				e = errno;
				continue;
			}
			setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (ai->ai_family == AF_INET6 && !o->host && o->family == AF_UNSPEC)
				setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
			if (bind(lfd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(lfd, 1) == 0)
				break;
			e = errno;
			close(lfd);
			lfd = -1;
		}
	}
	freeaddrinfo(res);
	if (lfd < 0) {
		msg("cannot listen on %s port %s: %s", o->host ? o->host : "*", o->port,
		    strerror(e));
		return -1;
	}
	if (getsockname(lfd, (struct sockaddr *)&ss, &sl) == 0) {
		name_addr((struct sockaddr *)&ss, sl, here, sizeof(here));
		/* Port 0: the port the kernel chose is for the user (or a
		 * script) to pass on, so it is said even without -v. */
		if (verbose || strtol(o->port, NULL, 10) == 0) {
			msg("listening on %s", here);
			fflush(stderr);
		}
	}
	sl = sizeof(ss);
	do
		fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	e = errno;
	close(lfd);
	if (fd < 0) {
		msg("accept: %s", strerror(e));
		return -1;
	}
	name_addr((struct sockaddr *)&ss, sl, peer, cap);
	info("connection from %s", peer);
	return fd;
}

/* ---- trust ---- */

/* Ask on the terminal; 1 yes, 0 no, -1 no terminal to ask on. */
static int ask_tty(const char *name, const uint8_t key[OSSUARY_KEY_LEN], const char *kh)
{
	char keyhex[2 * OSSUARY_KEY_LEN + 1], *line = NULL;
	size_t cap = 0;
	int yes = 0;
	FILE *tty;

	if (!isatty(STDIN_FILENO) && !isatty(STDERR_FILENO))
		return -1;
	tty = fopen("/dev/tty", "r+e");
	if (!tty)
		return -1;
	hex(keyhex, key, OSSUARY_KEY_LEN);
	fprintf(tty, "The host %s presented a key this side has never seen:\n"
		"  Ed25519 key %s\n  fingerprint %s\n",
		name, keyhex, fingerprint(key).s);
	for (;;) {
		fprintf(tty, "Trust it%s%s? (yes/no) ", kh ? " and remember it in " : "",
			kh ? kh : "");
		fflush(tty);
		if (getline(&line, &cap, tty) < 0)
			break;
		line[strcspn(line, "\r\n")] = '\0';
		if (!strcasecmp(line, "yes") || !strcasecmp(line, "y")) {
			yes = 1;
			break;
		}
		if (!strcasecmp(line, "no") || !strcasecmp(line, "n"))
			break;
	}
	free(line);
	fclose(tty);
	return yes;
}

/*
 * The client's handshake paused on a server key not in --authorized.
 * Returns OSSUARY_OK to approve, or the error to fail with (after
 * saying why); *how says on what grounds the key was accepted.
 */
static int decide_trust(const struct options *o, OssuaryConnection *conn,
			const char *name, const char **how)
{
	uint8_t key[OSSUARY_KEY_LEN];
	char keyhex[2 * OSSUARY_KEY_LEN + 1];
	int r, yes;

	r = ossuary_remote_public_key(conn, key, sizeof(key));
	if (r < 0)
		return r;
	hex(keyhex, key, sizeof(key));
	if (o->known_hosts_path) {
		r = ossuary_known_hosts_check(o->known_hosts_path, name, key);
		if (r == OSSUARY_OK) {
			*how = "known host";
			return OSSUARY_OK;
		}
		if (r == OSSUARY_ERR_KEY_CHANGED) {
			msg("WARNING: THE KEY OF %s HAS CHANGED.\n"
			    "  %s lists another key for this host; it now presents\n"
			    "  %s (%s).\n"
			    "  Someone may be intercepting the connection. If the change is\n"
			    "  expected, delete the host's line from %s and connect again\n"
			    "  (%s).",
			    name, o->known_hosts_path, keyhex, fingerprint(key).s,
			    o->known_hosts_path, ossuary_key_file_error());
			return OSSUARY_ERR_KEY_CHANGED;
		}
		if (r != OSSUARY_ERR_UNTRUSTED_SERVER) {
			msg("--known-hosts %s", ossuary_key_file_error());
			return r == OSSUARY_ERR_KEY_FILE ? OSSUARY_ERR_INVALID : r;
		}
	} else if (o->authorized_path) {
		msg("the server's key %s (%s) is not in %s: refusing it",
		    keyhex, fingerprint(key).s, o->authorized_path);
		return OSSUARY_ERR_AUTH;
	}
	/* A host never seen: trust on first use, if told to. */
	if (o->accept_new) {
		yes = 1;
		*how = "new host accepted (--accept-new)";
	} else {
		yes = ask_tty(name, key, o->known_hosts_path);
		*how = "new host accepted at the prompt";
		if (yes < 0) {
			msg("the server's key %s (%s) is not known and there is no terminal to ask: "
			    "refusing it (use --accept-new, --authorized or --known-hosts)",
			    keyhex, fingerprint(key).s);
			return OSSUARY_ERR_AUTH;
		}
		if (!yes) {
			msg("server key refused");
			return OSSUARY_ERR_AUTH;
		}
	}
	if (o->known_hosts_path) {
		r = ossuary_known_hosts_add(o->known_hosts_path, name, key);
		if (r != OSSUARY_OK) {
			/* Trusting a key that will not be remembered would ask again next time. */
			msg("cannot remember %s in --known-hosts %s: refusing it", name,
			    ossuary_key_file_error());
			return OSSUARY_ERR_INVALID;
		}
		msg("added %s %s to %s", name, fingerprint(key).s, o->known_hosts_path);
	}
	return OSSUARY_OK;
}

/* Explain a failed handshake; returns the exit status. */
static int handshake_failed(const struct options *o, OssuaryConnection *conn,
			    const char *peer, int r)
{
	uint8_t key[OSSUARY_KEY_LEN];
	int known = ossuary_remote_public_key(conn, key, sizeof(key)) == OSSUARY_OK;

	switch (r) {
	case OSSUARY_ERR_REFUSED:
		if (o->listen)
			msg("handshake refused: %s does not trust our key (it needs our .pub "
			    "in its --authorized or --known-hosts file)", peer);
		else
			msg("handshake refused: %s does not accept our key%s", peer,
			    o->key_path ? " (is our .pub in its --authorized file?)"
					: " (we have none: pass --key)");
		break;
	case OSSUARY_ERR_AUTH:
		if (o->listen && known) {
			char keyhex[2 * OSSUARY_KEY_LEN + 1];

			hex(keyhex, key, sizeof(key));
			msg("refused %s: its key %s (%s) is not in %s", peer, keyhex,
			    fingerprint(key).s, o->authorized_path);
		} else if (!known) {
			msg("refused %s: it presented no key, and %s requires one", peer,
			    o->authorized_path ? o->authorized_path : "this side");
		} else {
			msg("refused the key of %s", peer);
		}
		break;
	case OSSUARY_ERR_KEY_CHANGED:
		break;	/* decide_trust() said it all */
	case OSSUARY_ERR_TIMEOUT:
		msg("handshake with %s timed out after %d s (is it an Ossuary peer? "
		    "wrong port?)", peer, o->timeout_s);
		break;
	case OSSUARY_ERR_NOT_OSSUARY:
		msg("%s: the peer does not speak Ossuary (wrong port?)", peer);
		return EX_LOST;
	case OSSUARY_ERR_TRUNCATED:
		msg("%s closed the connection during the handshake (is it an ossuary-cat?)",
		    peer);
		return EX_LOST;
	case OSSUARY_ERR_HANDSHAKE_FAILED:
		msg("handshake with %s failed: it could not open our CLIENT_AUTH "
		    "(altered in transit?)", peer);
		break;
	case OSSUARY_ERR_IO:
		msg("handshake with %s: connection lost: %s", peer, strerror(errno));
		break;
	default:
		msg("handshake with %s failed: %s", peer, ossuary_strerror(r));
		break;
	}
	return exit_for(r);
}

/* ---- the transfer ---- */

struct dir_stats {
	uint64_t bytes;
	crypto_hash_sha256_state h;
};

struct xfer {
	OssuaryConnection *conn;
	int sock;
	int kernel;
	int src;		/* -1: none */
	int src_sendfile;	/* kernel mode, --send of a regular file */
	int src_tty;		/* standard input is a terminal */
	int src_ready, src_eof;
	off_t src_off, src_size;	/* src_size 0: unknown */
	int sink;
	int sink_file;		/* --recv: fsync before acknowledging */
	int peer_eof, shut_done;
	int peer_reason;	/* an error DISCONNECT's reason, -1 unknown */
	int rd_blocked, wr_blocked, flush_needed;
	uint8_t *obuf;		/* source bytes not yet taken by the socket */
	size_t ooff, olen;
	uint8_t *ibuf;
	int hashing;
	struct dir_stats tx, rx;
	int progress;		/* a progress line on the terminal (stderr) */
	int progress_shown;	/* ... and one is on the screen now */
	int sink_tty;
	double t0, last_progress;
};

static void fmt_size(char *out, size_t cap, double b)
{
	if (b >= 1024.0 * 1024 * 1024)
		snprintf(out, cap, "%.2f GiB", b / (1024.0 * 1024 * 1024));
	else if (b >= 1024.0 * 1024)
		snprintf(out, cap, "%.1f MiB", b / (1024.0 * 1024));
	else if (b >= 1024.0)
		snprintf(out, cap, "%.1f KiB", b / 1024.0);
	else
		snprintf(out, cap, "%.0f B", b);
}

static void show_progress(struct xfer *x, int final)
{
	char a[32], b[32], r[32];
	double t = now_s(), dt = t - x->t0;

	if (final || !x->progress) {
		if (x->progress_shown)
			fputs("\r\033[K", stderr);
		x->progress_shown = 0;
		return;
	}
	if (t - x->last_progress < PROGRESS_MS / 1000.0)
		return;
	x->last_progress = t;
	x->progress_shown = 1;
	fputs("\r\033[K" PROG ": ", stderr);
	if (x->src >= 0) {
		fmt_size(a, sizeof(a), (double)x->tx.bytes);
		fmt_size(r, sizeof(r), dt > 0 ? (double)x->tx.bytes / dt : 0);
		if (x->src_size > 0) {
			fmt_size(b, sizeof(b), (double)x->src_size);
			fprintf(stderr, "sent %s of %s (%.0f%%), %s/s  ", a, b,
				100.0 * (double)x->tx.bytes / (double)x->src_size, r);
		} else {
			fprintf(stderr, "sent %s, %s/s  ", a, r);
		}
	}
	if (x->rx.bytes || x->src < 0) {
		fmt_size(a, sizeof(a), (double)x->rx.bytes);
		fmt_size(r, sizeof(r), dt > 0 ? (double)x->rx.bytes / dt : 0);
		fprintf(stderr, "received %s, %s/s", a, r);
	}
	fflush(stderr);
}


/* sendfile(2) moved n bytes from off: hash them from the page cache. */
static int hash_sent_range(struct xfer *x, off_t off, size_t n)
{
	while (n > 0) {
		size_t want = n < BUF_LEN ? n : BUF_LEN;
		ssize_t got = pread(x->src, x->ibuf, want, off);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return -1;
		crypto_hash_sha256_update(&x->tx.h, x->ibuf, (size_t)got);
		off += got;
		n -= (size_t)got;
	}
	return 0;
}

/* Set when the failure is the peer's or the network's (message printed). */
static int fail_code;

static int fail_with(int code)
{
	fail_code = code;
	return -1;
}

/* Userspace mode: did a reset that just completed follow a record of ours that failed to open? */
static int reset_after_failure(struct xfer *x)
{
	int ev, after = 0;

	while ((ev = ossuary_next_event(x->conn)) > 0)
		if (ev == OSSUARY_EVENT_RESET || ev == OSSUARY_EVENT_RESET_AFTER_FAILURE)
			after = ev == OSSUARY_EVENT_RESET_AFTER_FAILURE;
	return after;
}

static int io_failed(struct xfer *x, const char *what, int r)
{
	int e = errno;

	/* Userspace mode: the library kept the reason of the peer's DISCONNECT. */
	if (r == OSSUARY_ERR_DISCONNECTED && !x->kernel && x->peer_reason < 0 &&
	    ossuary_peer_disconnect_reason(x->conn) >= 0)
		x->peer_reason = ossuary_peer_disconnect_reason(x->conn);
	switch (r) {
	case OSSUARY_ERR_TRUNCATED:
		msg("the peer's data ended without a clean close: the %" PRIu64
		    " bytes received are incomplete (truncated)", x->rx.bytes);
		break;
	case OSSUARY_ERR_RESET:
		if (!x->kernel && reset_after_failure(x)) {
			msg("%s: a record failed to open (data altered in transit); the "
			    "session was reset and the data in flight was dropped", what);
			return fail_with(EX_INTEGRITY);
		}
		msg("connection lost: the peer reset the session, and the data in flight "
		    "was dropped (%" PRIu64 " bytes received before that)", x->rx.bytes);
		break;
	case OSSUARY_ERR_DECRYPT:
		msg("%s: a record failed to open: the data was altered in transit "
		    "(the %" PRIu64 " bytes received before it are intact)", what,
		    x->rx.bytes);
		break;
	case OSSUARY_ERR_PROTOCOL:
	case OSSUARY_ERR_TOO_MANY_RESETS:
		msg("%s: %s: the data was altered in transit, or is not Ossuary records",
		    what, ossuary_strerror(r));
		break;
	case OSSUARY_ERR_HANDSHAKE_FAILED:
		msg("handshake failed: the peer could not open our CLIENT_AUTH "
		    "(altered in transit?)");
		break;
	case OSSUARY_ERR_REFUSED:
		msg("handshake refused: the peer does not accept our key "
		    "(is our .pub in its --authorized file?)");
		break;
	case OSSUARY_ERR_DISCONNECTED:
		if (x->peer_reason == OSSUARY_DISCONNECT_ERROR) {
			msg("connection lost: the peer could not open our records "
			    "(DISCONNECT reason 1: protocol or decryption error)");
			return fail_with(EX_INTEGRITY);
		}
		if (x->peer_reason == OSSUARY_DISCONNECT_INTERNAL)
			msg("connection lost: the peer gave up (DISCONNECT reason 3: internal "
			    "error, e.g. its kernel module is not loaded)");
		else
			msg("connection lost: the peer ended the connection with an error");
		break;
	case OSSUARY_ERR_IO:
		msg("connection lost while %s: %s", what, strerror(e));
		break;
	default:
		msg("%s: %s", what, ossuary_strerror(r));
		break;
	}
	return fail_with(exit_for(r));
}

/* One step of sending. 1: progress, 0: would block or nothing to do. */
static int step_send(struct xfer *x)
{
	ssize_t n;

	if (x->olen > 0) {
		n = ossuary_write(x->conn, x->sock, x->obuf + x->ooff, x->olen);
		if (n == OSSUARY_ERR_WOULD_BLOCK) {
			x->wr_blocked = 1;
			return 0;
		}
		if (n < 0)
			return io_failed(x, "sending", (int)n);
		x->tx.bytes += (uint64_t)n;	/* hashed when read from the source */
		x->ooff += (size_t)n;
		x->olen -= (size_t)n;
		if (x->olen == 0)
			x->ooff = 0;
		x->flush_needed = !x->kernel;
		return 1;
	}
	if (x->src_sendfile && !x->src_eof) {
		off_t off = x->src_off;

		n = sendfile(x->sock, x->src, &x->src_off, SENDFILE_CHUNK);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			x->wr_blocked = 1;
			return 0;
		}
		if (n < 0 && errno == EINTR)
			return 1;
		if (n < 0) {
			int e = errno;

			if (e == EPIPE || e == ECONNRESET || e == ETIMEDOUT) {
				msg("connection lost while sending: %s", strerror(e));
				return fail_with(EX_LOST);
			}
			msg("sendfile: %s", strerror(e));
			return fail_with(EX_FAIL);
		}
		if (n == 0) {
			x->src_eof = 1;
			return 1;
		}
		x->tx.bytes += (uint64_t)n;
		if (x->hashing && hash_sent_range(x, off, (size_t)n) < 0) {
			msg("cannot read back the sent file to hash it: %s", strerror(errno));
			return fail_with(EX_FAIL);
		}
		return 1;
	}
	if (x->flush_needed) {
		/* Userspace mode: ciphertext the library still holds. */
		n = ossuary_write(x->conn, x->sock, NULL, 0);
		if (n == OSSUARY_ERR_WOULD_BLOCK) {
			x->wr_blocked = 1;
			return 0;
		}
		if (n < 0)
			return io_failed(x, "sending", (int)n);
		x->flush_needed = 0;
		return 1;
	}
	if (x->src_eof && !x->shut_done) {
		int r = ossuary_shutdown(x->conn, x->sock);

		if (r == OSSUARY_ERR_WOULD_BLOCK) {
			x->wr_blocked = 1;
			return 0;
		}
		if (r < 0)
			return io_failed(x, "closing our direction", r);
		x->shut_done = 1;
		return 1;
	}
	return 0;
}

static int want_send(const struct xfer *x)
{
	return x->olen > 0 || (x->src_sendfile && !x->src_eof) || x->flush_needed ||
	       (x->src_eof && !x->shut_done);
}

/*
 * Kernel mode: a plain recvmsg, with room for the record-type cmsg the
 * module uses to hand over the reason of an error DISCONNECT (so that a
 * refusal of our key after the handshake reads as a refusal, not as a
 * reset). Returns bytes, 0 at the end, or an OSSUARY_ERR_* code.
 */
static ssize_t kernel_recv(struct xfer *x)
{
	union {
		char buf[CMSG_SPACE(sizeof(uint8_t))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = x->ibuf, .iov_len = BUF_LEN };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
	};
	struct cmsghdr *cm;
	ssize_t n;

	do
		n = recvmsg(x->sock, &mh, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		switch (errno) {
		case EAGAIN:
#if EAGAIN != EWOULDBLOCK
		case EWOULDBLOCK:
#endif
			return OSSUARY_ERR_WOULD_BLOCK;
		case EBADMSG:
			return OSSUARY_ERR_DECRYPT;
		case EPROTO:
			return OSSUARY_ERR_PROTOCOL;
		case EPIPE:
			return OSSUARY_ERR_TRUNCATED;
		default:
			return OSSUARY_ERR_IO;
		}
	}
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level == SOL_OSSUARY && cm->cmsg_type == OSSUARY_GET_RECORD_TYPE &&
		    cm->cmsg_len >= CMSG_LEN(1) && *CMSG_DATA(cm) == OSSUARY_RECORD_DISCONNECT) {
			x->peer_reason = n >= 1 ? x->ibuf[0] : -1;
			return x->peer_reason == OSSUARY_DISCONNECT_AUTH ? OSSUARY_ERR_REFUSED
									  : OSSUARY_ERR_DISCONNECTED;
		}
	}
	return n;
}

static int step_recv(struct xfer *x)
{
	ssize_t n = x->kernel ? kernel_recv(x)
			      : ossuary_read(x->conn, x->sock, x->ibuf, BUF_LEN);

	if (n == OSSUARY_ERR_WOULD_BLOCK) {
		x->rd_blocked = 1;
		return 0;
	}
	if (n < 0)
		return io_failed(x, "receiving", (int)n);
	if (n == 0) {
		x->peer_eof = 1;
		info("the peer's data ended cleanly");
		if (x->sink_file && fsync(x->sink) < 0 && errno != EINVAL) {
			msg("cannot write the received file: %s", strerror(errno));
			return fail_with(EX_FAIL);
		}
		/* No source, or a terminal that has nobody left to talk to. */
		if (x->src < 0 || x->src_tty)
			x->src_eof = 1;
		return 1;
	}
	if (x->sink_tty && x->progress) {
		/* The peer's data goes to the terminal: no progress line from now on. */
		x->progress = 0;
		show_progress(x, 1);
	}
	if (write_all(x->sink, x->ibuf, (size_t)n) < 0) {
		msg("cannot write %s: %s", x->sink_file ? "the received file" : "standard output",
		    strerror(errno));
		return fail_with(EX_FAIL);
	}
	x->rx.bytes += (uint64_t)n;
	if (x->hashing)
		crypto_hash_sha256_update(&x->rx.h, x->ibuf, (size_t)n);
	return 1;
}

static int step_source(struct xfer *x)
{
	ssize_t n = read(x->src, x->obuf, BUF_LEN);

	if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
		x->src_ready = 0;
		return 0;
	}
	if (n < 0) {
		msg("cannot read the data to send: %s", strerror(errno));
		return fail_with(EX_FAIL);
	}
	if (n == 0) {
		x->src_eof = 1;
		x->src_ready = 0;
		return 1;
	}
	x->ooff = 0;
	x->olen = (size_t)n;
	if (x->hashing)
		crypto_hash_sha256_update(&x->tx.h, x->obuf, (size_t)n);
	/* A regular file is always ready; a pipe or terminal is polled again. */
	if (x->src_size == 0)
		x->src_ready = 0;
	return 1;
}

static int want_source(const struct xfer *x)
{
	return x->src >= 0 && !x->src_sendfile && !x->src_eof && x->olen == 0;
}

static int run_transfer(struct xfer *x)
{
	while (!(x->peer_eof && x->shut_done)) {
		struct pollfd pfd[2];
		int nfd = 0, busy, r;

		busy = (want_send(x) && !x->wr_blocked) || (!x->peer_eof && !x->rd_blocked) ||
		       (want_source(x) && x->src_ready);
		pfd[0].fd = x->sock;
		pfd[0].events = 0;
		if (!x->peer_eof && x->rd_blocked)
			pfd[0].events |= POLLIN;
		if (want_send(x) && x->wr_blocked)
			pfd[0].events |= POLLOUT;
		pfd[0].revents = 0;
		nfd = 1;
		if (want_source(x) && !x->src_ready) {
			pfd[1].fd = x->src;
			pfd[1].events = POLLIN;
			pfd[1].revents = 0;
			nfd = 2;
		}
		r = poll(pfd, (nfd == 1 && !pfd[0].events) ? 0 : (nfds_t)nfd,
			 busy ? 0 : x->progress ? PROGRESS_MS : -1);
		if (r < 0 && errno != EINTR) {
			msg("poll: %s", strerror(errno));
			return fail_with(EX_FAIL);
		}
		if (r > 0) {
			short ev = pfd[0].revents;

			if (ev & (POLLIN | POLLHUP | POLLERR | POLLRDHUP))
				x->rd_blocked = 0;
			if (ev & (POLLOUT | POLLHUP | POLLERR))
				x->wr_blocked = 0;
			if (nfd == 2 && pfd[1].revents)
				x->src_ready = 1;
		}

		if (!x->peer_eof && !x->rd_blocked) {
			if (step_recv(x) < 0)
				return -1;
		}
		if (want_send(x) && !x->wr_blocked) {
			if (step_send(x) < 0)
				return -1;
		}
		if (want_source(x) && x->src_ready) {
			if (step_source(x) < 0)
				return -1;
		}
		show_progress(x, 0);
	}
	return 0;
}

static void report_dir(const struct xfer *x, const char *what, const struct dir_stats *d,
		       double dt)
{
	crypto_hash_sha256_state h = d->h;
	uint8_t sum[crypto_hash_sha256_BYTES];
	char sumhex[2 * sizeof(sum) + 1];

	if (!x->hashing)
		return;
	crypto_hash_sha256_final(&h, sum);
	hex(sumhex, sum, sizeof(sum));
	msg("%s %" PRIu64 " bytes in %.3f s (%.2f MiB/s), sha256 %s", what, d->bytes, dt,
	    dt > 0 ? (double)d->bytes / dt / (1024.0 * 1024.0) : 0.0, sumhex);
}

/* ---- main ---- */

/*
 * PORT: decimal, 1 to 65535 (0 too for a listener: any free port).
 * getaddrinfo() would take "70000" modulo 65536, and a service name
 * only to fail later as a resolver error.
 */
static int check_port(const char *port, int listen)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(port, &end, 10);
	if (errno || end == port || *end || port[0] == '-' || port[0] == '+' ||
	    port[0] == ' ' || v > 65535 || (v == 0 && !listen)) {
		msg("bad port '%s': a number from 1 to 65535%s", port,
		    listen ? " (or 0: any free port)" : "");
		return -1;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct options *o)
{
	enum { OPT_SEND = 256, OPT_RECV, OPT_KEY, OPT_AUTH, OPT_KH, OPT_ACCEPT, OPT_US,
	       OPT_VERSION = 512 };
	static const struct option opts[] = {
		{ "listen", no_argument, NULL, 'l' },
		{ "send", required_argument, NULL, OPT_SEND },
		{ "recv", required_argument, NULL, OPT_RECV },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "authorized", required_argument, NULL, OPT_AUTH },
		{ "known-hosts", required_argument, NULL, OPT_KH },
		{ "accept-new", no_argument, NULL, OPT_ACCEPT },
		{ "userspace", no_argument, NULL, OPT_US },
		{ "timeout", required_argument, NULL, 'w' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	long v;
	int c, npos;

	memset(o, 0, sizeof(*o));
	o->family = AF_UNSPEC;
	o->timeout_s = DEFAULT_TIMEOUT;
	while ((c = getopt_long(argc, argv, "lw:v46h", opts, NULL)) != -1) {
		switch (c) {
		case 'l': o->listen = 1; break;
		case OPT_SEND: o->send_path = optarg; break;
		case OPT_RECV: o->recv_path = optarg; break;
		case OPT_KEY: o->key_path = optarg; break;
		case OPT_AUTH: o->authorized_path = optarg; break;
		case OPT_KH: o->known_hosts_path = optarg; break;
		case OPT_ACCEPT: o->accept_new = 1; break;
		case OPT_US: o->userspace = 1; break;
		case 'v': o->verbose = 1; break;
		case '4': o->family = AF_INET; break;
		case '6': o->family = AF_INET6; break;
		case 'w':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 0 || v > INT_MAX / 1000) {
				msg("bad --timeout '%s': seconds, 0 for none", optarg);
				return -1;
			}
			o->timeout_s = (int)v;
			break;
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
	npos = argc - optind;
	if (o->listen && npos == 1) {
		o->port = argv[optind];
	} else if (npos == 2) {
		o->host = argv[optind];
		o->port = argv[optind + 1];
	} else {
		msg(o->listen ? "-l takes [HOST] PORT" : "expected HOST PORT");
		return -1;
	}
	if (!*o->port || (o->host && !*o->host)) {
		msg("empty host or port");
		return -1;
	}
	if (check_port(o->port, o->listen) < 0)
		return -1;
	if (o->listen && (o->known_hosts_path || o->accept_new)) {
		msg("--known-hosts and --accept-new are for the connecting side "
		    "(a listener uses --authorized)");
		return -1;
	}
	if (o->send_path && o->recv_path && !strcmp(o->send_path, o->recv_path)) {
		msg("--send and --recv name the same file");
		return -1;
	}
	return 0;
}

/*
 * Everything local, before any connection (so a typo in a path costs no
 * handshake): our key, the connection, the authorized keys, the files.
 * Returns 0 or an exit status.
 */
static int prepare(const struct options *o, struct xfer *x, OssuaryConnection **connp,
		   uint8_t own[OSSUARY_KEY_LEN], int *have_key)
{
	uint8_t sk[OSSUARY_KEY_LEN], full_sk[crypto_sign_SECRETKEYBYTES];
	connection_type_t type = CONN_TYPE_CLIENT;
	struct stat st;
	int r;

	if (o->key_path) {
		r = ossuary_load_secret_key(o->key_path, sk);
		if (r < 0) {
			/* The library names the file, the line, and what to do instead. */
			msg("--key %s", ossuary_key_file_error());
			return EX_FAIL;
		}
		*have_key = 1;
		/* Our public key, for -v: the seed's Ed25519 key pair. */
		crypto_sign_ed25519_seed_keypair(own, full_sk, sk);
		sodium_memzero(full_sk, sizeof(full_sk));
	}
	if (o->listen)
		type = o->authorized_path ? CONN_TYPE_AUTHENTICATED_SERVER
					  : CONN_TYPE_UNAUTHENTICATED_SERVER;
	*connp = ossuary_create_connection(type, *have_key ? sk : NULL);
	sodium_memzero(sk, sizeof(sk));
	if (!*connp) {
		msg("cannot create the connection (out of memory?)");
		return EX_FAIL;
	}
	if (o->authorized_path) {
		r = ossuary_load_authorized_keys(*connp, o->authorized_path);
		if (r <= 0) {
			if (r == 0)
				msg("--authorized %s holds no key", o->authorized_path);
			else
				msg("--authorized %s", ossuary_key_file_error());
			return EX_FAIL;
		}
		info("%d authorized key%s from %s", r, r == 1 ? "" : "s", o->authorized_path);
	}
	if (o->known_hosts_path) {
		/* Read it now (for a host nobody lists): a wrong file costs no connection. */
		static const uint8_t probe[OSSUARY_KEY_LEN] = { 1 };

		r = ossuary_known_hosts_check(o->known_hosts_path, "-", probe);
		if (r == OSSUARY_ERR_KEY_FILE) {
			msg("--known-hosts %s", ossuary_key_file_error());
			return EX_FAIL;
		}
	}

	if (o->send_path) {
		x->src = open(o->send_path, O_RDONLY | O_CLOEXEC);
		if (x->src < 0 || fstat(x->src, &st) < 0) {
			msg("cannot open %s: %s", o->send_path, strerror(errno));
			return EX_FAIL;
		}
		if (S_ISDIR(st.st_mode)) {
			msg("%s is a directory", o->send_path);
			return EX_FAIL;
		}
		if (S_ISREG(st.st_mode))
			x->src_size = st.st_size;
	} else if (!o->recv_path) {
		off_t pos = lseek(STDIN_FILENO, 0, SEEK_CUR);

		x->src = STDIN_FILENO;
		x->src_tty = isatty(STDIN_FILENO);
		/* A regular file on standard input: its size, for the progress line. */
		if (fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode) && pos >= 0 &&
		    st.st_size > pos)
			x->src_size = st.st_size - pos;
	}
	if (o->recv_path) {
		x->sink = open(o->recv_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
		if (x->sink < 0) {
			msg("cannot create %s: %s", o->recv_path, strerror(errno));
			return EX_FAIL;
		}
		x->sink_file = 1;
	}
	x->obuf = malloc(BUF_LEN);
	x->ibuf = malloc(BUF_LEN);
	if (!x->obuf || !x->ibuf) {
		msg("out of memory");
		return EX_FAIL;
	}
	return 0;
}

/*
 * The handshake, with the trust-on-first-use pause of a client, and the
 * -v line about the peer's key. Returns 0 or an exit status.
 */
static int shake_hands(const struct options *o, OssuaryConnection *conn, int fd,
		       const char *peer)
{
	char khname[NI_MAXHOST + NI_MAXSERV + 4] = "", keyhex[2 * OSSUARY_KEY_LEN + 1];
	int timeout_ms = o->timeout_s ? o->timeout_s * 1000 : -1;
	uint8_t pk[OSSUARY_KEY_LEN];
	const char *how = NULL;
	int r;

	/* Known hosts are keyed by the name the user gave, and the port. */
	if (!o->listen)
		snprintf(khname, sizeof(khname), strchr(o->host, ':') ? "[%s]:%s" : "%s:%s",
			 o->host, o->port);
	r = ossuary_handshake_fd(conn, fd, timeout_ms);
	while (r == OSSUARY_ERR_UNTRUSTED_SERVER) {
		r = decide_trust(o, conn, khname, &how);
		if (r != OSSUARY_OK) {
			ossuary_refuse_server(conn);
			/* Pushes the DISCONNECT(2) out; the handshake has failed. */
			(void)ossuary_handshake_fd(conn, fd, 1000);
			return r == OSSUARY_ERR_AUTH ? EX_UNTRUSTED : exit_for(r);
		}
		r = ossuary_approve_server(conn);
		if (r == OSSUARY_OK)
			r = ossuary_handshake_fd(conn, fd, timeout_ms);
	}
	if (r < 0)
		return handshake_failed(o, conn, peer, r);

	if (ossuary_remote_public_key(conn, pk, sizeof(pk)) != OSSUARY_OK) {
		info("peer key: none (anonymous peer)");
		return 0;
	}
	hex(keyhex, pk, sizeof(pk));
	if (how)
		info("peer key %s (%s): %s", fingerprint(pk).s, keyhex, how);
	else if (o->authorized_path)
		info("peer key %s (%s): authorized by %s", fingerprint(pk).s, keyhex,
		     o->authorized_path);
	else
		info("peer key %s (%s): not checked (no --authorized)", fingerprint(pk).s, keyhex);
	return 0;
}

/* The record layer: the kernel's, unless told otherwise. Mode, or -(exit status). */
static int hand_over(const struct options *o, OssuaryConnection *conn, int fd)
{
	int mode;

	if (o->userspace)
		return OSSUARY_MODE_USERSPACE;
	mode = ossuary_offload(conn, fd, 0);
	if (mode == OSSUARY_ERR_NO_KERNEL) {
		msg("the ossuary kernel module is not loaded: load it (insmod ossuary.ko, "
		    "or modprobe ossuary), or pass --userspace to encrypt in this process");
		/* Tell the peer why we go, rather than leaving it a truncation. */
		ossuary_disconnect(conn, OSSUARY_DISCONNECT_INTERNAL);
		(void)ossuary_write(conn, fd, NULL, 0);
		return -EX_NO_KERNEL;
	}
	if (mode < 0) {
		int e = errno;

		msg("cannot hand the connection to the kernel: %s%s%s", ossuary_strerror(mode),
		    mode == OSSUARY_ERR_IO ? ": " : "", mode == OSSUARY_ERR_IO ? strerror(e) : "");
		return -EX_FAIL;
	}
	return mode;
}

int main(int argc, char **argv)
{
	struct options o;
	OssuaryConnection *conn = NULL;
	uint8_t own[OSSUARY_KEY_LEN];
	char peer[NI_MAXHOST + NI_MAXSERV + 4];
	struct xfer x;
	int fd = -1, r, have_key = 0, rc, mode;
	double dt;

	if (parse_args(argc, argv, &o) < 0) {
		fprintf(stderr, "Usage: " PROG " [OPTIONS] -l [HOST] PORT\n"
			"       " PROG " [OPTIONS] HOST PORT\n"
			"Try '" PROG " --help' for the options and exit statuses.\n");
		return EX_USAGE;
	}
	verbose = o.verbose;
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0) {
		msg("libsodium failed to initialise");
		return EX_FAIL;
	}
	memset(&x, 0, sizeof(x));
	x.src = -1;
	x.sink = STDOUT_FILENO;
	rc = prepare(&o, &x, &conn, own, &have_key);
	if (rc)
		goto out;
	if (!o.userspace && !ulp_available()) {
		msg("the ossuary kernel module is not loaded: load it (insmod ossuary.ko, "
		    "or modprobe ossuary), or pass --userspace to encrypt in this process");
		rc = EX_NO_KERNEL;
		goto out;
	}

	fd = o.listen ? accept_one(&o, peer, sizeof(peer)) : dial(&o, peer, sizeof(peer));
	if (fd < 0) {
		rc = o.listen ? EX_FAIL : EX_LOST;
		goto out;
	}
	if (!o.listen)
		info("connected to %s", peer);
	if (have_key)
		info("our key %s (%s)", fingerprint(own).s, o.key_path);
	else
		info("no --key: this side is anonymous");
	rc = shake_hands(&o, conn, fd, peer);
	if (rc)
		goto out;
	mode = hand_over(&o, conn, fd);
	if (mode < 0) {
		rc = -mode;
		goto out;
	}
	x.kernel = mode == OSSUARY_MODE_KERNEL;
	/*
	 * The module seals DISCONNECT(0) when an offloaded socket is closed,
	 * which would turn our death (a signal, an error) into a clean end
	 * of a stream we did not finish. Until we have finished, close
	 * abortively: the peer then sees a reset, never a clean end.
	 */
	if (x.kernel)
		set_linger(fd, 1);
	x.src_sendfile = x.kernel && o.send_path && x.src_size > 0;
	info("mode %s%s", x.kernel ? "kernel" : "userspace", x.src_sendfile ? " (sendfile)" : "");

	/* The transfer: both directions from one poll loop. */
	if (set_nonblock(fd, 1) < 0) {
		msg("fcntl: %s", strerror(errno));
		rc = EX_FAIL;
		goto out;
	}
	x.conn = conn;
	x.sock = fd;
	x.peer_reason = -1;
	x.hashing = o.verbose;
	crypto_hash_sha256_init(&x.tx.h);
	crypto_hash_sha256_init(&x.rx.h);
	x.src_ready = x.src >= 0 && x.src_size > 0;
	/* Not while the user types, nor over the peer's data on the terminal. */
	x.sink_tty = isatty(x.sink);
	x.progress = isatty(STDERR_FILENO) && !(x.src >= 0 && isatty(x.src));
	x.t0 = now_s();
	x.last_progress = x.t0;
	r = run_transfer(&x);
	dt = now_s() - x.t0;
	show_progress(&x, 1);
	if (r < 0) {
		rc = fail_code;
		info("stopped after sending %" PRIu64 " and receiving %" PRIu64 " bytes",
		     x.tx.bytes, x.rx.bytes);
		goto out;
	}
	/* Both directions ended cleanly: an orderly close from here on. */
	if (x.kernel)
		set_linger(fd, 0);
	if (x.src >= 0)
		report_dir(&x, "sent", &x.tx, dt);
	if (x.rx.bytes || x.src < 0)
		report_dir(&x, "received", &x.rx, dt);
	if (x.sink_file) {
		r = close(x.sink);
		x.sink = -1;
		if (r < 0) {
			msg("cannot write %s: %s", o.recv_path, strerror(errno));
			rc = EX_FAIL;
		}
	}
out:
	if (fd >= 0)
		close(fd);
	if (x.src > STDERR_FILENO)
		close(x.src);
	if (x.sink_file && x.sink >= 0)
		close(x.sink);
	free(x.obuf);
	free(x.ibuf);
	if (conn)
		ossuary_destroy_connection(&conn);
	return rc;
}
