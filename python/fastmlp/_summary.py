"""Network.summary(): a per-layer table of sizes, activations, parameters and FLOPs.

Computed from the architecture alone (layer sizes, activations, output, dropout, dtype): it
reads no weights, so it needs no lock and costs nothing for any network size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .network import Network

__all__ = ["LayerSummary", "NetworkSummary", "summary"]


@dataclass(frozen=True)
class LayerSummary:
    """One dense layer of a network, as a row of :class:`NetworkSummary`.

    Attributes
    ----------
    index : int
        Position of the layer: its parameters are ``net.weights[index]`` and ``net.biases[index]``.
    type : str
        ``"dense"`` (the only layer fastmlp has).
    n_in, n_out : int
        Fan-in and fan-out: the weight matrix is (n_out, n_in).
    activation : str
        The hidden activation applied after this layer, or, for the last layer, the output
        layer ("softmax", "sigmoid" or "identity").
    dropout : float
        The dropout probability applied to this layer's output in training (0.0 for the
        output layer, which has none).
    n_params : int
        ``n_in * n_out`` weights plus ``n_out`` biases.
    train_flops : int
        FLOPs per sample of one training step for this layer's matrix products: 2 per
        multiply-add, forward (``2 n_in n_out``), the weight gradient (``2 n_in n_out``) and the
        input gradient (``2 n_in n_out``), which the first layer skips (nothing needs dX).
    inference_flops : int
        FLOPs per sample of the forward pass: ``2 n_in n_out``.
    """

    index: int
    type: str
    n_in: int
    n_out: int
    activation: str
    dropout: float
    n_params: int
    train_flops: int
    inference_flops: int


@dataclass(frozen=True)
class NetworkSummary:
    """What :func:`summary` returns: the rows, the totals, and a text table (``str()``).

    Attributes
    ----------
    rows : tuple of LayerSummary
        One per dense layer, first layer first.
    layer_sizes : tuple of int
    dtype : str
        "float32" or "float64".
    output : str
        The output layer.
    n_params : int
        Weights and biases in all layers.
    param_bytes : int
        Their memory: ``n_params`` times the dtype's size (the network's own arrays; training
        workspaces and optimiser state come on top).
    train_flops : int
        FLOPs per sample of one training step, summed over the layers (multiply by the batch
        size for a step). Like the rows, it counts the matrix products only: bias adds,
        activations, the loss and the parameter update add O(n_out) per layer, small beside
        the products' O(n_in n_out).
    inference_flops : int
        FLOPs per sample of prediction, summed over the layers.
    """

    rows: tuple[LayerSummary, ...]
    layer_sizes: tuple[int, ...]
    dtype: str
    output: str
    n_params: int
    param_bytes: int
    train_flops: int
    inference_flops: int

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values (lists, dicts, ints, floats, strings), ready for JSON."""
        d = asdict(self)
        d["rows"] = [asdict(row) for row in self.rows]
        d["layer_sizes"] = list(self.layer_sizes)
        return d

    def __str__(self) -> str:
        header = ("#", "type", "in -> out", "activation", "dropout", "params", "train FLOP/sample",
                  "infer FLOP/sample")
        body = [
            (str(r.index), r.type, f"{r.n_in} -> {r.n_out}", r.activation,
             f"{r.dropout:g}" if r.dropout else "-", f"{r.n_params:,}", f"{r.train_flops:,}",
             f"{r.inference_flops:,}")
            for r in self.rows
        ]
        total = ("", "total", "", "", "", f"{self.n_params:,}", f"{self.train_flops:,}",
                 f"{self.inference_flops:,}")
        table = [header, *body, total]
        widths = [max(len(line[c]) for line in table) for c in range(len(header))]
        # Text columns read left-aligned, numbers right-aligned so that their digits line up.
        numeric = {0, 5, 6, 7}

        def fmt(line: tuple[str, ...]) -> str:
            cells = [cell.rjust(w) if c in numeric else cell.ljust(w)
                     for c, (cell, w) in enumerate(zip(line, widths))]
            return "  ".join(cells).rstrip()

        rule = "-" * len(fmt(header))
        sizes = "-".join(str(s) for s in self.layer_sizes)
        lines = [f"Network {sizes}, {self.dtype}, {self.output} output", rule, fmt(header), rule,
                 *(fmt(line) for line in body), rule, fmt(total), rule,
                 f"Parameters: {self.n_params:,} {self.dtype}, {self.param_bytes:,} bytes "
                 f"({_human_bytes(self.param_bytes)})"]
        return "\n".join(lines)

    # The table is what one wants to see at a prompt or in a notebook cell (as for a
    # pandas DataFrame); the fields are one attribute access away.
    __repr__ = __str__


def _human_bytes(n: int) -> str:
    """1,234 B, 397.5 KiB, 1.2 MiB...: binary units, as memory is allocated."""
    if n < 1024:
        return f"{n:,} B"
    value = n / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} TiB"


def summary(net: Network) -> NetworkSummary:
    """Describe a network layer by layer: sizes, activations, dropout, parameters and FLOPs.

    Parameters
    ----------
    net : Network

    Returns
    -------
    NetworkSummary
        ``print(summary(net))`` shows an aligned table; ``.rows`` and the totals hold the
        numbers and ``.to_dict()`` gives them as plain values.

    Notes
    -----
    FLOPs follow the convention of the package's benchmarks: 2 per multiply-add of the matrix
    products, per sample. One training step costs ``6 n_in n_out`` per layer (forward, weight
    gradient, input gradient) except the first layer's ``4 n_in n_out`` (no one needs the
    gradient with respect to X); inference costs ``2 n_in n_out``.

    Examples
    --------
    >>> print(summary(Network([784, 128, 10])))  # doctest: +SKIP
    Network 784-128-10, float32, softmax output
    ...
    """
    sizes = net.layer_sizes
    activations = net.activations
    dropout = net.dropout
    rows = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        hidden = k < len(activations)
        products = n_in * n_out
        rows.append(LayerSummary(
            index=k, type="dense", n_in=n_in, n_out=n_out,
            activation=activations[k] if hidden else net.output,
            dropout=float(dropout[k]) if hidden else 0.0,
            n_params=products + n_out,
            train_flops=(4 if k == 0 else 6) * products,
            inference_flops=2 * products,
        ))
    n_params = sum(r.n_params for r in rows)
    return NetworkSummary(
        rows=tuple(rows), layer_sizes=tuple(sizes), dtype=net.dtype.name, output=net.output,
        n_params=n_params, param_bytes=n_params * net.dtype.itemsize,
        train_flops=sum(r.train_flops for r in rows),
        inference_flops=sum(r.inference_flops for r in rows),
    )
