// Explicit 8-float / 4-double AVX2 loops of the two optimizer rules with a square root (Adam
// and AdamW, RMSprop): GCC keeps a sqrt loop scalar unless the whole module is built with
// -fno-math-errno. Compiled for AVX2 *without* FMA, in the scalar code's order of operations
// (sqrt and division are correctly rounded), so each lane gives the scalar loop's bits.
// The remainder of a chunk (< one vector) goes through the scalar loop of optim.hpp.
#pragma once

#include <cstdint>

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define FASTMLP_HAVE_OPTIM_AVX2 1
#include <immintrin.h>

#define FASTMLP_AVX2_NO_FMA __attribute__((target("avx2")))

namespace fastmlp {
namespace optim_avx2 {

// The operations the loops need, for one vector of T. The float and double specialisations are
// a deliberate pair, one line per intrinsic: they are what lets the update loops below be written
// once for both element types.
template <class T>
struct Ops;

template <>
struct Ops<float> {
    using V = __m256;
    static constexpr int kLanes = 8;
    FASTMLP_AVX2_NO_FMA static V set1(float x) { return _mm256_set1_ps(x); }
    FASTMLP_AVX2_NO_FMA static V load(const float* p) { return _mm256_loadu_ps(p); }
    FASTMLP_AVX2_NO_FMA static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
    FASTMLP_AVX2_NO_FMA static V add(V a, V b) { return _mm256_add_ps(a, b); }
    FASTMLP_AVX2_NO_FMA static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
    FASTMLP_AVX2_NO_FMA static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
    FASTMLP_AVX2_NO_FMA static V div(V a, V b) { return _mm256_div_ps(a, b); }
    FASTMLP_AVX2_NO_FMA static V sqrt(V a) { return _mm256_sqrt_ps(a); }
};

template <>
struct Ops<double> {
    using V = __m256d;
    static constexpr int kLanes = 4;
    FASTMLP_AVX2_NO_FMA static V set1(double x) { return _mm256_set1_pd(x); }
    FASTMLP_AVX2_NO_FMA static V load(const double* p) { return _mm256_loadu_pd(p); }
    FASTMLP_AVX2_NO_FMA static void store(double* p, V v) { _mm256_storeu_pd(p, v); }
    FASTMLP_AVX2_NO_FMA static V add(V a, V b) { return _mm256_add_pd(a, b); }
    FASTMLP_AVX2_NO_FMA static V sub(V a, V b) { return _mm256_sub_pd(a, b); }
    FASTMLP_AVX2_NO_FMA static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
    FASTMLP_AVX2_NO_FMA static V div(V a, V b) { return _mm256_div_pd(a, b); }
    FASTMLP_AVX2_NO_FMA static V sqrt(V a) { return _mm256_sqrt_pd(a); }
};

// Adam / AdamW over the first n - n % lanes elements; returns how many were done. Same
// formulas as detail::AdamLoop, operation for operation.
template <bool kDecoupled, bool kL2, class T>
FASTMLP_AVX2_NO_FMA std::int64_t adam(T* p, const T* g, T* m, T* v, std::int64_t n, T shrink, T wd, T one_minus_b1,
                                      T b2, T one_minus_b2, T bc2_sqrt, T eps, T step_size) {
    using O = Ops<T>;
    using V = typename O::V;
    const V vshrink = O::set1(shrink), vwd = O::set1(wd), vomb1 = O::set1(one_minus_b1), vb2 = O::set1(b2),
            vomb2 = O::set1(one_minus_b2), vbc2 = O::set1(bc2_sqrt), veps = O::set1(eps),
            vneg_step = O::set1(-step_size);
    std::int64_t i = 0;
    for (; i + O::kLanes <= n; i += O::kLanes) {
        V w = O::load(p + i);
        if constexpr (kDecoupled) w = O::mul(w, vshrink);
        V d = O::load(g + i);
        if constexpr (kL2) d = O::add(d, O::mul(w, vwd));
        V mi = O::load(m + i);
        mi = O::add(mi, O::mul(vomb1, O::sub(d, mi)));
        const V vi = O::add(O::mul(O::load(v + i), vb2), O::mul(vomb2, O::mul(d, d)));
        O::store(m + i, mi);
        O::store(v + i, vi);
        const V denom = O::add(O::div(O::sqrt(vi), vbc2), veps);
        O::store(p + i, O::add(w, O::mul(vneg_step, O::div(mi, denom))));
    }
    return i;
}

// RMSprop over the first n - n % lanes elements, as detail::RmspropLoop; returns how many.
template <bool kDecay, bool kMomentum, class T>
FASTMLP_AVX2_NO_FMA std::int64_t rmsprop(T* p, const T* g, T* s1, T* s2, std::int64_t n, T lr, T wd, T alpha,
                                         T one_minus_alpha, T mu, T eps) {
    using O = Ops<T>;
    using V = typename O::V;
    const V vneg_lr = O::set1(-lr), vwd = O::set1(wd), valpha = O::set1(alpha), voma = O::set1(one_minus_alpha),
            vmu = O::set1(mu), veps = O::set1(eps);
    std::int64_t i = 0;
    for (; i + O::kLanes <= n; i += O::kLanes) {
        const V w = O::load(p + i);
        V d = O::load(g + i);
        if constexpr (kDecay) d = O::add(d, O::mul(w, vwd));
        const V sq = O::add(O::mul(O::load(s1 + i), valpha), O::mul(voma, O::mul(d, d)));
        O::store(s1 + i, sq);
        const V avg = O::add(O::sqrt(sq), veps);
        if constexpr (kMomentum) {
            const V buf = O::add(O::mul(O::load(s2 + i), vmu), O::div(d, avg));
            O::store(s2 + i, buf);
            O::store(p + i, O::add(w, O::mul(buf, vneg_lr)));
        } else {
            O::store(p + i, O::add(w, O::mul(vneg_lr, O::div(d, avg))));
        }
    }
    return i;
}

}  // namespace optim_avx2
}  // namespace fastmlp
#endif
