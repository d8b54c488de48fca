"""capacity.cli: the ``capacity`` command (``main.COMMANDS`` lists its subcommands) and ``make demo``.

One module per subcommand (``run``, ``sweep``, ``fit``, ``report``, ``gate``, ``baseline``), the options
``run`` and ``sweep`` share (``run_options``), signal handling (``signals``) and ``demo``. The last stage:
nothing else imports it.
"""
