// SPDX-License-Identifier: GPL-2.0
/*
 * Ossuary record layer against the independent vectors in
 * vectors/ (records.json, negative.json), read at run time.
 *
 * The JSON is flattened to one record per line by a few lines of
 * python3 (the VM runs the host's userland), so no vector byte is ever
 * pasted into this file. Location: $OSSUARY_VECTORS, else the path the
 * Makefile compiled in (OSS_VECTORS_DIR).
 */
#include "common.h"
#include "wire.h"

#include "kselftest_harness.h"

#ifndef OSS_VECTORS_DIR
#define OSS_VECTORS_DIR "vectors"
#endif

#define RD_TIMEOUT_S 2

static const char loader_py[] =
"import json, os, sys\n"
"d = sys.argv[1]\n"
"def h(x):\n"
"    return x if x else '-'\n"
"r = json.load(open(os.path.join(d, 'records.json')))\n"
"print('SECRET', r['traffic_secret'])\n"
"print('KEYIV', r['key'], r['iv'])\n"
"for c in r['next_chain']:\n"
"    print('CHAIN', c['secret'], c['key'], c['iv'])\n"
"for x in r['records']:\n"
"    print('REC', x['type'], x['seq_be64'], h(x['plaintext']), x['record'])\n"
"s = r['stream']\n"
"print('STREAM', s['secret'], s['stream'], h(s['delivered']))\n"
"for x in s['records']:\n"
"    print('SREC', x['secret'].replace(' ', ''), x['seq'], x['type'], h(x['plaintext']), x['record'])\n"
"n = json.load(open(os.path.join(d, 'negative.json')))\n"
"ctx = n['contexts']\n"
"for v in n['vectors']:\n"
"    c = ctx[v['context']]\n"
"    if c['stage'] != 'established':\n"
"        continue\n"
"    print('NEG', v['name'], v['context'], c['recv_secret'], c['recv_seq_be64'],\n"
"          c['send_secret'], c['send_seq_be64'], int(bool(c['reset_sent'])),\n"
"          h(v['stream']), h(v['delivered']), int(v['fails_before_eof']),\n"
"          v['error'], v['error_response'] if v['error_response'] is not None else 'null')\n"
"b = n['bitflips']\n"
"c = ctx[b['context']]\n"
"print('BITCTX', c['recv_secret'], c['recv_seq_be64'], c['send_secret'], c['send_seq_be64'], b['record'])\n"
"for f in b['flips']:\n"
"    print('FLIP', f['byte'], f['bit'], f['stream'], int(f['fails_before_eof']))\n"
"print('END')\n";

struct vrec {
	int type;
	uint64_t seq;
	uint8_t *pt;
	size_t pt_len;
	uint8_t *rec;
	size_t rec_len;
};

struct vneg {
	char name[64];
	char context[64];
	char error[32];
	uint8_t recv_secret[32], send_secret[32];
	uint64_t recv_seq, send_seq;
	int reset_sent;
	uint8_t *stream;
	size_t stream_len;
	uint8_t *delivered;
	size_t delivered_len;
	int fails_before_eof;
	uint8_t *response;	/* NULL: left open by the brief */
	size_t response_len;
};

struct vflip {
	int byte, bit;
	uint8_t *stream;
	size_t stream_len;
	int fails_before_eof;
};

struct vectors {
	uint8_t secret[32], key[32], iv[12];
	uint8_t chain[3][3][32];	/* secret, key, iv */
	int n_chain;
	struct vrec recs[128];
	int n_recs;
	uint8_t stream_secret[32];
	uint8_t *stream;
	size_t stream_len;
	uint8_t *stream_delivered;
	size_t stream_delivered_len;
	struct vrec srecs[8];
	char srec_label[8][32];
	int n_srecs;
	struct vneg negs[64];
	int n_negs;
	uint8_t bit_recv[32], bit_send[32];
	uint64_t bit_recv_seq, bit_send_seq;
	uint8_t *bit_record;
	size_t bit_record_len;
	struct vflip flips[256];
	int n_flips;
	bool complete;
};

