"""The plain-text alternative of an HTML email, generated when the author wrote none.

Readable as mail, not as markdown:
- links as `text (url)`; a link whose text is its own URL prints the URL once; `#` and
  `javascript:` links print their text only; placeholders such as `{{ unsubscribe_url }}` stay,
  written without inner spaces (`{{unsubscribe_url}}`) so that line wrapping never splits one,
  and the campaign engine fills them in the text part as in the HTML;
- headings on their own lines, `h1` underlined with `=`, `h2` with `-`;
- lists as `- item` and `1. item`, nested lists indented;
- `<br>` breaks a line, paragraphs and blocks are separated by one blank line, table rows are
  lines and cells are separated by spaces, `<hr>` is a line of dashes, quotes get `> `;
- images print their alt text in brackets (inside a link, the alt text is the link's text);
- head, styles, scripts and hidden elements (`display:none`, the hidden preheader trick) are left
  out;
- lines wrap at 78 characters (RFC 5322 §2.1.1) without breaking words or URLs.
"""

from __future__ import annotations

import re
import textwrap
import xml.etree.ElementTree as ET

from control.html_document import HtmlDocument, is_hidden, parse_html
from control.placeholders import PLACEHOLDER

__all__ = ["WRAP_WIDTH", "html_to_text"]

WRAP_WIDTH = 78

_SKIP = frozenset({"head", "style", "script", "title", "template", "noscript"})
_BLOCKS = frozenset(
    {
        "p",
        "div",
        "table",
        "tbody",
        "thead",
        "tfoot",
        "section",
        "article",
        "header",
        "footer",
        "main",
        "nav",
        "aside",
        "center",
        "form",
        "address",
        "figure",
        "figcaption",
        "dl",
        "dt",
        "dd",
        "pre",
        "body",
        "html",
    }
)
_PARAGRAPHS = frozenset({"p", "table", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "pre"})
_HEADINGS = {"h1": "=", "h2": "-", "h3": "", "h4": "", "h5": "", "h6": ""}


def _tight_placeholder(match: re.Match[str]) -> str:
    return "{{" + match.group("name") + "}}"


