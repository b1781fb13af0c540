// AVX2+FMA register-blocked micro-kernels for the GEMM engine (gemm.hpp): a 6 x 16 float
// and a 6 x 8 double tile, 12 ymm accumulators, one broadcast of A and two loads of B per
// step of k. A is read through one pointer per row and a common k stride (a[i][k * ks]), so
// the same kernel reads a packed sliver (a[i] = sliver + i, ks = MR) or A in place (its own
// rows, ks = 1; or da^T, ks = the row stride of da): small products skip packing A. Compiled with target attributes, so
// the rest of the module stays baseline x86-64; only called after isa.hpp has seen AVX2 and FMA on the CPU.
#pragma once

#include <cstdint>

#include "tile_step.hpp"

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define FASTMLP_HAVE_AVX2_KERNELS 1
#include <immintrin.h>

namespace fastmlp {

// Asks for the MR rows of a C tile (one or two cache lines each) at the start of a micro-kernel
// call, so that they have arrived by the time the tile is stored or accumulated into, a
// thousand cycles later. Without it, a C too large for L2 (256 x 4096 floats: the forward and
// input-gradient products of a 4096-wide layer) stalls every tile on its rows' misses, and
// each of the products' 16 blocks of k revisits all of C: 6-7 % of their time, measured.
template <int MR, int NR, class T>
__attribute__((always_inline)) inline void prefetch_tile(const T* c, std::int64_t ldc) {
    for (int i = 0; i < MR; ++i) {
        _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NR - 1), _MM_HINT_T0);
    }
}

// The end of a micro-kernel call for one row of its tile, held in two registers r0 | r1: add
// what c holds (accumulate), then either store the row into c, or take the SGD step
// w -= lr * row on the weights instead (c is then left as it was), or-ing into `bad` the lanes
// whose new weight is NaN or infinite (x - x is NaN exactly then): the caller learns whether
// the step left every weight finite without a second pass over them.
// The product lr * row is rounded before the subtraction, as in sgd_update and the generic
// path: the empty asm keeps the compiler from contracting the two into one FMA, which would
// change the bits.
__attribute__((target("avx2,fma"), always_inline)) inline void finish_row(__m256 r0, __m256 r1, float* c,
                                                                          bool accumulate, float* w, __m256 lr,
                                                                          __m256& bad) {
    if (accumulate) {
        r0 = _mm256_add_ps(_mm256_loadu_ps(c), r0);
        r1 = _mm256_add_ps(_mm256_loadu_ps(c + 8), r1);
    }
    if (w == nullptr) {
        _mm256_storeu_ps(c, r0);
        _mm256_storeu_ps(c + 8, r1);
        return;
    }
    __m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + 8);
    __m256 s0 = _mm256_mul_ps(lr, r0), s1 = _mm256_mul_ps(lr, r1);
    __asm__("" : "+x"(s0), "+x"(s1));
    w0 = _mm256_sub_ps(w0, s0);
    w1 = _mm256_sub_ps(w1, s1);
    _mm256_storeu_ps(w, w0);
    _mm256_storeu_ps(w + 8, w1);
    const __m256 d0 = _mm256_sub_ps(w0, w0), d1 = _mm256_sub_ps(w1, w1);
    bad = _mm256_or_ps(bad, _mm256_or_ps(_mm256_cmp_ps(d0, d0, _CMP_UNORD_Q), _mm256_cmp_ps(d1, d1, _CMP_UNORD_Q)));
}

__attribute__((target("avx2,fma"), always_inline)) inline void finish_row(__m256d r0, __m256d r1, double* c,
                                                                          bool accumulate, double* w, __m256d lr,
                                                                          __m256d& bad) {
    if (accumulate) {
        r0 = _mm256_add_pd(_mm256_loadu_pd(c), r0);
        r1 = _mm256_add_pd(_mm256_loadu_pd(c + 4), r1);
    }
    if (w == nullptr) {
        _mm256_storeu_pd(c, r0);
        _mm256_storeu_pd(c + 4, r1);
        return;
    }
    __m256d w0 = _mm256_loadu_pd(w), w1 = _mm256_loadu_pd(w + 4);
    __m256d s0 = _mm256_mul_pd(lr, r0), s1 = _mm256_mul_pd(lr, r1);
    __asm__("" : "+x"(s0), "+x"(s1));
    w0 = _mm256_sub_pd(w0, s0);
    w1 = _mm256_sub_pd(w1, s1);
    _mm256_storeu_pd(w, w0);
    _mm256_storeu_pd(w + 4, w1);
    const __m256d d0 = _mm256_sub_pd(w0, w0), d1 = _mm256_sub_pd(w1, w1);
    bad = _mm256_or_pd(bad, _mm256_or_pd(_mm256_cmp_pd(d0, d0, _CMP_UNORD_Q), _mm256_cmp_pd(d1, d1, _CMP_UNORD_Q)));
}

