"""What must hold when things go wrong: bad arguments, hostile files, divergence, Ctrl-C, threads and
processes, leaks, and sizes past 2^31."""
