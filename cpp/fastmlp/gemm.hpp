// One GEMM engine for the three products of backpropagation, BLIS-style: for each block of
// KC values of k, pack B into NR-wide slivers and A into MR-tall slivers (cache-sized,
// contiguous, zero-padded), then run a register-blocked MR x NR micro-kernel over every tile.
// Any strides are accepted, so h W^T, da W and da^T h are the same code with other views.
//
// Determinism and accuracy: every element of C is a multiply-add chain over each block of KC
// values of k, in increasing order, and the blocks' sums are added to C in order. The blocking
// is fixed by K alone, so neither the tile an element falls in, nor the batch size, nor the
// thread count changes a bit; and a long sum (dW over a 60,000-row batch) rounds like one of
// KC + K/KC terms instead of K, which keeps float32 near 1e-6 relative.
// Threads split only N (groups of columns, claimed as each thread finishes the last), never k,
// so which thread computes a tile, and in what order, changes no bit. Epilogues (bias +
// activation, ⊙ g', the SGD step) run on each tile right after its last k block, while it is in
// L1; the SGD step inside the micro-kernel, from registers, so that a weight gradient is never
// stored at all.
// The shape is BLIS's: plan_gemm decides everything (blocking, packing, threads, tasks) from
// the tuning constants below, macro_kernel computes one block of k for a group of columns, and
// gemm_with, the driver, holds only the loops over tasks and the synchronisation.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#ifdef _WIN32
#include <malloc.h>
#endif
#ifdef __linux__
#include <unistd.h>
#endif

#include "activations.hpp"
#include "checked.hpp"
#include "finite.hpp"
#include "gemm_avx2.hpp"
#include "gemm_avx512.hpp"
#include "isa.hpp"
#include "parallel.hpp"
#include "tile_step.hpp"

