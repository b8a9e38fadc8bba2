"""Templates the hub ships with (used when the database holds no variant of that name)."""

from __future__ import annotations

from cloud.crm.messaging.templates import Template

# ruff: noqa: RUF001 (Chinese text uses full-width punctuation)

CONFIRM_BODY_EN = """Hello,

please confirm that you want to receive {{ purpose }} messages by {{ channel }}:

{{ confirm_url }}

This link expires at {{ expires_at }}. If you did not ask for this, ignore this message."""

CONFIRM_BODY_ZH = """您好，

请点击以下链接，确认您愿意通过{{ channel }}接收{{ purpose }}信息：

{{ confirm_url }}

此链接将于 {{ expires_at }} 失效。如果这不是您本人的操作，请忽略此邮件。"""

BUILTIN: dict[tuple[str, str], list[Template]] = {
    ("consent_confirmation", "email"): [
        Template(
            name="consent_confirmation",
            channel="email",
            locale="en",
            format="text",
            subject="Please confirm your subscription",
            body=CONFIRM_BODY_EN,
        ),
        Template(
            name="consent_confirmation",
            channel="email",
            locale="zh-CN",
            format="text",
            subject="请确认您的订阅",
            body=CONFIRM_BODY_ZH,
        ),
    ]
}
