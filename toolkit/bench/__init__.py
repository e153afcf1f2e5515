"""Benchmarks: one module per `toolkit bench NAME` (HELP, add_arguments, run)."""
