/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Key files: generate, store and load Ed25519 authentication keys.
 *
 * File format (secret and public alike): text, one key per line as 64
 * hex digits (written lowercase, read in either case). Lines starting
 * with '#' and blank lines are ignored; a key line may carry trailing
 * blanks and, after a blank, a free-form comment (authorized-keys
 * files use it to name the key). What ossuary_write_keypair() writes:
 *
 *   # ossuary ed25519 secret key (keep private)
 *   3f0c...64 hex digits...9a
 *
 *   # ossuary ed25519 public key
 *   d75a...64 hex digits...1a
 *
 * The secret key is the 32-byte Ed25519 seed of RFC 8032, the same
 * bytes ossuary_create_connection() takes. A secret or public key file
 * holds exactly one key; an authorized-keys file holds any number.
 *
 * Errors: OSSUARY_ERR_INVALID for bad arguments; OSSUARY_ERR_KEY_FILE
 * for anything wrong with a file, with errno saying what (EEXIST: will
 * not overwrite; EPERM: secret key readable or writable by group or
 * others; EINVAL: not a regular file or malformed; else the system's
 * errno). Messages never quote file contents, so no secret leaks into
 * a log.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "ossuary.h"
#include "internal.h"

#define KEY_HEX_LEN (2 * OSSUARY_KEY_LEN)
/* A key file is a few short lines; anything bigger is not ours. */
#define KEY_FILE_MAX 4096
/* Longest authorized-keys line we accept (key plus a comment). */
#define LINE_MAX_LEN 1024
/* Bound on authorized keys, so a huge file cannot exhaust memory. */
#define AUTHORIZED_MAX 65536

static const char secret_comment[] = "# ossuary ed25519 secret key (keep private)\n";
static const char public_comment[] = "# ossuary ed25519 public key\n";

static void to_hex(char out[KEY_HEX_LEN], const uint8_t key[OSSUARY_KEY_LEN])
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < OSSUARY_KEY_LEN; i++) {
		out[2 * i] = digits[key[i] >> 4];
		out[2 * i + 1] = digits[key[i] & 0xf];
	}
}

/*
 * Classifies one line (without its newline): 0 = blank or comment,
 * 1 = a key (decoded into key), -1 = malformed.
 */
static int parse_line(const char *line, size_t len, uint8_t key[OSSUARY_KEY_LEN])
{
	size_t i = 0;

	if (len > 0 && line[len - 1] == '\r')	/* tolerate CRLF files */
		len--;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i == len || line[i] == '#')
		return 0;
	if (len - i < KEY_HEX_LEN)
		return -1;
	if (oss_key_from_hex(line + i, key) != 0)
		return -1;
	i += KEY_HEX_LEN;
	/* After the key: nothing, or a blank and then anything printable. */
	if (i < len && line[i] != ' ' && line[i] != '\t')
		return -1;
	for (; i < len; i++)
		if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
			return -1;
	return 1;
}

static int fail(int err)
{
	errno = err;
	return OSSUARY_ERR_KEY_FILE;
}

/*
 * Opens path for reading and checks it is a regular file (O_NONBLOCK so
 * that a FIFO planted at the path cannot hang us; it means nothing for
 * the regular file we go on to read).
 * secret: also refuse any group or other permission bit, as ssh does.
 */
static int open_key_file(const char *path, int secret, int *fd_out)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0)
		return OSSUARY_ERR_KEY_FILE;
	if (fstat(fd, &st) != 0) {
		int e = errno;

		close(fd);
		return fail(e);
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return fail(EINVAL);
	}
	if (secret && (st.st_mode & 077)) {
		close(fd);
		return fail(EPERM);
	}
	*fd_out = fd;
	return OSSUARY_OK;
}

