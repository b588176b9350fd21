#include "cpu.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

/* XCR0 bits: SSE and AVX state (ymm); opmask, upper zmm0-15 and zmm16-31 state. */
#define XCR0_YMM 0x6u
#define XCR0_ZMM 0xE6u

static uint64_t read_xcr0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

uint32_t lowbit_cpu_features(void) {
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1;
    const int f16c = (c >> 29) & 1, popcnt = (c >> 23) & 1;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    const uint32_t leaf7b = b, leaf7c = c;
    uint32_t features = (leaf7b >> 23) & 1 ? LOWBIT_CPU_CLFLUSHOPT : 0;
    const uint64_t xcr0 = osxsave ? read_xcr0() : 0;
    const int avx2 = (leaf7b >> 5) & 1, bmi2 = (leaf7b >> 8) & 1;
    if ((xcr0 & XCR0_YMM) != XCR0_YMM || !(avx && avx2 && fma && f16c && bmi2 && popcnt)) return features;
    features |= LOWBIT_CPU_AVX2;
    const int f = (leaf7b >> 16) & 1, dq = (leaf7b >> 17) & 1, bw = (leaf7b >> 30) & 1, vl = (leaf7b >> 31) & 1;
    if ((xcr0 & XCR0_ZMM) != XCR0_ZMM || !(f && dq && bw && vl)) return features;
    features |= LOWBIT_CPU_AVX512;
    if ((leaf7c >> 11) & 1) features |= LOWBIT_CPU_AVX512_VNNI;
    if ((leaf7c >> 1) & 1) features |= LOWBIT_CPU_AVX512_VBMI;
    if ((leaf7c >> 14) & 1) features |= LOWBIT_CPU_AVX512_VPOPCNTDQ;
    return features;
}

__attribute__((target("clflushopt")))
void lowbit_cpu_flush(const void *address, size_t bytes) {
    const char *p = (const char *)address;
    for (size_t offset = 0; offset < bytes; offset += 64) _mm_clflushopt((void *)(p + offset));
    _mm_mfence();  /* orders later loads too: none may read a line the flush has yet to drop */
}

#else

uint32_t lowbit_cpu_features(void) { return 0; }
void lowbit_cpu_flush(const void *address, size_t bytes) { (void)address; (void)bytes; }

#endif

#if defined(__GLIBC__)
#include <malloc.h>
void lowbit_release_free_memory(void) { malloc_trim(0); }
#else
void lowbit_release_free_memory(void) {}
#endif
