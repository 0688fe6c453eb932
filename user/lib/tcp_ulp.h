/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TCP socket option that attaches the "ossuary" upper-layer protocol.
 * Older C libraries lack the names; the values are the kernel's ABI.
 * Shared by the library (socket.c) and the tools (tools/common/ulp.c).
 */
#ifndef OSSUARY_TCP_ULP_H
#define OSSUARY_TCP_ULP_H

#include <netinet/tcp.h>

#ifndef SOL_TCP
#define SOL_TCP 6
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif

#endif
