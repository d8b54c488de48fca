import sys

from reference_exchange.server import main

sys.exit(main())
