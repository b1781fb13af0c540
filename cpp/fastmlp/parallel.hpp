// Thread control for the kernels: one process-wide thread count, a queue from which threads
// claim numbered tasks as they finish the previous one (dynamic division of work), and the
// parallel loop built on it. Deliberately no reductions across threads: every kernel gives each
// output element a single owner and a fixed chain of operations, so results depend neither on
// the count nor on which thread ran which task, nor in what order.
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

// The order in which a TaskQueue hands out the tasks of a phase: in increasing order (always,
// outside the tests), decreasing, or the even-numbered ones first, then the odd. A private
// test hook (_core._set_claim_order) changes it, process-wide, to show that no result depends on
// it; nothing else does.
enum class ClaimOrder : int { forward = 0, reversed = 1, interleaved = 2 };

namespace detail {
inline std::atomic<int>& claim_order() {
    static std::atomic<int> order{static_cast<int>(ClaimOrder::forward)};
    return order;
}
}  // namespace detail

inline void set_claim_order(ClaimOrder order) {
    detail::claim_order().store(static_cast<int>(order), std::memory_order_relaxed);
}
inline ClaimOrder get_claim_order() {
    return static_cast<ClaimOrder>(detail::claim_order().load(std::memory_order_relaxed));
}

// Hands out the tasks of consecutive phases, one at a time, to whichever thread asks first: a
// thread slowed down (sharing its core with another process) takes fewer tasks instead of
// holding the others up. The tickets of all phases are numbered in one sequence (a phase of n
// tasks starting at ticket `begin` owns [begin, begin + n)), and a claim never takes a ticket
// past its phase's end, so no reset is needed between phases: every thread walks the same phases
// in the same order, and a phase that must not start before the previous one is finished gets a
// barrier from the caller. Claiming costs one compare-and-swap per task.
class TaskQueue {
public:
    // True with `task` in [0, n) for the next unclaimed task of the phase [begin, begin + n);
    // false once all of them are claimed.
    bool claim(std::int64_t begin, std::int64_t n, std::int64_t& task) {
        const std::int64_t end = begin + n;
        std::int64_t ticket = next_.load(std::memory_order_relaxed);
        while (ticket < end) {
            if (next_.compare_exchange_weak(ticket, ticket + 1, std::memory_order_relaxed)) {
                task = ordered(ticket - begin, n);
                return true;
            }
        }
        return false;
    }

private:
    std::int64_t ordered(std::int64_t i, std::int64_t n) const {
        switch (order_) {
            case ClaimOrder::forward:
                break;
            case ClaimOrder::reversed:
                return n - 1 - i;
            case ClaimOrder::interleaved: {
                const std::int64_t evens = (n + 1) / 2;
                return i < evens ? 2 * i : 2 * (i - evens) + 1;
            }
        }
        return i;
    }
    alignas(64) std::atomic<std::int64_t> next_{0};
    const ClaimOrder order_ = get_claim_order();
};

// Calls task(t) once for each t in [0, n_tasks), the threads claiming tasks as they finish
// (TaskQueue). `work` is the total multiply-add count, used only to decide how many threads are
// worth waking. Tasks must write disjoint outputs. If tasks throw, the first exception is
// rethrown once every thread has stopped; tasks not yet started by then are skipped.
template <class Task>
void parallel_for(std::int64_t n_tasks, std::int64_t work, Task&& task) {
    TaskQueue queue;
    FirstException error;
    auto body = [&] {
        std::int64_t t;
        while (queue.claim(0, n_tasks, t)) error.run([&] { task(t); });
    };
#ifdef _OPENMP
    const int threads = threads_for(n_tasks, work);
    if (threads > 1) {
#pragma omp parallel num_threads(threads)
        body();
        error.rethrow();
        return;
    }
#else
    (void)work;
#endif
    body();
    error.rethrow();
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
