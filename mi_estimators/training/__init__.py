"""The shared trainer kit: data, augmentation, the loop, checkpoints, DDP, probes, encoders.

Both self-supervised trainers (the ``dim`` and ``amdim`` plugins) are built on this package; a
trainer plugin is one file of model + objective.

Writing a trainer
-----------------
::

    from mi_estimators.training import Trainer, Augment, two_views, gather_with_grad

    class MyTrainer(Trainer):
        '''One-line description shown by ``mi-estimators train my --help``.'''
        defaults = {"bound": "infonce", "encoder": "my-encoder", "lr": 2e-4, "batch_size": 128}

        @classmethod
        def add_own_arguments(cls, group):          # only the trainer's own options
            group.add_argument("--alpha", type=float, default=1.0)

        def make_inputs(self, x):                   # x: (B, C, H, W) floats in [0, 1], on the device
            aug = Augment(translate=2, colour=0.4, grayscale=0.25)
            v1, v2 = two_views(x, aug, shared_flip=True)
            return self.normalise(v1), self.normalise(v2)

        def build_objective(self, encoder, shapes):  # shapes: feature_shapes(encoder, ...)
            return MyObjective(encoder, shapes, self.bound(), self.args)

    # MyObjective(nn.Module).forward(inputs) -> {"loss": scalar tensor,
    #     "logs": {name: scalar}, "features": encoder outputs (dict) for the online probe}

Register it under ``[project.entry-points."mi_estimators.trainers"]`` (``my = "pkg.mod:MyTrainer"``).
The CLI then runs ``MyTrainer.add_arguments(parser)`` and ``MyTrainer.run(args) -> dict``;
``MyTrainer.run(args, train=ImageData(...), test=...)`` trains on in-memory tensors, and
``MyTrainer.parse([...argv])`` builds ``args`` from a command line.

Shared options (:func:`add_common_arguments`, defaults overridable through ``Trainer.defaults``):
``--dataset fashion-mnist|mnist|idx|digits|folder --data-dir --limit --test-limit --image-size
--num-workers``; augmentation ``--translate --crop-scale --flip --colour --grayscale`` (all off by
default; the default ``make_inputs`` applies them to one view, ``self.augmentation()`` builds the
matching ``Augment`` for a trainer's own ``make_inputs``); ``--encoder --encoder-option K=V --bound
--bound-option K=V``; ``--epochs --batch-size --lr --weight-decay --warmup-steps --schedule
--grad-clip --seed``; ``--out --resume --eval-only --device --precision --no-progress``;
``--probe-features --probe-limit --online-probe --knn``.

What the loop does (:class:`Trainer`)
-------------------------------------
* Device ``auto``: CUDA with bf16 autocast and channels_last when present, else the CPU.
* torchrun: ``torchrun --nproc_per_node=N -m mi_estimators.cli train NAME ...`` runs DDP (gloo on
  the CPU, NCCL on CUDA); each rank reads a disjoint shard of every epoch (``EpochBatches``, a
  ``DistributedSampler`` keyed by seed and epoch); only rank 0 logs and writes files.
  ``--batch-size`` is per process.
* Seeds, tqdm progress with loss and images/s, gradient-norm clipping, linear LR warm-up then
  cosine (or constant), an online linear probe on detached features.
* NaN/Inf loss: stops with :class:`TrainingDivergedError` (a ``ValueError``) before the bad step
  is applied; the last checkpoint stays as it was.
* Checkpoints (``OUT/checkpoint.pt``: model, optimiser, scheduler, every rank's RNG states, step,
  epoch, position in the epoch, history), written atomically at every epoch end and on
  SIGINT/SIGTERM (mid-epoch, exact). ``--resume`` continues exactly where the run stopped; after
  SIGKILL it restarts from the last epoch end.
* At the end: linear probe (softmax regression on frozen, standardised features of the train
  split, accuracy on the test split; ``--knn K`` adds k-NN accuracy), printed and written with the
  config and per-epoch history to ``OUT/metrics.json``. ``--epochs 0`` probes the encoder at
  initialisation; ``--eval-only`` probes the checkpoint in ``--out`` (any ``--probe-features``) and writes
  ``OUT/eval-metrics.json``.

Encoder contract (:mod:`mi_estimators.training.encoders`)
----------------------------------------------------------
A registry entry of kind ``encoders``: ``factory(in_channels, image_size, **options) -> nn.Module``
whose ``forward(x)`` returns ``dict[str, Tensor]``: ``"global"`` ``(B, D)`` (required), local maps
``(B, C, H, W)`` under any names (e.g. ``"local"``, ``"f5"``, ``"f7"``), optional extra vectors
``(B, D')``. ``feature_shapes(encoder, in_channels, image_size)`` tells a trainer which exist
(``local_maps(shapes)`` lists the maps). Optional attributes: ``default_local`` (the map a
single-scale trainer uses) and ``default_probe`` (keys the probes read). Build one with
``build_encoder(name, in_channels, image_size, **options)``; ``--encoder NAME`` works for every
trainer, including encoders from third-party packages.

Distributed contrastive losses (:mod:`mi_estimators.training.distributed`)
-------------------------------------------------------------------------
``gather_with_grad(x)`` concatenates ``x`` over ranks along dim 0 with gradients (identity on one
process); ``rank_offset(B)`` = ``rank * B``. Either gather both sides and score the global batch
(works with every bound), or score local antecedents against gathered consequents with
``nce_loss(scores, pos_offset=rank_offset(B))``. Both give the loss and gradients of one process
holding the global batch.

Critic heads (:mod:`mi_estimators.training.heads`)
---------------------------------------------------
``EmbedHead(n_in, n_out, hidden, spatial=)``: the residual MLP ``W2 ReLU(W1 x) + P x`` that both
trainers' encode-and-dot-product critics embed features with (1x1 convolutions when ``spatial``).

Data (:mod:`mi_estimators.training.data`), augmentation (:mod:`~mi_estimators.training.augment`),
probes (:mod:`~mi_estimators.training.probe`), checkpoints (:mod:`~mi_estimators.training.checkpoint`)
-------------------------------------------------------------------------------------------------
``load_dataset(name, split, data_dir=, limit=, image_size=)`` -> ``ImageData(images (N, C, H, W)
uint8, labels (N,))``; ``read_idx(path)``; a missing dataset raises ``DatasetNotFoundError`` (a
``FileNotFoundError``) saying how to install it or which path to pass. ``Augment(translate=,
crop_scale=, flip=, colour=, grayscale=)(x)`` and ``two_views(x, augment, shared_flip=)`` work on
whole batches on the device. ``linear_probe``, ``knn_accuracy``, ``extract_features``,
``OnlineProbe``; ``save_atomic``, ``load_checkpoint``, ``capture_rng``, ``restore_rng``.
"""