// The one-row micro-kernel of both element types: out[s * NR + j] = sum over k of a[k ks] x
// b_s[k * NR + j] for S packed slivers b_s = b + s * stride, one FMA chain per element in k
// order from zero: bitwise the chain the MR x NR kernels give that element (the row they would
// compute as row 0 of a tile). A product of one row (predicting one sample) would otherwise run
// the 6-row kernel on five copies of its row; with S slivers at once, 2 S independent chains
// hide the FMA latency that one sliver's two chains cannot.
template <int S, class V, class T, V (*Load)(const T*), V (*Bcast)(const T*), V (*Fma)(V, V, V), void (*Store)(T*, V),
          int NR>
__attribute__((target("avx2,fma"), always_inline)) inline void row_chains(std::int64_t kc, const T* a, std::int64_t ks,
                                                                          const T* b, std::int64_t stride, T* out,
                                                                          V zero) {
    constexpr int H = NR / 2;  // lanes of one register
    V acc[2 * S];
    for (int i = 0; i < 2 * S; ++i) acc[i] = zero;
    for (std::int64_t k = 0, o = 0; k < kc; ++k, o += ks, b += NR) {
        const V ai = Bcast(a + o);
        for (int s = 0; s < S; ++s) {
            acc[2 * s] = Fma(ai, Load(b + s * stride), acc[2 * s]);
            acc[2 * s + 1] = Fma(ai, Load(b + s * stride + H), acc[2 * s + 1]);
        }
    }
    for (int s = 0; s < S; ++s) {
        Store(out + s * NR, acc[2 * s]);
        Store(out + s * NR + H, acc[2 * s + 1]);
    }
}

__attribute__((target("avx2,fma"), always_inline)) inline __m256 ld_ps(const float* p) { return _mm256_load_ps(p); }
__attribute__((target("avx2,fma"), always_inline)) inline __m256 bc_ps(const float* p) {
    return _mm256_broadcast_ss(p);
}
__attribute__((target("avx2,fma"), always_inline)) inline __m256 fma_ps(__m256 a, __m256 b, __m256 c) {
    return _mm256_fmadd_ps(a, b, c);
}
__attribute__((target("avx2,fma"), always_inline)) inline void st_ps(float* p, __m256 v) { _mm256_store_ps(p, v); }
__attribute__((target("avx2,fma"), always_inline)) inline __m256d ld_pd(const double* p) { return _mm256_load_pd(p); }
__attribute__((target("avx2,fma"), always_inline)) inline __m256d bc_pd(const double* p) {
    return _mm256_broadcast_sd(p);
}
__attribute__((target("avx2,fma"), always_inline)) inline __m256d fma_pd(__m256d a, __m256d b, __m256d c) {
    return _mm256_fmadd_pd(a, b, c);
}
__attribute__((target("avx2,fma"), always_inline)) inline void st_pd(double* p, __m256d v) { _mm256_store_pd(p, v); }

// Rows i and i + 4 of s, four values each: the low and high lanes of one register.
__attribute__((target("avx2,fma"), always_inline)) inline __m256 load_row_pair(const float* p, std::int64_t cs) {
    return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(p)), _mm_loadu_ps(p + 4 * cs), 1);
}

