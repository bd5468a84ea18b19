"""Time the embedded services: first start, start on existing data, reuse of running ones.

.venv/bin/python bench/embedded_startup.py
"""

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avatar_adam import embedded


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    var_dir = Path(tempfile.mkdtemp(prefix="aa-bench-"))
    try:
        first = timed(lambda: (embedded.ensure_postgres(var_dir), embedded.ensure_redis(var_dir)))
        reuse = [
            timed(lambda: (embedded.ensure_postgres(var_dir), embedded.ensure_redis(var_dir)))
            for _ in range(20)
        ]
        restarts = []
        for _ in range(3):
            embedded.stop_all(var_dir)
            restarts.append(
                timed(lambda: (embedded.ensure_postgres(var_dir), embedded.ensure_redis(var_dir)))
            )
        print(f"first start (initdb + redis):     {first:6.2f} s")
        print(f"start on existing data (median):  {statistics.median(restarts):6.2f} s")
        print(f"reuse running servers (median):   {statistics.median(reuse) * 1000:6.1f} ms")
    finally:
        embedded.stop_all(var_dir)
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
