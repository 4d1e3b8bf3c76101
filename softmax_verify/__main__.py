"""``python -m softmax_verify``: the command, under its supervisor (``isolation.supervisor``)."""

import sys

from softmax_verify.isolation.supervisor import main

sys.exit(main())
