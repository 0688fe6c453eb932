/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Known hosts: the trust-on-first-use memory of a client.
 *
 * Format: one line per host, `HOST HEXKEY`: the host name as the
 * application names it (no blanks or control characters, compared
 * without regard to ASCII case), one or more blanks, the server's
 * Ed25519 public key as 64 hex digits, optional trailing blanks. Lines
 * starting with '#' and blank lines are ignored. Any other line makes
 * the whole file malformed (OSSUARY_ERR_KEY_FILE, errno EINVAL): a
 * trust store that cannot be read fails closed. No type line: a
 * known-hosts file is a list, like an authorized-keys file, and files
 * written before key files had types stay valid. A key file given in
 * its place is named as such: a secret key type line (or the old
 * keygen's secret-key comment) is refused loudly, a public key type
 * line as "a public key file, not a known-hosts file".
 * ossuary_key_file_error() says which line is wrong and how.
 *
 * ossuary_known_hosts_add() appends under an exclusive flock(), creating
 * the file with mode 0600 (and its last directory, mode 0700, when that
 * is missing), in a single write() so concurrent clients never
 * interleave lines. It will not add a second, different key for a
 * listed host (OSSUARY_ERR_KEY_CHANGED): replacing a host's key is a
 * deliberate act, done by editing the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "ossuary.h"
#include "internal.h"

#define KEY_HEX_LEN (2 * OSSUARY_KEY_LEN)
#define HOST_MAX 255		/* a DNS name's limit; also covers IPv6 literals */
#define LINE_MAX_LEN (HOST_MAX + 1 + KEY_HEX_LEN + 64)

/* A system call failed on path. */
static int sys_fail(const char *path, int err)
{
	return oss_key_error(OSSUARY_ERR_KEY_FILE, err, "%s: %s", path, strerror(err));
}

static int valid_host(const char *host)
{
	size_t len = strlen(host);

	if (len == 0 || len > HOST_MAX || host[0] == '#')
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)host[i];

		if (c <= 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * Splits one line (newline removed) into host and key. Returns 0 for
 * blank/comment, 1 for an entry (host NUL-terminated in place), -1 when
 * malformed, with why (a phrase) in why.
 */
static int parse_entry(char *line, size_t len, char **host, uint8_t key[OSSUARY_KEY_LEN],
		       char *why, size_t why_cap)
{
	size_t i = 0, h, k;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	while (i < len && is_blank(line[i]))
		i++;
	if (i == len || line[i] == '#')
		return 0;
	h = i;
	while (i < len && (unsigned char)line[i] > 0x20 && line[i] != 0x7f)
		i++;
	if (i - h == KEY_HEX_LEN && oss_key_from_hex(line + h, key) == 0) {
		sodium_memzero(key, OSSUARY_KEY_LEN);
		snprintf(why, why_cap, "found a key without a host name");
		return -1;
	}
	if (i - h > HOST_MAX) {
		snprintf(why, why_cap, "found a host name longer than %d bytes", HOST_MAX);
		return -1;
	}
	if (i == len || !is_blank(line[i])) {
		snprintf(why, why_cap, i == len ? "found a host name and no key"
						: "found a control character in the host name");
		return -1;
	}
	line[i++] = '\0';
	*host = line + h;
	while (i < len && is_blank(line[i]))
		i++;
	k = i;
	if (len - i < KEY_HEX_LEN || oss_key_from_hex(line + i, key) != 0) {
		oss_key_text_problem(line + k, len - k, why, why_cap);
		return -1;
	}
	for (i += KEY_HEX_LEN; i < len; i++) {
		if (!is_blank(line[i])) {
			sodium_memzero(key, OSSUARY_KEY_LEN);
			oss_key_text_problem(line + k, len - k, why, why_cap);
			if (i > k + KEY_HEX_LEN)	/* blank, then more: a comment */
				snprintf(why, why_cap, "found text after the key (a known-hosts "
					 "line has no comment)");
			return -1;
		}
	}
	return 1;
}

static const char what_entry[] =
	"expected a host name, a blank and 64 hex digits of its Ed25519 public key";

/*
 * Reads every entry of f. OSSUARY_OK: host listed with key;
 * OSSUARY_ERR_UNTRUSTED_SERVER: host not listed; OSSUARY_ERR_KEY_CHANGED:
 * listed only with other keys; OSSUARY_ERR_KEY_FILE: malformed file.
 */
static int scan(FILE *f, const char *path, const char *host,
		const uint8_t key[OSSUARY_KEY_LEN])
{
	char line[LINE_MAX_LEN + 2], why[128], name[64];
	unsigned int no = 0, listed = 0;
	int match = 0;

	while (fgets(line, sizeof(line), f)) {
		size_t len = strlen(line);
		uint8_t k[OSSUARY_KEY_LEN];
		char *h = NULL;
		int r;

		no++;
		if (len > 0 && line[len - 1] == '\n')
			len--;
		else if (!feof(f))
			return oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL,
					     "%s:%u: longer than %d bytes", path, no, LINE_MAX_LEN);
		if (memchr(line, '\0', len))
			return oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL,
					     "%s:%u: holds a NUL byte", path, no);
		switch (oss_key_mark(line, len)) {
		case OSS_MARK_SECRET_TYPE:
		case OSS_MARK_OLD_SECRET:
			return oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL,
					     "%s:%u: a SECRET key file, not a known-hosts file; "
					     "keep it private, and give a known-hosts file (HOST KEY "
					     "lines) instead", path, no);
		case OSS_MARK_PUBLIC_TYPE:
			return oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL,
					     "%s:%u: a public key file, not a known-hosts file "
					     "(HOST KEY lines)", path, no);
		case OSS_MARK_OTHER_TYPE:
			oss_key_type_name(line, len, name, sizeof(name));
			return oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL,
					     "%s:%u: unknown type %s, not a known-hosts file",
					     path, no, name);
		}
		r = parse_entry(line, len, &h, k, why, sizeof(why));
		if (r < 0)
			return oss_key_error(OSSUARY_ERR_KEY_FILE, EINVAL, "%s:%u: %s; %s",
					     path, no, what_entry, why);
		if (r == 1 && strcasecmp(h, host) == 0) {
			if (!listed)
				listed = no;
			if (sodium_memcmp(k, key, OSSUARY_KEY_LEN) == 0)
				match = 1;
		}
	}
	if (ferror(f))
		return oss_key_error(OSSUARY_ERR_KEY_FILE, EIO, "%s: read error", path);
	if (match)
		return OSSUARY_OK;
	if (listed)
		return oss_key_error(OSSUARY_ERR_KEY_CHANGED, 0,
				     "%s:%u: lists another key for %s", path, listed, host);
	return oss_key_error(OSSUARY_ERR_UNTRUSTED_SERVER, 0, "%s: does not list %s",
			     path, host);
}

