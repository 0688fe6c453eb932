/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Key files: generate, store and load Ed25519 authentication keys.
 *
 * Format. Text; the first line says what the file holds, and is
 * checked: a secret key is never read where a public key is expected,
 * nor the other way round.
 *
 *   ossuary-secret-key-v1                 ossuary-public-key-v1
 *   # keep this file private ...          d75a...64 hex digits...1a
 *   3f0c...64 hex digits...9a
 *
 * After the type line: exactly one key line, 64 hex digits (written
 * lowercase, read in either case), which may carry trailing blanks and,
 * after a blank, a free-form comment; lines starting with '#' and blank
 * lines are ignored. A type line anywhere but on the first line, or an
 * unknown one ("ossuary-secret-key-v2"), makes the file malformed. The
 * secret key is the 32-byte Ed25519 seed of RFC 8032, the bytes
 * ossuary_create_connection() takes; a secret key file must not be
 * readable or writable by group or others.
 *
 * Files from before the type line (ossuary-keygen 0.2.0 and older: a
 * comment line, then the key) are still read where their kind is
 * certain, and refused with a one-line conversion hint otherwise:
 *  - as a public key, when the name ends in ".pub";
 *  - as a secret key, when the name does not end in ".pub" and the file
 *    is private to its owner (mode 0600 or 0400);
 *  - never when the old keygen's comment names the other kind.
 *
 * Authorized-keys files are lists of public keys: one `HEX [comment]`
 * line per key, '#' comments and blank lines, no type line needed. The
 * line ossuary-public-key-v1 may appear anywhere and is skipped, so a
 * .pub file can be appended whole (cat bob.pub >> authorized). A line
 * ossuary-secret-key-v1 (or the old keygen's secret-key comment) makes
 * the whole file refused: that is a secret key, not a list of public
 * ones. So does any other type line.
 *
 * Errors: OSSUARY_ERR_INVALID for bad arguments; OSSUARY_ERR_KEY_FILE
 * for anything wrong with a file, with errno saying what (EEXIST: will
 * not overwrite; EPERM: a secret key readable or writable by group or
 * others; EINVAL: not a regular file, malformed, or the wrong kind of
 * key; else the system's errno), and ossuary_key_file_error() saying it
 * in words: "PATH[:LINE]: what is wrong[; what to do]". Messages never
 * quote file contents, so no secret leaks into a log.
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

static const char secret_head[] =
	OSS_SECRET_KEY_TYPE "\n"
	"# Keep this file private: it is an Ed25519 secret key (RFC 8032 seed).\n";
static const char public_head[] = OSS_PUBLIC_KEY_TYPE "\n";

static const char what_public[] = "expected 64 hex digits of an Ed25519 public key";
static const char what_secret[] = "expected 64 hex digits of an Ed25519 secret key";

static void to_hex(char out[KEY_HEX_LEN], const uint8_t key[OSSUARY_KEY_LEN])
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < OSSUARY_KEY_LEN; i++) {
		out[2 * i] = digits[key[i] >> 4];
		out[2 * i + 1] = digits[key[i] & 0xf];
	}
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * Classifies one line (without its newline): 0 = blank or comment,
 * 1 = a key (decoded into key), -1 = malformed (*at: where the key's
 * text starts, for oss_key_text_problem()).
 */
static int parse_line(const char *line, size_t len, uint8_t key[OSSUARY_KEY_LEN],
		      size_t *at)
{
	size_t i = 0;

	if (len > 0 && line[len - 1] == '\r')	/* tolerate CRLF files */
		len--;
	while (i < len && is_blank(line[i]))
		i++;
	*at = i;
	if (i == len || line[i] == '#')
		return 0;
	if (len - i < KEY_HEX_LEN)
		return -1;
	if (oss_key_from_hex(line + i, key) != 0)
		return -1;
	i += KEY_HEX_LEN;
	/* After the key: nothing, or a blank and then anything printable. */
	if (i < len && !is_blank(line[i]))
		return -1;
	for (; i < len; i++)
		if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
			return -1;
	return 1;
}

/* "PATH:LINE: expected ...; found 63 hex digits" */
static int bad_key_line(const char *path, unsigned int no, const char *what,
			const char *line, size_t len, size_t at)
{
	char why[128];

	oss_key_text_problem(line + at, len - at, why, sizeof(why));
	return oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL, "%s:%u: %s; %s", path, no, what, why);
}

