"""``python -m server_stub [OPTIONS]``: the reference server with ``wsctl serve``'s options,
without wsctl's CLI (it starts faster, which tests and benchmarks that spawn it notice)."""

import sys

from server_stub.command import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
