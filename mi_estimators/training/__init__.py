"""The shared trainer kit: config, data, augmentation, the loop, checkpoints, DDP, probes, encoders.

Both self-supervised trainers (the ``dim`` and ``amdim`` plugins) are built on this package; a
trainer plugin is one file of config + model + objective. The options are documented once, in the
parser generated from the config: ``mi-estimators train NAME --help``.

Writing a trainer
-----------------
::

    import dataclasses
    from mi_estimators.training import Trainer, TrainConfig, option, override, two_views

    @dataclasses.dataclass(frozen=True)
    class MyConfig(TrainConfig):
        name = "my"                                            # titles its options in --help
        encoder: str | None = override("encoder", "my-encoder")  # another default, same help
        alpha: float = option(1.0, "weight of the second term")  # an option of its own

    class MyTrainer(Trainer):
        '''One-line description shown by ``mi-estimators train my --help``.'''
        config_class = MyConfig

        def make_inputs(self, x):                   # x: (B, C, H, W) floats in [0, 1], on the device
            v1, v2 = two_views(x, self.augmentation(flip=False), shared_flip=self.config.flip)
            return self.normalise(v1), self.normalise(v2)

        def build_objective(self, encoder, shapes):  # shapes: feature_shapes(encoder, ...)
            return MyObjective(encoder, shapes, self.bound(), self.config.alpha, gather=self.dist.gather)

    # MyObjective(nn.Module).forward(inputs) -> {"loss": scalar tensor,
    #     "logs": {name: scalar tensor}, "features": encoder outputs (dict) for the online probe}

Register it under ``[project.entry-points."mi_estimators.trainers"]`` (``my = "pkg.mod:MyTrainer"``);
``mi-estimators train my ...`` then parses the command line into ``MyConfig`` and runs
``MyTrainer(config).fit()``. From Python: ``MyTrainer(MyConfig(dataset="digits", epochs=1)).fit()``,
or ``.fit(train=ImageData(images, labels), test=...)`` on in-memory tensors. Progress bars go to
stderr when it is a terminal (``--progress``: always, ``--no-progress``: never; in Python
``progress=True/False``, ``None`` by default).

The kit's pieces: :mod:`~mi_estimators.training.config` (``TrainConfig``, ``option``,
``override``), :mod:`~mi_estimators.training.loop` (``Trainer``: ``fit`` and the one training loop,
read top to bottom) and the loop's collaborators: :mod:`~mi_estimators.training.build`
(``build_run``: data, model, optimiser, schedule and batches made in one place, in the order of
the random streams), :mod:`~mi_estimators.training.meter` (an epoch's sums, read at sync points),
:mod:`~mi_estimators.training.resume` (which checkpoint to read, writing it, restoring it),
:mod:`~mi_estimators.training.interrupt` (SIGINT/SIGTERM), :mod:`~mi_estimators.training.evaluation`
(the final probes); :mod:`~mi_estimators.training.data` (``ImageData``, ``load_dataset``),
:mod:`~mi_estimators.training.augment` (``Augment``, ``two_views``),
:mod:`~mi_estimators.training.encoders` (the encoder contract, ``feature_shapes``),
:mod:`~mi_estimators.training.distributed` (``DistInfo``, ``gather_with_grad``),
:mod:`~mi_estimators.training.heads` (``EmbedHead``), :mod:`~mi_estimators.training.probe`
(linear, kNN and online probes), :mod:`~mi_estimators.training.checkpoint` (safe, verified,
atomic checkpoints) and :mod:`~mi_estimators.training.rundir` (the ``--out`` lock).
"""

from mi_estimators.training.augment import Augment, two_views
from mi_estimators.training.checkpoint import (CheckpointError, capture_rng, load_checkpoint, load_latest,
                                               previous_path, restore_rng, save_atomic, save_checkpoint)
from mi_estimators.training.config import TrainConfig, option, override, parse_options
from mi_estimators.training.data import (
    DATASETS,
    DatasetNotFoundError,
    EpochBatches,
    ImageData,
    as_float,
    load_dataset,
    read_idx,
)
from mi_estimators.training.distributed import DistInfo, gather_with_grad, rank_offset
from mi_estimators.training.encoders import build_encoder, check_features, feature_shapes, local_maps
from mi_estimators.training.heads import EmbedHead
from mi_estimators.training.loop import CHECKPOINT_NAME, Trainer, TrainingDivergedError, select_features
from mi_estimators.training.probe import OnlineProbe, extract_features, knn_accuracy, linear_probe
from mi_estimators.training.rundir import OutDirError, claim_run_dir

__all__ = [
    "Augment", "two_views",
    "CheckpointError", "capture_rng", "load_checkpoint", "load_latest", "previous_path", "restore_rng",
    "save_atomic", "save_checkpoint", "OutDirError", "claim_run_dir",
    "DATASETS", "DatasetNotFoundError", "EpochBatches", "ImageData", "as_float", "load_dataset", "read_idx",
    "TrainConfig", "option", "override", "parse_options",
    "DistInfo", "gather_with_grad", "rank_offset",
    "build_encoder", "check_features", "feature_shapes", "local_maps", "EmbedHead",
    "CHECKPOINT_NAME", "Trainer", "TrainingDivergedError", "select_features",
    "OnlineProbe", "extract_features", "knn_accuracy", "linear_probe",
]
