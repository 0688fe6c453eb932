/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Key files, authorized keys, known hosts and the ossuary-keygen tool.
 *
 * Every test works in its own fresh directory under $TMPDIR (or /tmp)
 * and removes it afterwards. The keygen tool is found next to this test
 * binary (O/tests/NAME -> O/bin/ossuary-keygen) or in $OSSUARY_BIN.
 */
#define HARNESS_MAIN
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "ossuary.h"

static char dir[PATH_MAX];

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st; (void)flag; (void)f;
	return remove(p);
}

/* A fresh scratch directory; the previous test's one is removed first. */
static void scratch(void)
{
	const char *tmp = getenv("TMPDIR");

	if (dir[0])
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	snprintf(dir, sizeof(dir), "%s/ossuary-keyfile-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		harness_fail(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
}

__attribute__((destructor)) static void cleanup(void)
{
	if (dir[0])
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *at(const char *name)
{
	static char bufs[4][PATH_MAX];
	static int i;
	char *p = bufs[i++ % 4];

	if (snprintf(p, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX)
		harness_fail(__FILE__, __LINE__, "path too long");
	return p;
}

static void put(const char *path, mode_t mode, const char *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	if (fd < 0 || write(fd, text, len) != (ssize_t)len || fchmod(fd, mode) != 0)
		harness_fail(__FILE__, __LINE__, "writing %s: %s", path, strerror(errno));
	close(fd);
}

static void put_str(const char *path, mode_t mode, const char *text)
{
	put(path, mode, text, strlen(text));
}

static size_t slurp(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return (size_t)-1;
	n = read(fd, buf, cap - 1);
	close(fd);
	if (n < 0)
		return (size_t)-1;
	buf[n] = '\0';
	return (size_t)n;
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	if (lstat(path, &st) != 0)
		return (mode_t)-1;
	return st.st_mode & 07777;
}

static void hex(char out[65], const uint8_t k[32])
{
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", k[i]);
}

static void keypair(uint8_t sk[32], uint8_t pk[32])
{
	uint8_t full[64];

	randombytes_buf(sk, 32);
	crypto_sign_seed_keypair(pk, full, sk);
	sodium_memzero(full, sizeof(full));
}

TEST(write_keypair_modes)
{
	mode_t old;

	scratch();
	/* The modes are forced: a permissive or strict umask changes nothing. */
	old = umask(0);
	CHECK_EQ(ossuary_write_keypair(at("a"), at("a.pub")), OSSUARY_OK);
	umask(077);
	CHECK_EQ(ossuary_write_keypair(at("b"), at("b.pub")), OSSUARY_OK);
	umask(old);
	CHECK_EQ(mode_of(at("a")), 0600);
	CHECK_EQ(mode_of(at("a.pub")), 0644);
	CHECK_EQ(mode_of(at("b")), 0600);
	CHECK_EQ(mode_of(at("b.pub")), 0644);
}

TEST(file_format)
{
	char buf[512], want[128];
	uint8_t pk[32];
	size_t n;

	scratch();
	CHECK_EQ(ossuary_write_keypair(at("k"), at("k.pub")), OSSUARY_OK);
	/* The secret file: its type line first, comments, then the key. */
	n = slurp(at("k"), buf, sizeof(buf));
	CHECK(n != (size_t)-1);
	CHECK(strncmp(buf, "ossuary-secret-key-v1\n#", 23) == 0);
	{
		const char *last = strrchr(buf, '\n');

		CHECK(last && last == buf + n - 1);
		while (last > buf && last[-1] != '\n')
			last--;
		CHECK(strlen(last) == 65 && strspn(last, "0123456789abcdef") == 64);
	}
	/* The public file: exactly the type line and the key. */
	n = slurp(at("k.pub"), buf, sizeof(buf));
	CHECK_EQ(ossuary_load_public_key(at("k.pub"), pk), OSSUARY_OK);
	hex(want, pk);
	CHECK_EQ(n, 22 + 65);
	CHECK(strncmp(buf, "ossuary-public-key-v1\n", 22) == 0);
	CHECK(strncmp(buf + 22, want, 64) == 0 && buf[86] == '\n');
	CHECK_EQ(ossuary_key_file_error()[0], '\0');
}

TEST(round_trip)
{
	uint8_t sk[32], pk[32], derived[32], full[64];

	scratch();
	CHECK_EQ(ossuary_write_keypair(at("k"), at("k.pub")), OSSUARY_OK);
	CHECK_EQ(ossuary_load_secret_key(at("k"), sk), OSSUARY_OK);
	CHECK_EQ(ossuary_load_public_key(at("k.pub"), pk), OSSUARY_OK);
	/* The public file holds the key the secret seed derives. */
	crypto_sign_seed_keypair(derived, full, sk);
	CHECK_MEM(derived, pk, 32);
	CHECK(!sodium_is_zero(pk, 32));
	/* Two pairs are different pairs. */
	CHECK_EQ(ossuary_write_keypair(at("j"), at("j.pub")), OSSUARY_OK);
	CHECK_EQ(ossuary_load_public_key(at("j.pub"), derived), OSSUARY_OK);
	CHECK(memcmp(derived, pk, 32) != 0);
}

TEST(overwrite_refused)
{
	char before[512], after[512], pub_before[512], pub_after[512];

	scratch();
	CHECK_EQ(ossuary_write_keypair(at("k"), at("k.pub")), OSSUARY_OK);
	CHECK(slurp(at("k"), before, sizeof(before)) != (size_t)-1);
	CHECK(slurp(at("k.pub"), pub_before, sizeof(pub_before)) != (size_t)-1);
	errno = 0;
	CHECK_EQ(ossuary_write_keypair(at("k"), at("k.pub")), OSSUARY_ERR_KEY_FILE);
	CHECK_EQ(errno, EEXIST);
	CHECK(slurp(at("k"), after, sizeof(after)) != (size_t)-1);
	CHECK(slurp(at("k.pub"), pub_after, sizeof(pub_after)) != (size_t)-1);
	CHECK(strcmp(before, after) == 0);
	CHECK(strcmp(pub_before, pub_after) == 0);

	/* Only the public file exists: refused, and no secret file appears. */
	put_str(at("p.pub"), 0644, "x\n");
	CHECK_EQ(ossuary_write_keypair(at("p"), at("p.pub")), OSSUARY_ERR_KEY_FILE);
	CHECK_EQ(errno, EEXIST);
	CHECK_EQ(mode_of(at("p")), (mode_t)-1);

	/* Only the secret file exists: refused, and it is left alone. */
	put_str(at("s"), 0600, "precious\n");
	CHECK_EQ(ossuary_write_keypair(at("s"), at("s.pub")), OSSUARY_ERR_KEY_FILE);
	CHECK_EQ(errno, EEXIST);
	CHECK(slurp(at("s"), after, sizeof(after)) == 9 && strcmp(after, "precious\n") == 0);
	CHECK_EQ(mode_of(at("s.pub")), (mode_t)-1);

	/* A symlink at the secret path is not followed (or replaced). */
	CHECK_EQ(symlink(at("target"), at("l")), 0);
	CHECK_EQ(ossuary_write_keypair(at("l"), at("l.pub")), OSSUARY_ERR_KEY_FILE);
	CHECK_EQ(mode_of(at("target")), (mode_t)-1);

	/* Two missing directories are a plain error, with nothing left behind. */
	CHECK_EQ(ossuary_write_keypair(at("no/no/k"), at("no/no/k.pub")), OSSUARY_ERR_KEY_FILE);
	CHECK_EQ(errno, ENOENT);
	CHECK_EQ(mode_of(at("no")), (mode_t)-1);
	/* Public file unwritable after the secret was made: secret removed. */
	put_str(at("file"), 0644, "x\n");
	CHECK_EQ(ossuary_write_keypair(at("m"), at("file/m.pub")), OSSUARY_ERR_KEY_FILE);
	CHECK_EQ(errno, ENOTDIR);
	CHECK_EQ(mode_of(at("m")), (mode_t)-1);
	/* ... and a directory made for the secret goes too. */
	CHECK_EQ(ossuary_write_keypair(at("d/m"), at("file/m.pub")), OSSUARY_ERR_KEY_FILE);
	CHECK_EQ(mode_of(at("d")), (mode_t)-1);
}

TEST(secret_too_open_refused)
{
	static const mode_t bad[] = { 0644, 0640, 0604, 0620, 0602, 0610, 0601, 0666 };
	uint8_t k[32];

	scratch();
	CHECK_EQ(ossuary_write_keypair(at("k"), at("k.pub")), OSSUARY_OK);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_EQ(chmod(at("k"), bad[i]), 0);
		memset(k, 0xaa, sizeof(k));
		errno = 0;
		CHECK_EQ(ossuary_load_secret_key(at("k"), k), OSSUARY_ERR_KEY_FILE);
		CHECK_EQ(errno, EPERM);
		CHECK(sodium_is_zero(k, 32));	/* no half-result left behind */
	}
	CHECK_EQ(chmod(at("k"), 0400), 0);
	CHECK_EQ(ossuary_load_secret_key(at("k"), k), OSSUARY_OK);
	/* The public key file may be world-readable, of course. */
	CHECK_EQ(ossuary_load_public_key(at("k.pub"), k), OSSUARY_OK);
}

TEST(not_regular_refused)
{
	uint8_t k[32];

	scratch();
	CHECK_EQ(mkdir(at("d"), 0700), 0);
	CHECK_EQ(ossuary_load_secret_key(at("d"), k), OSSUARY_ERR_KEY_FILE);
	CHECK_EQ(ossuary_load_public_key(at("d"), k), OSSUARY_ERR_KEY_FILE);
	/* A FIFO must not hang the loader. */
	CHECK_EQ(mkfifo(at("f"), 0600), 0);
	CHECK_EQ(ossuary_load_secret_key(at("f"), k), OSSUARY_ERR_KEY_FILE);
	CHECK_EQ(ossuary_load_public_key(at("f"), k), OSSUARY_ERR_KEY_FILE);
	CHECK_EQ(ossuary_load_secret_key("/dev/null", k), OSSUARY_ERR_KEY_FILE);
	CHECK_EQ(ossuary_load_public_key(at("missing"), k), OSSUARY_ERR_KEY_FILE);
	CHECK_EQ(errno, ENOENT);
}

TEST(key_parser)
{
	static const char key[] =
		"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	static const char KEY[] =
		"00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff";
	static const struct {
		const char *text;
		int ok;
	} cases[] = {
		{ "%s\n", 1 },
		{ "%s", 1 },			/* no final newline */
		{ "# c\n\n%s\n\n# d\n", 1 },
		{ "%s\r\n", 1 },		/* CRLF */
		{ "  %s  \n", 1 },
		{ "%s  a comment\n", 1 },
		{ "", 0 },
		{ "# only a comment\n", 0 },
		{ "%1$s\n%1$s\n", 0 },		/* two keys in a one-key file */
		{ "%s0\n", 0 },			/* 65 digits */
		{ "%.63s\n", 0 },		/* 63 digits */
		{ "%.62sxy\n", 0 },		/* not hex */
		{ "%s#\n", 0 },			/* junk glued to the key */
		{ "0x%s\n", 0 },
	};
	char text[512], esc[64];
	uint8_t k[32], want[32];

	scratch();
	sodium_hex2bin(want, 32, key, 64, NULL, NULL, NULL);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc;

		snprintf(text, sizeof(text), cases[i].text, key);
		put_str(at("k"), 0600, text);
		rc = ossuary_load_secret_key(at("k"), k);
		snprintf(esc, sizeof(esc), "case %zu", i);
		if (cases[i].ok != (rc == OSSUARY_OK))
			harness_fail(__FILE__, __LINE__, "%s: rc %d", esc, rc);
		if (rc == OSSUARY_OK)
			CHECK_MEM(k, want, 32);
		else
			CHECK_EQ(rc, OSSUARY_ERR_KEY_FILE);
	}
	snprintf(text, sizeof(text), "%.30s %s\n", key, key + 30);	/* split */
	put_str(at("k"), 0600, text);
	CHECK_EQ(ossuary_load_secret_key(at("k"), k), OSSUARY_ERR_KEY_FILE);
	snprintf(text, sizeof(text), "%s\n", KEY);	/* either case reads */
	put_str(at("k.pub"), 0600, text);
	CHECK_EQ(ossuary_load_public_key(at("k.pub"), k), OSSUARY_OK);
	CHECK_MEM(k, want, 32);
	/* An embedded NUL is malformed, not a silent end of file. */
	snprintf(text, sizeof(text), "# x\n%s\n", key);
	text[2] = '\0';
	put(at("k"), 0600, text, strlen(key) + 5);
	CHECK_EQ(ossuary_load_secret_key(at("k"), k), OSSUARY_ERR_KEY_FILE);
	/* A zero public key means "none" on the wire: never loaded as a key. */
	put_str(at("z.pub"), 0644, "ossuary-public-key-v1\n"
		"0000000000000000000000000000000000000000000000000000000000000000\n");
	CHECK_EQ(ossuary_load_public_key(at("z.pub"), k), OSSUARY_ERR_KEY_FILE);
	CHECK(strstr(ossuary_key_file_error(), "all-zero") != NULL);
	/* A file far too large to be a key file. */
	memset(text, '#', sizeof(text));
	{
		int fd = open(at("big"), O_WRONLY | O_CREAT | O_TRUNC, 0600);

		CHECK(fd >= 0);
		for (int j = 0; j < 20; j++)
			CHECK_EQ(write(fd, text, sizeof(text)), (ssize_t)sizeof(text));
		close(fd);
	}
	CHECK_EQ(ossuary_load_secret_key(at("big"), k), OSSUARY_ERR_KEY_FILE);
}

TEST(null_arguments)
{
	uint8_t k[32];
	OssuaryConnection *c = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);

	CHECK(c);
	CHECK_EQ(ossuary_write_keypair(NULL, "x"), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_write_keypair("x", NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_write_keypair("", "x"), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_write_keypair("same", "same"), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_load_secret_key(NULL, k), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_load_secret_key("x", NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_load_public_key(NULL, k), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_load_public_key("", k), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_load_authorized_keys(NULL, "x"), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_load_authorized_keys(c, NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_known_hosts_check(NULL, "h", k), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_known_hosts_check("x", NULL, k), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_known_hosts_check("x", "h", NULL), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_known_hosts_add(NULL, "h", k), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_known_hosts_add("x", NULL, k), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_known_hosts_add("x", "h", NULL), OSSUARY_ERR_INVALID);
	ossuary_destroy_connection(&c);
}

/* ---- authorized keys: checked through a real in-memory handshake ---- */

/*
 * Runs the handshake between client and server through the filter API
 * until neither side moves. Returns the client's ossuary_handshake_done()
 * (1, 0, or OSSUARY_ERR_UNTRUSTED_SERVER at the pause, ...).
 */
static int pump(OssuaryConnection *cl, OssuaryConnection *sv)
{
	uint8_t to_sv[4096], to_cl[4096];
	size_t n_sv = 0, n_cl = 0;

	for (int round = 0; round < 16; round++) {
		size_t room, used;

		room = sizeof(to_sv) - n_sv;
		ossuary_send_handshake(cl, to_sv + n_sv, &room);
		n_sv += room;
		used = n_sv;
		if (n_sv && ossuary_recv_handshake(sv, to_sv, &used) >= 0) {
			memmove(to_sv, to_sv + used, n_sv - used);
			n_sv -= used;
		}
		room = sizeof(to_cl) - n_cl;
		ossuary_send_handshake(sv, to_cl + n_cl, &room);
		n_cl += room;
		used = n_cl;
		if (n_cl && ossuary_recv_handshake(cl, to_cl, &used) >= 0) {
			memmove(to_cl, to_cl + used, n_cl - used);
			n_cl -= used;
		}
		/* Both finished, or the client paused or failed. */
		if (ossuary_handshake_done(cl) != 0 &&
		    (ossuary_handshake_done(sv) != 0 || ossuary_handshake_done(cl) < 0))
			break;
	}
	return ossuary_handshake_done(cl);
}

TEST(authorized_keys_file)
{
	uint8_t sk[32], pk[32], other_sk[32], other_pk[32];
	char h[65], ho[65], text[1024];
	OssuaryConnection *cl, *sv;

	scratch();
	keypair(sk, pk);
	keypair(other_sk, other_pk);
	hex(h, pk);
	hex(ho, other_pk);
	snprintf(text, sizeof(text),
		 "# servers we trust\n\n%s laptop\n   \n\t# indented comment\n%s\r\n", ho, h);
	put_str(at("auth"), 0644, text);

	/* The client that loaded the list accepts the listed server, no pause. */
	cl = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	sv = ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER, sk);
	CHECK(cl && sv);
	CHECK_EQ(ossuary_load_authorized_keys(cl, at("auth")), 2);
	CHECK_EQ(pump(cl, sv), 1);
	CHECK_EQ(ossuary_handshake_done(sv), 1);
	ossuary_destroy_connection(&cl);
	ossuary_destroy_connection(&sv);

	/* A list without the server's key pauses at "untrusted server". */
	snprintf(text, sizeof(text), "%s\n", ho);
	put_str(at("other"), 0644, text);
	cl = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	sv = ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER, sk);
	CHECK(cl && sv);
	CHECK_EQ(ossuary_load_authorized_keys(cl, at("other")), 1);
	CHECK_EQ(pump(cl, sv), OSSUARY_ERR_UNTRUSTED_SERVER);
	ossuary_destroy_connection(&cl);
	ossuary_destroy_connection(&sv);

	/* A file of comments only loads nothing, and that is not an error. */
	put_str(at("empty"), 0644, "# nobody yet\n\n");
	cl = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	CHECK(cl);
	CHECK_EQ(ossuary_load_authorized_keys(cl, at("empty")), 0);
	ossuary_destroy_connection(&cl);
}

TEST(authorized_keys_malformed)
{
	static const char *bad[] = {
		"not a key\n",
		"%s\nzz%s\n",			/* the second line is bad */
		"%s\n%.63s\n",
		"%sff\n",
		"0000000000000000000000000000000000000000000000000000000000000000\n",
	};
	uint8_t sk[32], pk[32];
	char h[65], text[512];
	OssuaryConnection *cl, *sv;

	scratch();
	keypair(sk, pk);
	hex(h, pk);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), bad[i], h, h);
		put_str(at("auth"), 0644, text);
		cl = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
		sv = ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER, sk);
		CHECK(cl && sv);
		errno = 0;
		CHECK_EQ(ossuary_load_authorized_keys(cl, at("auth")), OSSUARY_ERR_KEY_FILE);
		CHECK_EQ(errno, EINVAL);
		/*
		 * All or nothing: the valid first line was not added either, so
		 * the list is still empty and a signing server makes the client
		 * pause (with the key listed it would not).
		 */
		CHECK_EQ(pump(cl, sv), OSSUARY_ERR_UNTRUSTED_SERVER);
		ossuary_destroy_connection(&cl);
		ossuary_destroy_connection(&sv);
	}
	/* An over-long line is malformed too. */
	memset(text, 'a', sizeof(text) - 2);
	text[sizeof(text) - 2] = '\n';
	text[sizeof(text) - 1] = '\0';
	cl = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	CHECK(cl);
	{
		int fd = open(at("long"), O_WRONLY | O_CREAT | O_TRUNC, 0644);

		CHECK(fd >= 0);
		CHECK_EQ(write(fd, h, 64), 64);
		CHECK_EQ(write(fd, " ", 1), 1);
		for (int j = 0; j < 4; j++)
			CHECK_EQ(write(fd, text, sizeof(text) - 2), (ssize_t)sizeof(text) - 2);
		close(fd);
	}
	CHECK_EQ(ossuary_load_authorized_keys(cl, at("long")), OSSUARY_ERR_KEY_FILE);
	CHECK_EQ(ossuary_load_authorized_keys(cl, at("missing")), OSSUARY_ERR_KEY_FILE);
	CHECK_EQ(ossuary_load_authorized_keys(cl, dir), OSSUARY_ERR_KEY_FILE);
	ossuary_destroy_connection(&cl);
}