static uint8_t *unhex_dup(const char *hex, size_t *len)
{
	size_t n = strlen(hex);
	uint8_t *p;

	if (!strcmp(hex, "-")) {
		*len = 0;
		return calloc(1, 1);
	}
	p = malloc(n / 2 + 1);
	if (!p || wire_unhex(hex, p, n / 2) < 0) {
		free(p);
		return NULL;
	}
	*len = n / 2;
	return p;
}

static int unhex_fixed(const char *hex, uint8_t *out, size_t len)
{
	return wire_unhex(hex, out, len) == (ssize_t)len ? 0 : -1;
}

static uint64_t be64_hex(const char *hex)
{
	return strtoull(hex, NULL, 16);
}

static const char *vectors_dir(void)
{
	const char *d = getenv("OSSUARY_VECTORS");

	return d && *d ? d : OSS_VECTORS_DIR;
}

/* Returns NULL and logs on any problem; the caller asserts */
static struct vectors *load_vectors(char *why, size_t why_len)
{
	struct vectors *v = calloc(1, sizeof(*v));
	char path[256], *line = NULL, *tok[16], *save;
	size_t cap = 0, len;
	ssize_t n;
	FILE *p;
	int fd;

	snprintf(path, sizeof(path), "/tmp/ossuary-vec-loader-%d.py", getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, loader_py, strlen(loader_py)) !=
	    (ssize_t)strlen(loader_py)) {
		snprintf(why, why_len, "cannot write %.200s", path);
		return NULL;
	}
	close(fd);
	{
		char cmd[8192 + 256];

		snprintf(cmd, sizeof(cmd), "python3 '%s' '%s'", path,
			 vectors_dir());
		p = popen(cmd, "r");
	}
	if (!p) {
		snprintf(why, why_len, "popen python3 failed");
		return NULL;
	}
	while ((n = getline(&line, &cap, p)) > 0) {
		int nt = 0;

		if (line[n - 1] == '\n')
			line[n - 1] = 0;
		for (char *t = strtok_r(line, " ", &save); t && nt < 16;
		     t = strtok_r(NULL, " ", &save))
			tok[nt++] = t;
		if (!nt)
			continue;
		if (!strcmp(tok[0], "SECRET") && nt == 2) {
			unhex_fixed(tok[1], v->secret, 32);
		} else if (!strcmp(tok[0], "KEYIV") && nt == 3) {
			unhex_fixed(tok[1], v->key, 32);
			unhex_fixed(tok[2], v->iv, 12);
		} else if (!strcmp(tok[0], "CHAIN") && nt == 4 && v->n_chain < 3) {
			unhex_fixed(tok[1], v->chain[v->n_chain][0], 32);
			unhex_fixed(tok[2], v->chain[v->n_chain][1], 32);
			unhex_fixed(tok[3], v->chain[v->n_chain][2], 12);
			v->n_chain++;
		} else if (!strcmp(tok[0], "REC") && nt == 5 && v->n_recs < 128) {
			struct vrec *r = &v->recs[v->n_recs++];

			r->type = atoi(tok[1]);
			r->seq = be64_hex(tok[2]);
			r->pt = unhex_dup(tok[3], &r->pt_len);
			r->rec = unhex_dup(tok[4], &r->rec_len);
		} else if (!strcmp(tok[0], "STREAM") && nt == 4) {
			unhex_fixed(tok[1], v->stream_secret, 32);
			v->stream = unhex_dup(tok[2], &v->stream_len);
			v->stream_delivered = unhex_dup(tok[3],
							&v->stream_delivered_len);
		} else if (!strcmp(tok[0], "SREC") && nt == 6 && v->n_srecs < 8) {
			struct vrec *r = &v->srecs[v->n_srecs];

			snprintf(v->srec_label[v->n_srecs], 32, "%s", tok[1]);
			r->seq = strtoull(tok[2], NULL, 10);
			r->type = atoi(tok[3]);
			r->pt = unhex_dup(tok[4], &r->pt_len);
			r->rec = unhex_dup(tok[5], &r->rec_len);
			v->n_srecs++;
		} else if (!strcmp(tok[0], "NEG") && nt == 13 && v->n_negs < 64) {
			struct vneg *g = &v->negs[v->n_negs++];

			snprintf(g->name, sizeof(g->name), "%s", tok[1]);
			snprintf(g->context, sizeof(g->context), "%s", tok[2]);
			unhex_fixed(tok[3], g->recv_secret, 32);
			g->recv_seq = be64_hex(tok[4]);
			unhex_fixed(tok[5], g->send_secret, 32);
			g->send_seq = be64_hex(tok[6]);
			g->reset_sent = atoi(tok[7]);
			g->stream = unhex_dup(tok[8], &g->stream_len);
			g->delivered = unhex_dup(tok[9], &g->delivered_len);
			g->fails_before_eof = atoi(tok[10]);
			snprintf(g->error, sizeof(g->error), "%s", tok[11]);
			if (strcmp(tok[12], "null"))
				g->response = unhex_dup(tok[12],
							&g->response_len);
		} else if (!strcmp(tok[0], "BITCTX") && nt == 6) {
			unhex_fixed(tok[1], v->bit_recv, 32);
			v->bit_recv_seq = be64_hex(tok[2]);
			unhex_fixed(tok[3], v->bit_send, 32);
			v->bit_send_seq = be64_hex(tok[4]);
			v->bit_record = unhex_dup(tok[5], &v->bit_record_len);
		} else if (!strcmp(tok[0], "FLIP") && nt == 5 && v->n_flips < 256) {
			struct vflip *f = &v->flips[v->n_flips++];

			f->byte = atoi(tok[1]);
			f->bit = atoi(tok[2]);
			f->stream = unhex_dup(tok[3], &f->stream_len);
			f->fails_before_eof = atoi(tok[4]);
		} else if (!strcmp(tok[0], "END")) {
			v->complete = true;
		} else {
			snprintf(why, why_len, "unexpected loader line '%s' (%d fields)",
				 tok[0], nt);
			pclose(p);
			unlink(path);
			return NULL;
		}
	}
	free(line);
	len = pclose(p);
	unlink(path);
	if (!v->complete || len) {
		snprintf(why, why_len, "loading %s failed (python3 status %zu)",
			 vectors_dir(), len);
		return NULL;
	}
	return v;
}

