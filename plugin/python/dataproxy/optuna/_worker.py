"""A worker process started by `dataproxy-optuna --workers N` (internal entry point). Its settings
come on stdin as one JSON document, so that the storage URL's password never shows in argv."""

import sys

from .study import worker_process_main

if __name__ == "__main__":
    sys.exit(worker_process_main(sys.stdin.read()))
