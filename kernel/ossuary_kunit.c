// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit suites for the pure parts of the Ossuary record layer: header
 * building and checking, nonce construction, key derivation and the
 * key ratchet, and sealing/opening against the independent vectors in
 * vectors/records.json (embedded below; a test module cannot
 * read files), through scatterlists cut at awkward offsets.
 */

#include <kunit/test.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/hex.h>
#include <crypto/aead.h>
#include <crypto/sha2.h>

#include "ossuary.h"

MODULE_IMPORT_NS(EXPORTED_FOR_KUNIT_TESTING);

/* records.json: traffic_secret, key, iv, next_chain */
static const char vec_secret[] =
	"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
static const char vec_key[] =
	"0ec8144dab4f89ddc4df9a06db694266b1ce98c472b6855bd1a28696b6cd793c";
static const char vec_iv[] = "3ca2eab764858bd44c540795";

static const struct {
	const char *secret, *key, *iv;
} vec_chain[] = {
	{ vec_secret, vec_key, vec_iv },
	{ "66ecc3a60d048fd39f0f61921699c54ee8188b23d6d3649a47c56f5643c23ef6",
	  "130c6fe047165c84e4270b42f86331548ca487d5d782a022f2d19ef8a8e656c3",
	  "c8ac20e28526fba5286700cb" },
	{ "618288f668f73429993e91a343ec8cea0c98b1d7c507d57b3447f1b7c2ae2abd",
	  "e422b1ce4bbc2124d8031aac0e40d8d2484be2e6f80c1b9358a9c487f1c75960",
	  "41f87026c91870c8af1866e1" },
};

/* records.json "records": small ones whole, DATA plaintext i mod 251 */
static const struct {
	u8 type;
	u64 seq;
	u32 plen;
	u8 val;		/* control records: the one-byte body */
	const char *record;
} vec_small[] = {
	{ OSSUARY_RECORD_DATA, 0, 0, 0,
	  "02200010d0b93b8f95bc9417a391ae223b0de7cc" },
	{ OSSUARY_RECORD_DATA, 0, 1, 0,
	  "02200011340a235ae3515198144213050b005e7c42" },
	{ OSSUARY_RECORD_DATA, 0, 17, 0,
	  "0220002134740f345d5a2be786037e30248d87d51c5d694e3978d0f3e9994a8e40b954ce9f" },
	{ OSSUARY_RECORD_DATA, 1, 17, 0,
	  "02200021cb6266aca13cdc38ce8c8339eb97c80146480eb0390c26b8475327a0afab496fdb" },
	{ OSSUARY_RECORD_DATA, 255, 17, 0,
	  "02200021af43079fedf732ff11582d5739c92d1247db1cedbc145ac2c52ade1dadb01f1853" },
	{ OSSUARY_RECORD_DATA, 0xfffffffffffffffdULL, 17, 0,
	  "02200021ac635939492d09977aa30569d2a491708de2d5ae139c5cd210765e107870a51532" },
	{ OSSUARY_RECORD_KEY_UPDATE, 0, 1, 0,
	  "02210011343f5785482687c14a44ba8f0536ece34b" },
	{ OSSUARY_RECORD_KEY_UPDATE, 0, 1, 1,
	  "022100113578ca5f39e0a3efcb86989a2d04d8f7ec" },
	{ OSSUARY_RECORD_KEY_UPDATE, OSSUARY_SEQ_LAST, 1, 1,
	  "0221001104e8e42f0d312c6166e0c5e20d32c44afa" },
	{ OSSUARY_RECORD_DISCONNECT, 1, 1, 0,
	  "02100011cb2b86b026e82e64cf7d0c2bf58f7ef6db" },
	{ OSSUARY_RECORD_DISCONNECT, 255, 1, 3,
	  "02100011ac2e22d72e3e4f732f8913acd66d0f57fb" },
	{ OSSUARY_RECORD_RESET, 0, 1, 0,
	  "0211001134ef13d2f5df292ee8204ae55cd6086bb5" },
};

/* records.json: SHA-256 of whole large DATA records */
static const struct {
	u64 seq;
	u32 plen;
	const char *sha256;
} vec_large[] = {
	{ 0, 1000,
	  "9d255340b9f3ab187cf023a8e42894ed94d84d0a1bdc9bdb908f31a897225531" },
	{ 255, 1000,
	  "8f788a96bc4d645ccaff2faa517ebfef56e669cdd791ce4307d1f23d1d388809" },
	{ 0, 16384,
	  "f00ddc1a6abb2a392c4fded90d61891094c52f09301720cafb9b798041243bfe" },
	{ 1, 16384,
	  "671b63d5b76686eb4e13838f000dc46157b9b83c6a981de7d9f7d1202ab37b1f" },
};

