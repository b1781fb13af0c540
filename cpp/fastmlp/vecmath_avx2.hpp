// Eight-lane float exp, tanh, sigmoid, expm1 (x <= 0), elu, silu, gelu, log1p (on [0, 1]) and softplus, and
// four-lane double exp, expm1, tanh, sigmoid, elu, silu, log1p and softplus, for the AVX2+FMA path: libm's scalar
// tanhf/expm1f took half the time of a small tanh network's training step. Polynomial approximations written for this
// file (Cody-Waite reduction for exp, the Taylor series of tanh near 0), accurate to a couple of ulp; compiled with
// target attributes and only called when isa.hpp has seen AVX2 and FMA. A row's tail goes through the same 8-lane code
// on a padded copy, so a value's result never depends on its position in the row.
#pragma once

#include <cstdint>
#include <cstring>

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define FASTMLP_HAVE_AVX2_VECMATH 1
#define FASTMLP_AVX2 __attribute__((target("avx2,fma")))
#include <immintrin.h>

namespace fastmlp {
namespace avx2 {

// e^x for x in [-87.3, 88.7] (inputs are clamped to it): x = n ln2 + r with |r| <= ln2/2, then
// e^r by its degree-7 Taylor polynomial (truncation below 0.2 ulp) and 2^n through the exponent.
__attribute__((target("avx2,fma"))) inline __m256 exp(__m256 x) {
    // This operand order keeps NaN (max/min return their second operand when either is NaN).
    x = _mm256_min_ps(_mm256_set1_ps(88.7f), _mm256_max_ps(_mm256_set1_ps(-87.3f), x));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);  // ln2 split: exact high part
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

// tanh: below |x| = 0.55 the odd Taylor series to x^17 (truncation under 0.1 ulp), above it
// 1 - 2 / (e^{2|x|} + 1), where no cancellation can hurt; the sign is copied back.
__attribute__((target("avx2,fma"))) inline __m256 tanh(__m256 x) {
    const __m256 sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0f));
    const __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
    const __m256 z = _mm256_mul_ps(x, x);
    // Coefficients of x^(2k+1), k = 1..8: 2^(2n) (2^(2n) - 1) B_2n / (2n)!
    __m256 q = _mm256_set1_ps(5.90027440945586e-4f);
    q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(-1.4558343870513183e-3f));
    q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(3.592128036572481e-3f));
    q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(-8.863235529902197e-3f));
    q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(2.1869488536155203e-2f));
    q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(-5.396825396825397e-2f));
    q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(0.13333333333333333f));
    q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(-0.3333333333333333f));
    const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(q, z), x, x);
    const __m256 e = exp(_mm256_add_ps(ax, ax));
    const __m256 large = _mm256_sub_ps(_mm256_set1_ps(1.0f),
                                       _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, _mm256_set1_ps(1.0f))));
    const __m256 use_small = _mm256_cmp_ps(ax, _mm256_set1_ps(0.55f), _CMP_NGE_UQ);  // NaN too: it stays NaN
    return _mm256_or_ps(_mm256_blendv_ps(large, small, use_small), sign);            // tanh(-0) = -0, as libm's
}

// The logistic function from e = e^{-|x|} <= 1: 1 / (1 + e) for x >= 0, e / (1 + e) below.
// (For x < -87.3 the clamped exp gives about 1e-38 instead of a smaller subnormal.)
__attribute__((target("avx2,fma"))) inline __m256 sigmoid(__m256 x) {
    const __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
    const __m256 e = exp(_mm256_sub_ps(_mm256_setzero_ps(), ax));
    const __m256 inv = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    const __m256 negative = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    return _mm256_blendv_ps(inv, _mm256_mul_ps(e, inv), negative);
}

