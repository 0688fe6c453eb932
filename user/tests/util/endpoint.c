/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "../harness.h"
#include "endpoint.h"
#include "internal.h"

void ep_init(struct ep *e, OssuaryConnection *c)
{
	memset(e, 0, sizeof(*e));
	e->c = c;
	if (!c)
		harness_fail(__FILE__, __LINE__, "connection not created");
}

void ep_free(struct ep *e)
{
	if (e->c)
		ossuary_destroy_connection(&e->c);
	bytes_free(&e->in);
	bytes_free(&e->out);
	bytes_free(&e->delivered);
}

void ep_note(struct ep *e, int rc)
{
	if (rc < 0 && !e->err)
		e->err = rc;
}

void ep_drain(struct ep *e)
{
	static uint8_t buf[OSSUARY_MAX_RECORD * 2];
	ssize_t n;
	int ev;

	while ((n = ossuary_flush(e->c, buf, sizeof(buf))) > 0)
		bytes_add(&e->out, buf, (size_t)n);
	if (n < 0)
		harness_fail(__FILE__, __LINE__, "flush: %s", ossuary_strerror((int)n));
	while ((ev = ossuary_next_event(e->c)) > 0) {
		if (e->n_events == EP_MAX_EVENTS)
			harness_fail(__FILE__, __LINE__, "too many events");
		e->events[e->n_events++] = ev;
	}
}

static void consume(struct ep *e, size_t n)
{
	memmove(e->in.p, e->in.p + n, e->in.len - n);
	e->in.len -= n;
}

void ep_pump(struct ep *e)
{
	static uint8_t buf[OSSUARY_MAX_PLAINTEXT];

	while (!e->err && e->in.len) {
		int hd = ossuary_handshake_done(e->c);
		size_t n = e->in.len;
		ssize_t r;

		if (hd == OSSUARY_ERR_UNTRUSTED_SERVER) {
			e->paused = true;
			break;
		}
		if (hd < 0) {
			e->err = hd;
			break;
		}
		if (hd == 1) {
			size_t room = sizeof(buf);

			r = ossuary_recv_data(e->c, e->in.p, &n, buf, &room);
			/* Delivered bytes are in the return value, never beside an error. */
			if ((r >= 0 && (size_t)r != room) || (r < 0 && room))
				harness_fail(__FILE__, __LINE__, "recv_data returned %zd, wrote %zu",
					     r, room);
			bytes_add(&e->delivered, buf, room);
		} else {
			r = ossuary_recv_handshake(e->c, e->in.p, &n);
		}
		if (n > e->in.len)
			harness_fail(__FILE__, __LINE__, "consumed more than given");
		consume(e, n);
		ep_drain(e);
		if (r == OSSUARY_ERR_WOULD_BLOCK)
			break;
		if (r == OSSUARY_ERR_RESET)
			continue;
		if (r == OSSUARY_ERR_EOF) {
			if (n == 0)
				break;
			continue;
		}
		if (r < 0) {
			e->err = (int)r;
			break;
		}
		if (n == 0)
			break;
	}
	if (!e->err) {
		int hd = ossuary_handshake_done(e->c);

		/* A failure may come from an application call, not from input. */
		if (hd == OSSUARY_ERR_UNTRUSTED_SERVER)
			e->paused = true;
		else if (hd < 0)
			e->err = hd;
	}
	ep_drain(e);
}

void ep_feed(struct ep *e, const uint8_t *p, size_t n)
{
	bytes_add(&e->in, p, n);
	ep_pump(e);
}

connection_type_t ep_role(const char *role)
{
	if (role && strcmp(role, "client") == 0)
		return CONN_TYPE_CLIENT;
	if (role && strcmp(role, "authenticated-server") == 0)
		return CONN_TYPE_AUTHENTICATED_SERVER;
	if (role && strcmp(role, "unauthenticated-server") == 0)
		return CONN_TYPE_UNAUTHENTICATED_SERVER;
	harness_fail(__FILE__, __LINE__, "unknown role \"%s\"", role ? role : "(null)");
}