class _Writer:
    """Accumulates inline text and flushes it as wrapped, prefixed lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.inline: list[str] = []
        self.indent: list[str] = []  # prefixes of the enclosing lists and quotes
        self.marker: str | None = None  # list-item marker waiting for the item's first line
        self.preformatted = 0
        self.link_depth = 0  # inside <a>: an image's alt text is the link's text

    def text(self, text: str) -> None:
        self.inline.append(text)

    def flush(self, underline: str = "") -> None:
        raw = "".join(self.inline)
        self.inline.clear()
        if self.preformatted:
            chunks = raw.strip("\n").split("\n")
            if raw.strip():
                self._emit([c.rstrip() for c in chunks], wrap=False)
            return
        # Placeholders lose their inner spaces so that wrapping cannot split one in two.
        text = PLACEHOLDER.sub(_tight_placeholder, " ".join(raw.split()))
        if not text:
            return
        self._emit([text], wrap=True)
        if underline:
            self.lines.append("".join(self.indent) + underline * min(len(text), WRAP_WIDTH))

    def _emit(self, paragraphs: list[str], *, wrap: bool) -> None:
        prefix = "".join(self.indent)
        first = prefix
        if self.marker is not None:
            # The marker takes the place of the innermost indent on the item's first line.
            first = "".join(self.indent[:-1]) + self.marker
            self.marker = None
        for paragraph in paragraphs:
            if wrap:
                wrapped = textwrap.wrap(
                    paragraph,
                    width=max(WRAP_WIDTH, len(prefix) + 20),
                    initial_indent=first,
                    subsequent_indent=prefix,
                    break_long_words=False,
                    break_on_hyphens=False,
                )
            else:
                wrapped = [first + paragraph]
            self.lines.extend(wrapped or [first.rstrip()])
            first = prefix

    def blank(self) -> None:
        """End the current paragraph with one blank line (never two in a row)."""
        self.flush()
        if self.lines and self.lines[-1].strip(" >") != "":
            self.lines.append("".join(self.indent).rstrip())


def html_to_text(html: str | HtmlDocument) -> str:
    """The plain-text rendering of `html` (a string or an already parsed document)."""
    document = parse_html(html) if isinstance(html, str) else html
    writer = _Writer()
    _walk(document.root, writer)
    writer.flush()
    lines = [line.rstrip() for line in writer.lines]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines) + ("\n" if lines else "")


def _walk(element: ET.Element, w: _Writer) -> None:
    tag = element.tag
    if not isinstance(tag, str) or tag in _SKIP or is_hidden(element):
        return
    handler = _HANDLERS.get(tag)
    if handler is not None:
        handler(element, w)
        return
    if tag in _PARAGRAPHS:
        w.blank()
        _children(element, w)
        w.blank()
    elif tag in _BLOCKS:
        w.flush()
        _children(element, w)
        w.flush()
    else:
        _children(element, w)


def _children(element: ET.Element, w: _Writer) -> None:
    if element.text:
        w.text(element.text)
    for child in element:
        _walk(child, w)
        if child.tail:
            w.text(child.tail)


def _heading(element: ET.Element, w: _Writer) -> None:
    w.blank()
    _children(element, w)
    w.flush(underline=_HEADINGS[element.tag])
    w.blank()


def _link(element: ET.Element, w: _Writer) -> None:
    start = len(w.inline)
    w.link_depth += 1
    _children(element, w)
    w.link_depth -= 1
    text = " ".join("".join(w.inline[start:]).split())
    href = (element.get("href") or "").strip()
    shown = href[len("mailto:") :] if href.lower().startswith("mailto:") else href
    if not href or href.startswith("#") or href.lower().startswith("javascript:"):
        return
    if not text:
        w.text(shown)
    elif text.rstrip("/") not in (shown.rstrip("/"), href.rstrip("/")):
        w.text(f" ({shown})")


def _image(element: ET.Element, w: _Writer) -> None:
    alt = " ".join((element.get("alt") or "").split())
    if not alt:
        return
    w.text(f" {alt} " if w.link_depth else f" [{alt}] ")


def _line_break(element: ET.Element, w: _Writer) -> None:
    w.flush()


def _rule(element: ET.Element, w: _Writer) -> None:
    w.blank()
    w.lines.append("".join(w.indent) + "-" * 20)
    w.blank()


def _list(element: ET.Element, w: _Writer) -> None:
    if w.indent:
        w.flush()  # a nested list starts on the line after its parent item
    else:
        w.blank()
    number = 0
    ordered = element.tag == "ol"
    try:
        number = int(element.get("start", "1")) - 1
    except ValueError:
        number = 0
    for child in element:
        if isinstance(child.tag, str) and child.tag == "li" and not is_hidden(child):
            number += 1
            marker = f"{number}. " if ordered else "- "
            w.flush()
            w.indent.append(" " * len(marker))
            w.marker = marker
            _children(child, w)
            w.flush()
            w.marker = None
            w.indent.pop()
        elif isinstance(child.tag, str):
            _walk(child, w)
    if not w.indent:
        w.blank()


def _quote(element: ET.Element, w: _Writer) -> None:
    w.blank()
    w.indent.append("> ")
    _children(element, w)
    w.flush()
    w.indent.pop()
    w.blank()


def _row(element: ET.Element, w: _Writer) -> None:
    w.flush()
    for cell in element:
        if not isinstance(cell.tag, str) or is_hidden(cell):
            continue
        if w.inline and "".join(w.inline).strip():
            w.text(" ")
        _walk(cell, w)
    w.flush()


def _pre(element: ET.Element, w: _Writer) -> None:
    w.blank()
    w.preformatted += 1
    _children(element, w)
    w.flush()
    w.preformatted -= 1
    w.blank()


_HANDLERS = {
    **dict.fromkeys(_HEADINGS, _heading),
    "a": _link,
    "img": _image,
    "br": _line_break,
    "hr": _rule,
    "ul": _list,
    "ol": _list,
    "blockquote": _quote,
    "tr": _row,
    "pre": _pre,
}
