// The optimizers' update rules, applied to one parameter array right after its gradient is
// computed (while it is still in cache): SGD with momentum / Nesterov / L2 decay, Adam, AdamW
// and RMSprop, each written as PyTorch's single-tensor implementation writes it (same state,
// same order of operations, scalars computed in double and rounded once to T), so a float64
// run follows torch.optim to rounding and a float32 run to a few ulps.
// Plain SGD without momentum or decay does not come here: dense.hpp fuses it into the
// gradient's tile stores. The state arrays belong to the caller (fastmlp.optim keeps them as
// NumPy arrays); this file never allocates.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "finite.hpp"
#include "isa.hpp"
#include "optim_avx2.hpp"
#include "parallel.hpp"

namespace fastmlp {

enum class OptimizerKind : int { sgd = 0, adam = 1, adamw = 2, rmsprop = 3 };

// Hyperparameters of one update. `step` is the 1-based number of this update (Adam's bias
// correction; SGD's first step initialises the momentum buffer from the gradient).
struct OptimizerSpec {
    OptimizerKind kind = OptimizerKind::sgd;
    double lr = 0.1;
    double momentum = 0.0;                          // sgd, rmsprop
    bool nesterov = false;                          // sgd
    double weight_decay = 0.0;                      // L2 added to the gradient (adamw: decoupled)
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adam, adamw (eps also rmsprop)
    double alpha = 0.99;                            // rmsprop
    std::int64_t step = 1;

    // Plain SGD: the update dense.hpp fuses into the gradient GEMM.
    bool plain_sgd() const { return kind == OptimizerKind::sgd && momentum == 0.0 && weight_decay == 0.0; }

