/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HKDF-SHA256 (RFC 5869) over libsodium's HMAC-SHA256. The protocol
 * only ever expands to 32 bytes or less, but Expand stays general so the
 * RFC's own test cases can check it.
 */
#include <string.h>

#include <sodium.h>

#include "internal.h"

void oss_hkdf_extract(uint8_t prk[32], const uint8_t *salt, size_t salt_len,
		      const uint8_t *ikm, size_t ikm_len)
{
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, salt, salt_len);
	crypto_auth_hmacsha256_update(&st, ikm, ikm_len);
	crypto_auth_hmacsha256_final(&st, prk);
	sodium_memzero(&st, sizeof(st));
}

int oss_hkdf_expand(uint8_t *out, size_t out_len, const uint8_t prk[32],
		    const uint8_t *info, size_t info_len)
{
	crypto_auth_hmacsha256_state st;
	uint8_t t[32];
	size_t done = 0;
	uint8_t ctr = 1;

	if (out_len > 255 * 32)
		return OSSUARY_ERR_INVALID;
	while (done < out_len) {
		size_t n = out_len - done < 32 ? out_len - done : 32;

		crypto_auth_hmacsha256_init(&st, prk, 32);
		if (done)
			crypto_auth_hmacsha256_update(&st, t, 32);
		crypto_auth_hmacsha256_update(&st, info, info_len);
		crypto_auth_hmacsha256_update(&st, &ctr, 1);
		crypto_auth_hmacsha256_final(&st, t);
		memcpy(out + done, t, n);
		done += n;
		ctr++;
	}
	sodium_memzero(&st, sizeof(st));
	sodium_memzero(t, sizeof(t));
	return OSSUARY_OK;
}

void oss_derive(uint8_t out[32], const uint8_t prk[32], const char *label,
		const uint8_t *ctx, size_t ctx_len)
{
	uint8_t info[64];
	size_t l = strlen(label);

	/* Labels are short ASCII and contexts at most one SHA-256 hash. */
	memcpy(info, label, l);
	if (ctx_len)
		memcpy(info + l, ctx, ctx_len);
	oss_hkdf_expand(out, 32, prk, info, l + ctx_len);
}
