"""capacity.results: the files a measurement leaves and the decisions read from them.

``run_file`` (``run.json``, format ``capacity-run/1``: the model, ``read_run``, ``write_run``),
``loadgen_file`` (what a load generator writes: ``loadgen.json``, ``progress.json``, HDR logs),
``verdicts`` (every threshold and verdict, as structured values), ``verdict_text`` (those verdicts as
sentences, at the edge) and ``summary_contract`` (``capacity run --summary-json``, format
``capacity-run-summary/1``).
"""
