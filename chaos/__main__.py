"""``python -m chaos [--quick]``: one chaos run, its figures, exit 1 on failure."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

from chaos.run import Plan, run, say


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/chaos",
        description="Deliver many syncs while workers are killed and PostgreSQL "
        "restarts, then check that no notification was lost.",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", help="about a minute, fewer pairs"
    )
    size.add_argument(
        "--short", action="store_true", help="the test suite's smaller run"
    )
    parser.add_argument("--seed", type=int, default=1, help="same seed, same run")
    parser.add_argument(
        "--keep", action="store_true", help="keep the logs and records afterwards"
    )
    args = parser.parse_args()

    plan = Plan.full(args.seed)
    if args.quick:
        plan = Plan.quick(args.seed)
    elif args.short:
        plan = Plan.short(args.seed)

    workdir = Path(tempfile.mkdtemp(prefix="ctgo-chaos-"))
    say(f"{plan.name} run, seed {plan.seed}, in {workdir}")
    verdict = asyncio.run(run(plan, workdir))
    print(verdict.report(), flush=True)

    if args.keep or not verdict.passed:
        say(f"logs and the receiver's record are in {workdir / 'logs'}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if verdict.passed else 1


if __name__ == "__main__":
    sys.exit(main())
