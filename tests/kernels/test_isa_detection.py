"""The instruction-set choice: the AVX2+FMA and AVX-512 decisions on CPUID/XGETBV bits (made-up
bits, every condition), and on this machine the same answer as the kernel's own CPU flags. Not the kernels
themselves (every ISA path's results are checked against the oracle in the kernel tests)."""

import platform

import pytest

import fastmlp

FMA, OSXSAVE, AVX = 1 << 12, 1 << 27, 1 << 28  # CPUID leaf 1, ECX
AVX2, AVX512F = 1 << 5, 1 << 16  # CPUID leaf 7 sub-leaf 0, EBX
YMM_STATE = 0b110  # XCR0: SSE and AVX (YMM) state saved by the OS
ZMM_STATE = 0b1110_0000  # XCR0: opmask, upper halves of zmm0-15, zmm16-31
ALL = {"leaf1_ecx": FMA | OSXSAVE | AVX, "leaf7_ebx": AVX2, "xcr0": YMM_STATE | 1, "has_leaf7": True}
ALL_512 = {**ALL, "leaf7_ebx": AVX2 | AVX512F, "xcr0": ZMM_STATE | YMM_STATE | 1}


def test_avx2_decision_when_everything_is_reported():
    assert fastmlp._core._avx2_usable_for_bits(**ALL)


@pytest.mark.parametrize(
    "missing,change",
    [
        ("FMA", {"leaf1_ecx": OSXSAVE | AVX}),
        ("AVX", {"leaf1_ecx": FMA | OSXSAVE}),
        ("OSXSAVE (no XGETBV, so no OS support to rely on)", {"leaf1_ecx": FMA | AVX}),
        ("AVX2", {"leaf7_ebx": 0}),
        ("CPUID leaf 7", {"has_leaf7": False}),
        ("YMM state in XCR0 (the OS does not save the AVX registers)", {"xcr0": 0b011}),
        ("SSE state in XCR0", {"xcr0": 0b100}),
    ],
)
def test_avx2_decision_needs_every_bit(missing, change):
    assert not fastmlp._core._avx2_usable_for_bits(**{**ALL, **change}), missing


def test_avx512_decision_when_everything_is_reported():
    assert fastmlp._core._avx512_usable_for_bits(**ALL_512)
    assert fastmlp._core._avx2_usable_for_bits(**ALL_512)  # a CPU with AVX-512 runs the AVX2 path too


@pytest.mark.parametrize(
    "missing,change",
    [
        ("AVX512F", {"leaf7_ebx": AVX2}),
        ("AVX2 (the AVX-512 path runs the AVX2 code for everything but the GEMM)", {"leaf7_ebx": AVX512F}),
        ("FMA", {"leaf1_ecx": OSXSAVE | AVX}),
        ("OSXSAVE", {"leaf1_ecx": FMA | AVX}),
        ("CPUID leaf 7", {"has_leaf7": False}),
        ("opmask state in XCR0", {"xcr0": 0b1100_0111}),
        ("upper halves of zmm0-15 in XCR0", {"xcr0": 0b1010_0111}),
        ("zmm16-31 in XCR0", {"xcr0": 0b0110_0111}),
        ("YMM state in XCR0", {"xcr0": ZMM_STATE | 0b011}),
    ],
)
def test_avx512_decision_needs_every_bit(missing, change):
    assert not fastmlp._core._avx512_usable_for_bits(**{**ALL_512, **change}), missing


def _cpuinfo_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="CPUID exists on x86-64 only")
@pytest.mark.skipif(_cpuinfo_flags() is None, reason="no /proc/cpuinfo flags line (not Linux)")
def test_best_isa_matches_the_kernels_cpu_flags():
    """A build whose runtime leaves the compiler's CPU-feature data empty would report 'generic'
    here on an AVX2 CPU, and every other test would still pass on the slower kernels."""
    flags = _cpuinfo_flags()
    expected = "avx2" if {"avx2", "fma"} <= flags else "generic"
    if expected == "avx2" and "avx512f" in flags:  # Linux lists avx512f only when the OS saves the zmm state
        expected = "avx512"
    assert fastmlp.build_info()["isa_available"] == expected
