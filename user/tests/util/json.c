/* SPDX-License-Identifier: Apache-2.0 */
/* Recursive-descent JSON parser; see json.h. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

struct parser {
	const char *p, *end;
	const char *err;
	int depth;
};

static struct json *parse_value(struct parser *ps);

static void skip_ws(struct parser *ps)
{
	while (ps->p < ps->end &&
	       (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static struct json *new_node(enum json_type t)
{
	struct json *j = calloc(1, sizeof(*j));

	if (j)
		j->type = t;
	return j;
}

static bool push(struct json *j, char *key, struct json *item)
{
	struct json **items = realloc(j->items, (j->n + 1) * sizeof(*items));
	char **keys;

	if (!items)
		return false;
	j->items = items;
	if (j->type == JSON_OBJECT) {
		keys = realloc(j->keys, (j->n + 1) * sizeof(*keys));
		if (!keys)
			return false;
		j->keys = keys;
		j->keys[j->n] = key;
	}
	j->items[j->n++] = item;
	return true;
}

static void put_utf8(char *out, size_t *o, uint32_t cp)
{
	if (cp < 0x80) {
		out[(*o)++] = (char)cp;
	} else if (cp < 0x800) {
		out[(*o)++] = (char)(0xc0 | cp >> 6);
		out[(*o)++] = (char)(0x80 | (cp & 0x3f));
	} else {
		out[(*o)++] = (char)(0xe0 | cp >> 12);
		out[(*o)++] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[(*o)++] = (char)(0x80 | (cp & 0x3f));
	}
}

static char *parse_string(struct parser *ps)
{
	const char *s;
	char *out;
	size_t o = 0;

	if (ps->p >= ps->end || *ps->p != '"')
		return ps->err = "expected string", NULL;
	s = ++ps->p;
	while (ps->p < ps->end && *ps->p != '"')
		ps->p += *ps->p == '\\' ? 2 : 1;
	if (ps->p >= ps->end)
		return ps->err = "unterminated string", NULL;
	out = malloc((size_t)(ps->p - s) + 1);
	if (!out)
		return ps->err = "out of memory", NULL;
	for (const char *q = s; q < ps->p; q++) {
		if (*q != '\\') {
			out[o++] = *q;
			continue;
		}
		q++;
		switch (*q) {
		case 'n': out[o++] = '\n'; break;
		case 't': out[o++] = '\t'; break;
		case 'r': out[o++] = '\r'; break;
		case 'b': out[o++] = '\b'; break;
		case 'f': out[o++] = '\f'; break;
		case 'u': {
			char hex[5] = { 0 };

			if (ps->p - q < 5) {
				free(out);
				return ps->err = "bad \\u escape", NULL;
			}
			memcpy(hex, q + 1, 4);
			put_utf8(out, &o, (uint32_t)strtoul(hex, NULL, 16));
			q += 4;
			break;
		}
		default: out[o++] = *q; break;
		}
	}
	out[o] = 0;
	ps->p++;
	return out;
}

static struct json *parse_container(struct parser *ps, bool object)
{
	struct json *j = new_node(object ? JSON_OBJECT : JSON_ARRAY);
	char close = object ? '}' : ']';

	if (!j)
		return ps->err = "out of memory", NULL;
	ps->p++;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == close) {
		ps->p++;
		return j;
	}
	for (;;) {
		char *key = NULL;
		struct json *v;

		skip_ws(ps);
		if (object) {
			key = parse_string(ps);
			if (!key)
				goto fail;
			skip_ws(ps);
			if (ps->p >= ps->end || *ps->p != ':') {
				free(key);
				ps->err = "expected ':'";
				goto fail;
			}
			ps->p++;
		}
		v = parse_value(ps);
		if (!v || !push(j, key, v)) {
			free(key);
			json_free(v);
			goto fail;
		}
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p++;
			continue;
		}
		if (ps->p < ps->end && *ps->p == close) {
			ps->p++;
			return j;
		}
		ps->err = "expected ',' or closing bracket";
		goto fail;
	}
fail:
	json_free(j);
	return NULL;
}

static bool match(struct parser *ps, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
		return false;
	ps->p += n;
	return true;
}

static struct json *parse_value(struct parser *ps)
{
	struct json *j;

	skip_ws(ps);
	if (ps->p >= ps->end)
		return ps->err = "unexpected end", NULL;
	if (++ps->depth > 64)
		return ps->err = "nested too deep", NULL;
	switch (*ps->p) {
	case '{':
		j = parse_container(ps, true);
		break;
	case '[':
		j = parse_container(ps, false);
		break;
	case '"':
		j = new_node(JSON_STRING);
		if (j && !(j->text = parse_string(ps))) {
			free(j);
			j = NULL;
		}
		break;
	default:
		if (match(ps, "null")) {
			j = new_node(JSON_NULL);
		} else if (match(ps, "true") || match(ps, "false")) {
			j = new_node(JSON_BOOL);
			if (j)
				j->boolean = ps->p[-1] == 'e' && ps->p[-2] == 'u';
		} else {
			const char *s = ps->p;

			while (ps->p < ps->end && strchr("+-0123456789.eE", *ps->p))
				ps->p++;
			if (ps->p == s)
				return ps->err = "unexpected character", NULL;
			j = new_node(JSON_NUMBER);
			if (j) {
				j->text = strndup(s, (size_t)(ps->p - s));
				if (!j->text) {
					free(j);
					j = NULL;
				}
			}
		}
		break;
	}
	ps->depth--;
	return j;
}

struct json *json_parse(const char *text, size_t len, const char **err)
{
	struct parser ps = { text, text + len, NULL, 0 };
	struct json *j = parse_value(&ps);

	if (j) {
		skip_ws(&ps);
		if (ps.p != ps.end) {
			json_free(j);
			j = NULL;
			ps.err = "trailing garbage";
		}
	}
	if (!j && err)
		*err = ps.err ? ps.err : "parse error";
	return j;
}

void json_free(struct json *j)
{
	if (!j)
		return;
	for (size_t i = 0; i < j->n; i++) {
		json_free(j->items[i]);
		if (j->keys)
			free(j->keys[i]);
	}
	free(j->items);
	free(j->keys);
	free(j->text);
	free(j);
}

const struct json *json_get(const struct json *obj, const char *key)
{
	if (!obj || obj->type != JSON_OBJECT)
		return NULL;
	for (size_t i = 0; i < obj->n; i++)
		if (strcmp(obj->keys[i], key) == 0)
			return obj->items[i];
	return NULL;
}

const struct json *json_at(const struct json *arr, size_t i)
{
	if (!arr || arr->type != JSON_ARRAY || i >= arr->n)
		return NULL;
	return arr->items[i];
}

size_t json_len(const struct json *j)
{
	return j && (j->type == JSON_ARRAY || j->type == JSON_OBJECT) ? j->n : 0;
}

const char *json_str(const struct json *j)
{
	return j && j->type == JSON_STRING ? j->text : NULL;
}

bool json_is_null(const struct json *j)
{
	return j && j->type == JSON_NULL;
}
