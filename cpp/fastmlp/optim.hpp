// The optimizers' update rules, applied to one parameter array right after its gradient is
// computed (while it is still in cache): SGD with momentum / Nesterov / L2 decay, Adam, AdamW
// and RMSprop, each written as PyTorch's single-tensor implementation writes it (same state,
// same order of operations, scalars computed in double and rounded once to T), so a float64
// run follows torch.optim to rounding and a float32 run to a few ulps.
// Plain SGD without momentum or decay does not come here: dense.hpp fuses it into the
// gradient's tile stores. The state arrays belong to the caller (fastmlp.optim keeps them as
// NumPy arrays); this file never allocates.
#pragma once

#include <cmath>
#include <cstdint>

#include "parallel.hpp"

namespace fastmlp {

enum class OptimizerKind : int { sgd = 0, adam = 1, adamw = 2, rmsprop = 3 };

// Hyperparameters of one update. `step` is the 1-based number of this update (Adam's bias
// correction; SGD's first step initialises the momentum buffer from the gradient).
struct OptimizerSpec {
    OptimizerKind kind = OptimizerKind::sgd;
    double lr = 0.1;
    double momentum = 0.0;      // sgd, rmsprop
    bool nesterov = false;      // sgd
    double weight_decay = 0.0;  // L2 added to the gradient (adamw: decoupled)
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adam, adamw (eps also rmsprop)
    double alpha = 0.99;        // rmsprop
    std::int64_t step = 1;

    // Plain SGD: the update dense.hpp fuses into the gradient GEMM.
    bool plain_sgd() const { return kind == OptimizerKind::sgd && momentum == 0.0 && weight_decay == 0.0; }

    // How many state arrays each parameter needs: SGD's momentum buffer; Adam's first and
    // second moments; RMSprop's square average and its momentum buffer.
    int n_buffers() const {
        switch (kind) {
            case OptimizerKind::sgd: return momentum != 0.0 ? 1 : 0;
            case OptimizerKind::adam:
            case OptimizerKind::adamw: return 2;
            case OptimizerKind::rmsprop: return momentum != 0.0 ? 2 : 1;
        }
        return 0;
    }
};

// One update of param (n,) from grad (n,) with state s1, s2 (n,) each, as many as n_buffers()
// (else null). weight_decay is the caller's choice per array (biases get 0).
// Updates param and the state in place. Parallel over 16 Ki-element chunks: element-wise, so
// any partition gives the same bits.
template <class T>
void optimizer_update(T* param, const T* grad, T* s1, T* s2, std::int64_t n, const OptimizerSpec& o,
                      double weight_decay) {
    const T lr = static_cast<T>(o.lr);
    const T wd = static_cast<T>(weight_decay);
    const bool decay = weight_decay != 0.0;
    switch (o.kind) {
        case OptimizerKind::sgd: {
            const T mu = static_cast<T>(o.momentum);
            const bool first = o.step <= 1;
            parallel_for_elements(n, [&](std::int64_t i) {
                T d = decay ? grad[i] + param[i] * wd : grad[i];
                if (s1 != nullptr) {  // momentum buffer: the gradient itself on the first step
                    s1[i] = first ? d : s1[i] * mu + d;
                    d = o.nesterov ? d + s1[i] * mu : s1[i];
                }
                param[i] = param[i] + d * -lr;
            });
            break;
        }
        case OptimizerKind::adam:
        case OptimizerKind::adamw: {
            const double bc1 = 1.0 - std::pow(o.beta1, static_cast<double>(o.step));
            const double bc2 = 1.0 - std::pow(o.beta2, static_cast<double>(o.step));
            const T one_minus_b1 = static_cast<T>(1.0 - o.beta1);
            const T b2 = static_cast<T>(o.beta2), one_minus_b2 = static_cast<T>(1.0 - o.beta2);
            const T step_size = static_cast<T>(o.lr / bc1);
            const T bc2_sqrt = static_cast<T>(std::sqrt(bc2));
            const T eps = static_cast<T>(o.eps);
            const bool decoupled = o.kind == OptimizerKind::adamw && decay;
            const T shrink = static_cast<T>(1.0 - o.lr * weight_decay);
            const bool l2 = o.kind == OptimizerKind::adam && decay;
            parallel_for_elements(n, [&](std::int64_t i) {
                if (decoupled) param[i] = param[i] * shrink;
                const T d = l2 ? grad[i] + param[i] * wd : grad[i];
                s1[i] = s1[i] + one_minus_b1 * (d - s1[i]);      // m: lerp towards d
                s2[i] = s2[i] * b2 + one_minus_b2 * (d * d);     // v
                const T denom = std::sqrt(s2[i]) / bc2_sqrt + eps;
                param[i] = param[i] + -step_size * (s1[i] / denom);
            });
            break;
        }
        case OptimizerKind::rmsprop: {
            const T alpha = static_cast<T>(o.alpha), one_minus_alpha = static_cast<T>(1.0 - o.alpha);
            const T mu = static_cast<T>(o.momentum), eps = static_cast<T>(o.eps);
            parallel_for_elements(n, [&](std::int64_t i) {
                const T d = decay ? grad[i] + param[i] * wd : grad[i];
                s1[i] = s1[i] * alpha + one_minus_alpha * (d * d);  // square average
                const T avg = std::sqrt(s1[i]) + eps;
                if (s2 != nullptr) {  // momentum buffer, zeros at first
                    s2[i] = s2[i] * mu + d / avg;
                    param[i] = param[i] + s2[i] * -lr;
                } else {
                    param[i] = param[i] + -lr * (d / avg);
                }
            });
            break;
        }
    }
}

}  // namespace fastmlp
