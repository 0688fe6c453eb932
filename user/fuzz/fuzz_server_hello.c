/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A client receiving SERVER_HELLO: the client has sent its CLIENT_HELLO
 * and the input is everything it reads back. The client holds an
 * authorized list, so a hello that opens reaches the policy code.
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

static void run(const uint8_t *data, size_t size, int bytewise, struct fuzz_result *r)
{
	struct fuzz_app app;
	OssuaryConnection *cl;
	uint8_t ch[256];
	size_t n = sizeof(ch);

	fuzz_rng_seed(3);
	cl = ossuary_create_connection(CONN_TYPE_CLIENT, client_sk);
	if (!cl || ossuary_add_authorized_key(cl, server_pk) != OSSUARY_OK)
		abort();
	/* CLIENT_HELLO goes out (to nobody): now SERVER_HELLO is expected. */
	if (ossuary_send_handshake(cl, ch, &n) < 0 || n != 80)
		abort();
	fuzz_app_init(&app, cl, 0);
	fuzz_feed(&app, data, size, bytewise);
	*r = app.r;
	ossuary_destroy_connection(&cl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_whole_vs_bytewise(data, size, run);
}
