/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A server receiving CLIENT_HELLO: the input is everything a fresh
 * server reads from a client (the hello, or anything else at all).
 * The server signs, so a well-formed hello drives the whole SERVER_HELLO
 * path. Fed whole and byte by byte; both must agree.
 */
#include "fuzz.h"

static uint8_t server_sk[32], server_pk[32];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_rng_install();
	fuzz_keypair("fuzz server", server_sk, server_pk);
	return 0;
}

static void run(const uint8_t *data, size_t size, int bytewise, struct fuzz_result *r)
{
	struct fuzz_app app;
	OssuaryConnection *sv;

	fuzz_rng_seed(2);
	sv = ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER, server_sk);
	if (!sv)
		abort();
	fuzz_app_init(&app, sv, 1);
	fuzz_feed(&app, data, size, bytewise);
	*r = app.r;
	ossuary_destroy_connection(&sv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_whole_vs_bytewise(data, size, run);
}
