/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kernel mode needs the "ossuary" ULP. The tools ask before listening or
 * connecting, rather than after a peer has gone through a handshake for
 * nothing. Listed in tcp_available_ulp: there. Otherwise ask the kernel
 * on a fresh socket: it loads the module if it can (CAP_NET_ADMIN), and
 * an unconnected socket then fails with ENOTCONN; ENOENT means absent.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "tcp_ulp.h"
#include "ulp.h"

int ulp_available(void)
{
	static const char ulp[] = "ossuary";
	char buf[512];
	size_t n;
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "re");
	int fd, r;

	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		for (char *save = NULL, *t = strtok_r(buf, " \t\n", &save); t;
		     t = strtok_r(NULL, " \t\n", &save))
			if (!strcmp(t, ulp))
				return 1;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 1;	/* cannot tell: the hand-over will */
	r = setsockopt(fd, SOL_TCP, TCP_ULP, ulp, sizeof(ulp));
	r = r < 0 && (errno == ENOENT || errno == ENOPROTOOPT) ? 0 : 1;
	close(fd);
	return r;
}
