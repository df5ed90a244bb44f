"""``python -m graphrec``: the ``graphrec`` command (and the form ``torchrun`` launches)."""

import sys

from graphrec.cli import main

if __name__ == "__main__":
    sys.exit(main())
