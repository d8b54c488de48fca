"""The exit codes of every ``capacity`` command, in one place (the README's "Exit codes" table).

A run or sweep and the gate share the meanings: 0 all is well, 1 something measured is wrong (an SLO
failed, a run broke, a regression), 2 the input was bad and nothing ran, 3 the measurement cannot say
(generator-bound or a disturbed machine; the gate only with ``--strict``), 130 interrupted by Ctrl-C.
The native generator's child-process codes are its own protocol (``capacity.generator.native_generator``).
"""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INCONCLUSIVE = 3
EXIT_INTERRUPTED = 130
