/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Hooks for deterministic tests (declared in internal.h, never in the
 * public header): fixed handshake inputs, a connection set up directly
 * in the established stage, the bad-record policy, the traffic secrets.
 */
#include <string.h>

#include "internal.h"

int ossuary__inject_handshake_inputs(OssuaryConnection *c,
				     const uint8_t eph_secret[32],
				     const uint8_t nonce[12],
				     const uint8_t challenge[32])
{
	struct oss_hs_inputs *in;

	if (!c || !eph_secret || !nonce || !challenge)
		return OSSUARY_ERR_INVALID;
	if (c->n_inject == OSS_INJECT_MAX)
		return OSSUARY_ERR_NO_MEMORY;
	in = &c->inject[c->n_inject++];
	memcpy(in->eph_secret, eph_secret, 32);
	memcpy(in->nonce, nonce, 12);
	memcpy(in->challenge, challenge, 32);
	return OSSUARY_OK;
}

int ossuary__set_established(OssuaryConnection *c, const uint8_t send_secret[32],
			     uint64_t send_seq, const uint8_t recv_secret[32],
			     uint64_t recv_seq, unsigned int resets_so_far,
			     bool reset_sent)
{
	if (!c || !send_secret || !recv_secret || send_seq > OSSUARY_SEQ_LAST ||
	    resets_so_far > OSS_MAX_RESETS)
		return OSSUARY_ERR_INVALID;
	oss_wipe_handshake(c);
	oss_dir_install(&c->tx, send_secret, send_seq);
	oss_dir_install(&c->rx, recv_secret, recv_seq);
	c->have_app_keys = true;
	c->stage = OSS_STAGE_ESTABLISHED;
	c->resets_so_far = resets_so_far;
	c->reset_sent = false;
	if (reset_sent) {
		/* The RESET itself went out long ago: seal it and drop the bytes. */
		uint8_t buf[OSS_OUTQ_SIZE];

		oss_queue_control(c, OSSUARY_RECORD_RESET, 0);
		c->reset_sent = true;
		oss_outq_take_all(c, buf);
	}
	return OSSUARY_OK;
}

int ossuary__set_on_bad_record(OssuaryConnection *c, int mode)
{
	if (!c || (mode != OSS_BAD_RECORD_RESET && mode != OSS_BAD_RECORD_DISCONNECT))
		return OSSUARY_ERR_INVALID;
	c->on_bad_record = mode;
	return OSSUARY_OK;
}

int ossuary__debug_traffic(const OssuaryConnection *c, uint8_t tx_secret[32],
			   uint64_t *tx_seq, uint8_t rx_secret[32],
			   uint64_t *rx_seq)
{
	if (!c || !tx_secret || !tx_seq || !rx_secret || !rx_seq)
		return OSSUARY_ERR_INVALID;
	if (!c->have_app_keys)
		return OSSUARY_ERR_STATE;
	memcpy(tx_secret, c->tx.secret, 32);
	memcpy(rx_secret, c->rx.secret, 32);
	*tx_seq = c->tx.seq;
	*rx_seq = c->rx.seq;
	return OSSUARY_OK;
}
