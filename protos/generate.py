"""Regenerate (or check) the Python code for the wire contract in protos/mallpulse/v1.

Usage: python -m protos.generate [--check]

Generated modules import each other as ``protos.mallpulse.v1.*_pb2`` because protoc runs with the
repository root as its include path. ``--check`` regenerates into a temporary folder and exits 1
if any committed file differs (CI runs it so a stale generated file fails the build).
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos" / "mallpulse" / "v1"


def _generate(out: Path) -> list[Path]:
    """Run protoc on every .proto into ``out``; return the generated file paths (relative)."""
    import grpc_tools
    from grpc_tools import protoc  # dev dependency, imported only when generating

    protos = sorted(p.relative_to(ROOT).as_posix() for p in PROTO_DIR.glob("*.proto"))
    well_known = str(Path(grpc_tools.__file__).parent / "_proto")
    args = [
        "protoc",
        f"-I{ROOT}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *protos,
    ]
    # protoc finds the mypy plugins (protoc-gen-mypy) on PATH: use this interpreter's scripts.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed; see the messages above")
    return sorted(p.relative_to(out) for p in (out / "protos").rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if committed code is stale")
    ns = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        generated = _generate(out)
        committed = {
            p.relative_to(ROOT)
            for p in PROTO_DIR.iterdir()
            if p.name.endswith(("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi"))
        }
        if ns.check:
            stale = [str(p) for p in generated if not (ROOT / p).exists()]
            stale += [
                str(p)
                for p in generated
                if (ROOT / p).exists() and not filecmp.cmp(out / p, ROOT / p, shallow=False)
            ]
            stale += [str(p) for p in committed - set(generated)]
            if stale:
                print("stale generated protobuf code: " + ", ".join(sorted(stale)), file=sys.stderr)
                print("run: python -m protos.generate", file=sys.stderr)
                return 1
            print(f"protobuf code up to date ({len(generated)} files)")
            return 0
        for p in committed - set(generated):
            (ROOT / p).unlink()
        for p in generated:
            shutil.copyfile(out / p, ROOT / p)
        print(f"generated {len(generated)} files in {PROTO_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
