// What every part of fastmlp._core shares: the enum tables (name <-> C++ enum, in the order
// Python lists them), the array checks run with the GIL held (never converting, so no hidden
// copy can swallow an in-place update), and ReleasedGil, the only way the bindings give the GIL
// up. Deliberately no pybind11 definitions here: each .cpp in this folder binds one section.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "fastmlp/activations.hpp"
#include "fastmlp/isa.hpp"
#include "fastmlp/losses.hpp"
#include "fastmlp/mlp.hpp"  // Targets
#include "fastmlp/optim.hpp"
#include "fastmlp/softmax_xent.hpp"

namespace fastmlp_py {

namespace py = pybind11;
using fastmlp::Activation;
using fastmlp::Output;
using std::int64_t;

// ---------------------------------------------------------------- enum tables

// One row per value: its Python name and the C++ enum. The order is the order Python shows to
// users (fastmlp._validation's tuples; tests/kernels/test_core_interface.py compares them), never the
// enums' numeric values: names are looked up in these tables, in both directions.
template <class Enum>
struct EnumName {
    const char* name;
    Enum value;
};
template <class Enum>
struct EnumTable {
    const char* what;  // "activation", "output", ... for error messages
    const EnumName<Enum>* rows;
    std::size_t size;
    const EnumName<Enum>* begin() const { return rows; }
    const EnumName<Enum>* end() const { return rows + size; }
};

extern const EnumTable<Activation> kActivations;
extern const EnumTable<Output> kOutputs;
extern const EnumTable<fastmlp::OptimizerKind> kOptimizers;
extern const EnumTable<fastmlp::Isa> kIsas;

// The names of a table, in order ("'a', 'b', 'c'") for messages, and as a Python tuple.
template <class Enum>
std::string quoted_names(const EnumTable<Enum>& table) {
    std::string out;
    for (const auto& row : table) out += (out.empty() ? "'" : ", '") + std::string(row.name) + "'";
    return out;
}
template <class Enum>
py::tuple names_tuple(const EnumTable<Enum>& table) {
    py::tuple out(table.size);
    for (std::size_t i = 0; i < table.size; ++i) out[i] = py::str(table.rows[i].name);
    return out;
}
// std::invalid_argument (ValueError) naming the table's values when `name` is not one of them.
template <class Enum>
Enum parse_enum(const EnumTable<Enum>& table, const std::string& name) {
    for (const auto& row : table)
        if (name == row.name) return row.value;
    throw std::invalid_argument("unknown " + std::string(table.what) + " '" + name + "'; expected one of " +
                                quoted_names(table));
}
template <class Enum>
const char* enum_name(const EnumTable<Enum>& table, Enum value) {
    for (const auto& row : table)
        if (row.value == value) return row.name;
    throw std::logic_error(std::string("no name for this ") + table.what);  // a table missing a row
}

// The optimizer of a training call, from a dict {"kind", "lr", "momentum", "nesterov",
// "weight_decay", "beta1", "beta2", "eps", "alpha", "step"}; absent keys take PyTorch's
// defaults. fastmlp.optim builds these dicts; the checks here only keep the kernels safe.
fastmlp::OptimizerSpec parse_optimizer(const py::dict& d);

// ---------------------------------------------------------------- array checks

std::string shape_str(const py::array& a);

// Equivalence, not identity: an unpickled array carries an equal dtype object that is not
// NumPy's cached one. Equivalence still refuses another byte order.
bool same_dtype(const py::dtype& a, const py::dtype& b);

// The array behind `obj` if it is exactly an ndarray of dtype E, C-contiguous, with ndim
// dimensions; `shape` entries < 0 are free. Never converts.
template <class E>
py::array checked(py::handle obj, const char* name, std::vector<int64_t> shape, bool writable = false) {
    if (!py::isinstance<py::array>(obj)) throw py::type_error(std::string(name) + " must be a NumPy array");
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
    if (!(a.flags() & py::array::c_style)) throw std::invalid_argument(std::string(name) + " must be C-contiguous");
    if (writable && !a.writeable()) throw std::invalid_argument(std::string(name) + " is not writeable");
    return a;
}

template <class E>
const E* cptr(const py::array& a) {
    return static_cast<const E*>(a.data());
}
template <class E>
E* mptr(py::array& a) {
    return static_cast<E*>(a.mutable_data());
}

// A py::array holding nothing yet, for an array kept alive once it is known. py::array's default
// constructor allocates an empty NumPy array: a one-row prediction built and freed eleven of
// them, about 1 us of its 2 us outside the kernels.
inline py::array no_array() { return py::reinterpret_steal<py::array>(py::handle()); }

template <class T>
py::array_t<T> new_array(std::vector<int64_t> shape) {
    std::vector<py::ssize_t> s(shape.begin(), shape.end());
    return py::array_t<T>(s);
}

// Targets of a batch: int64 labels (N,) checked to lie in [0, K), or T distributions (N, K).
template <class T>
struct CheckedTargets {
    py::array keep = no_array();
    py::array keep_weight = no_array();
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
py::array checked_positions(py::handle rows, int64_t B);

// ---------------------------------------------------------------- the GIL

// Gives the GIL up for the native work of one call and takes it back when it goes out of scope.
// Unlike py::gil_scoped_release it never lets CPython end this thread inside a destructor: once
// the interpreter has begun exiting, a thread other than the exiting one parks here until the
// process ends (runtime.cpp says why and how).
class ReleasedGil {
public:
    ReleasedGil();
    ~ReleasedGil();
    ReleasedGil(const ReleasedGil&) = delete;
    ReleasedGil& operator=(const ReleasedGil&) = delete;

    // Holds the GIL again for a short Python call inside the released scope (the Ctrl-C poll).
    class Held {
    public:
        Held();
        ~Held();
        Held(const Held&) = delete;
        Held& operator=(const Held&) = delete;
    };

private:
    PyThreadState* saved_;
    PyThreadState* outer_;  // the enclosing ReleasedGil's state on this thread (nesting)
};

// ---------------------------------------------------------------- the sections of the module

void bind_kernels(py::module_& m);    // kernels.cpp: single kernels, for tests and users
void bind_workspace(py::module_& m);  // workspace.cpp: the Workspace class and its sizing
void bind_network(py::module_& m);    // network.cpp: whole-network training and evaluation
void bind_runtime(py::module_& m);    // runtime.cpp: threads, ISA, build info, exit and fork

}  // namespace fastmlp_py