// e^x - 1 for x <= 0 (elu's negative side; softplus' g' = -expm1(-h), h >= 0), without the
// cancellation of exp(x) - 1 near 0: above -0.5 the Taylor series x + x^2 (1/2! + x/3! + ...
// + x^7/9!) (truncation below 3e-10 relative), below it exp(x) - 1, whose result (<= -0.39)
// keeps exp's accuracy: a few ulp either way. Positive x gives exp(x) - 1, less accurately.
__attribute__((target("avx2,fma"))) inline __m256 expm1_nonpositive(__m256 x) {
    __m256 q = _mm256_set1_ps(1.0f / 362880);
    q = _mm256_fmadd_ps(q, x, _mm256_set1_ps(1.0f / 40320));
    q = _mm256_fmadd_ps(q, x, _mm256_set1_ps(1.0f / 5040));
    q = _mm256_fmadd_ps(q, x, _mm256_set1_ps(1.0f / 720));
    q = _mm256_fmadd_ps(q, x, _mm256_set1_ps(1.0f / 120));
    q = _mm256_fmadd_ps(q, x, _mm256_set1_ps(1.0f / 24));
    q = _mm256_fmadd_ps(q, x, _mm256_set1_ps(1.0f / 6));
    q = _mm256_fmadd_ps(q, x, _mm256_set1_ps(0.5f));
    const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(x, x), q, x);
    const __m256 large = _mm256_sub_ps(exp(x), _mm256_set1_ps(1.0f));
    const __m256 r = _mm256_blendv_ps(large, small, _mm256_cmp_ps(x, _mm256_set1_ps(-0.5f), _CMP_GT_OQ));
    return _mm256_or_ps(r, _mm256_and_ps(x, _mm256_set1_ps(-0.0f)));  // expm1(-0) = -0, as libm's
}

// elu: a above 0, e^a - 1 at or below it.
__attribute__((target("avx2,fma"))) inline __m256 elu(__m256 a) {
    // a itself above 0 and for NaN (exp's clamp would turn NaN into a number).
    return _mm256_blendv_ps(expm1_nonpositive(a), a, _mm256_cmp_ps(a, _mm256_setzero_ps(), _CMP_NLE_UQ));
}

// silu a sigmoid(a), and its g' s (1 + a (1 - s)) from a.
__attribute__((target("avx2,fma"))) inline __m256 silu(__m256 a) { return _mm256_mul_ps(a, sigmoid(a)); }
__attribute__((target("avx2,fma"))) inline __m256 silu_backward(__m256 dh, __m256 a) {
    const __m256 s = sigmoid(a);
    const __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_mul_ps(dh, _mm256_mul_ps(s, _mm256_add_ps(one, _mm256_mul_ps(a, _mm256_sub_ps(one, s)))));
}
// softplus' g' from h: -expm1(-h) (= sigmoid(a)).
__attribute__((target("avx2,fma"))) inline __m256 softplus_backward(__m256 dh, __m256 h) {
    const __m256 minus_h = _mm256_sub_ps(_mm256_setzero_ps(), h);
    return _mm256_mul_ps(dh, _mm256_sub_ps(_mm256_setzero_ps(), expm1_nonpositive(minus_h)));
}

