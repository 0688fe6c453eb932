// SPDX-License-Identifier: Apache-2.0
/*
 * ossuary-bench: one TCP stream, side by side with plain TCP and kTLS.
 *
 *   ossuary-bench stream --proto tcp|ktls|oss|user --op write|sendfile
 *                        [--wsize BYTES] [--mib N] [--file PATH]
 *                        [--ns-tx NAME --ns-rx NAME --addr A.B.C.D]
 *                        [--reps N] [--label TEXT] [--pin TXCPU,RXCPU]
 *   ossuary-bench mem --proto tcp|ktls|oss --pairs N [--unread MIB] [--label TEXT]
 *
 * stream: a receiver process and a sender process (each optionally in
 * its own network namespace, /run/netns/NAME) move N MiB over one TCP
 * connection. tcp is plain TCP; ktls is TLS 1.3 ChaCha20-Poly1305 with
 * keys installed directly (TCP_ULP "tls"); oss is the ossuary module
 * with traffic secrets installed directly (TCP_ULP "ossuary", no
 * handshake); user is libossuary's userspace record layer on both ends
 * after a real handshake (ossuary_write/ossuary_read). --op sendfile
 * sends --file (which must be --mib MiB long) with sendfile(2).
 * Each repetition prints one line:
 *   RUN label rep MiB/s tx_cpu rx_cpu rx_side_cpu guest_cpu
 * and the end a summary (median, min, max over the repetitions):
 *   SUM label reps mibs_med mibs_min mibs_max txcpu_med txcpu_min
 *       txcpu_max rxcpu_med rxcpu_min rxcpu_max rxside_med rxside_min
 *       rxside_max guest_med guest_min guest_max
 * CPU figures are seconds per GiB moved. tx_cpu and rx_cpu are
 * getrusage(RUSAGE_SELF) user+system of the sending and the receiving
 * process over its transfer (softirq work is charged to whichever
 * process it interrupts). guest_cpu is the busy time of the whole guest
 * (/proc/stat, every CPU, everything but idle and iowait) from before
 * the two processes start to after both report; rx_side_cpu is
 * guest_cpu less tx_cpu: the receiving process plus every softirq and
 * kernel worker not charged to the sender. With --pin TXCPU,RXCPU the
 * sender and the receiver run on those CPUs and rx_side_cpu is the busy
 * time of RXCPU instead (the caller steers the receive softirq there
 * with RPS). The busy times are /proc/stat tick fractions times the
 * wall time, per CPU.
 *
 * mem: N connected pairs over loopback; the slab and total kernel
 * memory before and after attaching the ULP and installing both
 * directions on both ends of every pair, per socket:
 *   MEM label pairs slab_per_sock used_per_sock tcp_slab_per_sock tcp_used_per_sock
 * With --unread MIB, then one end of every pair writes MIB MiB that the
 * other end does not read (both buffers forced to 4x that first, so that
 * it fits), and the growth from the idle keyed pairs is printed per
 * pair (the writer and the reader socket together), in bytes:
 *   UNREAD label pairs unread_bytes_per_pair slab avail used sockstat_mem
 *          outq_per_pair inq_per_pair
 * avail is the fall of MemAvailable, used of MemFree, sockstat_mem the
 * rise of /proc/net/sockstat "TCP: ... mem" (pages, in bytes), outq and
 * inq what SIOCOUTQ and SIOCINQ report at the end.
 *
 * Not a test: it exits non-zero only when a case fails to run.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ossuary.h"
#include "linux/ossuary.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif

enum proto { P_TCP, P_KTLS, P_OSS, P_USER };
static const char *const proto_name[] = { "tcp", "ktls", "oss", "user" };

static struct {
	enum proto proto;
	int sendfile;
	size_t wsize;
	size_t mib;
	const char *file;
	const char *ns_tx, *ns_rx;
	const char *addr;
	int reps;
	const char *label;
	int pairs;
	size_t unread_mib;
	int pin_tx, pin_rx;
} opt = {
	.wsize = 16384, .mib = 16, .addr = "127.0.0.1", .reps = 5, .pairs = 1000,
	.pin_tx = -1, .pin_rx = -1,
};

static void die(const char *fmt, ...)
{
	va_list ap;
	int e = errno;

	fprintf(stderr, "ossuary-bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (e)
		fprintf(stderr, ": %s", strerror(e));
	fprintf(stderr, "\n");
	exit(1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_self(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/*
 * Per-CPU tick counts from /proc/stat: busy (user nice system irq
 * softirq steal; guest time is inside user) and all (busy + idle +
 * iowait). The guest's tick is periodic, and under an emulator on a
 * loaded host a vCPU misses ticks while it is descheduled, so only the
 * busy fraction of the ticks is used, times the wall time.
 */
