/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The repository's vectors/ are a copy of the protocol's vectors. When
 * the upstream copy sits beside the checkout (../shared/vectors/), every
 * file must be byte for byte the same, both ways round: a vector changed
 * upstream and not copied, or edited here, fails. Without the upstream
 * copy the comparisons are skipped; the repository copy must exist
 * regardless.
 */
#define HARNESS_MAIN
#include "harness.h"

#include <dirent.h>
#include <limits.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "util/vectors.h"

static const char *const FILES[] = {
	"handshake.json", "records.json", "negative.json", "streams.json",
};

static void dirs(char repo[PATH_MAX], char upstream[PATH_MAX])
{
	char root[PATH_MAX - 32];

	if (!vec_checkout_root(root, sizeof(root)))
		harness_fail(__FILE__, __LINE__, "cannot find the checkout's root");
	snprintf(repo, PATH_MAX, "%s/vectors", root);
	snprintf(upstream, PATH_MAX, "%s/../shared/vectors", root);
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct bytes b = { 0 };
	uint8_t buf[65536];
	size_t n;

	if (!f)
		return NULL;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		bytes_add(&b, buf, n);
	if (ferror(f)) {
		fclose(f);
		bytes_free(&b);
		harness_fail(__FILE__, __LINE__, "cannot read %s", path);
	}
	fclose(f);
	*len = b.len;
	/* An empty file still gets a buffer: absent and empty differ. */
	return b.p ? b.p : calloc(1, 1);
}

static bool is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Compares name in both directories; false when upstream lacks it. */
static bool same_file(const char *name)
{
	char repo[PATH_MAX], up[PATH_MAX], a[PATH_MAX + 64], b[PATH_MAX + 64];
	uint8_t *x, *y;
	size_t xl = 0, yl = 0, i;

	dirs(repo, up);
	snprintf(a, sizeof(a), "%s/%s", repo, name);
	snprintf(b, sizeof(b), "%s/%s", up, name);
	x = slurp(a, &xl);
	if (!x)
		harness_fail(__FILE__, __LINE__, "%s is missing from the repository", a);
	y = slurp(b, &yl);
	if (!y) {
		free(x);
		return false;
	}
	for (i = 0; i < xl && i < yl && x[i] == y[i]; i++)
		;
	free(x);
	free(y);
	if (i != xl || i != yl)
		harness_fail(__FILE__, __LINE__,
			     "%s differs from %s at byte %zu (%zu and %zu bytes): copy it again",
			     a, b, i, xl, yl);
	return true;
}

static void check_one(const char *name)
{
	char repo[PATH_MAX], up[PATH_MAX];

	dirs(repo, up);
	if (!is_dir(up)) {
		/* The repository copy must still be there. */
		same_file(name);
		harness_skip("no upstream vectors beside the checkout (%s)", up);
	}
	if (!same_file(name))
		harness_skip("%s/%s is absent upstream", up, name);
	harness_note("%s: identical", name);
}

TEST(repository_copy_present)
{
	char repo[PATH_MAX], up[PATH_MAX], path[PATH_MAX + 64];
	struct stat st;

	dirs(repo, up);
	for (size_t i = 0; i < sizeof(FILES) / sizeof(FILES[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", repo, FILES[i]);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0)
			harness_fail(__FILE__, __LINE__, "%s: missing or empty", path);
	}
}

TEST(handshake_json_matches_upstream) { check_one("handshake.json"); }
TEST(records_json_matches_upstream) { check_one("records.json"); }
TEST(negative_json_matches_upstream) { check_one("negative.json"); }
TEST(streams_json_matches_upstream) { check_one("streams.json"); }

/* Every other *.json, in either directory, must be in both and the same. */
TEST(no_other_json_differs)
{
	static char names[64][NAME_MAX + 1];
	char repo[PATH_MAX], up[PATH_MAX];
	const char *where[2];
	size_t count = 0;

	dirs(repo, up);
	if (!is_dir(up))
		harness_skip("no upstream vectors beside the checkout (%s)", up);
	where[0] = repo;
	where[1] = up;
	for (int w = 0; w < 2; w++) {
		DIR *d = opendir(where[w]);
		struct dirent *de;

		if (!d)
			harness_fail(__FILE__, __LINE__, "cannot list %s", where[w]);
		while ((de = readdir(d)) && count < 64) {
			size_t n = strlen(de->d_name);
			bool known = false;

			if (n < 6 || strcmp(de->d_name + n - 5, ".json") != 0)
				continue;
			for (size_t i = 0; i < sizeof(FILES) / sizeof(FILES[0]); i++)
				known |= strcmp(de->d_name, FILES[i]) == 0;
			if (!known)
				snprintf(names[count++], sizeof(names[0]), "%s", de->d_name);
		}
		closedir(d);
	}
	for (size_t i = 0; i < count; i++)
		if (!same_file(names[i]))
			harness_fail(__FILE__, __LINE__, "%s is not upstream", names[i]);
	harness_note("%zu further vector files", count);
}
