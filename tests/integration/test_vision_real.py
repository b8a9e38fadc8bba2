"""The vision pipeline on the real shared footage and models (YOLOX-Nano, YuNet)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from edge.analytics.age_gender import DlibAgeGender
from edge.analytics.demographics import DemographicsStage, OnnxAgeGender, YuNetFaceDetector
from edge.analytics.emotion import OnnxEmotion
from edge.analytics.faces import QualityGate, Rejection
from edge.capture import FileSource
from edge.config import DetectorConfig
from edge.config.files import manifests_dir
from edge.detect import build_detector
from edge.pipeline import CameraPipeline
from mallpulse.cli import app
from protos.mallpulse.v1 import telemetry_pb2 as pb
from tests.unit.edge.detect.onnx_models import age_gender_model, emotion_model
from tests.unit.edge.vision import REPO, edge_config, shared_path

VIDEOS = [
    "concourse.avi",
    "store-aisle-detection.gif",
    "people-detection.gif",
    "worker-zone-detection.gif",
    "face-demographics-walking.gif",
    "face-demographics-walking-and-pause.gif",
]
MIDDLE = [[0.0, 0.5], [1.0, 0.5]]
T0 = 1_767_225_600.0


def _detector_cfg() -> dict[str, Any]:
    shared_path("models", "yolox_nano.onnx")
    return {
        "kind": "onnx",
        "manifest": str(REPO / "models" / "yolox_nano.yaml"),
        "models_dir": str(shared_path("models")),
        "score_threshold": 0.15,
    }


TRACKER = {"high_threshold": 0.3, "low_threshold": 0.15, "min_hits": 2}


def test_concourse_with_yolox_counts_both_ways_across_the_middle() -> None:
    video = shared_path("data", "video", "concourse.avi")
    cfg = edge_config(
        {"id": "c", "source": str(video), "lines": [{"id": "mid", "points": MIDDLE}]},
        detector=_detector_cfg(),
        tracker=TRACKER,
        window={"length_s": 3600},
    )
    pipeline = CameraPipeline(cfg, "c", build_detector(cfg.detector))
    ids: set[int] = set()
    envelopes = []
    for frame, t in FileSource(video):
        envelopes += pipeline.process(frame, T0 + t)
        ids |= {tr.id for tr in pipeline.tracks}
        if t >= 8.0:
            break
    envelopes += pipeline.flush(T0 + 9.0)
    line = envelopes[-1].window.lines[0]
    assert len(ids) >= 20
    assert line.in_count > 0 and line.out_count > 0


def test_concourse_pipelined_yolox_gives_the_same_envelopes() -> None:
    video = shared_path("data", "video", "concourse.avi")
    cfg = edge_config(
        {"id": "c", "source": str(video), "lines": [{"id": "mid", "points": MIDDLE}]},
        detector=_detector_cfg(),
        tracker=TRACKER,
        window={"length_s": 5},
    )
    frames = []
    for frame, t in FileSource(video):
        frames.append((frame, T0 + t))
        if t >= 6.0:
            break
    detector = build_detector(cfg.detector)  # one detector: the staged calls share its buffers
    results = []
    for pipelined in (False, True):
        pipeline = CameraPipeline(cfg, "c", detector, pipelined=pipelined)
        envelopes = [e for frame, t in frames for e in pipeline.process(frame, t)]
        envelopes += pipeline.flush(frames[-1][1] + 0.1)
        pipeline.close()
        results.append([e.SerializeToString() for e in envelopes])
    assert len(results[0]) >= 2
    assert results[0] == results[1]


@pytest.mark.parametrize("name", VIDEOS)
def test_replay_of_every_shared_video_produces_windows(name: str, tmp_path: Path) -> None:
    video = shared_path("data", "video", name)
    config = tmp_path / "device.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "device": {"device_id": "gw", "store_id": "st"},
                "cameras": [
                    {
                        "id": "cam",
                        "source": str(video),
                        "lines": [{"id": "mid", "points": MIDDLE}],
                        "zones": [{"id": "left", "polygon": [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]}],
                    }
                ],
                "detector": _detector_cfg(),
                "tracker": TRACKER,
                "window": {"length_s": 5},
                "uplink": {"transport": "none"},
            }
        )
    )
    out = tmp_path / "agg.jsonl"
    args = [
        "edge",
        "replay",
        str(video),
        "--config",
        str(config),
        "--out",
        str(out),
        "--max-fps",
        "5",
    ]
    annotated = tmp_path / "annotated.mp4"
    if name == "people-detection.gif":
        args += ["--annotate", str(annotated)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all(r["camera_id"] == "cam" and "window" in r for r in rows)
    assert sum(r["window"].get("frames_processed", 0) for r in rows) > 0
    if name == "people-detection.gif":
        cap = cv2.VideoCapture(str(annotated))
        ok, frame = cap.read()
        assert ok and frame.shape == (270, 480, 3) and frame.std() > 10
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) >= 5


def test_yunet_finds_faces_in_the_walking_video() -> None:
    faces = YuNetFaceDetector(shared_path("models", "face_detection_yunet_2026may.onnx"))
    found = [
        len(faces.faces(frame))
        for frame, _ in FileSource(shared_path("data", "video", "face-demographics-walking.gif"))
    ]
    assert sum(n > 0 for n in found) >= len(found) // 3
    assert max(found) >= 1


def test_demographics_through_the_pipeline(tmp_path: Path) -> None:
    video = shared_path("data", "video", "face-demographics-walking.gif")
    cfg = edge_config({"id": "c", "source": str(video)}, detector=_detector_cfg(), tracker=TRACKER)
    stage = DemographicsStage(
        YuNetFaceDetector(shared_path("models", "face_detection_yunet_2026may.onnx")),
        OnnxAgeGender(age_gender_model(tmp_path / "ga.onnx")),
        sample_every_s=0.2,
        max_samples=5,
    )
    pipeline = CameraPipeline(
        cfg, "c", build_detector(DetectorConfig(**_detector_cfg())), demographics=stage
    )
    t = 0.0
    for frame, t in FileSource(video):
        pipeline.process(frame, T0 + t)
    (env,) = pipeline.flush(T0 + t + 0.1)
    counts = env.window.demographics.counts
    assert sum(c.count for c in counts) >= 1
    assert all(c.gender in (1, 2, 3) and c.age_band > 0 for c in counts)
    assert stage.tracked == 0 and np.isfinite(pipeline.stats.detector_latency_ms)


def _run_faces(
    video_name: str, emotion: OnnxEmotion | None = None
) -> tuple[pb.Envelope, DemographicsStage]:
    video = shared_path("data", "video", video_name)
    cfg = edge_config({"id": "c", "source": str(video)}, detector=_detector_cfg(), tracker=TRACKER)
    stage = DemographicsStage(
        YuNetFaceDetector(shared_path("models", "face_detection_yunet_2026may.onnx")),
        DlibAgeGender(manifests_dir() / "dlib_age_gender.yaml"),
        sample_every_s=0.1,
        max_samples=8,
        gate=QualityGate(),
        emotion=emotion,
    )
    pipeline = CameraPipeline(
        cfg, "c", build_detector(DetectorConfig(**_detector_cfg())), demographics=stage
    )
    t = 0.0
    for frame, t in FileSource(video):
        pipeline.process(frame, T0 + t)
    (env,) = pipeline.flush(T0 + t + 0.1)
    return env, stage


def _demographics_of(video_name: str) -> tuple[dict[tuple[int, int], int], DemographicsStage]:
    env, stage = _run_faces(video_name)
    return {(c.age_band, c.gender): c.count for c in env.window.demographics.counts}, stage


def test_emotion_votes_reach_the_window_report(tmp_path: Path) -> None:
    model = OnnxEmotion(emotion_model(tmp_path / "emotion.onnx"))
    env, _ = _run_faces("face-demographics-walking-and-pause.gif", model)
    votes = {(m.zone_id, m.valence): m.count for m in env.window.emotions}
    # three people read; no zone configured, so every vote is camera-wide ("")
    assert sum(votes.values()) == 3 and {z for z, _ in votes} == {""}


def test_shipped_age_gender_models_on_the_pause_video() -> None:
    # Labels read off the frames by a person (docs/edge-vision.md, "Evaluation"): two women and
    # one man face the camera; their ages are not known, so only gender is checked, and that
    # every vote has an age band.
    counts, stage = _demographics_of("face-demographics-walking-and-pause.gif")
    assert not stage.rejected  # every sampled face passed the quality gate
    by_gender: dict[int, int] = {}
    for (band, gender), n in counts.items():
        assert band != pb.AGE_BAND_UNSPECIFIED
        by_gender[gender] = by_gender.get(gender, 0) + n
    assert by_gender == {pb.GENDER_FEMALE: 2, pb.GENDER_MALE: 1}


def test_faces_too_small_for_the_models_are_counted_unspecified() -> None:
    counts, stage = _demographics_of("face-demographics-walking.gif")
    assert counts == {(pb.AGE_BAND_UNSPECIFIED, pb.GENDER_UNKNOWN): 2}
    assert set(stage.rejected) == {Rejection.SMALL}