// The normal distribution function Φ(a) and the density's exponential e^{-a²/2}, for gelu.
// |a| <= 0.75: Φ = 1/2 + a P(a²), P fitted to erf (degree 5, fit error 7e-11 relative).
// Beyond: Φ(-|a|) = e^{-a²/2} G(|a|) with G(x) = Φ(-x) e^{x²/2} fitted as t Q(t), t = 1/(1 + x/2),
// Q of degree 10 (fit error 2.3e-9 relative on [0.75, 14]); a² is split exactly with an FMA
// (a² = hi + lo) so that e^{-a²/2} = e^{-hi/2} (1 - lo/2) keeps exp's accuracy up to |a| = 13.
// Φ(-|a|) is then good to a few ulp relative in the left tail, where gelu's values are tiny.
// Past |a| = 13.2 exp's clamp gives e ≈ 1e-38 instead of less.
__attribute__((target("avx2,fma"))) inline __m256 normal_cdf(__m256 a, __m256& e) {
    const __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a);
    const __m256 z = _mm256_mul_ps(a, a);
    __m256 p = _mm256_set1_ps(-8.43098065751724e-06f);
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(0.00011483375127132808f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-0.001187162948369777f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(0.009973536479800892f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-0.0664903791378128f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(0.3989422803946615f));
    const __m256 central = _mm256_fmadd_ps(a, p, _mm256_set1_ps(0.5f));
    const __m256 t =
        _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(ax, _mm256_set1_ps(0.5f), _mm256_set1_ps(1.0f)));
    __m256 q = _mm256_set1_ps(-0.1690624417540855f);
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(0.7839605609392227f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(-1.5096138074907786f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(1.4704850144568389f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(-0.6547858506180232f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(0.07679810206378693f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(-0.10122277220711845f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(0.055228713685905956f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(0.1491292738028735f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(0.19949540665603122f));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(0.19947059473909698f));
    // (a² - hi) / 2, exact; 0 past |a| = 16 (exp is clamped there) and for ±inf (inf - inf).
    const __m256 half_lo = _mm256_and_ps(_mm256_mul_ps(_mm256_fmsub_ps(a, a, z), _mm256_set1_ps(0.5f)),
                                         _mm256_cmp_ps(ax, _mm256_set1_ps(16.0f), _CMP_LT_OQ));
    const __m256 e_hi = exp(_mm256_mul_ps(z, _mm256_set1_ps(-0.5f)));
    e = _mm256_fnmadd_ps(e_hi, half_lo, e_hi);
    const __m256 left = _mm256_mul_ps(e, _mm256_mul_ps(t, q));  // Φ(-|a|)
    const __m256 tail = _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(1.0f), left), left,
                                         _mm256_cmp_ps(a, _mm256_setzero_ps(), _CMP_LT_OQ));
    return _mm256_blendv_ps(tail, central, _mm256_cmp_ps(ax, _mm256_set1_ps(0.75f), _CMP_LE_OQ));
}

// gelu a Φ(a), and its g' Φ(a) + a φ(a) from a.
__attribute__((target("avx2,fma"))) inline __m256 gelu(__m256 a) {
    __m256 e;
    return _mm256_mul_ps(a, normal_cdf(a, e));
}
__attribute__((target("avx2,fma"))) inline __m256 gelu_backward(__m256 dh, __m256 a) {
    __m256 e;
    const __m256 cdf = normal_cdf(a, e);
    const __m256 pdf = _mm256_mul_ps(e, _mm256_set1_ps(0.39894228040143267794f));
    return _mm256_mul_ps(dh, _mm256_fmadd_ps(a, pdf, cdf));
}

// log(1 + u) for u in [0, 1] (softplus' g): 1 + u = 2^k (1 + f) with k = 0, f = u exactly below
// √2 - 1 and k = 1, f = (u - 1)/2 (one rounding, by an FMA) above; then log(1 + f) = 2 atanh(s),
// s = f / (2 + f), |s| <= 0.172, by its odd series to s^11 (truncation below 1e-9 relative), and
// k ln2 added in two parts. Within a couple of ulp, relative, down to u's smallest values.
__attribute__((target("avx2,fma"))) inline __m256 log1p_unit(__m256 u) {
    const __m256 above = _mm256_cmp_ps(u, _mm256_set1_ps(0.41421356f), _CMP_GT_OQ);
    const __m256 f = _mm256_blendv_ps(u, _mm256_fmadd_ps(u, _mm256_set1_ps(0.5f), _mm256_set1_ps(-0.5f)), above);
    const __m256 s = _mm256_div_ps(f, _mm256_add_ps(f, _mm256_set1_ps(2.0f)));
    const __m256 z = _mm256_mul_ps(s, s);
    __m256 p = _mm256_set1_ps(2.0f / 11);
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.0f / 9));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.0f / 7));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.0f / 5));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.0f / 3));
    const __m256 series = _mm256_fmadd_ps(_mm256_mul_ps(p, z), s, _mm256_add_ps(s, s));  // 2 atanh(s)
    const __m256 k_lo = _mm256_and_ps(above, _mm256_set1_ps(-2.12194440e-4f));
    const __m256 k_hi = _mm256_and_ps(above, _mm256_set1_ps(0.693359375f));
    return _mm256_add_ps(k_hi, _mm256_add_ps(k_lo, series));
}