#define MAX_CPUS 64
struct cputicks {
	double t;		/* CLOCK_MONOTONIC */
	unsigned long long busy[MAX_CPUS], all[MAX_CPUS];
};

static void cpu_ticks(struct cputicks *c)
{
	char line[512];
	FILE *f = fopen("/proc/stat", "r");

	if (!f)
		die("/proc/stat");
	memset(c, 0, sizeof(*c));
	c->t = now();
	while (fgets(line, sizeof(line), f)) {
		unsigned long long v[8] = { 0 };
		int n;

		if (strncmp(line, "cpu", 3) || line[3] < '0' || line[3] > '9')
			continue;
		if (sscanf(line + 3, "%d %llu %llu %llu %llu %llu %llu %llu %llu", &n,
			   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
			   &v[7]) < 8 || n < 0 || n >= MAX_CPUS)
			continue;
		c->busy[n] = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
		c->all[n] = c->busy[n] + v[3] + v[4];
	}
	fclose(f);
}

/* busy seconds of one CPU (cpu >= 0) or of all between a and b */
static double busy_secs(const struct cputicks *a, const struct cputicks *b, int cpu)
{
	double s = 0;

	for (int i = 0; i < MAX_CPUS; i++) {
		unsigned long long all = b->all[i] - a->all[i];

		if ((cpu >= 0 && i != cpu) || !all)
			continue;
		s += (b->t - a->t) * (double)(b->busy[i] - a->busy[i]) / (double)all;
	}
	return s;
}

static void pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		die("pin to CPU %d", cpu);
}

static void enter_ns(const char *name)
{
	char path[256];
	int fd;

	if (!name)
		return;
	snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
		die("enter netns %s", name);
	close(fd);
}

/* ---- keys: fixed secrets, the same on both ends ---- */

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + 7 * i);
}

static void ulp(int fd, const char *name)
{
	if (setsockopt(fd, SOL_TCP, TCP_ULP, name, strlen(name) + 1) < 0)
		die("setsockopt TCP_ULP %s", name);
}

static void ktls_dir(int fd, int optname)
{
	struct tls12_crypto_info_chacha20_poly1305 ci;

	memset(&ci, 0, sizeof(ci));
	ci.info.version = TLS_1_3_VERSION;
	ci.info.cipher_type = TLS_CIPHER_CHACHA20_POLY1305;
	/* one key for both directions: a writer's TX opens at its peer's RX
	 * (the --unread case has the bytes arrive at a keyed reader)
	 */
	fill(ci.iv, sizeof(ci.iv), 1);
	fill(ci.key, sizeof(ci.key), 3);
	if (setsockopt(fd, SOL_TLS, optname, &ci, sizeof(ci)) < 0)
		die("setsockopt SOL_TLS %s", optname == TLS_TX ? "TLS_TX" : "TLS_RX");
}

static void oss_dir(int fd, int optname)
{
	struct ossuary_crypto_info ci;

	memset(&ci, 0, sizeof(ci));
	ci.version = OSSUARY_VERSION_2;
	ci.cipher = OSSUARY_CIPHER_CHACHA20_POLY1305;
	ci.seq = 0;
	fill(ci.secret, sizeof(ci.secret), 5);	/* as ktls_dir(): both directions */
	if (setsockopt(fd, SOL_OSSUARY, optname, &ci, sizeof(ci)) < 0)
		die("setsockopt SOL_OSSUARY %s", optname == OSSUARY_TX ? "TX" : "RX");
}

/*
 * Install keys for one direction of a stream: the sender's TX, the
 * receiver's RX (each keyed as the peer's opposite direction, so a
 * sender's "TX" key is the receiver's "RX" key: same seed below).
 */