// t[q] = (s[0][q], s[cs][q], ..., s[7 cs][q]) for q < 8: eight rows' values at eight
// consecutive k, turned into one register per k: the transpose of pack_transposed and of
// run_row_transposed. Row i and row i + 4 share a register from the start (each half loaded
// on its own, the upper one by vinsertf128 from memory, which runs on the load and ALU ports),
// so only the two in-lane rounds of a 4 x 4 transpose remain: 16 shuffles, not the 24 of three
// rounds. Intel runs 256-bit shuffles on one port: they bounded the one-row forward product.
__attribute__((target("avx2,fma"), always_inline)) inline void transpose8(const float* s, std::int64_t cs, __m256* t) {
    for (int half = 0; half < 2; ++half) {  // k + 4 half .. k + 4 half + 3
        const float* p = s + 4 * half;
        const __m256 r0 = load_row_pair(p, cs), r1 = load_row_pair(p + cs, cs), r2 = load_row_pair(p + 2 * cs, cs),
                     r3 = load_row_pair(p + 3 * cs, cs);
        const __m256 u0 = _mm256_unpacklo_ps(r0, r1), u1 = _mm256_unpackhi_ps(r0, r1);
        const __m256 u2 = _mm256_unpacklo_ps(r2, r3), u3 = _mm256_unpackhi_ps(r2, r3);
        t[4 * half + 0] = _mm256_shuffle_ps(u0, u2, 0x44);
        t[4 * half + 1] = _mm256_shuffle_ps(u0, u2, 0xEE);
        t[4 * half + 2] = _mm256_shuffle_ps(u1, u3, 0x44);
        t[4 * half + 3] = _mm256_shuffle_ps(u1, u3, 0xEE);
    }
}

// dst[k * NR + j] = src[j * cs + k] for j < NR, k < kc: one full sliver of B = W^T (the
// forward product), read along W's contiguous rows. Done as 8 x 8 register transposes, it is
// about four times faster than the element-by-element strided copy, which took 15 % of a
// 128 x 784 x 128 forward product. A pure copy: no value changes. NR: 16 (AVX2) or 32 (AVX-512).
template <int NR>
__attribute__((target("avx2,fma"))) void pack_transposed_f32(float* dst, const float* src, std::int64_t cs,
                                                             std::int64_t kc) {
    std::int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
        for (int h = 0; h < NR; h += 8) {
            __m256 t[8];  // t[q]: columns h..h+7 at k + q
            transpose8(src + h * cs + k, cs, t);
            for (int q = 0; q < 8; ++q) _mm256_store_ps(dst + (k + q) * NR + h, t[q]);
        }
    }
    for (; k < kc; ++k)
        for (int j = 0; j < NR; ++j) dst[k * NR + j] = src[j * cs + k];
}

// Rows i and i + 2 of s, two values each: the low and high halves of one register.
__attribute__((target("avx2,fma"), always_inline)) inline __m256d load_row_pair_pd(const double* p, std::int64_t cs) {
    return _mm256_insertf128_pd(_mm256_castpd128_pd256(_mm_loadu_pd(p)), _mm_loadu_pd(p + 2 * cs), 1);
}

// The float64 twin of pack_transposed_f32: dst[k * NR + j] = src[j * cs + k] for j < NR, k < kc,
// in 4 x 2 register transposes. Rows j and j + 2 share a register from the load (as in
// transpose8), so one unpack gives four rows at one k: two shuffles per eight values. The
// element-by-element strided copy it replaces was about 4 % of a float64 training step of
// 784-256-256-10, this pack 2.3 % (Zen 4, perf). A pure copy: no value changes. NR: 8 (AVX2) or
// 16 (AVX-512).
template <int NR>
__attribute__((target("avx2,fma"))) void pack_transposed_f64(double* dst, const double* src, std::int64_t cs,
                                                             std::int64_t kc) {
    std::int64_t k = 0;
    for (; k + 4 <= kc; k += 4) {
        for (int h = 0; h < NR; h += 4) {
            const double* s = src + h * cs + k;
            for (int half = 0; half < 2; ++half) {  // k + 2 half and k + 2 half + 1
                const __m256d r02 = load_row_pair_pd(s + 2 * half, cs), r13 = load_row_pair_pd(s + cs + 2 * half, cs);
                _mm256_store_pd(dst + (k + 2 * half) * NR + h, _mm256_unpacklo_pd(r02, r13));
                _mm256_store_pd(dst + (k + 2 * half + 1) * NR + h, _mm256_unpackhi_pd(r02, r13));
            }
        }
    }
    for (; k < kc; ++k)
        for (int j = 0; j < NR; ++j) dst[k * NR + j] = src[j * cs + k];
}

