// Plain stochastic gradient descent, the last line of the derivation: w <- w - lr * dL/dw.
// Elementwise, so any partition of the parameters gives the same bits.
#pragma once

#include <algorithm>
#include <cstdint>

#include "parallel.hpp"

namespace fastmlp {

// param -= lr * grad
// param, grad (n,), not aliased. Updates param in place. Parallel over 16 Ki-element chunks.
template <class T>
void sgd_update(T* param, const T* grad, std::int64_t n, T lr) {
    if (lr == T(0)) return;  // a true no-op: -0.0 - 0 * (negative) would turn -0.0 into +0.0
    parallel_for_elements(n, [&](std::int64_t i) { param[i] -= lr * grad[i]; });
}

}  // namespace fastmlp
