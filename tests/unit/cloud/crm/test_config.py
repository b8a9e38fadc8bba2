"""CRM configuration files: loaded, validated, errors name the variable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloud.core.errors import SettingsError
from cloud.core.settings import Settings
from cloud.crm.config import crm_config


def test_defaults_and_region() -> None:
    rules, program = crm_config(Settings(crm_phone_region="de"))
    assert rules.default_phone_region == "DE" and program.tiers[0].threshold == 0


def test_files_are_loaded(tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.json"
    rules_file.write_text(json.dumps({"strong_kinds": ["email"], "weak_kinds": ["device_id"]}))
    program_file = tmp_path / "program.json"
    program_file.write_text(json.dumps({"expiry_days": 90, "earn_rates": {"eur": "2"}}))
    rules, program = crm_config(
        Settings(
            crm_identity_rules_file=str(rules_file), crm_loyalty_program_file=str(program_file)
        )
    )
    assert {k.value for k in rules.strong_kinds} == {"email"}
    assert program.expiry_days == 90 and str(program.earn_rates["EUR"]) == "2"


@pytest.mark.parametrize(
    ("field", "content", "variable"),
    [
        (
            "crm_identity_rules_file",
            '{"strong_kinds": ["email"], "weak_kinds": ["email"]}',
            "MALLPULSE_CRM_IDENTITY_RULES_FILE",
        ),
        ("crm_loyalty_program_file", '{"tiers": []}', "MALLPULSE_CRM_LOYALTY_PROGRAM_FILE"),
        ("crm_loyalty_program_file", "not json", "MALLPULSE_CRM_LOYALTY_PROGRAM_FILE"),
        ("crm_identity_rules_file", "[1, 2]", "MALLPULSE_CRM_IDENTITY_RULES_FILE"),
    ],
)
def test_bad_files_name_the_variable(
    tmp_path: Path, field: str, content: str, variable: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(SettingsError, match=variable):
        crm_config(Settings(**{field: str(path)}))


def test_missing_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="MALLPULSE_CRM_LOYALTY_PROGRAM_FILE"):
        crm_config(Settings(crm_loyalty_program_file=str(tmp_path / "nope.json")))