static void unhex(struct kunit *test, const char *hex, u8 *out, size_t len)
{
	KUNIT_ASSERT_EQ(test, strlen(hex), 2 * len);
	KUNIT_ASSERT_EQ(test, hex2bin(out, hex, len), 0);
}

static void fill_pattern(u8 *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = i % 251;
}

static void ossuary_test_header(struct kunit *test)
{
	static const u8 want[] = { 0x02, 0x20, 0x40, 0x10 };
	u8 hdr[OSSUARY_HEADER_LEN];
	u32 blen = 0;
	u8 type = 0;

	ossuary_hdr_build(hdr, OSSUARY_RECORD_DATA, OSSUARY_MAX_BODY);
	KUNIT_EXPECT_MEMEQ(test, hdr, want, sizeof(want));
	KUNIT_EXPECT_EQ(test, ossuary_hdr_check(hdr, &type, &blen), 0);
	KUNIT_EXPECT_EQ(test, type, OSSUARY_RECORD_DATA);
	KUNIT_EXPECT_EQ(test, blen, OSSUARY_MAX_BODY);

	/* the smallest DATA body is a bare tag */
	ossuary_hdr_build(hdr, OSSUARY_RECORD_DATA, OSSUARY_TAG_LEN);
	KUNIT_EXPECT_EQ(test, ossuary_hdr_check(hdr, &type, &blen), 0);
	KUNIT_EXPECT_EQ(test, blen, OSSUARY_TAG_LEN);
	ossuary_hdr_build(hdr, OSSUARY_RECORD_DATA, OSSUARY_TAG_LEN - 1);
	KUNIT_EXPECT_EQ(test, ossuary_hdr_check(hdr, &type, &blen), -EPROTO);
	ossuary_hdr_build(hdr, OSSUARY_RECORD_DATA, OSSUARY_MAX_BODY + 1);
	KUNIT_EXPECT_EQ(test, ossuary_hdr_check(hdr, &type, &blen), -EPROTO);
	ossuary_hdr_build(hdr, OSSUARY_RECORD_DATA, 0xffff);
	KUNIT_EXPECT_EQ(test, ossuary_hdr_check(hdr, &type, &blen), -EPROTO);

	/* control records: sealed one-byte bodies only */
	ossuary_hdr_build(hdr, OSSUARY_RECORD_KEY_UPDATE, 17);
	KUNIT_EXPECT_EQ(test, ossuary_hdr_check(hdr, &type, &blen), 0);
	KUNIT_EXPECT_EQ(test, type, OSSUARY_RECORD_KEY_UPDATE);
	ossuary_hdr_build(hdr, OSSUARY_RECORD_KEY_UPDATE, 18);
	KUNIT_EXPECT_EQ(test, ossuary_hdr_check(hdr, &type, &blen), -EPROTO);
	ossuary_hdr_build(hdr, OSSUARY_RECORD_DISCONNECT, 17);
	KUNIT_EXPECT_EQ(test, ossuary_hdr_check(hdr, &type, &blen), 0);
	ossuary_hdr_build(hdr, OSSUARY_RECORD_DISCONNECT, 1);
	KUNIT_EXPECT_EQ(test, ossuary_hdr_check(hdr, &type, &blen), -EPROTO);
	ossuary_hdr_build(hdr, OSSUARY_RECORD_RESET, 1);
	KUNIT_EXPECT_EQ(test, ossuary_hdr_check(hdr, &type, &blen), -EPROTO);
	ossuary_hdr_build(hdr, OSSUARY_RECORD_RESET, 17);
	KUNIT_EXPECT_EQ(test, ossuary_hdr_check(hdr, &type, &blen), 0);

	/* handshake records and unknown types are out of stage */
	ossuary_hdr_build(hdr, OSSUARY_RECORD_CLIENT_HELLO, 76);
	KUNIT_EXPECT_EQ(test, ossuary_hdr_check(hdr, &type, &blen), -EPROTO);
	ossuary_hdr_build(hdr, OSSUARY_RECORD_SERVER_HELLO, 188);
	KUNIT_EXPECT_EQ(test, ossuary_hdr_check(hdr, &type, &blen), -EPROTO);
	ossuary_hdr_build(hdr, 0x22, 17);
	KUNIT_EXPECT_EQ(test, ossuary_hdr_check(hdr, &type, &blen), -EPROTO);

	/* wrong version */
	ossuary_hdr_build(hdr, OSSUARY_RECORD_DATA, 21);
	hdr[0] = 0x03;
	KUNIT_EXPECT_EQ(test, ossuary_hdr_check(hdr, &type, &blen), -EPROTO);
	hdr[0] = 0x01;
	KUNIT_EXPECT_EQ(test, ossuary_hdr_check(hdr, &type, &blen), -EPROTO);
}

