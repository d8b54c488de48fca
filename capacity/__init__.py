"""capacity: measured capacity planning for trading systems.

Stages, each a subpackage importing only from those before it (tests/test_package_boundaries.py checks):
scenario -> measure -> results -> generator -> run -> sweep -> fit -> audit -> report -> gate -> cli. Shared
helpers at the top level: ``exit_codes``, ``input_limits``, ``jsonfile``, ``text``; ``testing`` holds
synthetic data.
"""
