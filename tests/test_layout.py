"""The test tree itself: a plain pytest run over tests/ collects every tests/**/test_*.py (none left out by a
folder rule, a name clash or an import error), each layer folder is a package that holds tests, and no Python
file outside the test_*.py pattern defines tests that pytest would never see. It checks the layout only, not
what the tests in it assert."""

import ast
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
LAYERS = ["kernels", "reference", "api", "integrations", "robustness", "mpi"]
# Python files under tests/ that are not test modules, and why pytest must not collect them.
NOT_TEST_MODULES = {"__init__.py", "conftest.py", "helpers.py"}  # package markers, fixtures, plain helpers
MPI_WORKERS = {"mpi/train_worker.py", "mpi/failure_worker.py"}  # scripts run under mpirun by test_distributed.py

# Collects tests/ in a fresh interpreter (this run may have been given a subset) and writes, for each test
# module pytest visited, the outcome of collecting it: "passed", "skipped" (a module-level skip, e.g. a missing
# optional dependency) or "failed" (an import error).
COLLECT = textwrap.dedent("""
    import json, sys
    import pytest

    class RecordModules:
        def __init__(self):
            self.outcomes = {}

        def pytest_collectreport(self, report):
            if report.nodeid.endswith(".py"):
                self.outcomes[report.nodeid] = report.outcome

    record = RecordModules()
    root, tests, out = sys.argv[1:]
    pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "--rootdir", root, tests], plugins=[record])
    with open(out, "w") as f:
        json.dump(record.outcomes, f)
""")


def relative(path):
    return path.relative_to(TESTS).as_posix()


def test_every_test_file_is_collected(tmp_path):
    out = tmp_path / "outcomes.json"
    subprocess.run([sys.executable, "-c", COLLECT, str(ROOT), str(TESTS), str(out)], cwd=ROOT, check=True,
                   capture_output=True, text=True, timeout=600)
    outcomes = json.loads(out.read_text())
    on_disk = {f"tests/{relative(p)}" for p in TESTS.rglob("test_*.py")}
    assert len(on_disk) > 30
    assert sorted(on_disk - outcomes.keys()) == [], "test files pytest never visited"
    assert {nodeid: outcome for nodeid, outcome in outcomes.items() if outcome == "failed"} == {}


def test_each_layer_is_a_package_of_tests():
    for layer in LAYERS:
        folder = TESTS / layer
        assert (folder / "__init__.py").is_file(), f"tests/{layer}/ has no __init__.py"
        assert list(folder.glob("test_*.py")), f"tests/{layer}/ holds no test_*.py"
    folders = {p.parent.name for p in TESTS.rglob("test_*.py") if p.parent != TESTS}
    assert folders == set(LAYERS), "a test folder that is not a documented layer"
    assert [p.name for p in TESTS.glob("test_*.py")] == ["test_layout.py"], "tests belong in a layer folder"


def test_no_tests_hide_in_files_pytest_does_not_collect():
    for path in TESTS.rglob("*.py"):
        name = relative(path)
        if path.name.startswith("test_"):
            continue
        assert path.name in NOT_TEST_MODULES or name in MPI_WORKERS, f"tests/{name}: not a test module; say why"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        hidden = [node.name for node in tree.body
                  if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name.lower().startswith("test")]
        assert hidden == [], f"tests/{name} defines {hidden}, which pytest never collects from this file"


def test_every_test_file_and_doc_the_repository_cites_exists():
    # Docs and comments name test files ("promise -> test" tables) and docs; a file moved or
    # renamed without them leaves a reader following a dead path. Outside a source checkout
    # (the wheel's test run copies tests/ alone) there is nothing to read.
    if not (ROOT / "docs").is_dir() or not (ROOT / "python").is_dir():
        pytest.skip("not a source checkout: docs/ and python/ are not beside tests/")
    sources = [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("bench/*"), *ROOT.glob("python/**/*.py*"),
               *ROOT.glob("cpp/**/*.[ch]pp"), *TESTS.rglob("*.py")]
    cited = re.compile(r"\b((?:tests/[\w/]+\.py)|(?:docs/[\w-]+\.md))\b")
    dead = sorted({(str(path.relative_to(ROOT)), match) for path in sources if path.is_file()
                   for match in cited.findall(path.read_text(encoding="utf-8", errors="replace"))
                   if not (ROOT / match).exists()})
    assert dead == [], f"files that cite a path the repository does not hold: {dead}"


MAX_MODULE_LINES = 500  # issue 17: a module past this size is doing more than one job


def test_no_module_of_the_package_is_over_the_size_limit():
    """Every module of the installed package stays under MAX_MODULE_LINES lines: a larger one is split
    along its jobs (as network.py was into _inference.py, _lock.py and _model_file.py)."""
    import fastmlp

    package = Path(fastmlp.__file__).resolve().parent  # the installed package: in a wheel's test run too
    sizes = {str(path.relative_to(package)): len(path.read_text(encoding="utf-8").splitlines())
             for path in package.rglob("*.py")}
    assert len(sizes) > 30, "the package's modules were not found"
    too_big = {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not too_big, f"modules over {MAX_MODULE_LINES} lines: {too_big}"
