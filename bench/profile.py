"""Where does `gongdan serve` spend its CPU in one benchmark phase? py-spy on a one-worker server under load.

    pip install py-spy                                  # not a project dependency
    python -m bench.profile --phase list --reuse        # after one `python -m bench.api` has seeded gongdan_bench

Prints the functions with the most samples, inclusive and own ("self"), and keeps py-spy's collapsed stacks in
bench/results/profile-<phase>.txt (feed them to flamegraph.pl or speedscope for a picture).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

from bench import api, procs
from bench.seed import Plan


def summarize(collapsed: Path, top: int = 25) -> dict[str, list[tuple[str, float]]]:
    """Top functions by inclusive and by own share of samples, from py-spy's --format raw output."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if f]
        total += n
        for frame in set(frames):
            inclusive[frame] += n
        if frames:
            own[frames[-1]] += n

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * n / max(1, total), 1)) for f, n in counter.most_common(top)]

    return {"inclusive_pct": share(inclusive), "self_pct": share(own)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0] if __doc__ else "")
    p.add_argument("--phase", choices=("create", "list", "detail", "queue"), default="list")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--reuse", action="store_true")
    p.add_argument("--tickets", type=int, default=100_000)
    p.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    a = p.parse_args(argv)
    cfg = api.Config(reuse=a.reuse, workers=1, duration_s=a.seconds, warmup_s=1.0,
                     plan=Plan(tickets=a.tickets))
    dataset = api.prepare(cfg)
    env = procs.gongdan_env(cfg.database_url, db_pool_size=cfg.db_pool_size)
    token = procs.gongdan(["token", "create", "--staff", "lina", "--name", "profile"], env).strip().splitlines()[-1]
    # the same callers as bench.api: creates come from an integration's admin token
    admin = procs.gongdan(["token", "create", "--staff", "admin", "--name", "profile-api"],
                          env).strip().splitlines()[-1]
    port = procs.free_port()
    out = procs.RESULTS / f"profile-{a.phase}.txt"
    with procs.Server("gongdan-profile", api.serve_argv(port, 1), env=env, port=port) as server:
        spec = api.phase_specs(dataset, port=port, token=token, create_token=admin)[a.phase]
        # with --workers 1 uvicorn serves in the process it was started as
        pid = server.pids()[0]
        result: dict[str, object] = {}
        loader = threading.Thread(target=lambda: result.update(
            api.run_phase(cfg, spec, procs.CpuMeter({"server": server.pids()}))))
        loader.start()
        time.sleep(1.5 + 0.2 + cfg.warmup_s)
        subprocess.run([a.py_spy, "record", "--pid", str(pid), "--duration", str(int(a.seconds) - 1),
                        "--rate", "200", "--format", "raw", "--output", str(out), "--nonblocking"],
                       check=True, capture_output=True)
        loader.join()
    print(f"phase {a.phase}: {result.get('req_per_s')} req/s, p50 {result.get('p50_ms')} ms, "
          f"p99 {result.get('p99_ms')} ms (while sampled)")
    summary = summarize(out)
    for title, rows in (("inclusive", summary["inclusive_pct"]), ("self", summary["self_pct"])):
        print(f"\n-- top functions, {title} % of samples --")
        for frame, pct in rows:
            print(f"{pct:6.1f}  {frame}")
    print(f"\ncollapsed stacks: {out}")


if __name__ == "__main__":
    main()
