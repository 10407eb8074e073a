"""An email's HTML parsed once: the tree, the parse problems with their location, and the facts
the content checks and spam rules look at (links, images, styles, viewport, visible text).

Parsing follows the WHATWG HTML algorithm (html5lib), which is what mail clients' engines do:
every input gives a tree, and every place where the input was not well-formed is reported as a
parse error with its line and column. `ParseProblem.structural` tells the errors that change the
document's structure from what its author wrote (an unclosed table, a misnested tag, an end tag
closing the wrong element) from cosmetic ones (a missing doctype, a `<br/>` slash).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import urlsplit

import html5lib
from html5lib.constants import E as _HTML5_MESSAGES

__all__ = ["HtmlDocument", "Image", "Link", "ParseProblem", "parse_html"]

# html5lib error codes that do NOT alter the structure the author meant: reported as warnings.
_COSMETIC_CODES = frozenset(
    {
        "expected-doctype-but-got-start-tag",
        "expected-doctype-but-got-chars",
        "expected-doctype-but-got-end-tag",
        "expected-doctype-but-got-eof",
        "unknown-doctype",
        "non-void-element-with-trailing-solidus",
        "unexpected-character-after-solidus-in-tag",
        "invalid-codepoint",
        "illegal-codepoint-for-numeric-entity",
        "numeric-entity-without-semicolon",
        "named-entity-without-semicolon",
        "expected-named-entity",
        "expected-numeric-entity",
        "cant-convert-numeric-entity",
        "unexpected-dash-after-double-dash-in-comment",
        "unexpected-bang-after-double-dash-in-comment",
        "incorrect-comment",
        "eof-in-comment",
        "eof-in-comment-double-dash",
        "expected-tag-name",
        "unexpected-start-tag-ignored",
        "non-html-root",
    }
)

_LEGACY_DOCTYPE = re.compile(
    r'\s*<!DOCTYPE\s+html\s+PUBLIC\s+"-//W3C//DTD (?:XHTML 1\.[01]|HTML 4\.01)[^"]*"',
    re.IGNORECASE,
)
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|mso-hide\s*:\s*all", re.IGNORECASE)
_NOT_RENDERED = frozenset({"head", "style", "script", "title", "template", "noscript"})


@dataclass(frozen=True, slots=True)
class ParseProblem:
    """A place where the HTML is not well-formed."""

    line: int
    column: int
    code: str  # html5lib's error code, e.g. "unexpected-end-tag"
    message: str  # e.g. "Unexpected end tag (p). Ignored."

    @property
    def structural(self) -> bool:
        """True when a browser or mail client builds a different structure than written."""
        return self.code not in _COSMETIC_CODES


@dataclass(frozen=True, slots=True)
class Link:
    href: str
    text: str  # visible text of the link, whitespace collapsed (image alt text included)

    @property
    def host(self) -> str:
        """Lower-case host of an absolute http(s) href, else ""."""
        try:
            parts = urlsplit(self.href.strip())
        except ValueError:
            return ""
        if parts.scheme.lower() not in ("http", "https"):
            return ""
        return (parts.hostname or "").lower()


@dataclass(frozen=True, slots=True)
class Image:
    src: str
    alt: str | None  # None: no alt attribute at all
    width: str | None
    height: str | None
    style: str

    @property
    def is_spacer(self) -> bool:
        """A 1x1 (or 0x0) image: a spacer or a tracking pixel, not content."""
        return _pixels(self.width) in (0, 1) and _pixels(self.height) in (0, 1)


@dataclass(frozen=True, slots=True)
class HtmlDocument:
    """The parsed HTML and what the checks look at."""

    source: str
    root: ET.Element
    problems: tuple[ParseProblem, ...]

    def elements(self, tag: str | None = None) -> list[ET.Element]:
        """Every element (of `tag`), in document order."""
        return [e for e in self.root.iter() if isinstance(e.tag, str) and tag in (None, e.tag)]

    @property
    def links(self) -> list[Link]:
        return [
            Link(href=a.get("href", ""), text=_collapse(_visible_text(a, in_link=True)))
            for a in self.elements("a")
            if a.get("href") is not None
        ]

    @property
    def images(self) -> list[Image]:
        return [
            Image(
                src=img.get("src", ""),
                alt=img.get("alt"),
                width=img.get("width"),
                height=img.get("height"),
                style=img.get("style", ""),
            )
            for img in self.elements("img")
        ]

    @property
    def stylesheets(self) -> list[str]:
        """The text of every `<style>` element (head or body: clients accept both)."""
        return ["".join(s.itertext()) for s in self.elements("style")]

    @property
    def viewport(self) -> str | None:
        """The content of `<meta name="viewport">`, or None."""
        for meta in self.elements("meta"):
            if (meta.get("name") or "").strip().lower() == "viewport":
                return meta.get("content") or ""
        return None

    @property
    def visible_text(self) -> str:
        """The text a reader sees (head, styles, scripts and hidden elements left out)."""
        body = next(iter(self.elements("body")), self.root)
        return _collapse(_visible_text(body))


def parse_html(source: str) -> HtmlDocument:
    """Parse `source` as HTML; never raises on any input."""
    parser = html5lib.HTMLParser(namespaceHTMLElements=False)
    root = parser.parse(source)
    legacy_doctype = bool(_LEGACY_DOCTYPE.match(source))
    problems = tuple(
        ParseProblem(line=line, column=column, code=code, message=_message(code, data))
        for (line, column), code, data in parser.errors
        # HTML 4.01 and XHTML 1.x doctypes are the email norm and still permitted (HTML §13.1.1).
        if not (code == "unknown-doctype" and legacy_doctype)
    )
    return HtmlDocument(source=source, root=root, problems=problems)


def is_hidden(element: ET.Element) -> bool:
    """An element styled not to display (hidden preheaders, Outlook-only blocks)."""
    return bool(_HIDDEN_STYLE.search(element.get("style", ""))) or element.get("hidden") is not None


def _message(code: str, data: object) -> str:
    template = _HTML5_MESSAGES.get(code, code)
    try:
        return template % data if isinstance(data, dict) else template
    except (KeyError, TypeError, ValueError):
        return template


def _visible_text(element: ET.Element, *, in_link: bool = False) -> str:
    parts: list[str] = []

    def walk(e: ET.Element) -> None:
        if not isinstance(e.tag, str) or e.tag in _NOT_RENDERED or is_hidden(e):
            return
        if e.tag == "img" and in_link:
            parts.append(" " + (e.get("alt") or "") + " ")
        if e.tag in ("br", "p", "div", "td", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6"):
            parts.append(" ")
        if e.text:
            parts.append(e.text)
        for child in e:
            walk(child)
            if child.tail:
                parts.append(child.tail)

    walk(element)
    return "".join(parts)


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _pixels(value: str | None) -> int | None:
    match = re.fullmatch(r"\s*(\d+)\s*(?:px)?\s*", value or "")
    return int(match.group(1)) if match else None
