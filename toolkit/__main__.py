import sys

from toolkit.cli import main

# The guard matters: worker processes started with `spawn` (parallel rollouts) re-import the
# main module as `__mp_main__`, and must not run the CLI again.
if __name__ == "__main__":
    sys.exit(main())
