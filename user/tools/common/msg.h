/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Messages of the command-line tools: one line on standard error,
 * "PROG: ...". Every tool's messages take this one form, which the
 * tests match byte for byte.
 */
#ifndef OSSUARY_TOOLS_MSG_H
#define OSSUARY_TOOLS_MSG_H

/* The tool's name, the prefix of its messages; each tool defines it. */
extern const char tool_name[];

/* Set by -v: info() lines are printed only then. */
extern int verbose;

void msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define info(...) do { if (verbose) msg(__VA_ARGS__); } while (0)

#endif
