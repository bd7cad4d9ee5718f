"""python -m faults: the same as `antifraud faults`."""

import sys

from faults.suite import main

sys.exit(main())
