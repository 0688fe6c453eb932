// SPDX-License-Identifier: GPL-2.0
/*
 * ossuary_aead_bench: the raw AEAD limit, no socket, two ways (issue 4).
 *
 * Seals and opens records as ossuary.ko does: the 4-byte record header
 * is the AAD, the tag is 16 bytes, the record image is order-0 pages
 * with the header at offset 0, records are sealed in place, and the
 * nonce is iv XOR (0^32 || be64(seq)).  Two ChaCha20-Poly1305 paths:
 *
 *   api  the crypto API, "rfc7539(chacha20,poly1305)", synchronous
 *        implementations only, the image as a page-sized scatterlist
 *        (what ossuary.ko does today);
 *   lib  the lib/crypto primitives, chacha_crypt() and poly1305_*(),
 *        composed here as RFC 8439 section 2.8 in one pass over the
 *        pages (lib/crypto's chacha20poly1305 takes a u64 nonce, which
 *        cannot carry ours).
 *
 * Before timing, both seal records of several lengths (ChaCha blocks and
 * tags across page boundaries, the configured length) and must agree
 * byte for byte; each must open the other's output, and refuse it once
 * one bit of it is flipped.  Otherwise loading fails with -EIO and a
 * message that says what differed.  The timed runs alternate between the
 * two paths in batches of BATCH records, so that a busy host weighs on
 * both alike.  Seals are in place with a new nonce per record; opens read
 * one sealed record and write the plaintext to another image.  A TCG
 * guest that cannot calibrate its TSC runs ktime on jiffies (4 ms at
 * HZ=250), too coarse for a batch: so batches are timed in get_cycles()
 * and the ktime of the whole run is shared out in proportion (ktime
 * alone where get_cycles() reads 0).
 *
 * Results, in ns for `records` records, go to the kernel log and to the
 * read-only parameters seal_ns, open_ns (api), lib_seal_ns, lib_open_ns.
 *
 *   insmod ossuary_aead_bench.ko [records=N] [rec_bytes=16384]
 *   cat /sys/module/ossuary_aead_bench/parameters/{,lib_}{seal,open}_ns
 *   rmmod ossuary_aead_bench
 *
 * A benchmark, not part of the product.
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/ktime.h>
#include <linux/math64.h>
#include <linux/mm.h>
#include <linux/scatterlist.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/timex.h>
#include <linux/unaligned.h>
#include <crypto/aead.h>
#include <crypto/chacha.h>
#include <crypto/poly1305.h>
#include <crypto/utils.h>

#define HDR 4
#define TAG 16
#define NONCE 12
#define MAXREC 16384
#define NPAGES DIV_ROUND_UP(HDR + MAXREC + TAG, PAGE_SIZE)
#define BATCH 32

static unsigned int records = 512;
module_param(records, uint, 0444);
MODULE_PARM_DESC(records, "records to seal and to open, per path");
static unsigned int rec_bytes = MAXREC;
module_param(rec_bytes, uint, 0444);
MODULE_PARM_DESC(rec_bytes, "plaintext bytes per record (1..16384)");
static unsigned long long seal_ns;
module_param(seal_ns, ullong, 0444);
MODULE_PARM_DESC(seal_ns, "result: ns to seal `records` records, crypto API");
static unsigned long long open_ns;
module_param(open_ns, ullong, 0444);
MODULE_PARM_DESC(open_ns, "result: ns to open `records` records, crypto API");
static unsigned long long lib_seal_ns;
module_param(lib_seal_ns, ullong, 0444);
MODULE_PARM_DESC(lib_seal_ns, "result: ns to seal `records` records, lib/crypto");
static unsigned long long lib_open_ns;
module_param(lib_open_ns, ullong, 0444);
MODULE_PARM_DESC(lib_open_ns, "result: ns to open `records` records, lib/crypto");
static char driver[CRYPTO_MAX_ALG_NAME];
module_param_string(driver, driver, sizeof(driver), 0444);
MODULE_PARM_DESC(driver, "result: the AEAD implementation the crypto API picked");

struct image {
	struct page *pages[NPAGES];
	struct scatterlist sg[NPAGES];
};

struct bench {
	struct crypto_aead *tfm;
	struct aead_request *req;
	/* lib: the key as the ChaCha state words that chacha_init() wants */
	u32 key[CHACHA_KEY_SIZE / sizeof(u32)];
	/* plaintext reference, a sealed record, a work image, open output */
	struct image pt, ct, wk, out;
};

