// A whole network, layer after layer: the forward pass, the backward recurrence
// (da_L -> dh_{k-1} -> da_{k-1}, dW_k, db_k), the SGD step and the epoch's batch loop.
// The weights belong to the caller (NumPy arrays); this file owns only scratch memory,
// allocated once in a Workspace and reused by every batch. No allocation inside a step.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "activations.hpp"
#include "checked.hpp"
#include "dense.hpp"
#include "softmax_xent.hpp"

namespace fastmlp {

// Views of one layer's parameters: W (n_out, n_in), b (n_out).
template <class T>
struct DenseLayer {
    T* W;
    T* b;
    std::int64_t n_in, n_out;
};

// Where the gradients of one layer go (the Workspace's own buffers during training).
template <class T>
struct LayerGrads {
    T* dW;
    T* db;
};

// The targets of a batch: integer labels (B,) or distributions (B, K); exactly one is set.
template <class T>
struct Targets {
    const std::int64_t* labels = nullptr;
    const T* dist = nullptr;
};

// Element counts of every Workspace buffer, computed with overflow-checked 64-bit arithmetic
// BEFORE anything is allocated: the constructor allocates exactly these, and
// _core._workspace_bytes reports `bytes` without allocating (the 2^31 tests use it).
struct WorkspacePlan {
    std::vector<std::int64_t> h, dW, db;  // per layer k = 1..L (index 0 unused)
    std::int64_t delta = 0, target_batch = 0, label_batch = 0, gemm_a = 0, gemm_b = 0;
    std::int64_t bytes = 0;               // total, packing buffers rounded as allocated
};

// Throws SizeError when any count or the total does not fit in 64 bits / the address space.
template <class T>
WorkspacePlan plan_workspace(const std::vector<std::int64_t>& sizes, std::int64_t batch) {
    const std::size_t L = sizes.size() - 1;
    const std::int64_t widest = *std::max_element(sizes.begin() + 1, sizes.end());
    const auto elem = static_cast<std::int64_t>(sizeof(T));
    WorkspacePlan p;
    p.h.assign(L + 1, 0);
    p.dW.assign(L + 1, 0);
    p.db.assign(L + 1, 0);
    std::int64_t total = 0;
    auto add = [&](std::int64_t n, std::int64_t size, const char* what) {
        total = checked_add(total, checked_bytes(n, size, what), what);
    };
    for (std::size_t k = 1; k <= L; ++k) {
        p.h[k] = checked_mul(batch, sizes[k], "activations");
        p.dW[k] = checked_mul(sizes[k], sizes[k - 1], "weight gradient");
        p.db[k] = sizes[k];
        add(p.h[k], elem, "activations");
        add(p.dW[k], elem, "weight gradient");
        add(p.db[k], elem, "bias gradient");
        // forward (batch x out), input gradient (batch x in), weight gradient (out x in)
        p.gemm_a = std::max(p.gemm_a, GemmScratch<T>::a_elems(std::max(batch, sizes[k])));
        p.gemm_b = std::max(p.gemm_b, GemmScratch<T>::b_elems(std::max(sizes[k], sizes[k - 1])));
    }
    p.delta = checked_mul(batch, widest, "layer delta");
    p.target_batch = checked_mul(batch, sizes[L], "target batch");
    p.label_batch = batch;
    add(p.delta, elem, "layer delta");
    add(p.delta, elem, "layer delta");  // delta and delta_prev
    add(p.target_batch, elem, "target batch");
    add(p.label_batch, static_cast<std::int64_t>(sizeof(std::int64_t)), "label batch");
    total = checked_add(total, AlignedBuffer<T>::bytes_for(p.gemm_a), "packing buffers");
    total = checked_add(total, AlignedBuffer<T>::bytes_for(p.gemm_b), "packing buffers");
    p.bytes = total;
    return p;
}

// Scratch memory for batches of up to max_batch rows through a network of `sizes`
// (sizes[0] inputs, sizes[L] classes).
template <class T>
struct Workspace {
    std::vector<std::int64_t> sizes;
    std::int64_t max_batch = 0;
    std::vector<std::vector<T>> h;          // h[k] (max_batch, sizes[k]) for k = 1..L; h[L] holds the logits
    std::vector<T> delta, delta_prev;       // da of the current layer and of the one below it
    std::vector<std::vector<T>> dW, db;     // per-layer gradients for the training step
    std::vector<T> target_batch;
    std::vector<std::int64_t> label_batch;
    std::vector<LayerGrads<T>> grads;       // views of dW, db handed to forward_backward
    GemmScratch<T> gemm;                    // packing space for the largest product of any layer

    Workspace(const Workspace&) = delete;  // grads points into this object's own buffers
    Workspace& operator=(const Workspace&) = delete;