// Up to kRowSlivers slivers per call of the one-row kernel: 8 accumulators, a quarter of the
// FMA latency's worth of work each step (4 cycles x 2 ports).
constexpr int kRowSlivers = 4;

struct Avx2KernelF32 {
    static constexpr int MR = 6, NR = 16;
    static constexpr bool has_run_row = true;
    static constexpr int row_slivers = kRowSlivers;
    static constexpr bool has_pack_transposed = true;
    static constexpr bool has_run_row_transposed = true;

    // One full sliver of B = W^T: see pack_transposed_f32.
    __attribute__((target("avx2,fma"))) static void pack_transposed(float* dst, const float* src, std::int64_t cs,
                                                                    std::int64_t kc) {
        pack_transposed_f32<NR>(dst, src, cs, kc);
    }

    // One row against n (1..kRowSlivers) full slivers of B = W^T read in place, unpacked: column
    // j of sliver s is row s * NR + j of W, at w + (s * NR + j) * cs, its k values contiguous.
    // out (64-byte aligned) gets n * NR values, bitwise those of run_row on the packed slivers
    // (the same FMA chain per element, in k order from zero). Predicting one sample thus reads W
    // once instead of packing it first (the packing took two thirds of the time): eight values
    // of k of eight rows are loaded and transposed in registers, then fed to the chains.
    __attribute__((target("avx2,fma"))) static void run_row_transposed(std::int64_t kc, const float* a, std::int64_t ks,
                                                                       const float* w, std::int64_t cs, int n,
                                                                       float* out) {
        switch (n) {
            case 1:
                return row_chains_transposed<1>(kc, a, ks, w, cs, out);
            case 2:
                return row_chains_transposed<2>(kc, a, ks, w, cs, out);
            case 3:
                return row_chains_transposed<3>(kc, a, ks, w, cs, out);
            default:
                return row_chains_transposed<4>(kc, a, ks, w, cs, out);
        }
    }

    template <int S>
    __attribute__((target("avx2,fma"), always_inline)) static void row_chains_transposed(
        std::int64_t kc, const float* a, std::int64_t ks, const float* w, std::int64_t cs, float* out) {
        __m256 acc[2 * S];
        for (int i = 0; i < 2 * S; ++i) acc[i] = _mm256_setzero_ps();
        std::int64_t k = 0;
        for (; k + 8 <= kc; k += 8) {
            __m256 x[8];
            for (int q = 0; q < 8; ++q) x[q] = _mm256_broadcast_ss(a + (k + q) * ks);
            for (int h = 0; h < 2 * S; ++h) {  // eight columns (rows of W) at a time
                __m256 t[8];
                transpose8(w + h * 8 * cs + k, cs, t);
                for (int q = 0; q < 8; ++q) acc[h] = _mm256_fmadd_ps(x[q], t[q], acc[h]);
            }
        }
        for (; k < kc; ++k) {  // the last kc % 8 values of k, one strided gather each
            const __m256 xk = _mm256_broadcast_ss(a + k * ks);
            for (int h = 0; h < 2 * S; ++h) {
                const float* s = w + h * 8 * cs + k;
                const __m256 col =
                    _mm256_setr_ps(s[0], s[cs], s[2 * cs], s[3 * cs], s[4 * cs], s[5 * cs], s[6 * cs], s[7 * cs]);
                acc[h] = _mm256_fmadd_ps(xk, col, acc[h]);
            }
        }
        for (int h = 0; h < 2 * S; ++h) _mm256_store_ps(out + h * 8, acc[h]);
    }

    // One row against n (1..kRowSlivers) packed slivers, stride elements apart; out (64-byte
    // aligned) gets n * NR values: see row_chains.
    __attribute__((target("avx2,fma"))) static void run_row(std::int64_t kc, const float* a, std::int64_t ks,
                                                            const float* b, std::int64_t stride, int n, float* out) {
        const __m256 z = _mm256_setzero_ps();
        switch (n) {
            case 1:
                return row_chains<1, __m256, float, ld_ps, bc_ps, fma_ps, st_ps, NR>(kc, a, ks, b, stride, out, z);
            case 2:
                return row_chains<2, __m256, float, ld_ps, bc_ps, fma_ps, st_ps, NR>(kc, a, ks, b, stride, out, z);
            case 3:
                return row_chains<3, __m256, float, ld_ps, bc_ps, fma_ps, st_ps, NR>(kc, a, ks, b, stride, out, z);
            default:
                return row_chains<4, __m256, float, ld_ps, bc_ps, fma_ps, st_ps, NR>(kc, a, ks, b, stride, out, z);
        }
    }

