// Hidden-layer activations g and the Hadamard product with g' (docs/math.md, step 4:
// da = dh ⊙ g'(a)). Where g' can be written in terms of the output h (relu, leaky_relu, elu,
// tanh, sigmoid, softplus), it is, so the forward pass keeps only h; gelu and silu cannot be
// inverted that way and keep the pre-activation a instead (takes_preactivation()). Each
// formula and derivative matches PyTorch's (relu'(0) = 0, leaky_relu slope 0.01, elu alpha 1,
// exact erf gelu). The switch sits outside the loops: no per-element dispatch. On the AVX2 path
// every activation, g and g', runs the vector code of vecmath_avx2.hpp in both precisions except
// float64 gelu (libm's erfc: no vector erfc to double's accuracy yet); the generic path uses libm.
// On the AVX-512 path float gelu and silu run vecmath_avx512.hpp's 16-lane twins: the same bits.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "isa.hpp"
#include "vecmath_avx2.hpp"
#include "vecmath_avx512.hpp"

// The element-wise loops here run in place (h == a, da == dh) as often as not; a compiler that
// cannot rule out a partial overlap vectorizes them only behind a run-time check that exact
// aliasing fails, so it is told the iterations are independent (they are, for both uses).
#if defined(__clang__)
#define FASTMLP_INDEPENDENT_ITERATIONS _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define FASTMLP_INDEPENDENT_ITERATIONS _Pragma("GCC ivdep")
#elif defined(_MSC_VER)
#define FASTMLP_INDEPENDENT_ITERATIONS __pragma(loop(ivdep))
#else
#define FASTMLP_INDEPENDENT_ITERATIONS
#endif

