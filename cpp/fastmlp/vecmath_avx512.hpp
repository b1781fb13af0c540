// Sixteen-lane float gelu and silu (and the exp, sigmoid and normal distribution function they
// are made of) for the AVX-512 path: the two activations whose g and g' cost a polynomial, an
// exponential and a division per value, where half the instructions of the AVX2 code pay.
//
// Each function is vecmath_avx2.hpp's float function of the same name, operation for
// operation: the same constants, the same fused multiply-adds in the same order, the same
// rounding of n in exp; a vector blend becomes a mask blend of the same comparison and an AND
// with a comparison's all-ones/all-zeros lanes becomes a zeroing move. Every lane therefore
// gives the AVX2 lane's bits (tests/kernels/test_isa_agreement.py pins them), and the accuracy
// notes of vecmath_avx2.hpp hold as written there. Only AVX-512F is used; compiled with target
// attributes and only called after isa.hpp has seen AVX-512F (and AVX2 + FMA).
#pragma once

#include <cstdint>
#include <cstring>

#include "vecmath_avx2.hpp"

#ifdef FASTMLP_HAVE_AVX2_VECMATH
#define FASTMLP_HAVE_AVX512_VECMATH 1
#define FASTMLP_AVX512 __attribute__((target("avx512f,avx2,fma")))

namespace fastmlp {
namespace avx512 {

// e^x: avx2::exp (Cody-Waite reduction, degree-7 Taylor polynomial, 2^n through the exponent).
FASTMLP_AVX512 inline __m512 exp(__m512 x) {
    x = _mm512_min_ps(_mm512_set1_ps(88.7f), _mm512_max_ps(_mm512_set1_ps(-87.3f), x));  // keeps NaN
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
}

// The logistic function: avx2::sigmoid.
FASTMLP_AVX512 inline __m512 sigmoid(__m512 x) {
    const __m512 ax = _mm512_abs_ps(x);
    const __m512 e = exp(_mm512_sub_ps(_mm512_setzero_ps(), ax));
    const __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    const __mmask16 negative = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    return _mm512_mask_blend_ps(negative, inv, _mm512_mul_ps(e, inv));
}

// silu and its g' from a: avx2::silu, avx2::silu_backward.
FASTMLP_AVX512 inline __m512 silu(__m512 a) { return _mm512_mul_ps(a, sigmoid(a)); }
FASTMLP_AVX512 inline __m512 silu_backward(__m512 dh, __m512 a) {
    const __m512 s = sigmoid(a);
    const __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_mul_ps(dh, _mm512_mul_ps(s, _mm512_add_ps(one, _mm512_mul_ps(a, _mm512_sub_ps(one, s)))));
}

// Φ(a) and e^{-a²/2}: avx2::normal_cdf (the same two fits and the same split of a²).
FASTMLP_AVX512 inline __m512 normal_cdf(__m512 a, __m512& e) {
    const __m512 ax = _mm512_abs_ps(a);
    const __m512 z = _mm512_mul_ps(a, a);
    __m512 p = _mm512_set1_ps(-8.43098065751724e-06f);
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(0.00011483375127132808f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-0.001187162948369777f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(0.009973536479800892f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-0.0664903791378128f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(0.3989422803946615f));
    const __m512 central = _mm512_fmadd_ps(a, p, _mm512_set1_ps(0.5f));
    const __m512 t =
        _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(ax, _mm512_set1_ps(0.5f), _mm512_set1_ps(1.0f)));
    __m512 q = _mm512_set1_ps(-0.1690624417540855f);
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(0.7839605609392227f));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(-1.5096138074907786f));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(1.4704850144568389f));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(-0.6547858506180232f));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(0.07679810206378693f));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(-0.10122277220711845f));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(0.055228713685905956f));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(0.1491292738028735f));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(0.19949540665603122f));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(0.19947059473909698f));
    // (a² - hi) / 2, zeroed (+0, as AVX2's AND) past |a| = 16 and for ±inf.
    const __m512 half_lo = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(ax, _mm512_set1_ps(16.0f), _CMP_LT_OQ),
                                               _mm512_mul_ps(_mm512_fmsub_ps(a, a, z), _mm512_set1_ps(0.5f)));
    const __m512 e_hi = exp(_mm512_mul_ps(z, _mm512_set1_ps(-0.5f)));
    e = _mm512_fnmadd_ps(e_hi, half_lo, e_hi);
    const __m512 left = _mm512_mul_ps(e, _mm512_mul_ps(t, q));  // Φ(-|a|)
    const __m512 tail = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_LT_OQ),
                                             _mm512_sub_ps(_mm512_set1_ps(1.0f), left), left);
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(ax, _mm512_set1_ps(0.75f), _CMP_LE_OQ), tail, central);
}

// gelu a Φ(a), and its g' Φ(a) + a φ(a) from a: avx2::gelu, avx2::gelu_backward.
FASTMLP_AVX512 inline __m512 gelu(__m512 a) {
    __m512 e;
    return _mm512_mul_ps(a, normal_cdf(a, e));
}
FASTMLP_AVX512 inline __m512 gelu_backward(__m512 dh, __m512 a) {
    __m512 e;
    const __m512 cdf = normal_cdf(a, e);
    const __m512 pdf = _mm512_mul_ps(e, _mm512_set1_ps(0.39894228040143267794f));
    return _mm512_mul_ps(dh, _mm512_fmadd_ps(a, pdf, cdf));
}

// h = f(a) over n floats (h may alias a), 16 at a time; the tail through the same vector code
// on a padded copy, so a value's result never depends on its position in the row.
template <class F>
FASTMLP_AVX512 void map1(float* h, const float* a, std::int64_t n, F f) {
    constexpr int L = 16;
    std::int64_t i = 0;
    for (; i + L <= n; i += L) _mm512_storeu_ps(h + i, f(_mm512_loadu_ps(a + i)));
    if (i < n) {
        alignas(64) float buf[L] = {};
        std::memcpy(buf, a + i, sizeof(float) * (n - i));
        _mm512_store_ps(buf, f(_mm512_load_ps(buf)));
        std::memcpy(h + i, buf, sizeof(float) * (n - i));
    }
}

// out = f(x, y) over n floats (out may alias x or y), as map1.
template <class F>
FASTMLP_AVX512 void map2(float* out, const float* x, const float* y, std::int64_t n, F f) {
    constexpr int L = 16;
    std::int64_t i = 0;
    for (; i + L <= n; i += L) _mm512_storeu_ps(out + i, f(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        alignas(64) float bx[L] = {}, by[L] = {};
        std::memcpy(bx, x + i, sizeof(float) * (n - i));
        std::memcpy(by, y + i, sizeof(float) * (n - i));
        _mm512_store_ps(bx, f(_mm512_load_ps(bx), _mm512_load_ps(by)));
        std::memcpy(out + i, bx, sizeof(float) * (n - i));
    }
}

}  // namespace avx512
}  // namespace fastmlp
#endif
