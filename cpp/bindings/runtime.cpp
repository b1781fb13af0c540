// The process-wide side of fastmlp._core: threads, instruction set, build information, and the
// two process events native code must survive: interpreter exit while other threads are inside
// a call, and fork(). Holds ReleasedGil, the bindings' only way to give up and retake the GIL.
//
// Exit: from Python 3.8 to 3.13, a thread that retakes the GIL once the interpreter is finalizing
// is ended by pthread_exit(), which unwinds its C++ frames; going through a destructor (noexcept)
// that unwinding calls std::terminate: SIGABRT at the end of a script with a daemon thread in
// fit(). So an atexit callback (registered at import, so it runs after the callbacks registered
// later) closes a gate before finalization starts: it waits for threads already retaking the GIL,
// and from then on a thread other than the exiting one parks at the gate (sleeps until the
// process ends) instead of retaking the GIL. Nothing is unwound, and the interpreter exits
// normally, flushing its output.
//
// Fork: GNU libgomp's thread pool does not survive fork() (a child's first parallel region waits
// forever for the parent's threads). A pthread_atfork handler pins the child to one thread.
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define FASTMLP_HAS_ATFORK 1
#endif

#if defined(_OPENMP) && defined(__linux__)
#include <link.h>
#endif

#include "common.hpp"
#include "fastmlp/checked.hpp"
#include "fastmlp/parallel.hpp"