/* -------- the helper's own check: wire.c reproduces records.json -------- */

TEST(wire_reproduces_records_json)
{
	char why[256] = "";
	struct vectors *v;
	struct wire_dir d;
	uint8_t out[WIRE_MAX_REC + 64];
	int data = 0;

	ASSERT_EQ(0, wire_init());
	v = load_vectors(why, sizeof(why));
	ASSERT_NE(NULL, v) TH_LOG("%s", why);
	/* the counts the files promise, so an empty file cannot pass */
	ASSERT_EQ(86, v->n_recs);
	ASSERT_EQ(3, v->n_chain);
	ASSERT_EQ(4, v->n_srecs);
	ASSERT_EQ(200, v->n_flips);
	ASSERT_GE(v->n_negs, 30);

	wire_dir_init(&d, v->secret, 0);
	EXPECT_EQ(0, memcmp(d.key, v->key, 32));
	EXPECT_EQ(0, memcmp(d.iv, v->iv, 12));
	for (int i = 0; i < v->n_chain; i++) {
		EXPECT_EQ(0, memcmp(d.secret, v->chain[i][0], 32)) TH_LOG("chain %d", i);
		EXPECT_EQ(0, memcmp(d.key, v->chain[i][1], 32)) TH_LOG("chain %d", i);
		EXPECT_EQ(0, memcmp(d.iv, v->chain[i][2], 12)) TH_LOG("chain %d", i);
		wire_dir_next(&d);
	}
	for (int i = 0; i < v->n_recs; i++) {
		struct vrec *r = &v->recs[i];
		uint8_t pt[WIRE_MAX_PT + 16], type;
		size_t n;

		wire_dir_init(&d, v->secret, r->seq);
		n = wire_seal(&d, r->type, r->pt, r->pt_len, out);
		ASSERT_EQ(r->rec_len, n) TH_LOG("record %d", i);
		EXPECT_EQ(0, memcmp(out, r->rec, n)) TH_LOG("record %d", i);
		wire_dir_init(&d, v->secret, r->seq);
		ASSERT_EQ((ssize_t)r->pt_len, wire_open(&d, r->rec, r->rec_len, pt, &type));
		EXPECT_EQ(r->type, type);
		data += r->type == OSSUARY_RECORD_DATA;
	}
	EXPECT_EQ(42, data);
	/* the 4-record stream, with the key update in the middle */
	wire_dir_init(&d, v->stream_secret, 0);
	for (int i = 0; i < v->n_srecs; i++) {
		struct vrec *r = &v->srecs[i];
		size_t n = wire_seal(&d, r->type, r->pt, r->pt_len, out);

		EXPECT_EQ(0, memcmp(out, r->rec, n)) TH_LOG("stream record %d", i);
		if (r->type == OSSUARY_RECORD_KEY_UPDATE)
			wire_dir_next(&d);
	}
	/* the fifth-reset vector's reply is DISCONNECT(1) sealed at send seq */
	for (int i = 0; i < v->n_negs; i++) {
		struct vneg *g = &v->negs[i];
		uint8_t one = 1;

		if (!g->response)
			continue;
		wire_dir_init(&d, g->send_secret, g->send_seq);
		ASSERT_EQ(g->response_len,
			  wire_seal(&d, OSSUARY_RECORD_DISCONNECT, &one, 1, out));
		EXPECT_EQ(0, memcmp(out, g->response, g->response_len))
			TH_LOG("%s response", g->name);
	}
}