static void install(int fd, enum proto p, int tx)
{
	switch (p) {
	case P_KTLS:
		ulp(fd, "tls");
		if (tx) {
			ktls_dir(fd, TLS_TX);
		} else {
			struct tls12_crypto_info_chacha20_poly1305 ci;
			int one = 1;

			memset(&ci, 0, sizeof(ci));
			ci.info.version = TLS_1_3_VERSION;
			ci.info.cipher_type = TLS_CIPHER_CHACHA20_POLY1305;
			fill(ci.iv, sizeof(ci.iv), 1);
			fill(ci.key, sizeof(ci.key), 3);
			if (setsockopt(fd, SOL_TLS, TLS_RX, &ci, sizeof(ci)) < 0)
				die("setsockopt SOL_TLS TLS_RX");
			/* kTLS at its best: decrypt straight into the user
			 * buffer (TLS 1.3, the sender never pads)
			 */
			(void)setsockopt(fd, SOL_TLS, TLS_RX_EXPECT_NO_PAD, &one,
					 sizeof(one));
		}
		break;
	case P_OSS: {
		struct ossuary_crypto_info ci;

		ulp(fd, "ossuary");
		memset(&ci, 0, sizeof(ci));
		ci.version = OSSUARY_VERSION_2;
		ci.cipher = OSSUARY_CIPHER_CHACHA20_POLY1305;
		fill(ci.secret, sizeof(ci.secret), 5);
		if (setsockopt(fd, SOL_OSSUARY, tx ? OSSUARY_TX : OSSUARY_RX, &ci,
			       sizeof(ci)) < 0)
			die("setsockopt SOL_OSSUARY %s", tx ? "OSSUARY_TX" : "OSSUARY_RX");
		break;
	}
	default:
		break;
	}
}

/* ---- stream ---- */

struct result {
	double t_start, t_end;	/* CLOCK_MONOTONIC, system wide */
	double cpu;		/* this side's CPU seconds over the transfer */
	int ok;
};

static void write_all(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("pipe write");
		p = (const char *)p + w;
		n -= (size_t)w;
	}
}

static int read_all(int fd, void *p, size_t n)
{
	while (n) {
		ssize_t r = read(fd, p, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p = (char *)p + r;
		n -= (size_t)r;
	}
	return 0;
}

#define RX_BUF (64 * 1024)

static void receiver(int port_pipe, int res_pipe, uint64_t total)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	OssuaryConnection *conn = NULL;
	struct result r = { 0 };
	int lfd, fd, one = 1;
	uint64_t got = 0;
	char *buf;
	double c0;

	pin(opt.pin_rx);
	enter_ns(opt.ns_rx);
	inet_pton(AF_INET, opt.ns_rx ? opt.addr : "127.0.0.1", &a.sin_addr);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0)
		die("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 1) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) < 0)
		die("listen");
	write_all(port_pipe, &a.sin_port, sizeof(a.sin_port));
	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		die("accept");
	close(lfd);
	if (opt.proto == P_USER) {
		int rc;

		conn = ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER, NULL);
		if (!conn)
			die("create server connection");
		rc = ossuary_handshake_fd(conn, fd, 30000);
		if (rc < 0) {
			errno = 0;
			die("server handshake: %s", ossuary_strerror(rc));
		}
	} else {
		install(fd, opt.proto, 0);
	}
	buf = malloc(RX_BUF);
	if (!buf)
		die("malloc");
	c0 = cpu_self();
	while (got < total) {
		ssize_t n;

		if (conn)
			n = ossuary_read(conn, fd, buf, RX_BUF);
		else
			n = read(fd, buf, RX_BUF);
		if (n < 0 && !conn && errno == EINTR)
			continue;
		if (n <= 0) {
			if (conn && n < 0) {
				errno = 0;
				die("ossuary_read after %llu bytes: %s",
				    (unsigned long long)got, ossuary_strerror((int)n));
			}
			die("read after %llu of %llu bytes", (unsigned long long)got,
			    (unsigned long long)total);
		}
		got += (uint64_t)n;
	}
	r.t_end = now();
	r.cpu = cpu_self() - c0;
	r.ok = 1;
	write_all(res_pipe, &r, sizeof(r));
	/* Wait for the sender to close: the stream ends cleanly. */
	if (conn) {
		while (ossuary_read(conn, fd, buf, RX_BUF) > 0)
			;
		ossuary_destroy_connection(&conn);
	} else {
		while (read(fd, buf, RX_BUF) > 0)
			;
	}
	close(fd);
	free(buf);
	exit(0);
}

