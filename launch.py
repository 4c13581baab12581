"""Start Knowledge Workbench: `python launch.py [--port N] [--host H --password P] ...`.

The same as `workbench serve`; see `python launch.py --help`.
"""

import sys

from workbench.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