static int has_pub_suffix(const char *path)
{
	size_t n = strlen(path);

	return n > 4 && strcmp(path + n - 4, ".pub") == 0 && path[n - 5] != '/';
}

/*
 * Opens path for reading and checks it is a regular file (O_NONBLOCK so
 * that a FIFO planted at the path cannot hang us; it means nothing for
 * the regular file we go on to read). *st gets its status.
 */
static int open_key_file(const char *path, int *fd_out, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	int e;

	if (fd < 0)
		goto sys;
	if (fstat(fd, st) != 0) {
		e = errno;
		close(fd);
		errno = e;
		goto sys;
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		return oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL, "%s: %s, not a key file", path,
				     S_ISDIR(st->st_mode) ? "a directory" : "not a regular file");
	}
	*fd_out = fd;
	return OSSUARY_OK;
sys:
	e = errno;
	return oss_key_error(OSSUARY_ERR_KEY_FILE, e, "%s: %s", path, strerror(e));
}

/* Reads the whole (small) file into buf; *len gets its size. */
static int read_small(const char *path, int fd, char *buf, size_t cap, size_t *len)
{
	size_t got = 0;

	for (;;) {
		ssize_t n = read(fd, buf + got, cap - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			return oss_key_error(OSSUARY_ERR_KEY_FILE, e, "%s: %s", path, strerror(e));
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got == cap)		/* file too large to be a key file */
			return oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL,
					     "%s: larger than %d bytes, so not a key file", path,
					     KEY_FILE_MAX - 1);
	}
	if (memchr(buf, '\0', got))
		return oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL,
				     "%s: holds a NUL byte, so not a key file", path);
	*len = got;
	return OSSUARY_OK;
}

/* Steps through buf line by line; 0 at the end. */
struct lines {
	const char *buf;
	size_t len, pos;
	unsigned int no;
};

static int next_line(struct lines *l, const char **s, size_t *n)
{
	const char *nl;

	if (l->pos >= l->len)
		return 0;
	*s = l->buf + l->pos;
	nl = memchr(*s, '\n', l->len - l->pos);
	*n = nl ? (size_t)(nl - *s) : l->len - l->pos;
	l->pos += *n + 1;
	l->no++;
	return 1;
}

/* What a key file says it holds. */
enum kind { KIND_UNTYPED, KIND_SECRET, KIND_PUBLIC };

struct parsed {
	enum kind kind;
	int old_secret, old_public;	/* the pre-type-line keygen's comments */
};

/*
 * Reads the type line and exactly one key among comments and blanks.
 * want_secret only chooses the wording of "expected ... key".
 */
