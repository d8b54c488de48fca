"""Reference exchange: the lean system under test that ships with the capacity toolkit.

Layers, each usable alone: ``engine`` (pure matching, integer ticks and lots), ``instruments``
(symbol specs and decimal <-> integer conversion), ``api`` (aiohttp transport), ``metrics``,
``simulation`` (background order flow) and ``server`` (process entry point).
"""