/* ---- known hosts ---- */

TEST(known_hosts)
{
	uint8_t sk[32], k1[32], k2[32];
	char buf[1024], h[65];
	const char *kh;

	scratch();
	kh = at("known_hosts");
	keypair(sk, k1);
	keypair(sk, k2);
	/* No file yet: every host is unknown. */
	CHECK_EQ(ossuary_known_hosts_check(kh, "alpha", k1), OSSUARY_ERR_UNTRUSTED_SERVER);
	CHECK_EQ(ossuary_known_hosts_add(kh, "alpha", k1), OSSUARY_OK);
	CHECK_EQ(mode_of(kh), 0600);
	CHECK_EQ(ossuary_known_hosts_check(kh, "alpha", k1), OSSUARY_OK);
	CHECK_EQ(ossuary_known_hosts_check(kh, "ALPHA", k1), OSSUARY_OK);
	CHECK_EQ(ossuary_known_hosts_check(kh, "alpha", k2), OSSUARY_ERR_KEY_CHANGED);
	CHECK_EQ(ossuary_known_hosts_check(kh, "beta", k1), OSSUARY_ERR_UNTRUSTED_SERVER);
	CHECK_EQ(ossuary_known_hosts_check(kh, "alph", k1), OSSUARY_ERR_UNTRUSTED_SERVER);
	/* A changed key is never silently added beside the old one. */
	CHECK_EQ(ossuary_known_hosts_add(kh, "alpha", k2), OSSUARY_ERR_KEY_CHANGED);
	/* Adding what is there already writes nothing. */
	CHECK_EQ(ossuary_known_hosts_add(kh, "alpha", k1), OSSUARY_OK);
	CHECK_EQ(ossuary_known_hosts_add(kh, "[::1]:7000", k2), OSSUARY_OK);
	CHECK_EQ(ossuary_known_hosts_check(kh, "[::1]:7000", k2), OSSUARY_OK);
	hex(h, k1);
	snprintf(buf, sizeof(buf), "alpha %s\n", h);
	{
		char file[1024];
		size_t n = slurp(kh, file, sizeof(file));

		CHECK_EQ(n, 2 * (strlen(buf)) + 5);
		CHECK(strncmp(file, buf, strlen(buf)) == 0);
	}
	/* Invalid host names are refused before the file is touched. */
	CHECK_EQ(ossuary_known_hosts_add(kh, "", k1), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_known_hosts_add(kh, "a b", k1), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_known_hosts_add(kh, "a\nb", k1), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_known_hosts_add(kh, "#a", k1), OSSUARY_ERR_INVALID);
	CHECK_EQ(ossuary_known_hosts_check(kh, "a\tb", k1), OSSUARY_ERR_INVALID);
	memset(sk, 0, sizeof(sk));
	CHECK_EQ(ossuary_known_hosts_add(kh, "zero", sk), OSSUARY_ERR_INVALID);
}

