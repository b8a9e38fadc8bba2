"""Annotated replay video: boxes, track ids, lines, zones, shelves and running counts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.detect.types import Frame
from edge.pipeline import CameraPipeline

_LINE = (0, 220, 255)
_ZONE = (255, 160, 0)
_SHELF = (200, 0, 200)


class Annotator:
    """Draws what the pipeline sees and counts onto each frame and writes an mp4."""

    def __init__(self, pipeline: CameraPipeline, path: Path, *, fps: float) -> None:
        self.pipeline = pipeline
        self.path = path
        self.fps = fps
        self._writer: Any = None
        self._closed_in: Counter[str] = Counter()
        self._closed_out: Counter[str] = Counter()
        self._interactions: Counter[str] = Counter()

    def add_closed(self, envelope: Any) -> None:
        """Add a closed window's counts to the running totals."""
        for line in envelope.window.lines:
            self._closed_in[line.line_id] += line.in_count
            self._closed_out[line.line_id] += line.out_count
        for shelf in envelope.window.shelves:
            self._interactions[shelf.shelf_id] += shelf.interactions

    def draw(self, frame: Frame) -> None:
        """Annotate a copy of `frame` and append it to the video."""
        img = frame.copy()
        h, w = img.shape[:2]
        scale = np.array([w, h], np.float64)
        cam = self.pipeline.camera
        for poly_id, polygon, colour in [(z.id, z.polygon, _ZONE) for z in cam.zones] + [
            (s.id, s.polygon, _SHELF) for s in cam.shelves
        ]:
            pts = (np.array(polygon) * scale).astype(np.int32)
            cv2.polylines(img, [pts], True, colour, 2)
            cv2.putText(img, poly_id, (int(pts[0][0]) + 4, int(pts[0][1]) + 18), 0, 0.55, colour, 2)
        for line in cam.lines:
            (x1, y1), (x2, y2) = (np.array(line.points) * scale).astype(int).tolist()
            cv2.line(img, (x1, y1), (x2, y2), _LINE, 2)
            cv2.putText(img, line.id, (x1 + 4, y1 - 6), 0, 0.55, _LINE, 2)
        for tr in self.pipeline.tracks:
            p1, p2 = (int(tr.x1), int(tr.y1)), (int(tr.x2), int(tr.y2))
            cv2.rectangle(img, p1, p2, (0, 255, 0), 2)
            cv2.putText(img, str(tr.id), (p1[0], p1[1] - 4), 0, 0.5, (0, 255, 0), 2)
            cv2.circle(img, (int(tr.anchor[0]), int(tr.anchor[1])), 3, (0, 0, 255), -1)
        self._panel(img)
        self._write(img)

    def _panel(self, img: Frame) -> None:
        """Running counts in a dark box at the top left."""
        an = self.pipeline.analytics
        rows: list[tuple[str, tuple[int, int, int]]] = []
        for lid, counter in an.lines.items():
            n_in = self._closed_in[lid] + counter.stats.in_count
            n_out = self._closed_out[lid] + counter.stats.out_count
            rows.append((f"{lid}: in {n_in}  out {n_out}", _LINE))
        for zid, zone in an.zones.items():
            rows.append((f"{zid}: {zone.presence.inside_count} inside", _ZONE))
        for sid, shelf in an.shelves.items():
            rows.append((f"{sid}: {self._interactions[sid] + shelf.pending} interactions", _SHELF))
        rows.append((f"tracks: {len(self.pipeline.tracks)}", (0, 255, 0)))
        size = max(0.42, 0.6 * min(1.0, img.shape[1] / 960))  # readable on 480 px GIFs too
        step, thick = round(40 * size), 1 if size < 0.5 else 2
        height = step // 2 + step * len(rows)
        width = round(20 * size * max(len(text) for text, _ in rows)) + step // 2
        box = img[:height, :width]
        box[:] = (box * 0.35).astype(np.uint8)
        for i, (text, colour) in enumerate(rows):
            cv2.putText(img, text, (step // 4, step * (i + 1)), 0, size, colour, thick)

    def _write(self, img: Frame) -> None:
        if self._writer is None:
            h, w = img.shape[:2]
            fourcc = cv2.VideoWriter.fourcc(*"mp4v")
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                raise OSError(f"cannot write video {self.path}")
        self._writer.write(img)

    def close(self) -> None:
        """Finish the video file."""
        if self._writer is not None:
            self._writer.release()
