"""Training engine: settings, device-side augmentation, optimizer, loop, checkpoint/resume.

``train(TrainSettings(...)) -> metrics`` writes checkpoint.pt, best.pt, embeddings_{val,test}.npz,
metrics.json and dvclive/ into ``settings.out_dir``.
"""

from dmlstudy.training.divergence import NonFiniteLossError, TrainingDivergedError
from dmlstudy.training.loop import train
from dmlstudy.training.settings import TrainSettings

__all__ = ["NonFiniteLossError", "TrainSettings", "TrainingDivergedError", "train"]