    // c (MR x NR, row stride ldc) = sum over k of (a[0][k ks], ..., a[5][k ks]) (a column of MR)
    // x b[k] (a row of NR), one fused multiply-add per k in k order from zero: each element is
    // one FMA chain over the block, whether A was packed or not. With accumulate, the chain is
    // added to what c holds (a later block of k) instead of replacing it. With a step (the
    // weight gradient's last block of k, plain SGD), the tile is not stored: w -= lr * tile
    // (see finish_row); returns whether a new weight is NaN or infinite (false without a step).
    __attribute__((target("avx2,fma"))) static bool run(std::int64_t kc, const float* const* a, std::int64_t ks,
                                                        const float* b, float* c, std::int64_t ldc, bool accumulate,
                                                        const TileStep<float>* step) {
        const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
        float* const w = step ? step->w : nullptr;
        const std::int64_t ldw = step ? step->ld : 0;
        if (accumulate || w == nullptr) prefetch_tile<MR, NR>(c, ldc);
        if (w != nullptr) prefetch_tile<MR, NR>(w, ldw);
        __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
        for (std::int64_t k = 0, o = 0; k < kc; ++k, o += ks, b += NR) {
            const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
            __m256 ai = _mm256_broadcast_ss(a0 + o);
            c00 = _mm256_fmadd_ps(ai, b0, c00);
            c01 = _mm256_fmadd_ps(ai, b1, c01);
            ai = _mm256_broadcast_ss(a1 + o);
            c10 = _mm256_fmadd_ps(ai, b0, c10);
            c11 = _mm256_fmadd_ps(ai, b1, c11);
            ai = _mm256_broadcast_ss(a2 + o);
            c20 = _mm256_fmadd_ps(ai, b0, c20);
            c21 = _mm256_fmadd_ps(ai, b1, c21);
            ai = _mm256_broadcast_ss(a3 + o);
            c30 = _mm256_fmadd_ps(ai, b0, c30);
            c31 = _mm256_fmadd_ps(ai, b1, c31);
            ai = _mm256_broadcast_ss(a4 + o);
            c40 = _mm256_fmadd_ps(ai, b0, c40);
            c41 = _mm256_fmadd_ps(ai, b1, c41);
            ai = _mm256_broadcast_ss(a5 + o);
            c50 = _mm256_fmadd_ps(ai, b0, c50);
            c51 = _mm256_fmadd_ps(ai, b1, c51);
        }
        const __m256 vlr = _mm256_set1_ps(step ? step->lr : float(0));
        __m256 bad = _mm256_setzero_ps();
        auto row_of = [](auto* p, std::int64_t i, std::int64_t ld) { return p ? p + i * ld : p; };
        finish_row(c00, c01, c + 0 * ldc, accumulate, w, vlr, bad);
        finish_row(c10, c11, c + 1 * ldc, accumulate, row_of(w, 1, ldw), vlr, bad);
        finish_row(c20, c21, c + 2 * ldc, accumulate, row_of(w, 2, ldw), vlr, bad);
        finish_row(c30, c31, c + 3 * ldc, accumulate, row_of(w, 3, ldw), vlr, bad);
        finish_row(c40, c41, c + 4 * ldc, accumulate, row_of(w, 4, ldw), vlr, bad);
        finish_row(c50, c51, c + 5 * ldc, accumulate, row_of(w, 5, ldw), vlr, bad);
        return _mm256_movemask_ps(bad) != 0;
    }
};

// The float64 twin of the float32 kernel above, on purpose: the same MR x NR blocking and the
// same one-FMA-chain-per-element order, written with the double-precision intrinsics (4 lanes
// a register instead of 8); a template over the element type would hide which intrinsic runs.
struct Avx2KernelF64 {
    static constexpr int MR = 6, NR = 8;
    static constexpr bool has_run_row = true;
    static constexpr int row_slivers = kRowSlivers;
    static constexpr bool has_pack_transposed = true;
    static constexpr bool has_run_row_transposed = false;

