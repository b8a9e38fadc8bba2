"""The canonical detection type and the `Detector` protocol every detector implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
Frame = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class Detections:
    """Boxes found on one frame: xyxy pixels of the source frame, scores 0..1, class ids."""

    xyxy: FloatArray
    scores: FloatArray
    class_ids: IntArray

    def __post_init__(self) -> None:
        n = self.xyxy.shape[0]
        if self.xyxy.shape != (n, 4) or self.scores.shape != (n,) or self.class_ids.shape != (n,):
            raise ValueError(
                f"inconsistent detection arrays: xyxy {self.xyxy.shape}, "
                f"scores {self.scores.shape}, class_ids {self.class_ids.shape}"
            )

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    @classmethod
    def empty(cls) -> Detections:
        """No detections."""
        return cls(
            np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64)
        )

    @classmethod
    def from_arrays(
        cls,
        xyxy: npt.ArrayLike,
        scores: npt.ArrayLike,
        class_ids: npt.ArrayLike | None = None,
    ) -> Detections:
        """Build from any array-likes (class ids default to 0, 'person')."""
        boxes = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
        sc = np.asarray(scores, dtype=np.float32).reshape(-1)
        ids = (
            np.zeros(sc.shape, np.int64)
            if class_ids is None
            else np.asarray(class_ids, dtype=np.int64).reshape(-1)
        )
        return cls(boxes, sc, ids)

    def filter(self, mask: npt.NDArray[np.bool_]) -> Detections:
        """The detections where `mask` is true."""
        return Detections(self.xyxy[mask], self.scores[mask], self.class_ids[mask])


class Detector(Protocol):
    """Finds people (or other classes) on a BGR frame."""

    def detect(self, frame: Frame) -> Detections:
        """Detections on one frame, in the frame's pixel coordinates."""
        ...


@dataclass(frozen=True, slots=True)
class Prepared:
    """A frame made ready for the network: the input tensor and how to map boxes back."""

    blob: FloatArray
    ratio: float
    frame_size: tuple[int, int]  # (width, height) of the source frame


@runtime_checkable
class StagedDetector(Detector, Protocol):
    """A detector split in stages, so a pipeline can run `infer` on another thread.

    `infer` only runs the network (releasing the GIL); `prepare` and `finish` are the
    Python-side work before and after. `detect(f)` equals `finish(p, infer(p := prepare(f)))`.
    A prepared input stays valid until two later `prepare` calls (double buffering).
    """

    def prepare(self, frame: Frame) -> Prepared:
        """Letterbox `frame` into the network's input."""
        ...

    def infer(self, prepared: Prepared) -> FloatArray:
        """Run the network on a prepared input; returns its raw output."""
        ...

    def finish(self, prepared: Prepared, raw: FloatArray) -> Detections:
        """Decode, threshold and NMS the raw output; boxes in frame pixels."""
        ...
