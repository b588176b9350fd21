#ifndef LOWBIT_PREFETCH_H
#define LOWBIT_PREFETCH_H

/* Swift cannot call _mm_prefetch (a macro in clang's headers), so the kernels reach the
 * prefetch instructions through these inline functions. A prefetch is a hint: it never faults,
 * even past the end of a buffer, and compiles to nothing where the target has no such
 * instruction. */
static inline void lowbit_prefetch(const void *address) {
    __builtin_prefetch(address, 0 /* read */, 3 /* keep in every cache level */);
}

/* The same into L2 (prefetcht1), for data needed after what L1 holds now. */
static inline void lowbit_prefetch_l2(const void *address) {
    __builtin_prefetch(address, 0 /* read */, 2);
}

#endif
