"""``python -m softmax_verify``: the same as the ``softmax-verify`` command."""

import sys

from softmax_verify.cli import main

sys.exit(main())
