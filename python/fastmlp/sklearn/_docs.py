"""The docstrings of fastmlp.sklearn's estimators: the parameters, attributes and notes that
MLPClassifier and MLPRegressor share, filled in per estimator. Text only; no behaviour lives here."""

from __future__ import annotations

_SHARED_PARAMETERS_DOC = """
    hidden_layer_sizes : int or sequence of int, default=(100,)
        The units of each hidden layer; ``()`` fits a network without hidden layers.
    activation : str, default="relu"
        Activation of the hidden layers: scikit-learn's ``"identity"``, ``"logistic"`` (an
        alias of ``"sigmoid"``), ``"tanh"``, ``"relu"``, or any other of fastmlp's
        (``"leaky_relu"``, ``"elu"``, ``"gelu"``, ``"silu"``, ``"softplus"``).
    solver : {"lbfgs", "sgd", "adam", "adamw", "rmsprop"}, default="adam"
        ``"lbfgs"``: SciPy's L-BFGS-B over all the parameters at once, on the loss and gradient
        of the whole training set (one native call per evaluation), as scikit-learn runs it.
        The others are minibatch optimizers: SGD with ``momentum`` (Nesterov's form with
        ``nesterovs_momentum``), Adam or AdamW with ``beta_1``, ``beta_2``, ``epsilon``, or
        RMSprop with ``epsilon`` (smoothing constant 0.99, PyTorch's); ``"adamw"`` and
        ``"rmsprop"`` are fastmlp's additions. See Notes for how each maps to fastmlp.optim.
    alpha : float, default=1e-4
        Strength of the L2 penalty ``0.5 * alpha * sum(||W||²)`` on the weights (not the
        biases), as in scikit-learn; with ``solver="adamw"`` the decoupled weight decay. See
        Notes for the exact mapping.
    batch_size : int or "auto", default="auto"
        Rows per optimizer step; ``"auto"`` is ``min(200, n_samples)``. Larger values are
        clipped to the number of samples.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        The schedule of ``solver="sgd"``, as in scikit-learn (other solvers ignore it):
        ``"constant"`` keeps ``learning_rate_init``; ``"invscaling"`` sets it to
        ``learning_rate_init / (t_ + 1) ** power_t`` after every epoch; ``"adaptive"`` divides
        it by 5 each time the ``tol`` rule fires instead of stopping, and stops once it is
        <= 1e-6.
    learning_rate_init : float, default=1e-3
        The initial learning rate of the minibatch solvers.
    power_t : float, default=0.5
        The exponent of ``learning_rate="invscaling"``, >= 0.
    max_iter : int, default=200
        Most epochs per :meth:`fit` call (for lbfgs: most L-BFGS iterations).
    shuffle : bool, default=True
        Visit the rows in a new random order every epoch.
    random_state : int, RandomState instance or None, default=None
        Draws the initial weights, the early-stopping split and the shuffling order. An int
        gives the same fitted weights on every fit, whatever the thread count.
    tol : float, default=1e-4
        Training stops when the training loss (or, with ``early_stopping``, the validation
        score) has not improved by at least ``tol`` for ``n_iter_no_change`` consecutive epochs.
        For lbfgs: L-BFGS-B's ``gtol`` (the largest gradient entry that counts as converged).
    verbose : bool, default=False
        Print the loss of every epoch (and the validation score) to stdout, as scikit-learn does.
    warm_start : bool, default=False
        Start :meth:`fit` from the weights of the previous fit instead of new ones (the
        optimizer starts afresh, as in scikit-learn; :meth:`partial_fit` continues it).
    momentum : float, default=0.9
        Momentum of ``solver="sgd"``, >= 0.
    nesterovs_momentum : bool, default=True
        Nesterov's momentum for ``solver="sgd"`` (when ``momentum > 0``).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data ({split}), stop when its score
        ({score}) stops improving, and end with the weights of the best-scoring epoch.
    validation_fraction : float, default=0.1
        The held-out fraction with ``early_stopping``, in (0, 1).
    beta_1, beta_2 : float, default=0.9, 0.999
        Adam's (and AdamW's) moment decay rates, in [0, 1).
    epsilon : float, default=1e-8
        Numerical-stability term of Adam, AdamW and RMSprop, > 0.
    n_iter_no_change : int or np.inf, default=10
        The patience of the ``tol`` rule, in epochs, >= 1; ``np.inf`` turns the rule off.
    max_fun : int, default=15000
        Most loss evaluations of ``solver="lbfgs"``, >= 1.
    dtype : {None, "float32", "float64"}, default=None
        Precision of the parameters and all arithmetic (fastmlp's addition). None follows
        scikit-learn: float32 for a float32 X, float64 for any other. float32 is about twice
        as fast; pass ``dtype="float32"`` to train a float64 X in float32. Later
        ``warm_start`` fits and :meth:`partial_fit` calls keep the fitted network's dtype.
    n_threads : int or None, default=None
        Native threads for :meth:`fit`, :meth:`partial_fit` and the predictions. None leaves
        fastmlp's setting alone; an int is passed to :func:`fastmlp.set_num_threads` for the
        duration of each such call and the previous count restored after it (the setting is
        process-wide, so other threads using fastmlp meanwhile get it too). Results are
        bitwise the same for every thread count.
"""