/* Opens (maybe creating) and locks; refuses anything but a regular file. */
static int open_locked(const char *path, int flags, int lock, int *fd_out)
{
	struct stat st;
	int fd = open(path, flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0600);
	int e;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) != 0)
		goto err;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		goto err;
	}
	while (flock(fd, lock) != 0)
		if (errno != EINTR)
			goto err;
	*fd_out = fd;
	return 0;
err:
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

/* Scans the file behind fd from its start through a dup'd descriptor. */
static int scan_fd(int fd, const char *path, const char *host,
		   const uint8_t key[OSSUARY_KEY_LEN])
{
	int rfd = dup(fd);
	FILE *f;
	int rc, e;

	if (rfd < 0)
		return sys_fail(path, errno);
	f = fdopen(rfd, "r");
	if (!f) {
		e = errno;
		close(rfd);
		return sys_fail(path, e);
	}
	if (fseek(f, 0, SEEK_SET) != 0)
		rc = sys_fail(path, errno);
	else
		rc = scan(f, path, host, key);
	e = errno;
	fclose(f);	/* closing the dup keeps fd's lock: flock belongs to the file */
	errno = e;
	return rc;
}

/* open_locked() failed: errno says why. */
static int open_fail(const char *path)
{
	int e = errno;

	if (e == EINVAL)	/* our own: not a regular file */
		return oss_key_error(OSSUARY_ERR_KEY_FILE, e,
				     "%s: not a regular file, so not a known-hosts file", path);
	return sys_fail(path, e);
}

