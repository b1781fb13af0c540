// Whether values are all finite: the check of X that a prediction's fast path leaves to the native
// call (evaluate in mlp.hpp scans a chunk of rows when its first product came out non-finite), the
// check of a sparse X's stored values, and of the products in the forward epilogue (gemm.hpp).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "parallel.hpp"

namespace fastmlp {

// x - x is 0 for a finite x and NaN for an infinity or a NaN, and a sum of zeros stays 0 while
// one NaN makes it NaN. Summed in 16 fixed lanes, which GCC keeps in vector registers (one
// subtract and one add per value, no early exit); a boolean reduction ran as scalar code, 0.7 ms
// of a 1024-row prediction's 2.3 ms on 784 features.
template <class T>
bool all_finite(const T* x, std::int64_t n) {
    constexpr int kLanes = 16;
    T acc[kLanes] = {};
    std::int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int l = 0; l < kLanes; ++l) acc[l] += x[i + l] - x[i + l];
    for (; i < n; ++i) acc[0] += x[i] - x[i];
    T total = 0;
    for (int l = 0; l < kLanes; ++l) total += acc[l];
    return total == 0;
}

// all_finite over chunks shared between threads (parallel_for): the answer is the same whoever
// scans which chunk.
template <class T>
bool all_finite_shared(const T* x, std::int64_t n) {
    constexpr std::int64_t kChunk = 64 * 1024;
    std::atomic<bool> bad{false};
    parallel_for((n + kChunk - 1) / kChunk, n, [&](std::int64_t c) {
        if (!all_finite(x + c * kChunk, std::min(kChunk, n - c * kChunk))) bad.store(true, std::memory_order_relaxed);
    });
    return !bad.load();
}

}  // namespace fastmlp