_SHARED_ATTRIBUTES_DOC = """
    loss_ : float
        The loss of the last epoch, on scikit-learn's scale (see Notes), L2 penalty included.
    best_loss_ : float or None
        The lowest ``loss_`` so far; None with ``early_stopping``, as in scikit-learn.
    loss_curve_ : list of float
        ``loss_`` of every epoch since the weights were initialised (minibatch solvers only,
        as in scikit-learn).
    validation_scores_ : list of float or None
        The validation score of every epoch with ``early_stopping``, else None.
    best_validation_score_ : float or None
        The best of ``validation_scores_``, or None without ``early_stopping``.
    t_ : int
        Training samples seen since the weights were initialised.
    coefs_ : list of ndarray
        ``coefs_[i]`` of shape (n_units_i, n_units_i+1): scikit-learn's layout, the transpose
        of ``network_.weights[i]``. Each access returns new transposed *views* of the live
        weights, in the network's dtype: they always show the current weights, and writing
        into them (``coefs_[0][...] = ...``) changes the network. Copy them to keep a snapshot.
        Assigning a list of arrays of the same shapes (``clf.coefs_ = [...]``) copies them into
        the network: the next predict uses them, and so does the next ``warm_start`` fit or
        :meth:`partial_fit`.
    intercepts_ : list of ndarray
        ``intercepts_[i]`` of shape (n_units_i+1,): the live bias arrays, likewise (assignable
        too).
    network_ : fastmlp.Network
        The trained network itself.
    n_features_in_ : int
        Number of features seen in fit.
    feature_names_in_ : ndarray of str
        The column names of X, when fit on a DataFrame with string column names.
    n_iter_ : int
        Epochs run by the last fit or partial_fit call (1 for partial_fit; L-BFGS iterations
        for lbfgs), as in scikit-learn.
    n_layers_ : int
        Number of layers, input and output included.
    n_outputs_ : int
        Number of output units.
    out_activation_ : str
        {out_activations}
"""

