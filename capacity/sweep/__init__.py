"""capacity.sweep: tiers run one after another (``capacity sweep``).

``runner`` (``run_sweep``: each tier a ``capacity.run`` run, cooldowns, repeats, stop rules) and
``sweep_file`` (``sweep.json``, format ``capacity-sweep/1``).
"""
