/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Records: header, per-direction key and IV, nonce, seal and open
 * (PROTOCOL.md "Sealing a record"). Stateless helpers; the caller owns
 * the sequence numbers.
 */
#include <string.h>

#include <sodium.h>

#include "internal.h"

void oss_dir_install(struct oss_dir *d, const uint8_t secret[32], uint64_t seq)
{
	if (d->secret != secret)
		memcpy(d->secret, secret, 32);
	oss_hkdf_expand(d->key, 32, d->secret, (const uint8_t *)"key", 3);
	oss_hkdf_expand(d->iv, 12, d->secret, (const uint8_t *)"iv", 2);
	d->seq = seq;
}

void oss_dir_ratchet(struct oss_dir *d)
{
	uint8_t next[32];

	oss_hkdf_expand(next, 32, d->secret, (const uint8_t *)"next", 4);
	oss_dir_install(d, next, 0);
	sodium_memzero(next, sizeof(next));
}

void oss_dir_wipe(struct oss_dir *d)
{
	sodium_memzero(d, sizeof(*d));
}

void oss_nonce(uint8_t nonce[12], const uint8_t iv[12], uint64_t seq)
{
	memcpy(nonce, iv, 12);
	for (int i = 0; i < 8; i++)
		nonce[11 - i] ^= (uint8_t)(seq >> (8 * i));
}

void oss_put_header(uint8_t hdr[4], uint8_t type, size_t body_len)
{
	hdr[0] = OSSUARY_WIRE_VERSION;
	hdr[1] = type;
	hdr[2] = (uint8_t)(body_len >> 8);
	hdr[3] = (uint8_t)body_len;
}

/* The AAD is the record header, preceded by SERVER_HELLO's clear part. */
static size_t build_aad(uint8_t *aad, const uint8_t hdr[4],
			const uint8_t *extra, size_t extra_len)
{
	memcpy(aad, hdr, OSS_HDR);
	if (extra_len)
		memcpy(aad + OSS_HDR, extra, extra_len);
	return OSS_HDR + extra_len;
}

void oss_seal(const struct oss_dir *d, uint64_t seq, uint8_t type,
	      const uint8_t *pt, size_t len, const uint8_t *extra_aad,
	      size_t extra_aad_len, uint8_t *out)
{
	uint8_t nonce[12], aad[OSS_HDR + OSS_SH_CLEAR];
	size_t body = len + extra_aad_len + OSS_TAG;
	size_t aad_len;

	/* SERVER_HELLO's header counts its clear part too; it sits after the header. */
	oss_put_header(out, type, body);
	aad_len = build_aad(aad, out, extra_aad, extra_aad_len);
	if (extra_aad_len)
		memcpy(out + OSS_HDR, extra_aad, extra_aad_len);
	oss_nonce(nonce, d->iv, seq);
	crypto_aead_chacha20poly1305_ietf_encrypt(out + OSS_HDR + extra_aad_len,
						  NULL, pt, len, aad, aad_len,
						  NULL, nonce, d->key);
}

int oss_open(const struct oss_dir *d, uint64_t seq, const uint8_t hdr[4],
	     const uint8_t *extra_aad, size_t extra_aad_len, const uint8_t *body,
	     size_t body_len, uint8_t *pt)
{
	uint8_t nonce[12], aad[OSS_HDR + OSS_SH_CLEAR];
	size_t aad_len = build_aad(aad, hdr, extra_aad, extra_aad_len);

	if (body_len < OSS_TAG)
		return -1;
	oss_nonce(nonce, d->iv, seq);
	return crypto_aead_chacha20poly1305_ietf_decrypt(pt, NULL, NULL, body,
							 body_len, aad, aad_len,
							 nonce, d->key);
}

bool oss_is_zero(const uint8_t *p, size_t n)
{
	return sodium_is_zero(p, n) == 1;
}
