"""Per-channel length rules: SMS segments under GSM-7 or UCS-2, and plain size limits."""

from __future__ import annotations

import math
from dataclasses import dataclass

# GSM 03.38 basic character set and the extension table (each extension costs two septets).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SmsLength:
    """How an SMS body is encoded and how many segments it takes."""

    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int


def sms_length(text: str) -> SmsLength:
    """Encoding and segment count: GSM-7 160/153 septets, otherwise UCS-2 70/67 code units."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in text):
        units = sum(2 if c in GSM7_EXTENDED else 1 for c in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, "UCS-2"
    segments = 1 if units <= single else math.ceil(units / multi)
    return SmsLength(encoding=encoding, units=units, segments=segments)


#: Longest body per channel, in characters (SMS is counted in segments instead).
MAX_CHARS = {"whatsapp": 4096, "wechat": 2048, "push": 1024, "inapp": 10_000}
#: Most segments an SMS may take (carriers concatenate up to about 10 reliably).
MAX_SMS_SEGMENTS = 10
#: Longest e-mail subject (RFC 5322 recommends lines under 78 characters; 998 is the hard limit).
MAX_SUBJECT = 255


def length_problem(channel: str, body: str, subject: str | None) -> str | None:
    """Why a rendered message is too long for its channel, or None when it fits."""
    if channel == "sms":
        info = sms_length(body)
        if info.segments > MAX_SMS_SEGMENTS:
            return (
                f"SMS body takes {info.segments} {info.encoding} segments "
                f"({info.units} units); at most {MAX_SMS_SEGMENTS}"
            )
        return None
    if subject is not None and len(subject) > MAX_SUBJECT:
        return f"subject is {len(subject)} characters; at most {MAX_SUBJECT}"
    limit = MAX_CHARS.get(channel)
    if limit is not None and len(body) > limit:
        return f"{channel} body is {len(body)} characters; at most {limit}"
    return None