TEST(known_hosts_hand_edited)
{
	uint8_t sk[32], k1[32], k2[32];
	char h1[65], h2[65], text[1024];
	const char *kh;

	scratch();
	kh = at("kh");
	keypair(sk, k1);
	keypair(sk, k2);
	hex(h1, k1);
	hex(h2, k2);
	/* Comments, blanks, tabs, CRLF and no final newline are all fine. */
	snprintf(text, sizeof(text), "# mine\n\n  alpha\t %s  \r\nbeta %s", h1, h2);
	put_str(kh, 0644, text);
	CHECK_EQ(ossuary_known_hosts_check(kh, "alpha", k1), OSSUARY_OK);
	CHECK_EQ(ossuary_known_hosts_check(kh, "beta", k2), OSSUARY_OK);
	/* The append starts a fresh line after the unterminated last one. */
	CHECK_EQ(ossuary_known_hosts_add(kh, "gamma", k1), OSSUARY_OK);
	CHECK_EQ(ossuary_known_hosts_check(kh, "beta", k2), OSSUARY_OK);
	CHECK_EQ(ossuary_known_hosts_check(kh, "gamma", k1), OSSUARY_OK);
	/* A host listed twice is accepted with either key (a hand edit). */
	snprintf(text, sizeof(text), "alpha %s\nalpha %s\n", h1, h2);
	put_str(kh, 0600, text);
	CHECK_EQ(ossuary_known_hosts_check(kh, "alpha", k1), OSSUARY_OK);
	CHECK_EQ(ossuary_known_hosts_check(kh, "alpha", k2), OSSUARY_OK);
	/* A malformed file fails closed, for check and for add. */
	snprintf(text, sizeof(text), "alpha %s\nbeta\n", h1);
	put_str(kh, 0600, text);
	CHECK_EQ(ossuary_known_hosts_check(kh, "alpha", k1), OSSUARY_ERR_KEY_FILE);
	CHECK_EQ(ossuary_known_hosts_add(kh, "gamma", k1), OSSUARY_ERR_KEY_FILE);
	snprintf(text, sizeof(text), "alpha %s junk\n", h1);
	put_str(kh, 0600, text);
	CHECK_EQ(ossuary_known_hosts_check(kh, "alpha", k1), OSSUARY_ERR_KEY_FILE);
	/* Not a regular file. */
	CHECK_EQ(ossuary_known_hosts_check(dir, "alpha", k1), OSSUARY_ERR_KEY_FILE);
	CHECK_EQ(ossuary_known_hosts_add(dir, "alpha", k1), OSSUARY_ERR_KEY_FILE);
}

