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

#include "isa.hpp"
#include "parallel.hpp"

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define FASTMLP_HAVE_DROPOUT_AVX2 1
#include <immintrin.h>
#endif

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

// One row of dropout_apply: row[u] = in[u] * (keep(first + u) ? scale : 0), scalar.
template <class T>
void dropout_row(T* row, const T* in, std::int64_t begin, std::int64_t units, std::uint64_t layer_key,
                 std::uint64_t first, std::uint64_t threshold, T scale) {
    for (std::int64_t u = begin; u < units; ++u) {
        const bool keep = (mix64(layer_key ^ (first + static_cast<std::uint64_t>(u))) >> 32) < threshold;
        row[u] = in[u] * (keep ? scale : T(0));  // a product, as PyTorch's: NaN/inf stay visible
    }
}

#ifdef FASTMLP_HAVE_DROPOUT_AVX2
namespace dropout_avx2 {

// x * c mod 2^64 in each 64-bit lane, from 32 x 32 -> 64-bit products (AVX2 has no 64-bit
// multiply): lo(x) lo(c) + ((hi(x) lo(c) + lo(x) hi(c)) << 32).
__attribute__((target("avx2"))) inline __m256i mul64(__m256i x, std::uint64_t c) {
    const __m256i c_lo = _mm256_set1_epi64x(static_cast<long long>(c & 0xFFFFFFFFULL));
    const __m256i c_hi = _mm256_set1_epi64x(static_cast<long long>(c >> 32));
    const __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(x, 32), c_lo), _mm256_mul_epu32(x, c_hi));
    return _mm256_add_epi64(_mm256_mul_epu32(x, c_lo), _mm256_slli_epi64(cross, 32));
}

// mix64 in four lanes, bit for bit.
__attribute__((target("avx2"))) inline __m256i mix64(__m256i z) {
    z = _mm256_add_epi64(z, _mm256_set1_epi64x(static_cast<long long>(0x9E3779B97F4A7C15ULL)));
    z = mul64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 30)), 0xBF58476D1CE4E5B9ULL);
    z = mul64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 27)), 0x94D049BB133111EBULL);
    return _mm256_xor_si256(z, _mm256_srli_epi64(z, 31));
}

// All-ones in the lanes whose element is kept: top 32 bits below the threshold (both sides
// within [0, 2^32], so the signed 64-bit comparison is exact).
__attribute__((target("avx2"))) inline __m256i keep4(__m256i key, __m256i counter, __m256i threshold) {
    const __m256i top = _mm256_srli_epi64(mix64(_mm256_xor_si256(key, counter)), 32);
    return _mm256_cmpgt_epi64(threshold, top);
}

// The row as dropout_row gives it: full vectors here, the remainder through dropout_row.
template <class T>
__attribute__((target("avx2"))) void row(T* out, const T* in, std::int64_t units, std::uint64_t layer_key,
                                         std::uint64_t first, std::uint64_t threshold, T scale) {
    const __m256i key = _mm256_set1_epi64x(static_cast<long long>(layer_key));
    const __m256i limit = _mm256_set1_epi64x(static_cast<long long>(threshold));
    const __m256i four = _mm256_set1_epi64x(4);
    __m256i counter =
        _mm256_add_epi64(_mm256_set1_epi64x(static_cast<long long>(first)), _mm256_set_epi64x(3, 2, 1, 0));
    std::int64_t u = 0;
    if constexpr (sizeof(T) == 4) {
        const __m256 vscale = _mm256_set1_ps(scale);
        const __m256i low_dwords = _mm256_set_epi32(6, 4, 2, 0, 6, 4, 2, 0);
        for (; u + 8 <= units; u += 8) {
            const __m256i k0 = keep4(key, counter, limit);
            counter = _mm256_add_epi64(counter, four);
            const __m256i k1 = keep4(key, counter, limit);
            counter = _mm256_add_epi64(counter, four);
            const __m256i mask = _mm256_blend_epi32(_mm256_permutevar8x32_epi32(k0, low_dwords),
                                                    _mm256_permutevar8x32_epi32(k1, low_dwords), 0xF0);
            const __m256 factor = _mm256_and_ps(_mm256_castsi256_ps(mask), vscale);  // scale or +0
            _mm256_storeu_ps(reinterpret_cast<float*>(out) + u,
                             _mm256_mul_ps(_mm256_loadu_ps(reinterpret_cast<const float*>(in) + u), factor));
        }
    } else {
        const __m256d vscale = _mm256_set1_pd(scale);
        for (; u + 4 <= units; u += 4) {
            const __m256i mask = keep4(key, counter, limit);
            counter = _mm256_add_epi64(counter, four);
            const __m256d factor = _mm256_and_pd(_mm256_castsi256_pd(mask), vscale);
            _mm256_storeu_pd(reinterpret_cast<double*>(out) + u,
                             _mm256_mul_pd(_mm256_loadu_pd(reinterpret_cast<const double*>(in) + u), factor));
        }
    }
    dropout_row(out, in, u, units, layer_key, first, threshold, scale);
}

}  // namespace dropout_avx2
#endif

// out = x * mask * scale: the forward (x = h, out = the layer's dropped-out output) and the
// backward (x = out = da, in place) use the same. x and out (B, units) are one batch's block
// of a layer; out may alias x. Element (r, u) is mask element
// e = position(r) * units + u, where position(r) is row_positions[r] when given (the row's
// place in a global batch that this call computes only part of, as a data-parallel rank does)
// and r otherwise. p in (0, 1). Parallel over chunks of rows; each element's result depends on
// nothing else. On the AVX2 path four masks are hashed at once (dropout_avx2::row), bit for bit
// the scalar hash.
template <class T>
void dropout_apply(T* out, const T* x, std::int64_t B, std::int64_t units, double p, std::uint64_t layer_key,
                   const std::int64_t* row_positions = nullptr) {
    const std::uint64_t threshold = dropout_keep_threshold(p);
    const T scale = dropout_scale<T>(p);
    const std::int64_t rows_per_task = units > 0 ? std::max<std::int64_t>(1, 16 * 1024 / units) : B;
    const bool avx2 = runs_avx2(active_isa());  // the same bits either way: integer hashing, one product
    parallel_for((B + rows_per_task - 1) / rows_per_task, B * units, [&](std::int64_t c) {
        const std::int64_t r1 = std::min(B, (c + 1) * rows_per_task);
        for (std::int64_t r = c * rows_per_task; r < r1; ++r) {
            const std::int64_t position = row_positions != nullptr ? row_positions[r] : r;
            const auto first = static_cast<std::uint64_t>(position) * static_cast<std::uint64_t>(units);
            const T* in = x + r * units;
            T* row = out + r * units;
#ifdef FASTMLP_HAVE_DROPOUT_AVX2
            if (avx2) {
                dropout_avx2::row(row, in, units, layer_key, first, threshold, scale);
                continue;
            }
#endif
            dropout_row(row, in, 0, units, layer_key, first, threshold, scale);
        }
    });
}

}  // namespace fastmlp
