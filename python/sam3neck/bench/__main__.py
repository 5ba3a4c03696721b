"""`python -m sam3neck.bench`: the benchmark's command (also `sam3neck bench`), and the entry point of
its worker subprocesses (`--worker SPEC`)."""

import sys

from .harness import main

sys.exit(main())
