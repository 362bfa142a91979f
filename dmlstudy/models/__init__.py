"""Embedding models: timm backbones (plus the registered Omniglot ``convnet4``) with an embedding
head."""

from dmlstudy.models.convnet import ConvNet4
from dmlstudy.models.embedder import POOLINGS, Embedder, build_embedder

__all__ = ["POOLINGS", "ConvNet4", "Embedder", "build_embedder"]