/* ------------------------ against the kernel ------------------------ */

FIXTURE(vec)
{
	struct vectors *v;
};

FIXTURE_VARIANT(vec)
{
	int family;
};

FIXTURE_VARIANT_ADD(vec, ipv4)
{
	.family = AF_INET,
};

FIXTURE_VARIANT_ADD(vec, ipv6)
{
	.family = AF_INET6,
};

FIXTURE_SETUP(vec)
{
	char why[256] = "";

	self->v = NULL;
	ASSERT_EQ(0, wire_init());
	if (oss_ulp_listed() != 1)
		SKIP(return, "ossuary ULP not registered (module not loaded)");
	self->v = load_vectors(why, sizeof(why));
	ASSERT_NE(NULL, self->v) TH_LOG("%s", why);
}

FIXTURE_TEARDOWN(vec)
{
}

/*
 * The long walks over every vector run once, over IPv4: the record layer
 * does not depend on the address family (records.c has both).
 */
FIXTURE(vec4)
{
	struct vectors *v;
};

FIXTURE_SETUP(vec4)
{
	char why[256] = "";

	self->v = NULL;
	ASSERT_EQ(0, wire_init());
	if (oss_ulp_listed() != 1)
		SKIP(return, "ossuary ULP not registered (module not loaded)");
	self->v = load_vectors(why, sizeof(why));
	ASSERT_NE(NULL, self->v) TH_LOG("%s", why);
}

FIXTURE_TEARDOWN(vec4)
{
}

/*
 * An offloaded socket (*kfd: RX with rs/rseq, TX with ss/sseq; either
 * secret may be NULL) and its plain peer (*pfd).
 */
static int offloaded_pair(int family, const uint8_t *rs, uint64_t rseq,
			  const uint8_t *ss, uint64_t sseq, int *kfd, int *pfd)
{
	int ret = oss_tcp_pair(family, kfd, pfd);

	if (ret)
		return ret;
	oss_set_timeouts(*kfd, RD_TIMEOUT_S);
	oss_set_timeouts(*pfd, RD_TIMEOUT_S);
	oss_nodelay(*pfd);
	oss_nodelay(*kfd);
	ret = oss_attach(*kfd);
	if (!ret && rs)
		ret = oss_install(*kfd, OSSUARY_RX, rs, rseq);
	if (!ret && ss)
		ret = oss_install(*kfd, OSSUARY_TX, ss, sseq);
	if (ret) {
		close(*kfd);
		close(*pfd);
	}
	return ret;
}

