"""``python -m server_stub [OPTIONS]`` is ``wsctl serve [OPTIONS]``."""

import sys

from wsctl.cli.main import app

if __name__ == "__main__":
    app(["serve", *sys.argv[1:]], prog_name="python -m server_stub")
