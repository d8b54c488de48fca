"""Synthetic data for tests and benchmarks, in the toolkit's real on-disk formats: never a measurement
(every run written here says so in its notes, and names a synthetic CPU)."""