static void ossuary_test_nonce(struct kunit *test)
{
	u8 iv[OSSUARY_NONCE_LEN], nonce[OSSUARY_NONCE_LEN];
	u8 want[OSSUARY_NONCE_LEN];

	unhex(test, vec_iv, iv, sizeof(iv));
	ossuary_nonce(iv, 0, nonce);
	KUNIT_EXPECT_MEMEQ(test, nonce, iv, sizeof(iv));

	/* records.json nonces for seq 255, 2^32 and 2^64 - 2 */
	ossuary_nonce(iv, 255, nonce);
	unhex(test, "3ca2eab764858bd44c54076a", want, sizeof(want));
	KUNIT_EXPECT_MEMEQ(test, nonce, want, sizeof(want));
	ossuary_nonce(iv, 1ULL << 32, nonce);
	unhex(test, "3ca2eab764858bd54c540795", want, sizeof(want));
	KUNIT_EXPECT_MEMEQ(test, nonce, want, sizeof(want));
	ossuary_nonce(iv, OSSUARY_SEQ_LAST, nonce);
	unhex(test, "3ca2eab79b7a742bb3abf86b", want, sizeof(want));
	KUNIT_EXPECT_MEMEQ(test, nonce, want, sizeof(want));
}

static void ossuary_test_derive(struct kunit *test)
{
	u8 secret[OSSUARY_SECRET_LEN], key[OSSUARY_KEY_LEN];
	u8 iv[OSSUARY_NONCE_LEN], want[OSSUARY_KEY_LEN];
	struct ossuary_keys k;
	int i;

	unhex(test, vec_secret, secret, sizeof(secret));
	KUNIT_ASSERT_EQ(test, ossuary_derive(secret, key, iv), 0);
	unhex(test, vec_key, want, OSSUARY_KEY_LEN);
	KUNIT_EXPECT_MEMEQ(test, key, want, OSSUARY_KEY_LEN);
	unhex(test, vec_iv, want, OSSUARY_NONCE_LEN);
	KUNIT_EXPECT_MEMEQ(test, iv, want, OSSUARY_NONCE_LEN);
	KUNIT_EXPECT_EQ(test, ossuary_hkdf_expand(secret, "x", 1, key, 33),
			-EINVAL);

	/* the "next" chain, through the same ratchet KEY_UPDATE uses */
	KUNIT_ASSERT_EQ(test, ossuary_keys_init(&k, secret, 7), 0);
	for (i = 0; i < ARRAY_SIZE(vec_chain); i++) {
		unhex(test, vec_chain[i].secret, want, OSSUARY_SECRET_LEN);
		KUNIT_EXPECT_MEMEQ(test, k.secret, want, OSSUARY_SECRET_LEN);
		unhex(test, vec_chain[i].iv, want, OSSUARY_NONCE_LEN);
		KUNIT_EXPECT_MEMEQ(test, k.iv, want, OSSUARY_NONCE_LEN);
		ossuary_derive(k.secret, key, iv);
		unhex(test, vec_chain[i].key, want, OSSUARY_KEY_LEN);
		KUNIT_EXPECT_MEMEQ(test, key, want, OSSUARY_KEY_LEN);
		KUNIT_EXPECT_EQ(test, k.generation, (u64)i);
		KUNIT_EXPECT_EQ(test, k.seq, i ? 0ULL : 7ULL);
		KUNIT_ASSERT_EQ(test, ossuary_keys_ratchet(&k), 0);
	}
	ossuary_keys_free(&k);
	/* freed keys are wiped */
	memset(want, 0, sizeof(want));
	KUNIT_EXPECT_MEMEQ(test, k.secret, want, OSSUARY_SECRET_LEN);
}

