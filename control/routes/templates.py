"""Email templates (blueprint §3.2): `/api/email-templates/`.

A template referenced by an active campaign (draft, scheduled, sending, paused) cannot be
deleted (§5.3 "Template Integrity").

A template saved without a text part stores the one the content checks generate from its HTML,
with `text_generated` true: the author sees what will be sent, and every later save regenerates
it from the HTML. A text part the author writes is kept as written (`text_generated` false);
clearing it (null or blank) goes back to a generated one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from control import content_checks
from control.content_checks import EmailContent
from control.errors import ContentRejected, InUse, ValidationFailed
from control.fields import Field, Schema, ro
from control.rendering import TemplateRefused, check_template
from control.resource import ResourceSpec, register
from control.routing import Api, Call
from mta.queries import Queries

SQL = Queries("control")
CODE = r"^[A-Za-z0-9_-]+$"
TEMPLATE_TYPES = (
    "newsletter",
    "promotional",
    "transactional",
    "welcome",
    "announcement",
    "event",
    "survey",
    "custom",
)
CATEGORIES = ("marketing", "sales", "support", "onboarding", "retention", "notification", "other")

SCHEMA = Schema(
    "EmailTemplate",
    (
        ro("id", "id"),
        Field("template_name", required=True, min_length=1, max_length=100),
        Field("template_code", required=True, min_length=1, max_length=20, pattern=CODE),
        Field("description", "text", nullable=True, max_length=5000),
        Field("template_type", required=True, enum=TEMPLATE_TYPES),
        Field("category", required=True, enum=CATEGORIES),
        Field("html_content", "text", min_length=1, max_length=512 * 1024),
        Field(
            "text_content",
            "text",
            nullable=True,
            max_length=512 * 1024,
            description="the text/plain part; omitted, null or blank: generated from the HTML",
        ),
        ro(
            "text_generated",
            "boolean",
            description="text_content was generated from the HTML (regenerated on every save), "
            "not written by the author",
        ),
        Field("css_styles", "text", nullable=True, max_length=256 * 1024),
        Field("mjml_source", "text", nullable=True, max_length=512 * 1024),
        Field("template_variables", "object", default=dict),
        Field("is_active", "boolean", default=True),
        Field("is_default", "boolean", default=False),
        ro("usage_count", "integer"),
        ro(
            "content_checks",
            "object",
            nullable=True,
            description="results of the content checks when the template was just saved",
        ),
        ro("created_by_user_id", "id", nullable=True),
        ro("updated_by_user_id", "id", nullable=True),
        ro("created_at", "datetime"),
        ro("updated_at", "datetime"),
    ),
)
FILTERS = (
    Field("is_active", "boolean"),
    Field("template_type", enum=TEMPLATE_TYPES),
    Field("category", enum=CATEGORIES),
    Field("search", max_length=100),
)


async def check_content(call: Call, data: dict[str, Any], current: Any = None) -> None:
    """Content checks on save (blueprint §6.2, control/content_checks.py): errors refuse the
    save with 422 `content_rejected` listing each check; warnings are returned with the
    template. An MJML source replaces html_content with its compiled, responsive HTML."""
    merged = {**(dict(current) if current is not None else {}), **data}
    if merged.get("html_content") is None and not merged.get("mjml_source"):
        raise ValidationFailed({"html_content": "is required (or give mjml_source)"})
    content = EmailContent(
        subject=merged.get("template_name") or "",
        html=merged.get("html_content"),
        text=authored_text(data, current),
        mjml=merged.get("mjml_source"),
    )
    report = await content_checks.check_content(content, spamd=call.services.spamd)
    if not report.ok:
        raise ContentRejected(report)
    try:  # the renderer must be able to compile it (off the loop: large templates take ms)
        await asyncio.to_thread(check_template, report.html, authored_text(data, current))
    except TemplateRefused as exc:
        raise ValidationFailed(
            {exc.part: exc.reason}, f"the template cannot be rendered: {exc.part}: {exc.reason}"
        ) from None
    if merged.get("mjml_source"):
        data["html_content"] = report.html
    data["text_content"] = report.text
    data["text_generated"] = report.text_generated
    call.request.state.content_checks = report.to_dict()


def authored_text(data: dict[str, Any], current: Any = None) -> str | None:
    """The text part the author wrote, after this save; None when it is to be generated.
    A text part sent back unchanged from a GET of a generated one is not authored: clients
    that PUT the whole template must not freeze a generated text that the HTML moved past."""
    if "text_content" in data:
        text = data["text_content"]
        echoed = current is not None and current["text_generated"]
        if not text or not text.strip() or (echoed and text == current["text_content"]):
            return None
        return text
    if current is None or current["text_generated"]:
        return None
    return current["text_content"]


def serialize(call: Call, row: Any) -> dict[str, Any]:
    data = {f.name: row[f.name] for f in SCHEMA.fields if f.name != "content_checks"}
    data["content_checks"] = getattr(call.request.state, "content_checks", None)
    return data


async def before_delete(call: Call, current: Any) -> None:
    users = await call.db.fetch(SQL["campaigns-using-template"], current["id"], call.company_id)
    if users:
        raise InUse(
            "the template is used by active campaigns",
            campaigns=[{"id": r["id"], "campaign_code": r["campaign_code"]} for r in users],
        )


async def before_update(call: Call, data: dict[str, Any], current: Any) -> None:
    await check_content(call, data, current)


api = Api()
register(
    api,
    ResourceSpec(
        name="email_template",
        sql="template",
        path="/api/email-templates/",
        tag="templates",
        perm="templates",
        schema=SCHEMA,
        filters=FILTERS,
        before_create=check_content,
        before_update=before_update,
        before_delete=before_delete,
        serialize=serialize,
        audit_view=lambda row: {
            f.name: row[f.name] for f in SCHEMA.fields if f.name != "content_checks"
        },
    ),
)