static int parse_key_file(const char *path, const char *buf, size_t len, int want_secret,
			  uint8_t key[OSSUARY_KEY_LEN], struct parsed *p)
{
	struct lines l = { buf, len, 0, 0 };
	uint8_t tmp[OSSUARY_KEY_LEN];
	unsigned int key_no = 0;
	const char *s;
	size_t n, at;
	int rc = OSSUARY_OK;

	memset(p, 0, sizeof(*p));
	while (rc == OSSUARY_OK && next_line(&l, &s, &n)) {
		int mark = oss_key_mark(s, n), r;
		char name[64];

		/* The same limit as an authorized-keys line. */
		if (n > LINE_MAX_LEN) {
			rc = oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL,
					   "%s:%u: longer than %d bytes", path, l.no, LINE_MAX_LEN);
			continue;
		}
		switch (mark) {
		case OSS_MARK_SECRET_TYPE:
		case OSS_MARK_PUBLIC_TYPE:
			if (l.no == 1) {
				p->kind = mark == OSS_MARK_SECRET_TYPE ? KIND_SECRET : KIND_PUBLIC;
				continue;
			}
			rc = oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL,
					   "%s:%u: a type line belongs on the first line only",
					   path, l.no);
			continue;
		case OSS_MARK_OTHER_TYPE:
			oss_key_type_name(s, n, name, sizeof(name));
			rc = oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL,
					   "%s:%u: unknown type %s; this version reads "
					   OSS_SECRET_KEY_TYPE " and " OSS_PUBLIC_KEY_TYPE " files",
					   path, l.no, name);
			continue;
		case OSS_MARK_OLD_SECRET:
			p->old_secret = 1;
			continue;
		case OSS_MARK_OLD_PUBLIC:
			p->old_public = 1;
			continue;
		}
		r = parse_line(s, n, tmp, &at);
		if (r < 0) {
			rc = bad_key_line(path, l.no, want_secret ? what_secret : what_public,
					  s, n, at);
		} else if (r == 1 && key_no) {
			rc = oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL,
					   "%s:%u: a second key (the first is on line %u); "
					   "a key file holds exactly one", path, l.no, key_no);
		} else if (r == 1) {
			memcpy(key, tmp, OSSUARY_KEY_LEN);
			key_no = l.no;
		}
	}
	sodium_memzero(tmp, sizeof(tmp));
	if (rc == OSSUARY_OK && !key_no)
		rc = oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL, "%s: no key in the file (%s)",
				   path, want_secret ? what_secret : what_public);
	return rc;
}

/* The messages for the two mix-ups. */
static int public_not_secret(const char *path, const char *how)
{
	size_t n = strlen(path);

	if (has_pub_suffix(path))
		return oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL,
				     "%s is a public key%s; pass the secret key file "
				     "(without .pub: %.*s)", path, how, (int)(n - 4), path);
	return oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL,
			     "%s is a public key%s; pass the secret key file (the one "
			     "without .pub)", path, how);
}

static int secret_not_public(const char *path, const char *how)
{
	if (has_pub_suffix(path))	/* a secret under a public name: no guess at the right one */
		return oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL,
				     "%s is a secret key%s, whatever its name says; pass its public "
				     "key file, and keep %s private", path, how, path);
	return oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL,
			     "%s is a secret key%s; pass its public key file (%s.pub), "
			     "and keep %s private", path, how, path, path);
}

/*
 * Is the parsed file the kind wanted? Typed files say so; an untyped
 * (old) file only where its name and mode leave no doubt.
 */
static int check_kind(const char *path, const struct stat *st, const struct parsed *p,
		      int want_secret)
{
	int private_mode = !(st->st_mode & 077), pub_name = has_pub_suffix(path);

	/*
	 * A type line contradicted by the old keygen's comment: most likely
	 * a conversion hint applied to the wrong file. Neither kind, then.
	 */
	if ((p->kind == KIND_SECRET && p->old_public) || (p->kind == KIND_PUBLIC && p->old_secret))
		return oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL,
				     "%s: its type line says %s key, but its comment says %s key "
				     "(ossuary-keygen wrote that comment); fix the type line", path,
				     p->kind == KIND_SECRET ? "secret" : "public",
				     p->kind == KIND_SECRET ? "public" : "secret");
	switch (p->kind) {
	case KIND_SECRET:
		if (!want_secret)
			return secret_not_public(path, "");
		if (!private_mode)
			return oss_key_error(OSSUARY_ERR_KEY_FILE, EPERM,
					     "%s: a secret key that others can %s (mode %04o); "
					     "make it private: chmod 600 %s", path,
					     (st->st_mode & 044) ? "read" : "write to",
					     (unsigned int)(st->st_mode & 07777), path);
		return OSSUARY_OK;
	case KIND_PUBLIC:
		if (want_secret)
			return public_not_secret(path, "");
		return OSSUARY_OK;
	case KIND_UNTYPED:
		break;
	}
	/* An old file: the old comments, then the name and the mode decide. */
	if (p->old_secret && p->old_public)
		return oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL,
				     "%s: no type line, and comments naming both kinds of key; "
				     "rewrite it with ossuary-keygen", path);
	if (want_secret) {
		if (p->old_public || pub_name)
			return public_not_secret(path, " (an old file without a type line)");
		if (!private_mode)
			return oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL,
					     "%s: no type line, and others can read or write it, so it "
					     "may well be a public key; if it is your secret key: "
					     "chmod 600 %s && sed -i '1i " OSS_SECRET_KEY_TYPE "' %s",
					     path, path, path);
		return OSSUARY_OK;
	}
	if (p->old_secret)
		return secret_not_public(path, " (an old file without a type line)");
	if (!pub_name)
		return oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL,
				     "%s: no type line, and no .pub name to say it holds a public "
				     "key; if it does: sed -i '1i " OSS_PUBLIC_KEY_TYPE "' %s",
				     path, path);
	return OSSUARY_OK;
}

