/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A server receiving CLIENT_AUTH: a real client and an authenticated
 * server exchange CLIENT_HELLO and SERVER_HELLO in memory; the input is
 * everything the server reads next (where the client's CLIENT_AUTH
 * belongs). The real CLIENT_AUTH is thrown away.
 * Fed whole and byte by byte; both must agree.
 */
#include "fuzz.h"

static uint8_t server_sk[32], server_pk[32], client_sk[32], client_pk[32];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_rng_install();
	fuzz_keypair("fuzz server", server_sk, server_pk);
	fuzz_keypair("fuzz client", client_sk, client_pk);
	return 0;
}

/* Runs CH and SH; returns the server, waiting for CLIENT_AUTH. */
static OssuaryConnection *server_waiting_for_auth(OssuaryConnection **cl_out)
{
	static struct fuzz_pipe to_sv, to_cl;
	OssuaryConnection *cl, *sv;
	size_t n;

	fuzz_rng_seed(4);
	cl = ossuary_create_connection(CONN_TYPE_CLIENT, client_sk);
	sv = ossuary_create_connection(CONN_TYPE_AUTHENTICATED_SERVER, server_sk);
	if (!cl || !sv || ossuary_add_authorized_key(cl, server_pk) ||
	    ossuary_add_authorized_key(sv, client_pk))
		abort();
	to_sv.len = to_cl.len = 0;
	fuzz_hs_step(cl, &to_cl, &to_sv);	/* CLIENT_HELLO */
	fuzz_hs_step(sv, &to_sv, &to_cl);	/* CLIENT_HELLO in */
	fuzz_drain(sv, &to_cl);			/* SERVER_HELLO out */
	n = to_cl.len;
	if (to_sv.len || ossuary_recv_handshake(cl, to_cl.buf, &n) < 0 || n != to_cl.len ||
	    ossuary_handshake_done(sv) != 0 || ossuary_handshake_done(cl) != 1)
		abort();	/* the genuine exchange must get this far */
	*cl_out = cl;
	return sv;
}

static void run(const uint8_t *data, size_t size, int bytewise, struct fuzz_result *r)
{
	struct fuzz_app app;
	OssuaryConnection *cl, *sv = server_waiting_for_auth(&cl);

	fuzz_app_init(&app, sv, 1);
	fuzz_feed(&app, data, size, bytewise);
	*r = app.r;
	ossuary_destroy_connection(&sv);
	ossuary_destroy_connection(&cl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_whole_vs_bytewise(data, size, run);
}
