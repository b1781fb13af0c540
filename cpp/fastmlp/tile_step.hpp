// What a micro-kernel does with a finished tile of the weight gradient when plain SGD's step
// is taken inside it (gemm.hpp, Epilogue::sgd_step): pointers already at the tile's first
// element, rows `ld` apart.
#pragma once

#include <cstdint>

namespace fastmlp {

template <class T>
struct TileStep {
    T* w;  // the weights: w -= lr * tile
    std::int64_t ld;
    T lr;
};

}  // namespace fastmlp
