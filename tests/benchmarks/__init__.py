"""Benchmarks, run by `make bench` only (the default test run ignores this directory)."""