static void ossuary_test_seal_small(struct kunit *test)
{
	u8 secret[OSSUARY_SECRET_LEN];
	u8 buf[64], want[64], pt[32];
	struct scatterlist sg;
	struct ossuary_keys k;
	int i;

	unhex(test, vec_secret, secret, sizeof(secret));
	for (i = 0; i < ARRAY_SIZE(vec_small); i++) {
		u32 len = OSSUARY_HEADER_LEN + vec_small[i].plen +
			  OSSUARY_TAG_LEN;
		u32 blen = vec_small[i].plen + OSSUARY_TAG_LEN;

		kunit_info(test, "record %d: type %#x seq %llu len %u", i,
			   vec_small[i].type, vec_small[i].seq,
			   vec_small[i].plen);
		KUNIT_ASSERT_LE(test, len, sizeof(buf));
		unhex(test, vec_small[i].record, want, len);
		if (vec_small[i].type == OSSUARY_RECORD_DATA)
			fill_pattern(pt, vec_small[i].plen);
		else
			pt[0] = vec_small[i].val;

		KUNIT_ASSERT_EQ(test, ossuary_keys_init(&k, secret, 0), 0);
		ossuary_hdr_build(buf, vec_small[i].type, blen);
		memcpy(buf + OSSUARY_HEADER_LEN, pt, vec_small[i].plen);
		sg_init_one(&sg, buf, len);
		KUNIT_EXPECT_EQ(test, ossuary_crypt(&k, true, &sg, &sg,
						    vec_small[i].plen,
						    vec_small[i].seq), 0);
		KUNIT_EXPECT_MEMEQ(test, buf, want, len);

		/* and back */
		KUNIT_EXPECT_EQ(test, ossuary_crypt(&k, false, &sg, &sg, blen,
						    vec_small[i].seq), 0);
		KUNIT_EXPECT_MEMEQ(test, buf + OSSUARY_HEADER_LEN, pt,
				   vec_small[i].plen);

		/* a neighbouring sequence number does not open it */
		memcpy(buf, want, len);
		KUNIT_EXPECT_EQ(test, ossuary_crypt(&k, false, &sg, &sg, blen,
						    vec_small[i].seq ^ 1),
				-EBADMSG);
		/* nor does a header with another type (the AAD) */
		memcpy(buf, want, len);
		buf[1] ^= 0x01;
		KUNIT_EXPECT_EQ(test, ossuary_crypt(&k, false, &sg, &sg, blen,
						    vec_small[i].seq),
				-EBADMSG);
		/* verified before decrypted: a failed open writes nothing */
		KUNIT_EXPECT_MEMEQ(test, buf + OSSUARY_HEADER_LEN,
				   want + OSSUARY_HEADER_LEN, blen);
		ossuary_keys_free(&k);
	}
}

/*
 * A scatterlist over a copy of buf cut every `stride` bytes (starting
 * at `first`).  The pieces sit in one arena with a 3-byte gap after
 * each, so that no two pieces are adjacent in memory and most start at
 * odd addresses; one allocation keeps thousands of pieces cheap.
 */
static struct scatterlist *split_sg(struct kunit *test, const u8 *buf,
				    u32 len, u32 first, u32 stride)
{
	u32 n, i, off, slot = max(first, stride) + 3;
	struct scatterlist *sg;
	u8 *arena;

	n = first ? 1 + DIV_ROUND_UP(len - first, stride)
		  : DIV_ROUND_UP(len, stride);
	sg = kunit_kmalloc_array(test, n, sizeof(*sg), GFP_KERNEL);
	arena = kunit_kmalloc_array(test, n, slot, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, sg);
	KUNIT_ASSERT_NOT_NULL(test, arena);
	sg_init_table(sg, n);
	for (i = 0, off = 0; i < n; i++) {
		u32 piece = (i == 0 && first) ? first : stride;
		u8 *p = arena + i * slot + 1;

		piece = min(piece, len - off);
		memcpy(p, buf + off, piece);
		sg_set_buf(&sg[i], p, piece);
		off += piece;
	}
	KUNIT_ASSERT_EQ(test, off, len);
	return sg;
}

static void gather_sg(struct kunit *test, struct scatterlist *sg, u8 *out,
		      u32 len)
{
	KUNIT_EXPECT_EQ(test, sg_copy_to_buffer(sg, sg_nents(sg), out, len),
			(size_t)len);
}

