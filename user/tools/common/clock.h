/* SPDX-License-Identifier: Apache-2.0 */
/* Monotonic seconds, for durations and deadlines (never wall time). */
#ifndef OSSUARY_TOOLS_CLOCK_H
#define OSSUARY_TOOLS_CLOCK_H

#include <time.h>

static inline double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
