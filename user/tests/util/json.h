/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small JSON reader for the test vectors: parses a whole document into
 * a tree. Numbers keep their source text, since sequence numbers above
 * 2^53 do not survive a double (the vectors give _be64 hex for those).
 */
#ifndef OSSUARY_TEST_JSON_H
#define OSSUARY_TEST_JSON_H

#include <stdbool.h>
#include <stddef.h>

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json {
	enum json_type type;
	bool boolean;
	char *text;		/* string value, or a number's source text */
	size_t n;		/* array items or object members */
	struct json **items;
	char **keys;		/* object member names, parallel to items */
};

/* NULL on a syntax error (with *err set to a message). */
struct json *json_parse(const char *text, size_t len, const char **err);
void json_free(struct json *j);
/* Object member or array item; NULL when absent or of another shape. */
const struct json *json_get(const struct json *obj, const char *key);
const struct json *json_at(const struct json *arr, size_t i);
size_t json_len(const struct json *j);
/* The string, or NULL when j is not a string. */
const char *json_str(const struct json *j);
bool json_is_null(const struct json *j);

#endif /* OSSUARY_TEST_JSON_H */
