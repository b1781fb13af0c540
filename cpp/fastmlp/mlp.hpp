// A whole network, layer after layer: the forward pass (with dropout when training), the
// output layer's loss and gradient, the backward recurrence (da_L -> dh_{k-1} -> da_{k-1},
// dW_k, db_k), the optimizer's update and the epoch's batch loop.
// The weights and the optimizer state belong to the caller (NumPy arrays); this file owns
// only scratch memory, allocated once in a Workspace and reused by every batch. No allocation
// inside a step.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "activations.hpp"
#include "checked.hpp"
#include "dense.hpp"
#include "dropout.hpp"
#include "finite.hpp"
#include "losses.hpp"
#include "optim.hpp"
#include "softmax_xent.hpp"
#include "sparse.hpp"

namespace fastmlp {

// What a network computes, apart from its parameters: sizes[0] inputs, sizes[L] outputs;
// per hidden layer k = 1..L-1 (index k-1) its activation and its dropout probability.
struct NetSpec {
    std::vector<std::int64_t> sizes;
    std::vector<Activation> activations;  // L - 1 entries
    std::vector<double> dropout;          // L - 1 entries in [0, 1)
    Output output = Output::softmax;

    std::int64_t n_layers() const { return static_cast<std::int64_t>(sizes.size()) - 1; }
    // Hidden layer k's activation and dropout (1 <= k < L).
    Activation g(std::int64_t k) const { return activations[static_cast<std::size_t>(k - 1)]; }
    double p(std::int64_t k) const { return dropout[static_cast<std::size_t>(k - 1)]; }
    bool keeps_preactivation(std::int64_t k) const { return k < n_layers() && takes_preactivation(g(k)); }
    bool has_dropout(std::int64_t k) const { return k < n_layers() && p(k) > 0.0; }
};

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
// Optionally a weight per row (scikit-learn's sample_weight; see RowWeights).
template <class T>
struct Targets {
    const std::int64_t* labels = nullptr;
    const T* dist = nullptr;
    const T* weight = nullptr;
};

// Element counts of every Workspace buffer, computed with overflow-checked 64-bit arithmetic
// BEFORE anything is allocated: the constructor allocates exactly these, and
// _core._workspace_bytes reports `bytes` without allocating (the 2^31 tests use it).
struct WorkspacePlan {
    std::vector<std::int64_t> h, a, hd, dW, db;  // per layer k = 1..L (index 0 unused)
    std::int64_t delta = 0, target_batch = 0, label_batch = 0, weight_batch = 0, gemm_a = 0, gemm_b = 0, gemm_t = 0;
    std::int64_t bytes = 0;  // total, packing buffers rounded as allocated
};

// Throws SizeError when any count or the total does not fit in 64 bits / the address space.
template <class T>
WorkspacePlan plan_workspace(const NetSpec& spec, std::int64_t batch) {
    const std::vector<std::int64_t>& sizes = spec.sizes;
    const std::size_t L = sizes.size() - 1;
    const std::int64_t widest = *std::max_element(sizes.begin() + 1, sizes.end());
    const auto elem = static_cast<std::int64_t>(sizeof(T));
    WorkspacePlan p;
    p.h.assign(L + 1, 0);
    p.a.assign(L + 1, 0);
    p.hd.assign(L + 1, 0);
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
        const auto kk = static_cast<std::int64_t>(k);
        if (spec.keeps_preactivation(kk)) {
            p.a[k] = p.h[k];
            add(p.a[k], elem, "pre-activations");
        }
        if (spec.has_dropout(kk)) {
            p.hd[k] = p.h[k];
            add(p.hd[k], elem, "dropout outputs");
        }
        add(p.dW[k], elem, "weight gradient");
        add(p.db[k], elem, "bias gradient");
        // forward (batch x out), input gradient (batch x in), weight gradient (out x in)
        p.gemm_a = std::max(p.gemm_a, GemmScratch<T>::a_elems(std::max(batch, sizes[k])));
        p.gemm_b = std::max(p.gemm_b, GemmScratch<T>::b_elems(std::max(sizes[k], sizes[k - 1])));
        p.gemm_t = std::max(p.gemm_t, GemmScratch<T>::transposed_elems(batch, sizes[k]));
    }
    p.delta = checked_mul(batch, widest, "layer delta");
    p.target_batch = checked_mul(batch, sizes[L], "target batch");
    p.label_batch = batch;
    p.weight_batch = batch;
    add(p.delta, elem, "layer delta");
    add(p.delta, elem, "layer delta");  // delta and delta_prev
    add(p.target_batch, elem, "target batch");
    add(p.label_batch, static_cast<std::int64_t>(sizeof(std::int64_t)), "label batch");
    add(p.weight_batch, elem, "weight batch");
    total = checked_add(total, AlignedBuffer<T>::bytes_for(p.gemm_a), "packing buffers");
    total = checked_add(total, AlignedBuffer<T>::bytes_for(p.gemm_b), "packing buffers");
    total = checked_add(total, AlignedBuffer<T>::bytes_for(p.gemm_t), "packing buffers");
    p.bytes = total;
    return p;
}