    // Plans every size first (SizeError on overflow, before any allocation), then allocates;
    // an allocation the system refuses throws std::bad_alloc. Either way nothing leaks.
    Workspace(std::vector<std::int64_t> layer_sizes, std::int64_t batch)
        : sizes(std::move(layer_sizes)), max_batch(batch) {
        const WorkspacePlan p = plan_workspace<T>(sizes, batch);
        const std::size_t L = sizes.size() - 1;
        h.resize(L + 1);
        dW.resize(L + 1);
        db.resize(L + 1);
        for (std::size_t k = 1; k <= L; ++k) {
            h[k].resize(static_cast<std::size_t>(p.h[k]));
            dW[k].resize(static_cast<std::size_t>(p.dW[k]));
            db[k].resize(static_cast<std::size_t>(p.db[k]));
        }
        delta.resize(static_cast<std::size_t>(p.delta));
        delta_prev.resize(static_cast<std::size_t>(p.delta));
        target_batch.resize(static_cast<std::size_t>(p.target_batch));
        label_batch.resize(static_cast<std::size_t>(p.label_batch));
        for (std::size_t k = 1; k <= L; ++k) grads.push_back({dW[k].data(), db[k].data()});
        gemm.a.reserve(p.gemm_a);
        gemm.b.reserve(p.gemm_b);
    }
    std::int64_t n_layers() const { return static_cast<std::int64_t>(sizes.size()) - 1; }
};

// h_k = g(h_{k-1} W_k^T + b_k) for k = 1..L (g = identity on the output layer) into ws.h.
// X (B, sizes[0]) with B <= ws.max_batch, or with x_rows set, the rows X[x_rows[0..B)]: a
// shuffled batch is read in place, never gathered. Returns the logits, (B, K), inside ws.
template <class T>
const T* forward_pass(Workspace<T>& ws, const std::vector<DenseLayer<T>>& layers, Activation g,
                      const T* X, std::int64_t B, const std::int64_t* x_rows = nullptr) {
    const std::int64_t L = ws.n_layers();
    const T* in = X;
    for (std::int64_t k = 1; k <= L; ++k) {
        const DenseLayer<T>& layer = layers[k - 1];
        dense_forward(ws.h[k].data(), in, layer.W, layer.b, B, layer.n_in, layer.n_out,
                      k < L ? g : Activation::identity, ws.gemm, k == 1 ? x_rows : nullptr);
        in = ws.h[k].data();
    }
    return in;
}

// One forward and backward pass over a batch; writes every layer's gradient of the mean loss
// into grads[k-1]. When lr > 0 it also takes the SGD step, layer by layer from the top:
// dh_{k-1} = da_k W_k is computed before W_k changes, so the result equals computing all
// gradients first and updating afterwards. With skip_if_nonfinite, a batch whose loss is NaN or
// infinite stops right after the forward pass: no gradient, no update.
template <class T>
LossStats forward_backward(Workspace<T>& ws, const std::vector<DenseLayer<T>>& layers, Activation g,
                           const T* X, const Targets<T>& y, std::int64_t B,
                           const std::vector<LayerGrads<T>>& grads, T lr, const std::int64_t* x_rows = nullptr,
                           bool skip_if_nonfinite = false) {
    const std::int64_t L = ws.n_layers();
    const T* logits = forward_pass(ws, layers, g, X, B, x_rows);
    T* da = ws.delta.data();
    T* da_below = ws.delta_prev.data();
    const LossStats stats =
        softmax_xent(da, logits, y.labels, y.dist, B, ws.sizes[L], SoftmaxOutput::gradient);  // da_L
    if (skip_if_nonfinite && !std::isfinite(stats.loss_sum)) return stats;
    for (std::int64_t k = L; k >= 1; --k) {
        const DenseLayer<T>& layer = layers[k - 1];
        const T* h_prev = k > 1 ? ws.h[k - 1].data() : X;
        const std::int64_t* h_rows = k > 1 ? nullptr : x_rows;
        if (k > 1)  // da_{k-1} = (da_k W_k) ⊙ g'(h_{k-1}); nobody needs dX, so layer 1 skips it
            dense_backward_input(da_below, da, layer.W, h_prev, B, layer.n_in, layer.n_out, g, ws.gemm);
        if (lr > T(0))  // dW_k, db_k, and the SGD step on each tile as soon as it is final
            dense_backward_params(grads[k - 1].dW, grads[k - 1].db, da, h_prev, B, layer.n_in, layer.n_out,
                                  ws.gemm, layer.W, layer.b, lr, h_rows);
        else
            dense_backward_params(grads[k - 1].dW, grads[k - 1].db, da, h_prev, B, layer.n_in, layer.n_out,
                                  ws.gemm, static_cast<T*>(nullptr), static_cast<T*>(nullptr), T(0), h_rows);
        std::swap(da, da_below);
    }
    return stats;
}

// One SGD step on one batch, gradients kept in the workspace. Returns the pre-update loss stats.
template <class T>
LossStats train_batch(Workspace<T>& ws, const std::vector<DenseLayer<T>>& layers, Activation g,
                      const T* X, const Targets<T>& y, std::int64_t B, T lr,
                      const std::int64_t* x_rows = nullptr, bool skip_if_nonfinite = false) {
    return forward_backward(ws, layers, g, X, y, B, ws.grads, lr, x_rows, skip_if_nonfinite);
}

struct EpochStats {
    LossStats totals;
    std::int64_t n_seen = 0;  // rows trained on; less than n_samples only when stopped early
    bool stopped = false;     // should_stop() said so
    bool nonfinite = false;   // a batch's loss was NaN or infinite (with stop_on_nonfinite)
};

// One epoch of minibatch SGD: consecutive batches of `order` (or of the rows in order when
// order is null), the last partial batch included. `should_stop()` is asked after each batch
// (the caller decides how cheaply, e.g. by clock); a true answer ends the epoch there, with
// the weights as left by the last completed batch. With stop_on_nonfinite, the first batch
// whose loss is NaN or infinite ends the epoch before its update; it is not counted in n_seen.
// X (N, sizes[0]); y labels (N,) or targets (N, K); order (N,) indices into [0, N) or null.
template <class T, class StopCheck>
EpochStats train_epoch(Workspace<T>& ws, const std::vector<DenseLayer<T>>& layers, Activation g,
                       const T* X, const Targets<T>& y, const std::int64_t* order, std::int64_t N,
                       std::int64_t batch_size, T lr, StopCheck&& should_stop, bool stop_on_nonfinite = false) {
    const std::int64_t IN = ws.sizes[0], K = ws.sizes.back();
    EpochStats epoch;
    for (std::int64_t start = 0; start < N; start += batch_size) {
        const std::int64_t B = std::min(batch_size, N - start);
        const T* xb = X + start * IN;
        const std::int64_t* rows = nullptr;
        Targets<T> yb;
        if (order == nullptr) {
            yb.labels = y.labels ? y.labels + start : nullptr;
            yb.dist = y.dist ? y.dist + start * K : nullptr;
        } else {  // X's rows are read in place through `rows`; only the small targets are gathered
            xb = X;
            rows = order + start;
            for (std::int64_t r = 0; r < B; ++r) {
                const std::int64_t src = rows[r];
                if (y.labels) ws.label_batch[r] = y.labels[src];
                if (y.dist) std::memcpy(ws.target_batch.data() + r * K, y.dist + src * K, sizeof(T) * K);
            }
            yb.labels = y.labels ? ws.label_batch.data() : nullptr;
            yb.dist = y.dist ? ws.target_batch.data() : nullptr;
        }
        const LossStats s = train_batch(ws, layers, g, xb, yb, B, lr, rows, stop_on_nonfinite);
        if (stop_on_nonfinite && !std::isfinite(s.loss_sum)) {
            epoch.nonfinite = true;
            break;
        }
        epoch.totals.loss_sum += s.loss_sum;
        epoch.totals.n_correct += s.n_correct;
        epoch.n_seen += B;
        if (start + B < N && should_stop()) {
            epoch.stopped = true;
            break;
        }
    }
    return epoch;
}

// Forward passes over N rows in chunks of ws.max_batch. With probs non-null, writes softmax
// probabilities (N, K); with targets set, also returns the summed loss and correct count.
// Rows never interact, so the chunking does not change a single bit of the results.
template <class T>
LossStats evaluate(Workspace<T>& ws, const std::vector<DenseLayer<T>>& layers, Activation g, const T* X,
                   const Targets<T>& y, std::int64_t N, T* probs) {
    const std::int64_t IN = ws.sizes[0], K = ws.sizes.back();
    LossStats totals;
    for (std::int64_t start = 0; start < N; start += ws.max_batch) {
        const std::int64_t B = std::min(ws.max_batch, N - start);
        const T* logits = forward_pass(ws, layers, g, X + start * IN, B);
        T* out = probs ? probs + start * K : ws.delta.data();
        Targets<T> yb;
        yb.labels = y.labels ? y.labels + start : nullptr;
        yb.dist = y.dist ? y.dist + start * K : nullptr;
        const LossStats s = softmax_xent(out, logits, yb.labels, yb.dist, B, K, SoftmaxOutput::probabilities);
        totals.loss_sum += s.loss_sum;
        totals.n_correct += s.n_correct;
    }
    return totals;
}

}  // namespace fastmlp
