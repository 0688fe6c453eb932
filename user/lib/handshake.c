/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The handshake (PROTOCOL.md "Handshake", "Who accepts whom"):
 * CLIENT_HELLO, SERVER_HELLO, CLIENT_AUTH, the transcript hashes, the
 * key schedule, and the trust-on-first-use pause.
 *
 * This file moves only between the handshake's own steps. Entering the
 * established stage, and anything to do with RESET, is connection.c's:
 * a record that asks for either is reported as an OSS_NEXT_* outcome.
 */
#include <string.h>

#include <sodium.h>

#include "internal.h"

static const char SERVER_CTX[] = "ossuary2 server";
static const char CLIENT_CTX[] = "ossuary2 client";

/* Fresh ephemeral key, nonce and challenge: injected by a test, or random. */
static void hs_begin(OssuaryConnection *c)
{
	if (c->n_inject) {
		struct oss_hs_inputs *in = &c->inject[0];

		memcpy(c->eph_sk, in->eph_secret, 32);
		memcpy(c->nonce, in->nonce, 12);
		memcpy(c->challenge, in->challenge, 32);
		sodium_memzero(in, sizeof(*in));
		memmove(&c->inject[0], &c->inject[1],
			(c->n_inject - 1) * sizeof(c->inject[0]));
		c->n_inject--;
	} else {
		randombytes_buf(c->eph_sk, 32);
		randombytes_buf(c->nonce, 12);
		randombytes_buf(c->challenge, 32);
	}
	crypto_scalarmult_base(c->eph_pk, c->eph_sk);
	c->transcript_len = 0;
	c->peer_key_known = false;
	sodium_memzero(c->peer_auth_pk, 32);
}

static void transcript_add(OssuaryConnection *c, const uint8_t *p, size_t n)
{
	memcpy(c->transcript + c->transcript_len, p, n);
	c->transcript_len += n;
}

static void transcript_hash(const OssuaryConnection *c, uint8_t th[32])
{
	crypto_hash_sha256(th, c->transcript, c->transcript_len);
}

/*
 * dh, PRK, TH1 and both handshake secrets. The all-zero X25519 output of
 * a low-order peer key is fatal; libsodium already refuses it with -1,
 * and the explicit check keeps that true whatever the library does.
 */
static int schedule_handshake(OssuaryConnection *c, const uint8_t peer_eph[32],
			      uint8_t th1[32])
{
	uint8_t dh[32], hs[32], s_hs[32], c_hs[32];
	int rc = crypto_scalarmult(dh, c->eph_sk, peer_eph);

	if (rc != 0 || oss_is_zero(dh, 32)) {
		sodium_memzero(dh, sizeof(dh));
		return OSSUARY_ERR_PROTOCOL;
	}
	oss_hkdf_extract(c->prk, (const uint8_t *)"ossuary2", 8, dh, 32);
	transcript_hash(c, th1);
	oss_derive(hs, c->prk, "hs", th1, 32);
	oss_derive(s_hs, hs, "s hs", NULL, 0);
	oss_derive(c_hs, hs, "c hs", NULL, 0);
	if (c->type == CONN_TYPE_CLIENT) {
		oss_dir_install(&c->hs_tx, c_hs, 0);
		oss_dir_install(&c->hs_rx, s_hs, 0);
	} else {
		oss_dir_install(&c->hs_tx, s_hs, 0);
		oss_dir_install(&c->hs_rx, c_hs, 0);
	}
	sodium_memzero(dh, sizeof(dh));
	sodium_memzero(hs, sizeof(hs));
	sodium_memzero(s_hs, sizeof(s_hs));
	sodium_memzero(c_hs, sizeof(c_hs));
	return OSSUARY_OK;
}

