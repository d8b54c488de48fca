"""``python -m reference_exchange`` and the ``reference-exchange`` script."""

import sys

from reference_exchange.engine_types import StaleBuild


def main() -> int:
    try:
        # Imported here: the import itself refuses a compiled engine older than its source (StaleBuild),
        # which must reach the user as one line and exit 2, not a traceback.
        from reference_exchange.server import main as serve
    except StaleBuild as error:
        print(f"reference-exchange: {error}", file=sys.stderr)
        return 2
    return serve()


if __name__ == "__main__":
    sys.exit(main())