// Scratch memory for batches of up to max_batch rows through the network `spec`.
template <class T>
struct Workspace {
    NetSpec spec;
    std::vector<std::int64_t> sizes;  // spec.sizes
    std::int64_t max_batch = 0;
    std::vector<std::vector<T>> h;       // h[k] (max_batch, sizes[k]) for k = 1..L; h[L] holds the logits
    std::vector<std::vector<T>> a;       // a[k], the pre-activation, only where g'(a) needs it
    std::vector<std::vector<T>> hd;      // hd[k] = dropout(h[k]), only for layers with dropout
    std::vector<T> delta, delta_prev;    // da of the current layer and of the one below it
    std::vector<std::vector<T>> dW, db;  // per-layer gradients for the training step
    std::vector<T> target_batch;
    std::vector<std::int64_t> label_batch;
    std::vector<T> weight_batch;       // the sample weights of a shuffled batch, gathered
    std::vector<LayerGrads<T>> grads;  // views of dW, db handed to forward_backward
    GemmScratch<T> gemm;               // packing space for the largest product of any layer

    Workspace(const Workspace&) = delete;  // grads points into this object's own buffers
    Workspace& operator=(const Workspace&) = delete;

    // Plans every size first (SizeError on overflow, before any allocation), then allocates;
    // an allocation the system refuses throws std::bad_alloc. Either way nothing leaks.
    Workspace(NetSpec net, std::int64_t batch) : spec(std::move(net)), sizes(spec.sizes), max_batch(batch) {
        const WorkspacePlan p = plan_workspace<T>(spec, batch);
        const std::size_t L = sizes.size() - 1;
        h.resize(L + 1);
        a.resize(L + 1);
        hd.resize(L + 1);
        dW.resize(L + 1);
        db.resize(L + 1);
        for (std::size_t k = 1; k <= L; ++k) {
            h[k].resize(static_cast<std::size_t>(p.h[k]));
            a[k].resize(static_cast<std::size_t>(p.a[k]));
            hd[k].resize(static_cast<std::size_t>(p.hd[k]));
            dW[k].resize(static_cast<std::size_t>(p.dW[k]));
            db[k].resize(static_cast<std::size_t>(p.db[k]));
        }
        delta.resize(static_cast<std::size_t>(p.delta));
        delta_prev.resize(static_cast<std::size_t>(p.delta));
        target_batch.resize(static_cast<std::size_t>(p.target_batch));
        label_batch.resize(static_cast<std::size_t>(p.label_batch));
        weight_batch.resize(static_cast<std::size_t>(p.weight_batch));
        for (std::size_t k = 1; k <= L; ++k) grads.push_back({dW[k].data(), db[k].data()});
        gemm.a.reserve(p.gemm_a);
        gemm.b.reserve(p.gemm_b);
        gemm.transposed.reserve(p.gemm_t);
    }
    std::int64_t n_layers() const { return static_cast<std::int64_t>(sizes.size()) - 1; }

