"""ONNX Runtime person detector for YOLOX (raw grids) and YOLOv8/YOLO11 exports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.detect.errors import ModelFormatError, ModelManifestError
from edge.detect.manifest import ModelManifest
from edge.detect.types import Detections, FloatArray, Frame, Prepared

_INV_255 = np.float32(1.0 / 255.0)
# OpenCV's stubs type NMS inputs as Python sequences; numpy arrays are accepted and convert faster
_DNN: Any = cv2.dnn


def _yolox_grids(
    width: int, height: int, strides: tuple[int, ...]
) -> tuple[FloatArray, FloatArray]:
    """Grid offsets (N, 2) and strides (N, 1) in YOLOX's output order."""
    grids, steps = [], []
    for s in strides:
        gy, gx = np.meshgrid(np.arange(height // s), np.arange(width // s), indexing="ij")
        grids.append(np.stack((gx, gy), axis=2).reshape(-1, 2))
        steps.append(np.full((grids[-1].shape[0], 1), s))
    return (
        np.concatenate(grids).astype(np.float32),
        np.concatenate(steps).astype(np.float32),
    )


def _static_dim(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def _open_session(weights: Path, threads: int) -> Any:
    """An onnxruntime CPU session tuned for a small gateway."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # no busy-waiting between operators: a gateway runs several cameras and the uplink on
    # 2-4 cores, and spinning threads steal them (measured 2-3x slower when cores are shared)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(
            str(weights), sess_options=opts, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelFormatError(f"{weights}: onnxruntime cannot load the model: {exc}") from exc


class OnnxDetector:
    """YOLOX or YOLOv8/YOLO11 detector on onnxruntime's CPU provider, chosen by the manifest."""

    def __init__(
        self,
        manifest: ModelManifest,
        weights: Path,
        *,
        score_threshold: float = 0.35,
        nms_threshold: float = 0.45,
        threads: int = 2,
        classes: tuple[str, ...] = ("person",),
    ) -> None:
        if manifest.output_format not in ("yolox", "yolov8"):
            raise ModelManifestError(
                f"model '{manifest.name}': output_format '{manifest.output_format}' "
                "is not a detector format (yolox or yolov8)"
            )
        self.manifest = manifest
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        names = manifest.class_names
        missing = [c for c in classes if c not in names]
        if missing:
            raise ModelManifestError(f"model '{manifest.name}' has no classes {missing}")
        self._keep = np.array([names.index(c) for c in classes], np.int64)
        self.session = _open_session(weights, threads)
        self._input_name, self._size = self._check_input(weights)
        self._output_name = self._check_output(weights, len(names))
        w, h = self._size
        # two input tensors used in turn, so one can be filled while the other is inferred
        self._blobs = (np.empty((1, 3, h, w), np.float32), np.empty((1, 3, h, w), np.float32))
        self._slot = 0
        self._placed = (0, 0)
        self._resized = np.empty((0, 0, 3), np.uint8)
        self._channels: list[Frame] = []
        self._planes: tuple[list[FloatArray], ...] = ([], [])
        self._grids, self._strides = _yolox_grids(w, h, manifest.strides)
        self._checked_runtime_shape = False

    def _check_input(self, weights: Path) -> tuple[str, tuple[int, int]]:
        inp = self.session.get_inputs()[0]
        shape = list(inp.shape)
        if len(shape) != 4 or shape[1] not in (3, "3"):
            raise ModelFormatError(f"{weights}: expected an input [1, 3, H, W], got {shape}")
        h, w = _static_dim(shape[2]), _static_dim(shape[3])
        size = self.manifest.input_size or ((w, h) if w and h else None)
        if size is None:
            raise ModelFormatError(f"{weights}: dynamic input size and no input_size in manifest")
        if (w and w != size[0]) or (h and h != size[1]):
            raise ModelFormatError(
                f"{weights}: model input is {w}x{h} but the manifest says {size[0]}x{size[1]}"
            )
        return str(inp.name), (int(size[0]), int(size[1]))

    def _check_output(self, weights: Path, n_classes: int) -> str:
        out = self.session.get_outputs()[0]
        shape = list(out.shape)
        fmt = self.manifest.output_format
        axis = 2 if fmt == "yolox" else 1
        extra = 5 if fmt == "yolox" else 4
        if len(shape) != 3 or _static_dim(shape[axis]) not in (None, extra + n_classes):
            want = "[1, N, 5 + classes]" if fmt == "yolox" else "[1, 4 + classes, N]"
            raise ModelFormatError(
                f"{weights}: output shape {shape} does not fit format '{fmt}' "
                f"with {n_classes} classes (expected {want})"
            )
        return str(out.name)

    def _place(self, nw: int, nh: int) -> None:
        """Fill the blobs with padding and cut the views the resized image is written into."""
        rgb = self.manifest.input_layout == "rgb_0_1"
        order = (2, 1, 0) if rgb else (0, 1, 2)  # blob plane c takes channel order[c]
        for blob in self._blobs:
            blob[:] = self.manifest.pad_value / 255.0 if rgb else self.manifest.pad_value
        self._planes = tuple(
            [b[0, order.index(c), :nh, :nw] for c in range(3)] for b in self._blobs
        )
        self._resized = np.empty((nh, nw, 3), np.uint8)
        self._channels = [np.empty((nh, nw), np.uint8) for _ in range(3)]
        self._placed = (nw, nh)

    def _letterbox(self, frame: Frame) -> tuple[float, npt.NDArray[np.float32]]:
        """Resize to the top left of the next reused NCHW blob; padding is written only once.

        Only the image region is rewritten per frame: a reused resize buffer, one split into
        reused channel planes and one converting copy per plane (no per-frame allocation).
        """
        w, h = self._size
        fh, fw = frame.shape[:2]
        ratio = min(w / fw, h / fh)
        nw, nh = round(fw * ratio), round(fh * ratio)
        if (nw, nh) != self._placed:
            self._place(nw, nh)
        self._slot ^= 1
        cv2.resize(frame, (nw, nh), dst=self._resized, interpolation=cv2.INTER_LINEAR)
        cv2.split(self._resized, self._channels)
        planes = self._planes[self._slot]
        if self.manifest.input_layout == "rgb_0_1":
            for plane, channel in zip(planes, self._channels, strict=True):
                np.multiply(channel, _INV_255, out=plane)
        else:
            for plane, channel in zip(planes, self._channels, strict=True):
                np.copyto(plane, channel)
        return ratio, self._blobs[self._slot]

    def detect(self, frame: Frame) -> Detections:
        """Letterbox, run the network, decode, threshold and NMS; boxes in frame pixels."""
        prepared = self.prepare(frame)
        return self.finish(prepared, self.infer(prepared))

    def prepare(self, frame: Frame) -> Prepared:
        """Letterbox `frame` into the next of the two input tensors."""
        ratio, blob = self._letterbox(frame)
        fh, fw = frame.shape[:2]
        return Prepared(blob, ratio, (fw, fh))

    def infer(self, prepared: Prepared) -> FloatArray:
        """`session.run` alone (onnxruntime releases the GIL meanwhile)."""
        raw: FloatArray = self.session.run([self._output_name], {self._input_name: prepared.blob})[
            0
        ]
        return raw

    def finish(self, prepared: Prepared, raw: FloatArray) -> Detections:
        """Decode, threshold and NMS the raw output; boxes in frame pixels."""
        if not self._checked_runtime_shape:
            self._check_runtime(raw)
        boxes, scores, cls = (
            self._decode_yolox(raw[0])
            if self.manifest.output_format == "yolox"
            else self._decode_yolov8(raw[0])
        )
        if boxes.shape[0] == 0:
            return Detections.empty()
        # float64 boxes: OpenCV's Rect2d input converts them twice as fast as float32
        rects = boxes.astype(np.float64)
        if self._keep.size == 1:  # one class: plain NMS, no per-class offsets
            keep = _DNN.NMSBoxes(rects, scores, self.score_threshold, self.nms_threshold)
        else:
            keep = _DNN.NMSBoxesBatched(
                rects, scores, cls.astype(np.int32), self.score_threshold, self.nms_threshold
            )
        idx = np.asarray(keep, np.intp).reshape(-1)
        xyxy = boxes[idx]
        xyxy[:, 2:] += xyxy[:, :2]
        xyxy *= np.float32(1.0 / prepared.ratio)
        fw, fh = prepared.frame_size
        np.clip(xyxy, 0, np.array([fw, fh, fw, fh], np.float32), out=xyxy)
        return Detections(xyxy, scores[idx], cls[idx])

    def _check_runtime(self, raw: npt.NDArray[np.float32]) -> None:
        n = self._grids.shape[0]
        fmt = self.manifest.output_format
        if fmt == "yolox" and (raw.ndim != 3 or raw.shape[1] != n):
            raise ModelFormatError(
                f"model '{self.manifest.name}': output {raw.shape} has not the {n} grid cells "
                f"of strides {self.manifest.strides} at {self._size[0]}x{self._size[1]}"
            )
        if raw.ndim != 3:
            raise ModelFormatError(f"model '{self.manifest.name}': output {raw.shape} not 3-D")
        self._checked_runtime_shape = True

    def _select(
        self, cls_scores: FloatArray, cxcywh: FloatArray
    ) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
        """Best class per candidate row, thresholded; boxes as xywh (top-left, size)."""
        best = cls_scores.argmax(axis=1)
        score = cls_scores[np.arange(cls_scores.shape[0]), best]
        mask = score >= self.score_threshold
        box = cxcywh[mask]
        xywh = np.concatenate((box[:, :2] - box[:, 2:] / 2, box[:, 2:]), axis=1)
        return xywh.astype(np.float32), score[mask].astype(np.float32), self._keep[best[mask]]

    def _decode_yolox(
        self, out: FloatArray
    ) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
        # score = objectness x class probability, and probabilities are <= 1: cells whose
        # objectness is below the threshold cannot pass it, so only the rest are decoded
        rows = np.flatnonzero(out[:, 4] >= self.score_threshold)
        sel = out[rows]
        cls_scores = sel[:, 4:5] * sel[:, 5 + self._keep]
        st = self._strides[rows]
        cxcywh = np.concatenate(
            ((sel[:, :2] + self._grids[rows]) * st, np.exp(sel[:, 2:4]) * st), axis=1
        )
        return self._select(cls_scores, cxcywh)

    def _decode_yolov8(
        self, out: FloatArray
    ) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
        cls_scores = out[4 + self._keep, :].T
        rows = np.flatnonzero(cls_scores.max(axis=1) >= self.score_threshold)
        return self._select(cls_scores[rows], out[:4, rows].T)
