"""``python -m os_collect_config``: the same as the console script (used to re-exec when argv[0] is no path)."""
import sys

from os_collect_config.cli import main

if __name__ == "__main__":
    sys.exit(main())