/*
 * Clients racing to record hosts: the lock makes check-then-append one
 * step, so no line is torn or interleaved and no host is listed twice.
 */
TEST(known_hosts_concurrent_add)
{
	enum { PROCS = 4, HOSTS = 20 };
	uint8_t sk[32], keys[PROCS][32], same[32];
	char file[16384], host[32];
	const char *kh;
	size_t n, lines = 0;

	scratch();
	kh = at("kh");
	keypair(sk, same);
	for (int p = 0; p < PROCS; p++)
		keypair(sk, keys[p]);
	for (int p = 0; p < PROCS; p++) {
		pid_t pid = fork();

		if (pid == 0) {
			int bad = 0;

			for (int h = 0; h < HOSTS; h++) {
				snprintf(host, sizeof(host), "host-%d-%d", p, h);
				bad |= ossuary_known_hosts_add(kh, host, keys[p]) != OSSUARY_OK;
				/* Everyone also records the one shared host. */
				bad |= ossuary_known_hosts_add(kh, "shared", same) != OSSUARY_OK;
			}
			_exit(bad);
		}
		CHECK(pid > 0);
	}
	for (int p = 0; p < PROCS; p++) {
		int st;

		CHECK(wait(&st) > 0);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	n = slurp(kh, file, sizeof(file));
	CHECK(n != (size_t)-1);
	for (size_t i = 0; i < n; i++)
		lines += file[i] == '\n';
	CHECK_EQ(lines, PROCS * HOSTS + 1);
	for (int p = 0; p < PROCS; p++) {
		for (int h = 0; h < HOSTS; h++) {
			snprintf(host, sizeof(host), "host-%d-%d", p, h);
			CHECK_EQ(ossuary_known_hosts_check(kh, host, keys[p]), OSSUARY_OK);
		}
	}
	CHECK_EQ(ossuary_known_hosts_check(kh, "shared", same), OSSUARY_OK);
}

/* ---- the ossuary-keygen tool, run as a subprocess ---- */

static int tool_path(char *out, size_t cap)
{
	const char *bin = getenv("OSSUARY_BIN");
	char self[PATH_MAX];
	ssize_t n;
	char *slash;

	if (bin && *bin) {
		snprintf(out, cap, "%s/ossuary-keygen", bin);
		return 1;
	}
	/* This binary is O/tests/NAME; the tools are in O/bin/. */
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return 0;
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (!slash)
		return 0;
	*slash = '\0';
	if (snprintf(out, cap, "%s/../bin/ossuary-keygen", self) >= (int)cap)
		out[0] = '\0';
	return 0;
}

/* Runs the tool; collects stdout and stderr; returns the exit status. */
static int run(const char *tool, const char *const args[], char *out, size_t out_cap,
	       char *err, size_t err_cap)
{
	int po[2], pe[2], status;
	size_t no = 0, ne = 0;
	pid_t pid;
	char *argv[8];
	int k = 0;

	argv[k++] = (char *)tool;
	for (; args[k - 1] && k < 7; k++)
		argv[k] = (char *)args[k - 1];
	argv[k] = NULL;
	if (pipe(po) || pipe(pe))
		harness_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
	pid = fork();
	if (pid == 0) {
		dup2(po[1], 1);
		dup2(pe[1], 2);
		close(po[0]);
		close(pe[0]);
		if (chdir(dir) != 0)
			_exit(126);
		execv(tool, argv);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	for (;;) {
		struct pollfd p[2] = { { po[0], POLLIN, 0 }, { pe[0], POLLIN, 0 } };
		int open_fds = 0;

		for (int i = 0; i < 2; i++)
			if (p[i].fd >= 0)
				open_fds++;
		if (!open_fds || poll(p, 2, 10000) <= 0)
			break;
		for (int i = 0; i < 2; i++) {
			char *b = i ? err : out;
			size_t *nb = i ? &ne : &no, cap = i ? err_cap : out_cap;
			ssize_t r;

			if (p[i].fd < 0 || !p[i].revents)
				continue;
			r = read(p[i].fd, b + *nb, cap - 1 - *nb);
			if (r <= 0) {
				close(p[i].fd);
				if (i)
					pe[0] = -1;
				else
					po[0] = -1;
			} else {
				*nb += (size_t)r;
			}
		}
		if (po[0] < 0 && pe[0] < 0)
			break;
	}
	if (po[0] >= 0)
		close(po[0]);
	if (pe[0] >= 0)
		close(pe[0]);
	out[no] = '\0';
	err[ne] = '\0';
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(keygen_tool)
{
	char tool[PATH_MAX], out[4096], err[4096], h[65];
	uint8_t pk[32], sk[32], derived[32], full[64];
	int explicit_bin = tool_path(tool, sizeof(tool));

	if (access(tool, X_OK) != 0) {
		/* `make tests` alone does not build tools; the explicit path must exist. */
		if (explicit_bin)
			harness_fail(__FILE__, __LINE__, "%s: %s", tool, strerror(errno));
		harness_note("SKIP keygen_tool: %s not built (make tools)", tool);
		return;
	}
	scratch();
	{
		const char *args[] = { "-f", "id", NULL };

		CHECK_EQ(run(tool, args, out, sizeof(out), err, sizeof(err)), 0);
	}
	CHECK_EQ(mode_of(at("id")), 0600);
	CHECK_EQ(mode_of(at("id.pub")), 0644);
	CHECK_EQ(ossuary_load_public_key(at("id.pub"), pk), OSSUARY_OK);
	CHECK_EQ(ossuary_load_secret_key(at("id"), sk), OSSUARY_OK);
	crypto_sign_seed_keypair(derived, full, sk);
	CHECK_MEM(derived, pk, 32);
	/* stdout is the public key alone, for scripts. */
	hex(h, pk);
	CHECK_EQ(strlen(out), 65);
	CHECK(strncmp(out, h, 64) == 0 && out[64] == '\n');

	/* A second run refuses, says why, exits nonzero, changes nothing. */
	{
		const char *args[] = { "--file", "id", NULL };

		CHECK_EQ(run(tool, args, out, sizeof(out), err, sizeof(err)), 1);
	}
	CHECK(strstr(err, "already exists") != NULL);
	CHECK_EQ(out[0], '\0');
	CHECK_EQ(ossuary_load_public_key(at("id.pub"), derived), OSSUARY_OK);
	CHECK_MEM(derived, pk, 32);

	/* The default path is ./ossuary.key in the working directory. */
	{
		const char *args[] = { NULL };

		CHECK_EQ(run(tool, args, out, sizeof(out), err, sizeof(err)), 0);
	}
	CHECK_EQ(mode_of(at("ossuary.key")), 0600);
	CHECK_EQ(mode_of(at("ossuary.key.pub")), 0644);

	/* An unwritable place: a clear message and a nonzero exit. */
	{
		const char *args[] = { "-f", "no/such/dir/k", NULL };

		CHECK_EQ(run(tool, args, out, sizeof(out), err, sizeof(err)), 1);
	}
	CHECK(strstr(err, "No such file or directory") != NULL);
	CHECK_EQ(mode_of(at("no")), (mode_t)-1);

	{
		const char *args[] = { "--help", NULL };

		CHECK_EQ(run(tool, args, out, sizeof(out), err, sizeof(err)), 0);
	}
	CHECK(strstr(out, "Usage: ossuary-keygen") != NULL);
	{
		const char *args[] = { "--bogus", NULL };

		CHECK_EQ(run(tool, args, out, sizeof(out), err, sizeof(err)), 2);
	}
	{
		const char *args[] = { "-f", "a", "extra", NULL };

		CHECK_EQ(run(tool, args, out, sizeof(out), err, sizeof(err)), 2);
	}
	CHECK_EQ(mode_of(at("a")), (mode_t)-1);
}

/* ---- typed key files: every mix-up of kinds ---- */

static const char *detail(void)
{
	return ossuary_key_file_error();
}

/* The message says what it should, and never repeats key material. */
static void check_detail(const char *file, int line, const char *want, const char *keyhex)
{
	const char *d = detail();

	if (!d || !strstr(d, want))
		harness_fail(file, line, "detail \"%s\" lacks \"%s\"", d ? d : "(null)", want);
	if (keyhex) {
		for (size_t i = 0; i + 8 <= 64; i += 8) {
			char piece[9];

			memcpy(piece, keyhex + i, 8);
			piece[8] = '\0';
			if (strstr(d, piece))
				harness_fail(file, line, "detail \"%s\" quotes the key", d);
		}
	}
}
#define CHECK_DETAIL(want, keyhex) check_detail(__FILE__, __LINE__, (want), (keyhex))

/* Writes a typed (or untyped: type NULL) one-key file. */
static void put_key(const char *path, mode_t mode, const char *type, const char *comment,
		    const char *keyhex)
{
	char text[512];

	snprintf(text, sizeof(text), "%.64s%s%.128s%s%.64s\n", type ? type : "",
		 type ? "\n" : "", comment ? comment : "", comment ? "\n" : "", keyhex);
	put_str(path, mode, text);
}

TEST(public_key_as_secret_refused)
{
	uint8_t k[32], pk[32];
	char ph[65];

	scratch();
	CHECK_EQ(ossuary_write_keypair(at("bob"), at("bob.pub")), OSSUARY_OK);
	CHECK_EQ(ossuary_load_public_key(at("bob.pub"), pk), OSSUARY_OK);
	hex(ph, pk);
	memset(k, 0xaa, sizeof(k));
	errno = 0;
	CHECK_EQ(ossuary_load_secret_key(at("bob.pub"), k), OSSUARY_ERR_KEY_FILE);
	CHECK_EQ(errno, EINVAL);
	CHECK(sodium_is_zero(k, 32));
	CHECK_DETAIL("bob.pub is a public key; pass the secret key file (without .pub: ", ph);
	CHECK_DETAIL(at("bob"), NULL);
	/* Never a permissions hint for a public key, whatever its mode. */
	CHECK(strstr(detail(), "chmod") == NULL);
	CHECK_EQ(chmod(at("bob.pub"), 0600), 0);
	CHECK_EQ(ossuary_load_secret_key(at("bob.pub"), k), OSSUARY_ERR_KEY_FILE);
	CHECK_DETAIL("is a public key", ph);
	/* The type line decides, not the name: a typed public key named like a secret one. */
	CHECK_EQ(rename(at("bob.pub"), at("renamed")), 0);
	CHECK_EQ(ossuary_load_secret_key(at("renamed"), k), OSSUARY_ERR_KEY_FILE);
	CHECK_DETAIL("renamed is a public key; pass the secret key file (the one without .pub)",
		     ph);
	CHECK_EQ(ossuary_load_public_key(at("renamed"), k), OSSUARY_OK);
	CHECK_MEM(k, pk, 32);
	CHECK_EQ(detail()[0], '\0');	/* a success clears the story */
}

TEST(secret_key_as_public_refused)
{
	uint8_t sk[32], k[32];
	char sh[65];

	scratch();
	CHECK_EQ(ossuary_write_keypair(at("alice"), at("alice.pub")), OSSUARY_OK);
	CHECK_EQ(ossuary_load_secret_key(at("alice"), sk), OSSUARY_OK);
	hex(sh, sk);
	memset(k, 0xaa, sizeof(k));
	CHECK_EQ(ossuary_load_public_key(at("alice"), k), OSSUARY_ERR_KEY_FILE);
	CHECK_EQ(errno, EINVAL);
	CHECK(sodium_is_zero(k, 32));
	CHECK_DETAIL("alice is a secret key; pass its public key file (", sh);
	CHECK_DETAIL("alice.pub", sh);
	/* Typed secret, named .pub: still a secret key. */
	CHECK_EQ(rename(at("alice"), at("odd.pub")), 0);
	CHECK_EQ(ossuary_load_public_key(at("odd.pub"), k), OSSUARY_ERR_KEY_FILE);
	CHECK_DETAIL("odd.pub is a secret key, whatever its name says", sh);
	CHECK(strstr(detail(), "odd.pub.pub") == NULL);
	CHECK_EQ(ossuary_load_secret_key(at("odd.pub"), k), OSSUARY_OK);
	CHECK_MEM(k, sk, 32);
}

TEST(secret_key_as_authorized_refused)
{
	uint8_t sk[32], pk[32], k[32];
	char sh[65], ph[65], text[1024];
	OssuaryConnection *cl;

	scratch();
	CHECK_EQ(ossuary_write_keypair(at("alice"), at("alice.pub")), OSSUARY_OK);
	CHECK_EQ(ossuary_load_secret_key(at("alice"), sk), OSSUARY_OK);
	CHECK_EQ(ossuary_load_public_key(at("alice.pub"), pk), OSSUARY_OK);
	hex(sh, sk);
	hex(ph, pk);
	cl = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	CHECK(cl);
	/* The typed secret file itself. */
	errno = 0;
	CHECK_EQ(ossuary_load_authorized_keys(cl, at("alice")), OSSUARY_ERR_KEY_FILE);
	CHECK_EQ(errno, EINVAL);
	CHECK_DETAIL(":1: a SECRET key, not a list of public keys", sh);
	CHECK_DETAIL("alice.pub", sh);
	/* A secret file appended to a good list, after two keys: all refused. */
	snprintf(text, sizeof(text), "%s bob\n# next\n", ph);
	put_str(at("auth"), 0644, text);
	{
		char sec[512];
		size_t n = slurp(at("alice"), sec, sizeof(sec));
		int fd = open(at("auth"), O_WRONLY | O_APPEND);

		CHECK(n != (size_t)-1 && fd >= 0);
		CHECK_EQ(write(fd, sec, n), (ssize_t)n);
		close(fd);
	}
	CHECK_EQ(ossuary_load_authorized_keys(cl, at("auth")), OSSUARY_ERR_KEY_FILE);
	CHECK_DETAIL("auth:3: a SECRET key", sh);
	/* A secret file from the old keygen (its comment gives it away). */
	put_key(at("old"), 0600, NULL, "# ossuary ed25519 secret key (keep private)", sh);
	CHECK_EQ(ossuary_load_authorized_keys(cl, at("old")), OSSUARY_ERR_KEY_FILE);
	CHECK_DETAIL("old:1: a SECRET key", sh);
	ossuary_destroy_connection(&cl);
	(void)k;
}

TEST(public_key_files_append_to_authorized)
{
	uint8_t pk[32];
	char buf[1024], all[2048];
	size_t n1, n2;
	OssuaryConnection *cl;

	scratch();
	CHECK_EQ(ossuary_write_keypair(at("a"), at("a.pub")), OSSUARY_OK);
	CHECK_EQ(ossuary_write_keypair(at("b"), at("b.pub")), OSSUARY_OK);
	/* cat a.pub b.pub > auth: type lines included, two keys. */
	n1 = slurp(at("a.pub"), all, sizeof(all));
	n2 = slurp(at("b.pub"), buf, sizeof(buf));
	CHECK(n1 != (size_t)-1 && n2 != (size_t)-1);
	memcpy(all + n1, buf, n2 + 1);
	put_str(at("auth"), 0644, all);
	cl = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	CHECK(cl);
	CHECK_EQ(ossuary_load_authorized_keys(cl, at("auth")), 2);
	/* A single .pub works as a list of one. */
	CHECK_EQ(ossuary_load_authorized_keys(cl, at("a.pub")), 1);
	/* An old .pub too. */
	CHECK_EQ(ossuary_load_public_key(at("a.pub"), pk), OSSUARY_OK);
	hex(buf, pk);
	put_key(at("old.pub"), 0644, NULL, "# ossuary ed25519 public key", buf);
	CHECK_EQ(ossuary_load_authorized_keys(cl, at("old.pub")), 1);
	/* An unknown type line is refused, and named. */
	snprintf(all, sizeof(all), "%s\nossuary-public-key-v9\n", buf);
	put_str(at("v9"), 0644, all);
	CHECK_EQ(ossuary_load_authorized_keys(cl, at("v9")), OSSUARY_ERR_KEY_FILE);
	CHECK_DETAIL("v9:2: unknown type 'ossuary-public-key-v9'", NULL);
	ossuary_destroy_connection(&cl);
}

/*
 * Files from before the type line: read only where the kind is
 * certain. Every combination of the old comment, the name and the mode.
 */
TEST(untyped_old_files)
{
	static const char *const comments[] = {
		NULL, "# ossuary ed25519 secret key (keep private)", "# ossuary ed25519 public key",
	};
	static const mode_t modes[] = { 0600, 0400, 0644, 0640 };
	uint8_t sk[32], pk[32], k[32];
	char sh[65];

	scratch();
	keypair(sk, pk);
	hex(sh, sk);
	for (size_t c = 0; c < 3; c++) {
		for (int pub = 0; pub < 2; pub++) {
			for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
				const char *path = at(pub ? "f.pub" : "f");
				int old_secret = c == 1, old_public = c == 2;
				int want_sk = !pub && !(modes[m] & 077) && !old_public;
				int want_pk = pub && !old_secret;
				int rs, rp;

				unlink(at("f"));
				unlink(at("f.pub"));
				put_key(path, modes[m], NULL, comments[c], sh);
				rs = ossuary_load_secret_key(path, k);
				if ((rs == OSSUARY_OK) != want_sk)
					harness_fail(__FILE__, __LINE__, "secret: comment %zu pub %d mode %o: %d (%s)",
						     c, pub, (unsigned int)modes[m], rs, detail());
				if (rs == OSSUARY_OK) {
					CHECK_MEM(k, sk, 32);
				} else {
					CHECK(sodium_is_zero(k, 32));
					CHECK_EQ(errno, EINVAL);	/* never EPERM: kind uncertain */
					CHECK_DETAIL(path, sh);
					if (pub || old_public) {
						CHECK_DETAIL("is a public key (an old file without a type line)", sh);
						CHECK(strstr(detail(), "chmod") == NULL);
					} else {
						/* Uncertain: a one-line conversion hint. */
						CHECK_DETAIL("no type line", sh);
						CHECK_DETAIL("sed -i '1i ossuary-secret-key-v1' ", sh);
					}
				}
				rp = ossuary_load_public_key(path, k);
				if ((rp == OSSUARY_OK) != want_pk)
					harness_fail(__FILE__, __LINE__, "public: comment %zu pub %d mode %o: %d (%s)",
						     c, pub, (unsigned int)modes[m], rp, detail());
				if (rp == OSSUARY_OK) {
					CHECK_MEM(k, sk, 32);	/* the bytes, as written */
				} else if (old_secret) {
					CHECK_DETAIL("is a secret key (an old file without a type line)", sh);
				} else {
					CHECK_DETAIL("no type line, and no .pub name", sh);
					CHECK_DETAIL("sed -i '1i ossuary-public-key-v1' ", sh);
				}
				/* Never both: that was the bug. */
				CHECK(!(rs == OSSUARY_OK && rp == OSSUARY_OK));
			}
		}
	}
	/* The conversion hint, followed, makes the file load. */
	put_key(at("g"), 0644, NULL, NULL, sh);
	CHECK_EQ(ossuary_load_secret_key(at("g"), k), OSSUARY_ERR_KEY_FILE);
	put_key(at("g"), 0600, "ossuary-secret-key-v1", NULL, sh);
	CHECK_EQ(ossuary_load_secret_key(at("g"), k), OSSUARY_OK);
	CHECK_MEM(k, sk, 32);
}

TEST(type_lines_checked)
{
	static const char *const bad[] = {
		"ossuary-secret-key-v2\n%s\n",		/* a later version */
		"ossuary-private-key-v1\n%s\n",
		"# comment first\nossuary-secret-key-v1\n%s\n",	/* not the first line */
		"ossuary-secret-key-v1\n%s\nossuary-secret-key-v1\n",	/* twice */
		"ossuary-secret-key-v1\nossuary-public-key-v1\n%s\n",
		"ossuary-secret-key-v1\n# ossuary ed25519 public key\n%s\n",	/* contradicted */
	};
	static const char *const want[] = {
		"k:1: unknown type 'ossuary-secret-key-v2'; this version reads ossuary-secret-key-v1",
		"k:1: unknown type 'ossuary-private-key-v1'",
		"k:2: a type line belongs on the first line only",
		"k:3: a type line belongs on the first line only",
		"k:2: a type line belongs on the first line only",
		"k: its type line says secret key, but its comment says public key",
	};
	uint8_t sk[32], pk[32], k[32];
	char sh[65], text[512];

	scratch();
	keypair(sk, pk);
	hex(sh, sk);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), bad[i], sh);
		put_str(at("k"), 0600, text);
		if (ossuary_load_secret_key(at("k"), k) != OSSUARY_ERR_KEY_FILE)
			harness_fail(__FILE__, __LINE__, "case %zu loaded", i);
		CHECK_DETAIL(want[i], sh);
	}
	/* A type line that could hide key bytes is not quoted. */
	snprintf(text, sizeof(text), "ossuary-%.32s\n%s\n", sh, sh);
	put_str(at("k"), 0600, text);
	CHECK_EQ(ossuary_load_secret_key(at("k"), k), OSSUARY_ERR_KEY_FILE);
	CHECK_DETAIL("unknown type (not shown)", sh);
	/* CRLF and trailing blanks on the type line are fine. */
	snprintf(text, sizeof(text), "ossuary-secret-key-v1 \r\n%s\r\n", sh);
	put_str(at("k"), 0600, text);
	CHECK_EQ(ossuary_load_secret_key(at("k"), k), OSSUARY_OK);
	CHECK_MEM(k, sk, 32);
	/* A typed secret too open: EPERM, and only then the chmod hint. */
	CHECK_EQ(chmod(at("k"), 0640), 0);
	CHECK_EQ(ossuary_load_secret_key(at("k"), k), OSSUARY_ERR_KEY_FILE);
	CHECK_EQ(errno, EPERM);
	CHECK_DETAIL("a secret key that others can read (mode 0640); make it private: chmod 600 ",
		     sh);
	CHECK_EQ(chmod(at("k"), 0602), 0);
	CHECK_EQ(ossuary_load_secret_key(at("k"), k), OSSUARY_ERR_KEY_FILE);
	CHECK_DETAIL("others can write to (mode 0602)", sh);
	/* Malformed key lines in a typed file: file:line and what was expected. */
	snprintf(text, sizeof(text), "ossuary-secret-key-v1\n#\n%.63s\n", sh);
	CHECK_EQ(chmod(at("k"), 0600), 0);
	put_str(at("k"), 0600, text);
	CHECK_EQ(ossuary_load_secret_key(at("k"), k), OSSUARY_ERR_KEY_FILE);
	CHECK_DETAIL("k:3: expected 64 hex digits of an Ed25519 secret key; found 63 hex digits",
		     sh);
	snprintf(text, sizeof(text), "ossuary-secret-key-v1\n%s\n%s\n", sh, sh);
	put_str(at("k"), 0600, text);
	CHECK_EQ(ossuary_load_secret_key(at("k"), k), OSSUARY_ERR_KEY_FILE);
	CHECK_DETAIL("k:3: a second key (the first is on line 2)", sh);
	put_str(at("k"), 0600, "ossuary-secret-key-v1\n# no key\n");
	CHECK_EQ(ossuary_load_secret_key(at("k"), k), OSSUARY_ERR_KEY_FILE);
	CHECK_DETAIL("k: no key in the file", NULL);
}