// softplus log(1 + e^a) = max(a, 0) + log1p(e^-|a|): exp never overflows. max(0, a) keeps NaN.
__attribute__((target("avx2,fma"))) inline __m256 softplus(__m256 a) {
    const __m256 u = exp(_mm256_or_ps(a, _mm256_set1_ps(-0.0f)));  // e^-|a|
    return _mm256_add_ps(_mm256_max_ps(_mm256_setzero_ps(), a), log1p_unit(u));
}

// ---- Four-lane double versions, held to double's own accuracy (a few ulp) -------------------------
// A deliberate twin of the float functions above, not a template over the lane type: double needs
// longer polynomials, other reduction constants and clamps (e.g. exp's degree 13 against float's 7,
// -708 against -87.3) and 64-bit exponent arithmetic, so only the shape of each function repeats.

// x = n ln2 + r, |r| <= ln2/2 (ln2 in two parts, exact products for |n| <= 2^20), and e^r - 1 as
// r + r² (1/2! + r/3! + ... + r^11/13!) (truncation below 2e-17 relative). x is clamped to
// [-708, 709] first (2^n stays a normal number); the clamp's operand order keeps NaN.
__attribute__((target("avx2,fma"))) inline __m256d reduced_expm1(__m256d x, __m256d& two_n) {
    x = _mm256_min_pd(_mm256_set1_pd(709.0), _mm256_max_pd(_mm256_set1_pd(-708.0), x));
    const __m256d n = _mm256_round_pd(_mm256_mul_pd(x, _mm256_set1_pd(1.4426950408889634074)),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256d r = _mm256_fnmadd_pd(n, _mm256_set1_pd(6.93147180369123816490e-01), x);
    r = _mm256_fnmadd_pd(n, _mm256_set1_pd(1.90821492927058770002e-10), r);
    __m256d p = _mm256_set1_pd(1.0 / 6227020800.0);  // 1/13!
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 479001600.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 39916800.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 3628800.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 362880.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 40320.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 5040.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 720.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 120.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 24.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 6.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(0.5));
    const __m128i n32 = _mm256_cvtpd_epi32(n);
    const __m256i bits = _mm256_slli_epi64(_mm256_add_epi64(_mm256_cvtepi32_epi64(n32), _mm256_set1_epi64x(1023)), 52);
    two_n = _mm256_castsi256_pd(bits);
    return _mm256_fmadd_pd(_mm256_mul_pd(r, r), p, r);
}

// e^x = 2^n (1 + (e^r - 1)); 0 below -708 is about 3e-308 instead.
__attribute__((target("avx2,fma"))) inline __m256d exp(__m256d x) {
    __m256d two_n;
    const __m256d m = reduced_expm1(x, two_n);
    return _mm256_fmadd_pd(two_n, m, two_n);
}

// e^x - 1 = 2^n (e^r - 1) + (2^n - 1), 2^n - 1 exact for the n that matter: no cancellation near 0
// (n = 0 there), and at worst a bit of one where r and n have opposite signs.
__attribute__((target("avx2,fma"))) inline __m256d expm1(__m256d x) {
    __m256d two_n;
    const __m256d m = reduced_expm1(x, two_n);
    const __m256d r = _mm256_fmadd_pd(two_n, m, _mm256_sub_pd(two_n, _mm256_set1_pd(1.0)));
    return _mm256_or_pd(r, _mm256_and_pd(x, _mm256_set1_pd(-0.0)));  // expm1(-0) = -0, as libm's
}