/* TH3 over the whole transcript, then one secret per direction. */
static void schedule_app(OssuaryConnection *c)
{
	uint8_t th3[32], app[32], c_app[32], s_app[32];

	transcript_hash(c, th3);
	oss_derive(app, c->prk, "app", th3, 32);
	oss_derive(c_app, app, "c app", NULL, 0);
	oss_derive(s_app, app, "s app", NULL, 0);
	if (c->type == CONN_TYPE_CLIENT) {
		oss_dir_install(&c->tx, c_app, 0);
		oss_dir_install(&c->rx, s_app, 0);
	} else {
		oss_dir_install(&c->tx, s_app, 0);
		oss_dir_install(&c->rx, c_app, 0);
	}
	c->have_app_keys = true;
	sodium_memzero(app, sizeof(app));
	sodium_memzero(c_app, sizeof(c_app));
	sodium_memzero(s_app, sizeof(s_app));
}

/* Our signature over ctx || th, or 64 zero bytes when we hold no key. */
static void sign_th(const OssuaryConnection *c, const char *ctx,
		    const uint8_t th[32], uint8_t pk[32], uint8_t sig[64])
{
	uint8_t msg[15 + 32];

	if (!c->have_auth_key) {
		memset(pk, 0, 32);
		memset(sig, 0, 64);
		return;
	}
	memcpy(msg, ctx, 15);
	memcpy(msg + 15, th, 32);
	memcpy(pk, c->auth_pk, 32);
	crypto_sign_ed25519_detached(sig, NULL, msg, sizeof(msg), c->auth_sk);
}

/*
 * The peer's key and signature: 0 for a zero key with a zero signature,
 * 1 for a non-zero key whose signature verifies, or an error. The zero
 * key is caught before verify, which some Ed25519 code would pass.
 */
static int check_peer_sig(const char *ctx, const uint8_t th[32],
			  const uint8_t pk[32], const uint8_t sig[64])
{
	uint8_t msg[15 + 32];

	if (oss_is_zero(pk, 32))
		return oss_is_zero(sig, 64) ? 0 : OSSUARY_ERR_AUTH;
	memcpy(msg, ctx, 15);
	memcpy(msg + 15, th, 32);
	if (crypto_sign_ed25519_verify_detached(sig, msg, sizeof(msg), pk) != 0)
		return OSSUARY_ERR_AUTH;
	return 1;
}

int oss_hs_client_hello(OssuaryConnection *c)
{
	uint8_t *p = oss_outq_claim(c, OSS_HDR + OSS_CH_BODY);

	if (!p)
		return OSSUARY_ERR_WOULD_BLOCK;
	hs_begin(c);
	oss_put_header(p, OSSUARY_RECORD_CLIENT_HELLO, OSS_CH_BODY);
	memcpy(p + OSS_HDR, c->eph_pk, 32);
	memcpy(p + OSS_HDR + 32, c->nonce, 12);
	memcpy(p + OSS_HDR + 44, c->challenge, 32);
	transcript_add(c, p + OSS_HDR, OSS_CH_BODY);
	c->stage = OSS_STAGE_WAIT_SH;
	return OSSUARY_OK;
}

void oss_hs_server_wait(OssuaryConnection *c)
{
	oss_wipe_handshake(c);
	sodium_memzero(c->transcript, sizeof(c->transcript));
	c->transcript_len = 0;
	c->peer_key_known = false;
	sodium_memzero(c->peer_auth_pk, 32);
	c->stage = OSS_STAGE_WAIT_CH;
}

