"""Normalise and validate identifiers so that equal people produce equal identifier values."""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from cloud.crm.errors import CrmInvalidInputError


class IdentifierKind(StrEnum):
    """The kinds of identifiers a profile can carry."""

    EMAIL = "email"
    PHONE = "phone"
    LOYALTY_NUMBER = "loyalty_number"
    POS_CUSTOMER_ID = "pos_customer_id"
    DEVICE_ID = "device_id"
    APP_USER_ID = "app_user_id"
    WECHAT_ID = "wechat_id"
    WHATSAPP_ID = "whatsapp_id"


# Providers whose mailboxes ignore dots in the local part (documented by the provider).
_DOTLESS_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
# Providers that deliver `user+tag@` to `user@`.
_PLUS_TAG_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "icloud.com",
        "me.com",
        "fastmail.com",
        "protonmail.com",
        "proton.me",
    }
)
_DOMAIN_ALIASES = {"googlemail.com": "gmail.com"}
_WECHAT = re.compile(r"^[a-z][a-z0-9_-]{5,19}$")
_TOKEN = re.compile(r"^[\w.:@/+-]{1,128}$")


def normalize_email(raw: str) -> str:
    """Validate an e-mail address (syntax only) and return its canonical form.

    Lower-cased as a whole (no major provider has case-sensitive mailboxes); dots removed and
    `+tag` stripped only for providers that document that behaviour.
    """
    try:
        info = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise CrmInvalidInputError(f"invalid email {raw!r}: {exc}") from exc
    local, domain = info.local_part.lower(), info.domain.lower()
    domain = _DOMAIN_ALIASES.get(domain, domain)
    if domain in _PLUS_TAG_DOMAINS:
        local = local.split("+", 1)[0]
    if domain in _DOTLESS_DOMAINS:
        local = local.replace(".", "")
    if not local:
        raise CrmInvalidInputError(f"invalid email {raw!r}: empty mailbox name")
    return f"{local}@{domain}"


def normalize_phone(raw: str, default_region: str = "US") -> str:
    """Parse a phone number (national numbers in `default_region`) and return it as E.164."""
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise CrmInvalidInputError(f"invalid phone number {raw!r}: {exc}") from exc
    if not phonenumbers.is_valid_number(number):
        raise CrmInvalidInputError(f"invalid phone number {raw!r}: not a valid number")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _token(kind: IdentifierKind, raw: str, *, fold: bool) -> str:
    value = unicodedata.normalize("NFKC", raw).strip()
    value = value.lower() if fold else value
    if not _TOKEN.match(value):
        raise CrmInvalidInputError(
            f"invalid {kind.value} {raw!r}: 1-128 letters, digits or . : @ / + - _ expected"
        )
    return value


def normalize_identifier(kind: str, raw: str, *, default_region: str = "US") -> str:
    """Normalise one identifier of `kind`; CrmInvalidInputError names the kind and the bad value."""
    try:
        k = IdentifierKind(kind)
    except ValueError as exc:
        known = ", ".join(k.value for k in IdentifierKind)
        raise CrmInvalidInputError(f"unknown identifier kind {kind!r}; known: {known}") from exc
    if not isinstance(raw, str) or not raw.strip():
        raise CrmInvalidInputError(f"identifier {k.value} is empty")
    if k is IdentifierKind.EMAIL:
        return normalize_email(raw)
    if k in (IdentifierKind.PHONE, IdentifierKind.WHATSAPP_ID):
        return normalize_phone(raw, default_region)
    if k is IdentifierKind.WECHAT_ID:
        value = raw.strip().lower()
        if not _WECHAT.match(value):
            raise CrmInvalidInputError(f"invalid wechat_id {raw!r}: 6-20 letters/digits/_/-")
        return value
    if k is IdentifierKind.LOYALTY_NUMBER:
        return _token(k, re.sub(r"[\s-]+", "", raw), fold=False).upper()  # printed "AB 12-3"
    return _token(k, raw, fold=k is IdentifierKind.DEVICE_ID)
