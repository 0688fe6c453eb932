/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A minimal TAP test harness for the library's host tests.
 *
 *   TEST(name) { ... CHECK(cond); CHECK_EQ(a, b); CHECK_MEM(a, b, n); }
 *
 * Each TEST registers itself; main() (defined once, in the file that
 * defines HARNESS_MAIN before including this) runs them all and prints
 * "ok N - name" / "not ok N - name", then "# N passed, M failed".
 * A failed CHECK ends its test and is reported with file and line.
 */
#ifndef OSSUARY_TEST_HARNESS_H
#define OSSUARY_TEST_HARNESS_H

#include <inttypes.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct harness_test {
	const char *name;
	void (*fn)(void);
	struct harness_test *next;
};

void harness_register(struct harness_test *t);
void harness_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));
void harness_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Ends the running test as skipped: "ok N - name # SKIP reason". */
void harness_skip(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

#define TEST(name)                                                        \
	static void test_##name(void);                                    \
	static struct harness_test harness_##name = { #name, test_##name, \
						      NULL };              \
	__attribute__((constructor)) static void harness_reg_##name(void) \
	{                                                                 \
		harness_register(&harness_##name);                        \
	}                                                                 \
	static void test_##name(void)

#define CHECK(cond)                                                      \
	do {                                                             \
		if (!(cond))                                             \
			harness_fail(__FILE__, __LINE__, "CHECK(%s)", #cond); \
	} while (0)

#define CHECK_EQ(a, b)                                                   \
	do {                                                             \
		long long _a = (long long)(a), _b = (long long)(b);      \
		if (_a != _b)                                            \
			harness_fail(__FILE__, __LINE__,                 \
				     "%s == %s: %lld != %lld", #a, #b, _a, _b); \
	} while (0)

#define CHECK_MEM(a, b, n)                                               \
	do {                                                             \
		if (memcmp((a), (b), (n)) != 0)                          \
			harness_fail(__FILE__, __LINE__,                 \
				     "%s and %s differ in %zu bytes", #a, #b, \
				     (size_t)(n));                       \
	} while (0)

#ifdef HARNESS_MAIN
#include <stdarg.h>

static struct harness_test *harness_head, **harness_tail = &harness_head;
static jmp_buf harness_jmp;
static char harness_skip_reason[256];

void harness_register(struct harness_test *t)
{
	*harness_tail = t;
	harness_tail = &t->next;
}

void harness_note(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

void harness_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	printf("# %s:%d: ", file, line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	longjmp(harness_jmp, 1);
}

void harness_skip(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(harness_skip_reason, sizeof(harness_skip_reason), fmt, ap);
	va_end(ap);
	longjmp(harness_jmp, 2);
}

int main(int argc, char **argv)
{
	/* volatile: they live across the longjmp() out of a failed test */
	struct harness_test *volatile t;
	volatile int n = 0, failed = 0;
	int total = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (t = harness_head; t; t = t->next)
		if (argc < 2 || strcmp(argv[1], t->name) == 0)
			total++;
	printf("TAP version 13\n1..%d\n", total);
	for (t = harness_head; t; t = t->next) {
		if (argc >= 2 && strcmp(argv[1], t->name) != 0)
			continue;
		n++;
		switch (setjmp(harness_jmp)) {
		case 0:
			t->fn();
			printf("ok %d - %s\n", n, t->name);
			break;
		case 2:
			printf("ok %d - %s # SKIP %s\n", n, t->name, harness_skip_reason);
			break;
		default:
			printf("not ok %d - %s\n", n, t->name);
			failed++;
			break;
		}
	}
	printf("# %d passed, %d failed\n", n - failed, failed);
	return failed ? 1 : 0;
}
#endif /* HARNESS_MAIN */

#endif /* OSSUARY_TEST_HARNESS_H */
