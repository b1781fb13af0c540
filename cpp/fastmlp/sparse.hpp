// The first layer over a sparse X (CSR rows): its forward product, its weight gradient and the
// plain-SGD step, each over the nonzeros only (docs/math.md: a_1 = X W_1^T + b_1, step 5
// dW_1 = da_1^T X). W_1 keeps the dense layout (OUT, IN); nothing here allocates, and nothing
// here validates the structure (the bindings check it once per call, before anything runs).
// Threads split the output features in fixed blocks: every output element is one sequential
// chain over the row's nonzeros in storage order, so results never depend on the thread count.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <vector>

#include "dense.hpp"
#include "parallel.hpp"

namespace fastmlp {

// Rows of a CSR matrix: row i's nonzeros are data[p] at column indices[p] for p in
// [indptr[i], indptr[i+1]) (any order, duplicates summed, explicit zeros allowed). With `rows`
// set, batch row r is row rows[r]; else it is row r (a contiguous batch is the view whose
// indptr starts at its first row: offsets stay absolute).
struct ColumnLists;

template <class T>
struct CsrRows {
    const std::int64_t* indptr = nullptr;
    const std::int64_t* indices = nullptr;
    const T* data = nullptr;
    const std::int64_t* rows = nullptr;
    // Set only inside a plain-SGD epoch (train_epoch): W_1 transposed, (IN, OUT), which the
    // first layer then reads and steps instead of W_1, and the scratch its step groups the
    // batch's nonzeros by column in. Null: the kernels work on W_1 itself.
    T* transposed = nullptr;
    ColumnLists* columns = nullptr;

