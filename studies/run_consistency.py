"""Self-consistency checks of ``mi_estimators.estimate()`` on Fashion-MNIST, where no closed form exists
(Song & Ermon 2020, arXiv:1910.06222, §6): independence, data processing, additivity, and the
classifier-certified lower bound of I(image; label). See ``mi_estimators/validation/consistency.py``.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python studies/run_consistency.py              # n = 5,000, all checks
    OMP_NUM_THREADS=1 .venv/bin/python studies/run_consistency.py --data-dir DIR          # IDX files elsewhere
    OMP_NUM_THREADS=1 .venv/bin/python studies/run_consistency.py --checks additivity --options ensemble=3

Writes ``report.md``, ``results.json`` and ``consistency.png`` to ``--out`` (default
``studies/consistency``) and prints the verdicts; exits 0 whether or not the checks pass (the
report says which failed). Every field of ``ConsistencyConfig`` is a flag (``--help``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from mi_estimators.argparsing import add_options, from_namespace
from mi_estimators.validation.consistency import ConsistencyConfig, run_consistency
from mi_estimators.validation.consistency_report import verdict_rows, write_consistency_report
from mi_estimators.validation.report import text_table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    add_options(p, ConsistencyConfig)
    p.add_argument("--out", default=str(Path(__file__).parent / "consistency"), help="output folder")
    args = p.parse_args(argv)
    config = from_namespace(ConsistencyConfig, args)
    given = sys.argv[1:] if argv is None else argv
    command = " ".join(["OMP_NUM_THREADS=1 .venv/bin/python studies/run_consistency.py",
                        *(shlex.quote(a) for a in given)]).strip()
    report = run_consistency(config, command=command)
    path = write_consistency_report(report, args.out)
    rows = [{k: v for k, v in r.items() if k != "test"} for r in verdict_rows(report)]
    print(text_table(rows, ["check", "lhs", "rhs", "tolerance", "margin", "ratio", "verdict"], digits=3))
    s = report.settings
    print(f"{sum(c.passed for c in report.checks)} of {len(report.checks)} checks pass; "
          f"{s['seconds']:.0f} s wall, {s['cpu_seconds']:.0f} s CPU; report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
