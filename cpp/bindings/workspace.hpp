// AnyWorkspace: one network architecture's scratch buffers in float32 or float64 (the Python
// Workspace object), its one-call-at-a-time lock, and the check of a network's parameter lists
// against it. Shared by workspace.cpp (the class) and network.cpp (the calls that use it).
#pragma once

#include <memory>
#include <mutex>

#include "common.hpp"
#include "fastmlp/mlp.hpp"

namespace fastmlp_py {

// The NetSpec of a Workspace from Python arguments: activations (one name per hidden layer, or
// None for relu everywhere), output name, dropout (one probability in [0, 1) per hidden layer,
// or None for none).
fastmlp::NetSpec make_spec(std::vector<int64_t> sizes, const py::object& activations, const std::string& output,
                           const py::object& dropout);

struct AnyWorkspace {
    std::string dtype;
    fastmlp::NetSpec spec;
    std::vector<int64_t> sizes;
    int64_t max_batch;
    std::unique_ptr<fastmlp::Workspace<float>> f32;
    std::unique_ptr<fastmlp::Workspace<double>> f64;
    std::mutex busy;  // one call at a time: the scratch buffers are shared state

    AnyWorkspace(fastmlp::NetSpec net, int64_t batch, const std::string& dt);
    static std::string describe(const std::vector<int64_t>& sizes, int64_t batch, const std::string& dt);
    // Exactly the constructor's sizing (fastmlp::plan_workspace), without allocating; an
    // impossible size throws SizeError with the whole request in its message.
    static int64_t planned_bytes(const fastmlp::NetSpec& spec, int64_t batch, const std::string& dt);
    std::vector<std::string> activation_names() const;
    std::string output_name() const;
    template <class T>
    fastmlp::Workspace<T>& get();
};
template <>
inline fastmlp::Workspace<float>& AnyWorkspace::get<float>() {
    return *f32;
}
template <>
inline fastmlp::Workspace<double>& AnyWorkspace::get<double>() {
    return *f64;
}

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

// Whether `obj` is an ndarray of dtype T, C-contiguous, of exactly `rows` x `cols` (rows < 0:
// any number; cols < 0: a vector of `rows`), writeable if asked: checked() without building names or messages, so
// that a one-row prediction does not pay for strings it never shows. checked() decides (and
// words the error) whenever this says no.
template <class T>
bool fits_quickly(py::handle obj, int64_t rows, int64_t cols, bool writable) {
    auto& api = py::detail::npy_api::get();
    if (!api.PyArray_Check_(obj.ptr())) return false;
    auto* a = py::detail::array_proxy(obj.ptr());
    const int ndim = cols < 0 ? 1 : 2;
    if (a->nd != ndim || (rows >= 0 && a->dimensions[0] != rows) || (ndim == 2 && a->dimensions[1] != cols))
        return false;
    if (!(a->flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_)) return false;
    if (writable && !(a->flags & py::detail::npy_api::NPY_ARRAY_WRITEABLE_)) return false;
    const auto* d = py::detail::array_descriptor_proxy(a->descr);
    return d->type_num == py::detail::npy_format_descriptor<T>::value && d->byteorder == '=';
}

template <class T>
CheckedLayers<T> check_layers(const AnyWorkspace& ws, const py::list& weights, const py::list& biases, bool writable) {
    const std::size_t L = ws.sizes.size() - 1;
    if (weights.size() != L || biases.size() != L)
        throw std::invalid_argument("expected " + std::to_string(L) + " weight matrices and bias vectors, got " +
                                    std::to_string(weights.size()) + " and " + std::to_string(biases.size()));
    CheckedLayers<T> out;
    out.keep.reserve(2 * L);
    out.layers.reserve(L);
    for (std::size_t k = 0; k < L; ++k) {
        py::handle W_ = weights[k], b_ = biases[k];
        py::array W = no_array(), b = no_array();
        if (fits_quickly<T>(W_, ws.sizes[k + 1], ws.sizes[k], writable) &&
            fits_quickly<T>(b_, ws.sizes[k + 1], -1, writable)) {
            W = py::reinterpret_borrow<py::array>(W_);
            b = py::reinterpret_borrow<py::array>(b_);
        } else {
            const std::string wn = "weights[" + std::to_string(k) + "]", bn = "biases[" + std::to_string(k) + "]";
            W = checked<T>(W_, wn.c_str(), {ws.sizes[k + 1], ws.sizes[k]}, writable);
            b = checked<T>(b_, bn.c_str(), {ws.sizes[k + 1]}, writable);
        }
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

}  // namespace fastmlp_py
