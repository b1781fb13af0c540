// AVX-512 register-blocked micro-kernels for the GEMM engine (gemm.hpp): an 8 x 32 float and
// an 8 x 16 double tile, 16 zmm accumulators, one broadcast of A and two loads of B per step of
// k. The tile contract is the AVX2 kernels' (gemm_avx2.hpp): row i of the A sliver is
// a[i][k * ks], accumulate adds the chain to c, a step replaces the store by w -= lr * tile.
//
// Every element is the same FMA chain in k order from zero as on the AVX2 path (a fused
// multiply-add is the same operation at any vector width), so this path gives bitwise the AVX2
// path's results: only the number of elements per instruction changes, twice AVX2's, which
// halves the instructions of the product on a CPU that executes 512-bit FMAs at full rate.
//
// Why 8 x 32: 8 rows divide the usual batch sizes (32, 128, 256) and widths (128, 256, 4096)
// with no padded row or column, and the 8 row pointers of A stay in registers (with 12 rows
// some spill, and a gathered minibatch's rows are arbitrary pointers). 16 chains cover the FMA
// latency (4 cycles x 2 ports), and the 10 loads per 16 FMAs leave the load ports room.
// Compiled with target attributes, like the AVX2 kernels; only called after isa.hpp has seen
// AVX-512F (and AVX2 + FMA) on the CPU and the OS saving the zmm state.
#pragma once

#include <cstdint>

#include "gemm_avx2.hpp"
#include "tile_step.hpp"

#ifdef FASTMLP_HAVE_AVX2_KERNELS
#define FASTMLP_HAVE_AVX512_KERNELS 1

namespace fastmlp {

#define FASTMLP_AVX512_TARGET __attribute__((target("avx512f,avx2,fma"), always_inline)) inline

// The few intrinsics the kernel needs, by element type: zmm holds 16 floats or 8 doubles.
template <class T>
struct Zmm;

template <>
struct Zmm<float> {
    using V = __m512;
    static constexpr int lanes = 16;
    static FASTMLP_AVX512_TARGET V zero() { return _mm512_setzero_ps(); }
    static FASTMLP_AVX512_TARGET V load(const float* p) { return _mm512_load_ps(p); }
    static FASTMLP_AVX512_TARGET V loadu(const float* p) { return _mm512_loadu_ps(p); }
    static FASTMLP_AVX512_TARGET void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
    static FASTMLP_AVX512_TARGET V broadcast(const float* p) { return _mm512_set1_ps(*p); }
    static FASTMLP_AVX512_TARGET V set1(float x) { return _mm512_set1_ps(x); }
    static FASTMLP_AVX512_TARGET V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    static FASTMLP_AVX512_TARGET V add(V a, V b) { return _mm512_add_ps(a, b); }
    static FASTMLP_AVX512_TARGET V sub(V a, V b) { return _mm512_sub_ps(a, b); }
    static FASTMLP_AVX512_TARGET V mul(V a, V b) { return _mm512_mul_ps(a, b); }
    static FASTMLP_AVX512_TARGET __mmask16 unordered(V a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
};

template <>
struct Zmm<double> {
    using V = __m512d;
    static constexpr int lanes = 8;
    static FASTMLP_AVX512_TARGET V zero() { return _mm512_setzero_pd(); }
    static FASTMLP_AVX512_TARGET V load(const double* p) { return _mm512_load_pd(p); }
    static FASTMLP_AVX512_TARGET V loadu(const double* p) { return _mm512_loadu_pd(p); }
    static FASTMLP_AVX512_TARGET void storeu(double* p, V v) { _mm512_storeu_pd(p, v); }
    static FASTMLP_AVX512_TARGET V broadcast(const double* p) { return _mm512_set1_pd(*p); }
    static FASTMLP_AVX512_TARGET V set1(double x) { return _mm512_set1_pd(x); }
    static FASTMLP_AVX512_TARGET V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
    static FASTMLP_AVX512_TARGET V add(V a, V b) { return _mm512_add_pd(a, b); }
    static FASTMLP_AVX512_TARGET V sub(V a, V b) { return _mm512_sub_pd(a, b); }
    static FASTMLP_AVX512_TARGET V mul(V a, V b) { return _mm512_mul_pd(a, b); }
    static FASTMLP_AVX512_TARGET __mmask8 unordered(V a) { return _mm512_cmp_pd_mask(a, a, _CMP_UNORD_Q); }
};

// One template for both element types, unlike the AVX2 twins: the operations are the same
// eight, named once in Zmm<T> above, and the 8 x 2 accumulators are an array the compiler keeps
// in registers (every loop over them has a constant trip count and is unrolled).
template <class T>
struct Avx512Kernel {
    using Z = Zmm<T>;
    using V = typename Z::V;
    static constexpr int MR = 8, NR = 2 * Z::lanes;
    // A one-row product (one sample predicted) reads all of W for a few FMAs per value: it is
    // bound by memory, not by the vector width, and gemm() gives it to the AVX2 kernel's
    // one-row paths, which compute the same chains. So do products narrower than one sliver.
    static constexpr bool has_run_row = false;
    static constexpr bool has_run_row_transposed = false;
    static constexpr bool has_pack_transposed = true;

