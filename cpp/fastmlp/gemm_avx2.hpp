// AVX2+FMA register-blocked micro-kernels for the GEMM engine (gemm.hpp): a 6 x 16 float
// and a 6 x 8 double tile, 12 ymm accumulators, one broadcast of A and two loads of B per
// step of k. A is read through one pointer per row and a common k stride (a[i][k * ks]), so
// the same kernel reads a packed sliver (a[i] = sliver + i, ks = MR) or A in place (its own
// rows, ks = 1; or da^T, ks = the row stride of da): small products skip packing A. Compiled with target attributes, so the rest of the module stays baseline x86-64;
// only called after isa.hpp has seen AVX2 and FMA on the CPU.
#pragma once

#include <cstdint>

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define FASTMLP_HAVE_AVX2_KERNELS 1
#include <immintrin.h>

namespace fastmlp {

struct Avx2KernelF32 {
    static constexpr int MR = 6, NR = 16;
    // c (MR x NR, row stride ldc) = sum over k of (a[0][k ks], ..., a[5][k ks]) (a column of MR)
    // x b[k] (a row of NR), one fused multiply-add per k in k order from zero: each element is
    // one FMA chain over the block, whether A was packed or not.
    __attribute__((target("avx2,fma"))) static void run(std::int64_t kc, const float* const* a, std::int64_t ks,
                                                         const float* b, float* c, std::int64_t ldc) {
        const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
        __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
        for (std::int64_t k = 0, o = 0; k < kc; ++k, o += ks, b += NR) {
            const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
            __m256 ai = _mm256_broadcast_ss(a0 + o);
            c00 = _mm256_fmadd_ps(ai, b0, c00); c01 = _mm256_fmadd_ps(ai, b1, c01);
            ai = _mm256_broadcast_ss(a1 + o);
            c10 = _mm256_fmadd_ps(ai, b0, c10); c11 = _mm256_fmadd_ps(ai, b1, c11);
            ai = _mm256_broadcast_ss(a2 + o);
            c20 = _mm256_fmadd_ps(ai, b0, c20); c21 = _mm256_fmadd_ps(ai, b1, c21);
            ai = _mm256_broadcast_ss(a3 + o);
            c30 = _mm256_fmadd_ps(ai, b0, c30); c31 = _mm256_fmadd_ps(ai, b1, c31);
            ai = _mm256_broadcast_ss(a4 + o);
            c40 = _mm256_fmadd_ps(ai, b0, c40); c41 = _mm256_fmadd_ps(ai, b1, c41);
            ai = _mm256_broadcast_ss(a5 + o);
            c50 = _mm256_fmadd_ps(ai, b0, c50); c51 = _mm256_fmadd_ps(ai, b1, c51);
        }
        _mm256_storeu_ps(c + 0 * ldc, c00); _mm256_storeu_ps(c + 0 * ldc + 8, c01);
        _mm256_storeu_ps(c + 1 * ldc, c10); _mm256_storeu_ps(c + 1 * ldc + 8, c11);
        _mm256_storeu_ps(c + 2 * ldc, c20); _mm256_storeu_ps(c + 2 * ldc + 8, c21);
        _mm256_storeu_ps(c + 3 * ldc, c30); _mm256_storeu_ps(c + 3 * ldc + 8, c31);
        _mm256_storeu_ps(c + 4 * ldc, c40); _mm256_storeu_ps(c + 4 * ldc + 8, c41);
        _mm256_storeu_ps(c + 5 * ldc, c50); _mm256_storeu_ps(c + 5 * ldc + 8, c51);
    }
};

struct Avx2KernelF64 {
    static constexpr int MR = 6, NR = 8;
    __attribute__((target("avx2,fma"))) static void run(std::int64_t kc, const double* const* a, std::int64_t ks,
                                                         const double* b, double* c, std::int64_t ldc) {
        const double *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
        __m256d c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_pd();
        for (std::int64_t k = 0, o = 0; k < kc; ++k, o += ks, b += NR) {
            const __m256d b0 = _mm256_load_pd(b), b1 = _mm256_load_pd(b + 4);
            __m256d ai = _mm256_broadcast_sd(a0 + o);
            c00 = _mm256_fmadd_pd(ai, b0, c00); c01 = _mm256_fmadd_pd(ai, b1, c01);
            ai = _mm256_broadcast_sd(a1 + o);
            c10 = _mm256_fmadd_pd(ai, b0, c10); c11 = _mm256_fmadd_pd(ai, b1, c11);
            ai = _mm256_broadcast_sd(a2 + o);
            c20 = _mm256_fmadd_pd(ai, b0, c20); c21 = _mm256_fmadd_pd(ai, b1, c21);
            ai = _mm256_broadcast_sd(a3 + o);
            c30 = _mm256_fmadd_pd(ai, b0, c30); c31 = _mm256_fmadd_pd(ai, b1, c31);
            ai = _mm256_broadcast_sd(a4 + o);
            c40 = _mm256_fmadd_pd(ai, b0, c40); c41 = _mm256_fmadd_pd(ai, b1, c41);
            ai = _mm256_broadcast_sd(a5 + o);
            c50 = _mm256_fmadd_pd(ai, b0, c50); c51 = _mm256_fmadd_pd(ai, b1, c51);
        }
        _mm256_storeu_pd(c + 0 * ldc, c00); _mm256_storeu_pd(c + 0 * ldc + 4, c01);
        _mm256_storeu_pd(c + 1 * ldc, c10); _mm256_storeu_pd(c + 1 * ldc + 4, c11);
        _mm256_storeu_pd(c + 2 * ldc, c20); _mm256_storeu_pd(c + 2 * ldc + 4, c21);
        _mm256_storeu_pd(c + 3 * ldc, c30); _mm256_storeu_pd(c + 3 * ldc + 4, c31);
        _mm256_storeu_pd(c + 4 * ldc, c40); _mm256_storeu_pd(c + 4 * ldc + 4, c41);
        _mm256_storeu_pd(c + 5 * ldc, c50); _mm256_storeu_pd(c + 5 * ldc + 4, c51);
    }
};

}  // namespace fastmlp
#endif
