/* Compiles only if every declaration of Include/lowbit.h agrees with the prototype Swift emits for
 * its @c shim: a function declared twice with different types is a compile error. Handles are
 * `void *` on the Swift side, so LOWBIT_ABI_CHECK makes lowbit_matrix `void` for this check only. */
#define LOWBIT_ABI_CHECK 1
#include "lowbit.h"
#include "LowBitC-Swift.h"

int main(void) { return lowbit_version_number() == LOWBIT_VERSION_NUMBER ? 0 : 1; }
