// The three products of backpropagation through a dense layer, as views into the one GEMM
// engine (gemm.hpp) with the element-wise work of the derivation fused into its epilogue:
//   forward  h = g(h_prev W^T + b)                (docs/math.md: a_k = h_{k-1} W_k^T + b_k, h_k = g(a_k))
//   input    dh_prev = da W  [⊙ g'(h_prev)]     (step 3: W^T ∇a, batched; step 4 fused)
//   params   dW = da^T h_prev, db = Σ_batch da   (step 5: the batch sum of outer products),
//            optionally followed by the SGD step on the same tile
// Determinism and threading are the engine's: one FMA chain per element, threads over tiles.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>

#include "activations.hpp"
#include "gemm.hpp"

namespace fastmlp {

// out = g(x W^T + b)
// x (B, IN), W (OUT, IN), b (OUT), out (B, OUT); out must not alias x or W.
// Overwrites out. Scratch reserved for (B, OUT).
// With x_rows set, row r of x is x[x_rows[r]] (a shuffled batch read in place). With nonfinite,
// it is set when an element of x W^T is NaN or infinite (see EpilogueArgs). With activated
// (B, OUT) set, out gets the pre-activation x W^T + b instead and activated gets g of it: a
// layer whose g' needs the pre-activation (gelu, silu) keeps both from one pass.
//
// A batch of few rows (read in place; gemm.hpp, transposed_forward_pays) is computed as C^T = W X^T: the engine then
// reads W's rows in place and packs the rows of X, transposing B x IN values instead of OUT x IN. Element (j, m) of C^T
// is the chain over k of W[j, k] X[m, k], which the fused multiply-add rounds as it does X[m, k] W[j, k], in the same
// blocks of k (fixed by K alone): the bits of the direct product. C^T is then copied into out, and the epilogue run on
// out's rows, as the engine's runs on a tile's.
template <class T>
void dense_forward(T* out, const T* x, const T* W, const T* b, std::int64_t B, std::int64_t IN, std::int64_t OUT,
                   Activation g, GemmScratch<T>& scratch, const std::int64_t* x_rows = nullptr,
                   std::atomic<bool>* nonfinite = nullptr, T* activated = nullptr) {
    EpilogueArgs<T> e;
    e.kind = Epilogue::bias_activation;
    e.bias = b;
    e.g = g;
    e.nonfinite = nonfinite;
    e.activated = activated;
    e.ld_activated = OUT;
    if (x_rows == nullptr && transposed_forward_pays<T>(B, IN, OUT, scratch.b.size())) {
        T* ct = scratch.transposed.data();  // (OUT, B)
        gemm(GemmProblem<T>{OUT, B, IN, {W, IN, 1}, {x, 1, IN}, ct, B, {}}, scratch);
        for (std::int64_t m = 0; m < B; ++m)
            for (std::int64_t j = 0; j < OUT; ++j) out[m * OUT + j] = ct[j * B + m];
        if (detail::apply_epilogue(e, out, OUT, 0, 0, B, OUT) && nonfinite != nullptr)
            nonfinite->store(true, std::memory_order_relaxed);
        return;
    }
    gemm(GemmProblem<T>{B, OUT, IN, {x, IN, 1, x_rows}, {W, 1, IN}, out, OUT, e}, scratch);
}

// dh = da W, and when h_prev is given, (da W) ⊙ g'(h_prev): the gradient at the previous
// layer's pre-activation, multiplied in while the tile is in L1.
// da (B, OUT), W (OUT, IN), h_prev (B, IN) or nullptr, dh (B, IN); dh must not alias the inputs.
// Overwrites dh. Scratch reserved for (B, IN).
template <class T>
void dense_backward_input(T* dh, const T* da, const T* W, const T* h_prev, std::int64_t B, std::int64_t IN,
                          std::int64_t OUT, Activation g, GemmScratch<T>& scratch) {
    GemmProblem<T> p{B, IN, OUT, {da, OUT, 1}, {W, IN, 1}, dh, IN, {}};
    if (h_prev != nullptr) {
        p.epilogue.kind = Epilogue::times_gprime;
        p.epilogue.h = h_prev;
        p.epilogue.ldh = IN;
        p.epilogue.g = g;
    }
    gemm(p, scratch);
}

// db = column sums of da, summed in row order (B = 0 gives zeros).
// da (B, OUT), db (OUT). Overwrites db. Serial: B x OUT adds, vectorized over OUT.
template <class T>
void bias_gradient(T* db, const T* da, std::int64_t B, std::int64_t OUT) {
    std::fill(db, db + OUT, T(0));
    for (std::int64_t r = 0; r < B; ++r)
        for (std::int64_t o = 0; o < OUT; ++o) db[o] += da[r * OUT + o];
}

// dW = da^T h_prev, db = column sums of da. With W and b given (lr > 0), takes the SGD step
// W -= lr dW, b -= lr db instead, each weight tile updated from registers as soon as its
// gradient is final: dW is then scratch (its contents unspecified), never stored and read back,
// which saves a write and two reads of a W-sized array per step (a quarter of a 4096-wide
// layer's memory traffic).
// da (B, OUT), h_prev (B, IN), dW and W (OUT, IN), db and b (OUT).
// Overwrites dW and db (B = 0 gives zeros). Scratch reserved for (OUT, IN).
// With h_rows set, row r of h_prev is h_prev[h_rows[r]]. With `nonfinite` (and the step), it is
// set when a new weight or bias is NaN or infinite: checked as the values are written.
// b -= lr db, setting `nonfinite` (when given) if a new bias is NaN or infinite. Shared by the
// dense and the sparse first-layer steps.
template <class T>
void sgd_bias_step(T* b, const T* db, T lr, std::int64_t OUT, std::atomic<bool>* nonfinite) {
    bool bad = false;
    for (std::int64_t o = 0; o < OUT; ++o) {
        b[o] -= lr * db[o];
        bad |= !std::isfinite(b[o]);
    }
    if (bad && nonfinite != nullptr) nonfinite->store(true, std::memory_order_relaxed);
}

template <class T>
void dense_backward_params(T* dW, T* db, const T* da, const T* h_prev, std::int64_t B, std::int64_t IN,
                           std::int64_t OUT, GemmScratch<T>& scratch, T* W = nullptr, T* b = nullptr, T lr = T(0),
                           const std::int64_t* h_rows = nullptr, std::atomic<bool>* nonfinite = nullptr) {
    GemmProblem<T> p{OUT, IN, B, {da, 1, OUT}, {h_prev, IN, 1, h_rows}, dW, IN, {}};
    p.weight_gradient = true;
    if (W != nullptr) {
        p.epilogue.kind = Epilogue::sgd_step;
        p.epilogue.W = W;
        p.epilogue.ldw = IN;
        p.epilogue.lr = lr;
        p.epilogue.nonfinite = nonfinite;
    }
    gemm(p, scratch);
    bias_gradient(db, da, B, OUT);
    if (b != nullptr) sgd_bias_step(b, db, lr, OUT, nonfinite);
}

}  // namespace fastmlp