    // What layer k+1 reads: the dropped-out h_k when dropout ran in this pass, else h_k.
    const T* layer_output(std::int64_t k, bool dropped) const {
        return dropped && spec.has_dropout(k) ? hd[k].data() : h[k].data();
    }
    // What g'(.) of hidden layer k is computed from: a_k where it needs a, else h_k.
    const T* saved_for_gprime(std::int64_t k) const { return spec.keeps_preactivation(k) ? a[k].data() : h[k].data(); }
};

// A training pass: dropout runs with the masks of `key`. Null: inference, no dropout.
using TrainingKey = const DropoutKey*;

// h_k = g_k(h_{k-1} W_k^T + b_k) for k = 1..L (identity on the output layer) into ws.h, with
// dropout on each hidden layer's output when `training` is set (ws.hd then holds it).
// X (B, sizes[0]) with B <= ws.max_batch, or with x_rows set, the rows X[x_rows[0..B)]: a
// shuffled batch is read in place, never gathered. With csr set, X is its B rows instead (X and
// x_rows unused; sparse.hpp). Returns the logits, (B, K), inside ws.
template <class T>
const T* forward_pass(Workspace<T>& ws, const std::vector<DenseLayer<T>>& layers, const T* X, std::int64_t B,
                      const std::int64_t* x_rows = nullptr, TrainingKey training = nullptr,
                      const CsrRows<T>* csr = nullptr, std::atomic<bool>* first_product_nonfinite = nullptr) {
    const std::int64_t L = ws.n_layers();
    const NetSpec& spec = ws.spec;
    const T* in = X;
    for (std::int64_t k = 1; k <= L; ++k) {
        const DenseLayer<T>& layer = layers[k - 1];
        const std::int64_t* rows = k == 1 ? x_rows : nullptr;
        std::atomic<bool>* nonfinite = k == 1 ? first_product_nonfinite : nullptr;
        const std::int64_t n = B * layer.n_out;
        if (k == 1 && csr != nullptr) {  // a_1 over the nonzeros, then g in place unless a_1 is kept
            T* a = spec.keeps_preactivation(k) ? ws.a[k].data() : ws.h[k].data();
            if (csr->transposed != nullptr)
                sparse_forward_transposed(a, *csr, B, csr->transposed, layer.b, layer.n_out);
            else
                sparse_forward(a, *csr, B, layer.W, layer.b, layer.n_in, layer.n_out);
            const Activation g = k < L ? spec.g(k) : Activation::identity;
            if (g != Activation::identity || a != ws.h[k].data()) activation_forward(ws.h[k].data(), a, n, g);
        } else if (spec.keeps_preactivation(k)) {  // a_k kept for g'(a_k), and h_k = g(a_k), tile by tile
            dense_forward(ws.a[k].data(), in, layer.W, layer.b, B, layer.n_in, layer.n_out, spec.g(k), ws.gemm, rows,
                          nonfinite, ws.h[k].data());
        } else {
            dense_forward(ws.h[k].data(), in, layer.W, layer.b, B, layer.n_in, layer.n_out,
                          k < L ? spec.g(k) : Activation::identity, ws.gemm, rows, nonfinite);
        }
        if (training != nullptr && spec.has_dropout(k)) {
            dropout_apply(ws.hd[k].data(), ws.h[k].data(), B, layer.n_out, spec.p(k),
                          dropout_layer_key(*training, static_cast<std::uint64_t>(k)), training->row_positions);
        }
        in = ws.layer_output(k, training != nullptr);
    }
    return in;
}

// How a training step changes the parameters: no update (gradients only), or one step of
// `spec` (its `step` the 1-based count of this update).
template <class T>
struct Update {
    bool apply = false;
    OptimizerSpec spec;
    // Layer k's state arrays at state[k-1]: W's first and second buffer, then b's; null where
    // the optimizer keeps fewer (spec.n_buffers()).
    const std::vector<std::array<T*, 4>>* state = nullptr;
    // Null, or set when this step leaves a parameter NaN or infinite.
    std::atomic<bool>* nonfinite = nullptr;
};

