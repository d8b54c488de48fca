"""capacity.run: one run of one scenario, ``capacity run`` without the command line.

``orchestrator`` (``run_scenario(scenario, RunOptions(...)) -> RunResult``: start the exchange or check the
target, pin, sample, generate, summarise, write ``run.json``), ``exchange_process`` (the embedded exchange),
``loadgen_reader`` and ``series`` (the generator's files into per-second rows), ``summary`` (the run's summary
and limit), ``record`` (the files a run keeps as it goes, and ``--finish``), ``environment`` (machine facts)
and ``progress`` (the live display).
"""
