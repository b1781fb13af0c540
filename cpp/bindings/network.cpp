// The whole-network calls of fastmlp._core: one training step, one epoch, the gradients of a
// batch and the forward pass over many rows, each checking every array against the Workspace
// with the GIL held, then running fastmlp/mlp.hpp with the GIL released. Ctrl-C is polled
// between batches. The single kernels used by the oracle tests are in kernels.cpp.
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>

#include "fastmlp/dropout.hpp"
#include "fastmlp/finite.hpp"
#include "sparse.hpp"
#include "workspace.hpp"

namespace fastmlp_py {

namespace {

// Polls for Ctrl-C between batches, at most every 20 ms, taking the GIL only then.
class SignalPoll {
public:
    bool operator()() {
        const auto now = std::chrono::steady_clock::now();
        if (now - last_ < std::chrono::milliseconds(20)) return false;
        last_ = now;
        ReleasedGil::Held gil;
        interrupted_ = PyErr_CheckSignals() != 0;
        return interrupted_;
    }
    // With the GIL held: turns a caught signal into the Python exception it raised.
    void rethrow() const {
        if (interrupted_) throw py::error_already_set();
    }

private:
    std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
    bool interrupted_ = false;
};

void check_fits(const AnyWorkspace& ws, int64_t rows, const char* what) {
    if (rows < 1 || rows > ws.max_batch)
        throw std::invalid_argument(std::string(what) + " of " + std::to_string(rows) +
                                    " rows does not fit a workspace for 1.." + std::to_string(ws.max_batch));
}

// The arguments of a one-batch call: parameters, X (B, sizes[0]) with B <= max_batch (dense, or
// sparse rows: then `sparse` is set and X unused), targets.
template <class T>
struct CheckedBatch {
    CheckedLayers<T> params;
    py::array X = no_array();
    int64_t B;
    CheckedTargets<T> y;
    CheckedCsr<T> csr;
    const fastmlp::CsrRows<T>* sparse = nullptr;
    const T* x() const { return sparse != nullptr ? nullptr : cptr<T>(X); }
};

template <class T>
CheckedBatch<T> check_batch(const AnyWorkspace& ws, const py::list& weights, const py::list& biases, bool writable,
                            py::handle X_, py::handle y_) {
    CheckedBatch<T> c{check_layers<T>(ws, weights, biases, writable), no_array(), 0, {}, {}, nullptr};
    if (is_csr(X_)) {
        c.csr = check_csr<T>(X_, ws.sizes[0], true);
        c.sparse = &c.csr.view;
        c.B = c.csr.n_rows;
    } else {
        c.X = checked<T>(X_, "X", {-1, ws.sizes[0]});
        c.B = c.X.shape(0);
    }
    check_fits(ws, c.B, "a batch");
    c.y = check_targets<T>(y_, c.B, ws.sizes.back(), ws.spec.output);
    return c;
}

// The optimizer of a training call and its state arrays, checked against the parameters:
// `state` lists, for W_1, b_1, W_2, b_2, ..., the parameter's spec.n_buffers() arrays.
template <class T>
struct CheckedUpdate {
    std::vector<py::array> keep;
    std::vector<std::array<T*, 4>> pointers;
    fastmlp::Update<T> update;
};

template <class T>
CheckedUpdate<T> check_update(const AnyWorkspace& ws, const py::dict& optimizer, const py::list& state) {
    CheckedUpdate<T> c;
    c.update.apply = true;
    c.update.spec = parse_optimizer(optimizer);
    const std::size_t L = ws.sizes.size() - 1;
    const auto nb = static_cast<std::size_t>(c.update.spec.n_buffers());
    if (state.size() != 2 * L)
        throw std::invalid_argument("optimizer state must list " + std::to_string(2 * L) +
                                    " entries (W_1, b_1, W_2, ...), got " + std::to_string(state.size()));
    c.pointers.assign(L, {nullptr, nullptr, nullptr, nullptr});
    for (std::size_t k = 0; k < L; ++k)
        for (std::size_t which = 0; which < 2; ++which) {
            const py::list bufs = py::cast<py::list>(state[2 * k + which]);
            if (bufs.size() != nb)
                throw std::invalid_argument("this optimizer keeps " + std::to_string(nb) +
                                            " state array(s) per parameter, got " + std::to_string(bufs.size()));
            const std::vector<int64_t> shape =
                which == 0 ? std::vector<int64_t>{ws.sizes[k + 1], ws.sizes[k]} : std::vector<int64_t>{ws.sizes[k + 1]};
            for (std::size_t i = 0; i < nb; ++i) {
                const std::string name = "state[" + std::to_string(2 * k + which) + "][" + std::to_string(i) + "]";
                c.keep.push_back(checked<T>(bufs[i], name.c_str(), shape, true));
                c.pointers[k][2 * which + i] = mptr<T>(c.keep.back());
            }
        }
    c.update.state = &c.pointers;
    return c;
}

template <class T>
py::tuple train_batch_impl(AnyWorkspace& ws, const py::list& weights, const py::list& biases, py::handle X_,
                           py::handle y_, const py::dict& optimizer, const py::list& state, fastmlp::DropoutKey key,
                           py::handle sample_weight) {
    WorkspaceLock lock(ws);
    CheckedBatch<T> c = check_batch<T>(ws, weights, biases, true, X_, y_);
    attach_weights<T>(c.y, sample_weight, c.B);
    CheckedUpdate<T> u = check_update<T>(ws, optimizer, state);
    fastmlp::LossStats s;
    {
        ReleasedGil nogil;
        s = fastmlp::train_batch(ws.get<T>(), c.params.layers, c.x(), c.y.view, c.B, u.update, nullptr, false, &key,
                                 c.sparse);
    }
    return py::make_tuple(s.loss_sum, s.n_correct);
}

template <class T>
py::tuple train_epoch_impl(AnyWorkspace& ws, const py::list& weights, const py::list& biases, py::handle X_,
                           py::handle y_, py::handle order_, int64_t batch_size, const py::dict& optimizer,
                           const py::list& state, bool stop_on_nonfinite, fastmlp::DropoutKey key,
                           py::handle sample_weight) {
    WorkspaceLock lock(ws);
    auto L = check_layers<T>(ws, weights, biases, true);
    const bool sparse = is_csr(X_);
    CheckedCsr<T> csr;
    py::array X = no_array();
    if (sparse)
        csr = check_csr<T>(X_, ws.sizes[0], false);
    else
        X = checked<T>(X_, "X", {-1, ws.sizes[0]});
    const int64_t N = sparse ? csr.n_rows : X.shape(0);
    check_fits(ws, batch_size, "batch_size");
    CheckedTargets<T> y = check_targets<T>(y_, N, ws.sizes.back(), ws.spec.output);
    attach_weights<T>(y, sample_weight, N);
    CheckedUpdate<T> u = check_update<T>(ws, optimizer, state);
    py::array order = no_array();
    const int64_t* ord = nullptr;
    int64_t visited = N;  // an order may list a subset of X's rows (the training part of a split)
    if (!order_.is_none()) {
        order = checked<int64_t>(order_, "order", {-1});
        ord = cptr<int64_t>(order);
        visited = order.shape(0);
        for (int64_t i = 0; i < visited; ++i)
            if (ord[i] < 0 || ord[i] >= N)
                throw std::invalid_argument("order[" + std::to_string(i) + "] = " + std::to_string(ord[i]) +
                                            " is outside [0, " + std::to_string(N) + ")");
    }
    SignalPoll poll;
    fastmlp::EpochStats e;
    {
        ReleasedGil nogil;
        e = fastmlp::train_epoch(ws.get<T>(), L.layers, sparse ? nullptr : cptr<T>(X), y.view, ord, visited, batch_size,
                                 u.update, key, poll, stop_on_nonfinite, sparse ? &csr.view : nullptr);
    }
    poll.rethrow();
    py::object finite = e.params_finite < 0 ? py::object(py::none()) : py::object(py::bool_(e.params_finite == 1));
    return py::make_tuple(e.totals.loss_sum, e.totals.n_correct, e.n_seen, e.n_steps, finite);
}

template <class T>
py::tuple gradients_impl(AnyWorkspace& ws, const py::list& weights, const py::list& biases, py::handle X_,
                         py::handle y_, bool training, fastmlp::DropoutKey key, py::handle sample_weight,
                         py::handle dropout_rows) {
    WorkspaceLock lock(ws);
    CheckedBatch<T> c = check_batch<T>(ws, weights, biases, false, X_, y_);
    attach_weights<T>(c.y, sample_weight, c.B);
    py::array keep_rows = no_array();
    if (!dropout_rows.is_none()) {
        keep_rows = checked_positions(dropout_rows, c.B);
        key.row_positions = cptr<int64_t>(keep_rows);
    }
    py::list grads;
    std::vector<fastmlp::LayerGrads<T>> out;
    for (std::size_t k = 0; k + 1 < ws.sizes.size(); ++k) {
        auto dW = new_array<T>({ws.sizes[k + 1], ws.sizes[k]});
        auto db = new_array<T>({ws.sizes[k + 1]});
        out.push_back({dW.mutable_data(), db.mutable_data()});
        grads.append(py::make_tuple(dW, db));
    }
    fastmlp::LossStats s;
    {
        ReleasedGil nogil;
        s = fastmlp::forward_backward(ws.get<T>(), c.params.layers, c.x(), c.y.view, c.B, out, fastmlp::Update<T>{},
                                      nullptr, false, training ? &key : nullptr, c.sparse);
    }
    return py::make_tuple(s.loss_sum, s.n_correct, grads);
}

template <class T>
py::tuple evaluate_impl(AnyWorkspace& ws, const py::list& weights, const py::list& biases, py::handle X_, py::handle y_,
                        bool want_preds, bool check_finite) {
    WorkspaceLock lock(ws);
    auto L = check_layers<T>(ws, weights, biases, false);
    const bool sparse = is_csr(X_);
    CheckedCsr<T> csr;
    py::array X = no_array();
    if (sparse)
        csr = check_csr<T>(X_, ws.sizes[0], true);
    else
        X = fits_quickly<T>(X_, -1, ws.sizes[0], false) ? py::reinterpret_borrow<py::array>(X_)
                                                        : checked<T>(X_, "X", {-1, ws.sizes[0]});
    const int64_t N = sparse ? csr.n_rows : X.shape(0), K = ws.sizes.back();
    CheckedTargets<T> y;
    if (!y_.is_none()) y = check_targets<T>(y_, N, K, ws.spec.output);
    py::object preds = py::none();
    T* p = nullptr;
    if (want_preds) {
        auto a = new_array<T>({N, K});
        p = a.mutable_data();
        preds = a;
    }
    fastmlp::LossStats s;
    bool finite = true;
    {
        ReleasedGil nogil;           // the scan of X too: a large X takes a while, and other threads may run
        if (check_finite && sparse)  // a sparse X's stored values are all its values that are not zero
            finite = fastmlp::all_finite_shared(static_cast<const T*>(csr.data.data()), csr.data.size());
        if (finite)  // a dense X: its first product flags a NaN or infinity (mlp.hpp, evaluate)
            s = fastmlp::evaluate(ws.get<T>(), L.layers, sparse ? nullptr : cptr<T>(X), y.view, N, p,
                                  sparse ? &csr.view : nullptr, check_finite && !sparse ? &finite : nullptr);
    }
    // The caller's fast path passes X unchecked but for its type and dtype: refused here, it
    // runs its own checks, whose message names the problem.
    if (!finite) throw std::invalid_argument("X contains NaN or infinity");
    return py::make_tuple(s.loss_sum, s.n_correct, preds);
}

}  // namespace

void bind_network(py::module_& m) {
    m.def(
        "train_batch",
        [](AnyWorkspace& ws, const py::list& W, const py::list& b, py::handle X, py::handle y,
           const py::dict& optimizer, const py::list& state, uint64_t dropout_seed, uint64_t epoch,
           uint64_t batch_index, py::handle sample_weight) {
            const fastmlp::DropoutKey key{dropout_seed, epoch, batch_index};
            return with_dtype(ws, [&](auto t) {
                return train_batch_impl<decltype(t)>(ws, W, b, X, y, optimizer, state, key, sample_weight);
            });
        },
        py::arg("workspace"), py::arg("weights"), py::arg("biases"), py::arg("X"), py::arg("y"), py::arg("optimizer"),
        py::arg("state"), py::arg("dropout_seed") = 0, py::arg("epoch") = 0, py::arg("batch_index") = 0,
        py::arg("sample_weight") = py::none(),
        "One optimizer step on one batch, in place (parameters and optimizer state), with the dropout\n"
        "masks of (dropout_seed, epoch, batch_index). Returns (summed loss before the step, correct count).");

    m.def(
        "train_epoch",
        [](AnyWorkspace& ws, const py::list& W, const py::list& b, py::handle X, py::handle y, py::handle order,
           int64_t batch_size, const py::dict& optimizer, const py::list& state, bool stop_on_nonfinite,
           uint64_t dropout_seed, uint64_t epoch, py::handle sample_weight) {
            const fastmlp::DropoutKey key{dropout_seed, epoch, 0};
            return with_dtype(ws, [&](auto t) {
                return train_epoch_impl<decltype(t)>(ws, W, b, X, y, order, batch_size, optimizer, state,
                                                     stop_on_nonfinite, key, sample_weight);
            });
        },
        py::arg("workspace"), py::arg("weights"), py::arg("biases"), py::arg("X"), py::arg("y"), py::arg("order"),
        py::arg("batch_size"), py::arg("optimizer"), py::arg("state"), py::arg("stop_on_nonfinite") = false,
        py::arg("dropout_seed") = 0, py::arg("epoch") = 0, py::arg("sample_weight") = py::none(),
        "One epoch of minibatch training over the rows of X in `order` (None: in order), in place.\n"
        "optimizer['step'] numbers the first update. Batch j uses the dropout masks of\n"
        "(dropout_seed, epoch, j). Returns (summed pre-update loss, correct count, rows seen, steps\n"
        "taken, parameters finite: True/False when the last batch was trained, else None). Ctrl-C\n"
        "stops it after a batch; with stop_on_nonfinite, so does the first batch with a NaN/inf loss,\n"
        "before its update (then rows seen < len(X) and no exception).");

    m.def(
        "gradients",
        [](AnyWorkspace& ws, const py::list& W, const py::list& b, py::handle X, py::handle y, bool training,
           uint64_t dropout_seed, uint64_t epoch, uint64_t batch_index, py::handle sample_weight,
           py::handle dropout_rows) {
            const fastmlp::DropoutKey key{dropout_seed, epoch, batch_index};
            return with_dtype(ws, [&](auto t) {
                return gradients_impl<decltype(t)>(ws, W, b, X, y, training, key, sample_weight, dropout_rows);
            });
        },
        py::arg("workspace"), py::arg("weights"), py::arg("biases"), py::arg("X"), py::arg("y"),
        py::arg("training") = false, py::arg("dropout_seed") = 0, py::arg("epoch") = 0, py::arg("batch_index") = 0,
        py::arg("sample_weight") = py::none(), py::arg("dropout_rows") = py::none(),
        "Gradients of the batch-mean loss (with training, through the dropout masks of the key;\n"
        "dropout_rows (B,) int64 places each row in the batch whose masks it takes, default 0..B-1).\n"
        "Returns (summed loss, correct count, [(dW, db), ...]).");

    m.def(
        "evaluate",
        [](AnyWorkspace& ws, const py::list& W, const py::list& b, py::handle X, py::handle y, bool want_preds,
           bool check_finite) {
            return with_dtype(
                ws, [&](auto t) { return evaluate_impl<decltype(t)>(ws, W, b, X, y, want_preds, check_finite); });
        },
        py::arg("workspace"), py::arg("weights"), py::arg("biases"), py::arg("X"), py::arg("y") = py::none(),
        py::arg("want_preds") = true, py::arg("check_finite") = false,
        "Forward pass (no dropout) in chunks of max_batch rows. Returns (summed loss, correct count,\n"
        "predictions or None): softmax probabilities, sigmoids, or the outputs of an identity output.\n"
        "With check_finite, a NaN or infinity in X is refused (ValueError), found by the first layer's\n"
        "product without a separate pass over X (mlp.hpp, evaluate).");
}

}  // namespace fastmlp_py
