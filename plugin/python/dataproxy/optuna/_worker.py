"""A worker process started by `dataproxy-optuna --workers N` (internal entry point)."""

import sys

from .study import worker_process_main

if __name__ == "__main__":
    sys.exit(worker_process_main(sys.argv[1:]))
