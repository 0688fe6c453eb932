// SPDX-License-Identifier: GPL-2.0
/*
 * ossuary_aead_bench: the raw AEAD limit, no socket.
 *
 * Seals and opens 16 KiB records the way ossuary.ko does (crypto API
 * "rfc7539(chacha20,poly1305)", synchronous implementations only, the
 * 4-byte record header as AAD, a 16-byte tag, the record image in
 * page-sized scatterlist entries, sealed in place) and times it with
 * ktime. The result is in the kernel log and in the read-only
 * parameters seal_ns and open_ns (nanoseconds for `records` records).
 *
 *   insmod ossuary_aead_bench.ko [records=N] [rec_bytes=16384]
 *   cat /sys/module/ossuary_aead_bench/parameters/{seal_ns,open_ns}
 *   rmmod ossuary_aead_bench
 *
 * A benchmark, not part of the product.
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/ktime.h>
#include <linux/mm.h>
#include <linux/scatterlist.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <crypto/aead.h>

#define HDR 4
#define TAG 16
#define MAXREC 16384
#define NPAGES DIV_ROUND_UP(HDR + MAXREC + TAG, PAGE_SIZE)

static unsigned int records = 512;
module_param(records, uint, 0444);
MODULE_PARM_DESC(records, "records to seal and to open");
static unsigned int rec_bytes = MAXREC;
module_param(rec_bytes, uint, 0444);
MODULE_PARM_DESC(rec_bytes, "plaintext bytes per record (1..16384)");
static unsigned long long seal_ns;
module_param(seal_ns, ullong, 0444);
MODULE_PARM_DESC(seal_ns, "result: ns to seal `records` records");
static unsigned long long open_ns;
module_param(open_ns, ullong, 0444);
MODULE_PARM_DESC(open_ns, "result: ns to open `records` records");
static char driver[CRYPTO_MAX_ALG_NAME];
module_param_string(driver, driver, sizeof(driver), 0444);
MODULE_PARM_DESC(driver, "result: the AEAD implementation the crypto API picked");

struct image {
	struct page *pages[NPAGES];
	struct scatterlist sg[NPAGES];
};

static int image_alloc(struct image *im, unsigned int len)
{
	unsigned int i, n = DIV_ROUND_UP(len, PAGE_SIZE);

	sg_init_table(im->sg, n);
	for (i = 0; i < n; i++) {
		im->pages[i] = alloc_page(GFP_KERNEL);
		if (!im->pages[i])
			return -ENOMEM;
		memset(page_address(im->pages[i]), 0x5a, PAGE_SIZE);
		sg_set_page(&im->sg[i], im->pages[i],
			    min_t(unsigned int, len - i * PAGE_SIZE, PAGE_SIZE), 0);
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

static void nonce_for(u8 *nonce, u64 seq)
{
	__be64 s = cpu_to_be64(seq);

	memset(nonce, 0x11, 4);
	memcpy(nonce + 4, &s, 8);
}

static int __init aead_bench_init(void)
{
	struct image *ct = NULL, *wk = NULL;
	struct crypto_aead *tfm;
	struct aead_request *req = NULL;
	u8 key[32], nonce[12];
	unsigned int i, len;
	ktime_t t0;
	int err;

	if (!rec_bytes || rec_bytes > MAXREC || !records)
		return -EINVAL;
	len = HDR + rec_bytes + TAG;
	tfm = crypto_alloc_aead("rfc7539(chacha20,poly1305)", 0, CRYPTO_ALG_ASYNC);
	if (IS_ERR(tfm))
		return PTR_ERR(tfm);
	strscpy(driver, crypto_tfm_alg_driver_name(crypto_aead_tfm(tfm)),
		sizeof(driver));
	memset(key, 0x42, sizeof(key));
	err = crypto_aead_setkey(tfm, key, sizeof(key));
	if (!err)
		err = crypto_aead_setauthsize(tfm, TAG);
	if (err)
		goto out;
	req = aead_request_alloc(tfm, GFP_KERNEL);
	ct = kzalloc(sizeof(*ct), GFP_KERNEL);
	wk = kzalloc(sizeof(*wk), GFP_KERNEL);
	if (!req || !ct || !wk) {
		err = -ENOMEM;
		goto out;
	}
	err = image_alloc(ct, len);
	if (!err)
		err = image_alloc(wk, len);
	if (err)
		goto out;
	aead_request_set_callback(req, 0, NULL, NULL);
	aead_request_set_ad(req, HDR);

	/* seal in place, a new nonce per record, as the TX path does */
	t0 = ktime_get();
	for (i = 0; i < records; i++) {
		nonce_for(nonce, i);
		aead_request_set_crypt(req, wk->sg, wk->sg, rec_bytes, nonce);
		err = crypto_aead_encrypt(req);
		if (err)
			goto out;
		cond_resched();
	}
	seal_ns = ktime_to_ns(ktime_sub(ktime_get(), t0));

	/* one genuine record to open, out of place so it can be reopened */
	nonce_for(nonce, 0);
	aead_request_set_crypt(req, ct->sg, ct->sg, rec_bytes, nonce);
	err = crypto_aead_encrypt(req);
	if (err)
		goto out;
	t0 = ktime_get();
	for (i = 0; i < records; i++) {
		nonce_for(nonce, 0);
		aead_request_set_crypt(req, ct->sg, wk->sg, rec_bytes + TAG, nonce);
		err = crypto_aead_decrypt(req);
		if (err)
			goto out;
		cond_resched();
	}
	open_ns = ktime_to_ns(ktime_sub(ktime_get(), t0));

	pr_info("ossuary_aead_bench: %s: %u records of %u bytes: seal %llu ns, open %llu ns\n",
		driver, records, rec_bytes, seal_ns, open_ns);
out:
	if (ct)
		image_free(ct);
	if (wk)
		image_free(wk);
	kfree(ct);
	kfree(wk);
	aead_request_free(req);
	crypto_free_aead(tfm);
	return err;
}

static void __exit aead_bench_exit(void)
{
}

module_init(aead_bench_init);
module_exit(aead_bench_exit);
MODULE_DESCRIPTION("Ossuary benchmark: raw ChaCha20-Poly1305 seal/open of 16 KiB records");
MODULE_LICENSE("GPL");
