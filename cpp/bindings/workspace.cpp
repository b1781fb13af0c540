// The Workspace class of fastmlp._core: building a NetSpec from Python arguments, sizing and
// allocating the scratch buffers (an impossible or refused size becomes MemoryError naming the
// request), and the private sizing hook the size tests probe. Nothing here runs a kernel.
#include <atomic>
#include <sstream>

#include "workspace.hpp"

namespace fastmlp_py {

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
            spec.activations.push_back(parse_enum(kActivations, name));
        if (spec.activations.size() != hidden)
            throw std::invalid_argument("expected " + std::to_string(hidden) +
                                        " activations (one per hidden layer), got " +
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
    spec.output = parse_enum(kOutputs, output);  // a softmax over 1 unit is useless but safe: Python refuses it
    return spec;
}

namespace {
// Workspaces built since import: the private hook the prediction-cache tests read to show that
// a network predicting again at a batch size it has seen builds none.
std::atomic<int64_t> workspaces_built{0};
}  // namespace

AnyWorkspace::AnyWorkspace(fastmlp::NetSpec net, int64_t batch, const std::string& dt)
    : dtype(dt), spec(std::move(net)), sizes(spec.sizes), max_batch(batch) {
    workspaces_built.fetch_add(1, std::memory_order_relaxed);
    // Sized first, allocated second: an impossible size or a refused allocation both become
    // MemoryError (fastmlp::SizeError) naming the request, never a crash or a wrapped size.
    const int64_t bytes = planned_bytes(spec, batch, dt);
    try {
        if (dt == "float32")
            f32 = std::make_unique<fastmlp::Workspace<float>>(spec, batch);
        else
            f64 = std::make_unique<fastmlp::Workspace<double>>(spec, batch);
    } catch (const std::bad_alloc&) {
        throw fastmlp::SizeError(describe(sizes, batch, dt) + " would need " + std::to_string(bytes) +
                                 " bytes, which could not be allocated");
    } catch (const std::length_error&) {  // std::vector's own limit, below our planned total
        throw fastmlp::SizeError(describe(sizes, batch, dt) + " would need " + std::to_string(bytes) +
                                 " bytes, more than one buffer can hold");
    }
}

std::string AnyWorkspace::describe(const std::vector<int64_t>& sizes, int64_t batch, const std::string& dt) {
    std::ostringstream s;
    s << "a " << dt << " Workspace for layer sizes [";
    for (std::size_t i = 0; i < sizes.size(); ++i) s << (i ? ", " : "") << sizes[i];
    s << "] and max_batch " << batch;
    return s.str();
}

int64_t AnyWorkspace::planned_bytes(const fastmlp::NetSpec& spec, int64_t batch, const std::string& dt) {
    if (batch < 1) throw std::invalid_argument("max_batch must be >= 1");
    if (dt != "float32" && dt != "float64")
        throw std::invalid_argument("dtype must be 'float32' or 'float64', got '" + dt + "'");
    try {
        return dt == "float32" ? fastmlp::plan_workspace<float>(spec, batch).bytes
                               : fastmlp::plan_workspace<double>(spec, batch).bytes;
    } catch (const fastmlp::SizeError& e) {
        throw fastmlp::SizeError(describe(spec.sizes, batch, dt) +
                                 " would need more bytes than the address space holds (" + e.what() + ")");
    }
}

std::vector<std::string> AnyWorkspace::activation_names() const {
    std::vector<std::string> out;
    for (Activation g : spec.activations) out.emplace_back(enum_name(kActivations, g));
    return out;
}

std::string AnyWorkspace::output_name() const { return enum_name(kOutputs, spec.output); }

void bind_workspace(py::module_& m) {
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

    // Private test hook: how many Workspaces were built (tests/api/test_prediction_cache.py).
    m.def("_workspaces_built", [] { return workspaces_built.load(std::memory_order_relaxed); });

    // Private test hook: the bytes a Workspace would allocate, from the constructor's own
    // sizing code, without allocating (tests/robustness/test_sizes.py probes the 2^31 and 2^63 edges).
    m.def(
        "_workspace_bytes",
        [](std::vector<int64_t> sizes, int64_t batch, const std::string& dt, const py::object& acts,
           const std::string& output, const py::object& dropout) {
            return AnyWorkspace::planned_bytes(make_spec(std::move(sizes), acts, output, dropout), batch, dt);
        },
        py::arg("layer_sizes"), py::arg("max_batch"), py::arg("dtype"), py::arg("activations") = py::none(),
        py::arg("output") = "softmax", py::arg("dropout") = py::none());
}

}  // namespace fastmlp_py
