/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ossuary-keygen: make an Ed25519 authentication key pair.
 *
 *   ossuary-keygen [-f PATH]
 *
 * Writes the secret key to PATH (default ./ossuary.key, mode 0600) and
 * the public key to PATH.pub (mode 0644), never replacing an existing
 * file. The public key goes to standard output as 64 hex digits, alone
 * on its line, so scripts can capture it; everything else goes to
 * standard error. Exit status: 0 written, 1 refused or failed, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ossuary.h"

#define DEFAULT_PATH "./ossuary.key"

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: ossuary-keygen [-f PATH]\n"
		"Generate an Ossuary Ed25519 authentication key pair.\n"
		"\n"
		"  -f, --file PATH  secret key file (default %s); the public key\n"
		"                   goes to PATH.pub. Existing files are never replaced.\n"
		"  -h, --help       show this help\n"
		"\n"
		"Prints the public key (64 hex digits) on standard output.\n",
		DEFAULT_PATH);
}

/* Names the file that blocked us, so the user knows what to move away. */
static const char *existing(const char *a, const char *b)
{
	struct stat st;

	if (lstat(a, &st) == 0)
		return a;
	if (lstat(b, &st) == 0)
		return b;
	return a;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = DEFAULT_PATH;
	uint8_t pk[OSSUARY_KEY_LEN];
	char *pub;
	int c, rc;

	while ((c = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || !*path) {
		fprintf(stderr, "ossuary-keygen: %s\n",
			*path ? "unexpected argument" : "empty path");
		usage(stderr);
		return 2;
	}
	if (asprintf(&pub, "%s.pub", path) < 0) {
		fprintf(stderr, "ossuary-keygen: out of memory\n");
		return 1;
	}

	rc = ossuary_write_keypair(path, pub);
	if (rc == OSSUARY_ERR_KEY_FILE && errno == EEXIST) {
		fprintf(stderr, "ossuary-keygen: %s already exists; not overwriting it\n",
			existing(path, pub));
		free(pub);
		return 1;
	}
	if (rc != OSSUARY_OK) {
		int e = errno;

		fprintf(stderr, "ossuary-keygen: cannot write the key pair %s and %s: %s\n",
			path, pub, rc == OSSUARY_ERR_KEY_FILE ? strerror(e) : ossuary_strerror(rc));
		free(pub);
		return 1;
	}
	/* Read the public key back: what we print is what the file holds. */
	rc = ossuary_load_public_key(pub, pk);
	if (rc != OSSUARY_OK) {
		fprintf(stderr, "ossuary-keygen: wrote %s but cannot read it back: %s\n",
			pub, ossuary_strerror(rc));
		free(pub);
		return 1;
	}
	fprintf(stderr, "ossuary-keygen: secret key in %s (mode 0600), public key in %s\n",
		path, pub);
	for (size_t i = 0; i < sizeof(pk); i++)
		printf("%02x", pk[i]);
	putchar('\n');
	free(pub);
	return fflush(stdout) == 0 ? 0 : 1;
}
