"""Benchmarks (scripts/bench-*, scripts/soak, scripts/sip-flood): figures for docs/, never
timing assertions."""