TEST(malformed_lines_say_where_and_what)
{
	static const struct {
		const char *line;
		const char *why;
	} cases[] = {
		{ "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
		  "expected 64 hex digits of an Ed25519 public key; a SHA256: fingerprint is not a key" },
		{ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAhyQ2S7 me@host",
		  "an OpenSSH key is not an Ossuary key" },
		{ "%.63s", "found 63 hex digits" },
		{ "%s0", "found 65 hex digits" },
		{ "0x%s", "found a 0x prefix" },
		{ "%.30s %s", "found 30 hex digits" },
		{ "%sxyz", "found other text glued to the key" },
		{ "%.62szz", "found 62 hex digits, then other text" },
		{ "not a key", "found no hex digits" },
		{ "%s comment\x01", "a control character in the comment" },
	};
	uint8_t sk[32], pk[32];
	char ph[65], text[1024], want[256], line[256];
	OssuaryConnection *cl = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);

	CHECK(cl);
	scratch();
	keypair(sk, pk);
	hex(ph, pk);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(line, sizeof(line), cases[i].line, ph, ph);
		/* Two good lines and a comment first: the bad one is line 4. */
		snprintf(text, sizeof(text), "%s a\n# b\n%s c\n%s\n", ph, ph, line);
		put_str(at("authorized_keys"), 0644, text);
		errno = 0;
		CHECK_EQ(ossuary_load_authorized_keys(cl, at("authorized_keys")),
			 OSSUARY_ERR_KEY_FILE);
		CHECK_EQ(errno, EINVAL);
		snprintf(want, sizeof(want), "%s:4: ", at("authorized_keys"));
		if (strncmp(detail(), want, strlen(want)) != 0 || !strstr(detail(), cases[i].why))
			harness_fail(__FILE__, __LINE__, "case %zu: \"%s\"", i, detail());
	}
	/* The exact words for the commonest slip. */
	snprintf(text, sizeof(text), "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\n");
	put_str(at("fp"), 0644, text);
	CHECK_EQ(ossuary_load_authorized_keys(cl, at("fp")), OSSUARY_ERR_KEY_FILE);
	snprintf(want, sizeof(want), "%s:1: expected 64 hex digits of an Ed25519 public key; "
		 "a SHA256: fingerprint is not a key", at("fp"));
	CHECK(strcmp(detail(), want) == 0);
	/* Not a file, no file, too long: named too. */
	CHECK_EQ(ossuary_load_authorized_keys(cl, dir), OSSUARY_ERR_KEY_FILE);
	CHECK_DETAIL("a directory, not a key file", NULL);
	CHECK_EQ(ossuary_load_authorized_keys(cl, at("missing")), OSSUARY_ERR_KEY_FILE);
	CHECK_EQ(errno, ENOENT);
	CHECK_DETAIL("missing: No such file or directory", NULL);
	CHECK_EQ(ossuary_load_authorized_keys(cl, at("authorized_keys")), OSSUARY_ERR_KEY_FILE);
	/* A success clears it. */
	snprintf(text, sizeof(text), "%s\n", ph);
	put_str(at("good"), 0644, text);
	CHECK_EQ(ossuary_load_authorized_keys(cl, at("good")), 1);
	CHECK_EQ(detail()[0], '\0');
	ossuary_destroy_connection(&cl);
}

