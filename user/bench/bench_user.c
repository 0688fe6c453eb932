/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_user: libossuary's userspace costs, in memory, one thread.
 *
 *   bench_user [SECONDS]     (time per measurement, default 1)
 *
 * Handshakes per second for each auth mode, with the time split by
 * role (the client's calls and the server's calls are clocked apart,
 * so "client" is how many handshakes per second one core could drive as
 * a client), and record seal/open throughput (ossuary_send_data /
 * ossuary_recv_data) for 1 KiB and 16 KiB records. No sockets, no
 * kernel: this is the library's CPU cost alone, measured in CPU time
 * (so "per second" means per second of one core). Not a test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ossuary.h"

/*
 * This thread's CPU time, not the wall clock: the figures are the
 * library's cost per core, and stay meaningful on a loaded machine.
 */
static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_user: %s: %s\n", what, ossuary_strerror(rc));
	exit(1);
}

enum mode { UNAUTH, SERVER_AUTH, MUTUAL };
static const char *const mode_name[] = { "unauthenticated", "server-authenticated",
					 "mutual" };

static uint8_t client_sk[32], client_pk[32], server_sk[32], server_pk[32];

struct wire {
	uint8_t buf[4096];
	size_t len;
};

/* One side's turn: take what is in flight to it, emit what it owes. */
static void step(OssuaryConnection *c, struct wire *in, struct wire *out, double *clock)
{
	double t0 = now();
	size_t n = in->len;
	int rc;

	if (n) {
		rc = ossuary_recv_handshake(c, in->buf, &n);
		if (rc < 0 && rc != OSSUARY_ERR_WOULD_BLOCK)
			die("recv_handshake", rc);
		memmove(in->buf, in->buf + n, in->len - n);
		in->len -= n;
	}
	n = sizeof(out->buf) - out->len;
	rc = ossuary_send_handshake(c, out->buf + out->len, &n);
	if (rc < 0 && rc != OSSUARY_ERR_WOULD_BLOCK)
		die("send_handshake", rc);
	out->len += n;
	*clock += now() - t0;
}

/* One handshake, timing each role's calls (creation included). */
static void handshake(enum mode m, double *t_client, double *t_server)
{
	static struct wire to_sv, to_cl;
	OssuaryConnection *cl, *sv;
	double t0 = now();

	cl = ossuary_create_connection(CONN_TYPE_CLIENT, m == MUTUAL ? client_sk : NULL);
	if (!cl)
		die("create client", OSSUARY_ERR_NO_MEMORY);
	if (m != UNAUTH && ossuary_add_authorized_key(cl, server_pk))
		die("authorize server", OSSUARY_ERR_INVALID);
	*t_client += now() - t0;
	t0 = now();
	sv = ossuary_create_connection(m == MUTUAL ? CONN_TYPE_AUTHENTICATED_SERVER
						   : CONN_TYPE_UNAUTHENTICATED_SERVER,
				       m == UNAUTH ? NULL : server_sk);
	if (!sv)
		die("create server", OSSUARY_ERR_NO_MEMORY);
	if (m == MUTUAL && ossuary_add_authorized_key(sv, client_pk))
		die("authorize client", OSSUARY_ERR_INVALID);
	*t_server += now() - t0;

	to_sv.len = to_cl.len = 0;
	for (int round = 0; round < 4; round++) {
		step(cl, &to_cl, &to_sv, t_client);	/* CH; then CA */
		step(sv, &to_sv, &to_cl, t_server);	/* SH; then done */
		if (ossuary_handshake_done(cl) == 1 && ossuary_handshake_done(sv) == 1)
			break;
	}
	if (ossuary_handshake_done(cl) != 1 || ossuary_handshake_done(sv) != 1)
		die("handshake", ossuary_handshake_done(cl) < 0 ? ossuary_handshake_done(cl)
							       : ossuary_handshake_done(sv));
	t0 = now();
	ossuary_destroy_connection(&cl);
	*t_client += now() - t0;
	t0 = now();
	ossuary_destroy_connection(&sv);
	*t_server += now() - t0;
}

