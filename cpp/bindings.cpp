// fastmlp._core: the only file that knows about Python. For every call it checks dtypes,
// shapes and contiguity with the GIL held (never converting, so no hidden copy can swallow an
// in-place update), releases the GIL, runs a plain C++ kernel from fastmlp/*.hpp, and maps
// errors to Python: std::invalid_argument -> ValueError, wrong dtype -> TypeError.
// User-facing validation and friendly messages live in the Python package, not here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <chrono>
#include <limits>
#include <utility>
#include <cstdint>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "fastmlp/activations.hpp"
#include "fastmlp/checked.hpp"
#include "fastmlp/dense.hpp"
#include "fastmlp/dropout.hpp"
#include "fastmlp/losses.hpp"
#include "fastmlp/optim.hpp"
#include "fastmlp/isa.hpp"
#include "fastmlp/mlp.hpp"
#include "fastmlp/parallel.hpp"
#include "fastmlp/sgd.hpp"
#include "fastmlp/softmax_xent.hpp"

namespace py = pybind11;
using fastmlp::Activation;
using fastmlp::Output;
using std::int64_t;

namespace {

// ---------------------------------------------------------------- argument checking

Activation parse_activation(const std::string& name) {
    static const std::pair<const char*, Activation> names[] = {
        {"identity", Activation::identity}, {"relu", Activation::relu},   {"leaky_relu", Activation::leaky_relu},
        {"elu", Activation::elu},           {"gelu", Activation::gelu},   {"silu", Activation::silu},
        {"tanh", Activation::tanh},         {"sigmoid", Activation::sigmoid}, {"softplus", Activation::softplus},
    };
    std::string known;
    for (const auto& [n, g] : names) {
        if (name == n) return g;
        known += (known.empty() ? "'" : ", '") + std::string(n) + "'";
    }
    throw std::invalid_argument("unknown activation '" + name + "'; expected one of " + known);
}

Output parse_output(const std::string& name) {
    if (name == "softmax") return Output::softmax;
    if (name == "sigmoid") return Output::sigmoid;
    if (name == "identity") return Output::identity;
    throw std::invalid_argument("unknown output '" + name + "'; expected 'softmax', 'sigmoid' or 'identity'");
}

// A Python float that must be finite and within [lo, hi]; `what` names it in the error.
double checked_real(const py::dict& d, const char* key, double fallback, double lo, double hi) {
    if (!d.contains(key)) return fallback;
    const double v = py::cast<double>(d[key]);
    if (!(v >= lo && v <= hi))
        throw std::invalid_argument(std::string("optimizer '") + key + "' must lie in [" + std::to_string(lo) + ", " +
                                    std::to_string(hi) + "], got " + std::to_string(v));
    return v;
}

// The optimizer of a training call, from a dict {"kind", "lr", "momentum", "nesterov",
// "weight_decay", "beta1", "beta2", "eps", "alpha", "step"}; absent keys take PyTorch's
// defaults. fastmlp.optim builds these dicts; the checks here only keep the kernels safe.
fastmlp::OptimizerSpec parse_optimizer(const py::dict& d) {
    fastmlp::OptimizerSpec o;
    const std::string kind = d.contains("kind") ? py::cast<std::string>(d["kind"]) : "sgd";
    if (kind == "sgd") o.kind = fastmlp::OptimizerKind::sgd;
    else if (kind == "adam") o.kind = fastmlp::OptimizerKind::adam;
    else if (kind == "adamw") o.kind = fastmlp::OptimizerKind::adamw;
    else if (kind == "rmsprop") o.kind = fastmlp::OptimizerKind::rmsprop;
    else throw std::invalid_argument("unknown optimizer kind '" + kind + "'; expected 'sgd', 'adam', 'adamw' or 'rmsprop'");
    const double inf = std::numeric_limits<double>::max();
    o.lr = checked_real(d, "lr", 0.1, 0.0, inf);
    o.momentum = checked_real(d, "momentum", 0.0, 0.0, inf);
    o.nesterov = d.contains("nesterov") ? py::cast<bool>(d["nesterov"]) : false;
    o.weight_decay = checked_real(d, "weight_decay", 0.0, 0.0, inf);
    o.beta1 = checked_real(d, "beta1", 0.9, 0.0, 1.0);
    o.beta2 = checked_real(d, "beta2", 0.999, 0.0, 1.0);
    o.eps = checked_real(d, "eps", 1e-8, 0.0, inf);
    o.alpha = checked_real(d, "alpha", 0.99, 0.0, 1.0);
    o.step = d.contains("step") ? py::cast<int64_t>(d["step"]) : 1;
    if (o.step < 1) throw std::invalid_argument("optimizer 'step' (the number of the next update) must be >= 1");
    return o;
}

std::string shape_str(const py::array& a) {
    std::ostringstream s;
    s << "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
    s << (a.ndim() == 1 ? ",)" : ")");
    return s.str();
}

template <class T>
const char* dtype_name() {
    return sizeof(T) == 4 ? "float32" : "float64";
}

// Equivalence, not identity: an unpickled array carries an equal dtype object that is not
// NumPy's cached one. Equivalence still refuses another byte order.
bool same_dtype(const py::dtype& a, const py::dtype& b) {
    return py::detail::npy_api::get().PyArray_EquivTypes_(a.ptr(), b.ptr());
}

// The array behind `obj` if it is exactly an ndarray of dtype E, C-contiguous, with ndim
// dimensions; `shape` entries < 0 are free. Never converts.
template <class E>
py::array checked(py::handle obj, const char* name, std::vector<int64_t> shape, bool writable = false) {
    if (!py::isinstance<py::array>(obj))
        throw py::type_error(std::string(name) + " must be a NumPy array");
    auto a = py::reinterpret_borrow<py::array>(obj);
    if (!same_dtype(a.dtype(), py::dtype::of<E>()))
        throw py::type_error(std::string(name) + " must have dtype " + std::string(py::str(py::dtype::of<E>())) +
                             ", got " + std::string(py::str(a.dtype())));
    if (a.ndim() != static_cast<py::ssize_t>(shape.size()))
        throw std::invalid_argument(std::string(name) + " must have " + std::to_string(shape.size()) +
                                    " dimension(s), got shape " + shape_str(a));
    for (std::size_t i = 0; i < shape.size(); ++i)
        if (shape[i] >= 0 && a.shape(static_cast<py::ssize_t>(i)) != shape[i])
            throw std::invalid_argument(std::string(name) + " has shape " + shape_str(a) +
                                        ", which does not fit (dimension " + std::to_string(i) + " must be " +
                                        std::to_string(shape[i]) + ")");
    if (!(a.flags() & py::array::c_style))
        throw std::invalid_argument(std::string(name) + " must be C-contiguous");
    if (writable && !a.writeable()) throw std::invalid_argument(std::string(name) + " is not writeable");
    return a;
}

template <class E>
const E* cptr(const py::array& a) { return static_cast<const E*>(a.data()); }
template <class E>
E* mptr(py::array& a) { return static_cast<E*>(a.mutable_data()); }

template <class T>
py::array_t<T> new_array(std::vector<int64_t> shape) {
    std::vector<py::ssize_t> s(shape.begin(), shape.end());
    return py::array_t<T>(s);
}

// Targets of a batch: int64 labels (N,) checked to lie in [0, K), or T distributions (N, K).
template <class T>
struct CheckedTargets {
    py::array keep;
    py::array keep_weight;
    fastmlp::Targets<T> view;
};

// Row weights (N,) of dtype T, or None: finite and >= 0 (a negative weight would turn a loss
// into a gain); checked here because the loop over them is O(N), cheap next to an epoch.
template <class T>
void attach_weights(CheckedTargets<T>& y, py::handle w, int64_t N) {
    if (w.is_none()) return;
    y.keep_weight = checked<T>(w, "sample_weight", {N});
    const T* p = cptr<T>(y.keep_weight);
    for (int64_t i = 0; i < N; ++i)
        if (!(p[i] >= T(0) && p[i] <= std::numeric_limits<T>::max()))
            throw std::invalid_argument("sample_weight[" + std::to_string(i) + "] must be finite and >= 0");
    y.view.weight = p;
}

// Softmax takes either; the sigmoid and identity outputs take targets (N, K) only.
template <class T>
CheckedTargets<T> check_targets(py::handle y, int64_t N, int64_t K, Output output = Output::softmax) {
    CheckedTargets<T> out;
    if (!py::isinstance<py::array>(y)) throw py::type_error("y must be a NumPy array");
    auto a = py::reinterpret_borrow<py::array>(y);
    if (a.ndim() == 1 && output != Output::softmax)
        throw std::invalid_argument("y must be targets of shape (N, K) for a sigmoid or identity output");
    if (a.ndim() == 1) {
        out.keep = checked<int64_t>(y, "y (labels)", {N});
        const int64_t* l = cptr<int64_t>(out.keep);
        for (int64_t i = 0; i < N; ++i)  // a bad label would index out of bounds: O(N), cheap
            if (l[i] < 0 || l[i] >= K)
                throw std::invalid_argument("label " + std::to_string(l[i]) + " at row " + std::to_string(i) +
                                            " is outside [0, " + std::to_string(K) + ")");
        out.view.labels = l;
    } else {
        out.keep = checked<T>(y, "y (targets)", {N, K});
        out.view.dist = cptr<T>(out.keep);
    }
    return out;
}

// Row positions (B,) int64 >= 0, below 2^40 so that position * units cannot wrap.
py::array checked_positions(py::handle rows, int64_t B) {
    py::array a = checked<int64_t>(rows, "dropout_rows", {B});
    const int64_t* p = cptr<int64_t>(a);
    for (int64_t i = 0; i < B; ++i)
        if (p[i] < 0 || p[i] >= (int64_t{1} << 40))
            throw std::invalid_argument("dropout_rows[" + std::to_string(i) + "] = " + std::to_string(p[i]) +
                                        " is outside [0, 2^40)");
    return a;
}

// ---------------------------------------------------------------- a network's parameters

// The NetSpec of a Workspace from Python arguments: activations (one name per hidden layer, or
// None for relu everywhere), output name, dropout (one probability in [0, 1) per hidden layer,
// or None for none).
fastmlp::NetSpec make_spec(std::vector<int64_t> sizes, const py::object& activations, const std::string& output,
                           const py::object& dropout) {
    if (sizes.size() < 2) throw std::invalid_argument("a network needs at least 2 layer sizes");
    for (int64_t s : sizes)
        if (s < 1) throw std::invalid_argument("layer sizes must be >= 1");
    fastmlp::NetSpec spec;
    spec.sizes = std::move(sizes);
    const std::size_t hidden = spec.sizes.size() - 2;
    if (activations.is_none()) {
        spec.activations.assign(hidden, Activation::relu);
    } else {
        for (const auto& name : py::cast<std::vector<std::string>>(activations))
            spec.activations.push_back(parse_activation(name));
        if (spec.activations.size() != hidden)
            throw std::invalid_argument("expected " + std::to_string(hidden) + " activations (one per hidden layer), got " +
                                        std::to_string(spec.activations.size()));
    }
    if (dropout.is_none()) {
        spec.dropout.assign(hidden, 0.0);
    } else {
        spec.dropout = py::cast<std::vector<double>>(dropout);
        if (spec.dropout.size() != hidden)
            throw std::invalid_argument("expected " + std::to_string(hidden) + " dropout probabilities, got " +
                                        std::to_string(spec.dropout.size()));
        for (double p : spec.dropout)
            if (!(p >= 0.0 && p < 1.0))
                throw std::invalid_argument("dropout probabilities must lie in [0, 1), got " + std::to_string(p));
    }
    spec.output = parse_output(output);  // a softmax over 1 unit is useless but safe: Python refuses it
    return spec;
}

struct AnyWorkspace {
    std::string dtype;
    fastmlp::NetSpec spec;
    std::vector<int64_t> sizes;
    int64_t max_batch;
    std::unique_ptr<fastmlp::Workspace<float>> f32;
    std::unique_ptr<fastmlp::Workspace<double>> f64;
    std::mutex busy;  // one call at a time: the scratch buffers are shared state

