/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key-file parsers: the input is written to a file (mode 0600) and
 * read as a secret key, a public key, an authorized-keys list and a
 * known-hosts file. Cross-checks: the loaders share one line syntax, so
 * a file that loads as a public key is an authorized list of exactly
 * that one key; a file never loads as both a secret and a public key
 * (the type line, or for old untyped files the name and mode, decide);
 * and every failure leaves a message.
 */
#include <fcntl.h>
#include <unistd.h>

#include "fuzz.h"

static char dir[64], path[96];

static void cleanup(void)
{
	unlink(path);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_rng_install();
	/*
	 * tmpfs if there is one: rewriting a file on ext4 thousands of times
	 * a second waits on the disk (truncate-then-write forces a flush).
	 */
	snprintf(dir, sizeof(dir), "/dev/shm/ossuary-fuzz-keyfile-XXXXXX");
	if (!mkdtemp(dir)) {
		snprintf(dir, sizeof(dir), "/tmp/ossuary-fuzz-keyfile-XXXXXX");
		if (!mkdtemp(dir))
			abort();
	}
	snprintf(path, sizeof(path), "%s/key", dir);
	atexit(cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t host_key[32] = { 1, 2, 3 };
	uint8_t sk[32], pk[32];
	int fd, rc_sk, rc_pk, rc_auth;
	OssuaryConnection *c;

	if (size > 16384)
		return -1;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size || close(fd) != 0)
		abort();

	rc_sk = ossuary_load_secret_key(path, sk);
	rc_pk = ossuary_load_public_key(path, pk);
	c = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	if (!c)
		abort();
	rc_auth = ossuary_load_authorized_keys(c, path);
	ossuary_destroy_connection(&c);
	ossuary_known_hosts_check(path, "host.example", host_key);

	if (rc_sk != OSSUARY_OK && rc_sk != OSSUARY_ERR_KEY_FILE)
		abort();
	if (rc_pk != OSSUARY_OK && rc_pk != OSSUARY_ERR_KEY_FILE)
		abort();
	if (rc_auth < 0 && rc_auth != OSSUARY_ERR_KEY_FILE)
		abort();
	if (rc_pk == OSSUARY_OK && rc_auth != 1)
		abort();	/* one parser said "one key", the other disagreed */
	if (rc_sk == OSSUARY_OK && rc_pk == OSSUARY_OK)
		abort();	/* a secret key that is also a public key: the kinds mixed up */
	if (rc_pk != OSSUARY_OK && !ossuary_key_file_error()[0])
		abort();	/* a refusal without words */
	if (rc_sk != OSSUARY_OK && !sodium_is_zero(sk, 32))
		abort();	/* a refused key must leave no bytes behind */
	return 0;
}
