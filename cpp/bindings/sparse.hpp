// A sparse X as the whole-network calls of network.cpp take it: any object with the attributes
// data (T), indices (int64), indptr (int64), shape (n_rows, n_cols) and rows (None or int64
// positions into the rows), i.e. fastmlp._sparse.CsrRows. Its structure is checked here, with
// the GIL held and before anything runs: the kernels (fastmlp/sparse.hpp) trust it. Python
// converts scipy.sparse input into this form; this file knows nothing of scipy.
#pragma once

#include <string>

#include "common.hpp"
#include "fastmlp/sparse.hpp"

namespace fastmlp_py {

// An ndarray is answered first: hasattr on one raises and clears an AttributeError, whose
// message formatting cost a one-row prediction about a microsecond.
inline bool is_csr(py::handle X) {
    return !py::detail::npy_api::get().PyArray_Check_(X.ptr()) && py::hasattr(X, "indptr");
}

template <class T>
struct CheckedCsr {
    py::array data = no_array(), indices = no_array(), indptr = no_array(),
              rows = no_array();  // held while the GIL is released
    fastmlp::CsrRows<T> view;
    int64_t n_rows = 0;  // rows of the view: len(rows) when a row list is set
};

// Checks X's arrays and structure against n_cols columns: indptr non-decreasing with its
// entries inside the index arrays (a slice's indptr need not start at 0), every index used in
// [0, n_cols), every listed row in range. With allow_rows false, a row list is refused.
template <class T>
CheckedCsr<T> check_csr(py::handle X, int64_t n_cols, bool allow_rows) {
    CheckedCsr<T> c;
    const py::tuple shape = py::cast<py::tuple>(X.attr("shape"));
    const auto n_all = py::cast<int64_t>(shape[0]);
    if (shape.size() != 2 || py::cast<int64_t>(shape[1]) != n_cols)
        throw std::invalid_argument("sparse X must have " + std::to_string(n_cols) + " columns");
    c.data = checked<T>(X.attr("data"), "X.data", {-1});
    c.indices = checked<int64_t>(X.attr("indices"), "X.indices", {c.data.shape(0)});
    c.indptr = checked<int64_t>(X.attr("indptr"), "X.indptr", {n_all + 1});
    const int64_t nnz = c.data.shape(0);
    const int64_t* ptr = cptr<int64_t>(c.indptr);
    const int64_t* idx = cptr<int64_t>(c.indices);
    if (ptr[0] < 0 || ptr[n_all] > nnz)
        throw std::invalid_argument("sparse X: indptr must lie in [0, " + std::to_string(nnz) + "]");
    for (int64_t i = 0; i < n_all; ++i)
        if (ptr[i + 1] < ptr[i])
            throw std::invalid_argument("sparse X: indptr must be non-decreasing; indptr[" + std::to_string(i + 1) +
                                        "] < indptr[" + std::to_string(i) + "]");
    for (int64_t p = ptr[0]; p < ptr[n_all]; ++p)
        if (idx[p] < 0 || idx[p] >= n_cols)
            throw std::invalid_argument("sparse X: column index " + std::to_string(idx[p]) + " is outside [0, " +
                                        std::to_string(n_cols) + ")");
    c.view.indptr = ptr;
    c.view.indices = idx;
    c.view.data = cptr<T>(c.data);
    c.n_rows = n_all;
    const py::object rows = X.attr("rows");
    if (!rows.is_none()) {
        if (!allow_rows) throw std::invalid_argument("sparse X: a row list is not accepted here");
        c.rows = checked<int64_t>(rows, "X.rows", {-1});
        const int64_t* r = cptr<int64_t>(c.rows);
        c.n_rows = c.rows.shape(0);
        for (int64_t i = 0; i < c.n_rows; ++i)
            if (r[i] < 0 || r[i] >= n_all)
                throw std::invalid_argument("sparse X: row " + std::to_string(r[i]) + " is outside [0, " +
                                            std::to_string(n_all) + ")");
        c.view.rows = r;
    }
    return c;
}

}  // namespace fastmlp_py
