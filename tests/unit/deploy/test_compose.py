"""deploy/compose: the compose file is valid against the compose-spec schema and wires the stack."""

from __future__ import annotations

import copy
import importlib.resources
import itertools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from cloud.core.settings import Settings

REPO = Path(__file__).resolve().parents[3]
COMPOSE_DIR = REPO / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
MOSQUITTO_CONF = REPO / "deploy" / "mosquitto" / "mosquitto.conf"
CLOUD_DOCKERFILE = REPO / "deploy" / "docker" / "cloud.Dockerfile"

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|AUTH")
INTERPOLATION = re.compile(r"^\$\{[A-Z0-9_]+(:?[-?][^}]*)?\}$")
VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?::?([-?])[^}]*)?\}")
URL_PASSWORD = re.compile(r"://[^:/@]*:([^@]*)@")


def compose_schema() -> dict[str, Any]:
    """The official compose-spec JSON schema vendored by check-jsonschema."""
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads(vendor.joinpath("compose-spec.json").read_text())
    return schema


def compose_errors(document: dict[str, Any]) -> list[str]:
    """Every schema violation of a compose document, as 'path: message'."""
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(document)]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file as loaded by a YAML parser (anchors and merge keys resolved)."""
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services of the compose file by name."""
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def command_of(service: dict[str, Any]) -> list[str]:
    """A service's command as a list."""
    command = service.get("command", [])
    return command.split() if isinstance(command, str) else list(command)


def services_running(services: dict[str, dict[str, Any]], *words: str) -> list[str]:
    """Names of the services whose command contains these words in order."""
    n = len(words)
    return [
        name
        for name, svc in services.items()
        if any(tuple(command_of(svc)[i : i + n]) == words for i in range(len(command_of(svc))))
    ]


def env_example() -> dict[str, str]:
    """The variables of .env.example and their example values."""
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def test_compose_file_is_valid_against_the_compose_spec(compose: dict[str, Any]) -> None:
    assert compose_errors(compose) == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["services"]["api"]["healthcheck"].update(intervall="5s"), "intervall"),
        (lambda d: d["services"]["worker"]["deploy"].update(replicas=[2]), "replicas"),
        (lambda d: d["services"]["beat"].update(restart=False), "restart"),
    ],
)
def test_the_schema_rejects_broken_files(
    compose: dict[str, Any], mutate: Any, expected: str
) -> None:
    broken = copy.deepcopy(compose)
    mutate(broken)
    errors = compose_errors(broken)
    assert errors, "the schema accepted a broken compose file"
    assert any(expected in error for error in errors), errors


def test_the_stack_has_every_component(services: dict[str, dict[str, Any]]) -> None:
    assert {"timescaledb", "redis", "mosquitto"} <= set(services)
    assert "timescaledb" in services["timescaledb"]["image"]
    assert services_running(services, "mallpulse", "cloud", "migrate") == ["migrate"]
    assert services_running(services, "mallpulse", "cloud", "api") == ["api"]
    assert services_running(services, "mallpulse", "cloud", "ingest") == ["ingest-1", "ingest-2"]
    assert services_running(services, "celery", "-A", "cloud.workers.app", "worker") == ["worker"]
    assert services_running(services, "celery", "-A", "cloud.workers.app", "beat") == ["beat"]


def test_two_ingest_processes_share_one_subscription_group(
    services: dict[str, dict[str, Any]],
) -> None:
    ingest = services_running(services, "mallpulse", "cloud", "ingest")
    replicas = sum(services[name].get("deploy", {}).get("replicas", 1) for name in ingest)
    assert replicas >= 2
    groups = {services[name]["environment"]["MALLPULSE_MQTT_SHARE_GROUP"] for name in ingest}
    assert len(groups) == 1 and "" not in groups
    # Stable, distinct MQTT client ids: a restarted process resumes its own persistent session.
    instances = [command_of(services[name]) for name in ingest]
    ids = [c[c.index("--instance") + 1] for c in instances]
    assert len(set(ids)) == len(ids) == replicas


