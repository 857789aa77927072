"""Excel export at scale (issue 14): N rows × 12 columns through ``apps.core.xlsx.write_xlsx`` into a
file, timed, with the peak memory growth of the process (RSS high-water mark, and tracemalloc's peak
of Python allocations). Target: 1,000,000 rows in ≤ 60 s with peak growth ≤ 150 MB.

    .venv/bin/python bench/xlsx_export.py                 # 1,000,000 rows, 3 runs
    .venv/bin/python bench/xlsx_export.py --rows 100000 --runs 1 --verify
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apps.core.xlsx import Column, Sheet, write_xlsx  # noqa: E402

COLUMNS = [Column("Row", "int"), Column("Hour", "datetime", 18), Column("Campaign")] + [
    Column(name, "int") for name in ("Requests", "Bids", "Wins", "Clicks")] + [
    Column("Spend", "money"), Column("CTR", "percent"), Column("Win rate", "percent"),
    Column("Latency p50", "int"), Column("Latency p99", "int")]


def rows(n: int):
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    hour = dt.timedelta(hours=1)
    for i in range(n):
        wins = 900 + i % 97
        clicks = i % 41
        yield (i, start + hour * (i % 50_000), f"campaign-{i % 250}", 2000 + i % 13, 1500 + i % 11, wins, clicks,
               wins * 0.0015, clicks / wins, wins / 1500, 350 + i % 300, 2400 + i % 900)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--traced", action="store_true", help="also measure tracemalloc's peak (an untimed pass)")
    parser.add_argument("--verify", action="store_true", help="open the file with openpyxl (read-only) and count rows")
    args = parser.parse_args()
    print(f"# {args.rows:,} rows x {len(COLUMNS)} columns, load average {os.getloadavg()[0]:.1f}, pid {os.getpid()}")
    seconds, growth, traced = [], [], []
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "export.xlsx"
            before = rss_mb()
            started = time.perf_counter()
            write_xlsx(str(path), [Sheet("Rows", COLUMNS, rows(args.rows))])
            elapsed = time.perf_counter() - started
            peak = float("nan")
            if args.traced:  # tracemalloc slows every allocation several-fold: a separate, untimed pass
                tracemalloc.start()
                write_xlsx(str(path), [Sheet("Rows", COLUMNS, rows(args.rows))])
                peak = tracemalloc.get_traced_memory()[1] / 2**20
                tracemalloc.stop()
            seconds.append(elapsed)
            growth.append(rss_mb() - before)
            traced.append(peak)
            size = path.stat().st_size / 2**20
            print(f"run {run}: {elapsed:.1f} s ({args.rows / elapsed:,.0f} rows/s), RSS high-water growth "
                  f"{growth[-1]:.1f} MB, tracemalloc peak {peak:.1f} MB, file {size:.1f} MB")
            if args.verify:
                import openpyxl

                book = openpyxl.load_workbook(path, read_only=True)
                count = sum(1 for _ in book["Rows"].iter_rows(min_row=2, values_only=True))
                print(f"  openpyxl reads {count:,} data rows")
    print(f"median {statistics.median(seconds):.1f} s (min {min(seconds):.1f}, max {max(seconds):.1f}); "
          f"peak growth max {max(growth):.1f} MB RSS, {max(traced):.1f} MB traced")


if __name__ == "__main__":
    main()