/* Cuts around the header (AAD), inside the body and inside the tag. */
static const struct {
	u32 first, stride;
} vec_cuts[] = {
	{ 0, 1 }, { 1, 3 }, { 3, 7 }, { 4, 16 }, { 5, 63 }, { 0, 64 },
	{ 2, 65 }, { 0, 333 }, { 1003, 1 }, { 1011, 5 }, { 1019, 1 },
	{ 0, 4096 },
};

static void ossuary_test_seal_split(struct kunit *test)
{
	const u32 plen = 1000, len = OSSUARY_HEADER_LEN + plen +
				     OSSUARY_TAG_LEN;
	u8 secret[OSSUARY_SECRET_LEN], digest[SHA256_DIGEST_SIZE];
	u8 want[SHA256_DIGEST_SIZE];
	struct ossuary_keys k;
	u8 *pt, *buf, *out;
	int i, v;

	unhex(test, vec_secret, secret, sizeof(secret));
	pt = kunit_kzalloc(test, len, GFP_KERNEL);
	buf = kunit_kzalloc(test, len, GFP_KERNEL);
	out = kunit_kzalloc(test, len, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, pt);
	KUNIT_ASSERT_NOT_NULL(test, buf);
	KUNIT_ASSERT_NOT_NULL(test, out);
	KUNIT_ASSERT_EQ(test, ossuary_keys_init(&k, secret, 0), 0);

	for (v = 0; v < 2; v++) {
		u64 seq = vec_large[v].seq;

		unhex(test, vec_large[v].sha256, want, sizeof(want));
		ossuary_hdr_build(pt, OSSUARY_RECORD_DATA,
				  plen + OSSUARY_TAG_LEN);
		fill_pattern(pt + OSSUARY_HEADER_LEN, plen);

		for (i = 0; i < ARRAY_SIZE(vec_cuts); i++) {
			const int j = (i + 5) % ARRAY_SIZE(vec_cuts);
			struct scatterlist *src, *dst;

			/*
			 * Seal out of place, src and dst cut differently.
			 * The AEAD API reads the AAD from src and leaves
			 * dst's copy alone, so dst starts as a copy of src.
			 */
			src = split_sg(test, pt, len, vec_cuts[i].first,
				       vec_cuts[i].stride);
			dst = split_sg(test, pt, len, vec_cuts[j].first,
				       vec_cuts[j].stride);
			KUNIT_ASSERT_EQ(test, ossuary_crypt(&k, true, src, dst,
							    plen, seq), 0);
			memset(out, 0, len);
			gather_sg(test, dst, out, len);
			sha256(out, len, digest);
			KUNIT_EXPECT_MEMEQ_MSG(test, digest, want, sizeof(want),
					       "seq %llu cut %u/%u", seq,
					       vec_cuts[i].first,
					       vec_cuts[i].stride);

			/* open in place through a third cut */
			src = split_sg(test, out, len, vec_cuts[j].first,
				       vec_cuts[i].stride);
			KUNIT_ASSERT_EQ(test, ossuary_crypt(&k, false, src, src,
							    plen +
							    OSSUARY_TAG_LEN,
							    seq), 0);
			gather_sg(test, src, buf, len);
			KUNIT_EXPECT_MEMEQ(test, buf + OSSUARY_HEADER_LEN,
					   pt + OSSUARY_HEADER_LEN, plen);

			/* one flipped bit anywhere: the record fails */
			out[(i * 97 + 13) % len] ^= 0x10;
			src = split_sg(test, out, len, vec_cuts[i].first,
				       vec_cuts[j].stride);
			KUNIT_EXPECT_EQ(test, ossuary_crypt(&k, false, src, src,
							    plen +
							    OSSUARY_TAG_LEN,
							    seq), -EBADMSG);
			/* many small steps under emulation: let RCU breathe */
			cond_resched();
		}
	}
	ossuary_keys_free(&k);
}

