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
    constexpr std::int64_t kChunk = 16 * 1024;
    parallel_for((n + kChunk - 1) / kChunk, n, [&](std::int64_t c) {
        const std::int64_t i1 = std::min(n, (c + 1) * kChunk);
        for (std::int64_t i = c * kChunk; i < i1; ++i) param[i] -= lr * grad[i];
    });
}

}  // namespace fastmlp
