"""``trajalign center``: translate every frame."""

from __future__ import annotations

import numpy as np

from .._names import TRANSLATION
from .._validate import as_index, as_weights
from ..align import CENTER_METHODS, center_with_translation
from ..errors import ParameterError
from ..pipeline import BlockResult, Job

__all__ = [
    "CenterJob",
]


class CenterJob(Job):
    """Center each frame (``com``, ``geometric`` or ``point``) and store the translation."""

    def __init__(self, method: str = "com", point: int = 0) -> None:
        super().__init__()
        if method not in CENTER_METHODS:
            raise ParameterError(
                f"unknown centering method {method!r}", f"use one of {', '.join(CENTER_METHODS)}"
            )
        self.method = method
        self.point = point
        self.masses: np.ndarray | None = None

    def prepare(self, source) -> None:
        if self.method == "point":
            self.point = as_index(self.point, source.n_points, "--point")
        elif self.method == "com":
            if source.masses is None:
                self.warnings.append(
                    "the input has no masses: com is the geometric center "
                    "(give --masses FILE for array inputs)"
                )
            else:
                as_weights(source.masses, source.n_points)  # fail before any output
                self.masses = source.masses

    def declare(self, writer, source) -> None:
        writer.create(
            TRANSLATION,
            (source.n_frames, source.dim),
            attrs={"unit": source.length_unit},
        )

    def process(self, block) -> BlockResult:
        coords, trans = center_with_translation(
            block.coords, method=self.method, masses=self.masses, point=self.point
        )
        return BlockResult(coords, {TRANSLATION: trans})

    def parameters(self) -> dict:
        p = {"method": self.method, "mass_weighted": self.masses is not None}
        if self.method == "point":
            p["point"] = self.point
        return p
