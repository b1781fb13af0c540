// Thread control for the kernels: one process-wide thread count and a static-schedule
// parallel loop over independent tasks. Deliberately no reductions across threads: every
// kernel gives each output element a single owner, so results never depend on the count.
// An exception thrown inside a parallel region is caught there and rethrown after it (an
// exception escaping an OpenMP region would be std::terminate).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fastmlp {

constexpr bool has_openmp() {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
}

namespace detail {
// 0 means "not chosen yet": use the OpenMP default (OMP_NUM_THREADS or the core count).
inline std::atomic<int>& requested_threads() {
    static std::atomic<int> n{0};
    return n;
}
}  // namespace detail

inline int get_num_threads() {
#ifdef _OPENMP
    const int n = detail::requested_threads().load(std::memory_order_relaxed);
    return n > 0 ? n : omp_get_max_threads();
#else
    return 1;
#endif
}

// n >= 1; callers validate. A serial build keeps 1 whatever is asked.
inline void set_num_threads(int n) { detail::requested_threads().store(n, std::memory_order_relaxed); }

// Below this many multiply-adds a fork/join costs more than it saves (a few microseconds
// per parallel region on this class of machine), so the loop stays on the calling thread.
constexpr std::int64_t kMinWorkPerThread = 32 * 1024;

// How many threads are worth waking for `n_tasks` independent tasks totalling `work`
// multiply-adds: never more than the tasks, and 1 when the work is too small to share.
inline int threads_for(std::int64_t n_tasks, std::int64_t work) {
#ifdef _OPENMP
    const std::int64_t by_work = std::max<std::int64_t>(1, work / kMinWorkPerThread);
    return static_cast<int>(std::max<std::int64_t>(
        1, std::min<std::int64_t>({static_cast<std::int64_t>(get_num_threads()), n_tasks, by_work})));
#else
    (void)n_tasks;
    (void)work;
    return 1;
#endif
}

// Carries the first exception out of a parallel region: threads call run(f) around their
// work; after the region, rethrow() on the calling thread. Once one thread failed, the others
// skip work they have not started (failed() is a relaxed read: a task or two more is harmless).
class FirstException {
public:
    template <class F>
    void run(F&& f) noexcept {
        if (failed()) return;
        try {
            f();
        } catch (...) {
            std::lock_guard<std::mutex> lock(mutex_);
            if (!error_) error_ = std::current_exception();
            failed_.store(true, std::memory_order_relaxed);
        }
    }
    bool failed() const { return failed_.load(std::memory_order_relaxed); }
    void rethrow() {
        if (error_) std::rethrow_exception(error_);
    }

private:
    std::atomic<bool> failed_{false};
    std::mutex mutex_;
    std::exception_ptr error_;
};

// Calls task(t) for t in [0, n_tasks). `work` is the total multiply-add count, used only to
// decide how many threads are worth waking. Tasks must write disjoint outputs. If tasks throw,
// the first exception is rethrown once every thread has stopped; tasks not yet started by
// then are skipped.
template <class Task>
void parallel_for(std::int64_t n_tasks, std::int64_t work, Task&& task) {
#ifdef _OPENMP
    const int threads = threads_for(n_tasks, work);
    if (threads > 1) {
        FirstException error;
#pragma omp parallel for schedule(static) num_threads(threads)
        for (std::int64_t t = 0; t < n_tasks; ++t) error.run([&] { task(t); });
        error.rethrow();
        return;
    }
#endif
    for (std::int64_t t = 0; t < n_tasks; ++t) task(t);
}

// Calls body(i) for i in [0, n), an element-wise loop shared between threads in chunks of
// 16 Ki elements (the SGD and optimizer updates): each element is written by one call, so any
// partition gives the same bits.
template <class Body>
void parallel_for_elements(std::int64_t n, Body&& body) {
    constexpr std::int64_t kChunk = 16 * 1024;
    parallel_for((n + kChunk - 1) / kChunk, n, [&](std::int64_t c) {
        const std::int64_t end = std::min(n, (c + 1) * kChunk);
        for (std::int64_t i = c * kChunk; i < end; ++i) body(i);
    });
}

}  // namespace fastmlp