namespace fastmlp_py {

namespace {

struct ExitGate {
    std::mutex mutex;
    std::condition_variable idle;  // signalled when `retaking` drops to 0
    bool closed = false;
    std::thread::id exiting_thread;
    int retaking = 0;  // threads inside PyEval_RestoreThread
};
// Never destroyed: parked threads are still alive while the process runs static destructors.
ExitGate& gate() {
    static ExitGate* g = new ExitGate;
    return *g;
}

std::atomic<bool> forked_child{false};

// Sleeps until the process ends: the thread holds no lock and touches nothing shared.
[[noreturn]] void park() {
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

void retake_gil(PyThreadState* state) noexcept {
    ExitGate& g = gate();
    {
        std::unique_lock<std::mutex> lock(g.mutex);
        if (g.closed && std::this_thread::get_id() != g.exiting_thread) {
            lock.unlock();
            park();
        }
        ++g.retaking;
    }
    PyEval_RestoreThread(state);  // finalization cannot start while retaking > 0 (close_gate waits)
    std::lock_guard<std::mutex> lock(g.mutex);
    if (--g.retaking == 0) g.idle.notify_all();
}

// The atexit callback, with the GIL held, before the interpreter starts finalizing.
void close_gate() {
    ExitGate& g = gate();
    std::unique_lock<std::mutex> lock(g.mutex);
    g.closed = true;
    g.exiting_thread = std::this_thread::get_id();
    if (g.retaking == 0) return;
    PyThreadState* self = PyEval_SaveThread();  // let the threads already retaking the GIL get it
    g.idle.wait(lock, [&g] { return g.retaking == 0; });
    lock.unlock();
    PyEval_RestoreThread(self);  // this thread is the exiting one: not finalizing yet
}

thread_local PyThreadState* released_state = nullptr;

#ifdef FASTMLP_HAS_ATFORK
// The forking thread holds the gate's mutex across fork(), so the child's copy is consistent.
void before_fork() { gate().mutex.lock(); }
void after_fork_in_parent() { gate().mutex.unlock(); }
void after_fork_in_child() {
    ExitGate& g = gate();
    g.retaking = 0;  // the threads that were retaking the GIL do not exist in the child
    g.closed = false;
    g.mutex.unlock();
    forked_child.store(true);
    fastmlp::set_num_threads(1);
}
#endif

std::string simd_level() {
#if defined(__AVX512F__)
    return "AVX-512";
#elif defined(__AVX2__) && defined(__FMA__)
    return "AVX2+FMA";
#elif defined(__AVX__)
    return "AVX";
#elif defined(__SSE2__) || defined(_M_X64)
    return "SSE2";
#elif defined(__ARM_NEON)
    return "NEON";
#else
    return "scalar";
#endif
}

// Leading and trailing blanks off (clang's __clang_version__ ends with a space).
std::string trimmed(std::string s) {
    const char* blanks = " \t\r\n";
    const auto first = s.find_first_not_of(blanks);
    if (first == std::string::npos) return "";
    return s.substr(first, s.find_last_not_of(blanks) - first + 1);
}

#if defined(_OPENMP) && defined(__linux__)
// dl_iterate_phdr callback: the file name of the loaded object whose segments hold the address.
int object_holding(dl_phdr_info* info, size_t, void* data) {
    auto* query = static_cast<std::pair<uintptr_t, std::string>*>(data);
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const ElfW(Phdr)& segment = info->dlpi_phdr[i];
        const uintptr_t begin = info->dlpi_addr + segment.p_vaddr;
        if (segment.p_type == PT_LOAD && query->first >= begin && query->first < begin + segment.p_memsz) {
            query->second = info->dlpi_name != nullptr ? info->dlpi_name : "";
            return 1;
        }
    }
    return 0;
}
#endif

// The file of the OpenMP runtime this module's omp_* calls resolved to ("libgomp.so.1", or the
// renamed copy a repaired wheel bundles), or None in a serial build. dl_iterate_phdr rather than
// dladdr: it is in libc on every glibc (dladdr was in libdl before 2.34).
py::object openmp_runtime() {
#if defined(_OPENMP) && defined(__linux__)
    std::pair<uintptr_t, std::string> query{reinterpret_cast<uintptr_t>(&omp_get_max_threads), ""};
    if (dl_iterate_phdr(&object_holding, &query) != 0 && !query.second.empty())
        return py::str(query.second.substr(query.second.find_last_of('/') + 1));
    return py::str("unknown");
#elif defined(_OPENMP)
    return py::str("unknown");
#else
    return py::none();
#endif
}

std::string compiler() {
#if defined(__clang__)
    return trimmed(std::string("clang ") + __clang_version__);
#elif defined(__GNUC__)
    return "gcc " + std::to_string(__GNUC__) + "." + std::to_string(__GNUC_MINOR__) + "." +
           std::to_string(__GNUC_PATCHLEVEL__);
#elif defined(_MSC_VER)
    return "msvc " + std::to_string(_MSC_VER);
#else
    return "unknown";
#endif
}

// Any Python integer (or __index__ object) in [1, INT_MAX], else ValueError naming the range:
// pybind11's own int conversion would report a too-large value as a TypeError.
int thread_count(const py::object& n) {
    const py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(n.ptr()));
    if (!index) throw py::error_already_set();
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
    if (overflow != 0 || v < 1 || v > INT_MAX)
        throw std::invalid_argument("the number of threads must lie in [1, " + std::to_string(INT_MAX) + "], got " +
                                    std::string(py::str(index)));
    return static_cast<int>(v);
}

}  // namespace

ReleasedGil::ReleasedGil() : saved_(PyEval_SaveThread()), outer_(released_state) { released_state = saved_; }

ReleasedGil::~ReleasedGil() {
    released_state = outer_;
    retake_gil(saved_);
}

ReleasedGil::Held::Held() { retake_gil(released_state); }

ReleasedGil::Held::~Held() { released_state = PyEval_SaveThread(); }