static int load_key(const char *path, uint8_t key[OSSUARY_KEY_LEN], int secret)
{
	char buf[KEY_FILE_MAX];
	struct parsed p;
	struct stat st;
	size_t len = 0;
	int fd, rc, e;

	oss_key_error_clear();
	if (!path || !*path || !key)
		return oss_key_error(OSSUARY_ERR_INVALID, EINVAL, "%s: no path or no key buffer",
				     secret ? "ossuary_load_secret_key" : "ossuary_load_public_key");
	if (sodium_init() < 0)
		return oss_key_error(OSSUARY_ERR_CRYPTO, EIO, "%s: libsodium failed to start", path);
	rc = open_key_file(path, &fd, &st);
	if (rc == OSSUARY_OK) {
		/* The hex text of a secret key is as secret as the key: keep it off swap. */
		sodium_mlock(buf, sizeof(buf));
		rc = read_small(path, fd, buf, sizeof(buf), &len);
		if (rc == OSSUARY_OK)
			rc = parse_key_file(path, buf, len, secret, key, &p);
		if (rc == OSSUARY_OK)
			rc = check_kind(path, &st, &p, secret);
		e = errno;
		sodium_munlock(buf, sizeof(buf));	/* also wipes buf */
		close(fd);
		errno = e;	/* the cause, not munlock's or close's leftovers */
	}
	/* A public key of zeros means "no key" on the wire: never load one. */
	if (rc == OSSUARY_OK && !secret && sodium_is_zero(key, OSSUARY_KEY_LEN))
		rc = oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL,
				   "%s: the all-zero key, which means \"no key\"", path);
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

	if (fd < 0) {
		e = errno;
		if (e == EEXIST)
			return oss_key_error(OSSUARY_ERR_KEY_FILE, e,
					     "%s already exists; not overwriting it", path);
		return oss_key_error(OSSUARY_ERR_KEY_FILE, e, "%s: %s", path, strerror(e));
	}
	if (fchmod(fd, mode) == 0 && write_all(fd, text, len) == 0 && fsync(fd) == 0) {
		if (close(fd) == 0)
			return OSSUARY_OK;
		e = errno;
	} else {
		e = errno;
		close(fd);
	}
	unlink(path);	/* we created it; leave no half-written key behind */
	return oss_key_error(OSSUARY_ERR_KEY_FILE, e, "%s: %s", path, strerror(e));
}

/* Makes the missing directory of path, saying so on failure. */
static int make_dir_for(const char *path, int *created)
{
	int e;

	if (oss_key_parent_dir(path, created) == 0)
		return OSSUARY_OK;
	e = errno;
	return oss_key_error(OSSUARY_ERR_KEY_FILE, e,
			     "%s: cannot make its directory: %s (only the last directory "
			     "of the path is made)", path, strerror(e));
}

