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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_app whole, bytewise;
	OssuaryConnection *cl, *sv;

	if (size > 4 * OSSUARY_MAX_RECORD)
		return -1;	/* longer streams add time, not coverage */

	cl = established_client(&sv);
	fuzz_app_init(&whole, cl, 1);
	fuzz_feed_whole(&whole, data, size);
	ossuary_destroy_connection(&cl);
	ossuary_destroy_connection(&sv);

	cl = established_client(&sv);
	fuzz_app_init(&bytewise, cl, 1);
	fuzz_feed_bytewise(&bytewise, data, size);
	ossuary_destroy_connection(&cl);
	ossuary_destroy_connection(&sv);

	fuzz_same_result(&whole.r, &bytewise.r);
	return 0;
}
