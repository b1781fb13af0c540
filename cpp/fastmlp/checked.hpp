// Overflow-checked 64-bit size arithmetic for everything the package allocates. A size that
// does not fit in int64 (or in the address space) throws SizeError, which the bindings turn
// into MemoryError: such a buffer could never be allocated, so "out of memory" is the truth.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace fastmlp {

// A buffer whose size cannot be represented or allocated. Derives from length_error (what
// std::vector throws for the same condition); the bindings map it to MemoryError.
struct SizeError : std::length_error {
    using std::length_error::length_error;
};

// a * b, or SizeError if it overflows int64. Operands are sizes, so both must be >= 0.
inline std::int64_t checked_mul(std::int64_t a, std::int64_t b, const char* what = "size") {
    std::int64_t r;
#if defined(__GNUC__) || defined(__clang__)
    const bool overflow = a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r);
#else  // MSVC: no builtin; a division answers the same question exactly
    const bool overflow = a < 0 || b < 0 || (a != 0 && b > std::numeric_limits<std::int64_t>::max() / a);
    r = overflow ? 0 : a * b;  // never multiply when it would overflow: signed overflow is UB
#endif
    if (overflow)
        throw SizeError(std::string(what) + " " + std::to_string(a) + " x " + std::to_string(b) +
                        " does not fit in 64 bits");
    return r;
}

inline std::int64_t checked_add(std::int64_t a, std::int64_t b, const char* what = "size") {
    if (a < 0 || b < 0 || a > std::numeric_limits<std::int64_t>::max() - b)
        throw SizeError(std::string(what) + " " + std::to_string(a) + " + " + std::to_string(b) +
                        " does not fit in 64 bits");
    return a + b;
}

// The largest single allocation worth attempting: PTRDIFF_MAX bytes (pointer differences
// inside the buffer must stay defined) and never more than size_t holds on 32-bit platforms.
inline std::int64_t max_allocation_bytes() {
    const auto p = static_cast<std::uint64_t>(std::numeric_limits<std::ptrdiff_t>::max());
    const auto s = static_cast<std::uint64_t>(std::numeric_limits<std::size_t>::max());
    return static_cast<std::int64_t>(p < s ? p : s);
}

// n elements of `elem` bytes as a byte count, checked against max_allocation_bytes().
inline std::int64_t checked_bytes(std::int64_t n, std::int64_t elem, const char* what = "buffer") {
    const std::int64_t bytes = checked_mul(n, elem, what);
    if (bytes > max_allocation_bytes())
        throw SizeError(std::string(what) + " of " + std::to_string(bytes) + " bytes exceeds the address space");
    return bytes;
}

}  // namespace fastmlp
