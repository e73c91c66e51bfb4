"""mmfree.train: the pretraining loop for MatMul-free LMs and their Transformer++ baseline.

`run_training(TrainConfig(...))` is the API; `mmfree train` (mmfree/train/cli.py) maps flags onto it.
"""

from mmfree.train.config import TrainConfig
from mmfree.train.schedule import lr_factor
from mmfree.train.trainer import Evaluation, TrainingError, TrainResult, run_training

__all__ = ["Evaluation", "TrainConfig", "TrainResult", "TrainingError", "lr_factor", "run_training"]