// Sets `nonfinite` when one of the layer's parameters is NaN or infinite: the check of a step
// that changed nothing (plain SGD with lr = 0), where nothing checked as it wrote.
template <class T>
void check_layer(const DenseLayer<T>& layer, std::atomic<bool>* nonfinite) {
    if (nonfinite == nullptr) return;
    if (!all_finite_shared(layer.W, layer.n_out * layer.n_in) || !all_finite(layer.b, layer.n_out))
        nonfinite->store(true, std::memory_order_relaxed);
}

// Runs the optimizer on layer k's parameters from its gradient (any rule but plain SGD, which
// runs fused into the gradient's tile stores), each chunk checked for NaN and infinity as it is
// written (optimizer_update).
template <class T>
void update_layer(const DenseLayer<T>& layer, const LayerGrads<T>& g, const Update<T>& u, std::size_t k) {
    const std::array<T*, 4>& st = (*u.state)[k];
    optimizer_update(layer.W, g.dW, st[0], st[1], layer.n_out * layer.n_in, u.spec, u.spec.weight_decay, u.nonfinite);
    optimizer_update(layer.b, g.db, st[2], st[3], layer.n_out, u.spec, 0.0, u.nonfinite);  // no decay on biases
}

// One forward and backward pass over a batch; writes every layer's gradient of the mean loss
// into grads[k-1] and, with u.apply, updates the parameters, layer by layer from the top:
// dh_{k-1} = da_k W_k is computed before W_k changes, so the result equals computing all
// gradients first and updating afterwards. With skip_if_nonfinite, a batch whose loss is NaN or
// infinite stops right after the forward pass: no gradient, no update.
template <class T>
LossStats forward_backward(Workspace<T>& ws, const std::vector<DenseLayer<T>>& layers, const T* X, const Targets<T>& y,
                           std::int64_t B, const std::vector<LayerGrads<T>>& grads, const Update<T>& u,
                           const std::int64_t* x_rows = nullptr, bool skip_if_nonfinite = false,
                           TrainingKey training = nullptr, const CsrRows<T>* csr = nullptr) {
    const std::int64_t L = ws.n_layers();
    const NetSpec& spec = ws.spec;
    const T* logits = forward_pass(ws, layers, X, B, x_rows, training, csr);
    T* da = ws.delta.data();
    T* da_below = ws.delta_prev.data();
    const LossStats stats =
        output_loss(spec.output, da, logits, y.labels, y.dist, B, ws.sizes[L], LossOutput::gradient, y.weight);  // da_L
    if (skip_if_nonfinite && !std::isfinite(stats.loss_sum)) return stats;
    const bool fused_sgd = u.apply && u.spec.plain_sgd();
    const T lr = static_cast<T>(u.spec.lr);
    for (std::int64_t k = L; k >= 1; --k) {
        const DenseLayer<T>& layer = layers[k - 1];
        const T* h_prev = k > 1 ? ws.layer_output(k - 1, training != nullptr) : X;
        const std::int64_t* h_rows = k > 1 ? nullptr : x_rows;
        if (k > 1) {  // da_{k-1} = (da_k W_k) ⊙ g'(h_{k-1}) [⊙ dropout mask]; nobody needs dX
            dense_backward_input(da_below, da, layer.W, ws.saved_for_gprime(k - 1), B, layer.n_in, layer.n_out,
                                 spec.g(k - 1), ws.gemm);
            if (training != nullptr && spec.has_dropout(k - 1))
                dropout_apply(da_below, da_below, B, layer.n_in, spec.p(k - 1),
                              dropout_layer_key(*training, static_cast<std::uint64_t>(k - 1)), training->row_positions);
        }
        if (k == 1 && csr != nullptr) {  // over the nonzeros of X; plain SGD writes only the touched columns
            if (fused_sgd && lr > T(0) && csr->transposed != nullptr) {  // inside a plain-SGD epoch
                csr->columns->build(*csr, B);
                sparse_sgd_step_transposed(csr->transposed, layer.b, grads[0].db, da, *csr, B, layer.n_out, lr,
                                           u.nonfinite);
                csr->columns->clear();
            } else if (fused_sgd && lr > T(0)) {
                sparse_sgd_step(layer.W, layer.b, grads[0].dW, grads[0].db, da, *csr, B, layer.n_in, layer.n_out, lr,
                                u.nonfinite);
            } else {
                sparse_weight_gradient(grads[0].dW, grads[0].db, da, *csr, B, layer.n_in, layer.n_out);
                if (u.apply && !fused_sgd)
                    update_layer(layer, grads[0], u, 0);
                else if (u.apply)  // plain SGD with lr = 0
                    check_layer(layer, u.nonfinite);
            }
        } else if (fused_sgd && lr > T(0)) {  // dW_k, db_k, and the SGD step on each tile as soon as it is final
            dense_backward_params(grads[k - 1].dW, grads[k - 1].db, da, h_prev, B, layer.n_in, layer.n_out, ws.gemm,
                                  layer.W, layer.b, lr, h_rows, u.nonfinite);
        } else {
            dense_backward_params(grads[k - 1].dW, grads[k - 1].db, da, h_prev, B, layer.n_in, layer.n_out, ws.gemm,
                                  static_cast<T*>(nullptr), static_cast<T*>(nullptr), T(0), h_rows);
            if (u.apply && !fused_sgd)
                update_layer(layer, grads[k - 1], u, static_cast<std::size_t>(k - 1));
            else if (u.apply)  // plain SGD with lr = 0
                check_layer(layer, u.nonfinite);
        }
        std::swap(da, da_below);
    }
    return stats;
}