    // One full sliver of B = W^T (forward product), as the AVX2 kernels pack it, with register
    // transposes over 32 float or 16 double columns instead of 16 or 8: a pure copy.
    __attribute__((target("avx512f,avx2,fma"))) static void pack_transposed(float* dst, const float* src,
                                                                            std::int64_t cs, std::int64_t kc) {
        pack_transposed_f32<NR>(dst, src, cs, kc);
    }
    __attribute__((target("avx512f,avx2,fma"))) static void pack_transposed(double* dst, const double* src,
                                                                            std::int64_t cs, std::int64_t kc) {
        pack_transposed_f64<NR>(dst, src, cs, kc);
    }

    // The end of one row of a tile, r0 | r1: see finish_row in gemm_avx2.hpp (the same
    // operations: c added when accumulating; else stored, or w -= lr * row with the product
    // rounded before the subtraction, and the lanes whose new weight is not finite noted).
    static FASTMLP_AVX512_TARGET void finish_row(V r0, V r1, T* c, bool accumulate, T* w, V lr, unsigned& bad) {
        constexpr int H = Z::lanes;
        if (accumulate) {
            r0 = Z::add(Z::loadu(c), r0);
            r1 = Z::add(Z::loadu(c + H), r1);
        }
        if (w == nullptr) {
            Z::storeu(c, r0);
            Z::storeu(c + H, r1);
            return;
        }
        V s0 = Z::mul(lr, r0), s1 = Z::mul(lr, r1);
        __asm__("" : "+v"(s0), "+v"(s1));  // no contraction into an FMA: the bits of sgd_update
        const V w0 = Z::sub(Z::loadu(w), s0), w1 = Z::sub(Z::loadu(w + H), s1);
        Z::storeu(w, w0);
        Z::storeu(w + H, w1);
        bad |=
            static_cast<unsigned>(Z::unordered(Z::sub(w0, w0))) | static_cast<unsigned>(Z::unordered(Z::sub(w1, w1)));
    }

    // c (MR x NR, row stride ldc) = the MR x NR tile's chains over kc values of k; see the AVX2
    // kernels' run for accumulate and the step. Returns whether a new weight is NaN or infinite.
    __attribute__((target("avx512f,avx2,fma"))) static bool run(std::int64_t kc, const T* const* a, std::int64_t ks,
                                                                const T* b, T* c, std::int64_t ldc, bool accumulate,
                                                                const TileStep<T>* step) {
        constexpr int H = Z::lanes;
        const T* ar[MR];
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) ar[i] = a[i];
        T* const w = step ? step->w : nullptr;
        const std::int64_t ldw = step ? step->ld : 0;
        if (accumulate || w == nullptr) prefetch_tile<MR, NR>(c, ldc);
        if (w != nullptr) prefetch_tile<MR, NR>(w, ldw);
        V acc0[MR], acc1[MR];
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) acc0[i] = acc1[i] = Z::zero();
        for (std::int64_t k = 0, o = 0; k < kc; ++k, o += ks, b += NR) {
            const V b0 = Z::load(b), b1 = Z::load(b + H);
#pragma GCC unroll 8
            for (int i = 0; i < MR; ++i) {
                const V ai = Z::broadcast(ar[i] + o);
                acc0[i] = Z::fma(ai, b0, acc0[i]);
                acc1[i] = Z::fma(ai, b1, acc1[i]);
            }
        }
        const V vlr = Z::set1(step ? step->lr : T(0));
        unsigned bad = 0;
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i)
            finish_row(acc0[i], acc1[i], c + i * ldc, accumulate, w ? w + i * ldw : w, vlr, bad);
        return bad != 0;
    }
};

#undef FASTMLP_AVX512_TARGET

}  // namespace fastmlp
#endif