/* Removes what make_dir_for() made, when it stayed empty. */
static void unmake_dir_for(const char *path, int created)
{
	char *dir, *slash;

	if (!created || !(dir = strdup(path)))
		return;
	slash = strrchr(dir, '/');
	if (slash) {
		*slash = '\0';
		rmdir(dir);
	}
	free(dir);
}

struct secret_text {
	uint8_t seed[OSSUARY_KEY_LEN];
	uint8_t sk[crypto_sign_SECRETKEYBYTES];
	char text[sizeof(secret_head) + KEY_HEX_LEN + 1];
};

int ossuary_write_keypair(const char *secret_path, const char *public_path)
{
	struct secret_text s;
	uint8_t pk[crypto_sign_PUBLICKEYBYTES];
	char pub_text[sizeof(public_head) + KEY_HEX_LEN + 1];
	size_t clen = sizeof(secret_head) - 1, plen = sizeof(public_head) - 1;
	int rc, e, made_s = 0, made_p = 0;
	struct stat st;

	oss_key_error_clear();
	if (!secret_path || !*secret_path || !public_path || !*public_path)
		return oss_key_error(OSSUARY_ERR_INVALID, EINVAL,
				     "ossuary_write_keypair: a path is missing");
	if (strcmp(secret_path, public_path) == 0)
		return oss_key_error(OSSUARY_ERR_INVALID, EINVAL,
				     "%s: the secret and the public key need two files",
				     secret_path);
	if (sodium_init() < 0)
		return oss_key_error(OSSUARY_ERR_CRYPTO, EIO, "libsodium failed to start");
	/* Refuse before creating anything if either file exists. */
	if (lstat(secret_path, &st) == 0)
		return oss_key_error(OSSUARY_ERR_KEY_FILE, EEXIST,
				     "%s already exists; not overwriting it", secret_path);
	if (lstat(public_path, &st) == 0)
		return oss_key_error(OSSUARY_ERR_KEY_FILE, EEXIST,
				     "%s already exists; not overwriting it", public_path);
	rc = make_dir_for(secret_path, &made_s);
	if (rc != OSSUARY_OK)
		return rc;

	sodium_mlock(&s, sizeof(s));
	randombytes_buf(s.seed, sizeof(s.seed));
	crypto_sign_seed_keypair(pk, s.sk, s.seed);
	memcpy(s.text, secret_head, clen);
	to_hex(s.text + clen, s.seed);
	s.text[clen + KEY_HEX_LEN] = '\n';
	rc = create_key_file(secret_path, 0600, s.text, clen + KEY_HEX_LEN + 1);
	e = errno;
	sodium_munlock(&s, sizeof(s));	/* wipes seed, sk and text */
	if (rc != OSSUARY_OK) {
		unmake_dir_for(secret_path, made_s);
		errno = e;
		return rc;
	}

	memcpy(pub_text, public_head, plen);
	to_hex(pub_text + plen, pk);
	pub_text[plen + KEY_HEX_LEN] = '\n';
	rc = make_dir_for(public_path, &made_p);
	if (rc == OSSUARY_OK)
		rc = create_key_file(public_path, 0644, pub_text, plen + KEY_HEX_LEN + 1);
	if (rc != OSSUARY_OK) {
		e = errno;
		unlink(secret_path);	/* a secret without its public half is useless */
		unmake_dir_for(public_path, made_p);
		unmake_dir_for(secret_path, made_s);
		errno = e;
	}
	return rc;
}

/* Loud, because it is a secret key that went astray. */
static int secret_in_list(const char *path, unsigned int no)
{
	if (has_pub_suffix(path))
		return oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL,
				     "%s:%u: a SECRET key, not a list of public keys, whatever its "
				     "name says; give public keys instead, and keep %s private",
				     path, no, path);
	return oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL,
			     "%s:%u: a SECRET key, not a list of public keys; give the public "
			     "key file (%s.pub) instead, and keep %s private", path, no, path, path);
}

