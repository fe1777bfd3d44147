"""Network architectures."""

from unsupseg.models.kanezaki import KanezakiNet

__all__ = ["KanezakiNet"]
