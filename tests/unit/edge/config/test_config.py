"""Device config: the example store is valid, and every kind of bad config names its field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from edge.config import ConfigError, config_json_schema, load_config, parse_config
from mallpulse.cli import app

REPO = Path(__file__).resolve().parents[4]
EXAMPLE = REPO / "firmware-config" / "example-store.yaml"


def example() -> dict[str, Any]:
    """The example store as a mutable document."""
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return data


def test_example_store_is_valid() -> None:
    cfg = load_config(EXAMPLE)
    assert [c.id for c in cfg.cameras] == ["entrance", "tills", "aisle"]
    assert cfg.camera("entrance").lines[0].id == "main-door"
    assert cfg.camera("tills").zones[0].kind == "queue"
    assert [s.id for s in cfg.camera("aisle").shelves] == ["shelf-coffee", "shelf-tea"]


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("device:\n  device_id: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert str(bad) in str(info.value)
    assert "not valid YAML: line" in str(info.value)


def test_unknown_field_is_named() -> None:
    doc = example()
    doc["cameras"][0]["lines"][0]["colour"] = "red"
    with pytest.raises(ConfigError) as info:
        parse_config(doc, source="store.yaml")
    assert info.value.first_field == "cameras[0].lines[0].colour"
    assert "unknown field" in str(info.value)
    assert str(info.value).startswith("store.yaml: cameras[0].lines[0].colour")


@pytest.mark.parametrize(
    ("mutate", "field", "why"),
    [
        (
            lambda d: d["cameras"][2]["shelves"][0].update(polygon=[[0, 0], [1, 1]]),
            "cameras[2].shelves[0].polygon",
            "at least 3 points",
        ),
        (
            lambda d: d["cameras"][1]["zones"][0].update(
                polygon=[[0, 0], [1, 1], [1, 0], [0, 0.5]]
            ),
            "cameras[1].zones[0].polygon",
            "crosses itself",
        ),
        (
            lambda d: d["cameras"][0]["lines"][0].update(points=[[0.5, 0.5], [0.5, 0.5]]),
            "cameras[0].lines[0].points",
            "must differ",
        ),
        (
            lambda d: d["cameras"][0]["lines"][0].update(points=[[0.5, 1.5], [0.5, 0.2]]),
            "cameras[0].lines[0].points[0][1]",
            "less than or equal to 1",
        ),
        (lambda d: d["device"].update(timezone="Mars/Olympus"), "device.timezone", "unknown IANA"),
        (lambda d: d["cameras"][1].update(id="entrance"), "cameras", "camera ids must be unique"),
        (lambda d: d["window"].update(length_s=7), "window", "divide 86400"),
        (lambda d: d["device"].update(device_id="gw/1"), "device.device_id", "pattern"),
        (lambda d: d["detector"].pop("manifest"), "detector", "needs a 'manifest'"),
        (lambda d: d.pop("cameras"), "cameras", "Field required"),
    ],
)
def test_bad_values_name_the_field(mutate: Any, field: str, why: str) -> None:
    doc = example()
    mutate(doc)
    with pytest.raises(ConfigError) as info:
        parse_config(doc, source="store.yaml")
    fields = [f for f, _ in info.value.problems]
    assert field in fields, info.value
    assert why in str(info.value)


def test_top_level_must_be_mapping() -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_config(["not", "a", "mapping"], source="x.yaml")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "nope.yaml")


def test_committed_schema_is_current() -> None:
    committed = (REPO / "firmware-config" / "edge-config.schema.json").read_text()
    assert committed == config_json_schema(), (
        "regenerate with: mallpulse config schema -o firmware-config/edge-config.schema.json"
    )
    schema = json.loads(committed)
    assert schema["additionalProperties"] is False
    # every field of every model carries a description
    for name, model in schema["$defs"].items():
        for field, spec in model.get("properties", {}).items():
            assert spec.get("description"), f"{name}.{field} has no description"


def test_cli_validate_reports_ok_and_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["config", "validate", str(EXAMPLE)])
    assert ok.exit_code == 0, ok.output
    assert "3 cameras, 1 line, 2 zones, 2 shelves" in ok.output
    doc = example()
    doc["cameras"][0]["zones"][0]["polygon"] = [[0, 0], [0.5, 0.5]]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    res = runner.invoke(app, ["config", "validate", str(bad)])
    assert res.exit_code == 2
    assert f"{bad}: cameras[0].zones[0].polygon: a polygon needs at least 3 points" in res.output
