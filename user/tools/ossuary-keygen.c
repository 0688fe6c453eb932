/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ossuary-keygen: make an Ed25519 authentication key pair.
 *
 *   ossuary-keygen [-f PATH]
 *   ossuary-keygen --version
 *
 * Writes the secret key to PATH (default ./ossuary.key, mode 0600) and
 * the public key to PATH.pub (mode 0644), never replacing an existing
 * file; each file's first line says which it is (ossuary-secret-key-v1,
 * ossuary-public-key-v1). A missing last directory of PATH is made with
 * mode 0700, as ssh-keygen makes ~/.ssh. The public key goes to
 * standard output as 64 hex digits, alone on its line, so scripts can
 * capture it; everything else goes to standard error. Exit status: 0
 * written, 1 refused or failed, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ossuary.h"

#define DEFAULT_PATH "./ossuary.key"

#ifndef OSSUARY_VERSION
#define OSSUARY_VERSION "unknown"	/* user/Makefile passes VERSION */
#endif

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: ossuary-keygen [-f PATH]\n"
		"Generate an Ossuary Ed25519 authentication key pair.\n"
		"\n"
		"  -f, --file PATH  secret key file (default %s); the public key\n"
		"                   goes to PATH.pub. Existing files are never replaced;\n"
		"                   a missing last directory is made (mode 0700).\n"
		"  -h, --help       show this help\n"
		"      --version    show the version\n"
		"\n"
		"Prints the public key (64 hex digits) on standard output. Give the\n"
		"secret key (PATH) to ossuary-cat --key, and PATH.pub to the peers.\n",
		DEFAULT_PATH);
}

/* The directory part of path, when it is missing (and so will be made). */
static char *missing_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	struct stat st;
	char *dir;

	if (!slash || slash == path)
		return NULL;
	dir = strndup(path, (size_t)(slash - path));
	if (dir && (stat(dir, &st) == 0 || errno != ENOENT)) {
		free(dir);
		dir = NULL;
	}
	return dir;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = DEFAULT_PATH;
	uint8_t pk[OSSUARY_KEY_LEN];
	char *pub, *dir;
	int c, rc;

	while ((c = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("ossuary-keygen %s\n", OSSUARY_VERSION);
			return fflush(stdout) == 0 ? 0 : 1;
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

	dir = missing_dir(path);
	rc = ossuary_write_keypair(path, pub);
	if (rc != OSSUARY_OK) {
		fprintf(stderr, "ossuary-keygen: %s\n", ossuary_key_file_error());
		free(dir);
		free(pub);
		return 1;
	}
	if (dir)
		fprintf(stderr, "ossuary-keygen: made the directory %s (mode 0700)\n", dir);
	free(dir);
	/* Read the public key back: what we print is what the file holds. */
	rc = ossuary_load_public_key(pub, pk);
	if (rc != OSSUARY_OK) {
		fprintf(stderr, "ossuary-keygen: wrote %s but cannot read it back: %s\n",
			pub, ossuary_key_file_error());
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
