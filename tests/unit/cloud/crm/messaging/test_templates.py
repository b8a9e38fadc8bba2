"""Templates: sandboxed Jinja2 with StrictUndefined, locale fallback, MJML with a plain-text part,
previews, SMS segments (GSM-7 vs UCS-2) and per-channel length rules."""

from __future__ import annotations

import pytest

from cloud.crm.messaging.errors import TemplateError
from cloud.crm.messaging.length import length_problem, sms_length
from cloud.crm.messaging.templates import (
    Template,
    html_to_text,
    pick_locale,
    preview,
    render,
)

MJML = """<mjml><mj-body><mj-section><mj-column>
<mj-text>Hello {{ profile.first_name }}, you have {{ profile.points }} points.</mj-text>
<mj-button href="https://mallpulse.test/offers">See offers</mj-button>
</mj-column></mj-section></mj-body></mjml>"""


def _t(
    body: str, *, channel: str = "email", fmt: str = "text", subject: str | None = None
) -> Template:
    return Template(name="t", channel=channel, locale="en", format=fmt, body=body, subject=subject)  # type: ignore[arg-type]


def test_mjml_renders_responsive_html_and_a_plain_text_part() -> None:
    out = preview(_t(MJML, fmt="mjml", subject="Hi {{ profile.first_name }}"))
    assert out.subject == "Hi Ann"
    assert out.html is not None and "<!doctype html>" in out.html.lower() and "@media" in out.html
    assert "Hello Ann, you have 1200 points." in out.text
    assert "See offers (https://mallpulse.test/offers)" in out.text
    assert "<" not in out.text and "{" not in out.text


def test_html_variables_are_escaped_but_text_is_not() -> None:
    evil = {"profile": {"first_name": "<script>x</script>"}}
    assert "&lt;script&gt;" in str(
        render(_t("<p>{{ profile.first_name }}</p>", fmt="html"), evil).html
    )
    assert render(_t("{{ profile.first_name }}", channel="sms"), evil).text == "<script>x</script>"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("Hello {{ profile.first_name ", "body line 1: unexpected end of template"),
        ("{% if x %}open", "body line 1"),
        (
            "Hi {{ profile.nickname }}",
            "undefined variable: 'dict object' has no attribute 'nickname'",
        ),
        ("Hi {{ coupon }}", "undefined variable: 'coupon' is undefined"),
        ("{{ ''.__class__.__mro__ }}", "not allowed"),
        ("{{ 1 / 0 }}", "division by zero"),
        ("{{ 'x' * 10**9 }}", "repetition larger than the output limit"),
        ("{{ 2 ** 100000 }}", "exponent larger than 64"),
        ("{% for i in range(2000) %}{{ 'y' * 1000 }}{% endfor %}", "more than 1000000 characters"),
    ],
)
def test_bad_templates_are_template_errors_naming_the_problem(body: str, needle: str) -> None:
    with pytest.raises(TemplateError) as err:
        preview(_t(body))
    assert err.value.status == 422 and needle in err.value.detail, err.value.detail


@pytest.mark.parametrize(
    ("source", "needle"),
    [
        ("<p>not mjml</p>", "the root must be <mjml>"),
        ("<mjml><mj-body><mj-section>", "the root must be <mjml>"),
        ("<mjml><mj-body><mj-blink>x</mj-blink></mj-body></mjml>", "unknown element 'mj-blink'"),
    ],
)
def test_invalid_mjml_is_a_template_error(source: str, needle: str) -> None:
    with pytest.raises(TemplateError, match="invalid MJML") as err:
        preview(_t(source, fmt="mjml"))
    assert needle in err.value.detail


@pytest.mark.parametrize(
    ("available", "wanted", "expected"),
    [
        (["en", "zh-CN"], "zh-CN", "zh-CN"),
        (["en", "zh-CN"], "zh-cn", "zh-CN"),
        (["en", "zh-CN"], "zh-TW", "zh-CN"),
        (["en", "zh-CN"], "fr-FR", "en"),
        (["en", "zh-CN"], None, "en"),
        (["zh-CN"], "fr", "zh-CN"),
        ([], "en", None),
    ],
)
def test_locale_fallback(available: list[str], wanted: str | None, expected: str | None) -> None:
    assert pick_locale(available, wanted) == expected


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", "GSM-7", 0, 1),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),  # extension characters take two septets
        ("€" * 81, "GSM-7", 162, 2),
        ("您" * 70, "UCS-2", 70, 1),
        ("您" * 71, "UCS-2", 71, 2),
        ("a" * 159 + "您", "UCS-2", 160, 3),  # one non-GSM character switches the whole message
        ("😀" * 35, "UCS-2", 70, 1),  # astral characters are two UTF-16 units
    ],
)
def test_sms_segments(text: str, encoding: str, units: int, segments: int) -> None:
    info = sms_length(text)
    assert (info.encoding, info.units, info.segments) == (encoding, units, segments)


@pytest.mark.parametrize(
    ("channel", "body", "subject", "problem"),
    [
        ("sms", "a" * 1530, None, None),
        ("sms", "a" * 1531, None, "11 GSM-7 segments"),
        ("sms", "您" * 671, None, "11 UCS-2 segments"),
        ("whatsapp", "x" * 4097, None, "at most 4096"),
        ("email", "x" * 100_000, "s" * 256, "subject is 256 characters"),
        ("email", "x" * 100_000, "ok", None),
    ],
)
def test_length_rules(channel: str, body: str, subject: str | None, problem: str | None) -> None:
    found = length_problem(channel, body, subject)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_a_too_long_sms_template_is_refused_when_rendered() -> None:
    with pytest.raises(TemplateError, match="segments"):
        preview(_t("{{ 'x' * 2000 }}", channel="sms"))


def test_html_to_text_keeps_blocks_and_drops_styles() -> None:
    html = (
        "<html><head><style>p{color:red}</style></head>"
        "<body><p>One</p><p>Two&nbsp; x</p></body></html>"
    )
    assert html_to_text(html) == "One\nTwo x"