from mi_estimators.training.augment import Augment, two_views
from mi_estimators.training.checkpoint import capture_rng, load_checkpoint, restore_rng, save_atomic
from mi_estimators.training.data import (
    DATASETS,
    DatasetNotFoundError,
    EpochBatches,
    ImageData,
    as_float,
    load_dataset,
    read_idx,
)
from mi_estimators.training.distributed import gather_with_grad, rank_offset
from mi_estimators.training.encoders import build_encoder, check_features, feature_shapes, local_maps
from mi_estimators.training.heads import EmbedHead
from mi_estimators.training.loop import (
    CHECKPOINT_NAME,
    Trainer,
    TrainingDivergedError,
    add_common_arguments,
    parse_options,
    select_features,
)
from mi_estimators.training.probe import OnlineProbe, extract_features, knn_accuracy, linear_probe

__all__ = [
    "Augment", "two_views",
    "capture_rng", "load_checkpoint", "restore_rng", "save_atomic",
    "DATASETS", "DatasetNotFoundError", "EpochBatches", "ImageData", "as_float", "load_dataset", "read_idx",
    "gather_with_grad", "rank_offset",
    "build_encoder", "check_features", "feature_shapes", "local_maps", "EmbedHead",
    "CHECKPOINT_NAME", "Trainer", "TrainingDivergedError", "add_common_arguments", "parse_options",
    "select_features",
    "OnlineProbe", "extract_features", "knn_accuracy", "linear_probe",
]
