"""The full-size Poole et al. staircase for every registered bound; writes studies/staircase/.

    nice -n 10 .venv/bin/python studies/run_staircase.py --critic separable --steps-per-level 4000
    nice -n 10 .venv/bin/python studies/run_staircase.py --layers 3 --out studies/staircase_smile_critic

``--layers 3`` is the critic of Song & Ermon's SMILE code (its ``mlp(layers=2)`` puts two hidden
layers after the first: three in all), the one behind their published staircase figures; Poole et
al.'s separable critic has two (the default).

Same as ``mi-estimators validate --tasks --critics separable --out studies/staircase`` but
with the output folder named per critic, so that separable and concat runs can go separately.
"""

import argparse
import sys
from pathlib import Path

from mi_estimators.validation import ValidationConfig, run_validation
from mi_estimators.validation.report import summary_text

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--critic", default="separable", choices=("separable", "concat"))
    p.add_argument("--steps-per-level", type=int, default=4000)
    p.add_argument("--layers", type=int, default=2, help="hidden layers of 256 in each MLP")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    out = Path(a.out or Path(__file__).parent / f"staircase_{a.critic}")
    config = ValidationConfig(tasks=(), critics=(a.critic,), steps_per_level=a.steps_per_level,
                              staircase_layers=a.layers, device=a.device, threads=a.threads, progress=True)
    report = run_validation(config, out=out,
                            command="python studies/run_staircase.py " + " ".join(sys.argv[1:]))
    print(summary_text(report))
