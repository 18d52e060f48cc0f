import os

# pytest -n 2 on 2 cores: one BLAS thread per worker (numpy and torch read these on import), or the
# workers' thread pools oversubscribe the cores and spin
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import torch  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# CI: no deadline (shared, noisy 2-core machines), print the blob to reproduce a failure, and the
# same examples on every run (derandomize), so that a red CI is a change's doing and reproduces
# locally; the dev profile draws new examples each run, where new edge cases get found.
settings.register_profile("ci", deadline=None, print_blob=True, max_examples=40, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=15)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

torch.set_num_threads(1)  # pytest -n 2 on 2 cores: one thread per worker
