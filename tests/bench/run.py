"""``make bench``: run every ``tests/bench/bench_*.py`` (or those named on the command line).

Each bench module defines ``main(out: pathlib.Path) -> dict`` that measures a target as a ratio against a
reference run in the same process, prints its own table and returns a flat dict of figures (ratios and
absolute numbers). Results are collected in ``<out>/bench.json`` (``--out DIR``, default ``out/bench``).
Benchmarks never run inside ``make test``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def main(argv: list[str]) -> int:
    out = Path("out/bench")
    if argv[:1] == ["--out"] and len(argv) > 1:  # make bench OUT=dir
        out, argv = Path(argv[1]), argv[2:]
    out.mkdir(parents=True, exist_ok=True)
    names = argv or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    results: dict[str, dict] = {}
    failed = []
    for name in names:
        path = HERE / f"bench_{name}.py"
        if not path.is_file():
            print(f"error: no benchmark {name!r} ({path} missing); available: "
                  + ", ".join(p.stem[6:] for p in HERE.glob('bench_*.py')), file=sys.stderr)
            return 2
        spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        print(f"=== bench {name}", flush=True)
        t0 = time.perf_counter()
        res = mod.main(out / name)
        res["wall_s"] = round(time.perf_counter() - t0, 2)
        results[name] = res
        if res.get("target_met") is False:
            failed.append(name)
    (out / "bench.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"results: {out / 'bench.json'}")
    if failed:
        print(f"targets missed: {', '.join(failed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