static const u8 bench_iv[NONCE] = {
	0x6b, 0x1f, 0xa0, 0x93, 0x25, 0xd4, 0x70, 0x0e, 0xc8, 0x39, 0xb2, 0x5e,
};

static const u8 zero_pad[POLY1305_BLOCK_SIZE];

/* nonce = iv XOR (0x00000000 || be64(seq)), as ossuary_nonce() */
static void nonce_for(u8 *nonce, u64 seq)
{
	u8 s[8];
	int i;

	put_unaligned_be64(seq, s);
	memcpy(nonce, bench_iv, 4);
	for (i = 0; i < 8; i++)
		nonce[4 + i] = bench_iv[4 + i] ^ s[i];
}

static int image_alloc(struct image *im)
{
	unsigned int i;

	for (i = 0; i < NPAGES; i++) {
		im->pages[i] = alloc_page(GFP_KERNEL);
		if (!im->pages[i])
			return -ENOMEM;
		memset(page_address(im->pages[i]), 0x5a, PAGE_SIZE);
	}
	return 0;
}

static void image_free(struct image *im)
{
	unsigned int i;

	for (i = 0; i < NPAGES; i++)
		if (im->pages[i])
			__free_page(im->pages[i]);
}

/* Describe bytes [0, len) of the image in page-sized entries. */
static void image_sg(struct image *im, unsigned int len)
{
	unsigned int i, n = DIV_ROUND_UP(len, PAGE_SIZE);

	sg_init_table(im->sg, n);
	for (i = 0; i < n; i++)
		sg_set_page(&im->sg[i], im->pages[i],
			    min_t(unsigned int, len - i * PAGE_SIZE, PAGE_SIZE), 0);
}

static u8 *image_ptr(struct image *im, unsigned int off)
{
	return (u8 *)page_address(im->pages[off / PAGE_SIZE]) +
	       offset_in_page(off);
}

/* The bytes of [off, off + len) that lie in the page holding off. */
static unsigned int image_span(unsigned int off, unsigned int len)
{
	return min_t(unsigned int, len, PAGE_SIZE - offset_in_page(off));
}

static void image_write(struct image *im, unsigned int off, const u8 *src,
			unsigned int len)
{
	while (len) {
		unsigned int n = image_span(off, len);

		memcpy(image_ptr(im, off), src, n);
		src += n;
		off += n;
		len -= n;
	}
}

static void image_read(struct image *im, unsigned int off, u8 *dst,
		       unsigned int len)
{
	while (len) {
		unsigned int n = image_span(off, len);

		memcpy(dst, image_ptr(im, off), n);
		dst += n;
		off += n;
		len -= n;
	}
}

static void image_zero(struct image *im, unsigned int off, unsigned int len)
{
	while (len) {
		unsigned int n = image_span(off, len);

		memset(image_ptr(im, off), 0, n);
		off += n;
		len -= n;
	}
}

static void image_copy(struct image *dst, struct image *src, unsigned int len)
{
	unsigned int i;

	for (i = 0; i * PAGE_SIZE < len; i++)
		memcpy(page_address(dst->pages[i]), page_address(src->pages[i]),
		       min_t(unsigned int, len - i * PAGE_SIZE, PAGE_SIZE));
}

static bool image_equal(struct image *a, struct image *b, unsigned int off,
			unsigned int len)
{
	while (len) {
		unsigned int n = image_span(off, len);

		if (memcmp(image_ptr(a, off), image_ptr(b, off), n))
			return false;
		off += n;
		len -= n;
	}
	return true;
}

static void image_flip(struct image *im, unsigned int off)
{
	*image_ptr(im, off) ^= 0x04;
}

/* A DATA record header (version 2, type 0x20, body length) and a body. */
static void image_fill(struct image *im, unsigned int len)
{
	u8 hdr[HDR] = { 0x02, 0x20 };
	unsigned int off;

	put_unaligned_be16(len + TAG, hdr + 2);
	image_write(im, 0, hdr, HDR);
	for (off = HDR; off < HDR + len; off++)
		*image_ptr(im, off) = off * 167 + (off >> 8);
}

/*
 * api: seal (enc) or open one record of len plaintext bytes from src to
 * dst, as ossuary_crypt() does.  The scatterlists must describe the
 * whole image (image_sg()).
 */
static int api_crypt(struct bench *b, bool enc, struct image *src,
		     struct image *dst, unsigned int len, u64 seq)
{
	u8 nonce[NONCE];

