"""Data-parallel training over MPI: test_distributed.py (also its single-process parts) and the worker
scripts it starts with mpirun (run as scripts, never imported by pytest)."""
