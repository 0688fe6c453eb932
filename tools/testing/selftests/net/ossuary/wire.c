// SPDX-License-Identifier: GPL-2.0
/* The test's userspace record layer (see wire.h). */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <sodium.h>

#include "wire.h"

int wire_init(void)
{
	return sodium_init() < 0 ? -1 : 0;
}

void wire_hkdf_expand(uint8_t *out, size_t out_len, const uint8_t prk[32],
		      const char *info)
{
	uint8_t t[32];
	size_t info_len = strlen(info), done = 0, t_len = 0;
	uint8_t ctr = 1;

	while (done < out_len) {
		crypto_auth_hmacsha256_state st;
		size_t n;

		crypto_auth_hmacsha256_init(&st, prk, 32);
		crypto_auth_hmacsha256_update(&st, t, t_len);
		crypto_auth_hmacsha256_update(&st, (const uint8_t *)info,
					      info_len);
		crypto_auth_hmacsha256_update(&st, &ctr, 1);
		crypto_auth_hmacsha256_final(&st, t);
		t_len = 32;
		n = out_len - done < 32 ? out_len - done : 32;
		memcpy(out + done, t, n);
		done += n;
		ctr++;
	}
	sodium_memzero(t, sizeof(t));
}

static void derive(struct wire_dir *d)
{
	wire_hkdf_expand(d->key, sizeof(d->key), d->secret, "key");
	wire_hkdf_expand(d->iv, sizeof(d->iv), d->secret, "iv");
}

void wire_dir_init(struct wire_dir *d, const uint8_t secret[32], uint64_t seq)
{
	memset(d, 0, sizeof(*d));
	memcpy(d->secret, secret, 32);
	d->seq = seq;
	derive(d);
}

void wire_dir_next(struct wire_dir *d)
{
	uint8_t s[32];

	wire_hkdf_expand(s, 32, d->secret, "next");
	memcpy(d->secret, s, 32);
	derive(d);
	d->seq = 0;
	d->generation++;
}

void wire_nonce(const struct wire_dir *d, uint64_t seq, uint8_t nonce[12])
{
	memcpy(nonce, d->iv, 12);
	for (int i = 0; i < 8; i++)
		nonce[4 + i] ^= (uint8_t)(seq >> (56 - 8 * i));
}

size_t wire_seal(struct wire_dir *d, uint8_t type, const void *pt, size_t len,
		 uint8_t *out)
{
	uint8_t nonce[12];
	unsigned long long clen;
	size_t body = len + WIRE_TAG;

	out[0] = 0x02;
	out[1] = type;
	out[2] = (uint8_t)(body >> 8);
	out[3] = (uint8_t)body;
	wire_nonce(d, d->seq, nonce);
	crypto_aead_chacha20poly1305_ietf_encrypt(out + WIRE_HDR, &clen, pt, len,
						  out, WIRE_HDR, NULL, nonce,
						  d->key);
	d->seq++;
	return WIRE_HDR + (size_t)clen;
}

ssize_t wire_open(struct wire_dir *d, const uint8_t *rec, size_t rec_len,
		  uint8_t *pt, uint8_t *type)
{
	uint8_t nonce[12];
	unsigned long long plen;
	size_t body;

	if (rec_len < WIRE_HDR + WIRE_TAG || rec[0] != 0x02)
		return -1;
	body = (size_t)rec[2] << 8 | rec[3];
	if (body + WIRE_HDR != rec_len || body < WIRE_TAG)
		return -1;
	wire_nonce(d, d->seq, nonce);
	if (crypto_aead_chacha20poly1305_ietf_decrypt(pt, &plen, NULL,
						      rec + WIRE_HDR, body,
						      rec, WIRE_HDR, nonce,
						      d->key))
		return -1;
	*type = rec[1];
	d->seq++;
	return (ssize_t)plen;
}

static ssize_t read_n(int fd, uint8_t *p, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = recv(fd, p + done, n - done, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return done;
		done += r;
	}
	return done;
}

ssize_t wire_read_record(int fd, uint8_t *rec)
{
	ssize_t r = read_n(fd, rec, WIRE_HDR);
	size_t body;

	if (r < 0)
		return r;
	if (r == 0)
		return 0;
	if (r < WIRE_HDR)
		return -EPIPE;
	body = (size_t)rec[2] << 8 | rec[3];
	if (rec[0] != 0x02 || body > WIRE_MAX_PT + WIRE_TAG)
		return -EPROTO;
	r = read_n(fd, rec + WIRE_HDR, body);
	if (r < 0)
		return r;
	if ((size_t)r < body)
		return -EPIPE;
	return WIRE_HDR + body;
}

static int nib(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

ssize_t wire_unhex(const char *hex, uint8_t *out, size_t max)
{
	size_t n = strlen(hex);

	if (n % 2 || n / 2 > max)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = nib(hex[2 * i]), lo = nib(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return n / 2;
}

void wire_hex(const uint8_t *in, size_t len, char *out)
{
	static const char d[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = d[in[i] >> 4];
		out[2 * i + 1] = d[in[i] & 15];
	}
	out[2 * len] = 0;
}