/* The largest record through the module's own page-backed buffers. */
static void ossuary_test_seal_pages(struct kunit *test)
{
	const u32 plen = OSSUARY_MAX_PLAINTEXT;
	const u32 len = OSSUARY_REC_MAX;
	struct scatterlist sg[OSSUARY_REC_SG];
	u8 secret[OSSUARY_SECRET_LEN], digest[SHA256_DIGEST_SIZE];
	u8 want[SHA256_DIGEST_SIZE];
	struct ossuary_buf b = {};
	struct ossuary_keys k;
	u8 *lin;
	int v;

	unhex(test, vec_secret, secret, sizeof(secret));
	/* room for the record and for a second copy of the plaintext */
	lin = kunit_kzalloc(test, len + plen, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, lin);
	KUNIT_ASSERT_EQ(test, ossuary_buf_alloc(&b, len, GFP_KERNEL), 0);
	KUNIT_ASSERT_EQ(test, ossuary_keys_init(&k, secret, 0), 0);

	for (v = 2; v < ARRAY_SIZE(vec_large); v++) {
		unhex(test, vec_large[v].sha256, want, sizeof(want));
		ossuary_hdr_build(lin, OSSUARY_RECORD_DATA, OSSUARY_MAX_BODY);
		fill_pattern(lin + OSSUARY_HEADER_LEN, plen);
		ossuary_buf_write(&b, 0, lin, OSSUARY_HEADER_LEN + plen);
		KUNIT_EXPECT_EQ(test, ossuary_buf_sg(&b, len, sg),
				(unsigned int)OSSUARY_REC_PAGES);
		KUNIT_ASSERT_EQ(test, ossuary_crypt(&k, true, sg, sg, plen,
						    vec_large[v].seq), 0);
		ossuary_buf_read(&b, 0, lin, len);
		sha256(lin, len, digest);
		KUNIT_EXPECT_MEMEQ(test, digest, want, sizeof(want));

		KUNIT_ASSERT_EQ(test, ossuary_crypt(&k, false, sg, sg,
						    OSSUARY_MAX_BODY,
						    vec_large[v].seq), 0);
		ossuary_buf_read(&b, OSSUARY_HEADER_LEN, lin, plen);
		fill_pattern(lin + plen, plen);
		KUNIT_EXPECT_MEMEQ(test, lin, lin + plen, plen);
	}
	ossuary_keys_free(&k);
	ossuary_buf_free(&b);
}

/*
 * Cuts of the largest record's plaintext into pieces that alternate
 * between the image (copied bytes) and pages of their own (bytes lent
 * by sendfile), at most OSSUARY_TX_FRAGS lent pieces of at most a page.
 */
static const struct {
	u32 first, stride;
} lent_cuts[] = {
	{ 1, 4095 }, { 4092, 4096 }, { 3, 1100 }, { 4096, 4096 },
	{ 17, 2049 }, { 0, 1024 }, { 5, 1200 },
};

/*
 * Where TX seals a record to: two 32 KiB compound pages, as
 * sk_page_frag() hands out, the record starting 1001 bytes before the
 * end of the first and going on at an odd offset past the first page of
 * the second: pieces that start and end mid-page.
 */
static void seal_dst_pieces(struct page **frag, u32 len,
			    struct scatterlist *dst)
{
	const u32 size = PAGE_SIZE << 3;

	sg_init_table(dst, 2);
	sg_set_page(&dst[0], frag[0], 1001, size - 1001);
	sg_set_page(&dst[1], frag[1], len - 1001, PAGE_SIZE + 77);
}

/*
 * Sealing straight from lent pages gives exactly the vector's bytes
 * wherever the pieces are cut and however they sit in their pages, and
 * leaves the lent pages as they were: the AEAD only reads them.  The
 * record lands in place in the image or, as TX does, in pieces of
 * compound pages.
 */
