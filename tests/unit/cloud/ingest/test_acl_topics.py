"""Broker ACL rendering, mosquitto password hashes, credentials and topic parsing."""

from __future__ import annotations

import base64
import hashlib

import pytest

from cloud.db.repositories.devices import mosquitto_hash, split_credential
from cloud.ingest.acl import render_acl, render_passwords
from cloud.ingest.mqtt import parse_topic


def test_acl_confines_each_device_to_its_topics() -> None:
    text = render_acl([("gw1", "s1", "h1"), ("gw2", "s2", None)], prefix="mallpulse/v1/",
                      ingest_user="ing")  # fmt: skip
    blocks = {b.splitlines()[0]: b.splitlines()[1:] for b in text.split("\n\n") if b.strip()}
    assert blocks["user gw1"] == [
        "topic write mallpulse/v1/s1/gw1/window", "topic write mallpulse/v1/s1/gw1/health",
        "topic write mallpulse/v1/s1/gw1/status", "topic write mallpulse/v1/s1/gw1/config/status",
        "topic read mallpulse/v1/s1/gw1/config", "topic read mallpulse/v1/s1/gw1/ack",
    ]  # fmt: skip
    ingest = text.split("user gw1")[0]
    assert "topic read mallpulse/v1/#" in ingest
    assert "topic write mallpulse/v1/+/+/ack" in ingest  # delivery acknowledgements
    assert not any("#" in line or "+" in line for line in blocks["user gw2"])


def test_password_file_lists_hashes_only() -> None:
    text = render_passwords([("gw1", "s1", "$7$x"), ("gw2", "s2", None)], ingest_user="ing",
                            ingest_hash="$7$y")  # fmt: skip
    assert text == "ing:$7$y\ngw1:$7$x\n"


def test_mosquitto_hash_is_pbkdf2_sha512() -> None:
    salt = b"0123456789ab"
    _, tag, iterations, salt_b64, digest_b64 = mosquitto_hash("pw", salt=salt).split("$")
    assert (tag, iterations) == ("7", "101") and base64.b64decode(salt_b64) == salt
    assert base64.b64decode(digest_b64) == hashlib.pbkdf2_hmac("sha512", b"pw", salt, 101)


@pytest.mark.parametrize(
    ("credential", "parts"),
    [("mpd_gw.1.abc", ("gw.1", "abc")), ("mpd_gw.", None), ("mpd_.x", None), ("jwt.x.y", None)],
)
def test_split_credential(credential: str, parts: tuple[str, str] | None) -> None:
    assert split_credential(credential) == parts


@pytest.mark.parametrize(
    ("topic", "parts"),
    [
        ("p/v1/s1/d1/window", ("s1", "d1", "window")),
        ("p/v1/s1/d1/config/status", None),
        ("p/v1/s1//window", None),
        ("other/s1/d1/window", None),
    ],
)
def test_parse_topic(topic: str, parts: tuple[str, str, str] | None) -> None:
    assert parse_topic("p/v1", topic) == parts