int ossuary_load_authorized_keys(OssuaryConnection *conn, const char *path)
{
	char line[LINE_MAX_LEN + 2];
	uint8_t (*keys)[OSSUARY_KEY_LEN] = NULL;
	size_t n = 0, cap = 0;
	unsigned int no = 0;
	struct stat st;
	int fd, rc, e;
	FILE *f;

	oss_key_error_clear();
	if (!conn || !path || !*path)
		return oss_key_error(OSSUARY_ERR_INVALID, EINVAL,
				     "ossuary_load_authorized_keys: no connection or no path");
	rc = open_key_file(path, &fd, &st);
	if (rc != OSSUARY_OK)
		return rc;
	f = fdopen(fd, "r");
	if (!f) {
		e = errno;
		close(fd);
		return oss_key_error(OSSUARY_ERR_KEY_FILE, e, "%s: %s", path, strerror(e));
	}
	/* Parse everything first: a malformed file changes nothing. */
	while (rc == OSSUARY_OK && fgets(line, sizeof(line), f)) {
		size_t len = strlen(line), at;
		uint8_t key[OSSUARY_KEY_LEN];
		char name[64];
		int r;

		no++;
		if (len > 0 && line[len - 1] == '\n') {
			len--;
		} else if (!feof(f)) {
			rc = oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL,
					   "%s:%u: longer than %d bytes", path, no, LINE_MAX_LEN);
			break;
		}
		if (memchr(line, '\0', len)) {	/* an embedded NUL cut the line */
			rc = oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL,
					   "%s:%u: holds a NUL byte", path, no);
			break;
		}
		switch (oss_key_mark(line, len)) {
		case OSS_MARK_SECRET_TYPE:
		case OSS_MARK_OLD_SECRET:
			rc = secret_in_list(path, no);
			continue;
		case OSS_MARK_OTHER_TYPE:
			oss_key_type_name(line, len, name, sizeof(name));
			rc = oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL,
					   "%s:%u: unknown type %s; an authorized-keys file lists "
					   "public keys", path, no, name);
			continue;
		case OSS_MARK_PUBLIC_TYPE:	/* from a .pub file appended whole */
			continue;
		}
		r = parse_line(line, len, key, &at);
		if (r < 0) {
			rc = bad_key_line(path, no, what_public, line, len, at);
		} else if (r == 1 && sodium_is_zero(key, sizeof(key))) {
			rc = oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL,
					   "%s:%u: the all-zero key, which means \"no key\"", path, no);
		} else if (r == 1) {
			if (n == cap) {
				size_t ncap = cap ? 2 * cap : 16;
				void *p;

				if (ncap > AUTHORIZED_MAX)
					ncap = AUTHORIZED_MAX;
				if (n == ncap) {
					rc = oss_key_error(OSSUARY_ERR_KEY_FILE, E2BIG,
							   "%s:%u: more than %d keys", path, no,
							   AUTHORIZED_MAX);
					break;
				}
				p = realloc(keys, ncap * sizeof(*keys));
				if (!p) {
					rc = oss_key_error(OSSUARY_ERR_NO_MEMORY, ENOMEM,
							   "%s: out of memory", path);
					break;
				}
				keys = p;
				cap = ncap;
			}
			memcpy(keys[n++], key, OSSUARY_KEY_LEN);
		}
	}
	if (rc == OSSUARY_OK && ferror(f))
		rc = oss_key_error(OSSUARY_ERR_KEY_FILE, EIO, "%s: read error", path);
	e = errno;
	fclose(f);
	errno = e;
	if (rc == OSSUARY_OK && n > 0) {
		rc = ossuary_add_authorized_keys(conn, (const uint8_t (*)[32])keys, n);
		if (rc < 0)
			oss_key_error(rc, errno, "%s: %s", path, ossuary_strerror(rc));
	}
	e = errno;
	free(keys);
	if (rc < 0) {
		errno = e;
		return rc;
	}
	return (int)n;
}