// tanh |x| = e / (e + 2) with e = expm1(2|x|): no cancellation anywhere; the sign copied back.
__attribute__((target("avx2,fma"))) inline __m256d tanh(__m256d x) {
    const __m256d sign = _mm256_and_pd(x, _mm256_set1_pd(-0.0));
    const __m256d ax = _mm256_andnot_pd(_mm256_set1_pd(-0.0), x);
    const __m256d e = expm1(_mm256_add_pd(ax, ax));
    return _mm256_or_pd(_mm256_div_pd(e, _mm256_add_pd(e, _mm256_set1_pd(2.0))), sign);
}

// The logistic function from e = e^{-|x|} <= 1, as the float version.
__attribute__((target("avx2,fma"))) inline __m256d sigmoid(__m256d x) {
    const __m256d e = exp(_mm256_or_pd(x, _mm256_set1_pd(-0.0)));
    const __m256d inv = _mm256_div_pd(_mm256_set1_pd(1.0), _mm256_add_pd(_mm256_set1_pd(1.0), e));
    const __m256d negative = _mm256_cmp_pd(x, _mm256_setzero_pd(), _CMP_LT_OQ);
    return _mm256_blendv_pd(inv, _mm256_mul_pd(e, inv), negative);
}

__attribute__((target("avx2,fma"))) inline __m256d elu(__m256d a) {
    return _mm256_blendv_pd(expm1(a), a, _mm256_cmp_pd(a, _mm256_setzero_pd(), _CMP_NLE_UQ));
}
__attribute__((target("avx2,fma"))) inline __m256d silu(__m256d a) { return _mm256_mul_pd(a, sigmoid(a)); }
__attribute__((target("avx2,fma"))) inline __m256d silu_backward(__m256d dh, __m256d a) {
    const __m256d s = sigmoid(a);
    const __m256d one = _mm256_set1_pd(1.0);
    return _mm256_mul_pd(dh, _mm256_mul_pd(s, _mm256_add_pd(one, _mm256_mul_pd(a, _mm256_sub_pd(one, s)))));
}
__attribute__((target("avx2,fma"))) inline __m256d softplus_backward(__m256d dh, __m256d h) {
    const __m256d minus_h = _mm256_sub_pd(_mm256_setzero_pd(), h);
    return _mm256_mul_pd(dh, _mm256_sub_pd(_mm256_setzero_pd(), expm1(minus_h)));
}

// log(1 + u) for u in [0, 1], as the float version; the atanh series to s^21 (truncation below
// 3e-17 relative).
__attribute__((target("avx2,fma"))) inline __m256d log1p_unit(__m256d u) {
    const __m256d above = _mm256_cmp_pd(u, _mm256_set1_pd(0.41421356237309504880), _CMP_GT_OQ);
    const __m256d f = _mm256_blendv_pd(u, _mm256_fmadd_pd(u, _mm256_set1_pd(0.5), _mm256_set1_pd(-0.5)), above);
    const __m256d s = _mm256_div_pd(f, _mm256_add_pd(f, _mm256_set1_pd(2.0)));
    const __m256d z = _mm256_mul_pd(s, s);
    __m256d p = _mm256_set1_pd(2.0 / 21);
    p = _mm256_fmadd_pd(p, z, _mm256_set1_pd(2.0 / 19));
    p = _mm256_fmadd_pd(p, z, _mm256_set1_pd(2.0 / 17));
    p = _mm256_fmadd_pd(p, z, _mm256_set1_pd(2.0 / 15));
    p = _mm256_fmadd_pd(p, z, _mm256_set1_pd(2.0 / 13));
    p = _mm256_fmadd_pd(p, z, _mm256_set1_pd(2.0 / 11));
    p = _mm256_fmadd_pd(p, z, _mm256_set1_pd(2.0 / 9));
    p = _mm256_fmadd_pd(p, z, _mm256_set1_pd(2.0 / 7));
    p = _mm256_fmadd_pd(p, z, _mm256_set1_pd(2.0 / 5));
    p = _mm256_fmadd_pd(p, z, _mm256_set1_pd(2.0 / 3));
    const __m256d series = _mm256_fmadd_pd(_mm256_mul_pd(p, z), s, _mm256_add_pd(s, s));
    const __m256d k_lo = _mm256_and_pd(above, _mm256_set1_pd(1.90821492927058770002e-10));
    const __m256d k_hi = _mm256_and_pd(above, _mm256_set1_pd(6.93147180369123816490e-01));
    return _mm256_add_pd(k_hi, _mm256_add_pd(k_lo, series));
}
__attribute__((target("avx2,fma"))) inline __m256d softplus(__m256d a) {
    const __m256d u = exp(_mm256_or_pd(a, _mm256_set1_pd(-0.0)));
    return _mm256_add_pd(_mm256_max_pd(_mm256_setzero_pd(), a), log1p_unit(u));
}