/* Server: CLIENT_HELLO in, SERVER_HELLO out. */
static int on_client_hello(OssuaryConnection *c, const uint8_t *body)
{
	uint8_t th1[32], inner[OSS_SH_INNER], clear[OSS_SH_CLEAR];
	uint8_t *p;
	int rc;

	hs_begin(c);
	transcript_add(c, body, OSS_CH_BODY);
	memcpy(clear, c->eph_pk, 32);
	memcpy(clear + 32, c->nonce, 12);
	transcript_add(c, clear, OSS_SH_CLEAR);
	rc = schedule_handshake(c, body, th1);
	if (rc)
		return oss_fail(c, rc, OSSUARY_DISCONNECT_ERROR);
	sign_th(c, SERVER_CTX, th1, inner, inner + 64);
	memcpy(inner + 32, c->challenge, 32);
	transcript_add(c, inner, OSS_SH_INNER);
	p = oss_outq_claim(c, OSS_HDR + OSS_SH_BODY);
	oss_seal(&c->hs_tx, 0, OSSUARY_RECORD_SERVER_HELLO, inner, OSS_SH_INNER,
		 clear, OSS_SH_CLEAR, p);
	c->stage = OSS_STAGE_WAIT_CA;
	return OSSUARY_OK;
}

/* Client: CLIENT_AUTH out, application secrets in; after SH or approval. */
int oss_hs_client_finish(OssuaryConnection *c)
{
	uint8_t th2[32], inner[OSS_CA_INNER];
	uint8_t *p = oss_outq_claim(c, OSS_HDR + OSS_CA_BODY);

	if (!p)
		return OSSUARY_ERR_WOULD_BLOCK;
	transcript_hash(c, th2);
	sign_th(c, CLIENT_CTX, th2, inner, inner + 32);
	transcript_add(c, inner, OSS_CA_INNER);
	oss_seal(&c->hs_tx, 0, OSSUARY_RECORD_CLIENT_AUTH, inner, OSS_CA_INNER,
		 NULL, 0, p);
	schedule_app(c);
	oss_wipe_handshake(c);
	return OSS_NEXT_ESTABLISHED;
}

/*
 * Client: SERVER_HELLO in; accept, pause, or refuse. One whose sealed
 * part fails to open is connection.c's to answer (RESET or failure).
 */
static int on_server_hello(OssuaryConnection *c, const uint8_t *rec)
{
	const uint8_t *body = rec + OSS_HDR;
	uint8_t th1[32];
	uint8_t *inner = c->scratch;
	int rc;

	transcript_add(c, body, OSS_SH_CLEAR);
	rc = schedule_handshake(c, body, th1);
	if (rc)
		return oss_fail(c, rc, OSSUARY_DISCONNECT_ERROR);
	if (oss_open(&c->hs_rx, 0, rec, body, OSS_SH_CLEAR, body + OSS_SH_CLEAR,
		     OSS_SH_BODY - OSS_SH_CLEAR, inner) != 0)
		return OSS_NEXT_BAD_RECORD;
	transcript_add(c, inner, OSS_SH_INNER);
	rc = check_peer_sig(SERVER_CTX, th1, inner, inner + 64);
	if (rc < 0)
		return oss_fail(c, rc, OSSUARY_DISCONNECT_ERROR);
	if (rc == 0) {
		/* No authentication offered: fine only if none was asked for. */
		if (c->n_authorized)
			return oss_fail(c, OSSUARY_ERR_AUTH, OSSUARY_DISCONNECT_AUTH);
		return oss_hs_client_finish(c);
	}
	memcpy(c->peer_auth_pk, inner, 32);
	c->peer_key_known = true;
	if (oss_key_listed(c, c->peer_auth_pk))
		return oss_hs_client_finish(c);
	c->stage = OSS_STAGE_PAUSED;
	return OSSUARY_OK;
}