    // One full sliver of B = W^T: see pack_transposed_f64.
    __attribute__((target("avx2,fma"))) static void pack_transposed(double* dst, const double* src, std::int64_t cs,
                                                                    std::int64_t kc) {
        pack_transposed_f64<NR>(dst, src, cs, kc);
    }
    __attribute__((target("avx2,fma"))) static void run_row(std::int64_t kc, const double* a, std::int64_t ks,
                                                            const double* b, std::int64_t stride, int n, double* out) {
        const __m256d z = _mm256_setzero_pd();
        switch (n) {
            case 1:
                return row_chains<1, __m256d, double, ld_pd, bc_pd, fma_pd, st_pd, NR>(kc, a, ks, b, stride, out, z);
            case 2:
                return row_chains<2, __m256d, double, ld_pd, bc_pd, fma_pd, st_pd, NR>(kc, a, ks, b, stride, out, z);
            case 3:
                return row_chains<3, __m256d, double, ld_pd, bc_pd, fma_pd, st_pd, NR>(kc, a, ks, b, stride, out, z);
            default:
                return row_chains<4, __m256d, double, ld_pd, bc_pd, fma_pd, st_pd, NR>(kc, a, ks, b, stride, out, z);
        }
    }
    __attribute__((target("avx2,fma"))) static bool run(std::int64_t kc, const double* const* a, std::int64_t ks,
                                                        const double* b, double* c, std::int64_t ldc, bool accumulate,
                                                        const TileStep<double>* step) {
        const double *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
        double* const w = step ? step->w : nullptr;
        const std::int64_t ldw = step ? step->ld : 0;
        if (accumulate || w == nullptr) prefetch_tile<MR, NR>(c, ldc);
        if (w != nullptr) prefetch_tile<MR, NR>(w, ldw);
        __m256d c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_pd();
        for (std::int64_t k = 0, o = 0; k < kc; ++k, o += ks, b += NR) {
            const __m256d b0 = _mm256_load_pd(b), b1 = _mm256_load_pd(b + 4);
            __m256d ai = _mm256_broadcast_sd(a0 + o);
            c00 = _mm256_fmadd_pd(ai, b0, c00);
            c01 = _mm256_fmadd_pd(ai, b1, c01);
            ai = _mm256_broadcast_sd(a1 + o);
            c10 = _mm256_fmadd_pd(ai, b0, c10);
            c11 = _mm256_fmadd_pd(ai, b1, c11);
            ai = _mm256_broadcast_sd(a2 + o);
            c20 = _mm256_fmadd_pd(ai, b0, c20);
            c21 = _mm256_fmadd_pd(ai, b1, c21);
            ai = _mm256_broadcast_sd(a3 + o);
            c30 = _mm256_fmadd_pd(ai, b0, c30);
            c31 = _mm256_fmadd_pd(ai, b1, c31);
            ai = _mm256_broadcast_sd(a4 + o);
            c40 = _mm256_fmadd_pd(ai, b0, c40);
            c41 = _mm256_fmadd_pd(ai, b1, c41);
            ai = _mm256_broadcast_sd(a5 + o);
            c50 = _mm256_fmadd_pd(ai, b0, c50);
            c51 = _mm256_fmadd_pd(ai, b1, c51);
        }
        const __m256d vlr = _mm256_set1_pd(step ? step->lr : double(0));
        __m256d bad = _mm256_setzero_pd();
        auto row_of = [](auto* p, std::int64_t i, std::int64_t ld) { return p ? p + i * ld : p; };
        finish_row(c00, c01, c + 0 * ldc, accumulate, w, vlr, bad);
        finish_row(c10, c11, c + 1 * ldc, accumulate, row_of(w, 1, ldw), vlr, bad);
        finish_row(c20, c21, c + 2 * ldc, accumulate, row_of(w, 2, ldw), vlr, bad);
        finish_row(c30, c31, c + 3 * ldc, accumulate, row_of(w, 3, ldw), vlr, bad);
        finish_row(c40, c41, c + 4 * ldc, accumulate, row_of(w, 4, ldw), vlr, bad);
        finish_row(c50, c51, c + 5 * ldc, accumulate, row_of(w, 5, ldw), vlr, bad);
        return _mm256_movemask_pd(bad) != 0;
    }
};

}  // namespace fastmlp
#endif