int ep_event_code(const char *name)
{
	static const struct {
		const char *name;
		int code;
	} map[] = {
		{ "handshake_done", OSSUARY_EVENT_HANDSHAKE_DONE },
		{ "key_update(0)", OSSUARY_EVENT_KEY_UPDATE },
		{ "key_update(1)", OSSUARY_EVENT_KEY_UPDATE_REQUESTED },
		{ "end_of_file", OSSUARY_EVENT_END_OF_FILE },
		{ "reset", OSSUARY_EVENT_RESET },
		{ "handshake_failed", OSSUARY_EVENT_HANDSHAKE_FAILED },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (name && strcmp(name, map[i].name) == 0)
			return map[i].code;
	harness_fail(__FILE__, __LINE__, "unknown event \"%s\"", name ? name : "(null)");
}

static void inject(struct ep *e, const struct json *in)
{
	int rc = ossuary__inject_handshake_inputs(e->c, vec_hex_n(in, "eph_secret", 32),
						  vec_hex_n(in, "nonce", 12),
						  vec_hex_n(in, "challenge", 32));

	if (rc)
		harness_fail(__FILE__, __LINE__, "inject: %s", ossuary_strerror(rc));
}

void ep_from_context(struct ep *e, const struct json *ctx, int on_bad_record)
{
	connection_type_t role = ep_role(vec_str(ctx, "role"));
	const struct json *keys = json_get(ctx, "authorized_keys");
	const struct json *obr = json_get(ctx, "on_bad_record");
	const struct json *inputs = json_get(ctx, "handshake_inputs");
	const char *stage = vec_str(ctx, "stage");
	const uint8_t *secret = NULL;
	size_t len;

	if (json_get(ctx, "auth_secret")) {
		secret = vec_hex(ctx, "auth_secret", &len);
		if (secret && len != 32)
			harness_fail(__FILE__, __LINE__, "auth_secret length");
	}
	ep_init(e, ossuary_create_connection(role, secret));
	for (size_t i = 0; i < json_len(keys); i++) {
		const uint8_t *k = vec_unhex(json_str(json_at(keys, i)), &len);

		if (!k || len != 32 || ossuary_add_authorized_key(e->c, k))
			harness_fail(__FILE__, __LINE__, "bad authorized key");
	}
	if (obr && json_str(obr)) {
		if (strcmp(json_str(obr), "reset") == 0)
			on_bad_record = OSS_BAD_RECORD_RESET;
		else if (strcmp(json_str(obr), "disconnect") == 0)
			on_bad_record = OSS_BAD_RECORD_DISCONNECT;
		else
			harness_fail(__FILE__, __LINE__, "unknown on_bad_record");
	}
	ossuary__set_on_bad_record(e->c, on_bad_record);
	if (!stage)
		harness_fail(__FILE__, __LINE__, "context without a stage");
	if (strcmp(stage, "established") == 0) {
		const struct json *rs = json_get(ctx, "reset_sent");
		int rc = ossuary__set_established(
			e->c, vec_hex_n(ctx, "send_secret", 32), vec_be64(ctx, "send_seq"),
			vec_hex_n(ctx, "recv_secret", 32), vec_be64(ctx, "recv_seq"),
			(unsigned int)vec_int(ctx, "resets_so_far"),
			rs && rs->type == JSON_BOOL && rs->boolean);

		if (rc)
			harness_fail(__FILE__, __LINE__, "set_established: %s",
				     ossuary_strerror(rc));
	} else if (strcmp(stage, "handshake") == 0) {
		inject(e, ctx);
		if (role == CONN_TYPE_CLIENT) {
			uint8_t buf[256];
			size_t n = sizeof(buf);

			if (ossuary_send_handshake(e->c, buf, &n) < 0 || n != 80)
				harness_fail(__FILE__, __LINE__, "CLIENT_HELLO not sent");
		}
	} else if (strcmp(stage, "new") != 0) {
		harness_fail(__FILE__, __LINE__, "unknown stage \"%s\"", stage);
	}
	for (size_t i = 0; i < json_len(inputs); i++)
		inject(e, json_at(inputs, i));
}

static bool move(struct ep *from, struct ep *to)
{
	struct bytes b = from->out;

	if (!b.len)
		return false;
	memset(&from->out, 0, sizeof(from->out));
	ep_feed(to, b.p, b.len);
	bytes_free(&b);
	return true;
}

void ep_shuttle(struct ep *a, struct ep *b)
{
	bool moved;

	do {
		moved = move(a, b);
		moved |= move(b, a);
	} while (moved);
}

void ep_handshake(struct ep *client, struct ep *server)
{
	uint8_t buf[256];
	size_t n = sizeof(buf);
	int rc = ossuary_send_handshake(client->c, buf, &n);

	ep_note(client, rc);
	bytes_add(&client->out, buf, n);
	ep_drain(client);
	ep_shuttle(client, server);
}

void ep_send(struct ep *e, const void *p, size_t n)
{
	static uint8_t out[OSSUARY_MAX_RECORD + 64];
	size_t taken = 0;

	do {
		size_t room = sizeof(out);
		ssize_t r = ossuary_send_data(e->c, (const uint8_t *)p + taken, n - taken,
					      out, &room);

		if (r < 0) {
			ep_note(e, (int)r);
			return;
		}
		bytes_add(&e->out, out, room);
		taken += (size_t)r;
	} while (taken < n);
	ep_drain(e);
}
