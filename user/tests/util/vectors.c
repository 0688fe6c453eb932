/* SPDX-License-Identifier: Apache-2.0 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness.h"
#include "vectors.h"

struct alloc {
	struct alloc *next;
	struct json *doc;
	max_align_t data[];
};

static struct alloc *allocs;

void *vec_alloc(size_t n)
{
	struct alloc *a = calloc(1, sizeof(*a) + n + 1);

	if (!a)
		harness_fail(__FILE__, __LINE__, "out of memory");
	a->next = allocs;
	allocs = a;
	return a->data;
}

void vec_release(void)
{
	while (allocs) {
		struct alloc *a = allocs;

		allocs = a->next;
		json_free(a->doc);
		free(a);
	}
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
		if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		} else {
			*len = (size_t)n;
		}
	}
	fclose(f);
	return buf;
}

/* The checkout's root: the first ancestor of dir holding user/tests/harness.h. */
static bool find_root(const char *dir, char *root, size_t root_len)
{
	char cur[PATH_MAX], probe[PATH_MAX + 32];

	if (!realpath(dir, cur))
		return false;
	for (;;) {
		char *slash;

		snprintf(probe, sizeof(probe), "%s/user/tests/harness.h", cur);
		if (access(probe, R_OK) == 0) {
			snprintf(root, root_len, "%s", cur);
			return true;
		}
		slash = strrchr(cur, '/');
		if (!slash || slash == cur)
			return false;
		*slash = 0;
	}
}

bool vec_checkout_root(char *root, size_t root_len)
{
	char exe[PATH_MAX];
	ssize_t n;

	if (find_root(".", root, root_len))
		return true;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return false;
	exe[n] = 0;
	*strrchr(exe, '/') = 0;
	return find_root(exe, root, root_len);
}

static char *vectors_path(const char *name, char *path, size_t len)
{
	const char *env = getenv("OSSUARY_VECTORS");
	char root[PATH_MAX], exe[PATH_MAX];
	ssize_t n;

	if (env && *env) {
		snprintf(path, len, "%s/%s", env, name);
		return path;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = 0;
		*strrchr(exe, '/') = 0;
	}
	if (find_root(".", root, sizeof(root)) ||
	    (n > 0 && find_root(exe, root, sizeof(root)))) {
		snprintf(path, len, "%s/vectors/%s", root, name);
		return path;
	}
	return NULL;
}

const struct json *vec_load(const char *name)
{
	char path[PATH_MAX + 64];
	const char *err = NULL;
	struct json *doc;
	struct alloc *a;
	size_t len = 0;
	char *text;

	if (!vectors_path(name, path, sizeof(path)))
		harness_fail(__FILE__, __LINE__,
			     "cannot locate the vectors: set OSSUARY_VECTORS");
	text = read_file(path, &len);
	if (!text)
		harness_fail(__FILE__, __LINE__, "cannot read %s", path);
	doc = json_parse(text, len, &err);
	free(text);
	if (!doc)
		harness_fail(__FILE__, __LINE__, "%s: %s", path, err);
	a = vec_alloc(0);
	(void)a;
	allocs->doc = doc;
	return doc;
}

const struct json *vec_field(const struct json *obj, const char *key)
{
	const struct json *j = json_get(obj, key);

	if (!j)
		harness_fail(__FILE__, __LINE__, "missing field \"%s\"", key);
	return j;
}

static int nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

uint8_t *vec_unhex(const char *hex, size_t *len)
{
	size_t n = strlen(hex);
	uint8_t *out;

	if (n % 2)
		return NULL;
	out = vec_alloc(n / 2);
	for (size_t i = 0; i < n / 2; i++) {
		int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return NULL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	*len = n / 2;
	return out;
}

uint8_t *vec_hex(const struct json *obj, const char *key, size_t *len)
{
	const struct json *j = vec_field(obj, key);
	uint8_t *out;

	*len = 0;
	if (json_is_null(j))
		return NULL;
	if (!json_str(j))
		harness_fail(__FILE__, __LINE__, "field \"%s\" is not a string", key);
	out = vec_unhex(json_str(j), len);
	if (!out)
		harness_fail(__FILE__, __LINE__, "field \"%s\" is not hex", key);
	return out;
}

const uint8_t *vec_hex_n(const struct json *obj, const char *key, size_t n)
{
	size_t len;
	const uint8_t *p = vec_hex(obj, key, &len);

	if (!p || len != n)
		harness_fail(__FILE__, __LINE__, "field \"%s\": want %zu bytes, got %zu",
			     key, n, len);
	return p;
}

const char *vec_str(const struct json *obj, const char *key)
{
	const struct json *j = vec_field(obj, key);

	if (json_is_null(j))
		return NULL;
	if (!json_str(j))
		harness_fail(__FILE__, __LINE__, "field \"%s\" is not a string", key);
	return json_str(j);
}

bool vec_bool(const struct json *obj, const char *key)
{
	const struct json *j = vec_field(obj, key);

	if (j->type != JSON_BOOL)
		harness_fail(__FILE__, __LINE__, "field \"%s\" is not a boolean", key);
	return j->boolean;
}

long long vec_int(const struct json *obj, const char *key)
{
	const struct json *j = vec_field(obj, key);

	if (j->type != JSON_NUMBER)
		harness_fail(__FILE__, __LINE__, "field \"%s\" is not a number", key);
	return strtoll(j->text, NULL, 10);
}

uint64_t vec_be64(const struct json *obj, const char *key)
{
	char name[128];
	const uint8_t *p;
	uint64_t v = 0;

	snprintf(name, sizeof(name), "%s_be64", key);
	p = vec_hex_n(obj, name, 8);
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

const struct json *vec_array(const struct json *obj, const char *key)
{
	const struct json *j = vec_field(obj, key);

	if (j->type != JSON_ARRAY)
		harness_fail(__FILE__, __LINE__, "field \"%s\" is not an array", key);
	return j;
}

void bytes_add(struct bytes *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		uint8_t *q;

		while (cap < b->len + n)
			cap *= 2;
		q = realloc(b->p, cap);
		if (!q)
			harness_fail(__FILE__, __LINE__, "out of memory");
		b->p = q;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

void bytes_clear(struct bytes *b)
{
	b->len = 0;
}

void bytes_free(struct bytes *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

const char *vec_tohex(const uint8_t *p, size_t n)
{
	static char buf[2 * 64 + 4];
	size_t i;

	for (i = 0; i < n && i < 64; i++)
		sprintf(buf + 2 * i, "%02x", p[i]);
	strcpy(buf + 2 * i, n > 64 ? "..." : "");
	return buf;
}
