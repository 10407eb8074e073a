"""Content checks (blueprint §6.2): tables of emails and what an author is told about each.

spamd is tested against a small server speaking the SPAMC/SPAMD protocol on a real socket, and,
when Debian's `spamassassin` package is installed, against a real spamd.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from control import placeholders
from control.content_checks import (
    GMAIL_CLIP_BYTES,
    MAX_HTML_BYTES,
    CheckId,
    EmailContent,
    Severity,
    check_content,
    check_content_sync,
    compile_mjml,
    spamd_message,
)
from control.spam_rules import SpamInput, SpamRules, SpamRulesError
from control.spamd import SpamdClient, SpamdError, parse_report
from control.text_part import html_to_text
from tests.support.ports import free_port

HEAD = (
    '<!DOCTYPE html><html><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    "<title>News</title></head>"
)
BODY_TEXT = (
    "<p>Hello {{ first_name }}, our autumn catalogue is out with forty new walking boots, "
    "rain jackets and the wool socks you asked for. Every item ships from our Lyon workshop "
    "within two days, and returns stay free for a month.</p>"
)
FOOTER = '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'


def email(body: str = "", *, head: str = HEAD, footer: str = FOOTER) -> str:
    """A well-formed, fluid, responsive email with `body` in its layout table."""
    return (
        f'{head}<body><table width="100%" style="max-width:600px"><tr><td>'
        f"{BODY_TEXT}{body}{footer}</td></tr></table></body></html>"
    )


def results(html: str, check: CheckId, **kwargs: object) -> list[tuple[Severity, str]]:
    report = check_content_sync(EmailContent(subject="Autumn catalogue", html=html, **kwargs))
    return [(r.severity, r.message) for r in report.by_check(check)]


def severities(html: str, check: CheckId, **kwargs: object) -> set[Severity]:
    return {severity for severity, _ in results(html, check, **kwargs)}


def test_a_good_email_passes_every_check() -> None:
    report = check_content_sync(
        EmailContent(subject="Autumn catalogue", html=email(), text="Hello\n{{ unsubscribe_url }}")
    )
    assert report.ok and report.results == ()
    assert report.spam is not None and report.spam.score == 0
    assert report.to_dict()["ok"] is True


# --- placeholders --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("{{ unsubscribe_url }}", ["unsubscribe_url"]),
        ("{{UnsubscribeURL}}", ["UnsubscribeURL"]),
        ("a {{first_name}} b {{  contact.city  }}", ["first_name", "contact.city"]),
        ("%7B%7Bunsubscribe_url%7D%7D", ["unsubscribe_url"]),
        ("{{ 1 + 1 }} {{}} { name } {{ na me }}", []),
    ],
)
def test_placeholder_syntax(text: str, names: list[str]) -> None:
    assert placeholders.find(text) == names


@pytest.mark.parametrize(
    ("template", "escape", "expected"),
    [
        ("Hi {{ first_name }}", False, "Hi Zoë"),
        ("Hi {{FirstName}}", False, "Hi Zoë"),
        ("{{ unknown }} stays", False, "{{ unknown }} stays"),
        ("<b>{{ last_name }}</b>", True, "<b>&lt;O&#x27;Hara&gt;</b>"),
    ],
)
def test_render_fills_any_spelling_of_a_name(template: str, escape: bool, expected: str) -> None:
    values = {"first_name": "Zoë", "last_name": "<O'Hara>"}
    assert placeholders.render(template, values, escape_html=escape) == expected


# --- HTML parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "severity", "location", "words"),
    [
        # An unclosed table: everything after it ends up inside the table.
        (
            HEAD + "<body><table><tr><td>x</td></tr>\n<p>text</p></body></html>",
            Severity.ERROR,
            "line 2",
            "table",
        ),
        # A misnested end tag.
        (
            HEAD + "<body>\n<p>one <b>bold</p> two</b></body></html>",
            Severity.ERROR,
            "line 2",
            "end tag",
        ),
        (HEAD + "<body>\n\n<div>text</span></div></body></html>", Severity.ERROR, "line 3", "span"),
        # Cosmetic: no doctype.
        ("<html><head></head><body><p>x</p></body></html>", Severity.WARNING, "line 1", "DOCTYPE"),
    ],
)
def test_html_problems_are_reported_with_their_location(
    html: str, severity: Severity, location: str, words: str
) -> None:
    found = [m for s, m in results(html, CheckId.HTML_PARSE) if s is severity]
    assert found, results(html, CheckId.HTML_PARSE)
    assert any(m.startswith(location) and words.lower() in m.lower() for m in found), found


def test_well_formed_html_has_no_parse_results() -> None:
    assert results(email(), CheckId.HTML_PARSE) == []


def test_hostile_html_is_reported_not_raised() -> None:
    for html in ["<" * 5000, "\x00\ud800<a href=\x00>", "<table>" * 2000, "<!--", "&#99999999;"]:
        report = check_content_sync(EmailContent(subject="x", html=html))
        assert not report.ok


def test_many_problems_are_capped_with_a_count() -> None:
    html = email("".join("</span>" for _ in range(50)))
    messages = [m for _, m in results(html, CheckId.HTML_PARSE)]
    assert len(messages) == 21 and "30 more" in messages[-1]


def test_an_email_without_html_is_refused() -> None:
    assert severities("   ", CheckId.HTML_PARSE) == {Severity.ERROR}


# --- unsubscribe ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("footer", "ok"),
    [
        ('<a href="{{ unsubscribe_url }}">Unsubscribe</a>', True),
        ('<a href="{{UnsubscribeURL}}">Leave this list</a>', True),
        ('<a href="%7B%7Bunsubscribe_url%7D%7D">Leave</a>', True),
        ("Leave the list: {{ unsubscribe_url }}", True),
        ('<a href="https://shop.example/prefs/unsubscribe?c=1">Manage</a>', True),
        ('<a href="https://shop.example/p">Unsubscribe here</a>', True),
        ('<a href="https://shop.example/p">Se désabonner</a>', True),
        ('<a href="mailto:leave@shop.example">Opt out</a>', True),
        ("", False),
        ("To unsubscribe, reply STOP", False),  # no link
        ('<a href="#">Unsubscribe</a>', False),  # a link to nowhere
        ('<a href="{{ first_name }}">Unsubscribe</a>', True),  # link text counts
        ("<p>{{ unsubscribe }}</p>", False),  # not the placeholder's name
    ],
)
def test_an_unsubscribe_link_or_placeholder_is_required(footer: str, ok: bool) -> None:
    expected = set() if ok else {Severity.ERROR}
    assert severities(email(footer=footer), CheckId.UNSUBSCRIBE_LINK) == expected


@pytest.mark.parametrize(
    ("text", "warned"),
    [
        ("Leave: {{ unsubscribe_url }}", False),
        ("Unsubscribe at https://x.example/u", False),
        ("Hello, no way out", True),
    ],
)
def test_a_written_text_part_needs_its_unsubscribe_link_too(text: str, warned: bool) -> None:
    found = severities(email(), CheckId.UNSUBSCRIBE_LINK, text=text)
    assert found == ({Severity.WARNING} if warned else set())


# --- responsive design ---------------------------------------------------------------------------

NO_VIEWPORT = '<!DOCTYPE html><html><head><meta charset="utf-8"><title>x</title></head>'
MEDIA = (
    "<style>@media only screen and (max-width: 480px) { .col { width: 100% !important; } }</style>"
)


@pytest.mark.parametrize(
    ("html", "ok", "words"),
    [
        (email(), True, ""),
        # Fixed 600px table, no media queries.
        (
            HEAD + f'<body><table width="600"><tr><td>{BODY_TEXT}{FOOTER}</td></tr></table>'
            "</body></html>",
            False,
            "fixed width (up to 600px)",
        ),
        (
            HEAD + f'<body><div style="width: 640px">{BODY_TEXT}{FOOTER}</div></body></html>',
            False,
            "640px",
        ),
        # Same fixed table with media queries: responsive.
        (
            HEAD.replace("</head>", MEDIA + "</head>")
            + f'<body><table width="600"><tr><td>{BODY_TEXT}{FOOTER}</td></tr></table>'
            "</body></html>",
            True,
            "",
        ),
        # Fluid through max-width on a fixed-width table.
        (
            HEAD + f'<body><table width="600" style="max-width:100%"><tr><td>{BODY_TEXT}{FOOTER}'
            "</td></tr></table></body></html>",
            True,
            "",
        ),
        (email(head=NO_VIEWPORT), False, "viewport"),
        (email(head=NO_VIEWPORT.replace("</head>", MEDIA + "</head>")), False, "viewport"),
        (
            HEAD + f"<body><p>{BODY_TEXT}{FOOTER}</p></body></html>",
            False,
            "neither media queries nor fluid",
        ),
    ],
)
def test_responsive_design_needs_a_viewport_and_media_queries_or_fluid_layout(
    html: str, ok: bool, words: str
) -> None:
    found = results(html, CheckId.RESPONSIVE_DESIGN)
    if ok:
        assert found == []
    else:
        ((severity, message),) = found
        assert severity is Severity.ERROR and words in message


MJML = """<mjml><mj-body><mj-section><mj-column>
<mj-text>Hello {{ first_name }}, our autumn catalogue is out with forty new walking boots,
rain jackets and the wool socks you asked for. Every item ships from our Lyon workshop within two
days, and returns stay free for a month.</mj-text>
<mj-image src="https://shop.example/boots.png" alt="Walking boots"></mj-image>
<mj-button href="https://shop.example/catalogue">See the catalogue</mj-button>
<mj-text><a href="{{ unsubscribe_url }}">Unsubscribe</a></mj-text>
</mj-column></mj-section></mj-body></mjml>"""


def test_an_mjml_source_compiles_to_responsive_html_that_passes() -> None:
    report = check_content_sync(EmailContent(subject="Autumn catalogue", mjml=MJML))
    assert report.errors == (), report.errors
    assert "@media" in report.html and 'name="viewport"' in report.html
    assert "See the catalogue (https://shop.example/catalogue)" in report.text
    assert report.by_check(CheckId.RESPONSIVE_DESIGN) == ()


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("<mjml><mj-body><mj-bogus>x</mj-bogus></mj-body></mjml>", "mj-bogus"),
        ("<mjml></mjml>", "mj-body"),
        ("just text", "no <mjml> root"),
        ("", "no <mjml> root"),
    ],
)
def test_mjml_that_does_not_compile_is_an_error(source: str, words: str) -> None:
    report = check_content_sync(EmailContent(subject="x", mjml=source))
    messages = [r.message for r in report.by_check(CheckId.MJML_COMPILE)]
    assert messages and words in messages[0] and not report.ok
    assert compile_mjml(source)[0] is None


# --- images, size --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("images", "expected"),
    [
        ('<img src="a.png" alt="Boots">', set()),
        ('<img src="a.png">', {Severity.ERROR}),
        ('<img src="a.png" alt="">', {Severity.WARNING}),
        ('<img src="a.png" alt="  ">', {Severity.WARNING}),
        ('<img src="pixel.gif" width="1" height="1">', set()),  # a pixel, not content
        (
            '<img src="a.png" alt="x"><img src="b.png"><img src="c.png" alt="">',
            {Severity.ERROR, Severity.WARNING},
        ),
    ],
)
def test_images_need_alt_text(images: str, expected: set[Severity]) -> None:
    assert severities(email(images), CheckId.IMAGE_ALT) == expected


def test_missing_alt_names_the_images() -> None:
    ((_, message),) = results(email('<img src="hero.jpg"><img src="logo.png">'), CheckId.IMAGE_ALT)
    assert message.startswith("2 image(s)") and "hero.jpg, logo.png" in message


@pytest.mark.parametrize(("padding", "warned"), [(0, False), (GMAIL_CLIP_BYTES, True)])
def test_html_over_102_kb_is_warned_of_gmail_clipping(padding: int, warned: bool) -> None:
    html = email("<p>" + "x" * padding + "</p>")
    found = results(html, CheckId.HTML_SIZE)
    assert bool(found) is warned
    if warned:
        assert found[0][0] is Severity.WARNING and "Gmail clips" in found[0][1]


def test_html_over_1_mb_is_refused_unparsed() -> None:
    started = time.monotonic()
    report = check_content_sync(EmailContent(subject="x", html=email("<p>" + "x" * MAX_HTML_BYTES)))
    ((result,),) = [report.by_check(CheckId.HTML_SIZE)]
    assert result.severity is Severity.ERROR and "over 1024 KB" in result.message
    assert report.by_check(CheckId.HTML_PARSE) == () and time.monotonic() - started < 1


def test_exactly_102_kb_is_not_clipped() -> None:
    base = email("<p></p>")
    html = email("<p>" + "x" * (GMAIL_CLIP_BYTES - len(base.encode())) + "</p>")
    assert len(html.encode()) == GMAIL_CLIP_BYTES
    assert results(html, CheckId.HTML_SIZE) == []


# --- text part -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "text"),
    [
        (
            '<p>Read <a href="https://x.example/a">the post</a>.</p>',
            "Read the post (https://x.example/a).",
        ),
        ('<p><a href="https://x.example/">https://x.example/</a></p>', "https://x.example/"),
        ('<p><a href="mailto:hi@x.example">hi@x.example</a></p>', "hi@x.example"),
        ('<p><a href="#top">Top</a> <a href="javascript:void(0)">Go</a></p>', "Top Go"),
        ("<h1>Big news</h1><p>Body</p>", "Big news\n========\n\nBody"),
        ("<h2>Offers</h2>", "Offers\n------"),
        ("<ul><li>One</li><li>Two</li></ul>", "- One\n- Two"),
        ('<ol start="3"><li>Three</li><li>Four</li></ol>', "3. Three\n4. Four"),
        ("<ul><li>A<ul><li>A1</li></ul></li><li>B</li></ul>", "- A\n  - A1\n- B"),
        ("<p>one<br>two</p><p>three</p>", "one\ntwo\n\nthree"),
        ("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc"),
        (
            '<p><a href="https://x.example/"><img src="l.png" alt="Logo"></a></p>',
            "Logo (https://x.example/)",
        ),
        ('<p><img src="p.png" alt="Boots on sale"></p>', "[Boots on sale]"),
        ('<div style="display:none">preheader</div><p>Seen</p>', "Seen"),
        ("<head><title>T</title><style>p{}</style></head><p>Only</p><script>x()</script>", "Only"),
        ("<blockquote>Quoted</blockquote>", "> Quoted"),
        (
            '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>',
            "Unsubscribe ({{unsubscribe_url}})",
        ),
        ("<p>Hi {{ First_Name }}</p>", "Hi {{First_Name}}"),
        ("<pre>  a\n   b</pre>", "  a\n   b"),
        ("<p>a  \n\t b</p>", "a b"),
    ],
)
def test_the_generated_text_part_is_readable(html: str, text: str) -> None:
    assert html_to_text(html) == text + "\n"


def test_long_paragraphs_wrap_at_78_without_breaking_urls() -> None:
    url = "https://shop.example/" + "a" * 90
    text = html_to_text(f"<p>{'word ' * 30}<a href='{url}'>link</a></p>")
    assert all(len(line) <= 78 for line in text.splitlines() if url not in line)
    assert f"({url})" in text


def test_wrapping_never_splits_a_placeholder() -> None:
    for padding in range(60, 80):
        text = html_to_text(f'<p>{"x" * padding} <a href="{{{{ unsubscribe_url }}}}">Leave</a></p>')
        assert placeholders.find(text) == ["unsubscribe_url"], text


CLASSIC = """<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
 "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:o="urn:schemas-microsoft-com:office:office">
