// Hidden-layer activations g and the Hadamard product with g' (the notes' step 4:
// da = dh ⊙ g'(a)). g' is computed from the activation's output h, so the forward pass
// keeps only h. The switch sits outside the loops: no per-element dispatch. Float tanh and
// sigmoid use the 8-lane versions of vecmath_avx2.hpp on the AVX2 path, libm elsewhere.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "isa.hpp"
#include "vecmath_avx2.hpp"

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

enum class Activation : int { identity = 0, relu = 1, tanh = 2, sigmoid = 3 };

// Logistic function without overflow: exp is only ever taken of a non-positive number.
template <class T>
inline T stable_sigmoid(T a) {
    if (a >= T(0)) return T(1) / (T(1) + std::exp(-a));
    const T e = std::exp(a);
    return e / (T(1) + e);
}

// h = g(a), elementwise over n values.
// a and h are (n,); h may alias a (the dense forward applies g in place on its output row).
// Overwrites h. Serial: it runs inside a kernel's own parallel task.
template <class T>
void activation_forward(T* h, const T* a, std::int64_t n, Activation g) {
#ifdef FASTMLP_HAVE_AVX2_VECMATH
    if constexpr (std::is_same_v<T, float>) {
        if ((g == Activation::tanh || g == Activation::sigmoid) && active_isa() == Isa::avx2) {
            if (g == Activation::tanh) avx2::map<avx2::tanh>(h, a, n);
            else avx2::map<avx2::sigmoid>(h, a, n);
            return;
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
    }
}

// h = g(a + bias), element-wise: the forward epilogue of a dense layer's row segment.
// a, bias, h are (n,); h may alias a. Overwrites h.
template <class T>
void bias_activation_forward(T* h, const T* a, const T* bias, std::int64_t n, Activation g) {
#ifdef FASTMLP_HAVE_AVX2_VECMATH
    if (active_isa() == Isa::avx2) {
        if (g == Activation::identity) {
            avx2::map2(h, a, bias, n, [](auto x, auto b) FASTMLP_AVX2 { return avx2::add(x, b); });
            return;
        }
        if (g == Activation::relu) {
            avx2::map2(h, a, bias, n, [](auto x, auto b) FASTMLP_AVX2 { return avx2::relu(avx2::add(x, b)); });
            return;
        }
        if constexpr (std::is_same_v<T, float>) {
            if (g == Activation::tanh)
                avx2::map2(h, a, bias, n, [](auto x, auto b) FASTMLP_AVX2 { return avx2::tanh(avx2::add(x, b)); });
            else
                avx2::map2(h, a, bias, n, [](auto x, auto b) FASTMLP_AVX2 { return avx2::sigmoid(avx2::add(x, b)); });
            return;
        }
    }
#endif
    FASTMLP_INDEPENDENT_ITERATIONS
    for (std::int64_t i = 0; i < n; ++i) h[i] = a[i] + bias[i];
    activation_forward(h, h, n, g);
}

// da = dh ⊙ g'(a), with g' written in terms of h = g(a): relu 1[h>0], tanh 1-h², sigmoid h(1-h).
// dh, h, da are (n,); da may alias dh. Overwrites da. Serial, as above.
template <class T>
void activation_backward(T* da, const T* dh, const T* h, std::int64_t n, Activation g) {
#ifdef FASTMLP_HAVE_AVX2_VECMATH
    if (g != Activation::identity && active_isa() == Isa::avx2) {
        // Generic lambdas, instantiated inside map2's AVX2 context for T's vector type.
        if (g == Activation::relu)
            avx2::map2(da, dh, h, n, [](auto x, auto y) FASTMLP_AVX2 { return avx2::relu_backward(x, y); });
        else if (g == Activation::tanh)
            avx2::map2(da, dh, h, n, [](auto x, auto y) FASTMLP_AVX2 { return avx2::tanh_backward(x, y); });
        else
            avx2::map2(da, dh, h, n, [](auto x, auto y) FASTMLP_AVX2 { return avx2::sigmoid_backward(x, y); });
        return;
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
    }
}

}  // namespace fastmlp
