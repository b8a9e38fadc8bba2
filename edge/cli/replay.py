"""`mallpulse edge replay`: run the whole vision pipeline on a video file, as fast as possible."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from edge.cli.windows_json import Totals
    from edge.pipeline import CameraPipeline

DEFAULT_START = "2026-01-01T00:00:00+00:00"


def register(app: typer.Typer) -> None:
    """Add the `replay` command to the `edge` group."""
    app.command("replay")(replay)


def replay(
    video: Path = typer.Argument(..., help="Video file (mp4, avi, gif)."),
    config: Path = typer.Option(..., "--config", "-c", help="Device config (YAML or JSON)."),
    out: Path = typer.Option(..., "--out", "-o", help="Write one JSON window aggregate a line."),
    camera: str | None = typer.Option(
        None, "--camera", help="Camera whose lines/zones/shelves apply (default: the first)."
    ),
    annotate: Path | None = typer.Option(
        None, "--annotate", help="Also write a video with boxes, ids, geometry and counts."
    ),
    start: str = typer.Option(
        DEFAULT_START, "--start", help="Wall-clock time (ISO 8601) of the video's first frame."
    ),
    max_fps: float | None = typer.Option(
        None,
        "--max-fps",
        min=0.0,
        help="Frame-rate cap by video time; 0 = every frame (default: the camera's max_fps).",
    ),
) -> None:
    """Replay a video through detection, tracking, analytics and windows; write aggregates."""
    from edge.capture import CaptureError, FileSource
    from edge.config import ConfigError, load_config
    from edge.errors import EdgeError
    from edge.pipeline import build_pipeline

    try:
        cfg = load_config(config)
        cam = cfg.camera(camera) if camera else cfg.cameras[0]
        t0 = datetime.fromisoformat(start).timestamp()
        cap = cam.max_fps if max_fps is None else (max_fps or None)
        source = FileSource(video, max_fps=cap)
        pipeline = build_pipeline(cfg, cam.id, base_dir=config.resolve().parent)
        _make_folders(out, annotate)
    except KeyError as exc:  # str() of a KeyError quotes its message
        typer.echo(f"error: {exc.args[0]}", err=True)
        raise typer.Exit(2) from exc
    except (ConfigError, CaptureError, EdgeError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        summary = _run(pipeline, source, t0, out, annotate)
    except (CaptureError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(json.dumps(summary))


def _make_folders(*paths: Path | None) -> None:
    """Create the folders of the output files (ValueError saying which one cannot be)."""
    for path in paths:
        if path is None:
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(
                f"cannot create the folder {path.parent}: {exc.strerror or exc}"
            ) from exc


def _run(
    pipeline: CameraPipeline, source: Any, t0: float, out: Path, annotate: Path | None
) -> dict[str, Any]:
    from edge.cli.annotate import Annotator
    from edge.cli.windows_json import Totals

    # the video holds the frames the pipeline saw: written at the rate they were kept
    drawer = Annotator(pipeline, annotate, fps=source.rate) if annotate else None
    totals = Totals.for_camera(pipeline.camera)
    try:
        seq = _replay_into(pipeline, source, t0, out, drawer, totals)
    finally:  # a replay that fails part-way still leaves a playable annotated video
        if drawer is not None:
            drawer.close()
    st = pipeline.stats
    return {
        "frames": st.frames_processed,
        "skipped_by_motion_gating": st.frames_skipped,
        "windows": seq,
        "fps": round(st.fps, 1),
        "detector_latency_ms": round(st.detector_latency_ms, 2),
        "totals": totals.as_dict(),
        "out": str(out),
    }


def _replay_into(
    pipeline: CameraPipeline, source: Any, t0: float, out: Path, drawer: Any, totals: Totals
) -> int:
    """Feed every frame and write each closed window as one JSON line; returns the windows."""
    from edge.cli.windows_json import envelope_dict

    seq = 0
    t = 0.0
    with out.open("w", encoding="utf-8") as fh:

        def write(envelopes: list[Any]) -> None:
            nonlocal seq
            for env in envelopes:
                seq += 1  # no outbox here: number windows in-process from 1
                env.sequence = seq
                totals.add(env)
                if drawer is not None:
                    drawer.add_closed(env)
                fh.write(json.dumps(envelope_dict(env)) + "\n")

        for frame, t in source:
            write(pipeline.process(frame, t0 + t))
            if drawer is not None:
                drawer.draw(frame)
            n = pipeline.stats.frames_processed
            if n % 100 == 0:
                print(f"replay: {n} frames, {pipeline.stats.fps:.1f} fps", file=sys.stderr)
        write(pipeline.flush(t0 + t + 1e-3))
    return seq