    // How many state arrays each parameter needs: SGD's momentum buffer; Adam's first and
    // second moments; RMSprop's square average and its momentum buffer.
    int n_buffers() const {
        switch (kind) {
            case OptimizerKind::sgd:
                return momentum != 0.0 ? 1 : 0;
            case OptimizerKind::adam:
            case OptimizerKind::adamw:
                return 2;
            case OptimizerKind::rmsprop:
                return momentum != 0.0 ? 2 : 1;
        }
        return 0;
    }
};

namespace detail {

// The element loops of each rule, one struct per rule with its options as template flags so
// that no branch is left inside a loop: GCC then vectorizes each loop, with SSE2 on the
// generic path and 8 float / 4 double lanes in the AVX2 clone (run_avx2 below). The clone is
// compiled for AVX2 *without* FMA, so no multiply-add can be contracted: every lane does the
// scalar code's operations in its order (sqrt and division are correctly rounded), and both
// paths give the bits the scalar loop gave. Pointers are one chunk's; the arrays never alias.
#if defined(__GNUC__) || defined(__clang__)
#define FASTMLP_ALWAYS_INLINE inline __attribute__((always_inline))
#define FASTMLP_RESTRICT __restrict__
#else
#define FASTMLP_ALWAYS_INLINE inline
#define FASTMLP_RESTRICT
#endif

// SGD: optional L2 decay; momentum 0 none, 1 the first step (buffer = gradient), 2 running.
template <bool kDecay, int kMomentum, bool kNesterov>
struct SgdLoop {
    static constexpr int kStates = 1;
    template <class T>
    static FASTMLP_ALWAYS_INLINE void run(T* FASTMLP_RESTRICT p, const T* FASTMLP_RESTRICT g, T* FASTMLP_RESTRICT s1,
                                          std::int64_t n, T lr, T wd, T mu) {
        for (std::int64_t i = 0; i < n; ++i) {
            T d = kDecay ? g[i] + p[i] * wd : g[i];
            if constexpr (kMomentum != 0) {
                const T buf = kMomentum == 1 ? d : s1[i] * mu + d;
                s1[i] = buf;
                d = kNesterov ? d + buf * mu : buf;
            }
            p[i] = p[i] + d * -lr;
        }
    }
};

// Adam (kL2: weight decay added to the gradient) and AdamW (kDecoupled: the weight shrunk first).
template <bool kDecoupled, bool kL2>
struct AdamLoop {
    static constexpr int kStates = 2;
#ifdef FASTMLP_HAVE_OPTIM_AVX2
    template <class... A>
    __attribute__((target("avx2"))) static std::int64_t avx2(A... a) {
        return optim_avx2::adam<kDecoupled, kL2>(a...);
    }
#endif
    template <class T>
    static FASTMLP_ALWAYS_INLINE void run(T* FASTMLP_RESTRICT p, const T* FASTMLP_RESTRICT g, T* FASTMLP_RESTRICT m,
                                          T* FASTMLP_RESTRICT v, std::int64_t n, T shrink, T wd, T one_minus_b1, T b2,
                                          T one_minus_b2, T bc2_sqrt, T eps, T step_size) {
        for (std::int64_t i = 0; i < n; ++i) {
            T w = p[i];
            if constexpr (kDecoupled) w = w * shrink;
            const T d = kL2 ? g[i] + w * wd : g[i];
            const T mi = m[i] + one_minus_b1 * (d - m[i]);  // m: lerp towards d
            const T vi = v[i] * b2 + one_minus_b2 * (d * d);
            m[i] = mi;
            v[i] = vi;
            const T denom = std::sqrt(vi) / bc2_sqrt + eps;
            p[i] = w + -step_size * (mi / denom);
        }
    }
};

// RMSprop: optional L2 decay, optional momentum buffer (s2).
template <bool kDecay, bool kMomentum>
struct RmspropLoop {
    static constexpr int kStates = 2;
#ifdef FASTMLP_HAVE_OPTIM_AVX2
    template <class... A>
    __attribute__((target("avx2"))) static std::int64_t avx2(A... a) {
        return optim_avx2::rmsprop<kDecay, kMomentum>(a...);
    }
#endif
    template <class T>
    static FASTMLP_ALWAYS_INLINE void run(T* FASTMLP_RESTRICT p, const T* FASTMLP_RESTRICT g, T* FASTMLP_RESTRICT s1,
                                          T* FASTMLP_RESTRICT s2, std::int64_t n, T lr, T wd, T alpha,
                                          T one_minus_alpha, T mu, T eps) {
        for (std::int64_t i = 0; i < n; ++i) {
            const T d = kDecay ? g[i] + p[i] * wd : g[i];
            const T sq = s1[i] * alpha + one_minus_alpha * (d * d);  // square average
            s1[i] = sq;
            const T avg = std::sqrt(sq) + eps;
            if constexpr (kMomentum) {  // momentum buffer, zeros at first
                const T buf = s2[i] * mu + d / avg;
                s2[i] = buf;
                p[i] = p[i] + buf * -lr;
            } else {
                p[i] = p[i] + -lr * (d / avg);
            }
        }
    }
};

template <class Loop, class... Args>
void run_generic(Args... args) {
    Loop::run(args...);
}
#ifdef FASTMLP_HAVE_OPTIM_AVX2
// Loops with a square root go through optim_avx2.hpp's explicit vectors first (GCC would keep
// them scalar), the rest of the chunk through the scalar loop.
template <class Loop, class T, class... Consts>
__attribute__((target("avx2"))) void run_avx2(T* p, const T* g, T* s1, T* s2, std::int64_t n, Consts... c) {
    const std::int64_t done = Loop::avx2(p, g, s1, s2, n, c...);
    Loop::run(p + done, g + done, s1 + done, s2 == nullptr ? s2 : s2 + done, n - done, c...);
}
template <class Loop, class T, class... Consts>
__attribute__((target("avx2"))) void run_avx2(T* p, const T* g, T* s1, std::int64_t n, Consts... c) {
    Loop::run(p, g, s1, n, c...);  // AVX2 but not FMA: see above
}
#endif

// Runs Loop over [0, n) in 16 Ki-element chunks shared between threads; `chunk(lo, len, avx2)`
// runs Loop (run_avx2 or run_generic) on one chunk. Element-wise, so any partition gives the
// same bits. With `nonfinite`, each chunk of param is checked right after its update, while it
// is in cache, and `nonfinite` set when a new value is NaN or infinite: the check that was a
// separate serial pass over every parameter after the update.
template <class T, class Chunk>
void for_update_chunks(std::int64_t n, const T* param, std::atomic<bool>* nonfinite, Chunk&& chunk) {
    constexpr std::int64_t kChunk = 16 * 1024;
    const bool avx2 = runs_avx2(active_isa());
    parallel_for((n + kChunk - 1) / kChunk, n, [&](std::int64_t c) {
        const std::int64_t lo = c * kChunk, len = std::min(n, lo + kChunk) - lo;
        chunk(lo, len, avx2);
        if (nonfinite != nullptr && !all_finite(param + lo, len)) nonfinite->store(true, std::memory_order_relaxed);
    });
}

template <class T>
T* offset(T* p, std::int64_t lo) {
    return p != nullptr ? p + lo : p;
}

template <class Loop, class T, class... Consts>
void run_update(std::atomic<bool>* nonfinite, std::int64_t n, T* p, const T* g, T* s1, T* s2, Consts... c) {
    for_update_chunks(n, p, nonfinite, [&](std::int64_t lo, std::int64_t len, bool avx2) {
        (void)avx2;
#ifdef FASTMLP_HAVE_OPTIM_AVX2
        if (avx2) {
            if constexpr (Loop::kStates == 1)
                run_avx2<Loop>(p + lo, g + lo, offset(s1, lo), len, c...);
            else
                run_avx2<Loop>(p + lo, g + lo, offset(s1, lo), offset(s2, lo), len, c...);
            return;
        }
#endif
        if constexpr (Loop::kStates == 1)
            run_generic<Loop>(p + lo, g + lo, offset(s1, lo), len, c...);
        else
            run_generic<Loop>(p + lo, g + lo, offset(s1, lo), offset(s2, lo), len, c...);
    });
}

}  // namespace detail

// One update of param (n,) from grad (n,) with state s1, s2 (n,) each, as many as n_buffers()
// (else null). weight_decay is the caller's choice per array (biases get 0).
// Updates param and the state in place. Parallel over 16 Ki-element chunks: element-wise, so
// any partition gives the same bits; one vectorized pass over each array (detail:: above).
// With `nonfinite`, it is set when a new value of param is NaN or infinite.
template <class T>
void optimizer_update(T* param, const T* grad, T* s1, T* s2, std::int64_t n, const OptimizerSpec& o,
                      double weight_decay, std::atomic<bool>* nonfinite = nullptr) {
    using detail::run_update;
    const T lr = static_cast<T>(o.lr);
    const T wd = static_cast<T>(weight_decay);
    const bool decay = weight_decay != 0.0;
    switch (o.kind) {
        case OptimizerKind::sgd: {
            const T mu = static_cast<T>(o.momentum);
            const bool first = o.step <= 1;
            auto sgd = [&](auto decay_flag) {
                constexpr bool kDecay = decltype(decay_flag)::value;
                if (s1 == nullptr) {  // no momentum buffer
                    run_update<detail::SgdLoop<kDecay, 0, false>>(nonfinite, n, param, grad, s1, s2, lr, wd, mu);
                } else if (first) {
                    if (o.nesterov)
                        run_update<detail::SgdLoop<kDecay, 1, true>>(nonfinite, n, param, grad, s1, s2, lr, wd, mu);
                    else
                        run_update<detail::SgdLoop<kDecay, 1, false>>(nonfinite, n, param, grad, s1, s2, lr, wd, mu);
                } else {
                    if (o.nesterov)
                        run_update<detail::SgdLoop<kDecay, 2, true>>(nonfinite, n, param, grad, s1, s2, lr, wd, mu);
                    else
                        run_update<detail::SgdLoop<kDecay, 2, false>>(nonfinite, n, param, grad, s1, s2, lr, wd, mu);
                }
            };
            if (decay)
                sgd(std::true_type{});
            else
                sgd(std::false_type{});
            break;
        }
        case OptimizerKind::adam:
        case OptimizerKind::adamw: {
            const double bc1 = 1.0 - std::pow(o.beta1, static_cast<double>(o.step));
            const double bc2 = 1.0 - std::pow(o.beta2, static_cast<double>(o.step));
            const T one_minus_b1 = static_cast<T>(1.0 - o.beta1);
            const T b2 = static_cast<T>(o.beta2), one_minus_b2 = static_cast<T>(1.0 - o.beta2);
            const T step_size = static_cast<T>(o.lr / bc1);
            const T bc2_sqrt = static_cast<T>(std::sqrt(bc2));
            const T eps = static_cast<T>(o.eps);
            const bool decoupled = o.kind == OptimizerKind::adamw && decay;
            const T shrink = static_cast<T>(1.0 - o.lr * weight_decay);
            const bool l2 = o.kind == OptimizerKind::adam && decay;
            if (decoupled)
                run_update<detail::AdamLoop<true, false>>(nonfinite, n, param, grad, s1, s2, shrink, wd, one_minus_b1,
                                                          b2, one_minus_b2, bc2_sqrt, eps, step_size);
            else if (l2)
                run_update<detail::AdamLoop<false, true>>(nonfinite, n, param, grad, s1, s2, shrink, wd, one_minus_b1,
                                                          b2, one_minus_b2, bc2_sqrt, eps, step_size);
            else
                run_update<detail::AdamLoop<false, false>>(nonfinite, n, param, grad, s1, s2, shrink, wd, one_minus_b1,
                                                           b2, one_minus_b2, bc2_sqrt, eps, step_size);
            break;
        }
        case OptimizerKind::rmsprop: {
            const T alpha = static_cast<T>(o.alpha), one_minus_alpha = static_cast<T>(1.0 - o.alpha);
            const T mu = static_cast<T>(o.momentum), eps = static_cast<T>(o.eps);
            const bool momentum = s2 != nullptr;
            if (decay && momentum)
                run_update<detail::RmspropLoop<true, true>>(nonfinite, n, param, grad, s1, s2, lr, wd, alpha,
                                                            one_minus_alpha, mu, eps);
            else if (decay)
                run_update<detail::RmspropLoop<true, false>>(nonfinite, n, param, grad, s1, s2, lr, wd, alpha,
                                                             one_minus_alpha, mu, eps);
            else if (momentum)
                run_update<detail::RmspropLoop<false, true>>(nonfinite, n, param, grad, s1, s2, lr, wd, alpha,
                                                             one_minus_alpha, mu, eps);
            else
                run_update<detail::RmspropLoop<false, false>>(nonfinite, n, param, grad, s1, s2, lr, wd, alpha,
                                                              one_minus_alpha, mu, eps);
            break;
        }
    }
}

}  // namespace fastmlp