/*
 * Write raw bytes from the plain side; stops quietly at the first error.
 * Byte by byte covers the first 512 bytes (every header and record
 * boundary of the short vectors); the rest of a long one goes in one
 * write, or the 16 KiB vectors would cost 16k syscalls on a slow VM.
 */
#define FEED_BYTEWISE_MAX 512

static void feed(int fd, const uint8_t *p, size_t len, bool bytewise)
{
	size_t i = 0;

	if (bytewise) {
		for (; i < len && i < FEED_BYTEWISE_MAX; i++)
			if (send(fd, p + i, 1, MSG_NOSIGNAL) != 1)
				return;
	}
	if (i < len)
		oss_write_all(fd, p + i, len - i);
}

/*
 * Read until the socket reports something other than data. Returns the
 * bytes delivered; *rc = 0 for EOF, an errno, or EAGAIN on timeout.
 */
static size_t drain(int fd, uint8_t *buf, size_t cap, int *rc)
{
	size_t got = 0;

	for (;;) {
		ssize_t n = recv(fd, buf + got, cap - got, 0);

		if (n > 0) {
			got += n;
			if (got == cap) {
				*rc = ENOBUFS;
				return got;
			}
			continue;
		}
		if (n == 0) {
			*rc = 0;
			return got;
		}
		if (errno == EINTR)
			continue;
		*rc = errno;
		return got;
	}
}

TEST_F(vec, records_json_stream_rx)
{
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		struct vectors *v = self->v;
		struct ossuary_dir_state st;
		uint8_t buf[256];
		size_t got;
		int k, p, rc;

		ASSERT_EQ(0, offloaded_pair(variant->family, v->stream_secret, 0,
					    NULL, 0, &k, &p));
		feed(p, v->stream, v->stream_len, bytewise);
		got = drain(k, buf, sizeof(buf), &rc);
		EXPECT_EQ(0, rc) TH_LOG("%s: the stream must end in a clean EOF, got %s",
					bytewise ? "byte by byte" : "one piece",
					rc ? strerror(rc) : "EOF");
		ASSERT_EQ(v->stream_delivered_len, got);
		EXPECT_EQ(0, memcmp(buf, v->stream_delivered, got));
		/* EOF stays EOF */
		EXPECT_EQ(0, recv(k, buf, sizeof(buf), 0));
		ASSERT_EQ(0, oss_state(k, OSSUARY_RX, &st));
		EXPECT_EQ(1, st.generation) TH_LOG("one KEY_UPDATE applied");
		EXPECT_EQ(2, st.seq) TH_LOG("DATA + DISCONNECT opened under next(S)");
		EXPECT_TRUE(st.flags & OSSUARY_STATE_CLOSED);
		EXPECT_FALSE(st.flags & OSSUARY_STATE_ERROR);
		/* now a FIN: still a clean EOF (DISCONNECT(0) came first) */
		shutdown(p, SHUT_WR);
		EXPECT_EQ(0, recv(k, buf, sizeof(buf), 0));
		close(k);
		close(p);
	}
}

/* Every DATA record of records.json, written raw, opens to its plaintext */
TEST_F_TIMEOUT(vec4, records_json_data_rx, 120)
{
	struct vectors *v = self->v;
	int n = 0;

	for (int i = 0; i < v->n_recs; i++) {
		struct vrec *r = &v->recs[i];
		struct ossuary_dir_state st;
		uint8_t buf[WIRE_MAX_PT + 1];
		ssize_t got;
		int k, p;

		if (r->type != OSSUARY_RECORD_DATA)
			continue;
		n++;
		ASSERT_EQ(0, offloaded_pair(AF_INET, v->secret, r->seq,
					    NULL, 0, &k, &p));
		ASSERT_EQ((ssize_t)r->rec_len, oss_write_all(p, r->rec, r->rec_len));
		if (r->pt_len) {
			got = oss_read_full(k, buf, r->pt_len, NULL);
			EXPECT_EQ((ssize_t)r->pt_len, got)
				TH_LOG("record %d seq %#llx len %zu: %s", i,
				       (unsigned long long)r->seq, r->pt_len,
				       got < 0 ? strerror(-got) : "short");
			if (got == (ssize_t)r->pt_len) {
				EXPECT_EQ(0, memcmp(buf, r->pt, r->pt_len))
					TH_LOG("record %d", i);
			}
		} else {
			/* a zero-length record delivers nothing and is no error */
			oss_msleep(50);
			got = recv(k, buf, sizeof(buf), MSG_DONTWAIT);
			EXPECT_EQ(-1, got) TH_LOG("record %d: empty DATA delivered %zd", i, got);
			EXPECT_EQ(EAGAIN, errno) TH_LOG("record %d: %s", i, strerror(errno));
		}
		ASSERT_EQ(0, oss_state(k, OSSUARY_RX, &st));
		EXPECT_EQ(r->seq + 1, st.seq) TH_LOG("record %d: RX seq after open", i);
		close(k);
		close(p);
	}
	EXPECT_EQ(42, n);
}