	nonce_for(nonce, seq);
	aead_request_set_ad(b->req, HDR);
	aead_request_set_crypt(b->req, src->sg, dst->sg, enc ? len : len + TAG,
			       nonce);
	return enc ? crypto_aead_encrypt(b->req) : crypto_aead_decrypt(b->req);
}

/*
 * ChaCha20 from s to d over n bytes, carrying on the stream in state.
 * A page boundary falls inside a 64-byte block in general (the body
 * starts at offset 4), and chacha_crypt() spends a whole block on a
 * partial one: so whole blocks go to chacha_crypt(), and the keystream
 * of a block split by a page boundary is kept in ks, *ks_off being its
 * first unused byte (CHACHA_BLOCK_SIZE: none left).  The last call may
 * end inside a block.
 */
static void lib_chacha(u32 *state, u8 *ks, unsigned int *ks_off, u8 *d,
		       const u8 *s, unsigned int n, bool last)
{
	unsigned int l;

	if (*ks_off < CHACHA_BLOCK_SIZE) {
		l = min(n, CHACHA_BLOCK_SIZE - *ks_off);
		crypto_xor_cpy(d, s, ks + *ks_off, l);
		*ks_off += l;
		d += l;
		s += l;
		n -= l;
	}
	l = last ? n : round_down(n, CHACHA_BLOCK_SIZE);
	if (l)
		chacha20_crypt(state, d, s, l);
	if (n > l) {
		memset(ks, 0, CHACHA_BLOCK_SIZE);
		chacha20_crypt(state, ks, ks, CHACHA_BLOCK_SIZE);
		crypto_xor_cpy(d + l, s + l, ks, n - l);
		*ks_off = n - l;
	}
}

/*
 * lib: seal (enc) or open one record of len plaintext bytes from the
 * image src to the image dst (the same image: in place).  RFC 8439
 * section 2.8: the Poly1305 key is the first 32 bytes of keystream
 * block 0, the body is XORed with the keystream from block 1 on, and
 * the tag is Poly1305 over
 *   header || pad16 || ciphertext || pad16 || le64(4) || le64(len).
 * One pass: each page is encrypted then authenticated (authenticated
 * then decrypted) while it is in cache; an open that fails the tag
 * check wipes the plaintext it wrote.
 */
static int lib_crypt(const u32 *key, bool enc, struct image *src,
		     struct image *dst, unsigned int len, u64 seq)
{
	unsigned int off, end = HDR + len, ks_off = CHACHA_BLOCK_SIZE;
	u32 state[CHACHA_STATE_WORDS];
	struct poly1305_desc_ctx poly;
	u8 ks[CHACHA_BLOCK_SIZE];
	union {
		u8 iv[CHACHA_IV_SIZE];
		u8 otk[POLY1305_KEY_SIZE];
		u8 aad[POLY1305_BLOCK_SIZE];
		__le64 lens[2];
		u8 tag[2][TAG];
	} b;
	int err = 0;

	/* 32-bit block counter 0, then the 96-bit nonce */
	put_unaligned_le32(0, b.iv);
	nonce_for(b.iv + 4, seq);
	chacha_init(state, key, b.iv);
	memset(b.otk, 0, sizeof(b.otk));
	chacha20_crypt(state, b.otk, b.otk, sizeof(b.otk));
	poly1305_init(&poly, b.otk);

	/* the AAD, padded to 16 bytes */
	memset(b.aad, 0, sizeof(b.aad));
	memcpy(b.aad, image_ptr(src, 0), HDR);
	poly1305_update(&poly, b.aad, sizeof(b.aad));

	for (off = HDR; off < end; ) {
		unsigned int n = image_span(off, end - off);
		const u8 *s = image_ptr(src, off);
		u8 *d = image_ptr(dst, off);

		if (!enc)
			poly1305_update(&poly, s, n);
		lib_chacha(state, ks, &ks_off, d, s, n, off + n == end);
		if (enc)
			poly1305_update(&poly, d, n);
		off += n;
	}
	if (len % POLY1305_BLOCK_SIZE)
		poly1305_update(&poly, zero_pad,
				POLY1305_BLOCK_SIZE - len % POLY1305_BLOCK_SIZE);
	b.lens[0] = cpu_to_le64(HDR);
	b.lens[1] = cpu_to_le64(len);
	poly1305_update(&poly, (u8 *)b.lens, sizeof(b.lens));
	poly1305_final(&poly, b.tag[0]);

