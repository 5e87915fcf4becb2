"""``python -m mmdeploy``: the same command line as ``mmdeploy``."""
import sys

from mmdeploy.cli import main

if __name__ == '__main__':
    sys.exit(main())