// One optimizer step on one batch, gradients kept in the workspace. Returns the pre-update loss stats.
template <class T>
LossStats train_batch(Workspace<T>& ws, const std::vector<DenseLayer<T>>& layers, const T* X, const Targets<T>& y,
                      std::int64_t B, const Update<T>& u, const std::int64_t* x_rows = nullptr,
                      bool skip_if_nonfinite = false, TrainingKey training = nullptr, const CsrRows<T>* csr = nullptr) {
    return forward_backward(ws, layers, X, y, B, ws.grads, u, x_rows, skip_if_nonfinite, training, csr);
}

struct EpochStats {
    LossStats totals;
    std::int64_t n_seen = 0;   // rows trained on; less than n_samples only when stopped early
    std::int64_t n_steps = 0;  // optimizer steps taken (completed batches)
    bool stopped = false;      // should_stop() said so
    bool nonfinite = false;    // a batch's loss was NaN or infinite (with stop_on_nonfinite)
    // Whether every parameter is finite after the epoch: 1 yes, 0 no, -1 not known. Known when
    // the epoch's last batch was trained: its update checked every value it wrote, i.e. all.
    int params_finite = -1;
};

// One epoch of minibatch training: consecutive batches of `order` (or of the rows in order when
// order is null), the last partial batch included. u.spec.step is the number of the first
// update; each batch takes the next. Batch j of the epoch uses the dropout masks of
// {dropout.seed, dropout.epoch, j}. `should_stop()` is asked after each batch (the caller
// decides how cheaply, e.g. by clock); a true answer ends the epoch there, with the weights as
// left by the last completed batch. With stop_on_nonfinite, the first batch whose loss is NaN
// or infinite ends the epoch before its update; it is not counted in n_seen.
// The last batch's update also reports whether every parameter it leaves is finite
// (EpochStats::params_finite; for plain SGD checked inside the GEMM as the weights are written),
// which spares the caller a scan of all the parameters per epoch (1-2 % of an epoch of two
// 4096-wide batches).
// X (N, sizes[0]) or, with csr set, csr's N rows (X null); y labels (N,) or targets (N, K);
// order (N,) indices into [0, N) or null. With csr and plain SGD, the first layer is stepped in
// a transposed copy of W_1 (sparse.hpp) held in the workspace's dW_1 (scratch in that case) and
// copied back when the epoch ends, however it ends.
template <class T, class StopCheck>
EpochStats train_epoch(Workspace<T>& ws, const std::vector<DenseLayer<T>>& layers, const T* X, const Targets<T>& y,
                       const std::int64_t* order, std::int64_t N, std::int64_t batch_size, Update<T> u,
                       DropoutKey dropout, StopCheck&& should_stop, bool stop_on_nonfinite = false,
                       const CsrRows<T>* csr = nullptr) {
    const std::int64_t IN = ws.sizes[0], K = ws.sizes.back();
    EpochStats epoch;
    std::atomic<bool> nonfinite_params{false};
    std::int64_t batch_index = 0;
    CsrRows<T> sparse_x;             // csr, with the transposed first layer during a plain-SGD epoch
    std::vector<ColumnLists> lists;  // that epoch's column scratch, sized once for its largest batch
    const bool transposed = csr != nullptr && u.apply && u.spec.plain_sgd() && u.spec.lr > 0.0 && N > 0;
    if (csr != nullptr) sparse_x = *csr;
    if (transposed) {
        std::int64_t most = 0;
        for (std::int64_t start = 0; start < N; start += batch_size) {
            CsrRows<T> b = csr->batch(order == nullptr ? start : 0);
            if (order != nullptr) b.rows = order + start;
            most = std::max(most, b.nonzeros(std::min(batch_size, N - start)));
        }
        lists.emplace_back(IN, most);
        sparse_x.transposed = ws.dW[1].data();
        sparse_x.columns = &lists[0];
        transpose(sparse_x.transposed, layers[0].W, layers[0].n_out, IN);
    }
    for (std::int64_t start = 0; start < N; start += batch_size, ++batch_index) {
        const std::int64_t B = std::min(batch_size, N - start);
        const bool last_batch = start + B == N;
        u.nonfinite = last_batch ? &nonfinite_params : nullptr;
        const T* xb = X != nullptr ? X + start * IN : nullptr;
        const std::int64_t* rows = nullptr;
        Targets<T> yb;
        if (order == nullptr) {
            yb.labels = y.labels ? y.labels + start : nullptr;
            yb.dist = y.dist ? y.dist + start * K : nullptr;
            yb.weight = y.weight ? y.weight + start : nullptr;
        } else {  // X's rows are read in place through `rows`; only the small targets are gathered
            xb = X;
            rows = order + start;
            for (std::int64_t r = 0; r < B; ++r) {
                const std::int64_t src = rows[r];
                if (y.labels) ws.label_batch[r] = y.labels[src];
                if (y.dist) std::memcpy(ws.target_batch.data() + r * K, y.dist + src * K, sizeof(T) * K);
                if (y.weight) ws.weight_batch[r] = y.weight[src];
            }
            yb.labels = y.labels ? ws.label_batch.data() : nullptr;
            yb.dist = y.dist ? ws.target_batch.data() : nullptr;
            yb.weight = y.weight ? ws.weight_batch.data() : nullptr;
        }
        dropout.batch = static_cast<std::uint64_t>(batch_index);
        CsrRows<T> xs;  // the batch's rows of a sparse X: the same row list, or the view from `start`
        if (csr != nullptr) {
            xs = order == nullptr ? sparse_x.batch(start) : sparse_x;
            if (order != nullptr) xs.rows = rows;
        }
        const LossStats s =
            train_batch(ws, layers, xb, yb, B, u, rows, stop_on_nonfinite, &dropout, csr != nullptr ? &xs : nullptr);
        if (stop_on_nonfinite && !std::isfinite(s.loss_sum)) {
            epoch.nonfinite = true;
            break;
        }
        ++u.spec.step;
        ++epoch.n_steps;
        epoch.totals.loss_sum += s.loss_sum;
        epoch.totals.n_correct += s.n_correct;
        epoch.n_seen += B;
        if (last_batch) epoch.params_finite = nonfinite_params.load(std::memory_order_relaxed) ? 0 : 1;
        if (start + B < N && should_stop()) {
            epoch.stopped = true;
            break;
        }
    }
    if (transposed) {  // W_1 back from its transposed copy, every value checked on the way
        std::atomic<bool> bad{false};
        transpose(layers[0].W, sparse_x.transposed, IN, layers[0].n_out, &bad);
        if (bad.load(std::memory_order_relaxed) && epoch.params_finite == 1) epoch.params_finite = 0;
    }
    return epoch;
}