_SHARED_NOTES_DOC = """
    How the parameters map onto fastmlp. fastmlp's losses are means over the batch *and* the
    outputs (its squared error is not halved), while scikit-learn's gradient is that of
    ``0.5 * sum over outputs`` of the squared error, ``sum over outputs`` of the binary
    cross-entropy and the cross-entropy of the softmax, each averaged over the batch. So
    fastmlp's gradient is ``c`` times scikit-learn's, with ``c = 1`` for a softmax output,
    ``1 / n_outputs_`` for logistic and exp (``loss="poisson"``) outputs and ``2 / n_outputs_``
    for identity outputs (scikit-learn's Poisson loss, half the deviance, is likewise averaged
    over the batch and summed over the outputs, fastmlp's averaged over both). The
    estimator undoes ``c`` so that every update is scikit-learn's:

    - ``sgd``: ``fastmlp.optim.SGD(lr=learning_rate_init / c, momentum, nesterov)``. sklearn's
      velocity form ``v = momentum v - lr g`` is PyTorch's ``buf = momentum buf + g`` scaled by
      ``-lr``, so the steps are the same.
    - ``adam``: ``Adam(learning_rate_init, (beta_1, beta_2), eps=epsilon * c)``. Adam's step
      does not change when the gradient is scaled, once epsilon is scaled with it; it differs
      from scikit-learn's only in where the bias correction meets epsilon (PyTorch's form).
    - ``rmsprop``: ``RMSprop(learning_rate_init, alpha=0.99, eps=epsilon * c)``.
    - ``adamw``: as ``adam``, with ``alpha`` as AdamW's *decoupled* weight decay: every step
      multiplies the weights by ``1 - learning_rate_init * alpha`` (PyTorch's default is 1e-2).
      scikit-learn has no AdamW; the point of decoupled decay is not to depend on the
      gradient's scale or the batch, so nothing is divided.

    L2 penalty (all solvers but adamw). scikit-learn adds ``alpha * W / S_b`` to the gradient
    of the weights, where ``S_b`` is the batch's sum of sample weights (its size without
    weights). fastmlp's ``weight_decay`` adds ``weight_decay * W`` to the gradient of the
    batch-mean loss, with one value for all batches, so the estimator passes
    ``weight_decay = c * alpha / (batch_size * mean(sample_weight))``: the mean of ``S_b``
    over full batches, hence exactly scikit-learn's for every batch without sample weights
    but the last partial one, and for every batch when one batch holds all the data (which
    makes zero weights equivalent to dropping rows, and integer weights to repeating them).

    ``loss_curve_`` is on scikit-learn's scale: fastmlp's per-epoch loss (each batch's loss
    before its update, averaged over the epoch) divided by ``c`` as above, plus the L2 term
    ``0.5 * alpha * sum(||W||²) / (batch_size * mean(sample_weight))`` computed with the
    weights at the end of the epoch (scikit-learn adds it batch by batch). ``tol`` is compared
    with these values, as in scikit-learn.

    lbfgs minimises scikit-learn's loss exactly: the data term on its scale plus
    ``0.5 * alpha * sum(||W||²) / sum(sample_weight)``, with its gradient (fastmlp's
    gradient divided by ``c`` plus ``alpha * W / sum(sample_weight)``), both from one native
    :meth:`fastmlp.Network.gradients` call over the whole training set per evaluation.

    Initialisation is scikit-learn's (Glorot uniform weights and biases in
    ``+-sqrt(factor / (fan_in + fan_out))``, factor 2 for logistic and 6 otherwise), drawn
    from ``random_state`` in its order: the same ``random_state`` gives scikit-learn's initial
    weights and its early-stopping split. (fastmlp's ``init="auto"`` is the Network API's.)

    Sparse X (scipy.sparse matrices and arrays of any format, converted once to CSR; int32 or
    int64 indices) is never densified: the first layer's forward, its gradient and, with plain
    SGD (``momentum=0``, ``alpha=0``), its update run over the nonzeros only (docs/sparse.md);
    every solver, ``early_stopping`` (validation rows read in place, the training rows'
    nonzeros copied), ``sample_weight``, ``warm_start`` and :meth:`partial_fit` take it, with
    the dtype rule of dense X and results equal to a fit on ``X.toarray()`` up to rounding.

    Stopping follows scikit-learn: after each epoch the loss (or validation score) is compared
    with the best so far, a run of more than ``n_iter_no_change`` epochs without an improvement
    of ``tol`` ends the fit, and reaching ``max_iter`` first raises a ``ConvergenceWarning``.
    The counters persist over ``warm_start`` fits and :meth:`partial_fit` calls, as there.
    A NaN or infinite loss stops training with an error that is both a
    :class:`fastmlp.TrainingDivergedError` and a ValueError (scikit-learn's type for it, and
    its opening words "Solver produced non-finite parameter weights"), the weights rolled back
    to the last finite state. A fit that fails before training (bad
    parameters or data, a validation set too small) leaves a fitted estimator as it was.
"""


def _fill(template: str, **fields: str) -> str:
    """The template with each ``{name}`` replaced (not str.format: the docs hold other braces)."""
    for name, text in fields.items():
        template = template.replace("{" + name + "}", text)
    return template