namespace fastmlp {

// Element (i, j) of a strided matrix view is p[r(i) * rs + j * cs], with r(i) = rows[i] when
// rows is set (a shuffled minibatch read in place from X, never gathered) and i otherwise.
// Row indirection is supported on the operands whose rows are contiguous (cs == 1).
template <class T>
struct View {
    const T* p;
    std::int64_t rs, cs;
    const std::int64_t* rows = nullptr;
    const T* row(std::int64_t i) const { return p + (rows ? rows[i] : i) * rs; }
};

enum class Epilogue : int {
    store,            // C = A B
    bias_activation,  // C = g(A B + bias[n])
    times_gprime,     // C = (A B) ⊙ g'(h[m, n])
    sgd_step,         // W[m, n] -= lr * (A B)[m, n]; C is scratch, its contents unspecified
};

template <class T>
struct EpilogueArgs {
    Epilogue kind = Epilogue::store;
    const T* bias = nullptr;  // bias_activation
    Activation g = Activation::identity;
    // bias_activation with `activated` set: C keeps the pre-activation (A B)[m, n] + bias[n], and
    // activated[m * ld_activated + n] gets g of it, both while the tile is in cache: the layers
    // whose g' needs the pre-activation (gelu, silu) made a second pass over C for g before.
    T* activated = nullptr;
    std::int64_t ld_activated = 0;
    const T* h = nullptr;  // times_gprime, row stride ldh
    std::int64_t ldh = 0;
    T* W = nullptr;  // sgd_step, row stride ldw
    std::int64_t ldw = 0;
    T lr = T(0);
    // sgd_step: set (never cleared) when a new weight is NaN or infinite. bias_activation: when
    // given, set when a product (A B)[m, n] is NaN or infinite, before the bias and g: a
    // prediction's first layer learns so whether X may hold a NaN or infinity (mlp.hpp, evaluate).
    std::atomic<bool>* nonfinite = nullptr;
};

// C (M x N, row stride ldc) = A (M x K) B (K x N), then the epilogue.
template <class T>
struct GemmProblem {
    std::int64_t M, N, K;
    View<T> A, B;
    T* C;
    std::int64_t ldc;
    EpilogueArgs<T> epilogue;
    // A weight gradient dW = da^T h (rows of C are rows of W): plan_gemm may share it by rows.
    bool weight_gradient = false;
};

// 64-byte aligned scratch that only grows. Not copyable: a workspace owns one per dtype.
template <class T>
class AlignedBuffer {
public:
    AlignedBuffer() = default;
    AlignedBuffer(const AlignedBuffer&) = delete;
    AlignedBuffer& operator=(const AlignedBuffer&) = delete;
    ~AlignedBuffer() { release(); }
    // Bytes actually requested for n elements: rounded up to the 64-byte alignment, checked
    // (SizeError) so that a huge n can never wrap into a small allocation.
    static std::int64_t bytes_for(std::int64_t n) {
        const std::int64_t raw = checked_bytes(n, static_cast<std::int64_t>(sizeof(T)), "packing buffer");
        return checked_add(raw, 63, "packing buffer") / 64 * 64;
    }
    void reserve(std::int64_t n) {
        if (n <= size_) return;
        const auto bytes = static_cast<std::size_t>(bytes_for(n));
#ifdef _WIN32
        void* p = _aligned_malloc(bytes, 64);
#else
        void* p = std::aligned_alloc(64, bytes);
#endif
        if (p == nullptr) throw std::bad_alloc();
        release();
        data_ = static_cast<T*>(p);
        size_ = n;
    }
    T* data() { return data_; }
    std::int64_t size() const { return size_; }

private:
    void release() {
#ifdef _WIN32
        _aligned_free(data_);
#else
        std::free(data_);
#endif
    }
    T* data_ = nullptr;
    std::int64_t size_ = 0;
};

// Every tuning constant of the engine, in one place (sized for Zen 3: 32 KiB L1d and 512 KiB L2
// per core, 32 MiB L3; plan_gemm below is the only reader besides the packing space's sizes).
//
// At most KC values of k per block: a B sliver (KC x NR floats = 16 KiB) then takes half of
// L1 and the A rows streaming past it the other half. At 512 (the whole 32 KiB L1) the
// 256 x 4096 x 4096 products ran 6-8 % slower. K is cut into equal blocks (784 = 4 x 196,
// not 3 x 256 + 16), so no block is too short to pay for its packing.
constexpr std::int64_t kGemmKC = 256;
// An A block (MC x KC, 264 KiB of floats) stays in L2 while every sliver of B passes it; a
// multiple of every MR. 264 rows take a 256-row batch in one block, so each B sliver is used
// by all of M while in L1 (96, before, made three passes over B: 3-5 % slower at 4096 wide).
constexpr std::int64_t kGemmMC = 264;
constexpr int kMaxMR = 8, kMaxNR = 32;  // of every kernel: AVX2 6 x 16, AVX-512 8 x 32
// A strip of C this large (a row block's rows x a group of slivers' columns) stays in L2 while
// the blocks of k add to it: 256 x 512 floats. Across the whole row (256 x 4096 floats, 4 MiB)
// every block of k took C from L3 and back: the forward product of a 4096-wide layer ran
// 5-7 % slower.
constexpr std::int64_t kGemmCStripBytes = 512 * 1024;
// A product is shared between threads only when each gets at least kGemmWorkScale times the
// generic minimum (parallel.hpp): its two barriers per block of k cost more than a loop's one.
constexpr std::int64_t kGemmWorkScale = 8;
constexpr std::int64_t kGemmDirectWorkScale = 8;
// With several threads, a product is cut into about this many tasks per thread (columns of C,
// and rows of A to pack), claimed as each thread finishes the last: a thread that shares its
// core with another process then takes fewer of them instead of holding the others up, while a
// task still spans enough slivers to pay for re-reading its rows of A.
constexpr std::int64_t kGemmTasksPerThread = 4;
// A sliver's rows are read in place, unpacked, when its k range spans little memory: always
// when A's rows are contiguous (x or h in the forward product, da in the input gradient), and
// for da^T in the weight gradient while kc rows of da stay within a few dozen pages. Past that
// (a 4096-wide da^T: one page per k) the sliver is packed, as the TLB and the L1 would thrash.
constexpr std::int64_t kDirectASpanBytes = 256 * 1024;
// A is packed after all, even with contiguous rows, when a row of C (padded to whole slivers)
// spans at least this much (1024 floats, 512 doubles): each row of A is then read once per block
// of k, as a stream, instead of MR rows at a time by the micro-kernel for every sliver of B. With
// rows gathered through an index (a shuffled batch of X) those reads are scattered; with wide
// contiguous rows (16 KiB apart at 4096 features) the block of A falls into few cache sets and
// does not stay in L2. Measured with one thread: the forward product of a 4096-wide first layer
// (gathered rows, AVX2) ~5 % faster; 256 x 4096 x 4096 and 512 x 4096 x 4096 products 7-11 %
// faster on AVX-512 and 3-8 % on AVX2 (a Xeon with both). Narrow products still read A in place:
// with 16 slivers (784 -> 256) the packing and its barrier cost more than they save (-4 % AVX2,
// -12 % AVX-512).
constexpr std::int64_t kPackARowOfCBytes = 4096;
// With A read in place, a product whose A is larger than this (1024 rows of 784 features: a
// prediction) is shared by rows instead of columns when the packed block of B, every column for
// one block of k, fits in kRowTasksBBytes: a column task reads all of A again (eight tasks of
// one sliver read a 3 MiB A eight times, from L3), a row task reads only its rows, and B,
// packed once per block of k between two barriers, from L2. A prediction of 784-128-10 ran
// 1.23x faster at 1024 rows and 1.14x at 4096 (two threads, Zen 3, medians of 5 A/B rounds).
constexpr std::int64_t kRowTasksMinABytes = 512 * 1024;
constexpr std::int64_t kRowTasksBBytes = 192 * 1024;
// Row tasks over several blocks of k pack B for all of them at once, each thread all of it into
// its own part of the packing space, then run through every block with no barrier at all, when
// that whole packed B takes at most a kRowTasksWholeBL2Fraction of a core's L2 (kRowTasksWholeBBytes
// where the OS does not say) and the packing space holds one per thread. A transposed forward
// product of 32 rows (dense.hpp) has one sliver of B, which one thread packed per block of k
// while the other waited, eight barriers in all; packed once and shared, half of it crossed
// between the cores each call, and two threads ran the product slower than one. A prediction of
// 1024 rows of 784-128-10 (W^T, 400 KiB, packed by each thread) ran 1.08x faster, 4096 rows 1.04x
// (Xeon, 2 MiB of L2).
constexpr std::int64_t kRowTasksWholeBL2Fraction = 4;
constexpr std::int64_t kRowTasksWholeBBytes = 256 * 1024;
// A weight gradient (GemmProblem::weight_gradient) is shared by rows of W (row tasks, B packed
// whole per block of k) instead of columns when that packed B takes at most
// 1/kRowStepL2Fraction of a core's L2 (l2_cache_bytes). The forward product reads W by rows
// (slivers of W^T), each thread the same rows product after product (TaskQueue's two ends), so a
// thread then steps the rows it will read next step, in its own cache (plain SGD inside the
// micro-kernel; another optimizer's chunks of W, claimed the same way, right after), instead of
// a column strip of every row, half of which the other core must fetch back. Two threads on a
// Xeon with 2 MiB of L2 (the 400 KiB packed X batch of a 784-wide first layer fits a fifth):
// 784-256-256-10 at batch 128 1.04x faster, 784-128-10 at batch 32 1.22x. With a 512 KiB L2
// (Zen 3) the packed B would not stay, and nothing changes.
constexpr std::int64_t kRowStepL2Fraction = 4;

// The L2 cache of one core as the OS reports it (glibc's sysconf), 0 where unknown: then no
// choice depends on it.
inline std::int64_t l2_cache_bytes() {
#if defined(__linux__) && defined(_SC_LEVEL2_CACHE_SIZE)
    static const std::int64_t bytes = std::max<std::int64_t>(0, sysconf(_SC_LEVEL2_CACHE_SIZE));
    return bytes;
#else
    return 0;
#endif
}

// A one-row product (one sample predicted) transposes W in registers as it goes (W^T read in
// place, gemm_avx2.hpp: run_row_transposed): 16 shuffles and 8 loads for 8 fused multiply-adds
// of 8 lanes, about kOneRowWorkScale times a tile's cost per multiply-add, which its work counts
// when deciding to share it, though only while the team is awake (parallel.hpp, team_is_awake);
// it is cut into tasks of kOneRowTaskSlivers slivers (one call of the one-row kernel, whose
// chains then cover the FMA latency).
constexpr std::int64_t kOneRowWorkScale = 8;
constexpr std::int64_t kOneRowTaskSlivers = 4;

// The epilogue runs once per row of a task's part of a row block when that part fits in this
// much (in L2), else per tile while it is in L1: one call per row instead of one per row of
// every tile, which cost 20-40 % of a product whose tiles are cheap (K = 10) and ~10 % at
// K = 128. The values are the same either way.
constexpr std::int64_t kRowEpilogueBytes = 512 * 1024;

// A forward product of 32 or 64 rows, at most half as many as its outputs, is computed
// transposed (dense.hpp, dense_forward): C^T = W X^T, W's rows read in place and the few rows of
// X packed, instead of W^T packed (its transposes took a fifth of a 32 x 784 x 128 product), then
// C^T copied into C. The rows of X become the columns of C^T: a multiple of every kernel's NR
// (kMaxNR), with no padded column. 20, 24 and 48 rows, padded to 32 or 64 on AVX-512, ran 5-20 %
// slower than the direct product; 16 rows as fast.
constexpr std::int64_t kTransposedMaxRows = 64;

// Whether row tasks may pack a B of `elems` elements whole, once per thread (see
// kRowTasksWholeBL2Fraction): the planner's rule, which the transposed forward product relies on.
inline bool whole_b_fits(std::int64_t elems, std::int64_t elem_bytes, std::int64_t threads, std::int64_t b_capacity) {
    const std::int64_t l2 = l2_cache_bytes();
    const std::int64_t limit = l2 > 0 ? l2 / kRowTasksWholeBL2Fraction : kRowTasksWholeBBytes;
    return elems * elem_bytes <= limit && elems * threads <= b_capacity;
}

// Whether a transposed forward product of B rows of IN values may run (dense.hpp): B a
// multiple of kMaxNR up to kTransposedMaxRows, at most half of OUT, and X^T small enough for
// each thread to pack its own whole (whole_b_fits; B x K values, with at most one more per block
// of k for the blocks' rounding), without which two threads shared one packed per block of k,
// slower than one thread.
template <class T>
bool transposed_forward_pays(std::int64_t B, std::int64_t IN, std::int64_t OUT, std::int64_t b_capacity) {
    if (B <= 0 || B % kMaxNR != 0 || B > kTransposedMaxRows || 2 * B > OUT) return false;
    return whole_b_fits(B * (IN + (IN + kGemmKC - 1) / kGemmKC), sizeof(T), get_num_threads(), b_capacity);
}

// Packing space for products up to M x N (any K); allocate once, before any training step.
template <class T>
struct GemmScratch {
    AlignedBuffer<T> a, b;
    AlignedBuffer<T> transposed;  // C^T of a transposed forward product
    // Elements of the packed A (M rows) and packed B (N columns) buffers, overflow-checked.
    static std::int64_t a_elems(std::int64_t M) { return checked_mul(checked_add(M, kMaxMR), kGemmKC); }
    static std::int64_t b_elems(std::int64_t N) { return checked_mul(checked_add(N, kMaxNR), kGemmKC); }
    // Elements of C^T for a forward product of up to M rows and N outputs (none below kMaxNR rows:
    // never transposed).
    static std::int64_t transposed_elems(std::int64_t M, std::int64_t N) {
        return M < kMaxNR ? 0 : checked_mul(std::min(M, kTransposedMaxRows), N);
    }
    void reserve(std::int64_t M, std::int64_t N) {
        // every size checked before anything allocates
        const std::int64_t na = a_elems(M), nb = b_elems(N), nt = transposed_elems(M, N);
        AlignedBuffer<T>::bytes_for(na);
        AlignedBuffer<T>::bytes_for(nb);
        AlignedBuffer<T>::bytes_for(nt);
        a.reserve(na);
        b.reserve(nb);
        transposed.reserve(nt);
    }
};

// GCC vectorizes the generic kernel's k loop (across k, with transposes and spills: a quarter of
// the speed) unless told not to; the j loops are then vectorized as straight-line code.
#if defined(__GNUC__) && !defined(__clang__)
#define FASTMLP_NO_LOOP_VECTORIZE __attribute__((optimize("no-tree-loop-vectorize")))
#else
#define FASTMLP_NO_LOOP_VECTORIZE
#endif

// Portable micro-kernel: the same tile contract as the AVX2 ones (row i of the A sliver is
// a[i][k * ks]; accumulate adds to c; a step replaces the store by w -= lr * tile), in plain
// C++ the compiler vectorizes for the baseline ISA (separate multiply and add: no FMA is
// assumed).
template <class T>
struct GenericKernel {
    static constexpr int MR = 4, NR = 8;
    static constexpr bool has_pack_transposed = false;
    static constexpr bool has_run_row = false;  // a one-row product runs the MR-row kernel
    static constexpr bool has_run_row_transposed = false;
    FASTMLP_NO_LOOP_VECTORIZE static bool run(std::int64_t kc, const T* const* a, std::int64_t ks, const T* b, T* c,
                                              std::int64_t ldc, bool accumulate, const TileStep<T>* step) {
        T acc[MR][NR] = {};
        for (std::int64_t k = 0, o = 0; k < kc; ++k, o += ks, b += NR)
            for (int i = 0; i < MR; ++i)
                for (int j = 0; j < NR; ++j) acc[i][j] += a[i][o] * b[j];
        bool bad = false;
        for (int i = 0; i < MR; ++i)
            for (int j = 0; j < NR; ++j) {
                const T v = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
                if (step == nullptr) {
                    c[i * ldc + j] = v;
                    continue;
                }
                T& w = step->w[i * step->ld + j];
                w -= step->lr * v;
                bad |= !std::isfinite(w);
            }
        return bad;
    }
};

namespace detail {

// dst[k * MR + i] = A(m0 + i, pc + k); rows past M are zero.
template <class T, int MR>
void pack_a(T* dst, const View<T>& A, std::int64_t m0, std::int64_t M, std::int64_t pc, std::int64_t kc) {
    const std::int64_t mr = std::min<std::int64_t>(MR, M - m0);
    if (mr < MR) std::fill(dst, dst + kc * MR, T(0));
    if (A.rs == 1) {  // columns of A contiguous (da^T): each k is one short copy
        for (std::int64_t k = 0; k < kc; ++k) {
            const T* src = A.p + (pc + k) * A.cs + m0;
            for (std::int64_t i = 0; i < mr; ++i) dst[k * MR + i] = src[i];
        }
    } else {
        for (std::int64_t i = 0; i < mr; ++i) {
            const T* src = A.row(m0 + i) + pc * A.cs;
            for (std::int64_t k = 0; k < kc; ++k) dst[k * MR + i] = src[k * A.cs];
        }
    }
}

// dst[k * NR + j] = B(pc + k, n0 + j); columns past N are zero.
template <class T, class Kernel>
void pack_b(T* dst, const View<T>& B, std::int64_t n0, std::int64_t N, std::int64_t pc, std::int64_t kc) {
    constexpr int NR = Kernel::NR;
    const std::int64_t nr = std::min<std::int64_t>(NR, N - n0);
    if (nr < NR) std::fill(dst, dst + kc * NR, T(0));
    if (B.cs == 1) {   // rows of B contiguous (W in da W, h in da^T h)
        if (nr == NR)  // a constant size: inlined moves instead of a libc call per row
            for (std::int64_t k = 0; k < kc; ++k) std::memcpy(dst + k * NR, B.row(pc + k) + n0, sizeof(T) * NR);
        else
            for (std::int64_t k = 0; k < kc; ++k) std::memcpy(dst + k * NR, B.row(pc + k) + n0, sizeof(T) * nr);
        return;
    }
    if constexpr (Kernel::has_pack_transposed) {
        if (B.rs == 1 && nr == NR) {  // B = W^T in the forward product, a full sliver
            Kernel::pack_transposed(dst, B.p + n0 * B.cs + pc, B.cs, kc);
            return;
        }
    }
    // B = W^T (or any strided B): read each row of W once, contiguously
    for (std::int64_t j = 0; j < nr; ++j) {
        const T* src = B.p + (n0 + j) * B.cs + pc * B.rs;
        for (std::int64_t k = 0; k < kc; ++k) dst[k * NR + j] = src[k * B.rs];
    }
}

// Returns whether the SGD step made a weight NaN or infinite, or with bias_activation and
// e.nonfinite whether a product was NaN or infinite (false otherwise).
template <class T>
bool apply_epilogue(const EpilogueArgs<T>& e, T* c, std::int64_t ldc, std::int64_t m0, std::int64_t n0, std::int64_t mr,
                    std::int64_t nr) {
    bool bad = false;
    for (std::int64_t i = 0; i < mr; ++i) {
        T* row = c + i * ldc;
        switch (e.kind) {
            case Epilogue::store:
                break;
            case Epilogue::bias_activation:
                if (e.nonfinite != nullptr && !all_finite(row, nr)) bad = true;
                if (e.activated != nullptr) {  // the same functions, hence the same values, as two passes
                    bias_activation_forward(row, row, e.bias + n0, nr, Activation::identity);
                    activation_forward(e.activated + (m0 + i) * e.ld_activated + n0, row, nr, e.g);
                } else {
                    bias_activation_forward(row, row, e.bias + n0, nr, e.g);
                }
                break;
            case Epilogue::times_gprime:
                activation_backward(row, row, e.h + (m0 + i) * e.ldh + n0, nr, e.g);
                break;
            case Epilogue::sgd_step: {
                T* w = e.W + (m0 + i) * e.ldw + n0;
                for (std::int64_t j = 0; j < nr; ++j) {
                    w[j] -= e.lr * row[j];
                    bad |= !std::isfinite(w[j]);
                }
                break;
            }
        }
    }
    return bad;
}

inline std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

// The first of n items in part `part` of `parts` equal parts (sizes differing by at most one).
inline std::int64_t part_begin(std::int64_t n, std::int64_t part, std::int64_t parts) { return n * part / parts; }

// How a product is done, decided once before any thread starts (plan_gemm): the blocking, the
// operand packed, the threads and the tasks they claim. Rows of C go in m_blocks equal blocks of
// MR-tall slivers, columns in NR-wide slivers of B, k in k_blocks equal blocks; block kb of k is
// [K kb / k_blocks, K (kb + 1) / k_blocks).
struct GemmPlan {
    std::int64_t m_slivers = 0, n_slivers = 0, m_blocks = 0, k_blocks = 0;
    std::int64_t kc_max = 0;   // the longest block of k: the packing stride of a B sliver
    bool direct_a = false;     // A read in place by the micro-kernel, else packed per block of k
    bool kernel_step = false;  // the SGD step is taken inside the micro-kernel
    // Column tasks: task t computes slivers [n_slivers t / col_tasks, n_slivers (t + 1) / col_tasks)
    // of B (columns of C), so that no task is much longer than another (part_begin).
    std::int64_t col_tasks = 0;
    std::int64_t pack_task_slivers = 0;  // packed A: slivers of A packed per task
    std::int64_t pack_tasks = 0;
    // Shared by rows (A in place, B packed whole for each block of k before the row tasks):
    bool row_tasks = false;
    std::int64_t row_task_slivers = 0;  // slivers of A (MR rows each) per row task
    std::int64_t row_task_count = 0;
    std::int64_t b_pack_task_slivers = 0;  // slivers of B packed per packing task
    std::int64_t b_pack_tasks = 0;
    // Row tasks with B packed whole by each thread (at packed_b + thread * b_whole_elems, block
    // kb of k at kb * b_block_elems in that), then no barrier.
    bool b_whole = false;
    std::int64_t b_block_elems = 0, b_whole_elems = 0;
    int threads = 1;
};

// b_capacity: the elements the packing space for B holds.
template <class T, int MR, int NR>
GemmPlan plan_gemm(const GemmProblem<T>& p, std::int64_t b_capacity) {
    GemmPlan g;
    const std::int64_t M = p.M, N = p.N, K = p.K;
    g.m_slivers = ceil_div(M, MR);
    g.n_slivers = ceil_div(N, NR);
    // Row blocks of at most MC rows and of equal size (300 rows: 150 + 150, not 264 + 36), so
    // that an A block stays in L2 while the slivers of B pass.
    g.m_blocks = ceil_div(g.m_slivers, kGemmMC / MR);
    g.k_blocks = ceil_div(K, kGemmKC);
    g.kc_max = ceil_div(K, g.k_blocks);
    const std::int64_t a_stride = p.A.cs < 0 ? -p.A.cs : p.A.cs;
    g.direct_a = p.A.cs == 1 ? g.n_slivers * NR * static_cast<std::int64_t>(sizeof(T)) < kPackARowOfCBytes
                             : p.A.rows == nullptr &&
                                   a_stride * g.kc_max * static_cast<std::int64_t>(sizeof(T)) <= kDirectASpanBytes;
    g.kernel_step = p.epilogue.kind == Epilogue::sgd_step;
    // Without barriers (A read in place) a product pays only the fork and join to be shared. A
    // one-row product costs about kOneRowWorkScale times more per multiply-add than a tile.
    const std::int64_t share_work = M == 1 ? N * K * kOneRowWorkScale / kGemmDirectWorkScale
                                           : M * N * K / (g.direct_a ? kGemmDirectWorkScale : kGemmWorkScale);
    g.threads = threads_for(g.n_slivers, share_work);
    if (M == 1 && g.threads > 1 && !team_is_awake()) g.threads = 1;  // a wake-up costs more than it saves
    // Too few slivers of B to share by columns (an output layer of 10 classes is one sliver)
    // but rows enough: shared by rows (below), where it would otherwise run on one thread while
    // the others wait at the next barrier.
    const std::int64_t elem = static_cast<std::int64_t>(sizeof(T));
    const bool row_eligible =
        g.direct_a && !g.kernel_step && p.A.rows == nullptr && g.n_slivers * NR * g.kc_max * elem <= kRowTasksBBytes;
    const int by_rows = threads_wanted(g.m_slivers, share_work);
    const bool narrow =
        row_eligible && g.n_slivers < by_rows && g.m_slivers >= 2 * kGemmTasksPerThread * std::int64_t{by_rows};
    if (narrow) g.threads = threads_for(g.m_slivers, share_work);
    // With A in place, a task computes its columns through every block of k, its strip of C (the
    // rows of a block x the task's columns) staying in L2 meanwhile: at most this many slivers.
    // With A packed (the packing space holds one block of k) tasks are per block of k.
    const std::int64_t block_rows = std::min<std::int64_t>(M, kGemmMC);
    const std::int64_t strip_slivers =
        g.k_blocks == 1 || !g.direct_a
            ? g.n_slivers
            : std::max<std::int64_t>(1, kGemmCStripBytes / (block_rows * NR * static_cast<std::int64_t>(sizeof(T))));
    const std::int64_t tasks_wanted = g.threads == 1 ? 1 : g.threads * kGemmTasksPerThread;
    // Equal tasks, not tasks of ceil(n / tasks) slivers and a short last one: 49 slivers made 7
    // tasks of 7 for 2 threads, one of which ran 4 while the other waited through its last.
    g.col_tasks = std::min(g.n_slivers, std::max(tasks_wanted, ceil_div(g.n_slivers, strip_slivers)));
    // One row: tasks of kOneRowTaskSlivers, the slivers one call of the one-row kernel takes.
    if (M == 1)
        g.col_tasks =
            std::min(g.n_slivers, std::max<std::int64_t>(g.threads, ceil_div(g.n_slivers, kOneRowTaskSlivers)));
    g.pack_task_slivers = ceil_div(g.m_slivers, tasks_wanted);
    g.pack_tasks = g.direct_a ? 0 : ceil_div(g.m_slivers, g.pack_task_slivers);
    const bool step_by_rows = p.weight_gradient && g.direct_a && p.A.rows == nullptr &&
                              g.n_slivers * NR * g.kc_max * elem * kRowStepL2Fraction <= l2_cache_bytes();
    g.row_tasks = g.threads > 1 && ((row_eligible && (narrow || M * K * elem > kRowTasksMinABytes)) || step_by_rows) &&
                  g.m_slivers >= 2 * tasks_wanted;
    if (g.row_tasks) {
        g.row_task_slivers = ceil_div(g.m_slivers, 2 * tasks_wanted);  // small tasks: a busy core takes fewer
        g.row_task_count = ceil_div(g.m_slivers, g.row_task_slivers);
        g.b_pack_task_slivers = ceil_div(g.n_slivers, g.threads);
        g.b_pack_tasks = ceil_div(g.n_slivers, g.b_pack_task_slivers);
        g.b_block_elems = g.n_slivers * g.kc_max * NR;
        g.b_whole_elems = g.b_block_elems * g.k_blocks;
        g.b_whole = g.k_blocks > 1 && whole_b_fits(g.b_whole_elems, elem, g.threads, b_capacity);
    }
    return g;
}

// Packs slivers [is_lo, is_hi) of A for block kb of k into the shared packing space.
template <class T, int MR>
void pack_a_slivers(const GemmProblem<T>& p, const GemmPlan& g, T* packed_a, std::int64_t kb, std::int64_t is_lo,
                    std::int64_t is_hi) {
    const std::int64_t pc = p.K * kb / g.k_blocks, kc = p.K * (kb + 1) / g.k_blocks - pc;
    for (std::int64_t i = is_lo; i < is_hi; ++i) pack_a<T, MR>(packed_a + i * kc * MR, p.A, i * MR, p.M, pc, kc);
}

// One mr x nr tile (mr <= MR, nr <= NR) of C for one block of kc values of k: the micro-kernel
// stores it on the first block of k and adds to it on the others; an edge tile runs the same
// chain on a padded tile and copies its part. No SGD step (the caller takes that on full tiles).
template <class T, class Kernel>
void tile(std::int64_t kc, const T* const* a, std::int64_t ks, const T* b, T* c, std::int64_t ldc, std::int64_t mr,
          std::int64_t nr, bool first) {
    constexpr int MR = Kernel::MR, NR = Kernel::NR;
    if (mr == MR && nr == NR) {
        Kernel::run(kc, a, ks, b, c, ldc, !first, nullptr);
        return;
    }
    alignas(64) T tmp[MR * NR];
    Kernel::run(kc, a, ks, b, tmp, NR, false, nullptr);
    for (std::int64_t i = 0; i < mr; ++i) {
        T* row = c + i * ldc;
        const T* part = tmp + i * NR;
        if (first)
            std::memcpy(row, part, sizeof(T) * nr);
        else
            for (std::int64_t j = 0; j < nr; ++j) row[j] += part[j];
    }
}

// The macro-kernel of row tasks: block kb of k for the rows of slivers [is_lo, is_hi) of A (read
// in place) and every column, B packed already for this block; after the last block, the
// epilogue, one call per sliver of rows, or the SGD step tile by tile (inside the micro-kernel on
// full tiles, as macro_kernel takes it). The same tiles as macro_kernel, the same chain in each.
template <class T, class Kernel>
bool rows_macro_kernel(const GemmProblem<T>& p, const GemmPlan& g, const T* packed_b, std::int64_t kb,
                       std::int64_t is_lo, std::int64_t is_hi) {
    constexpr int MR = Kernel::MR, NR = Kernel::NR;
    const std::int64_t pc = p.K * kb / g.k_blocks, kc = p.K * (kb + 1) / g.k_blocks - pc;
    const bool first = kb == 0, last = kb + 1 == g.k_blocks;
    bool bad = false;
    // Sliver of B outermost: it stays in L1 while the task's rows of A (a few dozen, in L2) pass.
    for (std::int64_t jb = 0; jb < g.n_slivers; ++jb) {
        const std::int64_t n0 = jb * NR, nr = std::min<std::int64_t>(NR, p.N - n0);
        const T* b = packed_b + jb * g.kc_max * NR;
        for (std::int64_t is = is_lo; is < is_hi; ++is) {
            const std::int64_t m0 = is * MR, mr = std::min<std::int64_t>(MR, p.M - m0);
            const T* a[MR];  // rows past M repeat row m0: computed, never stored
            for (int i = 0; i < MR; ++i) a[i] = p.A.row(m0 + (i < mr ? i : 0)) + pc * p.A.cs;
            T* c = p.C + m0 * p.ldc + n0;
            if (last && g.kernel_step && mr == MR && nr == NR) {  // the SGD step from registers
                const EpilogueArgs<T>& e = p.epilogue;
                const TileStep<T> step{e.W + m0 * e.ldw + n0, e.ldw, e.lr};
                bad |= Kernel::run(kc, a, p.A.cs, b, c, p.ldc, !first, &step);
                continue;
            }
            tile<T, Kernel>(kc, a, p.A.cs, b, c, p.ldc, mr, nr, first);
            if (last && g.kernel_step) bad |= apply_epilogue(p.epilogue, c, p.ldc, m0, n0, mr, nr);
        }
    }
    if (last && !g.kernel_step)
        for (std::int64_t is = is_lo; is < is_hi; ++is) {
            const std::int64_t m0 = is * MR, mr = std::min<std::int64_t>(MR, p.M - m0);
            bad |= apply_epilogue(p.epilogue, p.C + m0 * p.ldc, p.ldc, m0, 0, mr, p.N);
        }
    return bad;
}

// The macro-kernel: block kb of k for the columns of slivers [j_lo, j_hi) of C and all its
// rows. Packs those slivers of B (sliver j at j * kc_max * NR: tasks never share one), runs the
// micro-kernel on every tile (storing it on the first block of k, adding to C on the others),
// and after the last block the epilogue. Returns whether an SGD step made a weight NaN or
// infinite. Each tile's values depend only on the tile, never on who runs it or when.
template <class T, class Kernel>
bool macro_kernel(const GemmProblem<T>& p, const GemmPlan& g, const T* packed_a, T* packed_b, std::int64_t kb,
                  std::int64_t j_lo, std::int64_t j_hi) {
    constexpr int MR = Kernel::MR, NR = Kernel::NR;
    const std::int64_t M = p.M, N = p.N;
    const std::int64_t pc = p.K * kb / g.k_blocks, kc = p.K * (kb + 1) / g.k_blocks - pc;
    const bool first = kb == 0, last = kb + 1 == g.k_blocks;
    const std::int64_t n_lo = j_lo * NR, n_hi = std::min(N, j_hi * NR);
    if constexpr (Kernel::has_run_row) {
        if (M == 1) {  // one row (one sample predicted): the one-row kernel, the same chain per element
            const T* a0 = g.direct_a ? p.A.row(0) + pc * p.A.cs : packed_a;
            const std::int64_t ks = g.direct_a ? p.A.cs : MR;
            constexpr int RS = Kernel::row_slivers;
            alignas(64) T tmp[RS * NR];
            for (std::int64_t jb = j_lo; jb < j_hi; jb += RS) {
                const int n = static_cast<int>(std::min<std::int64_t>(RS, j_hi - jb));
                bool in_place = false;  // B = W^T of full slivers: W's rows read as they are, nothing packed
                if constexpr (Kernel::has_run_row_transposed) {
                    if (p.B.rs == 1 && p.B.rows == nullptr && (jb + n) * NR <= N) {
                        Kernel::run_row_transposed(kc, a0, ks, p.B.p + jb * NR * p.B.cs + pc, p.B.cs, n, tmp);
                        in_place = true;
                    }
                }
                if (!in_place) {
                    for (int s = 0; s < n; ++s)
                        pack_b<T, Kernel>(packed_b + (jb + s) * g.kc_max * NR, p.B, (jb + s) * NR, N, pc, kc);
                    Kernel::run_row(kc, a0, ks, packed_b + jb * g.kc_max * NR, g.kc_max * NR, n, tmp);
                }
                const std::int64_t n0 = jb * NR, cols = std::min(N, (jb + n) * NR) - n0;
                T* c = p.C + n0;
                if (first)
                    std::memcpy(c, tmp, sizeof(T) * cols);
                else  // c + chain, as the MR-row kernel adds a later block of k
                    for (std::int64_t j = 0; j < cols; ++j) c[j] += tmp[j];
            }
            return last && apply_epilogue(p.epilogue, p.C + n_lo, p.ldc, 0, n_lo, 1, n_hi - n_lo);
        }
    }
    bool bad = false;
    for (std::int64_t ib = 0; ib < g.m_blocks; ++ib) {
        const std::int64_t is_begin = g.m_slivers * ib / g.m_blocks, is_end = g.m_slivers * (ib + 1) / g.m_blocks;
        const std::int64_t m_lo = is_begin * MR, m_hi = std::min(M, is_end * MR);
        // The SGD step is taken inside the micro-kernel on every full tile, from registers.
        const bool row_epilogue =
            !g.kernel_step && (m_hi - m_lo) * (n_hi - n_lo) * static_cast<std::int64_t>(sizeof(T)) <= kRowEpilogueBytes;
        for (std::int64_t jb = j_lo; jb < j_hi; ++jb) {
            const std::int64_t n0 = jb * NR, nr = std::min<std::int64_t>(NR, N - n0);
            T* b = packed_b + jb * g.kc_max * NR;
            if (ib == 0) pack_b<T, Kernel>(b, p.B, n0, N, pc, kc);  // packed just before its first use, still in L1
            for (std::int64_t is = is_begin; is < is_end; ++is) {
                const std::int64_t m0 = is * MR, mr = std::min<std::int64_t>(MR, M - m0);
                T* c = p.C + m0 * p.ldc + n0;
                const T* a[MR];
                std::int64_t ks;
                if (g.direct_a) {  // rows past M repeat row m0: computed, never stored
                    for (int i = 0; i < MR; ++i) a[i] = p.A.row(m0 + (i < mr ? i : 0)) + pc * p.A.cs;
                    ks = p.A.cs;
                } else {
                    for (int i = 0; i < MR; ++i) a[i] = packed_a + is * kc * MR + i;
                    ks = MR;
                }
                if (mr == MR && nr == NR && last && g.kernel_step) {
                    const EpilogueArgs<T>& e = p.epilogue;
                    const TileStep<T> step{e.W + m0 * e.ldw + n0, e.ldw, e.lr};
                    bad |= Kernel::run(kc, a, ks, b, c, p.ldc, !first, &step);
                    continue;
                }
                tile<T, Kernel>(kc, a, ks, b, c, p.ldc, mr, nr, first);
                if (last && !row_epilogue) bad |= apply_epilogue(p.epilogue, c, p.ldc, m0, n0, mr, nr);
            }
        }
        if (last && row_epilogue)
            bad |= apply_epilogue(p.epilogue, p.C + m_lo * p.ldc + n_lo, p.ldc, m_lo, n_lo, m_hi - m_lo, n_hi - n_lo);
    }
    return bad;
}

// The driver: only the loops over tasks and the synchronisation. Threads claim tasks from a
// TaskQueue (parallel.hpp) as they finish the previous one. With A read in place a task is a
// group of columns through every block of k, and the product has no barrier at all, only the
// fork and join. With A packed, each block of k is two phases, separated by barriers: packing
// A (shared by all tasks), then the column tasks, which must finish before A is rewritten.
// Work between barriers runs inside error.run(): a throw is caught in its own thread, the
// thread still reaches every barrier (skipping a barrier would deadlock the others), and all
// threads skip the remaining work. Nothing here throws today; this keeps it that way for an
// epilogue that one day might.
template <class T, class Kernel>
void gemm_with(const GemmProblem<T>& p, GemmScratch<T>& s) {
    constexpr int MR = Kernel::MR, NR = Kernel::NR;
    if (p.M == 0 || p.N == 0) return;
    if (p.K == 0) {  // an empty sum: zeros, then the epilogue as usual
        for (std::int64_t i = 0; i < p.M; ++i) std::fill(p.C + i * p.ldc, p.C + i * p.ldc + p.N, T(0));
        if (apply_epilogue(p.epilogue, p.C, p.ldc, 0, 0, p.M, p.N) && p.epilogue.nonfinite)
            p.epilogue.nonfinite->store(true, std::memory_order_relaxed);
        return;
    }
    const GemmPlan g = plan_gemm<T, MR, NR>(p, s.b.size());
    T* packed_a = s.a.data();
    T* packed_b = s.b.data();
    TaskQueue queue;
    FirstException error;
    run_team(g.threads, [&](TeamClock* busy) {  // busy: set on the calling thread (parallel.hpp)
        bool bad = false;                       // this thread's steps made a weight NaN or infinite
        std::int64_t task;
        auto columns = [&](std::int64_t kb_lo, std::int64_t kb_hi) {
            timed(busy, [&] {
                error.run([&] {
                    const std::int64_t j_lo = part_begin(g.n_slivers, task, g.col_tasks);
                    const std::int64_t j_hi = part_begin(g.n_slivers, task + 1, g.col_tasks);
                    for (std::int64_t kb = kb_lo; kb < kb_hi; ++kb)
                        bad |= macro_kernel<T, Kernel>(p, g, packed_a, packed_b, kb, j_lo, j_hi);
                });
            });
        };
        if (g.row_tasks && g.b_whole) {  // each thread packs all of B, then claims row tasks
#ifdef _OPENMP
            T* my_b = packed_b + omp_get_thread_num() * g.b_whole_elems;
#else
            T* my_b = packed_b;
#endif
            timed(busy, [&] {
                error.run([&] {
                    for (std::int64_t kb = 0; kb < g.k_blocks; ++kb) {
                        const std::int64_t pc = p.K * kb / g.k_blocks, kc = p.K * (kb + 1) / g.k_blocks - pc;
                        for (std::int64_t jb = 0; jb < g.n_slivers; ++jb)
                            pack_b<T, Kernel>(my_b + kb * g.b_block_elems + jb * g.kc_max * NR, p.B, jb * NR, p.N, pc,
                                              kc);
                    }
                });
            });
            while (queue.claim(0, g.row_task_count, task))
                timed(busy, [&] {
                    error.run([&] {
                        const std::int64_t lo = task * g.row_task_slivers;
                        const std::int64_t hi = std::min(g.m_slivers, lo + g.row_task_slivers);
                        for (std::int64_t kb = 0; kb < g.k_blocks; ++kb)
                            bad |= rows_macro_kernel<T, Kernel>(p, g, my_b + kb * g.b_block_elems, kb, lo, hi);
                    });
                });
        } else if (g.row_tasks) {  // per block of k: pack all of B, then the row tasks, between barriers
            std::int64_t phase = 0;
            for (std::int64_t kb = 0; kb < g.k_blocks; ++kb) {
                const std::int64_t pc = p.K * kb / g.k_blocks, kc = p.K * (kb + 1) / g.k_blocks - pc;
                while (queue.claim(phase, g.b_pack_tasks, task))
                    timed(busy, [&] {
                        error.run([&] {
                            const std::int64_t lo = task * g.b_pack_task_slivers;
                            const std::int64_t hi = std::min(g.n_slivers, lo + g.b_pack_task_slivers);
                            for (std::int64_t jb = lo; jb < hi; ++jb)
                                pack_b<T, Kernel>(packed_b + jb * g.kc_max * NR, p.B, jb * NR, p.N, pc, kc);
                        });
                    });
                phase += g.b_pack_tasks;
#ifdef _OPENMP
#pragma omp barrier  // B is packed
#endif
                while (queue.claim(phase, g.row_task_count, task))
                    timed(busy, [&] {
                        error.run([&] {
                            const std::int64_t lo = task * g.row_task_slivers;
                            const std::int64_t hi = std::min(g.m_slivers, lo + g.row_task_slivers);
                            bad |= rows_macro_kernel<T, Kernel>(p, g, packed_b, kb, lo, hi);
                        });
                    });
                phase += g.row_task_count;
#ifdef _OPENMP
                if (kb + 1 < g.k_blocks) {
#pragma omp barrier  // the packed B is rewritten for the next block of k
                }
#endif
            }
        } else if (g.direct_a) {
            while (queue.claim(0, g.col_tasks, task)) columns(0, g.k_blocks);
        } else {
            std::int64_t phase = 0;  // the first ticket of the current phase
            for (std::int64_t kb = 0; kb < g.k_blocks; ++kb) {
                while (queue.claim(phase, g.pack_tasks, task))
                    timed(busy, [&] {
                        error.run([&] {
                            const std::int64_t lo = task * g.pack_task_slivers;
                            const std::int64_t hi = std::min(g.m_slivers, lo + g.pack_task_slivers);
                            pack_a_slivers<T, MR>(p, g, packed_a, kb, lo, hi);
                        });
                    });
                phase += g.pack_tasks;
#ifdef _OPENMP
#pragma omp barrier  // A is packed
#endif
                while (queue.claim(phase, g.col_tasks, task)) columns(kb, kb + 1);
                phase += g.col_tasks;
#ifdef _OPENMP
                if (kb + 1 < g.k_blocks) {
#pragma omp barrier  // the packed A is rewritten for the next block of k
                }
#endif
            }
        }
        if (bad && p.epilogue.nonfinite) p.epilogue.nonfinite->store(true, std::memory_order_relaxed);
    });
    error.rethrow();
}

}  // namespace detail

// Runs the product with the micro-kernel of the active instruction set. Throws only what a
// kernel or epilogue throws (none do today), after every thread has stopped; s must have been
// reserved for at least M x N.
// On the AVX-512 path, a product of one row or narrower than half a 512-bit sliver runs the AVX2
// kernel: one row has the one-row kernels (bound by reading B, not by the vector width), and a
// 10-wide output layer would compute a 32-wide sliver for 10 columns instead of 16. The two
// kernels compute the same chain per element, so which one runs changes no bit.
template <class T>
void gemm(const GemmProblem<T>& p, GemmScratch<T>& s) {
#ifdef FASTMLP_HAVE_AVX512_KERNELS
    if (active_isa() == Isa::avx512 && p.M > 1 && p.N > Avx512Kernel<T>::NR / 2)
        return detail::gemm_with<T, Avx512Kernel<T>>(p, s);
#endif
#ifdef FASTMLP_HAVE_AVX2_KERNELS
    if (runs_avx2(active_isa())) {
        if constexpr (sizeof(T) == 4)
            return detail::gemm_with<T, Avx2KernelF32>(p, s);
        else
            return detail::gemm_with<T, Avx2KernelF64>(p, s);
    }
#endif
    detail::gemm_with<T, GenericKernel<T>>(p, s);
}

}  // namespace fastmlp