// The Hadamard products with g' of the backward pass, g' written in terms of h = g(a).
// Blends and products, no branches: relu's mask is as unpredictable as the data.
__attribute__((target("avx2,fma"))) inline __m256 relu_backward(__m256 dh, __m256 h) {
    return _mm256_and_ps(dh, _mm256_cmp_ps(h, _mm256_setzero_ps(), _CMP_GT_OQ));
}
__attribute__((target("avx2,fma"))) inline __m256 tanh_backward(__m256 dh, __m256 h) {
    return _mm256_mul_ps(dh, _mm256_fnmadd_ps(h, h, _mm256_set1_ps(1.0f)));
}
__attribute__((target("avx2,fma"))) inline __m256 sigmoid_backward(__m256 dh, __m256 h) {
    return _mm256_mul_ps(dh, _mm256_mul_ps(h, _mm256_sub_ps(_mm256_set1_ps(1.0f), h)));
}
__attribute__((target("avx2,fma"))) inline __m256d relu_backward(__m256d dh, __m256d h) {
    return _mm256_and_pd(dh, _mm256_cmp_pd(h, _mm256_setzero_pd(), _CMP_GT_OQ));
}
__attribute__((target("avx2,fma"))) inline __m256d tanh_backward(__m256d dh, __m256d h) {
    return _mm256_mul_pd(dh, _mm256_fnmadd_pd(h, h, _mm256_set1_pd(1.0)));
}
__attribute__((target("avx2,fma"))) inline __m256d sigmoid_backward(__m256d dh, __m256d h) {
    return _mm256_mul_pd(dh, _mm256_mul_pd(h, _mm256_sub_pd(_mm256_set1_pd(1.0), h)));
}
// leaky_relu (slope 0.01 below 0, as activations.hpp's kLeakyReluSlope) and elu's g', both from h:
// blends of the scalar loops' two branches, so NaN takes the same branch as there.
__attribute__((target("avx2,fma"))) inline __m256 leaky_relu(__m256 a) {
    return _mm256_blendv_ps(_mm256_mul_ps(a, _mm256_set1_ps(0.01f)), a,
                            _mm256_cmp_ps(a, _mm256_setzero_ps(), _CMP_GT_OQ));
}
__attribute__((target("avx2,fma"))) inline __m256d leaky_relu(__m256d a) {
    return _mm256_blendv_pd(_mm256_mul_pd(a, _mm256_set1_pd(0.01)), a,
                            _mm256_cmp_pd(a, _mm256_setzero_pd(), _CMP_GT_OQ));
}
__attribute__((target("avx2,fma"))) inline __m256 leaky_relu_backward(__m256 dh, __m256 h) {
    const __m256 slope = _mm256_blendv_ps(_mm256_set1_ps(0.01f), _mm256_set1_ps(1.0f),
                                          _mm256_cmp_ps(h, _mm256_setzero_ps(), _CMP_GT_OQ));
    return _mm256_mul_ps(dh, slope);
}
__attribute__((target("avx2,fma"))) inline __m256d leaky_relu_backward(__m256d dh, __m256d h) {
    const __m256d slope =
        _mm256_blendv_pd(_mm256_set1_pd(0.01), _mm256_set1_pd(1.0), _mm256_cmp_pd(h, _mm256_setzero_pd(), _CMP_GT_OQ));
    return _mm256_mul_pd(dh, slope);
}
__attribute__((target("avx2,fma"))) inline __m256 elu_backward(__m256 dh, __m256 h) {
    const __m256 d = _mm256_blendv_ps(_mm256_add_ps(h, _mm256_set1_ps(1.0f)), _mm256_set1_ps(1.0f),
                                      _mm256_cmp_ps(h, _mm256_setzero_ps(), _CMP_GT_OQ));
    return _mm256_mul_ps(dh, d);
}
__attribute__((target("avx2,fma"))) inline __m256d elu_backward(__m256d dh, __m256d h) {
    const __m256d d = _mm256_blendv_pd(_mm256_add_pd(h, _mm256_set1_pd(1.0)), _mm256_set1_pd(1.0),
                                       _mm256_cmp_pd(h, _mm256_setzero_pd(), _CMP_GT_OQ));
    return _mm256_mul_pd(dh, d);
}
__attribute__((target("avx2,fma"))) inline __m256 relu(__m256 a) { return _mm256_max_ps(a, _mm256_setzero_ps()); }
__attribute__((target("avx2,fma"))) inline __m256d relu(__m256d a) { return _mm256_max_pd(a, _mm256_setzero_pd()); }