/* The kernel seals each DATA plaintext to exactly the vector's bytes */
TEST_F_TIMEOUT(vec4, records_json_data_tx_exact, 120)
{
	struct vectors *v = self->v;
	int n = 0;

	for (int i = 0; i < v->n_recs; i++) {
		struct vrec *r = &v->recs[i];
		uint8_t buf[WIRE_MAX_REC];
		ssize_t got;
		int k, p;

		if (r->type != OSSUARY_RECORD_DATA || !r->pt_len)
			continue;
		n++;
		ASSERT_EQ(0, offloaded_pair(AF_INET, NULL, 0, v->secret,
					    r->seq, &k, &p));
		ASSERT_EQ((ssize_t)r->pt_len, send(k, r->pt, r->pt_len, 0));
		got = wire_read_record(p, buf);
		EXPECT_EQ((ssize_t)r->rec_len, got)
			TH_LOG("record %d seq %#llx len %zu: kernel wrote a record of %zd bytes",
			       i, (unsigned long long)r->seq, r->pt_len, got);
		if (got == (ssize_t)r->rec_len) {
			EXPECT_EQ(0, memcmp(buf, r->rec, r->rec_len))
				TH_LOG("record %d seq %#llx len %zu: bytes differ", i,
				       (unsigned long long)r->seq, r->pt_len);
		}
		close(k);
		close(p);
	}
	EXPECT_EQ(36, n);
}

static int expected_errno(const char *category)
{
	if (!strcmp(category, "bad_record"))
		return EBADMSG;
	if (!strcmp(category, "peer_disconnect"))
		return ECONNRESET;
	/* the kernel answers RESET with DISCONNECT(1) and reports a reset */
	if (!strcmp(category, "reset_limit") ||
	    !strcmp(category, "data_after_peer_reset"))
		return ECONNRESET;
	if (!strcmp(category, "truncated"))
		return OSS_TRUNC_ERRNO;
	/* 2^64-1 is refused as a record that does not open */
	if (!strcmp(category, "seq_exhausted"))
		return EBADMSG;
	/* bad_version, unknown_type, bad_length, bad_value, after_disconnect,
	 * unexpected_type: protocol errors */
	return OSS_PROTO_ERRNO;
}

/*
 * Run one negative stream against a fresh offloaded receiver. Returns a
 * short failure description, or NULL if the kernel did what the vector
 * says.
 */
