"""Export an Ultralytics YOLO model (YOLOv8/YOLO11) to ONNX and write its model manifest.

    python models/export.py yolo11n.pt --imgsz 416 --out-dir models/weights
    python models/export.py --manifest-only existing.onnx --name my-detector

The export needs the `export` extra (`pip install 'mallpulse[export]'`, which pulls torch);
writing a manifest for an existing ONNX file needs only `onnx`. Weights are never committed:
copy the .onnx into the gateway's models folder and commit the manifest (models/<name>.yaml).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import sys
from pathlib import Path
from typing import Any

import yaml

ULTRALYTICS_LICENCE = "AGPL-3.0 (Ultralytics)"


class ExportError(Exception):
    """The model could not be exported or described."""


def export_onnx(weights: str, *, imgsz: int, out_dir: Path, opset: int = 17) -> Path:
    """Export `weights` (a .pt file or an Ultralytics model name) to ONNX in `out_dir`."""
    try:
        from ultralytics import YOLO
    except ImportError as exc:
        raise ExportError(
            "ultralytics is not installed: install the export extra with "
            "pip install 'mallpulse[export]' (it pulls torch, several GB)"
        ) from exc
    model = YOLO(weights)
    produced = Path(
        model.export(format="onnx", imgsz=imgsz, opset=opset, dynamic=False, simplify=True)
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / produced.name
    if produced.resolve() != target.resolve():
        target.write_bytes(produced.read_bytes())
    return target


def _dims(value_info: Any) -> list[int]:
    return [
        d.dim_value if d.HasField("dim_value") else -1
        for d in value_info.type.tensor_type.shape.dim
    ]


def _labels(model: Any, n_classes: int) -> list[str] | str:
    meta = {p.key: p.value for p in model.metadata_props}
    if "names" in meta:  # ultralytics stores {0: 'person', ...} as a Python literal
        names = ast.literal_eval(meta["names"])
        return [names[i] for i in sorted(names)]
    if n_classes == 80:
        return "coco80"
    raise ExportError(f"the model has {n_classes} classes but no 'names' metadata; pass --labels")


def describe(
    onnx_path: Path, *, name: str, licence: str, source: str, labels: list[str] | None = None
) -> dict[str, Any]:
    """The manifest of an ONNX detector: size, output format and classes read from the graph."""
    import onnx

    try:
        model = onnx.load(str(onnx_path))
    except Exception as exc:  # onnx raises DecodeError and friends
        raise ExportError(f"{onnx_path}: not an ONNX model: {exc}") from exc
    ins, outs = _dims(model.graph.input[0]), _dims(model.graph.output[0])
    if len(ins) != 4 or ins[1] != 3 or min(ins[2:]) <= 0:
        raise ExportError(f"{onnx_path}: expected a fixed input [1, 3, H, W], got {ins}")
    if len(outs) != 3:
        raise ExportError(f"{onnx_path}: expected a 3-D detector output, got {outs}")
    if outs[1] < outs[2]:  # [1, 4 + C, N]: YOLOv8 / YOLO11 head
        fmt, n_classes = "yolov8", outs[1] - 4
    else:  # [1, N, 5 + C]: YOLOX raw grids
        fmt, n_classes = "yolox", outs[2] - 5
    if n_classes < 1:
        raise ExportError(f"{onnx_path}: output {outs} leaves no room for class scores")
    names: list[str] | str = labels if labels is not None else _labels(model, n_classes)
    if isinstance(names, list) and len(names) != n_classes:
        raise ExportError(f"{len(names)} labels for a model with {n_classes} classes")
    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    return {
        "name": name,
        "file": onnx_path.name,
        "sha256": digest,
        "input_size": [ins[3], ins[2]],
        "output_format": fmt,
        "input_layout": "rgb_0_1" if fmt == "yolov8" else "bgr_0_255",
        "pad_value": 114,
        "labels": names,
        "licence": licence,
        "source": source,
    }


def write_manifest(manifest: dict[str, Any], path: Path) -> Path:
    """Write the manifest YAML after validating it with the gateway's own manifest model."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from edge.detect.manifest import ModelManifest

    ModelManifest.model_validate(manifest)
    header = "# Written by models/export.py; the gateway refuses weights whose sha256 differs.\n"
    path.write_text(header + yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
    return path


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "model",
        help="Ultralytics weights (.pt or model name), or an .onnx file with --manifest-only",
    )
    ap.add_argument("--imgsz", type=int, default=416, help="square input size (default 416)")
    ap.add_argument(
        "--out-dir",
        type=Path,
        default=Path("models/weights"),
        help="where the .onnx goes (default models/weights)",
    )
    ap.add_argument(
        "--manifest", type=Path, default=None, help="manifest path (default models/<name>.yaml)"
    )
    ap.add_argument("--name", default=None, help="model name (default: the file stem)")
    ap.add_argument("--licence", default=ULTRALYTICS_LICENCE, help="licence of the weights")
    ap.add_argument(
        "--source",
        default="https://github.com/ultralytics/ultralytics",
        help="where the weights come from",
    )
    ap.add_argument("--labels", default=None, help="comma-separated class names")
    ap.add_argument(
        "--manifest-only",
        action="store_true",
        help="describe an existing .onnx file; no export, no ultralytics needed",
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    args = _parser().parse_args(argv)
    try:
        onnx_path = (
            Path(args.model)
            if args.manifest_only
            else export_onnx(args.model, imgsz=args.imgsz, out_dir=args.out_dir)
        )
        name = args.name or onnx_path.stem
        labels = args.labels.split(",") if args.labels else None
        manifest = describe(
            onnx_path, name=name, licence=args.licence, source=args.source, labels=labels
        )
        out = write_manifest(manifest, args.manifest or Path("models") / f"{name}.yaml")
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {out} for {onnx_path} ({manifest['output_format']}, "
        f"{manifest['input_size'][0]}x{manifest['input_size'][1]})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