__attribute__((target("avx2,fma"))) inline __m256 add(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }
__attribute__((target("avx2,fma"))) inline __m256d add(__m256d a, __m256d b) { return _mm256_add_pd(a, b); }

// Loads and stores of one vector of T.
__attribute__((target("avx2,fma"))) inline __m256 load(const float* p) { return _mm256_loadu_ps(p); }
__attribute__((target("avx2,fma"))) inline __m256d load(const double* p) { return _mm256_loadu_pd(p); }
__attribute__((target("avx2,fma"))) inline void store(float* p, __m256 v) { _mm256_storeu_ps(p, v); }
__attribute__((target("avx2,fma"))) inline void store(double* p, __m256d v) { _mm256_storeu_pd(p, v); }

// h = f(a) element-wise over n values of T (h may alias a); the tail goes through the same
// vector code on a padded copy, so a value's result never depends on its position in the row.
template <class T, class F>
__attribute__((target("avx2,fma"))) void map1(T* h, const T* a, std::int64_t n, F f) {
    constexpr int L = 32 / sizeof(T);
    std::int64_t i = 0;
    for (; i + L <= n; i += L) store(h + i, f(load(a + i)));
    if (i < n) {
        alignas(32) T buf[L] = {};
        std::memcpy(buf, a + i, sizeof(T) * (n - i));
        store(buf, f(load(buf)));
        std::memcpy(h + i, buf, sizeof(T) * (n - i));
    }
}

// out = f(x, y) element-wise over n values of T (out may alias x or y); the tail goes through
// the same vector code on padded copies. F is a functor: f(V, V) -> V for the vector type V.
template <class T, class F>
__attribute__((target("avx2,fma"))) void map2(T* out, const T* x, const T* y, std::int64_t n, F f) {
    constexpr int L = 32 / sizeof(T);
    std::int64_t i = 0;
    for (; i + L <= n; i += L) store(out + i, f(load(x + i), load(y + i)));
    if (i < n) {
        alignas(32) T bx[L] = {}, by[L] = {};
        std::memcpy(bx, x + i, sizeof(T) * (n - i));
        std::memcpy(by, y + i, sizeof(T) * (n - i));
        store(bx, f(load(bx), load(by)));
        std::memcpy(out + i, bx, sizeof(T) * (n - i));
    }
}

}  // namespace avx2
}  // namespace fastmlp
#endif