static void ossuary_test_seal_lent(struct kunit *test)
{
	const u32 plen = OSSUARY_MAX_PLAINTEXT;
	const u32 len = OSSUARY_REC_MAX;
	struct ossuary_tx_frag frags[OSSUARY_TX_FRAGS];
	struct page *lent[OSSUARY_TX_FRAGS] = {}, *frag[2];
	struct scatterlist dst[OSSUARY_REC_SG];
	u8 secret[OSSUARY_SECRET_LEN], digest[SHA256_DIGEST_SIZE];
	u8 want[SHA256_DIGEST_SIZE], hdr[OSSUARY_HEADER_LEN];
	struct ossuary_buf b = {};
	struct ossuary_keys k;
	int i, c, parity;
	u8 *pat, *out;

	unhex(test, vec_secret, secret, sizeof(secret));
	unhex(test, vec_large[2].sha256, want, sizeof(want));
	pat = kunit_kmalloc(test, plen, GFP_KERNEL);
	out = kunit_kmalloc(test, len, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, pat);
	KUNIT_ASSERT_NOT_NULL(test, out);
	fill_pattern(pat, plen);
	ossuary_hdr_build(hdr, OSSUARY_RECORD_DATA, OSSUARY_MAX_BODY);
	for (i = 0; i < OSSUARY_TX_FRAGS; i++) {
		lent[i] = alloc_page(GFP_KERNEL);
		KUNIT_ASSERT_NOT_NULL(test, lent[i]);
	}
	for (i = 0; i < 2; i++) {
		frag[i] = alloc_pages(GFP_KERNEL | __GFP_COMP, 3);
		KUNIT_ASSERT_NOT_NULL(test, frag[i]);
	}
	KUNIT_ASSERT_EQ(test, ossuary_buf_alloc(&b, len, GFP_KERNEL), 0);
	KUNIT_ASSERT_EQ(test, ossuary_keys_init(&k, secret, 0), 0);

	for (c = 0; c < ARRAY_SIZE(lent_cuts); c++) {
		for (parity = 0; parity < 2; parity++) {
			u32 off = 0, nf = 0, idx = 0;

			/* lent bytes must come from the frags, not from here */
			for (i = 0; i < OSSUARY_REC_PAGES; i++)
				memset(page_address(b.pages[i]), 0xa5,
				       PAGE_SIZE);
			ossuary_buf_write(&b, 0, hdr, sizeof(hdr));
			while (off < plen) {
				u32 piece = (idx == 0 && lent_cuts[c].first) ?
					    lent_cuts[c].first :
					    lent_cuts[c].stride;

				piece = min(piece, plen - off);
				if (idx++ % 2 == parity) {
					struct ossuary_tx_frag *f;
					u32 poff = PAGE_SIZE - piece;

					KUNIT_ASSERT_LT(test, nf,
							(u32)OSSUARY_TX_FRAGS);
					/* odd ones mid-page, at odd offsets */
					if (nf & 1)
						poff = (poff / 2) | 1;
					if (poff + piece > PAGE_SIZE)
						poff = PAGE_SIZE - piece;
					f = &frags[nf];
					memset(page_address(lent[nf]), 0x5a,
					       PAGE_SIZE);
					memcpy(page_address(lent[nf]) + poff,
					       pat + off, piece);
					f->page = lent[nf++];
					f->off = poff;
					f->len = piece;
					f->pos = off;
				} else {
					ossuary_buf_write(&b,
							  OSSUARY_HEADER_LEN +
							  off, pat + off,
							  piece);
				}
				off += piece;
			}
			/* odd parity: out of place, header put there first */
			if (parity) {
				seal_dst_pieces(frag, len, dst);
				sg_copy_from_buffer(dst, 2, hdr, sizeof(hdr));
			} else {
				ossuary_buf_sg(&b, len, dst);
			}
			KUNIT_ASSERT_EQ(test, ossuary_seal(&k, &b, frags, nf,
							   plen,
							   vec_large[2].seq,
							   dst),
					0);
			if (parity)
				sg_copy_to_buffer(dst, 2, out, len);
			else
				ossuary_buf_read(&b, 0, out, len);
			sha256(out, len, digest);
			KUNIT_EXPECT_MEMEQ_MSG(test, digest, want,
					       sizeof(want),
					       "cut %u/%u parity %d, %u lent",
					       lent_cuts[c].first,
					       lent_cuts[c].stride, parity, nf);
			for (i = 0; i < nf; i++)
				KUNIT_EXPECT_MEMEQ(test,
						   page_address(frags[i].page) +
						   frags[i].off,
						   pat + frags[i].pos,
						   frags[i].len);
			cond_resched();
		}
	}
	ossuary_keys_free(&k);
	ossuary_buf_free(&b);
	for (i = 0; i < OSSUARY_TX_FRAGS; i++)
		__free_page(lent[i]);
	for (i = 0; i < 2; i++)
		__free_pages(frag[i], 3);
}

/*
 * The module's AEAD (lib/crypto primitives) against the crypto API's
 * rfc7539(chacha20,poly1305) on the same input, at every length up to
 * a few blocks and around page sizes: byte-identical records, and each
 * opens the other's.
 */
