/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "fingerprint.h"

struct fpr fingerprint(const uint8_t key[OSSUARY_KEY_LEN])
{
	uint8_t h[crypto_hash_sha256_BYTES];
	struct fpr f;

	crypto_hash_sha256(h, key, OSSUARY_KEY_LEN);
	memcpy(f.s, "SHA256:", 7);
	sodium_bin2base64(f.s + 7, sizeof(f.s) - 7, h, sizeof(h),
			  sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	return f;
}
