"""The boundary between the Python package and fastmlp._core, checked from both sides: the stub
_core.pyi names every function's parameters (order, names, defaults) exactly as the module does,
and the C++ enum tables list the same names, in the same order, as the Python tuples.
Behaviour of the functions themselves is tested elsewhere (test_kernels, test_trainer, ...)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import fastmlp
from fastmlp import _core, _validation, optim

# The source tree's stub (the one edited); the installed copy when the tests run from a wheel.
STUB = Path(__file__).resolve().parents[2] / "python" / "fastmlp" / "_core.pyi"
if not STUB.exists():
    STUB = Path(_core.__file__).with_name("_core.pyi")


def _split_top_level(text: str) -> list[str]:
    """Splits a pybind11 parameter list at the commas outside brackets and quotes."""
    parts, depth, quote, current = [], 0, "", ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        current += ch
    if current.strip():
        parts.append(current.strip())
    return parts


def _module_params(func: object) -> list[tuple[str, object]]:
    """(name, default or inspect.Parameter.empty) per parameter, from pybind11's signature line."""
    first = (func.__doc__ or "").splitlines()[0]
    inside = first[first.index("(") + 1:first.rindex(") ->")]
    params = []
    for part in _split_top_level(inside):
        name, _, rest = part.partition(":")
        default: object = inspect.Parameter.empty
        if " = " in rest:
            default = ast.literal_eval(rest.split(" = ", 1)[1])
        params.append((name.strip(), default))
    return [p for p in params if p[0] != "self"]


def _stub_params(node: ast.FunctionDef) -> list[tuple[str, object]]:
    args = node.args.args
    defaults = [inspect.Parameter.empty] * (len(args) - len(node.args.defaults)) + [
        ast.literal_eval(d) for d in node.args.defaults]
    return [(a.arg, d) for a, d in zip(args, defaults) if a.arg != "self"]


def _stub() -> tuple[dict[str, ast.FunctionDef], dict[str, ast.FunctionDef], set[str]]:
    """The stub's functions (the last overload where there are several), Workspace's methods, and
    its annotated module attributes."""
    tree = ast.parse(STUB.read_text())
    functions: dict[str, ast.FunctionDef] = {}
    methods: dict[str, ast.FunctionDef] = {}
    attributes: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            functions[node.name] = node
        elif isinstance(node, ast.ClassDef) and node.name == "Workspace":
            methods = {n.name: n for n in node.body if isinstance(n, ast.FunctionDef)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            attributes.add(node.target.id)
    return functions, methods, attributes


MODULE_FUNCTIONS = sorted(name for name, value in vars(_core).items()
                          if callable(value) and not isinstance(value, type) and not name.startswith("__"))


def test_the_stub_lists_every_function_of_the_module_and_nothing_else():
    functions, _, _ = _stub()
    assert sorted(functions) == MODULE_FUNCTIONS


@pytest.mark.parametrize("name", MODULE_FUNCTIONS)
def test_each_function_takes_the_stubs_parameter_names_and_defaults(name):
    functions, _, _ = _stub()
    assert _module_params(getattr(_core, name)) == _stub_params(functions[name]), name


def test_workspace_takes_the_stubs_parameter_names_and_defaults():
    _, methods, _ = _stub()
    assert _module_params(_core.Workspace.__init__) == _stub_params(methods["__init__"])
    ws = _core.Workspace(layer_sizes=[3, 4, 2], max_batch=5, dtype="float32", activations=["tanh"],
                         output="sigmoid", dropout=[0.25])
    assert (ws.layer_sizes, ws.activations, ws.output, ws.dropout) == ([3, 4, 2], ["tanh"], "sigmoid", [0.25])
    properties = {n for n, v in vars(_core.Workspace).items() if isinstance(v, property)}
    assert properties == set(methods) - {"__init__"}


def test_keyword_calls_reach_the_right_parameters():
    # Every name is a keyword (py::arg): a call spelled with them in a shuffled order works.
    import numpy as np
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    W = np.eye(3, dtype=np.float32)
    b = np.zeros(3, dtype=np.float32)
    assert np.array_equal(_core.dense_forward(activation="identity", b=b, W=W, x=x), x)
    assert _core.get_isa() in _core.ISAS
    _core.set_isa(name=_core.get_isa())


def test_the_enum_tables_of_cpp_and_python_agree_in_order():
    assert _core.ACTIVATIONS == _validation.ACTIVATIONS
    assert _core.OUTPUTS == _validation.OUTPUTS
    assert tuple(optim._optimizer_classes()) == _core.OPTIMIZERS
    assert _core.ISAS == ("generic", "avx2", "avx512")
    _, _, attributes = _stub()
    assert {"ACTIVATIONS", "OUTPUTS", "OPTIMIZERS", "ISAS"} <= attributes


def test_names_round_trip_through_the_tables_whatever_the_enum_order():
    # A Workspace stores enum values and reports names: each name comes back as given (the old
    # reverse lookup indexed an array by the enum's numeric value).
    hidden = list(_core.ACTIVATIONS)
    for output in _core.OUTPUTS:
        ws = _core.Workspace([2] * (len(hidden) + 2), 1, "float64", hidden, output)
        assert ws.activations == hidden and ws.output == output


def test_an_unknown_name_lists_the_table():
    with pytest.raises(ValueError, match="expected one of 'relu', 'leaky_relu'"):
        _core.Workspace([2, 3, 2], 1, "float32", ["swish"])
    with pytest.raises(ValueError, match="unknown instruction set 'sse9'; expected one of 'generic', 'avx2'"):
        fastmlp._core.set_isa("sse9")