static void sender(int port_pipe, int res_pipe, uint64_t total)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	OssuaryConnection *conn = NULL;
	struct result r = { 0 };
	uint64_t sent = 0;
	int fd, ffd = -1;
	char *buf = NULL;
	double c0;

	pin(opt.pin_tx);
	enter_ns(opt.ns_tx);
	if (read_all(port_pipe, &a.sin_port, sizeof(a.sin_port)) < 0)
		die("receiver did not start");
	inet_pton(AF_INET, opt.ns_rx ? opt.addr : "127.0.0.1", &a.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("connect to %s", opt.ns_rx ? opt.addr : "127.0.0.1");
	if (opt.proto == P_USER) {
		int rc;

		conn = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
		if (!conn)
			die("create client connection");
		rc = ossuary_handshake_fd(conn, fd, 30000);
		if (rc < 0) {
			errno = 0;
			die("client handshake: %s", ossuary_strerror(rc));
		}
	} else {
		install(fd, opt.proto, 1);
	}
	if (opt.sendfile) {
		struct stat st;

		ffd = open(opt.file, O_RDONLY);
		if (ffd < 0 || fstat(ffd, &st) < 0)
			die("open %s", opt.file);
		if ((uint64_t)st.st_size < total) {
			errno = 0;
			die("%s is smaller than %llu bytes", opt.file,
			    (unsigned long long)total);
		}
	} else {
		buf = malloc(opt.wsize);
		if (!buf)
			die("malloc");
		fill((uint8_t *)buf, opt.wsize, 9);
	}
	/* Let the receiver get to its first read before the clock starts. */
	usleep(100000);
	c0 = cpu_self();
	r.t_start = now();
	if (opt.sendfile) {
		off_t off = 0;

		while (sent < total) {
			size_t chunk = total - sent > (1u << 30) ? (1u << 30) : total - sent;
			ssize_t n = sendfile(fd, ffd, &off, chunk);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				die("sendfile after %llu bytes", (unsigned long long)sent);
			sent += (uint64_t)n;
		}
	} else {
		while (sent < total) {
			size_t len = total - sent < opt.wsize ? total - sent : opt.wsize;
			ssize_t n;

			if (conn) {
				n = ossuary_write(conn, fd, buf, len);
				if (n < 0) {
					errno = 0;
					die("ossuary_write after %llu bytes: %s",
					    (unsigned long long)sent, ossuary_strerror((int)n));
				}
			} else {
				n = write(fd, buf, len);
				if (n < 0 && errno == EINTR)
					continue;
				if (n <= 0)
					die("write after %llu bytes", (unsigned long long)sent);
			}
			sent += (uint64_t)n;
		}
	}
	r.cpu = cpu_self() - c0;
	r.ok = 1;
	write_all(res_pipe, &r, sizeof(r));
	if (conn) {
		ossuary_shutdown(conn, fd);
		ossuary_destroy_connection(&conn);
	}
	close(fd);
	if (ffd >= 0)
		close(ffd);
	free(buf);
	exit(0);
}