/* Server: CLIENT_AUTH in; keys first, so a refusal can go out sealed. */
static int on_client_auth(OssuaryConnection *c, const uint8_t *rec)
{
	uint8_t th2[32];
	uint8_t *inner = c->scratch;
	int rc;

	if (oss_open(&c->hs_rx, 0, rec, NULL, 0, rec + OSS_HDR, OSS_CA_BODY,
		     inner) != 0)
		return oss_fail(c, OSSUARY_ERR_DECRYPT, OSSUARY_DISCONNECT_ERROR);
	transcript_hash(c, th2);
	transcript_add(c, inner, OSS_CA_INNER);
	schedule_app(c);
	oss_wipe_handshake(c);
	rc = check_peer_sig(CLIENT_CTX, th2, inner, inner + 32);
	if (rc < 0)
		return oss_fail(c, rc, OSSUARY_DISCONNECT_ERROR);
	if (rc == 1) {
		memcpy(c->peer_auth_pk, inner, 32);
		c->peer_key_known = true;
	}
	if (c->type == CONN_TYPE_AUTHENTICATED_SERVER &&
	    (rc == 0 || !oss_key_listed(c, c->peer_auth_pk)))
		return oss_fail(c, OSSUARY_ERR_AUTH, OSSUARY_DISCONNECT_AUTH);
	return OSS_NEXT_ESTABLISHED;
}

int oss_hs_check_header(OssuaryConnection *c, const uint8_t hdr[4])
{
	size_t len = (size_t)hdr[2] << 8 | hdr[3];

	if (hdr[0] != OSSUARY_WIRE_VERSION)
		return OSSUARY_ERR_PROTOCOL;
	switch (hdr[1]) {
	case OSSUARY_RECORD_DISCONNECT:
	case OSSUARY_RECORD_RESET:
		/* No application secrets yet: control records are cleartext. */
		return len == 1 ? OSSUARY_OK : OSSUARY_ERR_PROTOCOL;
	case OSSUARY_RECORD_CLIENT_HELLO:
		return c->stage == OSS_STAGE_WAIT_CH && len == OSS_CH_BODY ?
			       OSSUARY_OK : OSSUARY_ERR_PROTOCOL;
	case OSSUARY_RECORD_SERVER_HELLO:
		return c->stage == OSS_STAGE_WAIT_SH && len == OSS_SH_BODY ?
			       OSSUARY_OK : OSSUARY_ERR_PROTOCOL;
	case OSSUARY_RECORD_CLIENT_AUTH:
		return c->stage == OSS_STAGE_WAIT_CA && len == OSS_CA_BODY ?
			       OSSUARY_OK : OSSUARY_ERR_PROTOCOL;
	default:
		return OSSUARY_ERR_PROTOCOL;
	}
}

int oss_hs_record(OssuaryConnection *c, const uint8_t *rec)
{
	switch (rec[1]) {
	case OSSUARY_RECORD_CLIENT_HELLO:
		return on_client_hello(c, rec + OSS_HDR);
	case OSSUARY_RECORD_SERVER_HELLO:
		return on_server_hello(c, rec);
	case OSSUARY_RECORD_CLIENT_AUTH:
		return on_client_auth(c, rec);
	case OSSUARY_RECORD_DISCONNECT:
		c->peer_reason = rec[OSS_HDR];
		return oss_fail(c, rec[OSS_HDR] == OSSUARY_DISCONNECT_AUTH ?
				   OSSUARY_ERR_REFUSED : OSSUARY_ERR_DISCONNECTED, -1);
	case OSSUARY_RECORD_RESET:
		/* One-way, and only a client sends it in this stage. */
		if (c->type == CONN_TYPE_CLIENT || rec[OSS_HDR] != 0)
			return oss_fail(c, OSSUARY_ERR_PROTOCOL,
					OSSUARY_DISCONNECT_ERROR);
		return OSS_NEXT_RESET;
	default:
		return oss_fail(c, OSSUARY_ERR_PROTOCOL, OSSUARY_DISCONNECT_ERROR);
	}
}

int ossuary_refuse_server(OssuaryConnection *conn)
{
	if (!conn)
		return OSSUARY_ERR_INVALID;
	if (conn->stage != OSS_STAGE_PAUSED)
		return OSSUARY_ERR_STATE;
	oss_fail(conn, OSSUARY_ERR_AUTH, OSSUARY_DISCONNECT_AUTH);
	return OSSUARY_OK;
}
