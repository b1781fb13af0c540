"""fastmlp._summary.summary: parameter counts and FLOPs worked out by hand, and the table."""

import json

import numpy as np
import pytest

import fastmlp
from fastmlp._summary import LayerSummary, NetworkSummary, summary


def test_mnist_sized_network_by_hand():
    s = summary(fastmlp.Network([784, 128, 10], activation="relu", dtype="float32", seed=0))
    assert isinstance(s, NetworkSummary)
    first, last = s.rows
    # Layer 0: 784*128 = 100,352 weights + 128 biases; training skips dX: 4 FLOP per weight.
    assert first == LayerSummary(index=0, type="dense", n_in=784, n_out=128, activation="relu", dropout=0.0,
                                 n_params=100_480, train_flops=401_408, inference_flops=200_704)
    # Layer 1: 128*10 = 1,280 weights + 10 biases; forward, dW and dh: 6 FLOP per weight.
    assert last == LayerSummary(index=1, type="dense", n_in=128, n_out=10, activation="softmax", dropout=0.0,
                                n_params=1_290, train_flops=7_680, inference_flops=2_560)
    assert s.n_params == 101_770
    assert s.train_flops == 409_088
    assert s.inference_flops == 203_264
    assert s.param_bytes == 407_080  # 4 bytes per float32
    assert (s.dtype, s.output, s.layer_sizes) == ("float32", "softmax", (784, 128, 10))


def test_totals_agree_with_the_network():
    for sizes, dtype in [([5, 3], "float64"), ([10, 20, 30, 4], "float32"), ([3, 1, 1, 2], "float64")]:
        net = fastmlp.Network(sizes, dtype=dtype, seed=0)
        s = summary(net)
        assert s.n_params == net.n_params == sum(w.size + b.size for w, b in zip(net.weights, net.biases))
        assert s.param_bytes == sum(w.nbytes + b.nbytes for w, b in zip(net.weights, net.biases))
        products = [i * o for i, o in zip(sizes[:-1], sizes[1:])]
        assert s.inference_flops == 2 * sum(products)
        assert s.train_flops == 6 * sum(products) - 2 * products[0]


def test_single_layer_network_skips_dx():
    s = summary(fastmlp.Network([5, 3], dtype="float64", output="sigmoid"))
    (row,) = s.rows
    assert (row.activation, row.train_flops, row.inference_flops, row.n_params) == ("sigmoid", 60, 30, 18)
    assert s.param_bytes == 18 * 8


def test_activations_output_and_dropout_per_row():
    net = fastmlp.Network([6, 8, 7, 5, 1], activation=["tanh", "gelu", "identity"], output="identity",
                          dropout=[0.5, 0.0, 0.25])
    s = summary(net)
    assert [r.activation for r in s.rows] == ["tanh", "gelu", "identity", "identity"]
    assert [r.dropout for r in s.rows] == [0.5, 0.0, 0.25, 0.0]
    assert [r.index for r in s.rows] == [0, 1, 2, 3]
    assert [(r.n_in, r.n_out) for r in s.rows] == [(6, 8), (8, 7), (7, 5), (5, 1)]


def test_table_contains_each_row_aligned():
    net = fastmlp.Network([784, 128, 64, 10], activation=["relu", "tanh"], dropout=[0.2, 0.0])
    text = str(summary(net))
    lines = text.splitlines()
    assert lines[0] == "Network 784-128-64-10, float32, softmax output"
    row_lines = [line for line in lines if " dense " in line]
    assert len(row_lines) == 3
    expected = [("784 -> 128", "relu", "0.2", "100,480", "401,408", "200,704"),
                ("128 -> 64", "tanh", "-", "8,256", "49,152", "16,384"),
                ("64 -> 10", "softmax", "-", "650", "3,840", "1,280")]
    for line, cells in zip(row_lines, expected):
        assert line.split()[:2] == [str(row_lines.index(line)), "dense"]
        for cell in cells:
            assert cell in line
    total = next(line for line in lines if "total" in line)
    for number in ("109,386", "454,400", "218,368"):
        assert number in total
    assert "437,544 bytes (427.3 KiB)" in lines[-1]
    # Numbers are right-aligned: the params column ends at the same place on every row.
    ends = {line.index(n) + len(n) for line, n in zip(row_lines + [total], ["100,480", "8,256", "650", "109,386"])}
    assert len(ends) == 1
    # The header and the rows have the same width as the rules around them.
    rule = lines[1]
    assert set(rule) == {"-"} and all(len(line) <= len(rule) for line in lines[1:-1])
    assert repr(summary(net)) == text


def test_to_dict_is_plain_and_json_ready():
    s = summary(fastmlp.Network([4, 3, 2], dtype="float64", dropout=0.1))
    d = s.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["n_params"] == 4 * 3 + 3 + 3 * 2 + 2
    assert d["layer_sizes"] == [4, 3, 2] and d["dtype"] == "float64" and d["output"] == "softmax"
    assert d["rows"][0] == {"index": 0, "type": "dense", "n_in": 4, "n_out": 3, "activation": "relu",
                            "dropout": 0.1, "n_params": 15, "train_flops": 48, "inference_flops": 24}
    assert d["param_bytes"] == 23 * 8


def test_summary_is_immutable():
    s = summary(fastmlp.Network([3, 2]))
    with pytest.raises(AttributeError):
        s.n_params = 0
    with pytest.raises(AttributeError):
        s.rows[0].n_in = 0
    assert isinstance(s.rows, tuple) and np.dtype(s.dtype) == np.float32