static int wait_child(pid_t pid, const char *who)
{
	int st;

	if (waitpid(pid, &st, 0) < 0)
		return -1;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	fprintf(stderr, "ossuary-bench: %s failed (%s %d)\n", who,
		WIFEXITED(st) ? "exit" : "signal",
		WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	return -1;
}

/* One repetition: 0 and the five figures, or -1. */
static int one_run(double *mibs, double *txcpu, double *rxcpu, double *rxside,
		   double *all)
{
	uint64_t total = (uint64_t)opt.mib << 20;
	int port[2], rres[2], tres[2];
	struct result rr, tr;
	double gib = (double)opt.mib / 1024.0;
	struct cputicks c0, c1;
	pid_t rx, tx;
	int rc = 0;

	if (pipe(port) < 0 || pipe(rres) < 0 || pipe(tres) < 0)
		die("pipe");
	cpu_ticks(&c0);
	rx = fork();
	if (rx == 0) {
		close(port[0]);
		close(rres[0]);
		close(tres[0]);
		close(tres[1]);
		receiver(port[1], rres[1], total);
	}
	tx = fork();
	if (tx == 0) {
		close(port[1]);
		close(rres[0]);
		close(rres[1]);
		close(tres[0]);
		sender(port[0], tres[1], total);
	}
	close(port[0]);
	close(port[1]);
	close(rres[1]);
	close(tres[1]);
	/* the sender first: if it dies early, the receiver may wait in accept */
	if (read_all(tres[0], &tr, sizeof(tr)) < 0 || !tr.ok)
		rc = -1;
	else if (read_all(rres[0], &rr, sizeof(rr)) < 0 || !rr.ok)
		rc = -1;
	cpu_ticks(&c1);
	close(rres[0]);
	close(tres[0]);
	if (wait_child(tx, "sender") < 0)
		rc = -1;
	if (rc < 0)
		kill(rx, SIGKILL);
	if (wait_child(rx, "receiver") < 0)
		rc = -1;
	if (rc < 0)
		return -1;
	*mibs = (double)opt.mib / (rr.t_end - tr.t_start);
	*txcpu = tr.cpu / gib;
	*rxcpu = rr.cpu / gib;
	*all = busy_secs(&c0, &c1, -1) / gib;
	/* pinned: the receiver's CPU; else the whole guest less the sender */
	if (opt.pin_rx >= 0)
		*rxside = busy_secs(&c0, &c1, opt.pin_rx) / gib;
	else
		*rxside = *all - *txcpu;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int cmd_stream(void)
{
	double *m = calloc((size_t)opt.reps, sizeof(double));
	double *t = calloc((size_t)opt.reps, sizeof(double));
	double *r = calloc((size_t)opt.reps, sizeof(double));
	double *x = calloc((size_t)opt.reps, sizeof(double));
	double *g = calloc((size_t)opt.reps, sizeof(double));
	const char *label = opt.label ? opt.label : proto_name[opt.proto];
	double mm, tm, rm, xm, gm;

	if (!m || !t || !r || !x || !g)
		die("calloc");
	if (opt.sendfile && !opt.file) {
		errno = 0;
		die("--op sendfile needs --file");
	}
	for (int i = 0; i < opt.reps; i++) {
		if (one_run(&m[i], &t[i], &r[i], &x[i], &g[i]) < 0) {
			fprintf(stderr, "ossuary-bench: %s: repetition %d failed\n", label, i + 1);
			return 1;
		}
		printf("RUN %s %d %.2f %.2f %.2f %.2f %.2f\n", label, i + 1, m[i], t[i],
		       r[i], x[i], g[i]);
		fflush(stdout);
	}
	mm = median(m, opt.reps);
	tm = median(t, opt.reps);
	rm = median(r, opt.reps);
	xm = median(x, opt.reps);
	gm = median(g, opt.reps);
	/* median() sorted each array: min and max are at the ends */
	printf("SUM %s %d %.2f %.2f %.2f %.2f %.2f %.2f %.2f %.2f %.2f %.2f %.2f %.2f %.2f %.2f %.2f\n",
	       label, opt.reps, mm, m[0], m[opt.reps - 1], tm, t[0], t[opt.reps - 1],
	       rm, r[0], r[opt.reps - 1], xm, x[0], x[opt.reps - 1], gm, g[0],
	       g[opt.reps - 1]);
	free(m);
	free(t);
	free(r);
	free(x);
	free(g);
	return 0;
}

/* ---- mem ---- */

/* /proc/meminfo fields in bytes; avail may be NULL */
static void meminfo2(long long *slab, long long *used, long long *avail)
{
	char line[256];
	long long total = 0, free_ = 0, av = 0, v;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		die("/proc/meminfo");
	*slab = 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "MemTotal: %lld", &v) == 1)
			total = v;
		else if (sscanf(line, "MemFree: %lld", &v) == 1)
			free_ = v;
		else if (sscanf(line, "MemAvailable: %lld", &v) == 1)
			av = v;
		else if (sscanf(line, "Slab: %lld", &v) == 1)
			*slab = v;
	}
	fclose(f);
	*slab *= 1024;
	*used = (total - free_) * 1024;
	if (avail)
		*avail = av * 1024;
}

static void meminfo(long long *slab, long long *used)
{
	meminfo2(slab, used, NULL);
}

