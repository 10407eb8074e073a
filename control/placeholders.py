"""The template placeholder syntax, defined once for templates, checks and rendering.

A placeholder is a name between double braces, with optional spaces inside the braces:

    {{ first_name }}    {{unsubscribe_url}}    {{ UnsubscribeURL }}    {{ contact.city }}

- A name starts with a letter or underscore and goes on with letters, digits, underscores and
  dots (dots address nested values, e.g. `contact.city`).
- Names compare case-insensitively with underscores ignored, so `unsubscribe_url`,
  `UnsubscribeURL` and `UNSUBSCRIBE_URL` are one placeholder (editors and ESP exports spell it
  each way). `key()` gives the comparison form.
- Anything else between braces (`{{ 1 + 1 }}`, `{{}}`) is not a placeholder: it is left as text
  by `render()`, and content checks do not count it.
- In an HTML attribute a placeholder may arrive percent-encoded by an editor
  (`href="%7B%7Bunsubscribe_url%7D%7D"`); `find()` and `render()` accept that spelling too.

Placeholders every campaign message can use (filled in by the campaign engine per recipient):
`unsubscribe_url` (required in every marketing message: the content checks refuse a template
without it or an explicit unsubscribe link), `email`, `first_name`, `last_name`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping

__all__ = [
    "PLACEHOLDER",
    "STANDARD_NAMES",
    "UNSUBSCRIBE_URL",
    "find",
    "key",
    "render",
]

#: The one regular expression of the syntax. Group "name" is the placeholder's name.
PLACEHOLDER = re.compile(
    r"(?:\{\{|%7[Bb]%7[Bb])\s*(?P<name>[A-Za-z_][A-Za-z0-9_.]*)\s*(?:\}\}|%7[Dd]%7[Dd])"
)

#: The unsubscribe link placeholder, in its canonical spelling.
UNSUBSCRIBE_URL = "unsubscribe_url"

#: Names the campaign engine fills for every recipient.
STANDARD_NAMES: frozenset[str] = frozenset({UNSUBSCRIBE_URL, "email", "first_name", "last_name"})


def key(name: str) -> str:
    """The comparison form of a placeholder name: lower case, underscores dropped."""
    return name.replace("_", "").lower()


def find(text: str) -> list[str]:
    """The placeholder names in `text`, in order of appearance, as written."""
    return [m.group("name") for m in PLACEHOLDER.finditer(text)]


def render(
    text: str,
    values: Mapping[str, str],
    *,
    escape_html: bool = False,
    on_missing: Callable[[str], str] | None = None,
) -> str:
    """Replace each placeholder of `text` with its value from `values`.

    `values` keys are matched with `key()` (any spelling of a name finds its value). With
    `escape_html`, values are HTML-escaped (for HTML parts). A placeholder without a value is
    left as written, unless `on_missing(name)` is given to supply (or refuse) a value.
    """
    by_key = {key(k): v for k, v in values.items()}

    def substitute(match: re.Match[str]) -> str:
        name = match.group("name")
        value = by_key.get(key(name))
        if value is None:
            if on_missing is None:
                return match.group(0)
            value = on_missing(name)
        return html.escape(value) if escape_html else value

    return PLACEHOLDER.sub(substitute, text)
