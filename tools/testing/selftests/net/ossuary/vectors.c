// placeholder
#include "common.h"
#include "kselftest_harness.h"
TEST_HARNESS_MAIN