/* /proc/net/sockstat "TCP: ... mem PAGES", in bytes */
static long long sockstat_tcp_mem(void)
{
	char line[256];
	long long pages = 0;
	FILE *f = fopen("/proc/net/sockstat", "r");
	char *m;

	if (!f)
		die("/proc/net/sockstat");
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "TCP:", 4) && (m = strstr(line, " mem ")))
			pages = atoll(m + 5);
	fclose(f);
	return pages * sysconf(_SC_PAGESIZE);
}

static void settle(void)
{
	/* let RCU-deferred frees and per-CPU caches quiet down */
	sync();
	usleep(1500000);
}

/*
 * --unread: the writer end of every pair (fds[2i]) writes opt.unread_mib
 * MiB, non-blocking, until all of it is queued or the queues stop
 * moving; nobody reads. Prints the growth per pair.
 */
static void mem_unread(int *fds, int n, long long s1, long long u1, long long a1,
		       long long k1)
{
	size_t want = opt.unread_mib << 20, chunk = 64 * 1024;
	size_t *done = calloc((size_t)n, sizeof(size_t));
	char *buf = malloc(chunk);
	long long s2, u2, a2, k2, outq = 0, inq = 0, total = 0;
	double last_progress = now();

	if (!done || !buf)
		die("calloc");
	fill((uint8_t *)buf, chunk, 11);
	for (int i = 0; i < n; i++)
		fcntl(fds[2 * i], F_SETFL, fcntl(fds[2 * i], F_GETFL) | O_NONBLOCK);
	/* write round-robin until every writer is done or 10 s bring nothing */
	for (;;) {
		int busy = 0;

		for (int i = 0; i < n; i++) {
			ssize_t w;

			if (done[i] >= want)
				continue;
			busy = 1;
			w = write(fds[2 * i], buf, want - done[i] < chunk ? want - done[i] : chunk);
			if (w > 0) {
				done[i] += (size_t)w;
				last_progress = now();
			} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
				die("write pair %d after %zu bytes", i, done[i]);
			}
		}
		if (!busy || now() - last_progress > 10.0)
			break;
		usleep(20000);
	}
	/* let what is queued reach the reader's side: outq stops changing */
	for (int k = 0; k < 100; k++) {
		long long o = 0;

		for (int i = 0; i < n; i++) {
			int v = 0;

			if (ioctl(fds[2 * i], SIOCOUTQ, &v) == 0)
				o += v;
		}
		if (k > 0 && o == outq)
			break;
		outq = o;
		usleep(300000);
	}
	settle();
	meminfo2(&s2, &u2, &a2);
	k2 = sockstat_tcp_mem();
	outq = 0;
	for (int i = 0; i < n; i++) {
		int v = 0;

		total += (long long)done[i];
		if (ioctl(fds[2 * i], SIOCOUTQ, &v) == 0)
			outq += v;
		v = 0;
		if (ioctl(fds[2 * i + 1], SIOCINQ, &v) == 0)
			inq += v;
	}
	printf("UNREAD %s %d %.0f %.0f %.0f %.0f %.0f %.0f %.0f\n",
	       opt.label ? opt.label : proto_name[opt.proto], n,
	       (double)total / n, (double)(s2 - s1) / n, (double)(a1 - a2) / n,
	       (double)(u2 - u1) / n, (double)(k2 - k1) / n, (double)outq / n,
	       (double)inq / n);
	free(done);
	free(buf);
}

/* both buffers big enough for the unread bytes (4x: truesize, windows) */
static int setbuf_force(int fd, int optname)
{
	int v = (int)(opt.unread_mib << 22);

	return setsockopt(fd, SOL_SOCKET, optname, &v, sizeof(v));
}

