"""A process writing the database file crashes, and another opens it again: the sqlite
backend's "broker restart".

``python -m eventwire_sqlite.outage PATH [--seconds 3]`` starts a writer process that takes
the file's write lock and writes the pages of a transaction it never commits into the
write-ahead log. Every other process's writes wait ``busy_timeout`` meanwhile, then fail and
are retried. After `seconds` the writer is SIGKILLed. This process then opens the file: SQLite
drops the pages nobody committed. It checks the file (``PRAGMA quick_check``) and checkpoints
the log into it. That is what a broker process crashing and starting again is to a networked
backend. The conformance suite's G16 and G22 run it as the restart and kill command:
``eventwire conformance run sqlite:///tmp/t.db?busy_timeout=1 --restart-cmd 'python -m
eventwire_sqlite.outage /tmp/t.db'``.
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["SCRATCH_TABLE", "crashing_writer", "outage"]

#: The table the writer creates and fills in its transaction (gone once it crashed).
SCRATCH_TABLE = "eventwire_outage_scratch"

_WRITER = f"""
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], timeout=float(sys.argv[2]), isolation_level=None)
connection.execute("PRAGMA cache_size=10")  # the transaction's pages spill into the log
connection.execute("BEGIN IMMEDIATE")
connection.execute("CREATE TABLE {SCRATCH_TABLE} (junk BLOB)")
connection.executemany(
    "INSERT INTO {SCRATCH_TABLE} VALUES (randomblob(4096))", [()] * 64
)
print("holding", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def crashing_writer(path: Path, wait: float = 60.0) -> Iterator[None]:
    """Inside the block, a process holds `path`'s write lock in the middle of a transaction;
    at its end the process is SIGKILLed, and the file is opened again, checked and
    checkpointed. `RuntimeError` if the writer could not take the lock within `wait` seconds
    or the file is damaged afterwards."""
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path), str(wait)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert writer.stdout is not None
    try:
        if writer.stdout.readline() != b"holding\n":
            writer.wait()
            error = writer.stderr.read().decode(errors="replace") if writer.stderr else ""
            raise RuntimeError(f"the writer could not take {path}'s write lock: {error[-500:]}")
        yield
    finally:
        writer.kill()
        writer.communicate()
    _recover(path)


def _recover(path: Path) -> None:
    connection = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        (check,) = connection.execute("PRAGMA quick_check").fetchone()
        if check != "ok":
            raise RuntimeError(f"{path} is damaged after the writer's crash: {check}")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def outage(path: Path, seconds: float) -> None:
    """A writer holds `path`'s write lock for `seconds`, then crashes (`crashing_writer`)."""
    with crashing_writer(path):
        time.sleep(seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eventwire_sqlite.outage")
    parser.add_argument("path", type=Path, help="the database file")
    parser.add_argument("--seconds", type=float, default=3.0, help="how long (default 3)")
    args = parser.parse_args(argv)
    if not args.path.is_file():
        print(f"eventwire_sqlite.outage: {args.path} is not a database file", file=sys.stderr)
        return 2
    try:
        outage(args.path, args.seconds)
    except RuntimeError as exc:
        print(f"eventwire_sqlite.outage: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
