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
 * trust store that cannot be read fails closed.
 *
 * ossuary_known_hosts_add() appends under an exclusive flock(), creating
 * the file with mode 0600, in a single write() so concurrent clients
 * never interleave lines. It will not add a second, different key for a
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

static int fail(int err)
{
	errno = err;
	return OSSUARY_ERR_KEY_FILE;
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
 * malformed.
 */
static int parse_entry(char *line, size_t len, char **host, uint8_t key[OSSUARY_KEY_LEN])
{
	size_t i = 0, h;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	while (i < len && is_blank(line[i]))
		i++;
	if (i == len || line[i] == '#')
		return 0;
	h = i;
	while (i < len && (unsigned char)line[i] > 0x20 && line[i] != 0x7f)
		i++;
	if (i == len || !is_blank(line[i]) || i - h > HOST_MAX)
		return -1;
	line[i++] = '\0';
	*host = line + h;
	while (i < len && is_blank(line[i]))
		i++;
	if (len - i < KEY_HEX_LEN)
		return -1;
	if (oss_key_from_hex(line + i, key) != 0)
		return -1;
	for (i += KEY_HEX_LEN; i < len; i++)
		if (!is_blank(line[i]))
			return -1;
	return 1;
}

/*
 * Reads every entry of f. OSSUARY_OK: host listed with key;
 * OSSUARY_ERR_UNTRUSTED_SERVER: host not listed; OSSUARY_ERR_KEY_CHANGED:
 * listed only with other keys; OSSUARY_ERR_KEY_FILE: malformed file.
 */
static int scan(FILE *f, const char *host, const uint8_t key[OSSUARY_KEY_LEN])
{
	char line[LINE_MAX_LEN + 2];
	int listed = 0, match = 0;

	while (fgets(line, sizeof(line), f)) {
		size_t len = strlen(line);
		uint8_t k[OSSUARY_KEY_LEN];
		char *h = NULL;
		int r;

		if (len > 0 && line[len - 1] == '\n')
			len--;
		else if (!feof(f))
			return fail(EINVAL);	/* over-long line */
		if (memchr(line, '\0', len))
			return fail(EINVAL);
		r = parse_entry(line, len, &h, k);
		if (r < 0)
			return fail(EINVAL);
		if (r == 1 && strcasecmp(h, host) == 0) {
			listed = 1;
			if (sodium_memcmp(k, key, OSSUARY_KEY_LEN) == 0)
				match = 1;
		}
	}
	if (ferror(f))
		return fail(EIO);
	if (match)
		return OSSUARY_OK;
	return listed ? OSSUARY_ERR_KEY_CHANGED : OSSUARY_ERR_UNTRUSTED_SERVER;
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
static int scan_fd(int fd, const char *host, const uint8_t key[OSSUARY_KEY_LEN])
{
	int rfd = dup(fd);
	FILE *f;
	int rc;

	if (rfd < 0)
		return fail(errno);
	f = fdopen(rfd, "r");
	if (!f) {
		int e = errno;

		close(rfd);
		return fail(e);
	}
	if (fseek(f, 0, SEEK_SET) != 0)
		rc = fail(errno);
	else
		rc = scan(f, host, key);
	fclose(f);	/* closing the dup keeps fd's lock: flock belongs to the file */
	return rc;
}

int ossuary_known_hosts_check(const char *path, const char *host, const uint8_t key[32])
{
	int fd, rc;

	if (!path || !*path || !host || !key || !valid_host(host))
		return OSSUARY_ERR_INVALID;
	if (open_locked(path, O_RDONLY, LOCK_SH, &fd) != 0)
		return errno == ENOENT ? OSSUARY_ERR_UNTRUSTED_SERVER : fail(errno);
	rc = scan_fd(fd, host, key);
	close(fd);
	return rc;
}

int ossuary_known_hosts_add(const char *path, const char *host, const uint8_t key[32])
{
	char line[1 + HOST_MAX + 1 + KEY_HEX_LEN + 1];
	static const char digits[] = "0123456789abcdef";
	size_t n = 0, hlen;
	struct stat st;
	int fd, rc;

	if (!path || !*path || !host || !key || !valid_host(host) ||
	    sodium_is_zero(key, OSSUARY_KEY_LEN))
		return OSSUARY_ERR_INVALID;
	if (open_locked(path, O_RDWR | O_APPEND | O_CREAT, LOCK_EX, &fd) != 0)
		return fail(errno);
	rc = scan_fd(fd, host, key);
	if (rc != OSSUARY_ERR_UNTRUSTED_SERVER) {
		close(fd);	/* already listed (OK), changed, or malformed */
		return rc;
	}
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
		rc = fail(errno ? errno : EIO);
	if (close(fd) != 0 && rc == OSSUARY_OK)
		rc = fail(errno);
	return rc;
}
