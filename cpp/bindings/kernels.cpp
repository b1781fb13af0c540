// The single kernels of fastmlp._core (dense layer, activations, output layer, dropout, optimizer
// steps), each on arrays the caller owns: the oracle tests compare them one by one with NumPy.
// The training loop does not call these; it runs the same kernels through network.cpp. One is
// the Python layer's own: all_finite, the NaN/inf scan of its input checks (_validation.py).
#include "common.hpp"

#include "fastmlp/dense.hpp"
#include "fastmlp/dropout.hpp"
#include "fastmlp/finite.hpp"
#include "fastmlp/gemm.hpp"
#include "fastmlp/sgd.hpp"

namespace fastmlp_py {

namespace {
// Runs body(T{}) for T the dtype (float32 or float64) of the array `first`.
template <class Body>
py::object by_dtype(py::handle first, const char* name, Body&& body) {
    if (!py::isinstance<py::array>(first)) throw py::type_error(std::string(name) + " must be a NumPy array");
    const py::dtype dt = py::reinterpret_borrow<py::array>(first).dtype();
    if (same_dtype(dt, py::dtype::of<float>())) return py::object(body(float{}));
    if (same_dtype(dt, py::dtype::of<double>())) return py::object(body(double{}));
    throw py::type_error(std::string(name) + " must have dtype float32 or float64, got " + std::string(py::str(dt)));
}

}  // namespace

void bind_kernels(py::module_& m) {
    m.def(
        "dense_forward",
        [](py::array x_, py::array W_, py::array b_, const std::string& activation) {
            return by_dtype(x_, "x", [&](auto t) {
                using T = decltype(t);
                const Activation g = parse_enum(kActivations, activation);
                py::array W = checked<T>(W_, "W", {-1, -1});
                const int64_t OUT = W.shape(0), IN = W.shape(1);
                py::array x = checked<T>(x_, "x", {-1, IN});
                py::array b = checked<T>(b_, "b", {OUT});
                const int64_t B = x.shape(0);
                auto out = new_array<T>({B, OUT});
                T* o = out.mutable_data();
                fastmlp::GemmScratch<T> scratch;
                scratch.reserve(B, std::max(IN, OUT));  // as a Workspace's: room for a transposed product
                {
                    ReleasedGil nogil;
                    fastmlp::dense_forward(o, cptr<T>(x), cptr<T>(W), cptr<T>(b), B, IN, OUT, g, scratch);
                }
                return out;
            });
        },
        py::arg("x").noconvert(), py::arg("W").noconvert(), py::arg("b").noconvert(),
        py::arg("activation") = "identity", "g(x @ W.T + b) for x (B, IN), W (OUT, IN), b (OUT,); returns (B, OUT).");

    m.def(
        "activation_forward",
        [](py::array a_, const std::string& activation) {
            return by_dtype(a_, "a", [&](auto t) {
                using T = decltype(t);
                const Activation g = parse_enum(kActivations, activation);
                py::array a = checked<T>(a_, "a", {-1, -1});
                auto h = new_array<T>({a.shape(0), a.shape(1)});
                T* o = h.mutable_data();
                {
                    ReleasedGil nogil;
                    fastmlp::activation_forward(o, cptr<T>(a), a.size(), g);
                }
                return h;
            });
        },
        py::arg("a").noconvert(), py::arg("activation"), "h = g(a), elementwise, for a (B, N).");

    m.def(
        "activation_backward",
        [](py::array dh_, py::array h_, const std::string& activation) {
            return by_dtype(dh_, "dh", [&](auto t) {
                using T = decltype(t);
                const Activation g = parse_enum(kActivations, activation);
                py::array dh = checked<T>(dh_, "dh", {-1, -1});
                py::array h = checked<T>(h_, "saved", {dh.shape(0), dh.shape(1)});
                auto da = new_array<T>({dh.shape(0), dh.shape(1)});
                T* o = da.mutable_data();
                {
                    ReleasedGil nogil;
                    fastmlp::activation_backward(o, cptr<T>(dh), cptr<T>(h), dh.size(), g);
                }
                return da;
            });
        },
        py::arg("dh").noconvert(), py::arg("saved").noconvert(), py::arg("activation"),
        "da = dh * g'(a); saved is the pre-activation a for gelu and silu, the output h = g(a)\n"
        "for every other activation (g' written in terms of h); all (B, N).");

    m.def(
        "softmax",
        [](py::array a_) {
            return by_dtype(a_, "a", [&](auto t) {
                using T = decltype(t);
                py::array a = checked<T>(a_, "logits", {-1, -1});
                const int64_t B = a.shape(0), K = a.shape(1);
                auto p = new_array<T>({B, K});
                T* o = p.mutable_data();
                {
                    ReleasedGil nogil;
                    fastmlp::softmax_xent<T>(o, cptr<T>(a), nullptr, nullptr, B, K, fastmlp::LossOutput::prediction);
                }
                return p;
            });
        },
        py::arg("logits").noconvert(), "Row-wise softmax of logits (B, K).");

    m.def(
        "softmax_xent_backward",
        [](py::array a_, py::handle y_) {
            return by_dtype(a_, "a", [&](auto t) {
                using T = decltype(t);
                py::array a = checked<T>(a_, "logits", {-1, -1});
                const int64_t B = a.shape(0), K = a.shape(1);
                CheckedTargets<T> y = check_targets<T>(y_, B, K);
                auto d = new_array<T>({B, K});
                T* o = d.mutable_data();
                fastmlp::LossStats s;
                {
                    ReleasedGil nogil;
                    s = fastmlp::softmax_xent<T>(o, cptr<T>(a), y.view.labels, y.view.dist, B, K,
                                                 fastmlp::LossOutput::gradient);
                }
                return py::make_tuple(B ? s.loss_sum / static_cast<double>(B) : 0.0, d);
            });
        },
        py::arg("logits").noconvert(), py::arg("y"),
        "(mean cross-entropy, dlogits = (softmax(logits) - y) / B) for labels y (B,) int64 or targets (B, K).");

    m.def(
        "dense_backward_input",
        [](py::array da_, py::array W_, py::object h_prev_, const std::string& activation) {
            return by_dtype(da_, "da", [&](auto t) {
                using T = decltype(t);
                const Activation g = parse_enum(kActivations, activation);
                py::array W = checked<T>(W_, "W", {-1, -1});
                const int64_t OUT = W.shape(0), IN = W.shape(1);
                py::array da = checked<T>(da_, "da", {-1, OUT});
                const int64_t B = da.shape(0);
                py::array h_prev;
                const T* hp = nullptr;
                if (!h_prev_.is_none()) {
                    h_prev = checked<T>(h_prev_, "h_prev", {B, IN});
                    hp = cptr<T>(h_prev);
                }
                auto dh = new_array<T>({B, IN});
                T* o = dh.mutable_data();
                fastmlp::GemmScratch<T> scratch;
                scratch.reserve(B, IN);
                {
                    ReleasedGil nogil;
                    fastmlp::dense_backward_input(o, cptr<T>(da), cptr<T>(W), hp, B, IN, OUT, g, scratch);
                }
                return dh;
            });
        },
        py::arg("da").noconvert(), py::arg("W").noconvert(), py::arg("h_prev") = py::none(),
        py::arg("activation") = "identity",
        "dh = da @ W for da (B, OUT), W (OUT, IN); with h_prev (B, IN), returns dh * g'(h_prev) instead.");

    m.def(
        "dense_backward_params",
        [](py::array da_, py::array h_) {
            return by_dtype(da_, "da", [&](auto t) {
                using T = decltype(t);
                py::array da = checked<T>(da_, "da", {-1, -1});
                const int64_t B = da.shape(0), OUT = da.shape(1);
                py::array h = checked<T>(h_, "h_prev", {B, -1});
                const int64_t IN = h.shape(1);
                auto dW = new_array<T>({OUT, IN});
                auto db = new_array<T>({OUT});
                T* w = dW.mutable_data();
                T* bb = db.mutable_data();
                fastmlp::GemmScratch<T> scratch;
                scratch.reserve(OUT, IN);
                {
                    ReleasedGil nogil;
                    fastmlp::dense_backward_params(w, bb, cptr<T>(da), cptr<T>(h), B, IN, OUT, scratch);
                }
                return py::make_tuple(dW, db);
            });
        },
        py::arg("da").noconvert(), py::arg("h_prev").noconvert(),
        "(dW = da.T @ h_prev, db = da.sum(0)) for da (B, OUT), h_prev (B, IN).");

    m.def(
        "output_forward_backward",
        [](py::array a_, py::handle y_, const std::string& output) {
            return by_dtype(a_, "logits", [&](auto t) {
                using T = decltype(t);
                const Output out_kind = parse_enum(kOutputs, output);
                py::array a = checked<T>(a_, "logits", {-1, -1});
                const int64_t B = a.shape(0), K = a.shape(1);
                CheckedTargets<T> y;
                if (!y_.is_none()) y = check_targets<T>(y_, B, K, out_kind);
                auto pred = new_array<T>({B, K});
                auto d = new_array<T>({B, K});
                T* po = pred.mutable_data();
                T* o = d.mutable_data();
                fastmlp::LossStats s;
                {
                    ReleasedGil nogil;
                    fastmlp::output_loss<T>(out_kind, po, cptr<T>(a), nullptr, nullptr, B, K,
                                            fastmlp::LossOutput::prediction);
                    if (!y_.is_none())
                        s = fastmlp::output_loss<T>(out_kind, o, cptr<T>(a), y.view.labels, y.view.dist, B, K,
                                                    fastmlp::LossOutput::gradient);
                }
                if (y_.is_none()) return py::tuple(py::make_tuple(pred, py::none(), py::none(), py::none()));
                return py::tuple(py::make_tuple(pred, B ? s.loss_sum / static_cast<double>(B) : 0.0, d, s.n_correct));
            });
        },
        py::arg("logits").noconvert(), py::arg("y") = py::none(), py::arg("output") = "softmax",
        "The output layer: (prediction, mean loss, dlogits, correct rows) for logits (B, K) and\n"
        "targets y (labels (B,) int64 for softmax, or (B, K)); without y, (prediction, None, None, None).");

    m.def(
        "dropout_apply",
        [](py::array x_, double p, uint64_t seed, uint64_t epoch, uint64_t batch, uint64_t layer, py::handle rows_) {
            return by_dtype(x_, "x", [&](auto t) {
                using T = decltype(t);
                if (!(p > 0.0 && p < 1.0)) throw std::invalid_argument("p must lie in (0, 1)");
                py::array x = checked<T>(x_, "x", {-1, -1});
                auto out = new_array<T>({x.shape(0), x.shape(1)});
                T* o = out.mutable_data();
                const int64_t* positions = nullptr;
                py::array keep_rows;
                if (!rows_.is_none()) {
                    keep_rows = checked_positions(rows_, x.shape(0));
                    positions = cptr<int64_t>(keep_rows);
                }
                {
                    ReleasedGil nogil;
                    fastmlp::dropout_apply(o, cptr<T>(x), x.shape(0), x.shape(1), p,
                                           fastmlp::dropout_layer_key(fastmlp::DropoutKey{seed, epoch, batch}, layer),
                                           positions);
                }
                return out;
            });
        },
        py::arg("x").noconvert(), py::arg("p"), py::arg("seed"), py::arg("epoch"), py::arg("batch"), py::arg("layer"),
        py::arg("row_positions") = py::none(),
        "x * mask / (1 - p) with the training loop's mask for (seed, epoch, batch, layer); x (B, units);\n"
        "row_positions (B,) int64: each row's place in the batch the mask belongs to (default 0..B-1).");

    m.def(
        "optimizer_update",
        [](py::array p_, py::array g_, const py::list& state_, const py::dict& optimizer, double weight_decay) {
            return by_dtype(p_, "param", [&](auto t) {
                using T = decltype(t);
                const fastmlp::OptimizerSpec o = parse_optimizer(optimizer);
                if (!(weight_decay >= 0.0 && weight_decay <= std::numeric_limits<double>::max()))
                    throw std::invalid_argument("weight_decay must be finite and >= 0");
                py::array p =
                    checked<T>(p_, "param", std::vector<int64_t>(static_cast<std::size_t>(p_.ndim()), -1), true);
                std::vector<int64_t> shape(p.shape(), p.shape() + p.ndim());
                py::array g = checked<T>(g_, "grad", shape);
                if (static_cast<int>(state_.size()) != o.n_buffers())
                    throw std::invalid_argument("this optimizer keeps " + std::to_string(o.n_buffers()) +
                                                " state array(s) per parameter, got " + std::to_string(state_.size()));
                std::vector<py::array> keep;
                T* st[2] = {nullptr, nullptr};
                for (std::size_t i = 0; i < state_.size(); ++i) {
                    const std::string name = "state[" + std::to_string(i) + "]";
                    keep.push_back(checked<T>(state_[i], name.c_str(), shape, true));
                    st[i] = mptr<T>(keep.back());
                }
                T* w = mptr<T>(p);
                {
                    ReleasedGil nogil;
                    fastmlp::optimizer_update(w, cptr<T>(g), st[0], st[1], p.size(), o, weight_decay);
                }
                return py::none();
            });
        },
        py::arg("param").noconvert(), py::arg("grad").noconvert(), py::arg("state"), py::arg("optimizer"),
        py::arg("weight_decay") = 0.0,
        "One optimizer step in place on param and its state arrays (see fastmlp.optim).");

    m.def(
        "all_finite",
        [](py::array a_) {
            return by_dtype(a_, "a", [&](auto t) {
                using T = decltype(t);
                py::array a = checked<T>(a_, "a", std::vector<int64_t>(static_cast<std::size_t>(a_.ndim()), -1));
                bool finite;
                {
                    ReleasedGil nogil;
                    finite = fastmlp::all_finite_shared(cptr<T>(a), a.size());
                }
                return py::bool_(finite);
            });
        },
        py::arg("a").noconvert(),
        "Whether every value of a C-contiguous float32 or float64 array is finite: one pass shared\n"
        "between the native threads, no temporary (the check of X in every fit and prediction).");

    m.def(
        "sgd_update",
        [](py::array p_, py::array g_, double lr) {
            return by_dtype(p_, "param", [&](auto t) {
                using T = decltype(t);
                py::array p =
                    checked<T>(p_, "param", std::vector<int64_t>(static_cast<std::size_t>(p_.ndim()), -1), true);
                std::vector<int64_t> shape(p.shape(), p.shape() + p.ndim());
                py::array g = checked<T>(g_, "grad", shape);
                if (p.data() == g.data() && p.size() > 0)
                    throw std::invalid_argument("param and grad must not be the same array");
                T* w = mptr<T>(p);
                {
                    ReleasedGil nogil;
                    fastmlp::sgd_update(w, cptr<T>(g), p.size(), static_cast<T>(lr));
                }
                return py::none();
            });
        },
        py::arg("param").noconvert(), py::arg("grad").noconvert(), py::arg("lr"), "In place: param -= lr * grad.");
}

}  // namespace fastmlp_py
