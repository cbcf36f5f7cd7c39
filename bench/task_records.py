"""What a benchmark task writes, whichever system runs it (Celery or procrastinate), so the
scenarios read every system's work the same way.

``work``: one line ``sent started ended`` (Unix seconds) in ``BENCH_OUT`` when it is done.
``slow`` (the crash scenario's task): its number in ``BENCH_OUT.started`` when it starts and in
``BENCH_OUT.done`` when it ends, so a run killed in between shows which tasks never finished.
"""

from __future__ import annotations

import os
import time


def _append(path: str, line: str) -> None:
    # One short write in append mode: lines from several worker processes do not interleave.
    with open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")


def record_work(sent_at: float, duration_s: float) -> None:
    started = time.time()
    if duration_s:
        time.sleep(duration_s)
    _append(os.environ["BENCH_OUT"], f"{sent_at:.6f} {started:.6f} {time.time():.6f}")


def record_slow(number: int, duration_s: float) -> None:
    out = os.environ["BENCH_OUT"]
    _append(f"{out}.started", str(number))
    time.sleep(duration_s)
    _append(f"{out}.done", str(number))
