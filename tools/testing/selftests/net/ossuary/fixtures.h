/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The two fixtures the socket kselftests share (include after
 * kselftest_harness.h), each with IPv4 and IPv6 variants:
 *   FIXTURE(ossuary): a connected pair, both ends offloaded (the kernel
 *                     seals and the kernel opens).
 *   FIXTURE(raw):     one end offloaded, the other plain TCP; the test
 *                     seals and opens records itself (wire.c, libsodium),
 *                     so every byte the kernel writes or must read is
 *                     checked against PROTOCOL.md.
 */
#ifndef OSSUARY_SELFTEST_FIXTURES_H
#define OSSUARY_SELFTEST_FIXTURES_H

#define REQUIRE_OSSUARY() do {						\
	if (oss_ulp_listed() != 1)					\
		SKIP(return, "ossuary ULP not registered (module not loaded)"); \
} while (0)

FIXTURE(ossuary)
{
	int fd;		/* client: TX secret A, RX secret B */
	int cfd;	/* server: RX secret A, TX secret B */
};

FIXTURE_VARIANT(ossuary)
{
	int family;
};

FIXTURE_VARIANT_ADD(ossuary, ipv4)
{
	.family = AF_INET,
};

FIXTURE_VARIANT_ADD(ossuary, ipv6)
{
	.family = AF_INET6,
};

FIXTURE_SETUP(ossuary)
{
	const char *step;
	int ret;

	self->fd = self->cfd = -1;
	REQUIRE_OSSUARY();
	ret = oss_offloaded_pair(variant->family, &self->fd, &self->cfd, &step);
	ASSERT_EQ(0, ret) TH_LOG("%s: %s", step, strerror(-ret));
}

FIXTURE_TEARDOWN(ossuary)
{
	oss_close_pair(&self->fd, &self->cfd);
}

FIXTURE(raw)
{
	int kfd;		/* offloaded: TX secret A, RX secret B */
	int pfd;		/* plain TCP peer: the test's own record layer */
	struct wire_dir to_k;	/* peer -> kernel (B) */
	struct wire_dir from_k;	/* kernel -> peer (A) */
};

FIXTURE_VARIANT(raw)
{
	int family;
};

FIXTURE_VARIANT_ADD(raw, ipv4)
{
	.family = AF_INET,
};

FIXTURE_VARIANT_ADD(raw, ipv6)
{
	.family = AF_INET6,
};

FIXTURE_SETUP(raw)
{
	const char *step;
	int ret;

	self->kfd = self->pfd = -1;
	ASSERT_EQ(0, wire_init());
	REQUIRE_OSSUARY();
	ret = oss_raw_pair(variant->family, &self->kfd, &self->pfd, &step);
	ASSERT_EQ(0, ret) TH_LOG("%s: %s", step, strerror(-ret));
	wire_dir_init(&self->from_k, oss_secret_a(), 0);
	wire_dir_init(&self->to_k, oss_secret_b(), 0);
}

FIXTURE_TEARDOWN(raw)
{
	oss_close_pair(&self->kfd, &self->pfd);
}

#endif /* OSSUARY_SELFTEST_FIXTURES_H */