TEST(known_hosts_mixups_say_where)
{
	uint8_t sk[32], pk[32], other[32];
	char ph[65], text[1024], kh[PATH_MAX];

	scratch();
	snprintf(kh, sizeof(kh), "%s", at("known_hosts"));	/* at() reuses its buffers */
	keypair(sk, pk);
	keypair(sk, other);
	hex(ph, pk);
	/* A secret key file given as known hosts: refused loudly, line named. */
	CHECK_EQ(ossuary_write_keypair(at("id"), at("id.pub")), OSSUARY_OK);
	CHECK_EQ(ossuary_known_hosts_check(at("id"), "alpha", pk), OSSUARY_ERR_KEY_FILE);
	CHECK_DETAIL("id:1: a SECRET key file, not a known-hosts file", NULL);
	CHECK_EQ(ossuary_known_hosts_add(at("id"), "alpha", pk), OSSUARY_ERR_KEY_FILE);
	CHECK_DETAIL("a SECRET key file", NULL);
	CHECK_EQ(ossuary_load_secret_key(at("id"), sk), OSSUARY_OK);	/* untouched */
	CHECK_EQ(ossuary_known_hosts_check(at("id.pub"), "alpha", pk), OSSUARY_ERR_KEY_FILE);
	CHECK_DETAIL("id.pub:1: a public key file, not a known-hosts file", NULL);
	/* A bare key (an authorized-keys line) has no host. */
	snprintf(text, sizeof(text), "# hosts\nalpha %s\n%s\n", ph, ph);
	put_str(kh, 0600, text);
	CHECK_EQ(ossuary_known_hosts_check(kh, "alpha", pk), OSSUARY_ERR_KEY_FILE);
	CHECK_DETAIL("known_hosts:3: expected a host name, a blank and 64 hex digits of its "
		     "Ed25519 public key; found a key without a host name", ph);
	snprintf(text, sizeof(text), "alpha SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\n");
	put_str(kh, 0600, text);
	CHECK_EQ(ossuary_known_hosts_check(kh, "alpha", pk), OSSUARY_ERR_KEY_FILE);
	CHECK_DETAIL("known_hosts:1: expected a host name", NULL);
	CHECK_DETAIL("a SHA256: fingerprint is not a key", NULL);
	snprintf(text, sizeof(text), "alpha %s laptop\n", ph);
	put_str(kh, 0600, text);
	CHECK_EQ(ossuary_known_hosts_check(kh, "alpha", pk), OSSUARY_ERR_KEY_FILE);
	CHECK_DETAIL("found text after the key", ph);
	put_str(kh, 0600, "alpha\n");
	CHECK_EQ(ossuary_known_hosts_check(kh, "alpha", pk), OSSUARY_ERR_KEY_FILE);
	CHECK_DETAIL("known_hosts:1: expected a host name, a blank and 64 hex digits of its "
		     "Ed25519 public key; found a host name and no key", NULL);
	/* A changed key: the detail names the line listing the other one. */
	snprintf(text, sizeof(text), "# mine\nbeta %s\nalpha %s\n", ph, ph);
	put_str(kh, 0600, text);
	CHECK_EQ(ossuary_known_hosts_check(kh, "alpha", other), OSSUARY_ERR_KEY_CHANGED);
	CHECK_DETAIL("known_hosts:3: lists another key for alpha", NULL);
	CHECK_EQ(ossuary_known_hosts_check(kh, "alpha", pk), OSSUARY_OK);
	CHECK_EQ(detail()[0], '\0');
}

