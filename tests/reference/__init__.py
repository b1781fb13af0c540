"""The NumPy oracle (fastmlp.reference) tested on its own, against hand-worked values and torch, before
anything native is compared against it."""
