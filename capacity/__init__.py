"""capacity: measured capacity planning for trading systems.

Stages, each importing only from those before it:
scenario -> run -> results -> fit -> report -> gate.
"""
