/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The record parser on an established channel: the input is the byte
 * stream a client receives after a real handshake (DATA, KEY_UPDATE,
 * DISCONNECT, RESET records, garbage, and whatever follows a RESET).
 *
 * The stream is fed twice, to two identical fresh channels: in one
 * piece and byte by byte. Besides the sanitizers, the oracle is that
 * both give the same delivered bytes, events and final state.
 */
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_rng_install();
	return 0;
}

/* A client and an unauthenticated server, established; the same every time. */
static OssuaryConnection *established_client(OssuaryConnection **sv)
{
	OssuaryConnection *cl;

	fuzz_rng_seed(1);
	cl = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	*sv = ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER, NULL);
	if (!cl || !*sv || !fuzz_handshake(cl, *sv, 1))
		abort();	/* the happy path itself is broken */
	return cl;
}

static void run(const uint8_t *data, size_t size, int bytewise,
		struct fuzz_result *r)
{
	struct fuzz_app app;
	OssuaryConnection *sv, *cl = established_client(&sv);

	fuzz_app_init(&app, cl, 1);
	fuzz_feed(&app, data, size, bytewise);
	*r = app.r;
	ossuary_destroy_connection(&cl);
	ossuary_destroy_connection(&sv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_whole_vs_bytewise(data, size, run);
}
