// The output layer: softmax and cross-entropy in one pass per row, and their joint gradient
// da_L = (yhat - y) / B (docs/math.md, steps 1-2), never forming d yhat. Stable for any finite
// logits: exp is taken of a - max(a) <= 0 and the loss is written as logsumexp(a) - Σ y a.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "isa.hpp"
#include "vecmath_avx2.hpp"

namespace fastmlp {

// o[i] = e^(a[i] - m) for a row of n logits a and their max m (so every exponent is <= 0). On the AVX2+FMA
// path the vector exp of vecmath_avx2.hpp (a couple of ulp), 8 or 4 at a time; elsewhere libm's. Why not
// libm everywhere: in the manylinux2014 wheel expf binds to glibc's 2.2.5 version, an errno-setting
// wrapper around a slower generic expf, and a small network's softmax then cost 4 % more of its whole
// training step than in a source build (callgrind, 64-32-10 batch 16). The vector exp stops at its clamp
// (-87.3 in float, -708 in double, where it gives ~1e-38 / ~3e-308 instead of a smaller number or 0), so
// exponents below it are taken again from libm: a probability underflows exactly as before.
template <class T>
void softmax_exp_row(T* o, const T* a, T m, std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) o[i] = a[i] - m;
#ifdef FASTMLP_HAVE_AVX2_VECMATH
    if (runs_avx2(active_isa())) {
        avx2::map1(o, o, n, [](auto x) FASTMLP_AVX2 { return avx2::exp(x); });
        const T clamp = std::is_same_v<T, float> ? T(-87.3) : T(-708);
        for (std::int64_t i = 0; i < n; ++i)
            if (a[i] - m < clamp) o[i] = std::exp(a[i] - m);
        return;
    }
#endif
    for (std::int64_t i = 0; i < n; ++i) o[i] = std::exp(o[i]);
}

struct LossStats {
    double loss_sum = 0.0;       // Σ over rows of the row's cross-entropy (not yet divided by B)
    std::int64_t n_correct = 0;  // rows whose arg-max logit is the label (or the target's arg-max)
};

// What an output kernel writes: the prediction (softmax probabilities here) or the gradient da_L.
enum class LossOutput : int { prediction, gradient };

// The scale of each row's gradient and loss when rows carry weights w (scikit-learn's
// sample_weight): the batch loss is the weighted mean Σ w_r l_r / Σ w_r, so row r's gradient is
// (yhat - y) w_r / Σ w, and its loss enters LossStats::loss_sum as w_r l_r B / Σ w (so that
// loss_sum / B is still the batch's mean loss). A batch whose weights sum to 0 contributes
// nothing. Without weights (null) nothing is scaled: the kernels divide by B as before.
template <class T>
struct RowWeights {
    const T* w = nullptr;  // (B,), or null: unweighted
    double sum = 0.0;
    std::int64_t B = 0;

    RowWeights(const T* weights, std::int64_t rows) : w(weights), B(rows) {
        if (w != nullptr)
            for (std::int64_t r = 0; r < B; ++r) sum += static_cast<double>(w[r]);
    }
    bool active() const { return w != nullptr; }
    // Factor of row r's gradient, relative to an unweighted row's 1: w_r / Σw (times the divisor).
    double gradient_factor(std::int64_t r) const { return sum > 0.0 ? static_cast<double>(w[r]) / sum : 0.0; }
    double loss_factor(std::int64_t r) const {
        return sum > 0.0 ? static_cast<double>(w[r]) * static_cast<double>(B) / sum : 0.0;
    }
};

// With `gradient`: out = (softmax(a) - y) / B (or scaled by row weights, see RowWeights); with
// `prediction`: out = softmax(a).
// logits (B, K); y is either labels (B,) in [0, K) or targets (B, K) (rows summing to 1), or
// neither (then no loss is computed); weight (B,) or null; out (B, K) must not alias logits.
// Overwrites out. Serial over rows (K is small; the row losses are summed in row order, in double).
template <class T>
LossStats softmax_xent(T* out, const T* logits, const std::int64_t* labels, const T* targets, std::int64_t B,
                       std::int64_t K, LossOutput what, const T* weight = nullptr) {
    LossStats stats;
    const T batch = static_cast<T>(B);
    const RowWeights<T> rw(weight, B);
    for (std::int64_t r = 0; r < B; ++r) {
        const T* a = logits + r * K;
        T* o = out + r * K;
        std::int64_t top = 0;
        for (std::int64_t i = 1; i < K; ++i)
            if (a[i] > a[top]) top = i;
        const T m = a[top];
        softmax_exp_row(o, a, m, K);
        T s = T(0);
        for (std::int64_t i = 0; i < K; ++i) s += o[i];
        for (std::int64_t i = 0; i < K; ++i) o[i] /= s;
        if (labels == nullptr && targets == nullptr) continue;  // a prediction: no loss to score
        const double lse = static_cast<double>(m) + std::log(static_cast<double>(s));

        double row_loss = 0.0;
        if (labels != nullptr) {
            const std::int64_t l = labels[r];
            row_loss = lse - static_cast<double>(a[l]);
            stats.n_correct += (top == l);
            if (what == LossOutput::gradient) o[l] -= T(1);
        } else if (targets != nullptr) {
            const T* y = targets + r * K;
            std::int64_t y_top = 0;
            for (std::int64_t i = 0; i < K; ++i) {
                if (y[i] != T(0)) row_loss += static_cast<double>(y[i]) * (lse - static_cast<double>(a[i]));
                if (y[i] > y[y_top]) y_top = i;
            }
            stats.n_correct += (top == y_top);
            if (what == LossOutput::gradient)
                for (std::int64_t i = 0; i < K; ++i) o[i] = o[i] - y[i];
        } else {
            continue;
        }
        if (rw.active()) {
            stats.loss_sum += row_loss * rw.loss_factor(r);
            if (what == LossOutput::gradient) {
                const T f = static_cast<T>(rw.gradient_factor(r));
                for (std::int64_t i = 0; i < K; ++i) o[i] *= f;
            }
        } else {
            stats.loss_sum += row_loss;
            if (what == LossOutput::gradient)
                for (std::int64_t i = 0; i < K; ++i) o[i] /= batch;
        }
    }
    return stats;
}

}  // namespace fastmlp