    AnyWorkspace(fastmlp::NetSpec net, int64_t batch, const std::string& dt)
        : dtype(dt), spec(std::move(net)), sizes(spec.sizes), max_batch(batch) {
        // Sized first, allocated second: an impossible size or a refused allocation both become
        // MemoryError (fastmlp::SizeError) naming the request, never a crash or a wrapped size.
        const int64_t bytes = planned_bytes(spec, batch, dt);
        try {
            if (dt == "float32") f32 = std::make_unique<fastmlp::Workspace<float>>(spec, batch);
            else f64 = std::make_unique<fastmlp::Workspace<double>>(spec, batch);
        } catch (const std::bad_alloc&) {
            throw fastmlp::SizeError(describe(sizes, batch, dt) + " would need " + std::to_string(bytes) +
                                     " bytes, which could not be allocated");
        } catch (const std::length_error&) {  // std::vector's own limit, below our planned total
            throw fastmlp::SizeError(describe(sizes, batch, dt) + " would need " + std::to_string(bytes) +
                                     " bytes, more than one buffer can hold");
        }
    }
    static std::string describe(const std::vector<int64_t>& sizes, int64_t batch, const std::string& dt) {
        std::ostringstream s;
        s << "a " << dt << " Workspace for layer sizes [";
        for (std::size_t i = 0; i < sizes.size(); ++i) s << (i ? ", " : "") << sizes[i];
        s << "] and max_batch " << batch;
        return s.str();
    }
    // Exactly the constructor's sizing (fastmlp::plan_workspace), without allocating; an
    // impossible size throws SizeError with the whole request in its message.
    static int64_t planned_bytes(const fastmlp::NetSpec& spec, int64_t batch, const std::string& dt) {
        if (batch < 1) throw std::invalid_argument("max_batch must be >= 1");
        if (dt != "float32" && dt != "float64")
            throw std::invalid_argument("dtype must be 'float32' or 'float64', got '" + dt + "'");
        try {
            return dt == "float32" ? fastmlp::plan_workspace<float>(spec, batch).bytes
                                   : fastmlp::plan_workspace<double>(spec, batch).bytes;
        } catch (const fastmlp::SizeError& e) {
            throw fastmlp::SizeError(describe(spec.sizes, batch, dt) + " would need more bytes than the address space holds (" + e.what() + ")");
        }
    }
    std::vector<std::string> activation_names() const {
        static const char* names[] = {"identity", "relu", "tanh", "sigmoid", "leaky_relu", "elu", "gelu", "silu", "softplus"};
        std::vector<std::string> out;
        for (Activation g : spec.activations) out.emplace_back(names[static_cast<int>(g)]);
        return out;
    }
    std::string output_name() const {
        static const char* names[] = {"softmax", "sigmoid", "identity"};
        return names[static_cast<int>(spec.output)];
    }
    template <class T>
    fastmlp::Workspace<T>& get();
};
template <>
fastmlp::Workspace<float>& AnyWorkspace::get<float>() { return *f32; }
template <>
fastmlp::Workspace<double>& AnyWorkspace::get<double>() { return *f64; }

class WorkspaceLock {
public:
    explicit WorkspaceLock(AnyWorkspace& ws) : lock_(ws.busy, std::try_to_lock) {
        if (!lock_.owns_lock())
            throw std::runtime_error("this Workspace is in use by another thread; give each thread its own Trainer");
    }
private:
    std::unique_lock<std::mutex> lock_;
};

template <class T>
struct CheckedLayers {
    std::vector<py::array> keep;  // holds the arrays while the GIL is released
    std::vector<fastmlp::DenseLayer<T>> layers;
};

template <class T>
CheckedLayers<T> check_layers(const AnyWorkspace& ws, const py::list& weights, const py::list& biases,
                              bool writable) {
    const std::size_t L = ws.sizes.size() - 1;
    if (weights.size() != L || biases.size() != L)
        throw std::invalid_argument("expected " + std::to_string(L) + " weight matrices and bias vectors, got " +
                                    std::to_string(weights.size()) + " and " + std::to_string(biases.size()));
    CheckedLayers<T> out;
    for (std::size_t k = 0; k < L; ++k) {
        const std::string wn = "weights[" + std::to_string(k) + "]", bn = "biases[" + std::to_string(k) + "]";
        py::array W = checked<T>(weights[k], wn.c_str(), {ws.sizes[k + 1], ws.sizes[k]}, writable);
        py::array b = checked<T>(biases[k], bn.c_str(), {ws.sizes[k + 1]}, writable);
        // Read-only calls (writable == false) only ever read through these pointers, and a
        // read-only array must still be usable for prediction: take data(), not mutable_data().
        out.layers.push_back({const_cast<T*>(cptr<T>(W)), const_cast<T*>(cptr<T>(b)), ws.sizes[k], ws.sizes[k + 1]});
        out.keep.push_back(W);
        out.keep.push_back(b);
    }
    return out;
}

// Runs f(T{}) for T the workspace's dtype.
template <class F>
auto with_dtype(const AnyWorkspace& ws, F&& f) {
    if (ws.f32) return f(float{});
    return f(double{});
}

// Polls for Ctrl-C between batches, at most every 20 ms, taking the GIL only then.
class SignalPoll {
public:
    bool operator()() {
        const auto now = std::chrono::steady_clock::now();
        if (now - last_ < std::chrono::milliseconds(20)) return false;
        last_ = now;
        py::gil_scoped_acquire gil;
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

// ---------------------------------------------------------------- single kernels (for tests and users)

// Runs body(T{}) for T the dtype (float32 or float64) of the array `first`.
template <class Body>
py::object by_dtype(py::handle first, const char* name, Body&& body) {
    if (!py::isinstance<py::array>(first)) throw py::type_error(std::string(name) + " must be a NumPy array");
    const py::dtype dt = py::reinterpret_borrow<py::array>(first).dtype();
    if (same_dtype(dt, py::dtype::of<float>())) return py::object(body(float{}));
    if (same_dtype(dt, py::dtype::of<double>())) return py::object(body(double{}));
    throw py::type_error(std::string(name) + " must have dtype float32 or float64, got " + std::string(py::str(dt)));
}

void bind_kernels(py::module_& m) {
    m.def("dense_forward",
          [](py::array x_, py::array W_, py::array b_, const std::string& activation) {
              return by_dtype(x_, "x", [&](auto t) {
                  using T = decltype(t);
                  const Activation g = parse_activation(activation);
                  py::array W = checked<T>(W_, "W", {-1, -1});
                  const int64_t OUT = W.shape(0), IN = W.shape(1);
                  py::array x = checked<T>(x_, "x", {-1, IN});
                  py::array b = checked<T>(b_, "b", {OUT});
                  const int64_t B = x.shape(0);
                  auto out = new_array<T>({B, OUT});
                  T* o = out.mutable_data();
                  fastmlp::GemmScratch<T> scratch;
                  scratch.reserve(B, OUT);
                  {
                      py::gil_scoped_release nogil;
                      fastmlp::dense_forward(o, cptr<T>(x), cptr<T>(W), cptr<T>(b), B, IN, OUT, g, scratch);
                  }
                  return out;
              });
          },
          py::arg("x").noconvert(), py::arg("W").noconvert(), py::arg("b").noconvert(),
          py::arg("activation") = "identity",
          "g(x @ W.T + b) for x (B, IN), W (OUT, IN), b (OUT,); returns (B, OUT).");

    m.def("activation_forward",
          [](py::array a_, const std::string& activation) {
              return by_dtype(a_, "a", [&](auto t) {
                  using T = decltype(t);
                  const Activation g = parse_activation(activation);
                  py::array a = checked<T>(a_, "a", {-1, -1});
                  auto h = new_array<T>({a.shape(0), a.shape(1)});
                  T* o = h.mutable_data();
                  {
                      py::gil_scoped_release nogil;
                      fastmlp::activation_forward(o, cptr<T>(a), a.size(), g);
                  }
                  return h;
              });
          },
          py::arg("a").noconvert(), py::arg("activation"), "h = g(a), elementwise, for a (B, N).");

    m.def("activation_backward",
          [](py::array dh_, py::array h_, const std::string& activation) {
              return by_dtype(dh_, "dh", [&](auto t) {
                  using T = decltype(t);
                  const Activation g = parse_activation(activation);
                  py::array dh = checked<T>(dh_, "dh", {-1, -1});
                  py::array h = checked<T>(h_, "saved", {dh.shape(0), dh.shape(1)});
                  auto da = new_array<T>({dh.shape(0), dh.shape(1)});
                  T* o = da.mutable_data();
                  {
                      py::gil_scoped_release nogil;
                      fastmlp::activation_backward(o, cptr<T>(dh), cptr<T>(h), dh.size(), g);
                  }
                  return da;
              });
          },
          py::arg("dh").noconvert(), py::arg("saved").noconvert(), py::arg("activation"),
          "da = dh * g'(a); saved is the pre-activation a for gelu and silu, the output h = g(a)\n"
          "for every other activation (g' written in terms of h); all (B, N).");

    m.def("softmax",
          [](py::array a_) {
              return by_dtype(a_, "a", [&](auto t) {
                  using T = decltype(t);
                  py::array a = checked<T>(a_, "logits", {-1, -1});
                  const int64_t B = a.shape(0), K = a.shape(1);
                  auto p = new_array<T>({B, K});
                  T* o = p.mutable_data();
                  {
                      py::gil_scoped_release nogil;
                      fastmlp::softmax_xent<T>(o, cptr<T>(a), nullptr, nullptr, B, K,
                                               fastmlp::LossOutput::prediction);
                  }
                  return p;
              });
          },
          py::arg("logits").noconvert(), "Row-wise softmax of logits (B, K).");

    m.def("softmax_xent_backward",
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
                      py::gil_scoped_release nogil;
                      s = fastmlp::softmax_xent<T>(o, cptr<T>(a), y.view.labels, y.view.dist, B, K,
                                                   fastmlp::LossOutput::gradient);
                  }
                  return py::make_tuple(B ? s.loss_sum / static_cast<double>(B) : 0.0, d);
              });
          },
          py::arg("logits").noconvert(), py::arg("y"),
          "(mean cross-entropy, dlogits = (softmax(logits) - y) / B) for labels y (B,) int64 or targets (B, K).");

    m.def("dense_backward_input",
          [](py::array da_, py::array W_, py::object h_prev_, const std::string& activation) {
              return by_dtype(da_, "da", [&](auto t) {
                  using T = decltype(t);
                  const Activation g = parse_activation(activation);
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
                      py::gil_scoped_release nogil;
                      fastmlp::dense_backward_input(o, cptr<T>(da), cptr<T>(W), hp, B, IN, OUT, g, scratch);
                  }
                  return dh;
              });
          },
          py::arg("da").noconvert(), py::arg("W").noconvert(), py::arg("h_prev") = py::none(),
          py::arg("activation") = "identity",
          "dh = da @ W for da (B, OUT), W (OUT, IN); with h_prev (B, IN), returns dh * g'(h_prev) instead.");

    m.def("dense_backward_params",
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
                      py::gil_scoped_release nogil;
                      fastmlp::dense_backward_params(w, bb, cptr<T>(da), cptr<T>(h), B, IN, OUT, scratch);
                  }
                  return py::make_tuple(dW, db);
              });
          },
          py::arg("da").noconvert(), py::arg("h_prev").noconvert(),
          "(dW = da.T @ h_prev, db = da.sum(0)) for da (B, OUT), h_prev (B, IN).");

    m.def("output_forward_backward",
          [](py::array a_, py::handle y_, const std::string& output) {
              return by_dtype(a_, "logits", [&](auto t) {
                  using T = decltype(t);
                  const Output out_kind = parse_output(output);
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
                      py::gil_scoped_release nogil;
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

    m.def("dropout_apply",
          [](py::array x_, double p, uint64_t seed, uint64_t epoch, uint64_t batch, uint64_t layer,
             py::handle rows_) {
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
                      py::gil_scoped_release nogil;
                      fastmlp::dropout_apply(o, cptr<T>(x), x.shape(0), x.shape(1), p,
                                             fastmlp::dropout_layer_key(fastmlp::DropoutKey{seed, epoch, batch}, layer),
                                             positions);
                  }
                  return out;
              });
          },
          py::arg("x").noconvert(), py::arg("p"), py::arg("seed"), py::arg("epoch"), py::arg("batch"),
          py::arg("layer"), py::arg("row_positions") = py::none(),
          "x * mask / (1 - p) with the training loop's mask for (seed, epoch, batch, layer); x (B, units);\n"
          "row_positions (B,) int64: each row's place in the batch the mask belongs to (default 0..B-1).");

    m.def("optimizer_update",
          [](py::array p_, py::array g_, const py::list& state_, const py::dict& optimizer, double weight_decay) {
              return by_dtype(p_, "param", [&](auto t) {
                  using T = decltype(t);
                  const fastmlp::OptimizerSpec o = parse_optimizer(optimizer);
                  if (!(weight_decay >= 0.0 && weight_decay <= std::numeric_limits<double>::max()))
                      throw std::invalid_argument("weight_decay must be finite and >= 0");
                  py::array p = checked<T>(p_, "param", std::vector<int64_t>(static_cast<std::size_t>(p_.ndim()), -1), true);
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
                      py::gil_scoped_release nogil;
                      fastmlp::optimizer_update(w, cptr<T>(g), st[0], st[1], p.size(), o, weight_decay);
                  }
                  return py::none();
              });
          },
          py::arg("param").noconvert(), py::arg("grad").noconvert(), py::arg("state"), py::arg("optimizer"),
          py::arg("weight_decay") = 0.0,
          "One optimizer step in place on param and its state arrays (see fastmlp.optim).");

    m.def("sgd_update",
          [](py::array p_, py::array g_, double lr) {
              return by_dtype(p_, "param", [&](auto t) {
                  using T = decltype(t);
                  py::array p = checked<T>(p_, "param", std::vector<int64_t>(static_cast<std::size_t>(p_.ndim()), -1), true);
                  std::vector<int64_t> shape(p.shape(), p.shape() + p.ndim());
                  py::array g = checked<T>(g_, "grad", shape);
                  if (p.data() == g.data() && p.size() > 0) throw std::invalid_argument("param and grad must not be the same array");
                  T* w = mptr<T>(p);
                  {
                      py::gil_scoped_release nogil;
                      fastmlp::sgd_update(w, cptr<T>(g), p.size(), static_cast<T>(lr));
                  }
                  return py::none();
              });
          },
          py::arg("param").noconvert(), py::arg("grad").noconvert(), py::arg("lr"),
          "In place: param -= lr * grad.");
}

