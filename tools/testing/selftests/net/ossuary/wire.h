/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The test's own record layer, written from PROTOCOL.md "Sealing a
 * record" with libsodium: it plays the plain-TCP peer of an offloaded
 * socket, sealing what the kernel must open and opening what the kernel
 * sealed.
 */
#ifndef OSSUARY_SELFTEST_WIRE_H
#define OSSUARY_SELFTEST_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define WIRE_HDR	4
#define WIRE_TAG	16
#define WIRE_MAX_PT	16384
#define WIRE_MAX_REC	(WIRE_HDR + WIRE_MAX_PT + WIRE_TAG)

struct wire_dir {
	uint8_t secret[32];
	uint8_t key[32];
	uint8_t iv[12];
	uint64_t seq;
	unsigned int generation;
};

int wire_init(void);	/* sodium_init; 0 on success */

/* RFC 5869 HKDF-Expand with SHA-256; out_len <= 255 * 32 */
void wire_hkdf_expand(uint8_t *out, size_t out_len, const uint8_t prk[32],
		      const char *info);

void wire_dir_init(struct wire_dir *d, const uint8_t secret[32], uint64_t seq);
/* S' = HKDF-Expand(S, "next", 32), seq = 0 */
void wire_dir_next(struct wire_dir *d);
void wire_nonce(const struct wire_dir *d, uint64_t seq, uint8_t nonce[12]);

/*
 * Seal one record of type with d's current seq (then seq++). out must
 * hold WIRE_HDR + len + WIRE_TAG bytes; returns the record length.
 * Any len up to 65535 - 16 is accepted, so tests can build oversize ones.
 */
size_t wire_seal(struct wire_dir *d, uint8_t type, const void *pt, size_t len,
		 uint8_t *out);

/*
 * Open one whole record (header included) with d's current seq; on
 * success seq++ and returns the plaintext length, *type set. -1 if the
 * header is malformed or the tag does not verify (seq unchanged).
 */
ssize_t wire_open(struct wire_dir *d, const uint8_t *rec, size_t rec_len,
		  uint8_t *pt, uint8_t *type);

/*
 * Read one record from a plain socket into rec (WIRE_MAX_REC bytes or
 * more). Returns its length, 0 on clean EOF before any byte, -errno on
 * error or EOF in the middle, -EPROTO on a header a v2 sender never
 * writes (wrong version or length over 16400).
 */
ssize_t wire_read_record(int fd, uint8_t *rec);

/* Hex: decode returns the byte count or -1; out must hold strlen/2 */
ssize_t wire_unhex(const char *hex, uint8_t *out, size_t max);
void wire_hex(const uint8_t *in, size_t len, char *out);

#endif /* OSSUARY_SELFTEST_WIRE_H */