namespace fastmlp {

enum class Activation : int {
    identity = 0,
    relu = 1,
    tanh = 2,
    sigmoid = 3,
    leaky_relu = 4,
    elu = 5,
    gelu = 6,
    silu = 7,
    softplus = 8,
};

constexpr double kLeakyReluSlope = 0.01;  // PyTorch's default negative_slope

// Whether g' needs the pre-activation a (the forward pass then keeps a as well as h):
// gelu and silu are not monotone, so h does not determine a.
constexpr bool takes_preactivation(Activation g) { return g == Activation::gelu || g == Activation::silu; }

// Logistic function without overflow: exp is only ever taken of a non-positive number.
template <class T>
inline T stable_sigmoid(T a) {
    if (a >= T(0)) return T(1) / (T(1) + std::exp(-a));
    const T e = std::exp(a);
    return e / (T(1) + e);
}

// The scalar forms of the activations without vector code; each is finite for any finite a.
template <class T>
inline T elu(T a) {
    return a > T(0) ? a : std::expm1(a);
}
template <class T>
inline T gelu(T a) {  // a Φ(a), Φ via erfc so the left tail keeps its relative accuracy
    return T(0.5) * a * std::erfc(-a * T(0.70710678118654752440));
}
template <class T>
inline T silu(T a) {
    return a * stable_sigmoid(a);
}
template <class T>
inline T softplus(T a) {  // log(1 + e^a) = max(a, 0) + log1p(e^-|a|): exp never overflows
    return std::max(a, T(0)) + std::log1p(std::exp(-std::abs(a)));
}
template <class T>
inline T gelu_derivative(T a) {  // Φ(a) + a φ(a)
    return T(0.5) * std::erfc(-a * T(0.70710678118654752440)) +
           a * T(0.39894228040143267794) * std::exp(T(-0.5) * a * a);
}
template <class T>
inline T silu_derivative(T a) {  // s (1 + a (1 - s))
    const T s = stable_sigmoid(a);
    return s * (T(1) + a * (T(1) - s));
}

// h = g(a), elementwise over n values.
// a and h are (n,); h may alias a (the dense forward applies g in place on its output row).
// Overwrites h. Serial: it runs inside a kernel's own parallel task.
template <class T>
void activation_forward(T* h, const T* a, std::int64_t n, Activation g) {
#ifdef FASTMLP_HAVE_AVX512_VECMATH
    if constexpr (std::is_same_v<T, float>) {  // gelu and silu 16 lanes at a time: the AVX2 code's bits
        if (active_isa() == Isa::avx512) {
            if (g == Activation::gelu)
                return avx512::map1(h, a, n, [](__m512 x) FASTMLP_AVX512 { return avx512::gelu(x); });
            if (g == Activation::silu)
                return avx512::map1(h, a, n, [](__m512 x) FASTMLP_AVX512 { return avx512::silu(x); });
        }
    }
#endif
#ifdef FASTMLP_HAVE_AVX2_VECMATH
    if (runs_avx2(active_isa())) {
        // Generic lambdas, instantiated inside map1's AVX2 context for T's vector type.
        switch (g) {
            case Activation::tanh:
                return avx2::map1(h, a, n, [](auto x) FASTMLP_AVX2 { return avx2::tanh(x); });
            case Activation::sigmoid:
                return avx2::map1(h, a, n, [](auto x) FASTMLP_AVX2 { return avx2::sigmoid(x); });
            case Activation::elu:
                return avx2::map1(h, a, n, [](auto x) FASTMLP_AVX2 { return avx2::elu(x); });
            case Activation::silu:
                return avx2::map1(h, a, n, [](auto x) FASTMLP_AVX2 { return avx2::silu(x); });
            case Activation::softplus:
                return avx2::map1(h, a, n, [](auto x) FASTMLP_AVX2 { return avx2::softplus(x); });
            case Activation::leaky_relu:
                return avx2::map1(h, a, n, [](auto x) FASTMLP_AVX2 { return avx2::leaky_relu(x); });
            case Activation::gelu:
                if constexpr (std::is_same_v<T, float>)  // float64 gelu: libm's erfc
                    return avx2::map1(h, a, n, [](auto x) FASTMLP_AVX2 { return avx2::gelu(x); });
                break;
            default:
                break;
        }
    }
#endif
    switch (g) {
        case Activation::identity:
            if (h != a)
                for (std::int64_t i = 0; i < n; ++i) h[i] = a[i];
            break;
        case Activation::relu:
            FASTMLP_INDEPENDENT_ITERATIONS
            for (std::int64_t i = 0; i < n; ++i) h[i] = a[i] > T(0) ? a[i] : T(0);
            break;
        case Activation::tanh:
            for (std::int64_t i = 0; i < n; ++i) h[i] = std::tanh(a[i]);
            break;
        case Activation::sigmoid:
            for (std::int64_t i = 0; i < n; ++i) h[i] = stable_sigmoid(a[i]);
            break;
        case Activation::leaky_relu: {
            const T slope = static_cast<T>(kLeakyReluSlope);
            FASTMLP_INDEPENDENT_ITERATIONS
            for (std::int64_t i = 0; i < n; ++i) h[i] = a[i] > T(0) ? a[i] : a[i] * slope;
            break;
        }
        case Activation::elu:
            for (std::int64_t i = 0; i < n; ++i) h[i] = elu(a[i]);
            break;
        case Activation::gelu:
            for (std::int64_t i = 0; i < n; ++i) h[i] = gelu(a[i]);
            break;
        case Activation::silu:
            for (std::int64_t i = 0; i < n; ++i) h[i] = silu(a[i]);
            break;
        case Activation::softplus:
            for (std::int64_t i = 0; i < n; ++i) h[i] = softplus(a[i]);
            break;
    }
}

// h = g(a + bias), element-wise: the forward epilogue of a dense layer's row segment.
// a, bias, h are (n,); h may alias a. Overwrites h.
template <class T>
void bias_activation_forward(T* h, const T* a, const T* bias, std::int64_t n, Activation g) {
#ifdef FASTMLP_HAVE_AVX2_VECMATH
    if (runs_avx2(active_isa())) {
        if (g == Activation::identity) {
            avx2::map2(h, a, bias, n, [](auto x, auto b) FASTMLP_AVX2 { return avx2::add(x, b); });
            return;
        }
        if (g == Activation::relu) {
            avx2::map2(h, a, bias, n, [](auto x, auto b) FASTMLP_AVX2 { return avx2::relu(avx2::add(x, b)); });
            return;
        }
        switch (g) {
            case Activation::leaky_relu:
                return avx2::map2(h, a, bias, n,
                                  [](auto x, auto b) FASTMLP_AVX2 { return avx2::leaky_relu(avx2::add(x, b)); });
            case Activation::tanh:
                return avx2::map2(h, a, bias, n,
                                  [](auto x, auto b) FASTMLP_AVX2 { return avx2::tanh(avx2::add(x, b)); });
            case Activation::sigmoid:
                return avx2::map2(h, a, bias, n,
                                  [](auto x, auto b) FASTMLP_AVX2 { return avx2::sigmoid(avx2::add(x, b)); });
            case Activation::elu:
                return avx2::map2(h, a, bias, n,
                                  [](auto x, auto b) FASTMLP_AVX2 { return avx2::elu(avx2::add(x, b)); });
            case Activation::softplus:
                return avx2::map2(h, a, bias, n,
                                  [](auto x, auto b) FASTMLP_AVX2 { return avx2::softplus(avx2::add(x, b)); });
            default:
                break;
        }
    }
#endif
    FASTMLP_INDEPENDENT_ITERATIONS
    for (std::int64_t i = 0; i < n; ++i) h[i] = a[i] + bias[i];
    activation_forward(h, h, n, g);
}

// da = dh ⊙ g'(a). `saved` is what the forward pass kept: the pre-activation a when
// takes_preactivation(g), else the output h = g(a), in terms of which g' is written:
// relu 1[h>0], leaky_relu 1 or 0.01 (h>0), elu 1 or h+1 (= e^a), tanh 1-h², sigmoid h(1-h),
// softplus 1-e^-h (= sigmoid(a)); gelu Φ(a) + a φ(a), silu s(1 + a(1-s)) from a.
// dh, saved, da are (n,); da may alias dh. Overwrites da. Serial, as above.
template <class T>
void activation_backward(T* da, const T* dh, const T* saved, std::int64_t n, Activation g) {
    const T* h = saved;
#ifdef FASTMLP_HAVE_AVX512_VECMATH
    if constexpr (std::is_same_v<T, float>) {  // as in activation_forward
        if (active_isa() == Isa::avx512) {
            if (g == Activation::gelu)
                return avx512::map2(da, dh, saved, n,
                                    [](__m512 x, __m512 y) FASTMLP_AVX512 { return avx512::gelu_backward(x, y); });
            if (g == Activation::silu)
                return avx512::map2(da, dh, saved, n,
                                    [](__m512 x, __m512 y) FASTMLP_AVX512 { return avx512::silu_backward(x, y); });
        }
    }
#endif
#ifdef FASTMLP_HAVE_AVX2_VECMATH
    if (runs_avx2(active_isa())) {
        // Generic lambdas, instantiated inside map2's AVX2 context for T's vector type.
        switch (g) {
            case Activation::relu:
                return avx2::map2(da, dh, h, n, [](auto x, auto y) FASTMLP_AVX2 { return avx2::relu_backward(x, y); });
            case Activation::leaky_relu:
                return avx2::map2(da, dh, h, n,
                                  [](auto x, auto y) FASTMLP_AVX2 { return avx2::leaky_relu_backward(x, y); });
            case Activation::elu:
                return avx2::map2(da, dh, h, n, [](auto x, auto y) FASTMLP_AVX2 { return avx2::elu_backward(x, y); });
            case Activation::tanh:
                return avx2::map2(da, dh, h, n, [](auto x, auto y) FASTMLP_AVX2 { return avx2::tanh_backward(x, y); });
            case Activation::sigmoid:
                return avx2::map2(da, dh, h, n,
                                  [](auto x, auto y) FASTMLP_AVX2 { return avx2::sigmoid_backward(x, y); });
            case Activation::silu:
                return avx2::map2(da, dh, saved, n,
                                  [](auto x, auto y) FASTMLP_AVX2 { return avx2::silu_backward(x, y); });
            case Activation::softplus:
                return avx2::map2(da, dh, h, n,
                                  [](auto x, auto y) FASTMLP_AVX2 { return avx2::softplus_backward(x, y); });
            default:
                break;
        }
    }
    if constexpr (std::is_same_v<T, float>) {  // float64 gelu' keeps libm's erfc
        if (g == Activation::gelu && runs_avx2(active_isa())) {
            avx2::map2(da, dh, saved, n, [](auto x, auto y) FASTMLP_AVX2 { return avx2::gelu_backward(x, y); });
            return;
        }
    }
#endif
    switch (g) {
        case Activation::identity:
            if (da != dh)
                for (std::int64_t i = 0; i < n; ++i) da[i] = dh[i];
            break;
        case Activation::relu:  // dh * 1[h > 0], as a product so that NaN/inf in dh propagate
            FASTMLP_INDEPENDENT_ITERATIONS
            for (std::int64_t i = 0; i < n; ++i) da[i] = dh[i] * (h[i] > T(0) ? T(1) : T(0));
            break;
        case Activation::tanh:
            FASTMLP_INDEPENDENT_ITERATIONS
            for (std::int64_t i = 0; i < n; ++i) da[i] = dh[i] * (T(1) - h[i] * h[i]);
            break;
        case Activation::sigmoid:
            FASTMLP_INDEPENDENT_ITERATIONS
            for (std::int64_t i = 0; i < n; ++i) da[i] = dh[i] * (h[i] * (T(1) - h[i]));
            break;
        case Activation::leaky_relu: {
            const T slope = static_cast<T>(kLeakyReluSlope);
            FASTMLP_INDEPENDENT_ITERATIONS
            for (std::int64_t i = 0; i < n; ++i) da[i] = dh[i] * (h[i] > T(0) ? T(1) : slope);
            break;
        }
        case Activation::elu:
            FASTMLP_INDEPENDENT_ITERATIONS
            for (std::int64_t i = 0; i < n; ++i) da[i] = dh[i] * (h[i] > T(0) ? T(1) : h[i] + T(1));
            break;
        case Activation::softplus:  // -expm1(-h), not 1 - e^-h: keeps e^a accurate where h ≈ e^a is tiny
            for (std::int64_t i = 0; i < n; ++i) da[i] = dh[i] * -std::expm1(-h[i]);
            break;
        case Activation::gelu:
            for (std::int64_t i = 0; i < n; ++i) da[i] = dh[i] * gelu_derivative(saved[i]);
            break;
        case Activation::silu:
            for (std::int64_t i = 0; i < n; ++i) da[i] = dh[i] * silu_derivative(saved[i]);
            break;
    }
}

}  // namespace fastmlp
