/* SPDX-License-Identifier: Apache-2.0 */
/* How the tools show a public key in messages. */
#ifndef OSSUARY_TOOLS_FINGERPRINT_H
#define OSSUARY_TOOLS_FINGERPRINT_H

#include <stdint.h>

#include <sodium.h>

#include "ossuary.h"

/* "SHA256:" and the unpadded base64 of the key's SHA-256, as ssh prints. */
struct fpr {
	char s[8 + sodium_base64_ENCODED_LEN(crypto_hash_sha256_BYTES,
					     sodium_base64_VARIANT_ORIGINAL_NO_PADDING)];
};

/* Returned by value, so that it can stand as a printf argument. */
struct fpr fingerprint(const uint8_t key[OSSUARY_KEY_LEN]);

#endif
