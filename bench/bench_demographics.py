"""Demographics cost: age and gender per face and per frame with 4 faces, against the detectors.

Run alone: `.venv/bin/python bench/bench_demographics.py` (add --help for options). Measures CPU
time (process time, so a busy machine inflates wall time but not these figures as much) of:
  - YOLOX-Nano on one 480x270 frame (the person detector every frame pays),
  - YuNet on the same frame,
  - the shipped age+gender networks on 1 face (alignment, both networks) and on 4 faces batched,
and prints each as a ratio to the person detector measured in the same run, interleaved over
rounds; the best round counts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.analytics.age_gender import DlibAgeGender  # noqa: E402
from edge.analytics.demographics import YuNetFaceDetector  # noqa: E402
from edge.analytics.faces import QualityGate  # noqa: E402
from edge.config import DetectorConfig  # noqa: E402
from edge.config.files import manifests_dir  # noqa: E402
from edge.detect import build_detector  # noqa: E402

SHARED = Path(os.environ.get("MALLPULSE_SHARED", REPO.parent / "shared"))


def _cpu_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm up
    start = time.process_time()
    for _ in range(repeat):
        fn()
    return (time.process_time() - start) / repeat * 1000.0


def annotate(yunet: YuNetFaceDetector, model: DlibAgeGender, out: Path) -> None:
    """Three frames of each face video with each face's box, landmarks, gate verdict and the
    per-face estimate (the stage counts one vote per track, over several such faces)."""
    gate = QualityGate()
    rows_out = []
    for name in ("face-demographics-walking.gif", "face-demographics-walking-and-pause.gif"):
        cap = cv2.VideoCapture(str(SHARED / "data" / "video" / name))
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
        picked = [frames[i] for i in (len(frames) // 5, len(frames) // 2, len(frames) - 3)]
        tiles = []
        for frame in picked:
            canvas = frame.copy()
            for row in yunet.faces(frame):
                x, y, w, h = (int(v) for v in row[:4])
                reason = gate.check(frame, row)
                if reason is None:
                    female, male, age = model.estimate(frame, row)
                    label, colour = f"{'F' if female > male else 'M'} {age:.0f}", (0, 200, 0)
                else:
                    label, colour = str(reason), (0, 0, 230)
                cv2.rectangle(canvas, (x, y), (x + w, y + h), colour, 2)
                for px, py in row[5:15].reshape(5, 2):
                    cv2.circle(canvas, (int(px), int(py)), 2, (255, 200, 0), -1)
                cv2.putText(canvas, label, (x, max(y - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                            colour, 1, cv2.LINE_AA)  # fmt: skip
            tiles.append(canvas)
        rows_out.append(np.hstack(tiles))
    cv2.imwrite(str(out), np.vstack(rows_out))
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    ap.add_argument("--repeat", type=int, default=50, help="calls per measurement")
    ap.add_argument("--annotate", type=Path, help="write annotated frames of both videos (PNG)")
    args = ap.parse_args()

    video = SHARED / "data" / "video" / "face-demographics-walking-and-pause.gif"
    if not video.is_file():
        sys.exit(f"missing {video}: set MALLPULSE_SHARED")
    cap = cv2.VideoCapture(str(video))
    frame = None
    for _ in range(20):  # a frame with three frontal faces
        ok, frame = cap.read()
        if not ok:
            break
    assert frame is not None
    yunet = YuNetFaceDetector(SHARED / "models" / "face_detection_yunet_2026may.onnx")
    rows = list(yunet.faces(frame))
    if not rows:
        sys.exit("no face found on the benchmark frame")
    four = (rows * 4)[:4]
    model = DlibAgeGender(manifests_dir() / "dlib_age_gender.yaml")
    person = build_detector(
        DetectorConfig(
            kind="onnx",
            manifest=REPO / "models" / "yolox_nano.yaml",
            models_dir=SHARED / "models",
            score_threshold=0.3,
            threads=1,
        )
    )

    variants: dict[str, Callable[[], object]] = {
        "person detector (YOLOX-Nano, 1 frame)": lambda: person.detect(frame),
        "face detector (YuNet, 1 frame)": lambda: yunet.faces(frame),
        "age+gender, 1 face": lambda: model.estimate_many(frame, four[:1]),
        "age+gender, 4 faces (one batch)": lambda: model.estimate_many(frame, four),
        "age+gender, 4 faces (one by one)": lambda: [model.estimate(frame, r) for r in four],
    }
    best = {name: float("inf") for name in variants}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            best[name] = min(best[name], _cpu_ms(fn, args.repeat))
    base = best["person detector (YOLOX-Nano, 1 frame)"]
    if args.annotate is not None:
        annotate(yunet, model, args.annotate)
    load = os.getloadavg()
    print(f"frame {frame.shape[1]}x{frame.shape[0]}, load average {load[0]:.1f}/{load[1]:.1f}")
    print(f"{'variant':40s} {'CPU ms':>8s} {'x person detector':>18s}")
    for name, ms in best.items():
        print(f"{name:40s} {ms:8.2f} {ms / base:18.2f}")


if __name__ == "__main__":
    main()