    std::int64_t row(std::int64_t r) const { return rows != nullptr ? rows[r] : r; }
    std::int64_t begin(std::int64_t r) const { return indptr[row(r)]; }
    std::int64_t end(std::int64_t r) const { return indptr[row(r) + 1]; }
    // The batch view of rows [start, start + B) of this view.
    CsrRows<T> batch(std::int64_t start) const {
        CsrRows<T> v = *this;
        if (rows != nullptr)
            v.rows = rows + start;
        else
            v.indptr = indptr + start;
        return v;
    }
    std::int64_t nonzeros(std::int64_t B) const {
        std::int64_t n = 0;
        for (std::int64_t r = 0; r < B; ++r) n += end(r) - begin(r);
        return n;
    }
};

// Output features per parallel task: a fixed partition, so the work of one feature never
// depends on how many threads share the tasks.
constexpr std::int64_t kSparseFeatureBlock = 8;

// Calls f(o) for every output feature o in [0, OUT), features shared between threads in fixed blocks.
template <class F>
void for_each_feature(std::int64_t OUT, std::int64_t work, F&& f) {
    const std::int64_t blocks = (OUT + kSparseFeatureBlock - 1) / kSparseFeatureBlock;
    parallel_for(blocks, work, [&](std::int64_t blk) {
        const std::int64_t stop = std::min(OUT, (blk + 1) * kSparseFeatureBlock);
        for (std::int64_t o = blk * kSparseFeatureBlock; o < stop; ++o) f(o);
    });
}

// a = x W^T + b over the nonzeros of the B rows of x: a[r, o] = b[o] + sum_p data[p] W[o, indices[p]].
// W (OUT, IN), b (OUT), a (B, OUT). Overwrites a. The activation is the caller's.
template <class T>
void sparse_forward(T* a, const CsrRows<T>& x, std::int64_t B, const T* W, const T* b, std::int64_t IN,
                    std::int64_t OUT) {
    for_each_feature(OUT, x.nonzeros(B) * OUT, [&](std::int64_t o) {
        const T* w = W + o * IN;
        for (std::int64_t r = 0; r < B; ++r) {
            T acc = T(0);
            for (std::int64_t p = x.begin(r), e = x.end(r); p < e; ++p) acc += x.data[p] * w[x.indices[p]];
            a[r * OUT + o] = acc + b[o];
        }
    });
}

// dW = da^T x (dense (OUT, IN), zero where no row of the batch has a nonzero), db = column
// sums of da. da (B, OUT). Overwrites dW and db. The gradient the dense optimizers step on.
template <class T>
void sparse_weight_gradient(T* dW, T* db, const T* da, const CsrRows<T>& x, std::int64_t B, std::int64_t IN,
                            std::int64_t OUT) {
    for_each_feature(OUT, x.nonzeros(B) * OUT + IN * OUT, [&](std::int64_t o) {
        T* g = dW + o * IN;
        std::fill(g, g + IN, T(0));
        for (std::int64_t r = 0; r < B; ++r) {
            const T d = da[r * OUT + o];
            for (std::int64_t p = x.begin(r), e = x.end(r); p < e; ++p) g[x.indices[p]] += d * x.data[p];
        }
    });
    bias_gradient(db, da, B, OUT);
}

// Plain SGD on the first layer: W[o, j] -= lr dW[o, j] for the columns j the batch touches only
// (dW is zero elsewhere, so the rest of W is unchanged), b -= lr db. dW (OUT, IN) is scratch:
// only its touched entries are written, and they are left zero. Sets `nonfinite` when a
// written weight or bias is NaN or infinite.
template <class T>
void sparse_sgd_step(T* W, T* b, T* dW, T* db, const T* da, const CsrRows<T>& x, std::int64_t B, std::int64_t IN,
                     std::int64_t OUT, T lr, std::atomic<bool>* nonfinite) {
    std::atomic<bool> bad{false};
    for_each_feature(OUT, 3 * x.nonzeros(B) * OUT, [&](std::int64_t o) {
        T* g = dW + o * IN;
        T* w = W + o * IN;
        for (std::int64_t r = 0; r < B; ++r)
            for (std::int64_t p = x.begin(r), e = x.end(r); p < e; ++p) g[x.indices[p]] = T(0);
        for (std::int64_t r = 0; r < B; ++r) {
            const T d = da[r * OUT + o];
            for (std::int64_t p = x.begin(r), e = x.end(r); p < e; ++p) g[x.indices[p]] += d * x.data[p];
        }
        // A column listed twice is stepped once: its gradient is zeroed after the first step,
        // and w - lr * 0 leaves w's bits as they are.
        bool row_bad = false;
        for (std::int64_t r = 0; r < B; ++r)
            for (std::int64_t p = x.begin(r), e = x.end(r); p < e; ++p) {
                const std::int64_t j = x.indices[p];
                w[j] -= lr * g[j];
                g[j] = T(0);
                row_bad |= !std::isfinite(w[j]);
            }
        if (row_bad) bad.store(true, std::memory_order_relaxed);
    });
    bias_gradient(db, da, B, OUT);
    for (std::int64_t o = 0; o < OUT; ++o) {
        b[o] -= lr * db[o];
        if (!std::isfinite(b[o])) bad.store(true, std::memory_order_relaxed);
    }
    if (bad.load(std::memory_order_relaxed) && nonfinite != nullptr) nonfinite->store(true, std::memory_order_relaxed);
}

// ---------------------------------------------------------------------------------------------
// The transposed first layer of a plain-SGD epoch. With W_1 (OUT, IN) a batch of 128 rows of ~50
// nonzeros touches most of W_1's cache lines (16 columns share a line), so each step would stream
// all of W_1; in the transposed copy Wt (IN, OUT) a touched column is one contiguous row. The
// epoch copies W_1 into Wt once, steps Wt, and copies it back: the same arithmetic, element by
// element, as the kernels above (each output a sequential chain in the same order).

// The nonzeros of one batch grouped by column, each group in batch order (row, then storage
// position): what the transposed step sums over. Sized once per epoch for its largest batch.
struct ColumnLists {
    std::vector<std::int64_t> head, tail;     // per column: first and last entry, -1 when absent
    std::vector<std::int64_t> next, row, at;  // per entry: the column's next entry, batch row, position p
    std::vector<std::int64_t> columns;        // the distinct columns, in order of first appearance
    std::int64_t n_columns = 0;

    ColumnLists(std::int64_t IN, std::int64_t max_nonzeros)
        : head(static_cast<std::size_t>(IN), -1),
          tail(static_cast<std::size_t>(IN), -1),
          next(static_cast<std::size_t>(max_nonzeros)),
          row(static_cast<std::size_t>(max_nonzeros)),
          at(static_cast<std::size_t>(max_nonzeros)),
          columns(static_cast<std::size_t>(max_nonzeros)) {}

