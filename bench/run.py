"""Run every benchmark in bench/ and report one line per figure.

    .venv/bin/python -m bench.run            # all of them
    .venv/bin/python -m bench.run b5         # only modules starting with "b5"

A benchmark is a module ``bench/b<n>_<name>.py`` with ``run()`` returning a
list of dicts {id, name, figure, target, passed, details}. Each module runs in
a child process of its own, so each can point Django at its own database.
Prints ``B<n> <name>: <figure> target <target> PASS|FAIL`` per result, writes
bench/results.json, and exits 1 if any result failed (or a module crashed).
"""

import importlib
import json
import platform
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
MODULE_NAME = re.compile(r"^b\d+_\w+\.py$")
RESULT_KEYS = {"id", "name", "figure", "target", "passed", "details"}


def discover(prefixes=()):
    modules = sorted(
        path.stem
        for path in BENCH_DIR.glob("b*_*.py")
        if MODULE_NAME.match(path.name) and (not prefixes or path.stem.startswith(prefixes))
    )
    return sorted(modules, key=lambda stem: int(re.match(r"b(\d+)", stem).group(1)))


def run_module_here(stem):
    """Child process: run one module, print its results as JSON on the last line."""
    module = importlib.import_module(f"bench.{stem}")
    results = module.run()
    for result in results:
        missing = RESULT_KEYS - set(result)
        if missing:
            raise ValueError(f"{stem}: result lacks {sorted(missing)}")
    print("BENCH-RESULTS " + json.dumps(results, default=str))


def run_module(stem):
    started = time.perf_counter()
    child = subprocess.run(
        [sys.executable, "-m", "bench.run", "--child", stem],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = round(time.perf_counter() - started, 1)
    for line in reversed(child.stdout.splitlines()):
        if line.startswith("BENCH-RESULTS "):
            results = json.loads(line.removeprefix("BENCH-RESULTS "))
            for result in results:
                result["details"].setdefault("module_seconds", seconds)
            return results
    sys.stderr.write(child.stdout[-4000:] + child.stderr[-4000:])
    return [
        {
            "id": stem.split("_")[0].upper(),
            "name": stem,
            "figure": f"crashed (exit {child.returncode})",
            "target": "runs",
            "passed": False,
            "details": {"stderr": child.stderr[-4000:], "module_seconds": seconds},
        }
    ]


def format_line(result):
    verdict = "PASS" if result["passed"] else "FAIL"
    return (
        f"{result['id']} {result['name']}: {result['figure']} target {result['target']} {verdict}"
    )


def main(argv):
    if argv[:1] == ["--child"]:
        run_module_here(argv[1])
        return 0
    everything = []
    for stem in discover(tuple(argv)):
        for result in run_module(stem):
            print(format_line(result), flush=True)
            everything.append(result)
    report = {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "results": everything,
    }
    (BENCH_DIR / "results.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0 if everything and all(result["passed"] for result in everything) else 1


def _cpus():
    import os

    return os.cpu_count()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
