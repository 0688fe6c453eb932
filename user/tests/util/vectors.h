/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Loading the repository's vectors/ at test time, and typed access to its fields.
 * Every accessor fails the running test (harness_fail) when a field is
 * missing or malformed, so a broken file cannot pass quietly.
 *
 * Buffers returned here stay valid until vec_release(); they are kept
 * on a list, so a test that fails half way leaks nothing unreachable.
 */
#ifndef OSSUARY_TEST_VECTORS_H
#define OSSUARY_TEST_VECTORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json.h"

/* Parses NAME from $OSSUARY_VECTORS, else <repo>/vectors. */
const struct json *vec_load(const char *name);
/* The checkout's root directory (the one holding vectors/), from cwd or the binary. */
bool vec_checkout_root(char *root, size_t root_len);
/* Frees every loaded document and buffer. */
void vec_release(void);

/* Member that must exist (may be null). */
const struct json *vec_field(const struct json *obj, const char *key);
/* Hex string member decoded; NULL with *len = 0 for a JSON null. */
uint8_t *vec_hex(const struct json *obj, const char *key, size_t *len);
/* Hex member that must be exactly n bytes. */
const uint8_t *vec_hex_n(const struct json *obj, const char *key, size_t n);
/* String member; NULL for a JSON null. */
const char *vec_str(const struct json *obj, const char *key);
bool vec_bool(const struct json *obj, const char *key);
long long vec_int(const struct json *obj, const char *key);
/* KEY_be64 member (16 hex digits), the exact form of a sequence number. */
uint64_t vec_be64(const struct json *obj, const char *key);
/* Array member that must exist. */
const struct json *vec_array(const struct json *obj, const char *key);

/* Decodes hex text; NULL on odd length or a non-hex digit. */
uint8_t *vec_unhex(const char *hex, size_t *len);
/* A buffer freed by vec_release(). */
void *vec_alloc(size_t n);

/* A growable byte buffer. */
struct bytes {
	uint8_t *p;
	size_t len, cap;
};
void bytes_add(struct bytes *b, const void *p, size_t n);
void bytes_clear(struct bytes *b);
void bytes_free(struct bytes *b);
/* Hex of up to 64 bytes for diagnostics (static buffer). */
const char *vec_tohex(const uint8_t *p, size_t n);

#endif /* OSSUARY_TEST_VECTORS_H */
