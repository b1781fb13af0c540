// Inverted dropout on a hidden layer's output during training: each unit is kept with
// probability 1 - p and then scaled by 1 / (1 - p), so nothing changes at inference time.
// The masks are not stored and not drawn from a stream: keep/drop of element e of layer k in
// batch j of epoch t is a pure function of (seed, t, j, k, e), a counter-based generator. The
// backward pass recomputes the same mask, and the result cannot depend on the thread count or
// on the order in which elements are visited. fastmlp.reference.dropout_mask is the same
// function in NumPy.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "parallel.hpp"

namespace fastmlp {

// A 64-bit bijection with full avalanche (the finaliser of Steele, Lea and Flood's SplitMix64,
// after a Weyl step), used as a keyed hash: mix64(key ^ counter) gives independent-looking
// values for consecutive counters.
inline std::uint64_t mix64(std::uint64_t z) {
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// Which dropout masks a training batch uses.
struct DropoutKey {
    std::uint64_t seed = 0;
    std::uint64_t epoch = 0;
    std::uint64_t batch = 0;
    const std::int64_t* row_positions = nullptr;  // see dropout_apply; null: rows 0..B-1
};

// The key of one layer's mask in one batch.
inline std::uint64_t dropout_layer_key(const DropoutKey& key, std::uint64_t layer) {
    return mix64(mix64(mix64(mix64(key.seed) ^ key.epoch) ^ key.batch) ^ layer);
}

// Element e is kept when the top 32 bits of mix64(layer_key ^ e) fall below this threshold:
// floor((1 - p) 2^32), so the keep probability is 1 - p to within 2^-32.
inline std::uint64_t dropout_keep_threshold(double p) {
    return static_cast<std::uint64_t>(std::floor((1.0 - p) * 4294967296.0));
}

// The factor of a kept unit, 1 / (1 - p), computed in double and rounded once to T.
template <class T>
inline T dropout_scale(double p) {
    return static_cast<T>(1.0 / (1.0 - p));
}

// out = x * mask * scale: the forward (x = h, out = the layer's dropped-out output) and the
// backward (x = out = da, in place) use the same. x and out (B, units) are one batch's block
// of a layer; out may alias x. Element (r, u) is mask element
// e = position(r) * units + u, where position(r) is row_positions[r] when given (the row's
// place in a global batch that this call computes only part of, as a data-parallel rank does)
// and r otherwise. p in (0, 1). Parallel over chunks of rows; each element's result depends on
// nothing else.
template <class T>
void dropout_apply(T* out, const T* x, std::int64_t B, std::int64_t units, double p, std::uint64_t layer_key,
                   const std::int64_t* row_positions = nullptr) {
    const std::uint64_t threshold = dropout_keep_threshold(p);
    const T scale = dropout_scale<T>(p);
    const std::int64_t rows_per_task = units > 0 ? std::max<std::int64_t>(1, 16 * 1024 / units) : B;
    parallel_for((B + rows_per_task - 1) / rows_per_task, B * units, [&](std::int64_t c) {
        const std::int64_t r1 = std::min(B, (c + 1) * rows_per_task);
        for (std::int64_t r = c * rows_per_task; r < r1; ++r) {
            const std::int64_t position = row_positions != nullptr ? row_positions[r] : r;
            const auto first = static_cast<std::uint64_t>(position) * static_cast<std::uint64_t>(units);
            const T* in = x + r * units;
            T* row = out + r * units;
            for (std::int64_t u = 0; u < units; ++u) {
                const bool keep = (mix64(layer_key ^ (first + static_cast<std::uint64_t>(u))) >> 32) < threshold;
                row[u] = in[u] * (keep ? scale : T(0));  // a product, as PyTorch's: NaN/inf stay visible
            }
        }
    });
}

}  // namespace fastmlp
