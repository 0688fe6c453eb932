// SPDX-License-Identifier: Apache-2.0
/*
 * Hex key text, shared by the key files and the known-hosts file: one
 * decoder, so both accept exactly the same spelling of a key.
 */
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
