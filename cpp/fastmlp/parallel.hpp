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
#include <chrono>
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

inline std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// Whether sharing work pays right now. When another process holds a core, the OS runs the
// thread there in turns of milliseconds, and a shared product or loop (whose end, and whose
// barriers, wait for every thread) then costs the calling thread a wait of up to a turn each
// time: with one other CPU-bound process, 2 threads ran at half the speed of 1. So when the
// calling thread spends more than kIdleShare of a shared region (and more than kIdleFloorNs)
// waiting, and longer than kTaskWaits of its own longest task (kStrikes times in a row),
// everything runs on the calling thread alone for a pause, then tries
// sharing again; the pause doubles, up to kSoloMaxNs, while sharing keeps failing, and returns
// to kSoloMinNs once sharing has gone well for kGoodResetNs. Only the thread count changes, and
// no result depends on it (each output element has one fixed chain of operations).
class ShareGovernor {
public:
    static constexpr std::int64_t kIdleFloorNs = 100'000;
    static constexpr double kIdleShare = 0.3;
    // Threads claim tasks as they finish the last, so on an idle machine the calling thread
    // waits at most for one task the other thread began just before the queue ran dry: as long
    // as its own longest task, or a little longer. A float64 weight gradient of 784-256 (7
    // column tasks of ~110 us for 2 threads, so one thread runs 4) made it wait ~30 % of the
    // region on an idle Xeon, which stopped sharing for ever longer pauses: two threads ran it
    // no faster than one (66 against 127 GFLOP/s with the governor off). A thread that the OS
    // took off its core keeps the other waiting for a time slice, milliseconds, far longer.
    static constexpr double kTaskWaits = 2.0;
    // One long wait is enough: under load each failed attempt to share costs a wait of several
    // milliseconds, so waiting for a second one cost as much as the pause saves.
    static constexpr int kStrikes = 1;
    static constexpr std::int64_t kSoloMinNs = 20'000'000, kSoloMaxNs = 320'000'000, kGoodResetNs = 100'000'000;

    static ShareGovernor& instance() {
        static ShareGovernor governor;
        return governor;
    }
    bool solo() const {
        return enabled_.load(std::memory_order_relaxed) && now_ns() < solo_until_.load(std::memory_order_relaxed);
    }
    // A shared region from `start` to `end` in which the calling thread worked `busy` ns, its
    // longest task taking `longest` ns.
    void report(std::int64_t start, std::int64_t end, std::int64_t busy, std::int64_t longest) {
        const std::int64_t idle = end - start - busy;
        if (idle > kIdleFloorNs && static_cast<double>(idle) > kIdleShare * static_cast<double>(end - start) &&
            static_cast<double>(idle) > kTaskWaits * static_cast<double>(longest)) {
            good_since_.store(-1, std::memory_order_relaxed);
            if (strikes_.fetch_add(1, std::memory_order_relaxed) + 1 < kStrikes) return;
            strikes_.store(0, std::memory_order_relaxed);
            const std::int64_t pause = pause_ns_.load(std::memory_order_relaxed);
            solo_until_.store(end + pause, std::memory_order_relaxed);
            pause_ns_.store(std::min(2 * pause, kSoloMaxNs), std::memory_order_relaxed);
            return;
        }
        strikes_.store(0, std::memory_order_relaxed);
        const std::int64_t since = good_since_.load(std::memory_order_relaxed);
        if (since < 0)
            good_since_.store(start, std::memory_order_relaxed);
        else if (end - since > kGoodResetNs)
            pause_ns_.store(kSoloMinNs, std::memory_order_relaxed);
    }
    // Test hook: turn the governor off (every product shares as threads_wanted says) or on, and
    // forget the history either way. Returns whether it was on.
    bool enable(bool on) {
        reset();
        return enabled_.exchange(on, std::memory_order_relaxed);
    }

private:
    void reset() {
        solo_until_.store(0, std::memory_order_relaxed);
        pause_ns_.store(kSoloMinNs, std::memory_order_relaxed);
        strikes_.store(0, std::memory_order_relaxed);
        good_since_.store(-1, std::memory_order_relaxed);
    }

    std::atomic<bool> enabled_{true};
    std::atomic<std::int64_t> solo_until_{0}, pause_ns_{kSoloMinNs}, good_since_{-1};
    std::atomic<int> strikes_{0};
};

