#!/usr/bin/env python3
"""Which tables and indexes a running Duet's SQLite commits write, from its WAL.

Usage: scripts/bench/sqlite-wal-pages.py DB_FILE   (while `duet-bench run` drives the server)

Copies the database and its -wal file (a snapshot; the server keeps running), keeps the WAL
frames of the current generation (those whose salts match the WAL header), and names the
B-tree each frame's page belongs to (SQLite's dbstat table, on the copy). Prints, per table
or index, the pages written per commit: in WAL mode each is one 4 KiB frame written and
checksummed at COMMIT, so this is where a batch's I/O goes. Needs python3's sqlite3 module
with dbstat (Debian's has it).
"""
import collections
import os
import shutil
import sqlite3
import struct
import sys
import tempfile

WAL_HEADER = 32
FRAME_HEADER = 24


def frames(wal: bytes):
    """(page number, is a commit) of each frame of the WAL's current generation."""
    if len(wal) < WAL_HEADER:
        return
    page_size = struct.unpack(">I", wal[8:12])[0]
    salts = wal[16:24]
    size = FRAME_HEADER + page_size
    for offset in range(WAL_HEADER, len(wal) - size + 1, size):
        page, commit = struct.unpack(">II", wal[offset : offset + 8])
        if wal[offset + 8 : offset + 16] != salts:
            break  # the rest is from an earlier generation
        yield page, commit != 0


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    db = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "copy.db")
        with open(db + "-wal", "rb") as f:
            wal = f.read()
        shutil.copy(db, copy)
        with open(copy + "-wal", "wb") as f:
            f.write(wal)
        written = list(frames(wal))
        owners = dict(sqlite3.connect(copy).execute("SELECT pageno, name FROM dbstat"))
    commits = sum(1 for _, commit in written if commit)
    if commits == 0:
        print("no commit in the WAL's current generation yet: try again during the run")
        return 1
    print(f"{len(written)} frames, {commits} commits, {len(written) / commits:.1f} pages per commit")
    for name, count in collections.Counter(owners.get(p, "?") for p, _ in written).most_common():
        print(f"{name:34s} {count / commits:8.1f} pages/commit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
