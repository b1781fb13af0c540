// The three products of backpropagation through a dense layer, one kernel each:
//   forward  a = h_prev W^T + b, then h = g(a)        (the notes' a_k = b_k + W_k h_{k-1})
//   input    dh_prev = da W  [⊙ g'(h_prev)]          (step 3: W^T ∇a, batched; step 4 fused)
//   params   dW = da^T h_prev, db = Σ_batch da        (step 5: sum of outer products)
// Every output element is owned by one task and summed in one fixed order, so the bits do
// not depend on the thread count. Plain blocked loops the compiler vectorizes; the packed
// GEMM micro-kernels are a later step, not attempted here.
#pragma once

#include <algorithm>
#include <cstdint>

#include "activations.hpp"
#include "parallel.hpp"

namespace fastmlp {

namespace detail {

// Dot products use 8 interleaved partial sums (lane l takes the indices i ≡ l mod 8 of the
// full blocks), combined pairwise, then the tail added left to right. Independent lanes let
// the compiler use SIMD without -ffast-math; the fixed combination keeps results exact-repeatable.
constexpr int kLanes = 8;

template <class T>
inline T combine_lanes(const T* acc) {
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

template <class T>
inline T dot(const T* x, const T* w, std::int64_t n) {
    T acc[kLanes] = {};
    std::int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int l = 0; l < kLanes; ++l) acc[l] += x[i + l] * w[i + l];
    T s = combine_lanes(acc);
    for (; i < n; ++i) s += x[i] * w[i];
    return s;
}

// Four dot products sharing the loads of x; each is summed exactly as dot() sums it.
template <class T>
inline void dot4(T* out, const T* x, const T* w0, const T* w1, const T* w2, const T* w3,
                 std::int64_t n) {
    T a0[kLanes] = {}, a1[kLanes] = {}, a2[kLanes] = {}, a3[kLanes] = {};
    std::int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
        for (int l = 0; l < kLanes; ++l) {
            const T xv = x[i + l];
            a0[l] += xv * w0[i + l];
            a1[l] += xv * w1[i + l];
            a2[l] += xv * w2[i + l];
            a3[l] += xv * w3[i + l];
        }
    }
    T s0 = combine_lanes(a0), s1 = combine_lanes(a1), s2 = combine_lanes(a2), s3 = combine_lanes(a3);
    for (; i < n; ++i) {
        s0 += x[i] * w0[i];
        s1 += x[i] * w1[i];
        s2 += x[i] * w2[i];
        s3 += x[i] * w3[i];
    }
    out[0] = s0;
    out[1] = s1;
    out[2] = s2;
    out[3] = s3;
}

inline std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

// Tile sizes: a block of 32 weight rows (32 x IN) stays in L2 while the batch rows stream past;
// 256-column blocks keep the rows being accumulated in L1 for the backward products.
constexpr std::int64_t kRowBlock = 32;
constexpr std::int64_t kOutBlock = 32;
constexpr std::int64_t kColBlock = 256;

}  // namespace detail

// out = g(x W^T + b)
// x (B, IN), W (OUT, IN), b (OUT), out (B, OUT); out must not alias x.
// Overwrites out. Parallel over (32-row x 32-output) tiles of out.
template <class T>
void dense_forward(T* out, const T* x, const T* W, const T* b, std::int64_t B, std::int64_t IN,
                   std::int64_t OUT, Activation g) {
    using namespace detail;
    const std::int64_t row_tiles = ceil_div(B, kRowBlock), out_tiles = ceil_div(OUT, kOutBlock);
    parallel_for(row_tiles * out_tiles, B * IN * OUT, [&](std::int64_t t) {
        const std::int64_t r0 = (t / out_tiles) * kRowBlock, r1 = std::min(B, r0 + kRowBlock);
        const std::int64_t o0 = (t % out_tiles) * kOutBlock, o1 = std::min(OUT, o0 + kOutBlock);
        std::int64_t o = o0;
        for (; o + 4 <= o1; o += 4) {
            const T* w = W + o * IN;
            for (std::int64_t r = r0; r < r1; ++r) {
                T* dst = out + r * OUT + o;
                dot4(dst, x + r * IN, w, w + IN, w + 2 * IN, w + 3 * IN, IN);
                for (int q = 0; q < 4; ++q) dst[q] += b[o + q];
            }
        }
        for (; o < o1; ++o)
            for (std::int64_t r = r0; r < r1; ++r) out[r * OUT + o] = dot(x + r * IN, W + o * IN, IN) + b[o];
        for (std::int64_t r = r0; r < r1; ++r) activation_forward(out + r * OUT + o0, out + r * OUT + o0, o1 - o0, g);
    });
}

