"""Identifier normalisation: one canonical value per person, clear errors otherwise."""

from __future__ import annotations

import pytest

from cloud.crm.errors import CrmInvalidInputError
from cloud.crm.identity.normalize import normalize_identifier


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("email", "John.Doe@Example.COM", "john.doe@example.com"),
        ("email", "  j.o.h.n+promo@gmail.com ", "john@gmail.com"),
        ("email", "John.Doe@googlemail.com", "johndoe@gmail.com"),
        ("email", "a.b+c@example.org", "a.b+c@example.org"),  # unknown provider: keep + and .
        ("email", "ann+x@outlook.com", "ann@outlook.com"),
        ("phone", "(415) 555-0100", "+14155550100"),
        ("phone", "+44 20 7946 0958", "+442079460958"),
        ("phone", "+86 138 0013 8000", "+8613800138000"),
        ("whatsapp_id", "+49 30 901820", "+4930901820"),
        ("loyalty_number", " ab 12 ", "AB12"),
        ("device_id", "Tablet-ABC", "tablet-abc"),
        ("pos_customer_id", "C-17", "C-17"),
        ("app_user_id", "User_9", "User_9"),
        ("wechat_id", "WxUser_01", "wxuser_01"),
    ],
)
def test_normalises(kind: str, raw: str, expected: str) -> None:
    assert normalize_identifier(kind, raw) == expected


@pytest.mark.parametrize(
    ("kind", "raw", "message"),
    [
        ("email", "plainaddress", "invalid email"),
        ("email", "a@b", "invalid email"),
        ("email", "two@@ats.com", "invalid email"),
        ("email", "+tag@gmail.com", "empty mailbox"),
        ("phone", "12345", "not a valid number"),
        ("phone", "call me", "invalid phone"),
        ("phone", "+1 000 000 0000", "not a valid number"),
        ("wechat_id", "1abc", "invalid wechat_id"),
        ("pos_customer_id", "has space", "invalid pos_customer_id"),
        ("email", "   ", "empty"),
        ("passport", "X1", "unknown identifier kind"),
    ],
)
def test_rejects(kind: str, raw: str, message: str) -> None:
    with pytest.raises(CrmInvalidInputError, match=message):
        normalize_identifier(kind, raw)


def test_national_numbers_use_the_default_region() -> None:
    assert normalize_identifier("phone", "030 901820", default_region="DE") == "+4930901820"
