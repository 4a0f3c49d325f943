"""The in-memory form every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """One split of one dataset, fully in memory.

    Attributes:
      name: registry name, e.g. ``"mnist"``.
      split: e.g. ``"train"``, ``"test"``, ``"background_small1"``.
      x: ``uint8`` or ``float32``; ``[N, H, W, C]`` for images, ``[N, D]`` for tabular data.
      y: ``int32[N]`` labels in ``0 .. n_classes - 1``.
      n_classes: number of classes of the split.
      info: licence, source URLs, and the verified checksums of the files read.
    """

    name: str
    split: str
    x: np.ndarray
    y: np.ndarray
    n_classes: int
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def is_image(self) -> bool:
        return self.x.ndim == 4
