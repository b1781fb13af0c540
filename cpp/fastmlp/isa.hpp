// Which instruction set the kernels use, chosen at run time: the module is compiled for
// baseline x86-64 (no -march=native), and the AVX2+FMA micro-kernels are compiled separately
// with target attributes and only called when the CPU reports both features.
#pragma once

#include <atomic>

namespace fastmlp {

enum class Isa : int { generic = 0, avx2 = 1 };

inline const char* isa_name(Isa isa) { return isa == Isa::avx2 ? "avx2" : "generic"; }

// The best instruction set this CPU and this build support.
inline Isa best_isa() {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
#endif
    return Isa::generic;
}

namespace detail {
inline std::atomic<int>& active_isa_slot() {
    static std::atomic<int> isa{static_cast<int>(best_isa())};
    return isa;
}
}  // namespace detail

inline Isa active_isa() { return static_cast<Isa>(detail::active_isa_slot().load(std::memory_order_relaxed)); }

// Forces a path (tests cover every path on every machine). Returns false, changing nothing,
// when the CPU cannot run the requested one.
inline bool set_active_isa(Isa isa) {
    if (static_cast<int>(isa) > static_cast<int>(best_isa())) return false;
    detail::active_isa_slot().store(static_cast<int>(isa), std::memory_order_relaxed);
    return true;
}

}  // namespace fastmlp
