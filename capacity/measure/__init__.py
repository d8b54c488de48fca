"""capacity.measure: the instruments, before any file format or generator.

``latency`` (HdrHistogram recording of corrected and raw latency, percentiles, interval logs) and
``sampler`` (the server's and the generator's CPU and RSS with psutil, the exchange's own ``/api/metrics``).
They import nothing else from capacity.
"""
