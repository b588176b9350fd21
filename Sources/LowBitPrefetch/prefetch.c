/* SwiftPM builds a C target from at least one source file; the function lives in the header. */
#include "prefetch.h"