	if (enc) {
		image_write(dst, end, b.tag[0], TAG);
	} else {
		image_read(src, end, b.tag[1], TAG);
		if (crypto_memneq(b.tag[0], b.tag[1], TAG)) {
			image_zero(dst, HDR, len);
			err = -EBADMSG;
		}
	}
	memzero_explicit(state, sizeof(state));
	memzero_explicit(ks, sizeof(ks));
	memzero_explicit(&b, sizeof(b));
	return err;
}

/*
 * Both paths on one record of len bytes: the sealed records must be
 * identical, each path must open the other's, lib must open in place
 * too, and both must refuse a flipped bit in the header, the body or the
 * tag, or the wrong sequence number.  Returns what went wrong, or NULL.
 */
static const char *check_len(struct bench *b, unsigned int len, u64 seq)
{
	unsigned int img = HDR + len + TAG, i;
	const unsigned int flips[] = { 0, HDR, HDR + len - 1, HDR + len,
				       img - 1 };

	image_fill(&b->pt, len);
	image_copy(&b->ct, &b->pt, img);
	image_copy(&b->wk, &b->pt, img);
	image_sg(&b->ct, img);
	image_sg(&b->wk, img);
	image_sg(&b->out, img);

	if (api_crypt(b, true, &b->ct, &b->ct, len, seq))
		return "crypto API seal failed";
	if (lib_crypt(b->key, true, &b->wk, &b->wk, len, seq))
		return "lib seal failed";
	if (!image_equal(&b->ct, &b->wk, 0, img))
		return "the sealed records differ";
	if (lib_crypt(b->key, false, &b->ct, &b->out, len, seq) ||
	    !image_equal(&b->out, &b->pt, HDR, len))
		return "lib does not open the crypto API's record";
	image_zero(&b->out, HDR, len);
	if (api_crypt(b, false, &b->wk, &b->out, len, seq) ||
	    !image_equal(&b->out, &b->pt, HDR, len))
		return "the crypto API does not open lib's record";
	if (lib_crypt(b->key, false, &b->wk, &b->wk, len, seq) ||
	    !image_equal(&b->wk, &b->pt, 0, HDR + len))
		return "lib does not open in place";
	for (i = 0; i < ARRAY_SIZE(flips); i++) {
		image_flip(&b->ct, flips[i]);
		if (lib_crypt(b->key, false, &b->ct, &b->out, len, seq) !=
		    -EBADMSG)
			return "lib opens a record with a flipped bit";
		if (api_crypt(b, false, &b->ct, &b->out, len, seq) != -EBADMSG)
			return "the crypto API opens a record with a flipped bit";
		image_flip(&b->ct, flips[i]);
	}
	if (lib_crypt(b->key, false, &b->ct, &b->out, len, seq + 1) !=
	    -EBADMSG)
		return "lib opens a record under the wrong nonce";
	return NULL;
}

static int check(struct bench *b)
{
	/* page boundaries split a ChaCha block (4092 = 63 * 64 + 60), a
	 * tag straddles a page at 4077..4091, 4092 ends the first page
	 */
	static const unsigned int lens[] = {
		1, 15, 16, 17, 63, 64, 65, 1024, 4076, 4080, 4091, 4092,
		4093, 4095, 4096, 4097, 4155, 4156, 8187, 8188, 8189, 12345,
		MAXREC - 1, MAXREC, 0,
	};
	unsigned int i;
	const char *why;

	for (i = 0; i < ARRAY_SIZE(lens); i++) {
		unsigned int len = lens[i] ? lens[i] : rec_bytes;

		why = check_len(b, len, 0x0123456789abcdefULL + i);
		if (why) {
			pr_err("ossuary_aead_bench: lib/crypto vs %s, %u-byte record: %s; no numbers reported\n",
			       driver, len, why);
			return -EIO;
		}
	}
	return 0;
}

enum { API_SEAL, LIB_SEAL, API_OPEN, LIB_OPEN, NRUNS };

static int run(struct bench *b, int what, unsigned int first, unsigned int n)
{
	unsigned int i;
	int err = 0;

	for (i = first; i < first + n && !err; i++) {
		switch (what) {
		case API_SEAL:
			err = api_crypt(b, true, &b->wk, &b->wk, rec_bytes, i);
			break;
		case LIB_SEAL:
			err = lib_crypt(b->key, true, &b->wk, &b->wk, rec_bytes,
					i);
			break;
		case API_OPEN:
			err = api_crypt(b, false, &b->ct, &b->out, rec_bytes, 0);
			break;
		default:
			err = lib_crypt(b->key, false, &b->ct, &b->out,
					rec_bytes, 0);
			break;
		}
		cond_resched();
	}
	return err;
}

