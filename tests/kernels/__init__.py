"""The native kernels alone and through the Network: each kernel, activation, output, dropout mask, gradient
and optimizer update against the NumPy oracle (fastmlp.reference), on every kernel path the CPU has."""