// ---------------------------------------------------------------- whole-network calls

void check_fits(const AnyWorkspace& ws, int64_t rows, const char* what) {
    if (rows < 1 || rows > ws.max_batch)
        throw std::invalid_argument(std::string(what) + " of " + std::to_string(rows) +
                                    " rows does not fit a workspace for 1.." + std::to_string(ws.max_batch));
}

// The arguments of a one-batch call: parameters, X (B, sizes[0]) with B <= max_batch, targets.
template <class T>
struct CheckedBatch {
    CheckedLayers<T> params;
    py::array X;
    int64_t B;
    CheckedTargets<T> y;
};

template <class T>
CheckedBatch<T> check_batch(const AnyWorkspace& ws, const py::list& weights, const py::list& biases,
                            bool writable, py::handle X_, py::handle y_) {
    CheckedBatch<T> c{check_layers<T>(ws, weights, biases, writable), checked<T>(X_, "X", {-1, ws.sizes[0]}), 0, {}};
    c.B = c.X.shape(0);
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
            const std::vector<int64_t> shape = which == 0 ? std::vector<int64_t>{ws.sizes[k + 1], ws.sizes[k]}
                                                          : std::vector<int64_t>{ws.sizes[k + 1]};
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
        py::gil_scoped_release nogil;
        s = fastmlp::train_batch(ws.get<T>(), c.params.layers, cptr<T>(c.X), c.y.view, c.B, u.update, nullptr, false,
                                 &key);
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
    py::array X = checked<T>(X_, "X", {-1, ws.sizes[0]});
    const int64_t N = X.shape(0);
    check_fits(ws, batch_size, "batch_size");
    CheckedTargets<T> y = check_targets<T>(y_, N, ws.sizes.back(), ws.spec.output);
    attach_weights<T>(y, sample_weight, N);
    CheckedUpdate<T> u = check_update<T>(ws, optimizer, state);
    py::array order;
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
        py::gil_scoped_release nogil;
        e = fastmlp::train_epoch(ws.get<T>(), L.layers, cptr<T>(X), y.view, ord, visited, batch_size, u.update, key, poll,
                                 stop_on_nonfinite);
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
    py::array keep_rows;
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
        py::gil_scoped_release nogil;
        s = fastmlp::forward_backward(ws.get<T>(), c.params.layers, cptr<T>(c.X), c.y.view, c.B, out,
                                      fastmlp::Update<T>{}, nullptr, false, training ? &key : nullptr);
    }
    return py::make_tuple(s.loss_sum, s.n_correct, grads);
}