static int bench_setup(struct bench *b)
{
	u8 key[CHACHA_KEY_SIZE];
	unsigned int i;
	int err;

	err = image_alloc(&b->pt);
	if (!err)
		err = image_alloc(&b->ct);
	if (!err)
		err = image_alloc(&b->wk);
	if (!err)
		err = image_alloc(&b->out);
	if (err)
		return err;
	b->tfm = crypto_alloc_aead("rfc7539(chacha20,poly1305)", 0,
				   CRYPTO_ALG_ASYNC);
	if (IS_ERR(b->tfm)) {
		err = PTR_ERR(b->tfm);
		b->tfm = NULL;
		return err;
	}
	strscpy(driver, crypto_tfm_alg_driver_name(crypto_aead_tfm(b->tfm)),
		sizeof(driver));
	for (i = 0; i < sizeof(key); i++)
		key[i] = 0x80 + i * 3;
	for (i = 0; i < ARRAY_SIZE(b->key); i++)
		b->key[i] = get_unaligned_le32(key + i * 4);
	err = crypto_aead_setkey(b->tfm, key, sizeof(key));
	if (!err)
		err = crypto_aead_setauthsize(b->tfm, TAG);
	if (err)
		return err;
	b->req = aead_request_alloc(b->tfm, GFP_KERNEL);
	if (!b->req)
		return -ENOMEM;
	aead_request_set_callback(b->req, 0, NULL, NULL);
	return 0;
}

static void bench_free(struct bench *b)
{
	image_free(&b->pt);
	image_free(&b->ct);
	image_free(&b->wk);
	image_free(&b->out);
	aead_request_free(b->req);
	crypto_free_aead(b->tfm);
	kfree(b);
}

static int __init aead_bench_init(void)
{
	u64 ns[NRUNS] = { 0 }, cyc[NRUNS] = { 0 }, all_cyc = 0, all_ns;
	unsigned int done, n, j, img = HDR + rec_bytes + TAG;
	struct bench *b;
	ktime_t t0, start;
	cycles_t c0;
	int err;

	if (!rec_bytes || rec_bytes > MAXREC || !records)
		return -EINVAL;
	b = kzalloc(sizeof(*b), GFP_KERNEL);
	if (!b)
		return -ENOMEM;
	err = bench_setup(b);
	if (!err)
		err = check(b);
	if (err)
		goto out;

	/* the record that the opens read; wk is sealed over and over */
	image_fill(&b->ct, rec_bytes);
	image_sg(&b->ct, img);
	image_sg(&b->wk, img);
	image_sg(&b->out, img);
	err = api_crypt(b, true, &b->ct, &b->ct, rec_bytes, 0);
	if (err)
		goto out;

	/* in every other batch lib goes first */
	start = ktime_get();
	for (done = 0; done < records; done += n) {
		n = min(records - done, BATCH);
		for (j = 0; j < NRUNS; j++) {
			int what = (done / BATCH) & 1 ? j ^ 1 : j;

			t0 = ktime_get();
			c0 = get_cycles();
			err = run(b, what, done, n);
			cyc[what] += get_cycles() - c0;
			ns[what] += ktime_to_ns(ktime_sub(ktime_get(), t0));
			if (err)
				goto out;
		}
	}
	all_ns = ktime_to_ns(ktime_sub(ktime_get(), start));
	for (j = 0; j < NRUNS; j++)
		all_cyc += cyc[j];
	for (j = 0; all_cyc && j < NRUNS; j++)
		ns[j] = mul_u64_u64_div_u64(cyc[j], all_ns, all_cyc);
	seal_ns = ns[API_SEAL];
	open_ns = ns[API_OPEN];
	lib_seal_ns = ns[LIB_SEAL];
	lib_open_ns = ns[LIB_OPEN];
	pr_info("ossuary_aead_bench: %u records of %u bytes: %s seal %llu ns, open %llu ns; lib seal %llu ns, open %llu ns\n",
		records, rec_bytes, driver, seal_ns, open_ns, lib_seal_ns,
		lib_open_ns);
out:
	bench_free(b);
	return err;
}

static void __exit aead_bench_exit(void)
{
}

module_init(aead_bench_init);
module_exit(aead_bench_exit);
MODULE_DESCRIPTION("Ossuary benchmark: ChaCha20-Poly1305 seal/open, crypto API vs lib/crypto");
MODULE_LICENSE("GPL");
