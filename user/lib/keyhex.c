// SPDX-License-Identifier: Apache-2.0
/*
 * Key text, shared by the key files and the known-hosts file: one hex
 * decoder, so both accept exactly the same spelling of a key; one
 * reading of the type lines; one way of saying what is wrong with a
 * line (ossuary_key_file_error()); one rule for making the directory a
 * key file goes into.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <sodium.h>

#include "internal.h"

int oss_key_from_hex(const char *hex, uint8_t key[32])
{
	size_t n = 0;
	const char *end = NULL;

	/* No separators allowed: the 64 digits must be contiguous. */
	if (sodium_hex2bin(key, 32, hex, 64, NULL, &n, &end) != 0 || n != 32 ||
	    end != hex + 64) {
		sodium_memzero(key, 32);
		return -1;
	}
	return 0;
}

/* ---- type lines ---- */

/* What ossuary-keygen wrote before key files had a type line. */
static const char old_secret_comment[] = "# ossuary ed25519 secret key (keep private)";
static const char old_public_comment[] = "# ossuary ed25519 public key";

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int line_is(const char *line, size_t len, const char *word)
{
	size_t n = strlen(word);

	return len == n && memcmp(line, word, n) == 0;
}

int oss_key_mark(const char *line, size_t len)
{
	size_t i;

	/* Trailing blanks (and a CR) never change what a line says. */
	while (len > 0 && (is_blank(line[len - 1]) || line[len - 1] == '\r'))
		len--;
	if (line_is(line, len, OSS_SECRET_KEY_TYPE))
		return OSS_MARK_SECRET_TYPE;
	if (line_is(line, len, OSS_PUBLIC_KEY_TYPE))
		return OSS_MARK_PUBLIC_TYPE;
	if (line_is(line, len, old_secret_comment))
		return OSS_MARK_OLD_SECRET;
	if (line_is(line, len, old_public_comment))
		return OSS_MARK_OLD_PUBLIC;
	/* "ossuary-" and no blank: a type line of some other kind or version. */
	if (len > 8 && memcmp(line, "ossuary-", 8) == 0) {
		for (i = 8; i < len && !is_blank(line[i]); i++)
			;
		if (i == len)
			return OSS_MARK_OTHER_TYPE;
	}
	return OSS_MARK_NONE;
}

void oss_key_type_name(const char *line, size_t len, char *out, size_t cap)
{
	size_t n = 0;

	while (len > 0 && (is_blank(line[len - 1]) || line[len - 1] == '\r'))
		len--;
	/*
	 * Quoted only when it is plainly a type name: short, lowercase
	 * letters, digits and '-', and no run of hex digits long enough to
	 * be a piece of a key. Anything else is not repeated.
	 */
	if (len <= 48 && len > 8 && memcmp(line, "ossuary-", 8) == 0) {
		size_t run = 0;

		for (n = 0; n < len; n++) {
			char c = line[n];

			if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
				break;
			run = is_hex(c) ? run + 1 : 0;
			if (run > 8)
				break;
		}
	}
	if (n == len && n > 0)
		snprintf(out, cap, "'%.*s'", (int)len, line);
	else
		snprintf(out, cap, "(not shown)");
}

/* ---- what is wrong with a key's text ---- */

static int starts(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && strncasecmp(s, prefix, n) == 0;
}

void oss_key_text_problem(const char *s, size_t len, char *out, size_t cap)
{
	const size_t want = 2 * OSSUARY_KEY_LEN;
	size_t n = 0;

	if (len > 0 && s[len - 1] == '\r')
		len--;
	while (n < len && is_hex(s[n]))
		n++;
	if (starts(s, len, "SHA256:"))
		snprintf(out, cap, "a SHA256: fingerprint is not a key");
	else if (starts(s, len, "ssh-") || starts(s, len, "ecdsa-") || starts(s, len, "sk-"))
		snprintf(out, cap, "an OpenSSH key is not an Ossuary key");
	else if (starts(s, len, "0x"))
		snprintf(out, cap, "found a 0x prefix; write the digits alone");
	else if (n == want && (n == len || is_blank(s[n])))
		snprintf(out, cap, "a control character in the comment after the key");
	else if (n == want)
		snprintf(out, cap, "found other text glued to the key; a blank must come first");
	else if (n == 0)
		snprintf(out, cap, "found no hex digits");
	else if (n < len && !is_blank(s[n]))
		snprintf(out, cap, "found %zu hex digits, then other text", n);
	else
		snprintf(out, cap, "found %zu hex digits", n);
}

/* ---- ossuary_key_file_error() ---- */

/* One per thread, so concurrent loaders never read each other's story. */
static _Thread_local char key_error[1024];

const char *ossuary_key_file_error(void)
{
	return key_error;
}

void oss_key_error_clear(void)
{
	key_error[0] = '\0';
}

int oss_key_error(int rc, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(key_error, sizeof(key_error), fmt, ap);
	va_end(ap);
	errno = err;
	return rc;
}

/* ---- the directory of a key file ---- */

int oss_key_parent_dir(const char *path, int *created)
{
	struct stat st;
	char *dir, *slash;
	int rc = 0;

	*created = 0;
	dir = strdup(path);
	if (!dir)
		return -1;
	slash = strrchr(dir, '/');
	/* "name" (the working directory) and "/name" need nothing made. */
	if (slash && slash != dir) {
		*slash = '\0';
		/* "a//b": the directory is "a". */
		while (slash > dir + 1 && slash[-1] == '/')
			*--slash = '\0';
		if (stat(dir, &st) != 0 && errno == ENOENT) {
			/*
			 * Only the last component, as ssh-keygen makes ~/.ssh: a
			 * typo higher up stays an error (ENOENT from mkdir).
			 * 0700: the directory of a secret key is private too.
			 */
			if (mkdir(dir, 0700) == 0)
				*created = 1;
			else if (errno != EEXIST)
				rc = -1;
		}
	}
	if (rc != 0) {
		int e = errno;

		free(dir);
		errno = e;
		return rc;
	}
	free(dir);
	return 0;
}