static const char *run_negative(int family, const struct vneg *g,
				 const uint8_t *stream, size_t stream_len,
				 bool bytewise, char *msg, size_t msg_len)
{
	uint8_t buf[WIRE_MAX_PT * 2];
	size_t got = 0;
	int k, p, rc = 0, want, ret;

	want = expected_errno(g->error);
	/* the first fault is the RESET: the kernel reports a reset */
	if (!strcmp(g->name, "data_after_peer_reset"))
		want = ECONNRESET;
	ret = offloaded_pair(family, g->recv_secret, g->recv_seq, g->send_secret,
			     g->send_seq, &k, &p);
	if (ret) {
		snprintf(msg, msg_len, "setup: %s", strerror(-ret));
		return msg;
	}
	feed(p, stream, stream_len, bytewise);
	if (g->fails_before_eof) {
		got = drain(k, buf, sizeof(buf), &rc);
		if (rc == 0 && !strcmp(g->error, "after_disconnect")) {
			/* "hello", end-of-file, then the error */
			size_t more = drain(k, buf + got, sizeof(buf) - got, &rc);

			got += more;
		}
		if (rc == EAGAIN) {
			snprintf(msg, msg_len, "no error before FIN (read timed out after %zu bytes)", got);
			goto out_fail;
		}
		if (rc == 0) {
			snprintf(msg, msg_len, "clean EOF instead of an error (after %zu bytes)", got);
			goto out_fail;
		}
	} else {
		/* truncated: what opened is delivered, the error comes with FIN */
		if (g->delivered_len) {
			ssize_t n = oss_read_full(k, buf, g->delivered_len, &rc);

			got = n > 0 ? n : 0;
			if (n != (ssize_t)g->delivered_len) {
				snprintf(msg, msg_len, "before FIN: read %zd of %zu bytes (%s)",
					 n, g->delivered_len, strerror(rc));
				goto out_fail;
			}
		}
		shutdown(p, SHUT_WR);
		got += drain(k, buf + got, sizeof(buf) - got, &rc);
		if (rc == 0) {
			snprintf(msg, msg_len, "FIN read as a clean EOF, not as truncation");
			goto out_fail;
		}
		if (rc == EAGAIN) {
			snprintf(msg, msg_len, "no error after FIN (timed out)");
			goto out_fail;
		}
		if (want < 0) {
			snprintf(msg, msg_len,
				 "uapi header documents no truncation errno; kernel gave %s",
				 strerror(rc));
			goto out_fail;
		}
	}
	if (got != g->delivered_len || memcmp(buf, g->delivered, got)) {
		snprintf(msg, msg_len, "delivered %zu bytes, expected %zu", got,
			 g->delivered_len);
		goto out_fail;
	}
	if (want > 0 && rc != want) {
		snprintf(msg, msg_len, "errno %s (%d), expected %s", strerror(rc), rc,
			 strerror(want));
		goto out_fail;
	}
	if (rc == EBADMSG) {
		/* fail closed: the error sticks, before and after FIN */
		ssize_t n = recv(k, buf, sizeof(buf), 0);

		if (n != -1 || errno != EBADMSG) {
			snprintf(msg, msg_len, "second read gave %zd/%s, not EBADMSG again",
				 n, n < 0 ? strerror(errno) : "-");
			goto out_fail;
		}
		shutdown(p, SHUT_WR);
		n = recv(k, buf, sizeof(buf), 0);
		if (n != -1 || errno != EBADMSG) {
			snprintf(msg, msg_len, "read after FIN gave %zd/%s, not EBADMSG",
				 n, n < 0 ? strerror(errno) : "-");
			goto out_fail;
		}
	}
	if (g->response) {
		uint8_t r[64];
		ssize_t n = oss_read_full(p, r, g->response_len, NULL);

		if (n != (ssize_t)g->response_len || memcmp(r, g->response, n)) {
			snprintf(msg, msg_len, "reply: got %zd bytes, not the sealed DISCONNECT(1) of the vector", n);
			goto out_fail;
		}
	}
	close(k);
	close(p);
	return NULL;
out_fail:
	close(k);
	close(p);
	return msg;
}

/*
 * Every negative vector with an established receiver. A context where the
 * receiver has itself sent RESET does not exist in the kernel (it never
 * sends RESET), so those are left to the userspace tests, by name.
 */
TEST_F_TIMEOUT(vec4, negative_json_established, 600)
{
	struct vectors *v = self->v;
	int ran = 0, failed = 0;

	for (int i = 0; i < v->n_negs; i++) {
		const struct vneg *g = &v->negs[i];

		if (g->reset_sent)
			continue;
		for (int bytewise = 0; bytewise < 2; bytewise++) {
			char msg[256];
			const char *err = run_negative(AF_INET, g, g->stream,
						       g->stream_len, bytewise,
						       msg, sizeof(msg));

			ran++;
			if (err) {
				failed++;
				TH_LOG("%s [%s, %s]: %s", g->name, g->error,
				       bytewise ? "byte by byte" : "one piece", err);
			}
		}
	}
	EXPECT_GE(ran, 2 * 30);
	EXPECT_EQ(0, failed) TH_LOG("%d of %d negative runs failed", failed, ran);
}

