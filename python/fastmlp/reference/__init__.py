"""Reference implementations of the fastmlp math: the oracle the tests compare the native kernels against.

The functions here carry the same names and arguments as the native kernels in `fastmlp._core`, written in
NumPy for clarity rather than speed; `fastmlp.reference.pure` holds the same math again in pure Python.
Nothing here imports the native extension, so the oracle works before (and without) a build.
"""

from . import pure
from ._dropout import dropout_mask
from ._network import forward, gradients, loss, predict_proba, train_epoch, train_step
from ._numpy import (
    ACTIVATIONS,
    OUTPUTS,
    TAKES_PREACTIVATION,
    activation_backward,
    activation_forward,
    dense_backward_input,
    dense_backward_params,
    dense_forward,
    output_forward,
    output_loss_backward,
    poisson_deviance_backward,
    sgd_update,
    sigmoid_bce_backward,
    softmax,
    softmax_xent_backward,
    squared_error_backward,
)
from ._optim import adam_step, adamw_step, rmsprop_step, sgd_step

__all__ = [
    "ACTIVATIONS",
    "OUTPUTS",
    "TAKES_PREACTIVATION",
    "activation_forward",
    "activation_backward",
    "dense_forward",
    "softmax",
    "softmax_xent_backward",
    "sigmoid_bce_backward",
    "squared_error_backward",
    "poisson_deviance_backward",
    "output_forward",
    "output_loss_backward",
    "dropout_mask",
    "dense_backward_input",
    "dense_backward_params",
    "sgd_update",
    "forward",
    "predict_proba",
    "loss",
    "gradients",
    "train_step",
    "train_epoch",
    "pure",
    "sgd_step",
    "adam_step",
    "adamw_step",
    "rmsprop_step",
]
