"""Templates: Jinja2 in its sandbox with StrictUndefined, per-locale variants with fallback,
responsive e-mail from MJML (the `mjml` package) with a generated plain-text part, previews
with a sample profile, and the channel's length rules."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from bs4 import BeautifulSoup
from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError
from jinja2 import Template as JinjaTemplate
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment
from mjml import mjml_to_html

from cloud.crm.messaging.errors import TemplateError
from cloud.crm.messaging.length import length_problem, sms_length

Format = Literal["text", "html", "mjml"]
#: The locale used when neither the wanted one nor its language exists.
DEFAULT_LOCALE = "en"

#: Largest rendered part; a template producing more is refused (it would fill memory).
MAX_OUTPUT_CHARS = 1_000_000


class _Sandbox(SandboxedEnvironment):
    """The sandbox, also refusing `'x' * 10**9` and `9 ** 9 ** 9` (memory and CPU bombs)."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """Check the size of a repetition or a power before computing it."""
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(times, int)
                if sized and len(seq) * times > MAX_OUTPUT_CHARS:
                    raise SecurityError("repetition larger than the output limit")
        if operator == "**" and isinstance(right, int | float) and abs(right) > 64:
            raise SecurityError("exponent larger than 64")
        return super().call_binop(context, operator, left, right)


# Two sandboxes: HTML and MJML autoescape variables, plain text (SMS, push) must not.
_HTML_ENV = _Sandbox(undefined=StrictUndefined, autoescape=True)
_TEXT_ENV = _Sandbox(undefined=StrictUndefined, autoescape=False)


@dataclass(frozen=True)
class Template:
    """One locale variant of a named template for one channel."""

    name: str
    channel: str
    locale: str
    format: Format
    body: str
    subject: str | None = None


@dataclass(frozen=True)
class Rendered:
    """A template rendered for one recipient."""

    subject: str | None
    text: str
    html: str | None
    locale: str
    sms_segments: int | None = None
    sms_encoding: str | None = None


#: A sample profile for previews: what a template may use under `profile`.
SAMPLE_PROFILE: dict[str, Any] = {
    "profile": {
        "id": 1,
        "first_name": "Ann",
        "last_name": "Lee",
        "email": "ann.lee@example.com",
        "phone": "+14155550100",
        "city": "Shanghai",
        "language": "en",
        "tier": "gold",
        "points": 1200,
    }
}


def _env(fmt: Format) -> _Sandbox:
    return _TEXT_ENV if fmt == "text" else _HTML_ENV


@lru_cache(maxsize=512)
def _compiled(fmt: Format, source: str) -> JinjaTemplate:
    # compiling costs milliseconds; a campaign renders one source thousands of times
    return _env(fmt).from_string(source)


def check(template: Template) -> None:
    """Compile subject and body; TemplateError naming the part, line and problem."""
    for part, source in (("subject", template.subject), ("body", template.body)):
        if source is None:
            continue
        try:
            _env(template.format if part == "body" else "text").parse(source)
        except TemplateSyntaxError as exc:
            raise TemplateError(
                f"template {template.name!r} ({template.locale}) {part} line {exc.lineno}: "
                f"{exc.message}",
                errors=[{"field": part, "message": str(exc.message), "line": exc.lineno}],
            ) from exc


def _render_part(
    template: Template, part: str, source: str, fmt: Format, variables: Mapping[str, Any]
) -> str:
    try:
        out: list[str] = []
        size = 0
        for chunk in _compiled(fmt, source).generate(dict(variables)):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise TemplateError(
                    f"template {template.name!r} {part}: renders to more than "
                    f"{MAX_OUTPUT_CHARS} characters"
                )
            out.append(chunk)
        return "".join(out)
    except TemplateSyntaxError as exc:
        check(template)  # raises the located error
        raise TemplateError(str(exc)) from exc
    except UndefinedError as exc:
        raise TemplateError(
            f"template {template.name!r} ({template.locale}) {part}: undefined variable: "
            f"{exc.message}",
            errors=[{"field": part, "message": f"undefined: {exc.message}"}],
        ) from exc
    except SecurityError as exc:
        raise TemplateError(f"template {template.name!r} {part}: not allowed: {exc}") from exc
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateError(f"template {template.name!r} {part}: {exc}") from exc


def html_to_text(html: str) -> str:
    """The plain-text part of an HTML e-mail: visible text, one block per line, links kept."""
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["head", "style", "script", "title"]):
        tag.decompose()
    for link in soup.find_all("a", href=True):
        href, label = str(link["href"]), link.get_text(" ", strip=True)
        link.replace_with(f"{label} ({href})" if href and href not in label else label)
    text = soup.get_text("\n")
    lines = (re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


_MJML_ROOT = re.compile(r"^\s*<mjml[\s>].*</mjml>\s*$", re.DOTALL)


def _mjml(template: Template, source: str) -> str:
    if not _MJML_ROOT.match(source):
        raise TemplateError(f"template {template.name!r}: invalid MJML: the root must be <mjml>")
    try:
        result = mjml_to_html(source)
    except KeyError as exc:  # the mjml package's answer to an element it does not know
        raise TemplateError(
            f"template {template.name!r}: invalid MJML: unknown element {exc.args[0]!r}"
        ) from exc
    except Exception as exc:  # it raises plain exceptions on other bad markup
        raise TemplateError(f"template {template.name!r}: invalid MJML: {exc!r}") from exc
    if result.errors:
        raise TemplateError(f"template {template.name!r}: invalid MJML: {result.errors}")
    return str(result.html)


def render(template: Template, variables: Mapping[str, Any]) -> Rendered:
    """Render for one recipient and enforce the channel's length rules (TemplateError)."""
    subject = (
        _render_part(template, "subject", template.subject, "text", variables).strip()
        if template.subject is not None
        else None
    )
    body = _render_part(template, "body", template.body, template.format, variables)
    html: str | None = None
    if template.format == "mjml":
        html = _mjml(template, body)
        text = html_to_text(html)
    elif template.format == "html":
        html, text = body, html_to_text(body)
    else:
        text = body
    problem = length_problem(template.channel, text, subject)
    if problem is not None:
        raise TemplateError(f"template {template.name!r} ({template.locale}): {problem}")
    sms = sms_length(text) if template.channel == "sms" else None
    return Rendered(
        subject=subject,
        text=text,
        html=html,
        locale=template.locale,
        sms_segments=sms.segments if sms else None,
        sms_encoding=sms.encoding if sms else None,
    )


def preview(template: Template, variables: Mapping[str, Any] | None = None) -> Rendered:
    """Render with the sample profile (overridden by `variables`)."""
    return render(template, {**SAMPLE_PROFILE, **(variables or {})})


def pick_locale(available: Sequence[str], wanted: str | None) -> str | None:
    """The variant to use: the wanted locale, else its language (zh-TW -> zh-CN if that is the
    only zh), else DEFAULT_LOCALE, else the first there is; None when there are none."""
    if not available:
        return None
    by_lower = {a.lower(): a for a in available}
    if wanted:
        if wanted.lower() in by_lower:
            return by_lower[wanted.lower()]
        language = wanted.split("-")[0].lower()
        same = sorted(a for a in available if a.split("-")[0].lower() == language)
        if same:
            return same[0]
    if DEFAULT_LOCALE in by_lower:
        return by_lower[DEFAULT_LOCALE]
    return sorted(available)[0]