static int cmd_mem(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int n = opt.pairs, lfd, *fds;
	long long s0, u0, s1, u1, s2, u2, a2, k2;
	struct rlimit rl = { (rlim_t)(2 * n + 64), (rlim_t)(2 * n + 64) };

	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("setrlimit NOFILE %d", 2 * n + 64);
	fds = calloc((size_t)(2 * n), sizeof(int));
	if (!fds)
		die("calloc");
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    (opt.unread_mib && setbuf_force(lfd, SO_RCVBUFFORCE) < 0) ||
	    listen(lfd, 128) < 0 || getsockname(lfd, (struct sockaddr *)&a, &alen) < 0)
		die("listen");
	settle();
	meminfo(&s0, &u0);
	for (int i = 0; i < n; i++) {
		fds[2 * i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[2 * i] < 0 ||
		    (opt.unread_mib && setbuf_force(fds[2 * i], SO_SNDBUFFORCE) < 0) ||
		    connect(fds[2 * i], (struct sockaddr *)&a, sizeof(a)) < 0)
			die("connect pair %d", i);
		fds[2 * i + 1] = accept(lfd, NULL, NULL);
		if (fds[2 * i + 1] < 0)
			die("accept pair %d", i);
	}
	settle();
	meminfo(&s1, &u1);
	for (int i = 0; i < 2 * n; i++) {
		switch (opt.proto) {
		case P_KTLS:
			ulp(fds[i], "tls");
			ktls_dir(fds[i], TLS_TX);
			ktls_dir(fds[i], TLS_RX);
			break;
		case P_OSS:
			ulp(fds[i], "ossuary");
			oss_dir(fds[i], OSSUARY_TX);
			oss_dir(fds[i], OSSUARY_RX);
			break;
		default:
			break;
		}
	}
	settle();
	meminfo2(&s2, &u2, &a2);
	k2 = sockstat_tcp_mem();
	printf("MEM %s %d %.0f %.0f %.0f %.0f\n", opt.label ? opt.label : proto_name[opt.proto], n,
	       (double)(s2 - s1) / (2.0 * n), (double)(u2 - u1) / (2.0 * n),
	       (double)(s1 - s0) / (2.0 * n), (double)(u1 - u0) / (2.0 * n));
	fflush(stdout);
	if (opt.unread_mib)
		mem_unread(fds, n, s2, u2, a2, k2);
	for (int i = 0; i < 2 * n; i++)
		close(fds[i]);
	close(lfd);
	free(fds);
	return 0;
}

/* ---- main ---- */

static void usage(void)
{
	fprintf(stderr,
		"usage: ossuary-bench stream --proto tcp|ktls|oss|user [--op write|sendfile]\n"
		"           [--wsize BYTES] [--mib N] [--file PATH] [--reps N] [--label TEXT]\n"
		"           [--ns-tx NAME --ns-rx NAME --addr RX_ADDR] [--pin TXCPU,RXCPU]\n"
		"       ossuary-bench mem --proto tcp|ktls|oss [--pairs N] [--unread MIB]\n"
		"           [--label TEXT]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *cmd;
	int i;

	if (argc < 2)
		usage();
	cmd = argv[1];
	for (i = 2; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			usage();
		i++;
		if (!strcmp(o, "--proto")) {
			int p;

			for (p = 0; p <= P_USER; p++)
				if (!strcmp(v, proto_name[p]))
					break;
			if (p > P_USER)
				usage();
			opt.proto = (enum proto)p;
		} else if (!strcmp(o, "--op")) {
			if (!strcmp(v, "sendfile"))
				opt.sendfile = 1;
			else if (strcmp(v, "write"))
				usage();
		} else if (!strcmp(o, "--wsize")) {
			opt.wsize = strtoul(v, NULL, 0);
		} else if (!strcmp(o, "--mib")) {
			opt.mib = strtoul(v, NULL, 0);
		} else if (!strcmp(o, "--file")) {
			opt.file = v;
		} else if (!strcmp(o, "--ns-tx")) {
			opt.ns_tx = v;
		} else if (!strcmp(o, "--ns-rx")) {
			opt.ns_rx = v;
		} else if (!strcmp(o, "--addr")) {
			opt.addr = v;
		} else if (!strcmp(o, "--reps")) {
			opt.reps = atoi(v);
		} else if (!strcmp(o, "--label")) {
			opt.label = v;
		} else if (!strcmp(o, "--pairs")) {
			opt.pairs = atoi(v);
		} else if (!strcmp(o, "--pin")) {
			if (sscanf(v, "%d,%d", &opt.pin_tx, &opt.pin_rx) != 2)
				usage();
		} else if (!strcmp(o, "--unread")) {
			opt.unread_mib = strtoul(v, NULL, 0);
		} else {
			usage();
		}
	}
	if (opt.wsize == 0 || opt.mib == 0 || opt.reps < 1 || opt.pairs < 1)
		usage();
	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(cmd, "stream"))
		return cmd_stream();
	if (!strcmp(cmd, "mem"))
		return cmd_mem();
	usage();
	return 2;
}
