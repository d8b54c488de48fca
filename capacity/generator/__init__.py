"""capacity.generator: the load generators (docs/engines.md).

``native_engine`` and ``native_generator`` (the default engine: open-model arrivals on uvloop, one
process per generator core), ``locustfile`` and ``locust_web`` (the same scenario run by Locust, with a
Capacity tab in its web UI), and what both share: ``order_flow`` (the scenario's requests), ``pacing`` (the
arrival schedule), ``send_timer``, ``http_wire`` and ``preflight`` (the target's market, and whether it is the
exchange API at all). They write ``capacity.results.loadgen_file`` files.
"""
