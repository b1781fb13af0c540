// The output layer: softmax and cross-entropy in one pass per row, and their joint gradient
// da_L = (yhat - y) / B (the notes' steps 1-2), never forming d yhat. Stable for any finite
// logits: exp is taken of a - max(a) <= 0 and the loss is written as logsumexp(a) - Σ y a.
#pragma once

#include <cmath>
#include <cstdint>

namespace fastmlp {

struct LossStats {
    double loss_sum = 0.0;      // Σ over rows of the row's cross-entropy (not yet divided by B)
    std::int64_t n_correct = 0; // rows whose arg-max logit is the label (or the target's arg-max)
};

// What an output kernel writes: the prediction (softmax probabilities here) or the gradient da_L.
enum class LossOutput : int { prediction, gradient };

// With `gradient`: out = (softmax(a) - y) / B; with `probabilities`: out = softmax(a).
// logits (B, K); y is either labels (B,) in [0, K) or targets (B, K) (rows summing to 1), or
// neither (then no loss is computed); out (B, K) must not alias logits.
// Overwrites out. Serial over rows (K is small; the row losses are summed in row order, in double).
template <class T>
LossStats softmax_xent(T* out, const T* logits, const std::int64_t* labels, const T* targets,
                       std::int64_t B, std::int64_t K, LossOutput what) {
    LossStats stats;
    const T batch = static_cast<T>(B);
    for (std::int64_t r = 0; r < B; ++r) {
        const T* a = logits + r * K;
        T* o = out + r * K;
        std::int64_t top = 0;
        for (std::int64_t i = 1; i < K; ++i)
            if (a[i] > a[top]) top = i;
        const T m = a[top];
        T s = T(0);
        for (std::int64_t i = 0; i < K; ++i) {
            o[i] = std::exp(a[i] - m);
            s += o[i];
        }
        const double lse = static_cast<double>(m) + std::log(static_cast<double>(s));
        for (std::int64_t i = 0; i < K; ++i) o[i] /= s;

        if (labels != nullptr) {
            const std::int64_t l = labels[r];
            stats.loss_sum += lse - static_cast<double>(a[l]);
            stats.n_correct += (top == l);
            if (what == LossOutput::gradient) {
                o[l] -= T(1);
                for (std::int64_t i = 0; i < K; ++i) o[i] /= batch;
            }
        } else if (targets != nullptr) {
            const T* y = targets + r * K;
            double row_loss = 0.0;
            std::int64_t y_top = 0;
            for (std::int64_t i = 0; i < K; ++i) {
                if (y[i] != T(0)) row_loss += static_cast<double>(y[i]) * (lse - static_cast<double>(a[i]));
                if (y[i] > y[y_top]) y_top = i;
            }
            stats.loss_sum += row_loss;
            stats.n_correct += (top == y_top);
            if (what == LossOutput::gradient)
                for (std::int64_t i = 0; i < K; ++i) o[i] = (o[i] - y[i]) / batch;
        }
    }
    return stats;
}

}  // namespace fastmlp
