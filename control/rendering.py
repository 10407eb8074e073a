"""The one renderer of campaign mail (issue 10): Jinja2 in a sandbox, for sends, test sends and
previews alike.

A campaign version is compiled once (`compile_campaign`) and rendered per recipient
(`CompiledCampaign.render`): subject, preheader, from name, HTML and text part. Templates run in
Jinja2's `SandboxedEnvironment` (no attribute starting with `_`, no unsafe callables); on top of
it every render is bounded: output per part (`MAX_OUTPUT`), items produced by `range` and
repetition (`MAX_ITEMS`), widths given to `format`/`center`. A template that cannot compile
(syntax error, unknown filter) or reaches for internals (`{{ ''.__class__ }}`) is refused when
saved (`TemplateRefused`); at delivery a variable the contact lacks renders empty (or its
`default`) and is counted in `Rendered.missing`, never stopping the send.

Variables: `contact.first_name`, `contact.last_name`, `contact.email`, `contact.attributes.NAME`
(also `contact.NAME`), `campaign.name`, `campaign.code`, `unsubscribe_url`, `preferences_url`,
`view_url`; and `email`, `first_name`, `last_name` alone. Every spelling of a placeholder the
content checks accept (control/placeholders.py: any case, underscores optional, percent-encoded
braces in an attribute) is rewritten to its Jinja name before compiling, so what passed the
checks renders.

`css_styles` are inlined into the HTML with css-inline (Rust): once, into the template source,
when the source has no block tags and no quoted expressions an HTML parser could disturb;
otherwise into each rendered HTML.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import css_inline
from jinja2 import ChainableUndefined, TemplateError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from control import placeholders

MAX_OUTPUT = 1_000_000  # characters per rendered part (Gmail clips at 102 KB anyway)
MAX_ITEMS = 10_000  # items from range() and sequence repetition in one render
MAX_WIDTH = 10_000  # field width in format/center
MAX_SOURCE = 1024 * 1024  # characters of template source compiled

# Placeholder spellings the content checks accept, by their comparison key, and the Jinja
# expression each renders as.
_ALIASES = {
    placeholders.key("unsubscribe_url"): "unsubscribe_url",
    placeholders.key("preferences_url"): "preferences_url",
    placeholders.key("view_url"): "view_url",
    placeholders.key("email"): "contact.email",
    placeholders.key("first_name"): "contact.first_name",
    placeholders.key("last_name"): "contact.last_name",
}
_WIDTH = re.compile(r"\d{6,}")  # a format width or precision of six digits or more
_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_RISKY_EXPRESSION = re.compile(r"\{\{[^}]*['\"<&]")


class TemplateRefused(ValueError):
    """A template that cannot be rendered safely: the part it is in, and why."""

    def __init__(self, part: str, reason: str) -> None:
        super().__init__(f"{part}: {reason}")
        self.part = part
        self.reason = reason


class RenderFailed(RuntimeError):
    """A render that broke a limit or raised at run time (a recipient's data made it fail)."""


@dataclass(slots=True)
class _Budget:
    missing: int = 0
    items: int = 0

    def take(self, n: int) -> None:
        self.items += n
        if self.items > MAX_ITEMS:
            raise SecurityError(f"the template produces more than {MAX_ITEMS} items")


_BUDGET: contextvars.ContextVar[_Budget] = contextvars.ContextVar("render_budget")


class _CountedUndefined(ChainableUndefined):
    """A missing variable: renders empty, counted; `default` still applies."""

    __slots__ = ()

    def __str__(self) -> str:
        budget = _BUDGET.get(None)
        if budget is not None:
            budget.missing += 1
        return ""

    def __call__(self, *args: Any, **kwargs: Any) -> _CountedUndefined:
        return self  # `{{ contact.nickname.title() }}` on a contact without one: empty too


def _bounded_range(*args: int) -> range:
    r = range(*args)
    _BUDGET.get(_Budget()).take(len(r))
    return r


def _bounded_center(value: Any, width: int = 80) -> str:
    if width > MAX_WIDTH:
        raise SecurityError("center width too large")
    return str(value).center(width)


def _bounded_format(value: Any, *args: Any, **kwargs: Any) -> str:
    if _WIDTH.search(str(value)):
        raise SecurityError("format width too large")
    return str(value) % (kwargs or args)


class _Sandbox(SandboxedEnvironment):
    """Jinja2's sandbox with repetition bounded: `'x' * 10**9` would exhaust memory."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, int) and abs(right) > 64:
                raise SecurityError("exponent too large")
            return left**right
        for seq, n in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(n, int):
                _BUDGET.get(_Budget()).take(max(0, n) * max(1, len(seq)) // 100)
                if len(seq) * n > MAX_OUTPUT:
                    raise SecurityError("repetition too large")
        return left * right

    def format_string(self, s: str, *args: Any, **kwargs: Any) -> str:
        if _WIDTH.search(str(s)):
            raise SecurityError("format width too large")
        return super().format_string(s, *args, **kwargs)


def _environment(autoescape: bool) -> _Sandbox:
    env = _Sandbox(
        autoescape=autoescape,
        undefined=_CountedUndefined,
        finalize=lambda value: "" if value is None else value,
        auto_reload=False,
        cache_size=0,
    )
    env.globals = {"range": _bounded_range}
    env.filters["center"] = _bounded_center
    env.filters["format"] = _bounded_format
    return env


_HTML = _environment(autoescape=True)
_TEXT = _environment(autoescape=False)


def canonical_placeholders(source: str) -> str:
    """Every accepted spelling of a standard placeholder written as its Jinja expression."""

    def rewrite(match: re.Match[str]) -> str:
        name = match.group("name")
        alias = _ALIASES.get(placeholders.key(name))
        if alias is not None:
            return "{{ " + alias + " }}"
        if match.group(0).startswith("%"):  # percent-encoded braces of another name
            return "{{ " + name + " }}"
        return match.group(0)

    return placeholders.PLACEHOLDER.sub(rewrite, source)


def _refuse_internals(tree: nodes.Template, part: str) -> None:
    """Sandbox escapes are refused at save, not only stopped at run time."""
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        name = node.attr if isinstance(node, nodes.Getattr) else None
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = node.arg.value if isinstance(node.arg.value, str) else None
        if name is not None and name.startswith("_"):
            raise TemplateRefused(part, f"access to internal attribute {name!r} is not allowed")


def compile_part(source: str, part: str, *, html: bool = False) -> Any:
    """A compiled Jinja template for one part; TemplateRefused says why it cannot be."""
    if len(source) > MAX_SOURCE:
        raise TemplateRefused(part, f"longer than {MAX_SOURCE} characters")
    env = _HTML if html else _TEXT
    source = canonical_placeholders(source)
    try:
        tree = env.parse(source)
        _refuse_internals(tree, part)
        return env.from_string(tree)
    except TemplateRefused:
        raise
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if line else ""
        raise TemplateRefused(part, f"{exc.message or exc}{where}") from None
    except (RecursionError, MemoryError):
        raise TemplateRefused(part, "too complex to compile") from None


def _run(template: Any, context: Mapping[str, Any]) -> str:
    out: list[str] = []
    size = 0
    try:
        for chunk in template.generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise RenderFailed(f"output longer than {MAX_OUTPUT} characters")
            out.append(chunk)
    except RenderFailed:
        raise
    except (SecurityError, TemplateError, RecursionError, ArithmeticError) as exc:
        raise RenderFailed(str(exc)) from None
    except (TypeError, ValueError, LookupError, AttributeError) as exc:
        raise RenderFailed(f"{type(exc).__name__}: {exc}") from None
    return "".join(out)


def _one_line(value: str, limit: int = 998) -> str:
    """Header text from rendered data: control characters (CR, LF...) become one space."""
    return _CONTROL.sub(" ", value).strip()[:limit]


def _inline(html: str, css: str) -> str:
    return css_inline.CSSInliner(
        extra_css=css, load_remote_stylesheets=False, keep_style_tags=True
    ).inline(html)


def preheader_html(text: str) -> str:
    """Hidden preview text: shown by mail clients beside the subject, not in the message."""
    return (
        '<div style="display:none;max-height:0;max-width:0;overflow:hidden;opacity:0;'
        f'mso-hide:all;font-size:1px;line-height:1px">{text}</div>'
    )


def with_preheader(html: str, preheader: str) -> str:
    """The preview text first in the body (after `<body>`, or at the very start)."""
    if not preheader:
        return html
    div = preheader_html(preheader)
    match = _BODY_OPEN.search(html)
    if match is None:
        return div + html
    return html[: match.end()] + div + html[match.end() :]


@dataclass(frozen=True, slots=True)
class CampaignContent:
    """What a campaign version sends, as written (templates, not yet rendered)."""

    subject: str
    html: str
    text: str | None = None
    preheader: str | None = None
    from_name: str = ""
    css: str | None = None
    campaign_name: str = ""
    campaign_code: str = ""


@dataclass(frozen=True, slots=True)
class Rendered:
    """One recipient's rendered parts; `missing` counts variables the contact lacked."""

    subject: str
    from_name: str
    html: str
    text: str | None
    missing: int


@dataclass(frozen=True, slots=True)
class Links:
    """The recipient's own links (from the tracker), as the templates see them."""

    unsubscribe_url: str = ""
    preferences_url: str = ""
    view_url: str = ""


def contact_context(contact: Mapping[str, Any] | None, address: str) -> dict[str, Any]:
    """`contact` as templates see it: attributes also by bare name; absent fields missing."""
    if contact is None:
        return {"email": address, "attributes": {}}
    attributes = contact.get("attributes") or {}
    view: dict[str, Any] = dict(attributes) if isinstance(attributes, dict) else {}
    for name in ("first_name", "last_name", "email"):
        value = contact.get(name)
        if value is not None and value != "":
            view[name] = value
    view.setdefault("email", address)
    view["attributes"] = attributes if isinstance(attributes, dict) else {}
    return view


class CompiledCampaign:
    """A campaign version compiled once; `render` per recipient."""

    def __init__(self, content: CampaignContent) -> None:
        self.content = content
        css = (content.css or "").strip()
        html_source = content.html
        # Inline once, into the source, when an HTML parser cannot disturb the template
        # syntax; else into each rendered HTML.
        self._inline_each = bool(css) and (
            "{%" in html_source or bool(_RISKY_EXPRESSION.search(html_source))
        )
        if css and not self._inline_each:
            html_source = _inline(html_source, css)
        self._css = css
        self.subject = compile_part(content.subject, "subject_line")
        self.preheader = compile_part(content.preheader or "", "preheader_text", html=True)
        self.from_name = compile_part(content.from_name or "", "from_name")
        self.html = compile_part(html_source, "html_content", html=True)
        self.text = compile_part(content.text, "text_content") if content.text else None

    def render(
        self, contact: Mapping[str, Any] | None, address: str, links: Links = Links()
    ) -> Rendered:
        """One recipient's parts; RenderFailed when the template breaks a limit."""
        view = contact_context(contact, address)
        context = {
            "contact": view,
            "email": view.get("email"),
            "campaign": {"name": self.content.campaign_name, "code": self.content.campaign_code},
            "unsubscribe_url": links.unsubscribe_url,
            "preferences_url": links.preferences_url,
            "view_url": links.view_url,
        }
        for name in ("first_name", "last_name"):
            if name in view:
                context[name] = view[name]
        budget = _Budget()
        token = _BUDGET.set(budget)
        try:
            subject = _one_line(_run(self.subject, context))
            from_name = _one_line(_run(self.from_name, context), 200)
            preheader = _run(self.preheader, context).strip()
            html = _run(self.html, context)
            text = _run(self.text, context) if self.text is not None else None
        finally:
            _BUDGET.reset(token)
        if self._inline_each:
            html = _inline(html, self._css)
        html = with_preheader(html, preheader)
        return Rendered(subject, from_name, html, text, budget.missing)


def check_template(html: str | None, text: str | None = None) -> None:
    """The save-time check of a template's parts: TemplateRefused when one cannot compile."""
    if html:
        compile_part(html, "html_content", html=True)
    if text:
        compile_part(text, "text_content")


def check_header_text(value: str | None, part: str) -> None:
    """A header field's template: it must compile, and carry no control characters."""
    if not value:
        return
    if _CONTROL.search(value):
        raise TemplateRefused(part, "contains a line break or another control character")
    compile_part(value, part)