<head><meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
<meta name="viewport" content="width=device-width, initial-scale=1.0" /><title>News</title>
<!--[if gte mso 9]><xml><o:OfficeDocumentSettings><o:AllowPNG/></o:OfficeDocumentSettings>
</xml><![endif]-->
<style type="text/css">@media screen and (max-width: 600px) { .c { width: 100% !important; } }
</style></head>
<body bgcolor="#ffffff"><center>
<table border="0" cellpadding="0" cellspacing="0" width="600" class="c">
<tr><td><font face="Arial">Hello {{ first_name }},<br />This month we have new boots, jackets
and socks. Our workshop in Lyon ships within two days and returns are free for thirty days.
Read more on our blog and tell us what you think.</font></td></tr>
<tr><td><img src="https://shop.example/hero.jpg" width="600" alt="New boots" /></td></tr>
<tr><td><a href="https://shop.example/blog">Read the blog</a> &nbsp;|&nbsp;
<a href="{{ unsubscribe_url }}">Unsubscribe</a></td></tr>
</table></center></body></html>"""


def test_a_classic_xhtml_table_email_passes_without_noise() -> None:
    report = check_content_sync(
        EmailContent(subject="November news", html=CLASSIC, text="Hi\n{{ unsubscribe_url }}")
    )
    assert report.results == (), report.results


@pytest.mark.parametrize(
    ("text", "generated"), [(None, True), ("", True), ("  \n", True), ("My own text", False)]
)
def test_a_text_part_is_generated_only_when_missing(text: str | None, generated: bool) -> None:
    report = check_content_sync(EmailContent(subject="Autumn", html=email(), text=text))
    assert report.text_generated is generated
    assert bool(report.by_check(CheckId.TEXT_PART)) is generated
    if generated:
        assert "our autumn catalogue is out" in report.text
        assert "Unsubscribe ({{unsubscribe_url}})" in report.text
    else:
        assert report.text == "My own text"


# --- built-in spam rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "body", "text", "hits"),
    [
        ("Autumn catalogue", "", "x {{ unsubscribe_url }}", set()),
        ("HUGE AUTUMN SALE TODAY", "", None, {"SUBJ_ALL_CAPS"}),
        ("Big sale!!", "", None, {"SUBJ_EXCLAMATIONS"}),
        ("Sale! Now!", "", None, {"SUBJ_EXCLAMATIONS"}),
        ("Autumn", "<p>" + "Wow! " * 8 + "</p>", None, {"BODY_EXCLAMATIONS"}),
        ("Autumn", "<p>Claim your FREE MONEY today</p>", None, {"FREE_MONEY"}),
        ("Autumn", "<p>Act now, once in a lifetime</p>", None, {"URGENCY"}),
        ("Autumn", "<p>Please click here for more</p>", None, {"CLICK_HERE"}),
        ("Autumn", '<p><a href="https://bit.ly/3xYz">Boots</a></p>', None, {"URL_SHORTENER"}),
        ("Autumn", '<p><a href="https://www.bit.ly.evil/3x">Boots</a></p>', None, set()),
        (
            "Autumn",
            '<p><a href="https://evil.example/login">https://www.mybank.com</a></p>',
            None,
            {"LINK_TEXT_MISMATCH"},
        ),
        ("Autumn", '<p><a href="https://www.shop.example/a">www.shop.example</a></p>', None, set()),
        ("Autumn", '<p><a href="https://nodejs.org/">Node.js</a></p>', None, set()),
        (
            "Autumn",
            '<p><a href="https://evil.example/">bank.example/login</a></p>',
            None,
            {"LINK_TEXT_MISMATCH"},
        ),
        ("Autumn", '<p><a href="http://203.0.113.9/offer">Offer</a></p>', None, {"LINK_TO_IP"}),
        ("Re: your order", "", None, {"SUBJ_RE_FWD_FAKE"}),
        ("Autumn", "<p>Dear friend, hello</p>", None, {"DEAR_FRIEND"}),
        ("Autumn", "<p>$10 $20 $30 and $ 40</p>", None, {"DOLLAR_AMOUNTS"}),
        ("", "", None, {"EMPTY_SUBJECT"}),
    ],
)
def test_builtin_spam_rules(subject: str, body: str, text: str | None, hits: set[str]) -> None:
    report = check_content_sync(EmailContent(subject=subject, html=email(body), text=text))
    assert report.spam is not None
    assert {h.rule for h in report.spam.hits} == hits


def test_image_only_html_hits_image_only_and_missing_text_part() -> None:
    html = (
        f'{HEAD}<body><table width="100%" style="max-width:600px"><tr><td>'
        '<a href="https://shop.example/"><img src="flyer.png" alt=""></a>'
        f"{FOOTER}</td></tr></table></body></html>"
    )
    report = check_content_sync(EmailContent(subject="Autumn", html=html))
    assert report.spam is not None
    assert {"IMAGE_ONLY"} <= {h.rule for h in report.spam.hits}
    # Nothing at all to make a text part from (a bare image): HTML-only mail.
    html_without_text = f'{HEAD}<body><img src="flyer.png" alt=""></body></html>'
    report = check_content_sync(EmailContent(subject="Autumn", html=html_without_text))
    assert report.text == "" and report.text_generated
    assert report.spam is not None
    assert {"IMAGE_ONLY", "MISSING_TEXT_PART"} <= {h.rule for h in report.spam.hits}


def test_a_score_above_5_is_refused_with_every_rule_explained() -> None:
    body = '<p>FREE MONEY, act now! <a href="https://bit.ly/x">https://www.mybank.com</a></p>'
    report = check_content_sync(EmailContent(subject="WIN BIG TODAY!!", html=email(body)))
    ((result,),) = [report.by_check(CheckId.SPAM_SCORE)]
    assert result.severity is Severity.ERROR and not report.ok
    assert result.details["score"] > 5.0 and result.message.startswith("spam score")
    rules = {r["rule"]: r for r in result.details["rules"]}
    assert {"FREE_MONEY", "URL_SHORTENER", "LINK_TEXT_MISMATCH", "SUBJ_ALL_CAPS"} <= set(rules)
    assert all(r["description"] and r["evidence"] for r in rules.values())
    assert rules["URL_SHORTENER"]["evidence"] == "https://bit.ly/x"


def test_a_score_under_5_with_hits_is_a_warning() -> None:
    report = check_content_sync(EmailContent(subject="Sale!!", html=email()))
    ((result,),) = [report.by_check(CheckId.SPAM_SCORE)]
    assert result.severity is Severity.WARNING and report.ok


RULE = 'score = 1.0\ndescription = "d"\n'


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ("[rules.X]\n" + RULE + 'subject_pattern = "("', "bad pattern"),
        ("[rules.X]\n" + RULE, "exactly one"),
        ("[rules.X]\n" + RULE + 'subject_pattern = "a"\nphrases = ["b"]', "exactly one"),
        ("[rules.X]\n" + RULE + 'test = "astrology"', "unknown test"),
        ("[rules.X]\n" + RULE + 'test = "body_exclamations"', "numeric min"),
        ('[rules.X]\ndescription = "d"\nphrases = ["a"]', "numeric score"),
        ('[rules.X]\nscore = 1\nphrases = ["a"]', "description"),
        ("[rules.X]\n" + RULE + 'phrases = ["a"]\nweight = 2', "unknown key"),
        ("[rules.X]\n" + RULE + "phrases = []", "non-empty list"),
        ("[other]\nx = 1", "one [rules.ID] table"),
        ("not toml ][", "not valid TOML"),
    ],
)
def test_a_bad_rule_file_is_refused(toml: str, words: str) -> None:
    with pytest.raises(SpamRulesError, match=re.escape(words)):
        SpamRules.from_toml(toml)


def _input(subject: str = "Autumn", body: str = "Boots", **kwargs: object) -> SpamInput:
    return SpamInput(subject=subject, body_text=body, **kwargs)  # type: ignore[arg-type]


# One message per packaged rule that hits it: a rule added to the file without an example fails.
RULE_EXAMPLES = {
    "SUBJ_ALL_CAPS": _input(subject="LAST DAYS OF THE SALE"),
    "SUBJ_EXCLAMATIONS": _input(subject="Sale!!"),
    "BODY_EXCLAMATIONS": _input(body="Yes! " * 8),
    "BODY_MANY_CAPS": _input(body="THIS IS A VERY LOUD MESSAGE " * 10),
    "FREE_MONEY": _input(body="100% guaranteed returns"),
    "URGENCY": _input(subject="Buy now"),
    "CLICK_HERE": _input(body="Click below to see"),
    "WINNER": _input(body="You have won a cruise"),
    "PHARMA": _input(body="Cheap Viagra"),
    "DOLLAR_AMOUNTS": _input(body="$1 $2 $3 $4"),
    "URL_SHORTENER": _input(links=[("https://go.tinyurl.com/x", "Boots")]),
    "IMAGE_ONLY": _input(body="Hi", image_count=2),
    "MISSING_TEXT_PART": _input(has_text_part=False),
    "LINK_TEXT_MISMATCH": _input(links=[("https://evil.example/", "www.bank.example")]),
    "LINK_TO_IP": _input(links=[("http://[2001:db8::1]/x", "Boots")]),
    "EMPTY_SUBJECT": _input(subject="  "),
    "SUBJ_RE_FWD_FAKE": _input(subject="FW: catalogue"),
    "DEAR_FRIEND": _input(body="Dear valued customer,"),
}


def test_every_packaged_rule_has_an_example_that_hits_it() -> None:
    rules = SpamRules.load()
    assert {r.id for r in rules.rules} == set(RULE_EXAMPLES)
    assert all(r.description and r.score for r in rules.rules)
    for rule_id, message in RULE_EXAMPLES.items():
        hits = {h.rule: h for h in rules.evaluate(message).hits}
        assert rule_id in hits, rule_id
        assert hits[rule_id].evidence


def test_a_plain_message_hits_no_rule() -> None:
    assert SpamRules.load().evaluate(_input(body="Our autumn catalogue is out. " * 10)).hits == ()


# --- spamd: a protocol server on a real socket ---------------------------------------------------

REPORT_BODY = (
    'Spam detection software, running on the system "mx", has identified this incoming email\n'
    "as possible spam.\n\n"
    "Content analysis details:   (7.4 points, 5.0 required)\n\n"
    " pts rule name              description\n"
    "---- ---------------------- --------------------------------------------------\n"
    " 3.5 BAYES_99               BODY: Bayes spam probability is 99 to 100%\n"
    "                            [score: 1.0000]\n"
    " 2.4 FREE_MONEY             BODY: Free money!\n"
    " 1.5 SUBJ_ALL_CAPS          Subject is all capitals\n"
    "-0.0 NO_RELAYS              Informational: message was not relayed via SMTP\n"
    "\n"
)


@dataclass
class FakeSpamd:
    """A spamd that parses requests per the protocol and answers canned replies."""

    port: int = 0
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    reply: Callable[[str, bytes], bytes] | None = None


def canned_reply(method: str, body: bytes) -> bytes:
    if method == "PING":
        return b"SPAMD/1.5 0 PONG\r\n"
    spam = b"Spam: True ; 7.4 / 5.0\r\n"
    if method == "CHECK":
        return b"SPAMD/1.1 0 EX_OK\r\n" + spam + b"\r\n"
    content = (
        b"BAYES_99,FREE_MONEY,NO_RELAYS,SUBJ_ALL_CAPS"
        if method == "SYMBOLS"
        else REPORT_BODY.encode()
    )
    return (
        b"SPAMD/1.1 0 EX_OK\r\n"
        + f"Content-length: {len(content)}\r\n".encode()
        + spam
        + b"\r\n"
        + content
    )


@pytest.fixture
async def fake_spamd() -> AsyncIterator[FakeSpamd]:
    state = FakeSpamd()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = (await reader.readuntil(b"\r\n")).decode().strip()
            method, version = request_line.split(" ")
            assert version == "SPAMC/1.5"
            headers: dict[str, str] = {}
            while line := (await reader.readuntil(b"\r\n")).decode().strip():
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            state.requests.append((method, headers, body))
            writer.write((state.reply or canned_reply)(method, body))
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    async with server:
        yield state


MESSAGE = spamd_message("FREE MONEY", "<p>free money</p>", "free money", "a@shop.example")


async def test_spamd_report_gives_score_and_explained_rules(fake_spamd: FakeSpamd) -> None:
    client = SpamdClient("127.0.0.1", fake_spamd.port, user="sendmill")
    result = await client.report(MESSAGE)
    assert (result.is_spam, result.score, result.threshold) == (True, 7.4, 5.0)
    assert [(r.name, r.score) for r in result.rules] == [
        ("BAYES_99", 3.5),
        ("FREE_MONEY", 2.4),
        ("SUBJ_ALL_CAPS", 1.5),
        ("NO_RELAYS", -0.0),
    ]
    assert (
        result.rules[0].description == "BODY: Bayes spam probability is 99 to 100% [score: 1.0000]"
    )
    # The request on the wire: method, protocol version, exact length, user, the message.
    method, headers, body = fake_spamd.requests[0]
    assert method == "REPORT" and body == MESSAGE
    assert headers == {"content-length": str(len(MESSAGE)), "user": "sendmill"}


async def test_spamd_check_symbols_and_ping(fake_spamd: FakeSpamd) -> None:
    client = SpamdClient("127.0.0.1", fake_spamd.port)
    checked = await client.check(MESSAGE)
    assert (checked.is_spam, checked.score, checked.symbols) == (True, 7.4, ())
    symbols = await client.symbols(MESSAGE)
    assert symbols.symbols == ("BAYES_99", "FREE_MONEY", "NO_RELAYS", "SUBJ_ALL_CAPS")
    assert await client.ping() is True
    assert [r[0] for r in fake_spamd.requests] == ["CHECK", "SYMBOLS", "PING"]
    assert "user" not in fake_spamd.requests[0][1]


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (b"SPAMD/1.0 76 Bad header line: (Content-Length mismatch)\r\n", "76 Bad header line"),
        (b"HTTP/1.1 200 OK\r\n\r\n", "unknown status line"),
        (b"SPAMD/1.1 0 EX_OK\r\nSpam: maybe\r\n\r\n", "no usable Spam header"),
        (
            b"SPAMD/1.1 0 EX_OK\r\nContent-length: 100\r\nSpam: True ; 1 / 5\r\n\r\nshort",
            "before the end",
        ),
        (
            b"SPAMD/1.1 0 EX_OK\r\nContent-length: 99999999\r\nSpam: True ; 1 / 5\r\n\r\n",
            "unusable Content-length",
        ),
        (b"SPAMD/1.1 0 EX_OK\r\nno colon here\r\n\r\n", "malformed header"),
        (b"", "closed the connection"),
    ],
)
async def test_spamd_errors_are_spamd_errors(
    fake_spamd: FakeSpamd, reply: bytes, words: str
) -> None:
    fake_spamd.reply = lambda method, body: reply
    with pytest.raises(SpamdError, match=words):
        await SpamdClient("127.0.0.1", fake_spamd.port).report(MESSAGE)


async def test_spamd_unreachable_or_silent_is_a_spamd_error() -> None:
    with pytest.raises(SpamdError, match=re.escape("127.0.0.1")):
        await SpamdClient("127.0.0.1", free_port(), timeout=2).check(MESSAGE)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        started = time.monotonic()
        with pytest.raises(SpamdError, match=re.escape("did not answer within 0.3 s")):
            await SpamdClient("127.0.0.1", port, timeout=0.3).check(MESSAGE)
        assert time.monotonic() - started < 2


async def test_an_oversized_message_is_not_sent_to_spamd() -> None:
    with pytest.raises(SpamdError, match="limit"):
        await SpamdClient("127.0.0.1", 1).check(b"x" * (600 * 1024))


async def test_content_checks_use_spamd_when_configured(fake_spamd: FakeSpamd) -> None:
    client = SpamdClient("127.0.0.1", fake_spamd.port)
    report = await check_content(EmailContent(subject="Autumn", html=email()), spamd=client)
    assert report.spam is not None and report.spam.source == "spamd"
    ((result,),) = [report.by_check(CheckId.SPAM_SCORE)]
    assert result.severity is Severity.ERROR and result.details["score"] == 7.4
    assert "BAYES_99 +3.5" in result.message and "spamd" in result.message
    # spamd saw a complete multipart message with the generated text part.
    _, _, body = fake_spamd.requests[0]
    assert b"multipart/alternative" in body and b"Message-ID:" in body
    assert body.count(b"MIME-Version:") == 1
    assert b"our autumn catalogue is out" in body


async def test_content_checks_fall_back_to_builtin_rules_when_spamd_fails() -> None:
    client = SpamdClient("127.0.0.1", free_port(), timeout=2)
    report = await check_content(EmailContent(subject="Sale!!", html=email()), spamd=client)
    assert report.spam is not None and report.spam.source == "builtin"
    messages = [r.message for r in report.by_check(CheckId.SPAM_SCORE)]
    assert any("could not score" in m for m in messages)
    assert any("SUBJ_EXCLAMATIONS" in m for m in messages)
    assert report.ok  # a spamd outage does not block sending on its own


def test_parse_report_reads_only_the_table() -> None:
    assert parse_report("no table here\n 1.0 FAKE not a table row") == ()
    assert [r.name for r in parse_report(REPORT_BODY)] == [
        "BAYES_99",
        "FREE_MONEY",
        "SUBJ_ALL_CAPS",
        "NO_RELAYS",
    ]


# --- the real spamd (Debian's spamassassin package), when installed ------------------------------

SPAMD = shutil.which("spamd") or ("/usr/sbin/spamd" if os.path.exists("/usr/sbin/spamd") else None)


@pytest.fixture(scope="module")
async def real_spamd(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SpamdClient]:
    """One spamd for the module: it takes seconds to load its rules."""
    tmp_path = tmp_path_factory.mktemp("spamd")
    if SPAMD is None:
        pytest.skip("spamd is not installed (Debian: apt-get install spamassassin)")
    port = free_port()
    command = [
        SPAMD,
        "--local",
        "--nouser-config",
        f"--listen=127.0.0.1:{port}",
        "--max-children=1",
        "--min-children=1",
        "--syslog=stderr",
        f"--pidfile={tmp_path / 'spamd.pid'}",
    ]
    if os.geteuid() == 0:
        command.append("--username=nobody")  # spamd refuses to scan as root
    process = subprocess.Popen(  # noqa: ASYNC220 - starting a server once, not on a hot path
        command, stdout=subprocess.DEVNULL, stderr=(tmp_path / "spamd.log").open("wb")
    )
    client = SpamdClient("127.0.0.1", port, timeout=30)
    try:
        deadline = time.monotonic() + 45
        while True:
            with contextlib.suppress(SpamdError):
                if await client.ping():
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                log = (tmp_path / "spamd.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"spamd did not start: {log}")
            await asyncio.sleep(0.3)
        yield client
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def test_real_spamd_scores_spam_and_ham(real_spamd: SpamdClient) -> None:
    spam = await real_spamd.report(
        spamd_message(
            "FREE MONEY!!! ACT NOW",
            '<p>Get free money now, click here <a href="http://bit.ly/x">http://www.paypal.com</a>'
            "</p>",
            "",
            "winner@lotto.example",
        )
    )
    ham = await real_spamd.report(spamd_message("Autumn catalogue", email(), "", "a@shop.example"))
    assert spam.score > ham.score
    assert "SUBJ_ALL_CAPS" in {r.name for r in spam.rules}
    assert all(r.description for r in spam.rules)
    checked = await real_spamd.check(spamd_message("Hi", email(), "Hi", "a@shop.example"))
    assert checked.threshold == 5.0


async def test_content_checks_with_a_real_spamd(real_spamd: SpamdClient) -> None:
    report = await check_content(
        EmailContent(subject="Autumn catalogue", html=email()), spamd=real_spamd
    )
    assert report.spam is not None and report.spam.source == "spamd"
    assert report.spam.score < 5.0 and report.ok


# --- hostile input -------------------------------------------------------------------------------

TOKENS = [
    "<table>",
    "<tr>",
    "<td>",
    "</td>",
    "</table>",
    '<a href="',
    '">',
    "</a>",
    "{{",
    "}}",
    "unsubscribe_url",
    "<img src=x",
    ' alt="',
    "<!--",
    "-->",
    "&#",
    "&amp",
    "\x00",
    "<style>@media (max-width:1px){",
    "}</style>",
    "<meta name=viewport content=",
    '"',
    "<mjml>",
    "<mj-body>",
    "</p>",
    "<p>",
    "<ul><li>",
    "<h1>",
    "<br/>",
    " ",
    "FREE!!",
    "é",
]


@pytest.mark.parametrize("seed", range(40))
def test_random_markup_never_crashes_the_checks(seed: int) -> None:
    rng = random.Random(seed)
    markup = "".join(rng.choice(TOKENS) for _ in range(rng.randrange(0, 400)))
    subject = "".join(rng.choice(TOKENS) for _ in range(rng.randrange(0, 5)))
    field = "mjml" if seed % 5 == 0 else "html"
    report = check_content_sync(EmailContent(subject=subject, **{field: markup}))
    assert all(r.severity in (Severity.ERROR, Severity.WARNING) for r in report.results)
    assert all(r.message for r in report.results)
    json.dumps(report.to_dict())  # JSON-ready whatever came in
