// The definition of fastmlp._core: the module's attributes, the exception mapping every section
// relies on, and the sections themselves (one .cpp each in this folder). Every call checks its
// arrays with the GIL held, releases the GIL, runs a plain C++ kernel from fastmlp/*.hpp, and
// maps errors to Python: std::invalid_argument -> ValueError, wrong dtype -> TypeError,
// fastmlp::SizeError -> MemoryError. User-facing validation lives in the Python package.
#include "common.hpp"
#include "fastmlp/checked.hpp"

PYBIND11_MODULE(_core, m) {
    namespace py = pybind11;
    using namespace fastmlp_py;
    m.doc() = "fastmlp's native kernels. Private: use the fastmlp package, which validates input.";
    m.attr("__version__") = FASTMLP_VERSION;

    // The names each enum accepts, in the order fastmlp._validation lists them (a test checks).
    m.attr("ACTIVATIONS") = names_tuple(kActivations);
    m.attr("OUTPUTS") = names_tuple(kOutputs);
    m.attr("OPTIMIZERS") = names_tuple(kOptimizers);
    m.attr("ISAS") = names_tuple(kIsas);

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
    bind_workspace(m);
    bind_network(m);
    bind_runtime(m);
}
