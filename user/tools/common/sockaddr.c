/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <netdb.h>

#include "sockaddr.h"

void name_addr(const struct sockaddr *sa, socklen_t len, char *out, size_t cap)
{
	char h[NI_MAXHOST], s[NI_MAXSERV];

	if (getnameinfo(sa, len, h, sizeof(h), s, sizeof(s),
			NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		snprintf(out, cap, "[?]:?");
	else
		snprintf(out, cap, "[%s]:%s", h, s);
}

void set_linger(int fd, int abort)
{
	struct linger l = { .l_onoff = abort, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}
