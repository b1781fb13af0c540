// The enum tables and the non-template argument checks of fastmlp._core (common.hpp declares
// them). Only what keeps the kernels safe: user-facing validation and friendly messages live in
// the Python package.
#include <sstream>

#include "common.hpp"

namespace fastmlp_py {

namespace {
// In fastmlp._validation's order (ACTIVATIONS, OUTPUTS), not the enums' numeric order.
constexpr EnumName<Activation> kActivationRows[] = {
    {"relu", Activation::relu},         {"leaky_relu", Activation::leaky_relu},
    {"elu", Activation::elu},           {"gelu", Activation::gelu},
    {"silu", Activation::silu},         {"tanh", Activation::tanh},
    {"sigmoid", Activation::sigmoid},   {"softplus", Activation::softplus},
    {"identity", Activation::identity},
};
constexpr EnumName<Output> kOutputRows[] = {
    {"softmax", Output::softmax},
    {"sigmoid", Output::sigmoid},
    {"identity", Output::identity},
    {"poisson", Output::poisson},
};
constexpr EnumName<fastmlp::OptimizerKind> kOptimizerRows[] = {
    {"sgd", fastmlp::OptimizerKind::sgd},
    {"adam", fastmlp::OptimizerKind::adam},
    {"adamw", fastmlp::OptimizerKind::adamw},
    {"rmsprop", fastmlp::OptimizerKind::rmsprop},
};
constexpr EnumName<fastmlp::Isa> kIsaRows[] = {
    {"generic", fastmlp::Isa::generic},
    {"avx2", fastmlp::Isa::avx2},
    {"avx512", fastmlp::Isa::avx512},
};

template <class Enum, std::size_t N>
constexpr EnumTable<Enum> table(const char* what, const EnumName<Enum> (&rows)[N]) {
    return {what, rows, N};
}

// A Python float that must be finite and within [lo, hi]; `key` names it in the error.
double checked_real(const py::dict& d, const char* key, double fallback, double lo, double hi) {
    if (!d.contains(key)) return fallback;
    const double v = py::cast<double>(d[key]);
    if (!(v >= lo && v <= hi))
        throw std::invalid_argument(std::string("optimizer '") + key + "' must lie in [" + std::to_string(lo) + ", " +
                                    std::to_string(hi) + "], got " + std::to_string(v));
    return v;
}
}  // namespace

const EnumTable<Activation> kActivations = table("activation", kActivationRows);
const EnumTable<Output> kOutputs = table("output", kOutputRows);
const EnumTable<fastmlp::OptimizerKind> kOptimizers = table("optimizer kind", kOptimizerRows);
const EnumTable<fastmlp::Isa> kIsas = table("instruction set", kIsaRows);

fastmlp::OptimizerSpec parse_optimizer(const py::dict& d) {
    fastmlp::OptimizerSpec o;
    o.kind = parse_enum(kOptimizers, d.contains("kind") ? py::cast<std::string>(d["kind"]) : "sgd");
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

bool same_dtype(const py::dtype& a, const py::dtype& b) {
    return py::detail::npy_api::get().PyArray_EquivTypes_(a.ptr(), b.ptr());
}

py::array checked_positions(py::handle rows, int64_t B) {
    py::array a = checked<int64_t>(rows, "dropout_rows", {B});
    const int64_t* p = cptr<int64_t>(a);
    for (int64_t i = 0; i < B; ++i)
        if (p[i] < 0 || p[i] >= (int64_t{1} << 40))
            throw std::invalid_argument("dropout_rows[" + std::to_string(i) + "] = " + std::to_string(p[i]) +
                                        " is outside [0, 2^40)");
    return a;
}

}  // namespace fastmlp_py
