// The three output layers besides the softmax (softmax_xent.hpp): element-wise sigmoid with
// binary cross-entropy, identity with squared error, and exp with the Poisson deviance. Each is
// one pass per row that gives the loss and its joint gradient da_L, as the softmax does, never
// forming d yhat:
//   sigmoid + BCE      da_L = (sigmoid(a) - y) / (B K)  (PyTorch's BCEWithLogitsLoss, mean)
//   identity + MSE     da_L = 2 (a - y) / (B K)         (PyTorch's MSELoss, mean)
//   exp + half Poisson deviance  da_L = (exp(a) - y) / (B K)  (scikit-learn's loss="poisson")
// All three losses are means over all B x K elements; LossStats::loss_sum holds Σ_rows (row sum / K)
// so that dividing it by the number of rows gives that mean.
#pragma once

#include <cmath>
#include <cstdint>

#include "activations.hpp"
#include "softmax_xent.hpp"

namespace fastmlp {

// The shape the three outputs below share: a mean function m applied element-wise (the prediction),
// a loss per element l(a, y) averaged over the row's K outputs, and the gradient scale (m(a) - y) / (B K)
// (times `scale`; times the row's weight factor instead of 1 / B when rows carry weights, see RowWeights).
// logits (B, K); targets (B, K) or null (then no loss); weight (B,) or null; out (B, K), not aliased.
// kCountsCorrect: a row counts as correct when every logit is on its target's side of 0 (a > 0 <=> y > 0.5,
// the sigmoid output's rule); otherwise n_correct stays 0. Overwrites out. Serial over rows, each row's
// losses summed in order in double.
template <bool kCountsCorrect, class T, class Mean, class ElementLoss>
LossStats elementwise_output(T* out, const T* logits, const T* targets, std::int64_t B, std::int64_t K, LossOutput what,
                             const T* weight, double scale, Mean mean, ElementLoss element_loss) {
    LossStats stats;
    const T n = static_cast<T>(B) * static_cast<T>(K);
    const T unweighted = static_cast<T>(scale);
    const RowWeights<T> rw(weight, B);
    for (std::int64_t r = 0; r < B; ++r) {
        const T* a = logits + r * K;
        T* o = out + r * K;
        for (std::int64_t i = 0; i < K; ++i) o[i] = mean(a[i]);
        if (targets == nullptr) continue;
        const T* y = targets + r * K;
        double row = 0.0;
        bool correct = true;
        const T f = rw.active() ? static_cast<T>(scale * rw.gradient_factor(r) / static_cast<double>(K)) : T(0);
        for (std::int64_t i = 0; i < K; ++i) {
            row += element_loss(static_cast<double>(a[i]), static_cast<double>(y[i]));
            if constexpr (kCountsCorrect) correct = correct && ((a[i] > T(0)) == (y[i] > T(0.5)));
            if (what == LossOutput::gradient) o[i] = rw.active() ? (o[i] - y[i]) * f : unweighted * (o[i] - y[i]) / n;
        }
        stats.loss_sum += row / static_cast<double>(K) * (rw.active() ? rw.loss_factor(r) : 1.0);
        if constexpr (kCountsCorrect) stats.n_correct += correct;
    }
    return stats;
}

// Sigmoid + binary cross-entropy. With `gradient`: out = (sigmoid(a) - y) / (B K); with `prediction`:
// out = sigmoid(a). Targets in [0, 1]. The loss of one element is max(a, 0) - a y + log1p(e^-|a|): no
// overflow for any finite a. Counts a row correct when every output is on the right side of 0.5.
template <class T>
LossStats sigmoid_bce(T* out, const T* logits, const T* targets, std::int64_t B, std::int64_t K, LossOutput what,
                      const T* weight = nullptr) {
    return elementwise_output<true>(
        out, logits, targets, B, K, what, weight, 1.0, [](T a) { return stable_sigmoid(a); },
        [](double a, double y) { return std::fmax(a, 0.0) - a * y + std::log1p(std::exp(-std::fabs(a))); });
}

// Identity + mean squared error. With `gradient`: out = 2 (a - y) / (B K); with `prediction`: out = a.
template <class T>
LossStats squared_error(T* out, const T* logits, const T* targets, std::int64_t B, std::int64_t K, LossOutput what,
                        const T* weight = nullptr) {
    return elementwise_output<false>(
        out, logits, targets, B, K, what, weight, 2.0, [](T a) { return a; },
        [](double a, double y) { return (a - y) * (a - y); });
}

// Exp + half the Poisson deviance. With `gradient`: out = (exp(a) - y) / (B K); with `prediction`:
// out = exp(a). logits are the log of the predicted mean; targets >= 0. The loss of one element is
// exp(a) - y a + y log y - y (0 log 0 = 0), as scikit-learn's poisson_loss defines it: 0 where exp(a) = y.
// A large a overflows exp to inf (the loss and gradient then are inf), as any exp output does; the caller
// reports divergence.
template <class T>
LossStats poisson_deviance(T* out, const T* logits, const T* targets, std::int64_t B, std::int64_t K, LossOutput what,
                           const T* weight = nullptr) {
    return elementwise_output<false>(
        out, logits, targets, B, K, what, weight, 1.0, [](T a) { return std::exp(a); },
        [](double a, double y) { return std::exp(a) - y * a + (y > 0.0 ? y * std::log(y) : 0.0) - y; });
}

enum class Output : int { softmax = 0, sigmoid = 1, identity = 2, poisson = 3 };

// The output layer's kernel for `output`: softmax + cross-entropy (labels or distributions),
// sigmoid + BCE, identity + MSE or exp + Poisson deviance (targets (B, K)). Same contract as
// each kernel.
template <class T>
LossStats output_loss(Output output, T* out, const T* logits, const std::int64_t* labels, const T* targets,
                      std::int64_t B, std::int64_t K, LossOutput what, const T* weight = nullptr) {
    switch (output) {
        case Output::sigmoid:
            return sigmoid_bce(out, logits, targets, B, K, what, weight);
        case Output::identity:
            return squared_error(out, logits, targets, B, K, what, weight);
        case Output::poisson:
            return poisson_deviance(out, logits, targets, B, K, what, weight);
        case Output::softmax:
            break;
    }
    return softmax_xent(out, logits, labels, targets, B, K, what, weight);
}

}  // namespace fastmlp
