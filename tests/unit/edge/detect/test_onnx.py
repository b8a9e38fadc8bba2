"""OnnxDetector on tiny built models: YOLOv8 and YOLOX decoding, letterbox, NMS, bad shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.detect import ModelFormatError, ModelManifest, ModelManifestError
from edge.detect.onnx import OnnxDetector
from tests.unit.edge.detect.onnx_models import constant_output_model

LABELS = ["person", "cart"]


def _manifest(fmt: str, size: int = 64) -> ModelManifest:
    return ModelManifest(
        name="tiny",
        file="tiny.onnx",
        sha256="0" * 64,
        input_size=(size, size),
        output_format=fmt,
        labels=LABELS,
    )


def test_yolov8_decode_letterbox_and_nms(tmp_path: Path) -> None:
    n = 6
    out = np.zeros((1, 4 + len(LABELS), n), np.float32)
    # cx, cy, w, h in network pixels; person scores; a duplicate, a cart, a weak box
    out[0, :4, 0], out[0, 4, 0] = [16, 16, 8, 16], 0.9
    out[0, :4, 1], out[0, 4, 1] = [17, 16, 8, 16], 0.8  # overlaps box 0: removed by NMS
    out[0, :4, 2], out[0, 5, 2] = [40, 20, 8, 8], 0.9  # a cart: not a kept class
    out[0, :4, 3], out[0, 4, 3] = [48, 16, 8, 16], 0.1  # under the threshold
    model = constant_output_model(tmp_path / "v8.onnx", out)
    det = OnnxDetector(_manifest("yolov8"), model, score_threshold=0.3, threads=1)
    frame = np.zeros((64, 128, 3), np.uint8)  # letterboxed at ratio 0.5
    found = det.detect(frame)
    assert len(found) == 1
    np.testing.assert_allclose(found.xyxy[0], [24, 16, 40, 48], atol=1e-4)
    assert found.scores[0] == pytest.approx(0.9) and found.class_ids[0] == 0


def test_yolox_grid_decoding(tmp_path: Path) -> None:
    cells = 8 * 8 + 4 * 4 + 2 * 2  # strides 8, 16, 32 at 64x64
    out = np.zeros((1, cells, 5 + len(LABELS)), np.float32)
    row = 8 * 8 + 1 * 4 + 2  # stride 16, grid x=2, y=1
    out[0, row] = [0.5, 0.5, np.log(1.0), np.log(2.0), 0.9, 0.8, 0.0]
    model = constant_output_model(tmp_path / "x.onnx", out)
    det = OnnxDetector(_manifest("yolox"), model, score_threshold=0.3, threads=1)
    found = det.detect(np.zeros((64, 64, 3), np.uint8))
    # centre ((2 + 0.5) * 16, (1 + 0.5) * 16) = (40, 24), size (16, 32)
    np.testing.assert_allclose(found.xyxy, [[32, 8, 48, 40]], atol=1e-4)
    assert found.scores[0] == pytest.approx(0.72)


def test_unexpected_output_shape_is_a_clear_error(tmp_path: Path) -> None:
    model = constant_output_model(tmp_path / "bad.onnx", np.zeros((1, 10, 9), np.float32))
    with pytest.raises(ModelFormatError, match=r"does not fit format 'yolox' with 2 classes"):
        OnnxDetector(_manifest("yolox"), model)


def test_wrong_grid_count_is_caught_on_the_first_frame(tmp_path: Path) -> None:
    model = constant_output_model(tmp_path / "grid.onnx", np.zeros((1, 50, 7), np.float32))
    det = OnnxDetector(_manifest("yolox"), model)
    with pytest.raises(ModelFormatError, match="grid cells"):
        det.detect(np.zeros((64, 64, 3), np.uint8))


def test_input_size_mismatch_and_unknown_class(tmp_path: Path) -> None:
    model = constant_output_model(tmp_path / "m.onnx", np.zeros((1, 6, 4), np.float32))
    with pytest.raises(ModelFormatError, match="manifest says 32x32"):
        OnnxDetector(_manifest("yolov8", size=32), model)
    with pytest.raises(ModelManifestError, match="no classes"):
        OnnxDetector(_manifest("yolov8"), model, classes=("dog",))


def test_not_an_onnx_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelFormatError, match="cannot load"):
        OnnxDetector(_manifest("yolov8"), junk)


def test_letterbox_layouts(tmp_path: Path) -> None:
    model = constant_output_model(tmp_path / "m.onnx", np.zeros((1, 6, 4), np.float32))
    frame = np.zeros((32, 64, 3), np.uint8)
    frame[..., 0] = 200  # blue
    bgr = OnnxDetector(_manifest("yolov8"), model)
    ratio, blob = bgr._letterbox(frame)
    assert ratio == 1.0 and blob.shape == (1, 3, 64, 64)
    assert blob[0, 0, 0, 0] == 200 and blob[0, 2, 0, 0] == 0  # BGR kept, 0-255
    assert blob[0, 0, 40, 0] == 114  # padding below the image
    rgb = OnnxDetector(_manifest("yolov8").model_copy(update={"input_layout": "rgb_0_1"}), model)
    _, blob = rgb._letterbox(frame)
    assert blob[0, 2, 0, 0] == pytest.approx(200 / 255) and blob[0, 0, 0, 0] == 0


def _yolox_detector(tmp_path: Path, rows: dict[int, list[float]]) -> OnnxDetector:
    cells = 8 * 8 + 4 * 4 + 2 * 2  # strides 8, 16, 32 at 64x64
    out = np.zeros((1, cells, 5 + len(LABELS)), np.float32)
    for row, values in rows.items():
        out[0, row] = values
    model = constant_output_model(tmp_path / "x.onnx", out)
    return OnnxDetector(_manifest("yolox"), model, score_threshold=0.3, threads=1)


def test_yolox_cells_below_the_threshold_by_objectness_or_product_are_dropped(
    tmp_path: Path,
) -> None:
    det = _yolox_detector(
        tmp_path,
        {
            0: [0.5, 0.5, 0.0, 0.0, 0.25, 1.0, 0.0],  # objectness below 0.3: never a candidate
            10: [0.5, 0.5, 0.0, 0.0, 0.35, 0.9, 0.0],  # 0.315: kept
            20: [0.5, 0.5, 0.0, 0.0, 0.9, 0.3, 0.0],  # 0.27: below after the product
        },
    )
    found = det.detect(np.zeros((64, 64, 3), np.uint8))
    assert found.scores.tolist() == [pytest.approx(0.315)]
    # row 10: stride 8, grid x=2, y=1 -> centre (20, 12), size 8x8
    np.testing.assert_allclose(found.xyxy, [[16, 8, 24, 16]], atol=1e-4)


def test_staged_calls_equal_detect_and_inputs_are_double_buffered(tmp_path: Path) -> None:
    det = _yolox_detector(tmp_path, {70: [0.5, 0.5, 0.0, 0.0, 0.9, 0.8, 0.0]})
    frames = [np.full((32, 64, 3), v, np.uint8) for v in (10, 20, 30)]
    whole = det.detect(frames[0])
    assert len(whole) == 1
    first = det.prepare(frames[0])
    second = det.prepare(frames[1])  # fills the other tensor: `first` is still frame 0
    assert first.blob is not second.blob
    assert first.blob[0, 0, 0, 0] == 10 and second.blob[0, 0, 0, 0] == 20
    assert first.ratio == 1.0 and first.frame_size == (64, 32)
    staged = det.finish(first, det.infer(first))
    np.testing.assert_array_equal(staged.xyxy, whole.xyxy)
    np.testing.assert_array_equal(staged.scores, whole.scores)
    third = det.prepare(frames[2])  # the two tensors are used in turn
    assert third.blob is first.blob and first.blob[0, 0, 0, 0] == 30


def test_letterbox_padding_follows_a_change_of_frame_shape(tmp_path: Path) -> None:
    model = constant_output_model(tmp_path / "m.onnx", np.zeros((1, 6, 4), np.float32))
    det = OnnxDetector(_manifest("yolov8"), model)
    wide, tall = np.full((32, 64, 3), 7, np.uint8), np.full((64, 32, 3), 9, np.uint8)
    for frame in (wide, wide, tall, tall):  # both tensors, each shape
        _, blob = det._letterbox(frame)
    for _ in range(2):
        _, blob = det._letterbox(tall)
        assert (blob[0, :, :, :32] == 9).all()
        assert (blob[0, :, :, 32:] == 114).all()  # where the wide frame had been