/* All 200 single-bit flips of one DATA record: rejected, nothing delivered */
TEST_F_TIMEOUT(vec4, negative_json_bitflips, 600)
{
	struct vectors *v = self->v;
	int failed = 0;

	ASSERT_EQ(200, v->n_flips);
	for (int i = 0; i < v->n_flips; i++) {
		const struct vflip *f = &v->flips[i];
		struct vneg g = {};
		char msg[256];
		const char *err;

		snprintf(g.name, sizeof(g.name), "flip byte %d bit %d", f->byte, f->bit);
		memcpy(g.recv_secret, v->bit_recv, 32);
		memcpy(g.send_secret, v->bit_send, 32);
		g.recv_seq = v->bit_recv_seq;
		g.send_seq = v->bit_send_seq;
		g.fails_before_eof = f->fails_before_eof;
		/*
		 * A flip in the body or tag opens as a bad record (EBADMSG). In
		 * the version or type it is a protocol error; in the length it
		 * is a protocol error if the length is now illegal, a record that
		 * does not open if it is shorter but legal, and a record cut short
		 * by the FIN (truncation) if it grew.
		 */
		if (f->byte >= 4) {
			snprintf(g.error, sizeof(g.error), "bad_record");
		} else if (!f->fails_before_eof) {
			snprintf(g.error, sizeof(g.error), "truncated");
		} else if (f->byte >= 2) {
			unsigned int l = f->stream[2] << 8 | f->stream[3];

			snprintf(g.error, sizeof(g.error), "%s",
				 l < OSSUARY_TAG_LEN || l > OSSUARY_MAX_BODY ?
				 "bad_length" : "bad_record");
		} else {
			snprintf(g.error, sizeof(g.error), "header");
		}
		g.delivered = (uint8_t *)"";
		err = run_negative(AF_INET, &g, f->stream, f->stream_len,
				   false, msg, sizeof(msg));
		if (err) {
			failed++;
			TH_LOG("%s: %s", g.name, err);
		}
	}
	EXPECT_EQ(0, failed) TH_LOG("%d of 200 bit flips mishandled", failed);
}

/*
 * The last seq a secret may open is 2^64-2; the vector KEY_UPDATE there
 * ratchets the receiver to next(S) at seq 0.
 */
TEST_F(vec, key_update_at_last_seq)
{
	struct vectors *v = self->v;
	struct ossuary_dir_state st;
	struct wire_dir d;
	uint8_t rec[64], buf[16];
	const struct vrec *ku = NULL;
	size_t n;
	int k, p;

	for (int i = 0; i < v->n_recs; i++)
		if (v->recs[i].type == OSSUARY_RECORD_KEY_UPDATE &&
		    v->recs[i].seq == OSSUARY_SEQ_LAST && v->recs[i].pt_len == 1 &&
		    v->recs[i].pt[0] == 0)
			ku = &v->recs[i];
	ASSERT_NE(NULL, ku);
	ASSERT_EQ(0, offloaded_pair(variant->family, v->secret, OSSUARY_SEQ_LAST,
				    NULL, 0, &k, &p));
	ASSERT_EQ((ssize_t)ku->rec_len, oss_write_all(p, ku->rec, ku->rec_len));
	wire_dir_init(&d, v->secret, 0);
	wire_dir_next(&d);
	n = wire_seal(&d, OSSUARY_RECORD_DATA, "after", 5, rec);
	ASSERT_EQ((ssize_t)n, oss_write_all(p, rec, n));
	ASSERT_EQ(5, oss_read_full(k, buf, 5, NULL));
	EXPECT_EQ(0, memcmp(buf, "after", 5));
	ASSERT_EQ(0, oss_state(k, OSSUARY_RX, &st));
	EXPECT_EQ(1, st.generation);
	EXPECT_EQ(1, st.seq);
	close(k);
	close(p);
}

TEST_HARNESS_MAIN
