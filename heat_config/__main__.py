"""``python -m heat_config``: the ``heat-config`` command, run by the same interpreter (os-collect-config uses it)."""
import sys

from heat_config.cli import main

sys.exit(main())