def test_beat_is_a_single_instance(services: dict[str, dict[str, Any]]) -> None:
    beats = services_running(services, "celery", "-A", "cloud.workers.app", "beat")
    assert len(beats) == 1
    assert services[beats[0]].get("deploy", {}).get("replicas", 1) == 1
    workers = services_running(services, "celery", "-A", "cloud.workers.app", "worker")
    assert all("-B" not in command_of(services[name]) for name in workers), "beat inside a worker"


def test_every_service_is_health_checked_or_waits_on_a_condition(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, svc in services.items():
        depends = svc.get("depends_on", {})
        assert "healthcheck" in svc or depends, f"{name}: neither healthcheck nor depends_on"
        assert isinstance(depends, dict), f"{name}: depends_on needs the long form with conditions"
        for target, spec in depends.items():
            condition = spec.get("condition")
            assert condition in {"service_healthy", "service_completed_successfully"}, name
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits on {target}'s health"
            else:
                assert services[target].get("restart") == "no", f"{target} must be one-shot"


def test_the_api_and_ingest_wait_for_migrations(services: dict[str, dict[str, Any]]) -> None:
    for name in ("api", "ingest-1", "ingest-2", "worker", "beat"):
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully"


def environment_values(services: dict[str, dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(service, variable, value) for every environment entry."""
    rows = []
    for name, svc in services.items():
        env = svc.get("environment", {})
        assert isinstance(env, dict), f"{name}: use the mapping form of environment"
        rows += [(name, key, str(value)) for key, value in env.items()]
    return rows


def test_no_secret_is_written_in_plain_text(services: dict[str, dict[str, Any]]) -> None:
    for service, key, value in environment_values(services):
        if SECRET_NAME.search(key):
            assert INTERPOLATION.match(value), f"{service}.{key} must come from .env"
        for password in URL_PASSWORD.findall(value):
            assert INTERPOLATION.match(password), f"{service}.{key}: password in URL"
    for name, svc in services.items():
        command = command_of(svc)
        for flag, value in itertools.pairwise(command):
            if flag in {"--requirepass", "--password", "-P"}:
                assert INTERPOLATION.match(value), f"{name}: {flag} must come from .env"


def test_required_secrets_have_no_default_and_are_listed_in_env_example() -> None:
    text = COMPOSE_FILE.read_text()
    documented = env_example()
    used = {name: kind for name, kind in VARIABLE.findall(text)}
    assert set(used) <= set(documented), set(used) - set(documented)
    for name in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "MQTT_INGEST_PASSWORD", "JWT_SECRET"):
        assert used[name] == "?", f"{name} must be required (${{{name}:?...}})"
        assert documented[name] == "", f".env.example must not ship a value for {name}"


def test_cloud_variables_are_real_settings(services: dict[str, dict[str, Any]]) -> None:
    fields = set(Settings.model_fields)
    for service, key, _ in environment_values(services):
        if key.startswith("MALLPULSE_"):
            assert key.removeprefix("MALLPULSE_").lower() in fields, f"{service}: unknown {key}"


def interpolate(value: str) -> str:
    """A value as compose would expand it, with required secrets set to a sample secret."""

    def expand(match: re.Match[str]) -> str:
        body = match.group(0)[2:-1]
        if ":-" in body:
            return body.split(":-", 1)[1]
        return "6419141c349984bebf288ebe8004b997d45210a7f05ca398" if ":?" in body else ""

    return re.sub(r"\$\{[^}]*\}", expand, value)


@pytest.mark.parametrize("name", ["migrate", "api", "ingest-1", "worker", "beat"])
def test_the_environment_of_each_cloud_process_is_valid_settings(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    env = services[name]["environment"]
    values = {k.removeprefix("MALLPULSE_").lower(): interpolate(str(v)) for k, v in env.items()}
    settings = Settings(**values)
    assert settings.database_url.startswith("postgresql://mallpulse:")
    assert settings.mqtt_ca_file and settings.mqtt_port == 8883
    assert settings.jwt_secret is not None


def test_cloud_processes_run_unprivileged_and_read_only(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ("migrate", "api", "ingest-1", "ingest-2", "worker", "beat"):
        svc = services[name]
        assert svc["read_only"] is True, name
        assert not svc["user"].startswith("0"), name
        assert svc["cap_drop"] == ["ALL"], name
        assert any(t.startswith("/tmp") for t in svc["tmpfs"]), name


def test_mosquitto_uses_the_generated_config_and_tls_certificates(
    services: dict[str, dict[str, Any]],
) -> None:
    mosquitto = services["mosquitto"]
    assert command_of(mosquitto)[-1].endswith("mosquitto -c /etc/mosquitto/mosquitto.conf")
    mounts = {m["target"]: m for m in mosquitto["volumes"] if isinstance(m, dict)}
    config = mounts["/etc/mosquitto/mosquitto.conf"]
    assert (COMPOSE_DIR / config["source"]).resolve() == MOSQUITTO_CONF
    generated = [mounts[f"/etc/mosquitto/mallpulse.{kind}"] for kind in ("acl", "passwd")]
    assert all(
        (COMPOSE_DIR / m["source"]).parent.resolve() == COMPOSE_DIR / "broker" for m in generated
    )
    assert "broker/" in (COMPOSE_DIR / ".gitignore").read_text().split()
    certs = mounts["/etc/mosquitto/certs"]
    assert certs["source"].startswith("${MQTT_CERTS_DIR")
    assert all(m["read_only"] is True for m in (config, *generated, certs))
    assert any(str(p).endswith(":8883") for p in mosquitto["ports"])
    cloud_env = services["ingest-1"]["environment"]
    assert cloud_env["MALLPULSE_MQTT_PORT"] == "8883" and cloud_env["MALLPULSE_MQTT_CA_FILE"]


def test_the_cloud_image_builds_from_files_that_exist(services: dict[str, dict[str, Any]]) -> None:
    build = services["migrate"]["build"]
    assert [name for name, svc in services.items() if "build" in svc] == ["migrate"]
    context = (COMPOSE_DIR / build["context"]).resolve()
    assert context == REPO
    assert (context / build["dockerfile"]).resolve() == CLOUD_DOCKERFILE
    for name in ("migrate", "api", "ingest-1", "ingest-2", "worker", "beat"):
        assert services[name]["image"] == services["migrate"]["image"], "one image for all"


def conf_directives(path: Path) -> list[tuple[str, str]]:
    """(directive, value) pairs of a mosquitto.conf, comments dropped."""
    pairs = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            pairs.append((key, value.strip()))
    return pairs


FILE_DIRECTIVES = {"password_file", "acl_file", "certfile", "keyfile", "cafile"}


def test_every_path_of_the_broker_config_is_mounted(services: dict[str, dict[str, Any]]) -> None:
    assert MOSQUITTO_CONF.is_file(), f"broker config missing: {MOSQUITTO_CONF}"
    directives = conf_directives(MOSQUITTO_CONF)
    listeners = [value.split()[0] for key, value in directives if key == "listener"]
    assert "8883" in listeners, "the compose stack publishes and probes a TLS listener on 8883"
    targets = [
        m["target"] if isinstance(m, dict) else m.split(":")[1]
        for m in services["mosquitto"]["volumes"]
    ]
    paths = [value for key, value in directives if key in FILE_DIRECTIVES]
    paths += [value for key, value in directives if key == "persistence_location"]
    assert {"certfile", "keyfile", "cafile"} <= {key for key, _ in directives}
    for path in paths:
        covered = [t for t in targets if path == t or path.startswith(t.rstrip("/") + "/")]
        assert covered, f"{MOSQUITTO_CONF.name} needs {path}, which no volume provides"