int ossuary_known_hosts_check(const char *path, const char *host, const uint8_t key[32])
{
	int fd, rc;

	oss_key_error_clear();
	if (!path || !*path || !host || !key || !valid_host(host))
		return oss_key_error(OSSUARY_ERR_INVALID, EINVAL,
				     "ossuary_known_hosts_check: no path, no key, or not a host name");
	if (open_locked(path, O_RDONLY, LOCK_SH, &fd) != 0) {
		if (errno == ENOENT)	/* no file (or no directory) yet: nobody known */
			return oss_key_error(OSSUARY_ERR_UNTRUSTED_SERVER, 0,
					     "%s: does not exist yet", path);
		return open_fail(path);
	}
	rc = scan_fd(fd, path, host, key);
	close(fd);
	if (rc == OSSUARY_OK)
		oss_key_error_clear();
	return rc;
}

int ossuary_known_hosts_add(const char *path, const char *host, const uint8_t key[32])
{
	char line[1 + HOST_MAX + 1 + KEY_HEX_LEN + 1];
	static const char digits[] = "0123456789abcdef";
	size_t n = 0, hlen;
	struct stat st;
	int fd, rc, made;

	oss_key_error_clear();
	if (!path || !*path || !host || !key || !valid_host(host) ||
	    sodium_is_zero(key, OSSUARY_KEY_LEN))
		return oss_key_error(OSSUARY_ERR_INVALID, EINVAL,
				     "ossuary_known_hosts_add: no path, no key, the zero key, "
				     "or not a host name");
	if (oss_key_parent_dir(path, &made) != 0) {
		int e = errno;

		return oss_key_error(OSSUARY_ERR_KEY_FILE, e,
				     "%s: cannot make its directory: %s (only the last "
				     "directory of the path is made)", path, strerror(e));
	}
	if (open_locked(path, O_RDWR | O_APPEND | O_CREAT, LOCK_EX, &fd) != 0)
		return open_fail(path);
	rc = scan_fd(fd, path, host, key);
	if (rc != OSSUARY_ERR_UNTRUSTED_SERVER) {
		close(fd);	/* already listed (OK), changed, or malformed */
		if (rc == OSSUARY_OK)
			oss_key_error_clear();
		return rc;
	}
	oss_key_error_clear();
	/* If a hand edit left no final newline, start a fresh line. */
	if (fstat(fd, &st) == 0 && st.st_size > 0) {
		char last;

		if (pread(fd, &last, 1, st.st_size - 1) == 1 && last != '\n')
			line[n++] = '\n';
	}
	hlen = strlen(host);
	memcpy(line + n, host, hlen);
	n += hlen;
	line[n++] = ' ';
	for (size_t i = 0; i < OSSUARY_KEY_LEN; i++) {
		line[n++] = digits[key[i] >> 4];
		line[n++] = digits[key[i] & 0xf];
	}
	line[n++] = '\n';
	/* One write: with O_APPEND and the lock, the line lands whole. */
	rc = OSSUARY_OK;
	errno = 0;
	if (write(fd, line, n) != (ssize_t)n || fsync(fd) != 0)
		rc = sys_fail(path, errno ? errno : EIO);
	if (close(fd) != 0 && rc == OSSUARY_OK)
		rc = sys_fail(path, errno);
	return rc;
}
