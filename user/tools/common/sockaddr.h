/* SPDX-License-Identifier: Apache-2.0 */
/* Socket helpers the tools share: how an address is named, how a close ends. */
#ifndef OSSUARY_TOOLS_SOCKADDR_H
#define OSSUARY_TOOLS_SOCKADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* "[10.0.0.1]:7000": the form used in messages ("[?]:?" if unknown). */
void name_addr(const struct sockaddr *sa, socklen_t len, char *out, size_t cap);

/* abort 1: close() resets the connection; 0: the default, orderly close. */
void set_linger(int fd, int abort);

#endif