// dh = da W, and when h_prev is given, dh ⊙ g'(h_prev) (the gradient at the previous layer's
// pre-activation, so the Hadamard product is applied while the row is still in L1).
// da (B, OUT), W (OUT, IN), h_prev (B, IN) or nullptr, dh (B, IN); dh must not alias da, W or h_prev.
// Overwrites dh: dh[r, j] = da[r,0] W[0,j] + da[r,1] W[1,j] + ... summed in o order.
// Parallel over (4-row x 256-column) tiles of dh.
template <class T>
void dense_backward_input(T* dh, const T* da, const T* W, const T* h_prev, std::int64_t B,
                          std::int64_t IN, std::int64_t OUT, Activation g) {
    using namespace detail;
    constexpr std::int64_t R = 4;
    const std::int64_t row_tiles = ceil_div(B, R), col_tiles = ceil_div(IN, kColBlock);
    parallel_for(row_tiles * col_tiles, B * IN * OUT, [&](std::int64_t t) {
        const std::int64_t r0 = (t / col_tiles) * R, r1 = std::min(B, r0 + R);
        const std::int64_t j0 = (t % col_tiles) * kColBlock, j1 = std::min(IN, j0 + kColBlock);
        if (OUT == 0) {
            for (std::int64_t r = r0; r < r1; ++r) std::fill(dh + r * IN + j0, dh + r * IN + j1, T(0));
        } else if (r1 - r0 == R) {
            T* d0 = dh + r0 * IN;
            T* d1 = d0 + IN;
            T* d2 = d1 + IN;
            T* d3 = d2 + IN;
            const T* e = da + r0 * OUT;
            for (std::int64_t j = j0; j < j1; ++j) {
                d0[j] = e[0] * W[j];
                d1[j] = e[OUT] * W[j];
                d2[j] = e[2 * OUT] * W[j];
                d3[j] = e[3 * OUT] * W[j];
            }
            for (std::int64_t o = 1; o < OUT; ++o) {
                const T* w = W + o * IN;
                const T c0 = e[o], c1 = e[OUT + o], c2 = e[2 * OUT + o], c3 = e[3 * OUT + o];
                for (std::int64_t j = j0; j < j1; ++j) {
                    d0[j] += c0 * w[j];
                    d1[j] += c1 * w[j];
                    d2[j] += c2 * w[j];
                    d3[j] += c3 * w[j];
                }
            }
        } else {
            for (std::int64_t r = r0; r < r1; ++r) {
                T* d = dh + r * IN;
                const T* e = da + r * OUT;
                for (std::int64_t j = j0; j < j1; ++j) d[j] = e[0] * W[j];
                for (std::int64_t o = 1; o < OUT; ++o) {
                    const T* w = W + o * IN;
                    const T c = e[o];
                    for (std::int64_t j = j0; j < j1; ++j) d[j] += c * w[j];
                }
            }
        }
        if (h_prev != nullptr)
            for (std::int64_t r = r0; r < r1; ++r)
                activation_backward(dh + r * IN + j0, dh + r * IN + j0, h_prev + r * IN + j0, j1 - j0, g);
    });
}

// dW = da^T h_prev (the batch sum of outer products da[r]^T h_prev[r]); db = column sums of da.
// da (B, OUT), h_prev (B, IN), dW (OUT, IN), db (OUT).
// Overwrites dW and db, each summed over the batch in row order (B = 0 gives zeros).
// Parallel over (4-output x 256-column) tiles of dW; db[o] belongs to the tile holding column 0.
template <class T>
void dense_backward_params(T* dW, T* db, const T* da, const T* h_prev, std::int64_t B,
                           std::int64_t IN, std::int64_t OUT) {
    using namespace detail;
    constexpr std::int64_t R = 4;
    const std::int64_t out_tiles = ceil_div(OUT, R), col_tiles = ceil_div(IN, kColBlock);
    parallel_for(out_tiles * col_tiles, B * IN * OUT, [&](std::int64_t t) {
        const std::int64_t o0 = (t / col_tiles) * R, o1 = std::min(OUT, o0 + R);
        const std::int64_t j0 = (t % col_tiles) * kColBlock, j1 = std::min(IN, j0 + kColBlock);
        if (B == 0) {
            for (std::int64_t o = o0; o < o1; ++o) std::fill(dW + o * IN + j0, dW + o * IN + j1, T(0));
        } else if (o1 - o0 == R) {
            T* d0 = dW + o0 * IN;
            T* d1 = d0 + IN;
            T* d2 = d1 + IN;
            T* d3 = d2 + IN;
            const T* e = da + o0;
            for (std::int64_t j = j0; j < j1; ++j) {
                d0[j] = e[0] * h_prev[j];
                d1[j] = e[1] * h_prev[j];
                d2[j] = e[2] * h_prev[j];
                d3[j] = e[3] * h_prev[j];
            }
            for (std::int64_t r = 1; r < B; ++r) {
                const T* h = h_prev + r * IN;
                const T* er = e + r * OUT;
                const T c0 = er[0], c1 = er[1], c2 = er[2], c3 = er[3];
                for (std::int64_t j = j0; j < j1; ++j) {
                    d0[j] += c0 * h[j];
                    d1[j] += c1 * h[j];
                    d2[j] += c2 * h[j];
                    d3[j] += c3 * h[j];
                }
            }
        } else {
            for (std::int64_t o = o0; o < o1; ++o) {
                T* d = dW + o * IN;
                for (std::int64_t j = j0; j < j1; ++j) d[j] = da[o] * h_prev[j];
                for (std::int64_t r = 1; r < B; ++r) {
                    const T* h = h_prev + r * IN;
                    const T c = da[r * OUT + o];
                    for (std::int64_t j = j0; j < j1; ++j) d[j] += c * h[j];
                }
            }
        }
        if (j0 == 0) {
            for (std::int64_t o = o0; o < o1; ++o) {
                T s = T(0);
                for (std::int64_t r = 0; r < B; ++r) s += da[r * OUT + o];
                db[o] = s;
            }
        }
    });
}

}  // namespace fastmlp