    template <class T>
    void build(const CsrRows<T>& x, std::int64_t B) {
        std::int64_t q = 0;
        for (std::int64_t r = 0; r < B; ++r)
            for (std::int64_t p = x.begin(r), e = x.end(r); p < e; ++p, ++q) {
                const auto j = static_cast<std::size_t>(x.indices[p]);
                const auto uq = static_cast<std::size_t>(q);
                if (head[j] < 0) {
                    head[j] = q;
                    columns[static_cast<std::size_t>(n_columns++)] = x.indices[p];
                } else {
                    next[static_cast<std::size_t>(tail[j])] = q;
                }
                tail[j] = q;
                next[uq] = -1;
                row[uq] = r;
                at[uq] = p;
            }
    }
    void clear() {
        for (std::int64_t c = 0; c < n_columns; ++c)
            head[static_cast<std::size_t>(columns[static_cast<std::size_t>(c)])] = -1;
        n_columns = 0;
    }
};

// dst (cols, rows) = src (rows, cols) transposed, in 32 x 32 tiles shared between threads. With
// `nonfinite`, set when a copied value is NaN or infinite.
template <class T>
void transpose(T* dst, const T* src, std::int64_t rows, std::int64_t cols, std::atomic<bool>* nonfinite = nullptr) {
    constexpr std::int64_t tile = 32;
    const std::int64_t row_tiles = (rows + tile - 1) / tile;
    parallel_for(row_tiles, rows * cols, [&](std::int64_t t) {
        bool bad = false;
        const std::int64_t r1 = std::min(rows, (t + 1) * tile);
        for (std::int64_t c0 = 0; c0 < cols; c0 += tile) {
            const std::int64_t c1 = std::min(cols, c0 + tile);
            for (std::int64_t r = t * tile; r < r1; ++r)
                for (std::int64_t c = c0; c < c1; ++c) {
                    dst[c * rows + r] = src[r * cols + c];
                    bad |= !std::isfinite(src[r * cols + c]);
                }
        }
        if (bad && nonfinite != nullptr) nonfinite->store(true, std::memory_order_relaxed);
    });
}

// a = x W^T + b from Wt = W^T (IN, OUT): row r of a is b + sum_p data[p] Wt[indices[p], :], one
// batch row per task, each element the same chain as in sparse_forward.
template <class T>
void sparse_forward_transposed(T* a, const CsrRows<T>& x, std::int64_t B, const T* Wt, const T* b, std::int64_t OUT) {
    parallel_for(B, x.nonzeros(B) * OUT, [&](std::int64_t r) {
        T* out = a + r * OUT;
        std::fill(out, out + OUT, T(0));
        for (std::int64_t p = x.begin(r), e = x.end(r); p < e; ++p) {
            const T d = x.data[p];
            const T* w = Wt + x.indices[p] * OUT;
            for (std::int64_t o = 0; o < OUT; ++o) out[o] += d * w[o];
        }
        for (std::int64_t o = 0; o < OUT; ++o) out[o] += b[o];
    });
}

// The plain-SGD step of sparse_sgd_step on Wt = W^T: for each column j the batch touches,
// Wt[j, :] -= lr * sum over its entries (in batch order) of da[r, :] data[p]; b -= lr db.
// x.columns must hold the batch's lists (ColumnLists::build). Sets `nonfinite` when a new bias
// is NaN or infinite (the weights are checked when the epoch copies Wt back).
template <class T>
void sparse_sgd_step_transposed(T* Wt, T* b, T* db, const T* da, const CsrRows<T>& x, std::int64_t B, std::int64_t OUT,
                                T lr, std::atomic<bool>* nonfinite) {
    const ColumnLists& lists = *x.columns;
    constexpr std::int64_t kColumnsPerTask = 16, kChunk = 64;
    const std::int64_t tasks = (lists.n_columns + kColumnsPerTask - 1) / kColumnsPerTask;
    parallel_for(tasks, 2 * x.nonzeros(B) * OUT, [&](std::int64_t t) {
        const std::int64_t stop = std::min(lists.n_columns, (t + 1) * kColumnsPerTask);
        for (std::int64_t c = t * kColumnsPerTask; c < stop; ++c) {
            const std::int64_t j = lists.columns[static_cast<std::size_t>(c)];
            T* w = Wt + j * OUT;
            for (std::int64_t o0 = 0; o0 < OUT; o0 += kChunk) {
                const std::int64_t n = std::min(kChunk, OUT - o0);
                T acc[kChunk] = {};
                for (std::int64_t q = lists.head[static_cast<std::size_t>(j)]; q >= 0;
                     q = lists.next[static_cast<std::size_t>(q)]) {
                    const T d = x.data[lists.at[static_cast<std::size_t>(q)]];
                    const T* g = da + lists.row[static_cast<std::size_t>(q)] * OUT + o0;
                    for (std::int64_t i = 0; i < n; ++i) acc[i] += g[i] * d;
                }
                for (std::int64_t i = 0; i < n; ++i) w[o0 + i] -= lr * acc[i];
            }
        }
    });
    bias_gradient(db, da, B, OUT);
    sgd_bias_step(b, db, lr, OUT, nonfinite);
}

}  // namespace fastmlp
