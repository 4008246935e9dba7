"""Benchmarks (run by scripts/bench-*): figures for the README, never timing assertions."""
