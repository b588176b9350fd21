#ifndef LOWBIT_CPU_H
#define LOWBIT_CPU_H

#include <stddef.h>
#include <stdint.h>

/* What the running CPU and OS let a program execute: CPUID's feature bits, masked by XGETBV
 * where the instructions need register state the OS must save (AVX's ymm, AVX-512's zmm and
 * mask registers). Swift cannot execute cpuid or xgetbv itself. */
enum {
    LOWBIT_CPU_AVX2 = 1 << 0,        /* AVX2, FMA, F16C, BMI2, POPCNT, with ymm state enabled */
    LOWBIT_CPU_AVX512 = 1 << 1,      /* AVX-512 F, DQ, BW, VL, with zmm and mask state enabled */
    LOWBIT_CPU_AVX512_VNNI = 1 << 2,
    LOWBIT_CPU_AVX512_VBMI = 1 << 3,
    LOWBIT_CPU_AVX512_VPOPCNTDQ = 1 << 4,
    LOWBIT_CPU_CLFLUSHOPT = 1 << 5,
};

/* Internal to the library: hidden, so liblowbit.so exports its C API only. */
#define LOWBIT_CPU_INTERNAL __attribute__((visibility("hidden")))

/* The LOWBIT_CPU_* bits of this CPU (0 off x86-64). */
LOWBIT_CPU_INTERNAL uint32_t lowbit_cpu_features(void);

/* Writes every cache line of [address, address + bytes) back to memory and drops it from every
 * cache level, with CLFLUSHOPT. Only where lowbit_cpu_features() has LOWBIT_CPU_CLFLUSHOPT. */
LOWBIT_CPU_INTERNAL void lowbit_cpu_flush(const void *address, size_t bytes);

/* Returns the allocator's free memory to the system (glibc's malloc_trim; elsewhere nothing). */
LOWBIT_CPU_INTERNAL void lowbit_release_free_memory(void);

#endif