static void bench_handshakes(double budget)
{
	printf("%-22s %12s %12s %12s\n", "handshakes/s", "client", "server", "both");
	for (enum mode m = UNAUTH; m <= MUTUAL; m++) {
		double tc = 0, ts = 0, start = now();
		long n = 0;

		while (n < 10 || now() - start < budget) {
			handshake(m, &tc, &ts);
			n++;
		}
		printf("%-22s %12.0f %12.0f %12.0f\n", mode_name[m], n / tc, n / ts,
		       n / (tc + ts));
	}
}

/* An established pair, for the record benchmarks. */
static void established(OssuaryConnection **cl, OssuaryConnection **sv)
{
	struct wire to_sv = { .len = 0 }, to_cl = { .len = 0 };
	double t = 0;

	*cl = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	*sv = ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER, NULL);
	if (!*cl || !*sv)
		die("create", OSSUARY_ERR_NO_MEMORY);
	for (int round = 0; round < 4; round++) {
		step(*cl, &to_cl, &to_sv, &t);
		step(*sv, &to_sv, &to_cl, &t);
	}
	if (ossuary_handshake_done(*cl) != 1 || ossuary_handshake_done(*sv) != 1)
		die("handshake", OSSUARY_ERR_STATE);
}

#define BATCH_BYTES (1 << 20)	/* plaintext per timed batch */

static void bench_records(double budget)
{
	static const size_t sizes[] = { 1024, 16384 };
	size_t cap = BATCH_BYTES + (BATCH_BYTES / 1024 + 1) * 40;
	uint8_t *pt = malloc(OSSUARY_MAX_PLAINTEXT), *wire = malloc(cap);
	uint8_t *out = malloc(OSSUARY_MAX_PLAINTEXT);

	if (!pt || !wire || !out)
		die("malloc", OSSUARY_ERR_NO_MEMORY);
	memset(pt, 0x5a, OSSUARY_MAX_PLAINTEXT);
	printf("\n%-22s %12s %12s\n", "record", "seal MiB/s", "open MiB/s");
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t sz = sizes[i], per = BATCH_BYTES / sz;
		double t_seal = 0, t_open = 0, start = now();
		double bytes = 0;
		OssuaryConnection *cl, *sv;

		established(&cl, &sv);
		while (bytes < 8.0 * BATCH_BYTES || now() - start < budget) {
			size_t len = 0, pos = 0;
			double t0 = now();

			/* Seal a batch, one record per call, as an app writing sz bytes would. */
			for (size_t r = 0; r < per; r++) {
				size_t room = cap - len;
				ssize_t n = ossuary_send_data(cl, pt, sz, wire + len, &room);

				if (n != (ssize_t)sz)
					die("send_data", n < 0 ? (int)n : OSSUARY_ERR_BUFFER_TOO_SMALL);
				len += room;
			}
			t_seal += now() - t0;
			t0 = now();
			/* Open them, one record per call, as a reader of sz bytes would. */
			while (pos < len) {
				size_t in = len - pos, room = sz;
				ssize_t n = ossuary_recv_data(sv, wire + pos, &in, out, &room);

				if (n < 0)
					die("recv_data", (int)n);
				pos += in;
			}
			t_open += now() - t0;
			bytes += (double)(per * sz);
		}
		printf("%-22s %12.1f %12.1f\n", sz == 1024 ? "1 KiB" : "16 KiB",
		       bytes / t_seal / 1048576.0, bytes / t_open / 1048576.0);
		ossuary_destroy_connection(&cl);
		ossuary_destroy_connection(&sv);
	}
	free(pt);
	free(wire);
	free(out);
}

int main(int argc, char **argv)
{
	double budget = argc > 1 ? atof(argv[1]) : 1.0;

	if (budget <= 0 || argc > 2) {
		fprintf(stderr, "usage: bench_user [SECONDS per measurement]\n");
		return 2;
	}
	if (ossuary_generate_auth_keypair(client_sk, client_pk) ||
	    ossuary_generate_auth_keypair(server_sk, server_pk))
		die("keypair", OSSUARY_ERR_CRYPTO);
	printf("libossuary userspace, in memory, one thread, %.1f CPU s per line\n\n", budget);
	bench_handshakes(budget);
	bench_records(budget);
	return 0;
}