// Forward passes over N rows in chunks of ws.max_batch, without dropout. With preds non-null,
// writes the output layer's predictions (N, K): softmax probabilities, sigmoids, or the raw
// outputs of an identity output; with targets set, also returns the summed loss and correct
// count. Rows never interact, so the chunking does not change a single bit of the results.
// With csr set, X is csr's N rows (X null). With input_finite set (dense X), X is checked for NaN
// and infinity without a pass of its own: a NaN or infinity in a row of X makes every element of
// that row's first product (X W_1^T, before the bias) NaN or infinite, which the product's
// epilogue notes while the tile is in cache; only then is the chunk of X scanned (a product can
// also overflow, or W_1 hold a NaN, with X finite). At the first NaN or infinity found in X
// *input_finite becomes false and the pass stops, the predictions unfinished (the caller refuses
// X). A separate scan cost about 7 % of a 1024-row prediction of 784-128-10.
template <class T>
LossStats evaluate(Workspace<T>& ws, const std::vector<DenseLayer<T>>& layers, const T* X, const Targets<T>& y,
                   std::int64_t N, T* preds, const CsrRows<T>* csr = nullptr, bool* input_finite = nullptr) {
    const std::int64_t IN = ws.sizes[0], K = ws.sizes.back();
    LossStats totals;
    for (std::int64_t start = 0; start < N; start += ws.max_batch) {
        const std::int64_t B = std::min(ws.max_batch, N - start);
        const CsrRows<T> xs = csr != nullptr ? csr->batch(start) : CsrRows<T>{};
        const bool check = input_finite != nullptr && X != nullptr;
        std::atomic<bool> product_nonfinite{false};
        const T* logits = forward_pass(ws, layers, X != nullptr ? X + start * IN : nullptr, B, nullptr, nullptr,
                                       csr != nullptr ? &xs : nullptr, check ? &product_nonfinite : nullptr);
        if (check && product_nonfinite.load() && !all_finite_shared(X + start * IN, B * IN)) {
            *input_finite = false;
            return totals;
        }
        T* out = preds ? preds + start * K : ws.delta.data();
        if (y.labels == nullptr && y.dist == nullptr) {  // predictions only: rows shared between threads
            // Each row's outputs are computed alone, the same way whoever does it; with targets
            // the rows stay on one thread, whose loss sum keeps its order.
            // Work counted as 64 multiply-adds per output (an exp and a division, about 60 ns a
            // row of 10 classes): 1024 rows are shared, 32 stay on the calling thread.
            constexpr std::int64_t kRowsPerTask = 64, kWorkPerOutput = 64;
            parallel_for(detail::ceil_div(B, kRowsPerTask), B * K * kWorkPerOutput, [&](std::int64_t t) {
                const std::int64_t r0 = t * kRowsPerTask, rows = std::min(kRowsPerTask, B - r0);
                output_loss(ws.spec.output, out + r0 * K, logits + r0 * K, nullptr, static_cast<const T*>(nullptr),
                            rows, K, LossOutput::prediction);
            });
            continue;
        }
        Targets<T> yb;
        yb.labels = y.labels ? y.labels + start : nullptr;
        yb.dist = y.dist ? y.dist + start * K : nullptr;
        const LossStats s = output_loss(ws.spec.output, out, logits, yb.labels, yb.dist, B, K, LossOutput::prediction);
        totals.loss_sum += s.loss_sum;
        totals.n_correct += s.n_correct;
    }
    return totals;
}

}  // namespace fastmlp
