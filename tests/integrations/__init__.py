"""fastmlp with other software: the scikit-learn estimators, the torch/scikit-learn converters and the
command line (run as a user would, in a subprocess)."""