TEST(missing_directories)
{
	uint8_t sk[32], pk[32];
	mode_t old;

	scratch();
	keypair(sk, pk);
	/* keygen's directory: made 0700 whatever the umask, like ~/.ssh. */
	old = umask(0);
	CHECK_EQ(ossuary_write_keypair(at("dot/id"), at("dot/id.pub")), OSSUARY_OK);
	umask(old);
	CHECK_EQ(mode_of(at("dot")), 0700);
	CHECK_EQ(mode_of(at("dot/id")), 0600);
	CHECK_EQ(ossuary_load_secret_key(at("dot/id"), sk), OSSUARY_OK);
	/* An existing directory keeps its mode. */
	CHECK_EQ(mkdir(at("open"), 0755), 0);
	CHECK_EQ(ossuary_write_keypair(at("open/id"), at("open/id.pub")), OSSUARY_OK);
	CHECK_EQ(mode_of(at("open")), 0755);
	/* Only the last directory is made: a typo higher up stays an error. */
	CHECK_EQ(ossuary_write_keypair(at("x/y/id"), at("x/y/id.pub")), OSSUARY_ERR_KEY_FILE);
	CHECK_EQ(errno, ENOENT);
	CHECK_DETAIL("cannot make its directory: No such file or directory", NULL);
	CHECK_EQ(mode_of(at("x")), (mode_t)-1);

	/* Known hosts into a missing directory: made, and the key remembered. */
	CHECK_EQ(ossuary_known_hosts_check(at("kh/known_hosts"), "alpha", pk),
		 OSSUARY_ERR_UNTRUSTED_SERVER);
	CHECK_EQ(ossuary_known_hosts_add(at("kh/known_hosts"), "alpha", pk), OSSUARY_OK);
	CHECK_EQ(mode_of(at("kh")), 0700);
	CHECK_EQ(mode_of(at("kh/known_hosts")), 0600);
	CHECK_EQ(ossuary_known_hosts_check(at("kh/known_hosts"), "alpha", pk), OSSUARY_OK);
	/* Deeper: a clear error, never a silent success. */
	CHECK_EQ(ossuary_known_hosts_add(at("a/b/known_hosts"), "alpha", pk),
		 OSSUARY_ERR_KEY_FILE);
	CHECK_EQ(errno, ENOENT);
	CHECK_DETAIL("a/b/known_hosts: cannot make its directory", NULL);
	CHECK_EQ(mode_of(at("a")), (mode_t)-1);
}

