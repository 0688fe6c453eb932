/* SPDX-License-Identifier: Apache-2.0 */
/* Is the kernel's record layer (module ossuary.ko) there to hand over to? */
#ifndef OSSUARY_TOOLS_ULP_H
#define OSSUARY_TOOLS_ULP_H

/* 1 available (or cannot tell), 0 not. */
int ulp_available(void);

#endif