template <class T>
py::tuple evaluate_impl(AnyWorkspace& ws, const py::list& weights, const py::list& biases, py::handle X_,
                        py::handle y_, bool want_preds) {
    WorkspaceLock lock(ws);
    auto L = check_layers<T>(ws, weights, biases, false);
    py::array X = checked<T>(X_, "X", {-1, ws.sizes[0]});
    const int64_t N = X.shape(0), K = ws.sizes.back();
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
    {
        py::gil_scoped_release nogil;
        s = fastmlp::evaluate(ws.get<T>(), L.layers, cptr<T>(X), y.view, N, p);
    }
    return py::make_tuple(s.loss_sum, s.n_correct, preds);
}

std::string simd_level() {
#if defined(__AVX512F__)
    return "AVX-512";
#elif defined(__AVX2__) && defined(__FMA__)
    return "AVX2+FMA";
#elif defined(__AVX__)
    return "AVX";
#elif defined(__SSE2__) || defined(_M_X64)
    return "SSE2";
#elif defined(__ARM_NEON)
    return "NEON";
#else
    return "scalar";
#endif
}

std::string compiler() {
#if defined(__clang__)
    return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
    return "gcc " + std::to_string(__GNUC__) + "." + std::to_string(__GNUC_MINOR__) + "." +
           std::to_string(__GNUC_PATCHLEVEL__);
#elif defined(_MSC_VER)
    return "msvc " + std::to_string(_MSC_VER);
#else
    return "unknown";
#endif
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "fastmlp's native kernels. Private: use the fastmlp package, which validates input.";
    m.attr("__version__") = FASTMLP_VERSION;

    // Registered after pybind11's defaults, so tried first: SizeError would otherwise become
    // ValueError (it is a std::length_error). A size that can never be allocated is MemoryError.
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const fastmlp::SizeError& e) {
            PyErr_SetString(PyExc_MemoryError, e.what());
        }
    });

    bind_kernels(m);

    py::class_<AnyWorkspace>(m, "Workspace",
                             "Scratch buffers for batches of up to max_batch rows through one network architecture:\n"
                             "layer_sizes, one activation and one dropout probability per hidden layer (None: relu,\n"
                             "no dropout), and the output ('softmax', 'sigmoid' or 'identity').")
        .def(py::init([](std::vector<int64_t> sizes, int64_t batch, const std::string& dt, const py::object& acts,
                         const std::string& output, const py::object& dropout) {
                 return std::make_unique<AnyWorkspace>(make_spec(std::move(sizes), acts, output, dropout), batch, dt);
             }),
             py::arg("layer_sizes"), py::arg("max_batch"), py::arg("dtype"), py::arg("activations") = py::none(),
             py::arg("output") = "softmax", py::arg("dropout") = py::none())
        .def_readonly("layer_sizes", &AnyWorkspace::sizes)
        .def_readonly("max_batch", &AnyWorkspace::max_batch)
        .def_readonly("dtype", &AnyWorkspace::dtype)
        .def_property_readonly("activations", &AnyWorkspace::activation_names)
        .def_property_readonly("output", &AnyWorkspace::output_name)
        .def_property_readonly("dropout", [](const AnyWorkspace& ws) { return ws.spec.dropout; });

    // Private test hook: the bytes a Workspace would allocate, from the constructor's own
    // sizing code, without allocating (tests/test_sizes.py probes the 2^31 and 2^63 edges).
    m.def("_workspace_bytes",
          [](std::vector<int64_t> sizes, int64_t batch, const std::string& dt, const py::object& acts,
             const std::string& output, const py::object& dropout) {
              return AnyWorkspace::planned_bytes(make_spec(std::move(sizes), acts, output, dropout), batch, dt);
          },
          py::arg("layer_sizes"), py::arg("max_batch"), py::arg("dtype"), py::arg("activations") = py::none(),
          py::arg("output") = "softmax", py::arg("dropout") = py::none());

    // Private test hook: a parallel_for whose task `throw_at` throws std::runtime_error, run on
    // as many threads as get_num_threads() allows. It must reach Python as RuntimeError, not
    // std::terminate. Returns the number of tasks that ran when nothing threw.
    m.def("_parallel_raise_test",
          [](int64_t n_tasks, int64_t throw_at) {
              if (n_tasks < 0) throw std::invalid_argument("n_tasks must be >= 0");
              std::atomic<int64_t> ran{0};
              {
                  py::gil_scoped_release nogil;
                  // work large enough that threads_for() wakes every thread allowed
                  fastmlp::parallel_for(n_tasks, fastmlp::checked_mul(n_tasks + 1, 4 * fastmlp::kMinWorkPerThread),
                                        [&](int64_t t) {
                                            if (t == throw_at) {
#ifdef _OPENMP
                                                const int thread = omp_get_thread_num();
#else
                                                const int thread = 0;
#endif
                                                throw std::runtime_error("task " + std::to_string(t) +
                                                                         " failed on thread " + std::to_string(thread));
                                            }
                                            ran.fetch_add(1, std::memory_order_relaxed);
                                        });
              }
              return ran.load();
          },
          py::arg("n_tasks"), py::arg("throw_at"));

    m.def("train_batch",
          [](AnyWorkspace& ws, const py::list& W, const py::list& b, py::handle X, py::handle y,
             const py::dict& optimizer, const py::list& state, uint64_t dropout_seed, uint64_t epoch,
             uint64_t batch_index, py::handle sample_weight) {
              const fastmlp::DropoutKey key{dropout_seed, epoch, batch_index};
              return with_dtype(ws, [&](auto t) {
                  return train_batch_impl<decltype(t)>(ws, W, b, X, y, optimizer, state, key, sample_weight);
              });
          },
          py::arg("workspace"), py::arg("weights"), py::arg("biases"), py::arg("X"), py::arg("y"),
          py::arg("optimizer"), py::arg("state"), py::arg("dropout_seed") = 0, py::arg("epoch") = 0,
          py::arg("batch_index") = 0, py::arg("sample_weight") = py::none(),
          "One optimizer step on one batch, in place (parameters and optimizer state), with the dropout\n"
          "masks of (dropout_seed, epoch, batch_index). Returns (summed loss before the step, correct count).");

    m.def("train_epoch",
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

    m.def("gradients",
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

    m.def("evaluate",
          [](AnyWorkspace& ws, const py::list& W, const py::list& b, py::handle X, py::handle y, bool want_preds) {
              return with_dtype(ws, [&](auto t) { return evaluate_impl<decltype(t)>(ws, W, b, X, y, want_preds); });
          },
          py::arg("workspace"), py::arg("weights"), py::arg("biases"), py::arg("X"), py::arg("y") = py::none(),
          py::arg("want_preds") = true,
          "Forward pass (no dropout) in chunks of max_batch rows. Returns (summed loss, correct count,\n"
          "predictions or None): softmax probabilities, sigmoids, or the outputs of an identity output.");

    m.def("set_num_threads",
          [](int n) {
              if (n < 1) throw std::invalid_argument("the number of threads must be >= 1, got " + std::to_string(n));
              fastmlp::set_num_threads(n);
          },
          py::arg("n"));
    m.def("get_num_threads", &fastmlp::get_num_threads);
    m.def("set_isa",
          [](const std::string& name) {
              fastmlp::Isa isa;
              if (name == "generic") isa = fastmlp::Isa::generic;
              else if (name == "avx2") isa = fastmlp::Isa::avx2;
              else throw std::invalid_argument("unknown instruction set '" + name + "'; expected 'generic' or 'avx2'");
              if (!fastmlp::set_active_isa(isa))
                  throw std::invalid_argument(std::string("this CPU cannot run the '") + name +
                                              "' kernels; the best it supports is '" +
                                              fastmlp::isa_name(fastmlp::best_isa()) + "'");
          },
          py::arg("name"), "Use the 'generic' or 'avx2' kernels from now on, process-wide.");
    m.def("get_isa", []() { return std::string(fastmlp::isa_name(fastmlp::active_isa())); });
    m.def("build_info", []() {
        py::dict d;
        d["version"] = FASTMLP_VERSION;
        d["compiler"] = compiler();
        d["openmp"] = fastmlp::has_openmp();
#ifdef _OPENMP
        d["openmp_version"] = _OPENMP;
#else
        d["openmp_version"] = py::none();
#endif
        d["simd"] = simd_level();
        d["isa"] = fastmlp::isa_name(fastmlp::active_isa());
        d["isa_available"] = fastmlp::isa_name(fastmlp::best_isa());
        d["max_threads"] = fastmlp::get_num_threads();
        return d;
    });
}