static void ossuary_test_matches_crypto_api(struct kunit *test)
{
	static const u32 more[] = { 255, 256, 257, 1000, 4091, 4092, 4093,
				    4096, 4097, 5000 };
	const u32 max = 5000 + OSSUARY_HEADER_LEN + OSSUARY_TAG_LEN;
	u8 secret[OSSUARY_SECRET_LEN], key[OSSUARY_KEY_LEN];
	u8 iv[OSSUARY_NONCE_LEN], nonce[OSSUARY_NONCE_LEN];
	struct scatterlist sa, sb;
	struct aead_request *req;
	struct crypto_aead *tfm;
	struct ossuary_keys k;
	u32 i, len, rec;
	u8 *a, *b;
	u64 seq;

	tfm = crypto_alloc_aead("rfc7539(chacha20,poly1305)", 0,
				CRYPTO_ALG_ASYNC);
	if (IS_ERR(tfm))
		kunit_skip(test, "no rfc7539(chacha20,poly1305) to compare with");
	unhex(test, vec_secret, secret, sizeof(secret));
	KUNIT_ASSERT_EQ(test, ossuary_derive(secret, key, iv), 0);
	KUNIT_ASSERT_EQ(test, crypto_aead_setauthsize(tfm, OSSUARY_TAG_LEN), 0);
	KUNIT_ASSERT_EQ(test, crypto_aead_setkey(tfm, key, sizeof(key)), 0);
	req = aead_request_alloc(tfm, GFP_KERNEL);
	a = kunit_kmalloc(test, max, GFP_KERNEL);
	b = kunit_kmalloc(test, max, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, req);
	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_ASSERT_NOT_NULL(test, b);
	aead_request_set_callback(req, 0, NULL, NULL);
	aead_request_set_ad(req, OSSUARY_HEADER_LEN);
	KUNIT_ASSERT_EQ(test, ossuary_keys_init(&k, secret, 0), 0);

	for (i = 0; i < 200 + ARRAY_SIZE(more); i++) {
		len = i < 200 ? i : more[i - 200];
		rec = OSSUARY_HEADER_LEN + len + OSSUARY_TAG_LEN;
		seq = 0x0102030405060708ULL * i;
		ossuary_hdr_build(a, OSSUARY_RECORD_DATA,
				  len + OSSUARY_TAG_LEN);
		fill_pattern(a + OSSUARY_HEADER_LEN, len);
		memcpy(b, a, rec);
		sg_init_one(&sa, a, rec);
		sg_init_one(&sb, b, rec);

		KUNIT_ASSERT_EQ(test, ossuary_crypt(&k, true, &sa, &sa, len,
						    seq), 0);
		ossuary_nonce(iv, seq, nonce);
		aead_request_set_crypt(req, &sb, &sb, len, nonce);
		KUNIT_ASSERT_EQ(test, crypto_aead_encrypt(req), 0);
		KUNIT_EXPECT_MEMEQ_MSG(test, a, b, rec, "length %u", len);

		/* each opens the other's: the same record, so cross over */
		KUNIT_EXPECT_EQ(test, ossuary_crypt(&k, false, &sb, &sb,
						    len + OSSUARY_TAG_LEN,
						    seq), 0);
		aead_request_set_crypt(req, &sa, &sa, len + OSSUARY_TAG_LEN,
				       nonce);
		KUNIT_EXPECT_EQ(test, crypto_aead_decrypt(req), 0);
		KUNIT_EXPECT_MEMEQ(test, a, b, rec);
		cond_resched();
	}
	ossuary_keys_free(&k);
	aead_request_free(req);
	crypto_free_aead(tfm);
}

static struct kunit_case ossuary_test_cases[] = {
	KUNIT_CASE(ossuary_test_header),
	KUNIT_CASE(ossuary_test_nonce),
	KUNIT_CASE(ossuary_test_derive),
	KUNIT_CASE(ossuary_test_seal_small),
	KUNIT_CASE(ossuary_test_seal_split),
	KUNIT_CASE(ossuary_test_seal_pages),
	KUNIT_CASE(ossuary_test_seal_lent),
	KUNIT_CASE(ossuary_test_matches_crypto_api),
	{}
};

static struct kunit_suite ossuary_test_suite = {
	.name = "ossuary",
	.test_cases = ossuary_test_cases,
};

kunit_test_suite(ossuary_test_suite);

MODULE_DESCRIPTION("KUnit tests for the Ossuary record layer");
MODULE_LICENSE("GPL");
