"""The fault matrix at full length: every row of ``tests/faults`` (servers and processes of
its own killed and cut: beat, workers, Redis, PostgreSQL), with 30 s outages, 20 s jobs and
2,000 schedules a minute for 3 minutes, then a table of what each row expected and what it
observed.

    python -m bench.faults                 # the whole matrix at full length (~15 min)
    python -m bench.faults -k redis        # some rows (a pytest -k expression)
    python -m bench.faults --scale ci      # the lengths the test suite uses (~3 min)
    python -m bench.faults --json > rows.jsonl

It runs the rows as the suite does (pytest, real processes), so it needs what they need:
``DATABASE_URL`` naming PostgreSQL (the test process's database), Redis and PostgreSQL's
server binaries; the rows start their own servers and never touch the machine's. Not a
timed benchmark: a row reports counts, and the exit status says whether every row held.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import tables
from tests.faults.scale import SCALES

ROOT = Path(__file__).resolve().parent.parent
COLUMNS: list[tables.Column] = [
    ("row", "row", "{}"),
    ("expected", "expected", "{}"),
    ("observed", "observed", "{}"),
    ("held", "held", "{}"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("-k", dest="select", default="", help="pytest -k expression")
    parser.add_argument("--json", action="store_true", help="one JSON object per row")
    args = parser.parse_args(argv)
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        parser.error("DATABASE_URL must name PostgreSQL (the rows' test process uses it)")
    with tempfile.TemporaryDirectory() as scratch:
        rows_file = Path(scratch) / "rows.jsonl"
        env = {**os.environ, "FAULTS_SCALE": args.scale, "FAULTS_REPORT": str(rows_file)}
        command = [sys.executable, "-m", "pytest", "tests/faults", "-p", "no:cacheprovider"]
        command += ["-q", "--timeout", "1800"]
        if args.select:
            command += ["-k", args.select]
        done = subprocess.run(command, cwd=ROOT, env=env, stdout=sys.stderr)
        found = rows_file.read_text().splitlines() if rows_file.exists() else []
        rows = [json.loads(line) for line in found]
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print(f"Fault matrix, scale {args.scale}: {SCALES[args.scale]}")
        print("\n".join(tables.render(rows, COLUMNS, left={0, 1, 2})))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
