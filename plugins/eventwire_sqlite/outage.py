"""Make the database file unavailable for a while: the sqlite backend's "broker restart".

``python -m eventwire_sqlite.outage PATH [--seconds 3]`` takes the file's write lock for that
long (every other process's writes wait ``busy_timeout``, then fail and are retried), then
checkpoints the write-ahead log into the file and lets go — what a restart of a broker
process is to a networked backend. The conformance suite's G16 runs it as the restart
command: ``eventwire conformance run sqlite:///tmp/t.db?busy_timeout=1 --restart-cmd
'python -m eventwire_sqlite.outage /tmp/t.db'``.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from pathlib import Path


def outage(path: Path, seconds: float) -> None:
    """Hold the write lock of `path` for `seconds`, then checkpoint its log."""
    connection = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        time.sleep(seconds)
        connection.execute("ROLLBACK")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eventwire_sqlite.outage")
    parser.add_argument("path", type=Path, help="the database file")
    parser.add_argument("--seconds", type=float, default=3.0, help="how long (default 3)")
    args = parser.parse_args(argv)
    if not args.path.is_file():
        print(f"eventwire_sqlite.outage: {args.path} is not a database file", file=sys.stderr)
        return 2
    outage(args.path, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
