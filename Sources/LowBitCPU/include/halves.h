#ifndef LOWBIT_HALVES_H
#define LOWBIT_HALVES_H

#if defined(__x86_64__)
#include <immintrin.h>

/* Eight floats to Float16, rounded to the nearest (ties to even): F16C's vcvtps2ph. Swift cannot
 * call _mm256_cvtps_ph, a macro whose rounding mode must be an immediate. Only the AVX2 and
 * later tiers call it (their CPUs have F16C). */
__attribute__((target("avx,f16c")))
static inline __m128i lowbit_halves8(__m256 v) { return _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT); }
#endif

#endif