/* Reads the whole (small) file into buf; *len gets its size. */
static int read_small(int fd, char *buf, size_t cap, size_t *len)
{
	size_t got = 0;

	for (;;) {
		ssize_t n = read(fd, buf + got, cap - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail(errno);
		if (n == 0)
			break;
		got += (size_t)n;
		if (got == cap)		/* file too large to be a key file */
			return fail(EINVAL);
	}
	*len = got;
	return OSSUARY_OK;
}

/* Exactly one key line among comments and blanks, else malformed. */
static int parse_single_key(const char *buf, size_t len, uint8_t key[OSSUARY_KEY_LEN])
{
	uint8_t tmp[OSSUARY_KEY_LEN];
	int found = 0, rc = OSSUARY_OK;
	size_t start = 0;

	if (memchr(buf, '\0', len))
		return fail(EINVAL);
	while (start < len && rc == OSSUARY_OK) {
		const char *nl = memchr(buf + start, '\n', len - start);
		size_t end = nl ? (size_t)(nl - buf) : len;
		int r = parse_line(buf + start, end - start, tmp);

		if (r < 0 || (r == 1 && found))
			rc = fail(EINVAL);
		else if (r == 1) {
			memcpy(key, tmp, OSSUARY_KEY_LEN);
			found = 1;
		}
		start = end + 1;
	}
	sodium_memzero(tmp, sizeof(tmp));
	if (rc == OSSUARY_OK && !found)
		rc = fail(EINVAL);
	return rc;
}

static int load_key(const char *path, uint8_t key[OSSUARY_KEY_LEN], int secret)
{
	char buf[KEY_FILE_MAX];
	size_t len = 0;
	int fd, rc, e;

	if (!path || !*path || !key)
		return OSSUARY_ERR_INVALID;
	if (sodium_init() < 0)
		return OSSUARY_ERR_CRYPTO;
	rc = open_key_file(path, secret, &fd);
	if (rc == OSSUARY_OK) {
		/* The hex text of a secret key is as secret as the key: keep it off swap. */
		sodium_mlock(buf, sizeof(buf));
		rc = read_small(fd, buf, sizeof(buf), &len);
		if (rc == OSSUARY_OK)
			rc = parse_single_key(buf, len, key);
		e = errno;
		sodium_munlock(buf, sizeof(buf));	/* also wipes buf */
		close(fd);
		errno = e;	/* the cause, not munlock's or close's leftovers */
	}
	/* A public key of zeros means "no key" on the wire: never load one. */
	if (rc == OSSUARY_OK && !secret && sodium_is_zero(key, OSSUARY_KEY_LEN))
		rc = fail(EINVAL);
	if (rc != OSSUARY_OK)
		sodium_memzero(key, OSSUARY_KEY_LEN);	/* no half-result */
	return rc;
}

int ossuary_load_secret_key(const char *path, uint8_t key[32])
{
	return load_key(path, key, 1);
}

int ossuary_load_public_key(const char *path, uint8_t key[32])
{
	return load_key(path, key, 0);
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Creates path exclusively (never follows or replaces anything that is
 * there), forces mode (umask must not widen or narrow it), writes text
 * and syncs it: a key written is a key kept.
 */
static int create_key_file(const char *path, mode_t mode, const char *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	int e;

	if (fd < 0)
		return OSSUARY_ERR_KEY_FILE;
	if (fchmod(fd, mode) == 0 && write_all(fd, text, len) == 0 && fsync(fd) == 0) {
		if (close(fd) == 0)
			return OSSUARY_OK;
		e = errno;
	} else {
		e = errno;
		close(fd);
	}
	unlink(path);	/* we created it; leave no half-written key behind */
	return fail(e);
}

struct secret_text {
	uint8_t seed[OSSUARY_KEY_LEN];
	uint8_t sk[crypto_sign_SECRETKEYBYTES];
	char text[sizeof(secret_comment) + KEY_HEX_LEN + 1];
};

int ossuary_write_keypair(const char *secret_path, const char *public_path)
{
	struct secret_text s;
	uint8_t pk[crypto_sign_PUBLICKEYBYTES];
	char pub_text[sizeof(public_comment) + KEY_HEX_LEN + 1];
	size_t clen = sizeof(secret_comment) - 1, plen = sizeof(public_comment) - 1;
	struct stat st;
	int rc, e;

	if (!secret_path || !*secret_path || !public_path || !*public_path)
		return OSSUARY_ERR_INVALID;
	if (strcmp(secret_path, public_path) == 0)
		return OSSUARY_ERR_INVALID;
	if (sodium_init() < 0)
		return OSSUARY_ERR_CRYPTO;
	/* Refuse before creating anything if the public file exists. */
	if (lstat(public_path, &st) == 0)
		return fail(EEXIST);

	sodium_mlock(&s, sizeof(s));
	randombytes_buf(s.seed, sizeof(s.seed));
	crypto_sign_seed_keypair(pk, s.sk, s.seed);
	memcpy(s.text, secret_comment, clen);
	to_hex(s.text + clen, s.seed);
	s.text[clen + KEY_HEX_LEN] = '\n';
	rc = create_key_file(secret_path, 0600, s.text, clen + KEY_HEX_LEN + 1);
	e = errno;
	sodium_munlock(&s, sizeof(s));	/* wipes seed, sk and text */
	if (rc != OSSUARY_OK) {
		errno = e;
		return rc;
	}

	memcpy(pub_text, public_comment, plen);
	to_hex(pub_text + plen, pk);
	pub_text[plen + KEY_HEX_LEN] = '\n';
	rc = create_key_file(public_path, 0644, pub_text, plen + KEY_HEX_LEN + 1);
	if (rc != OSSUARY_OK) {
		e = errno;
		unlink(secret_path);	/* a secret without its public half is useless */
		errno = e;
	}
	return rc;
}

int ossuary_load_authorized_keys(OssuaryConnection *conn, const char *path)
{
	char line[LINE_MAX_LEN + 2];
	uint8_t (*keys)[OSSUARY_KEY_LEN] = NULL;
	size_t n = 0, cap = 0;
	int fd, rc;
	FILE *f;

	if (!conn || !path || !*path)
		return OSSUARY_ERR_INVALID;
	rc = open_key_file(path, 0, &fd);
	if (rc != OSSUARY_OK)
		return rc;
	f = fdopen(fd, "r");
	if (!f) {
		int e = errno;

		close(fd);
		return fail(e);
	}
	/* Parse everything first: a malformed file changes nothing. */
	while (rc == OSSUARY_OK && fgets(line, sizeof(line), f)) {
		size_t len = strlen(line);
		uint8_t key[OSSUARY_KEY_LEN];
		int r;

		if (len > 0 && line[len - 1] == '\n')
			len--;
		else if (!feof(f))		/* over-long line */
			rc = fail(EINVAL);
		if (rc != OSSUARY_OK)
			break;
		if (memchr(line, '\0', len)) {	/* an embedded NUL cut the line */
			rc = fail(EINVAL);
			break;
		}
		r = parse_line(line, len, key);
		if (r < 0 || (r == 1 && sodium_is_zero(key, sizeof(key)))) {
			rc = fail(EINVAL);
		} else if (r == 1) {
			if (n == cap) {
				size_t ncap = cap ? 2 * cap : 16;
				void *p;

				if (ncap > AUTHORIZED_MAX)
					ncap = AUTHORIZED_MAX;
				if (n == ncap) {
					rc = fail(E2BIG);
					break;
				}
				p = realloc(keys, ncap * sizeof(*keys));
				if (!p) {
					rc = OSSUARY_ERR_NO_MEMORY;
					break;
				}
				keys = p;
				cap = ncap;
			}
			memcpy(keys[n++], key, OSSUARY_KEY_LEN);
		}
	}
	if (rc == OSSUARY_OK && ferror(f))
		rc = fail(EIO);
	fclose(f);
	if (rc == OSSUARY_OK && n > 0)
		rc = ossuary_add_authorized_keys(conn, (const uint8_t (*)[32])keys, n);
	free(keys);
	if (rc < 0)
		return rc;
	return (int)n;
}
