"""Text that may go into a header field Sendmill composes: the one rule for every field built
from user data (subjects, display names, extra header values, file names, sender profiles,
template subjects), at the HTTP API and in the control API alike (issue 11.5, issue 12.12).

A header line ends at CR or LF, and readers also break lines at VT, FF, NEL (U+0085) and the
Unicode separators U+2028/U+2029; other control characters are shown raw or mangle the field.
None of them can be encoded into a header a reader sees as written, so they are refused, not
escaped. Lone surrogates cannot be encoded at all. TAB is white space in a header (RFC 5322
§2.2) and stays allowed.
"""

from __future__ import annotations

import re

# One character class, no quantifier: a search is linear in the text.
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def unsafe_character(text: str) -> str | None:
    """The first character `text` may not carry into a header, written as U+XXXX, or None."""
    found = _UNSAFE.search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"


def header_text_problem(text: str) -> str | None:
    """Why `text` cannot go into a header field, in words for an error message, or None."""
    character = unsafe_character(text)
    if character is None:
        return None
    return f"must not contain control characters or line separators ({character})"


def has_lone_surrogate(text: str) -> bool:
    """Whether `text` holds a lone surrogate (JSON allows \\ud800; no encoding can write it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
