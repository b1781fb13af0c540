"""fastmlp's test suite, one package per layer (each folder's __init__.py says what it holds); packages so
that modules share helpers (tests.helpers) and fixtures (conftest.py) by import rather than by copy."""
