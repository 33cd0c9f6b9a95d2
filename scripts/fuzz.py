"""Mutation-fuzz the load → build path: ``python scripts/fuzz.py --mutants 100000 [--seed S]``.

Each mutant of the shipped sample (progressive, fragmented and .ismv copies, see
tests/support/fuzzing.py) must be refused at load with a MediaError or build every output.
Prints the figures and the first findings with their seeds; ``--replay SEED`` reruns one mutant
and prints what was mutated and its traceback. Exit status 1 when there is a finding.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import fuzzing


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mutants", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0, help="first mutant's seed (seeds run on)")
    ap.add_argument("--replay", type=int, metavar="SEED", help="run one mutant, show it")
    ap.add_argument("--seconds", type=float, default=5.0, help="time bound per mutant")
    ap.add_argument("--show", type=int, default=5, help="findings printed in full")
    ap.add_argument("--reasons", type=int, default=40, help="refusal reasons listed")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "origin-fuzz")
    args = ap.parse_args()
    inputs = fuzzing.make_inputs(args.cache)

    if args.replay is not None:
        name, files, done = fuzzing.mutant(inputs, args.replay)
        print(f"seed {args.replay}: {name}: {'; '.join(done)}")
        with fuzzing.MemoryBound():
            out = fuzzing.check(files, seconds=args.seconds)
        print(out.kind, out.outputs or "")
        print(out.detail)
        return 1 if out.kind == "finding" else 0

    start = time.monotonic()

    def progress(r: fuzzing.Report) -> None:
        rate = r.mutants / (time.monotonic() - start)
        print(
            f"  {r.mutants} mutants, {r.refusals} refused, {r.built} built, "
            f"{len(r.findings)} findings ({rate:.0f}/s)",
            file=sys.stderr,
            flush=True,
        )

    seeds = range(args.seed, args.seed + args.mutants)
    r = fuzzing.run(inputs, seeds, seconds=args.seconds, progress=progress)
    took = time.monotonic() - start
    print(f"mutants run:        {r.mutants} (seeds {seeds.start}..{seeds.stop - 1}, {took:.0f} s)")
    print(f"refused at load:    {r.refusals}")
    reasons = r.refused.most_common()
    for reason, n in reasons[: args.reasons]:
        print(f"  {n:7d}  {reason}")
    if len(reasons) > args.reasons:
        rest = sum(n for _, n in reasons[args.reasons :])
        print(f"  {rest:7d}  ({len(reasons) - args.reasons} other reasons; --reasons N lists more)")
    print(f"fully built:        {r.built} ({r.outputs} outputs)")
    print(f"slowest mutant:     {r.slowest[0] * 1000:.0f} ms (seed {r.slowest[1]})")
    print(f"findings:           {len(r.findings)}")
    classes = Counter(fuzzing.finding_class(f[3]) for f in r.findings)
    for cls, n in classes.most_common():
        seed = next(f[0] for f in r.findings if fuzzing.finding_class(f[3]) == cls)
        print(f"  {n:7d}  {cls} (e.g. seed {seed})")
    for seed, name, done, detail in r.findings[: args.show]:
        print(f"\n--- seed {seed} ({name}: {'; '.join(done)})\n{detail}")
    if len(r.findings) > args.show:
        print(f"\n... and {len(r.findings) - args.show} more; seeds:")
        print(" ".join(str(f[0]) for f in r.findings[args.show :]))
    return 1 if r.findings else 0


if __name__ == "__main__":
    sys.exit(main())