// How many threads `n_tasks` independent tasks totalling `work` multiply-adds could use:
// never more than the tasks, and 1 when the work is too small to share.
inline int threads_wanted(std::int64_t n_tasks, std::int64_t work) {
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

// How many threads are worth waking for them now: threads_wanted, or 1 while sharing does not
// pay (ShareGovernor).
inline int threads_for(std::int64_t n_tasks, std::int64_t work) {
    const int n = threads_wanted(n_tasks, work);
    return n > 1 && ShareGovernor::instance().solo() ? 1 : n;
}

namespace detail {
// When a team last ran, or a product last wanted one (team_is_awake), in now_ns() time.
inline std::atomic<std::int64_t>& last_team_use_ns() {
    static std::atomic<std::int64_t> ns{0};
    return ns;
}
}  // namespace detail

// After a parallel region the team's threads spin for a while (milliseconds; libgomp about 300000
// pauses, LLVM's runtime 200 ms) before they sleep, and waking a sleeping one takes tens of
// microseconds. A product so small that its share saves only a few microseconds (one predicted
// row: 784 x 128 saves about 3 us) is shared only while the team is likely awake: when a team ran,
// or such a product wanted one, less than kTeamAwakeNs ago. Predicting one row every 10 ms, the
// sharing build took 39 us a call against 19 us alone; back to back, 9.0 us against 10.8 us.
constexpr std::int64_t kTeamAwakeNs = 1'000'000;

// Whether the team is likely awake now (see kTeamAwakeNs); notes that a product wanted it.
inline bool team_is_awake() {
    const std::int64_t now = now_ns();
    return now - detail::last_team_use_ns().exchange(now, std::memory_order_relaxed) < kTeamAwakeNs;
}

// The calling thread's working time in a shared region, and its longest task (timed()).
struct TeamClock {
    std::int64_t busy = 0, longest = 0;
};

// Runs body(clock) on a team of `threads` (1: on the calling thread alone). On the calling
// thread of a team clock points to the TeamClock that the body's tasks are timed on (timed());
// elsewhere it is null. After the team, the calling thread's waiting time goes to the governor.
template <class Body>
void run_team(int threads, Body&& body) {
#ifdef _OPENMP
    if (threads > 1) {
        TeamClock clock;
        const std::int64_t start = now_ns();
#pragma omp parallel num_threads(threads)
        body(omp_get_thread_num() == 0 ? &clock : nullptr);
        const std::int64_t end = now_ns();
        detail::last_team_use_ns().store(end, std::memory_order_relaxed);
        ShareGovernor::instance().report(start, end, clock.busy, clock.longest);
        return;
    }
#else
    (void)threads;
#endif
    body(static_cast<TeamClock*>(nullptr));
}

// f(), one task, timed on *clock when clock is set.
template <class F>
void timed(TeamClock* clock, F&& f) {
    if (clock == nullptr) return f();
    const std::int64_t t = now_ns();
    f();
    const std::int64_t took = now_ns() - t;
    clock->busy += took;
    clock->longest = std::max(clock->longest, took);
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
// holding the others up. Even-numbered threads take a phase's tasks from its first one up,
// odd-numbered ones from its last one down, so that with two threads of equal speed each takes
// about the same half of every product in every step: its columns of W and of the activations
// then stay in its own core's cache from one step to the next. With every thread claiming from
// the front, which thread took which task varied, and with it where the data lay: the input
// gradient of a 784-256-256-10 step at batch 128 ran no faster on two threads than on one, its
// time going to lines moving between the cores.
// The tickets of all phases are numbered in one sequence (a phase of n tasks starting at ticket
// `begin` owns [begin, begin + n)). A thread leaves a phase only once all its tasks are claimed,
// so a claim that finds the state of an earlier phase starts the new one. Every thread walks the
// same phases in the same order, and a phase that must not start before the previous one is
// finished gets a barrier from the caller. Claiming costs one compare-and-swap per task.
class TaskQueue {
public:
    // True with `task` in [0, n) for the next unclaimed task of the phase [begin, begin + n);
    // false once all of them are claimed.
    bool claim(std::int64_t begin, std::int64_t n, std::int64_t& task) { return claim(begin, n, task, from_back()); }

    // The same, taking from the phase's last unclaimed task when from_back (and n fits the
    // count's bits), else from its first.
    bool claim(std::int64_t begin, std::int64_t n, std::int64_t& task, bool from_back) {
        from_back = from_back && n <= kBackMask;
        std::uint64_t state = state_.load(std::memory_order_relaxed);
        for (;;) {
            std::int64_t front = static_cast<std::int64_t>(state >> kBackBits);
            std::int64_t back = static_cast<std::int64_t>(state & kBackMask);
            if (front < begin) {  // the previous phase's state: that phase is all claimed
                front = begin;
                back = 0;
            }
            const std::int64_t taken = front - begin + back;
            if (taken >= n) return false;
            const std::int64_t raw = from_back ? n - 1 - back : front - begin;
            const std::uint64_t next = pack(from_back ? front : front + 1, from_back ? back + 1 : back);
            if (state_.compare_exchange_weak(state, next, std::memory_order_relaxed)) {
                task = ordered(raw, n);
                return true;
            }
        }
    }

private:
    static constexpr int kBackBits = 24;
    static constexpr std::int64_t kBackMask = (std::int64_t{1} << kBackBits) - 1;
    static std::uint64_t pack(std::int64_t front, std::int64_t back) {
        return (static_cast<std::uint64_t>(front) << kBackBits) | static_cast<std::uint64_t>(back);
    }
    static bool from_back() {
#ifdef _OPENMP
        return (omp_get_thread_num() & 1) != 0;
#else
        return false;
#endif
    }
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
    // The front ticket (the next task from the front, counted in the one sequence of all
    // phases) above kBackBits bits of tasks claimed from the back of the current phase.
    alignas(64) std::atomic<std::uint64_t> state_{0};
    const ClaimOrder order_ = get_claim_order();
};

// Calls task(t) once for each t in [0, n_tasks), the threads claiming tasks as they finish
// (TaskQueue): run_tasks on `threads`, parallel_for on as many as threads_for() finds worth
// waking for `work`, the total multiply-add count. Tasks must write disjoint outputs. If tasks throw, the first
// exception is rethrown once every thread has stopped; tasks not yet started by then are skipped.
template <class Task>
void run_tasks(int threads, std::int64_t n_tasks, Task&& task) {
    TaskQueue queue;
    FirstException error;
    run_team(threads, [&](TeamClock* busy) {
        std::int64_t t;
        while (queue.claim(0, n_tasks, t)) timed(busy, [&] { error.run([&] { task(t); }); });
    });
    error.rethrow();
}

template <class Task>
void parallel_for(std::int64_t n_tasks, std::int64_t work, Task&& task) {
    run_tasks(threads_for(n_tasks, work), n_tasks, task);
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