/* The story is per thread: another thread's failure never shows here. */
static void *fail_in_thread(void *arg)
{
	uint8_t k[32];

	(void)arg;
	ossuary_load_secret_key("/nonexistent/ossuary-key", k);
	return (void *)(strstr(ossuary_key_file_error(), "nonexistent") ? (void *)1 : NULL);
}

TEST(key_file_error_per_thread)
{
	pthread_t t;
	void *r = NULL;
	uint8_t k[32];

	scratch();
	CHECK_EQ(ossuary_write_keypair(at("k"), at("k.pub")), OSSUARY_OK);
	CHECK_EQ(ossuary_load_secret_key(at("k"), k), OSSUARY_OK);
	CHECK_EQ(pthread_create(&t, NULL, fail_in_thread, NULL), 0);
	CHECK_EQ(pthread_join(t, &r), 0);
	CHECK(r != NULL);
	CHECK_EQ(detail()[0], '\0');
	CHECK(ossuary_key_file_error() != NULL);
	/* Bad arguments get words too. */
	CHECK_EQ(ossuary_load_secret_key(NULL, k), OSSUARY_ERR_INVALID);
	CHECK(detail()[0] != '\0');
}

TEST(keygen_tool_directories_and_version)
{
	char tool[PATH_MAX], out[4096], err[4096];
	uint8_t k[32];
	int explicit_bin = tool_path(tool, sizeof(tool));

	if (access(tool, X_OK) != 0) {
		if (explicit_bin)
			harness_fail(__FILE__, __LINE__, "%s: %s", tool, strerror(errno));
		harness_note("SKIP keygen_tool_directories_and_version: %s not built", tool);
		return;
	}
	scratch();
	{
		const char *args[] = { "-f", "dot-ossuary/id", NULL };

		CHECK_EQ(run(tool, args, out, sizeof(out), err, sizeof(err)), 0);
	}
	CHECK(strstr(err, "made the directory dot-ossuary (mode 0700)") != NULL);
	CHECK_EQ(mode_of(at("dot-ossuary")), 0700);
	CHECK_EQ(ossuary_load_secret_key(at("dot-ossuary/id"), k), OSSUARY_OK);
	CHECK_EQ(ossuary_load_public_key(at("dot-ossuary/id.pub"), k), OSSUARY_OK);
	/* A second key in the same directory: nothing to make, nothing said. */
	{
		const char *args[] = { "-f", "dot-ossuary/id2", NULL };

		CHECK_EQ(run(tool, args, out, sizeof(out), err, sizeof(err)), 0);
	}
	CHECK(strstr(err, "made the directory") == NULL);
	{
		const char *args[] = { "-f", "dot-ossuary/id", NULL };

		CHECK_EQ(run(tool, args, out, sizeof(out), err, sizeof(err)), 1);
	}
	CHECK(strstr(err, "dot-ossuary/id already exists; not overwriting it") != NULL);
	{
		const char *args[] = { "--version", NULL };

		CHECK_EQ(run(tool, args, out, sizeof(out), err, sizeof(err)), 0);
	}
	CHECK(strncmp(out, "ossuary-keygen ", 15) == 0);
	/* One line, and a version on it. */
	CHECK(strlen(out) > 16 && strchr(out, '\n') == out + strlen(out) - 1);
	CHECK_EQ(err[0], '\0');
}
