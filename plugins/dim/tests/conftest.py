"""Plugin tests run on shared 2-core machines: one torch thread per test process."""
import torch

torch.set_num_threads(1)