void bind_runtime(py::module_& m) {
    // Registered at import: atexit runs callbacks last-registered first, so the callbacks a
    // program registers after importing fastmlp (which may still call it) run before the gate.
    py::module_::import("atexit").attr("register")(py::cpp_function(&close_gate));
#ifdef FASTMLP_HAS_ATFORK
    pthread_atfork(&before_fork, &after_fork_in_parent, &after_fork_in_child);
#endif

    m.def(
        "set_num_threads",
        [](const py::object& n) {
            const int threads = thread_count(n);
            if (threads > 1 && forked_child.load()) {
                // Not an error: code written for the parent keeps working, on one thread.
                if (PyErr_WarnEx(PyExc_RuntimeWarning,
                                 "fastmlp stays on one thread in a process created by fork(): the OpenMP "
                                 "runtime cannot start threads there (it would hang); use the 'spawn' or "
                                 "'forkserver' start method for threaded children",
                                 1) != 0)
                    throw py::error_already_set();
                return;
            }
            fastmlp::set_num_threads(threads);
        },
        py::arg("n"), "Use n threads (1 <= n <= INT_MAX) in the kernels from now on, process-wide.");
    m.def("get_num_threads", &fastmlp::get_num_threads);
    m.def(
        "set_isa",
        [](const std::string& name) {
            const fastmlp::Isa isa = parse_enum(kIsas, name);
            if (!fastmlp::set_active_isa(isa))
                throw std::invalid_argument(std::string("this CPU cannot run the '") + name +
                                            "' kernels; the best it supports is '" +
                                            enum_name(kIsas, fastmlp::best_isa()) + "'");
        },
        py::arg("name"), "Use the 'generic', 'avx2' or 'avx512' kernels from now on, process-wide.");
    // Private test hooks: the AVX2+FMA and the AVX-512 decisions on made-up CPUID/XGETBV bits.
    auto bits_of = [](unsigned leaf1_ecx, unsigned leaf7_ebx, unsigned long long xcr0, bool has_leaf7) {
        fastmlp::CpuidBits bits;
        bits.leaf1_ecx = leaf1_ecx;
        bits.leaf7_ebx = leaf7_ebx;
        bits.xcr0 = xcr0;
        bits.has_leaf7 = has_leaf7;
        return bits;
    };
    m.def(
        "_avx2_usable_for_bits",
        [bits_of](unsigned leaf1_ecx, unsigned leaf7_ebx, unsigned long long xcr0, bool has_leaf7) {
            return fastmlp::avx2_fma_usable(bits_of(leaf1_ecx, leaf7_ebx, xcr0, has_leaf7));
        },
        py::arg("leaf1_ecx"), py::arg("leaf7_ebx"), py::arg("xcr0"), py::arg("has_leaf7"));
    m.def(
        "_avx512_usable_for_bits",
        [bits_of](unsigned leaf1_ecx, unsigned leaf7_ebx, unsigned long long xcr0, bool has_leaf7) {
            return fastmlp::avx512_usable(bits_of(leaf1_ecx, leaf7_ebx, xcr0, has_leaf7));
        },
        py::arg("leaf1_ecx"), py::arg("leaf7_ebx"), py::arg("xcr0"), py::arg("has_leaf7"));
    m.def("get_isa", []() { return std::string(enum_name(kIsas, fastmlp::active_isa())); });
    m.def("build_info", []() {
        py::dict d;
        d["version"] = FASTMLP_VERSION;
        d["compiler"] = compiler();
        d["openmp"] = fastmlp::has_openmp();
        d["openmp_runtime"] = openmp_runtime();
#ifdef _OPENMP
        d["openmp_version"] = _OPENMP;
#else
        d["openmp_version"] = py::none();
#endif
        d["simd"] = simd_level();
        d["isa"] = enum_name(kIsas, fastmlp::active_isa());
        d["isa_available"] = enum_name(kIsas, fastmlp::best_isa());
        d["max_threads"] = fastmlp::get_num_threads();
        return d;
    });

    // Private test hook: a parallel_for whose task `throw_at` throws std::runtime_error, run on
    // as many threads as get_num_threads() allows. It must reach Python as RuntimeError, not
    // std::terminate. Returns the number of tasks that ran when nothing threw. Threads claim
    // tasks as they go, so thread 0 holds its first task until the others have started every
    // other task (or one has thrown): with 2 threads the last task then always runs on thread 1.
    m.def(
        "_parallel_raise_test",
        [](int64_t n_tasks, int64_t throw_at) {
            if (n_tasks < 0) throw std::invalid_argument("n_tasks must be >= 0");
            std::atomic<int64_t> ran{0}, started{0};
            std::atomic<bool> thrown{false};
            {
                ReleasedGil nogil;
                // every thread allowed, whatever the governor (parallel.hpp) says of sharing now
                const int threads =
                    static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(fastmlp::get_num_threads(), n_tasks)));
                fastmlp::run_tasks(threads, n_tasks, [&](int64_t t) {
                    started.fetch_add(1);
#ifdef _OPENMP
                    const int thread = omp_get_thread_num();
                    if (thread == 0 && omp_get_num_threads() > 1)
                        while (started.load() < n_tasks && !thrown.load()) std::this_thread::yield();
#else
                        const int thread = 0;
#endif
                    if (t == throw_at) {
                        thrown.store(true);
                        throw std::runtime_error("task " + std::to_string(t) + " failed on thread " +
                                                 std::to_string(thread));
                    }
                    ran.fetch_add(1, std::memory_order_relaxed);
                });
            }
            return ran.load();
        },
        py::arg("n_tasks"), py::arg("throw_at"));

    // Private test hook: the order in which threads claim the tasks of a parallel loop or a
    // product ("forward", the default, "reversed" or "interleaved"), process-wide; no result may
    // depend on it (tests/kernels/test_gemm_scheduling.py). Returns the previous order.
    m.def(
        "_set_claim_order",
        [](const std::string& order) {
            static const char* const names[] = {"forward", "reversed", "interleaved"};
            const auto before = static_cast<int>(fastmlp::get_claim_order());
            for (int i = 0; i < 3; ++i)
                if (order == names[i]) {
                    fastmlp::set_claim_order(static_cast<fastmlp::ClaimOrder>(i));
                    return std::string(names[before]);
                }
            throw std::invalid_argument("order must be 'forward', 'reversed' or 'interleaved', got '" + order + "'");
        },
        py::arg("order"));

    // Private test hooks of the governor that stops sharing work while it does not pay
    // (parallel.hpp): turn it off (the determinism tests, so that several threads really run)
    // or on, forgetting its history; and feed it one region's times (steady-clock ns, as
    // time.monotonic_ns) to see whether it now keeps work on the calling thread.
    m.def(
        "_set_share_governor", [](bool on) { return fastmlp::ShareGovernor::instance().enable(on); }, py::arg("on"));
    m.def(
        "_share_governor_report",
        [](int64_t start_ns, int64_t end_ns, int64_t busy_ns, int64_t longest_task_ns) {
            fastmlp::ShareGovernor::instance().report(start_ns, end_ns, busy_ns, longest_task_ns);
            return fastmlp::ShareGovernor::instance().solo();
        },
        py::arg("start_ns"), py::arg("end_ns"), py::arg("busy_ns"), py::arg("longest_task_ns") = 0);

    // Private test hook: the tasks a TaskQueue hands out under the current claim order, phase by
    // phase, when phases of the sizes given are claimed one after the other, each until it is
    // all claimed; the k-th claim of the whole sequence takes from the front or the back as
    // ends[k % len(ends)] says ('f' or 'b'; "f" is one thread claiming alone).
    m.def(
        "_claim_sequence",
        [](const std::vector<int64_t>& phases, const std::string& ends) {
            if (ends.empty() || ends.find_first_not_of("fb") != std::string::npos)
                throw std::invalid_argument("ends must be a non-empty string of 'f' and 'b', got '" + ends + "'");
            fastmlp::TaskQueue queue;
            std::vector<std::vector<int64_t>> seqs;
            int64_t begin = 0, task;
            std::size_t k = 0;
            for (const int64_t n : phases) {
                if (n < 0) throw std::invalid_argument("phase sizes must be >= 0");
                seqs.emplace_back();
                while (queue.claim(begin, n, task, ends[k % ends.size()] == 'b')) {
                    seqs.back().push_back(task);
                    ++k;
                }
                begin += n;
            }
            return seqs;
        },
        py::arg("phases"), py::arg("ends") = "f");
}

}  // namespace fastmlp_py
