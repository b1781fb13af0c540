// Which instruction set the kernels use, chosen at run time: the module is compiled for
// baseline x86-64 (no -march=native), and the AVX2+FMA and AVX-512 micro-kernels are compiled
// separately with target attributes and only called when the CPU reports their features. The
// paths are ordered: each one's CPU can run every path before it, and the AVX-512 path runs the
// AVX2 code wherever it has no wider kernel of its own (everything but the GEMM micro-kernel).
// The features are read with CPUID/XGETBV here, not with __builtin_cpu_supports: that builtin
// reads data a compiler runtime fills in at start-up, and a runtime that leaves it at zero
// (zig's, for one) would silently select the generic kernels on an AVX2 CPU.
#pragma once

#include <atomic>

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#include <cpuid.h>
#define FASTMLP_X86_CPUID 1
#endif

namespace fastmlp {

enum class Isa : int { generic = 0, avx2 = 1, avx512 = 2 };

// Whether the active path may run the AVX2+FMA code (the avx2 path, and the avx512 path for every
// kernel that has no AVX-512 version).
inline bool runs_avx2(Isa isa) { return isa >= Isa::avx2; }

// What the AVX2+FMA kernels need, as CPUID reports it (bit positions from the Intel SDM,
// volume 2A, CPUID): each argument is one register of one leaf.
struct CpuidBits {
    unsigned leaf1_ecx = 0;       // bit 12 FMA, bit 27 OSXSAVE, bit 28 AVX
    unsigned leaf7_ebx = 0;       // bit 5 AVX2, bit 16 AVX512F (leaf 7, sub-leaf 0)
    unsigned long long xcr0 = 0;  // XGETBV(0): bit 1 SSE, bit 2 YMM, bits 5-7 opmask and ZMM state
    bool has_leaf7 = false;
};

// Pure decision on the bits (tested with made-up bits): AVX2 and FMA and AVX reported, and
// the OS saving the YMM registers on context switches (OSXSAVE set, XCR0 bits 1 and 2).
inline bool avx2_fma_usable(const CpuidBits& b) {
    const bool fma = (b.leaf1_ecx >> 12) & 1u, osxsave = (b.leaf1_ecx >> 27) & 1u, avx = (b.leaf1_ecx >> 28) & 1u;
    const bool avx2 = b.has_leaf7 && ((b.leaf7_ebx >> 5) & 1u);
    const bool ymm_state = osxsave && (b.xcr0 & 0x6u) == 0x6u;
    return fma && avx && avx2 && ymm_state;
}

// AVX-512F on top of everything AVX2 needs, and the OS saving the opmask registers and both
// halves of the 32 zmm registers (XCR0 bits 5, 6 and 7): without those bits a context switch
// would lose the upper halves, so the instructions are not usable even where the CPU has them.
inline bool avx512_usable(const CpuidBits& b) {
    const bool avx512f = b.has_leaf7 && ((b.leaf7_ebx >> 16) & 1u);
    const bool zmm_state = (b.xcr0 & 0xE0u) == 0xE0u;
    return avx2_fma_usable(b) && avx512f && zmm_state;
}

inline CpuidBits read_cpuid_bits() {
    CpuidBits b;
#ifdef FASTMLP_X86_CPUID
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return b;
    b.leaf1_ecx = ecx;
    if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
        b.has_leaf7 = true;
        b.leaf7_ebx = ebx;
    }
    if ((b.leaf1_ecx >> 27) & 1u) {  // XGETBV is only defined when OSXSAVE is set
        unsigned lo = 0, hi = 0;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        b.xcr0 = (static_cast<unsigned long long>(hi) << 32) | lo;
    }
#endif
    return b;
}

// The best instruction set this CPU and this build support.
inline Isa best_isa() {
#ifdef FASTMLP_X86_CPUID
    static const CpuidBits bits = read_cpuid_bits();
    static const bool avx512 = avx512_usable(bits), avx2 = avx2_fma_usable(bits);
    if (avx512) return Isa::avx512;
    if (avx2) return Isa::avx2;
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
