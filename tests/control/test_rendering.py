"""The campaign renderer (control/rendering.py): personalisation, every placeholder spelling the
content checks accept, the sandbox and its limits, CSS inlining and the preheader; and the
template API refusing at save what cannot compile."""

from __future__ import annotations

import pytest

from control.rendering import (
    CampaignContent,
    CompiledCampaign,
    Links,
    RenderFailed,
    TemplateRefused,
    compile_part,
)
from tests.support.fixtures_control import Control, template_body

LINKS = Links("https://t.example/u/TOKEN", "https://t.example/p/TOKEN", "https://t.example/v/TOK")
ANN = {
    "first_name": "Ann",
    "last_name": "Lee",
    "email": "ann@x.test",
    "attributes": {"city": "Oslo"},
}


def render(html: str, contact: dict | None = ANN, **content: str) -> object:
    return CompiledCampaign(
        CampaignContent(subject=content.pop("subject", "S"), html=html, **content)
    ).render(contact, "ann@x.test", LINKS)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ contact.first_name }} {{ contact.last_name }}", "Ann Lee"),
        ("{{ contact.email }}|{{ email }}", "ann@x.test|ann@x.test"),
        ("{{ contact.attributes.city }} {{ contact.city }}", "Oslo Oslo"),
        ("{{ first_name }} {{ FirstName }} {{ LAST_NAME }}", "Ann Ann Lee"),
        ("{{ contact.attributes.shoe | default('none') }}", "none"),
        ("{{ campaign.name }}", "Spring"),
        ("{{unsubscribe_url}}", LINKS.unsubscribe_url),
        ("{{ UnsubscribeURL }}", LINKS.unsubscribe_url),
        ("{{ UNSUBSCRIBE_URL }}", LINKS.unsubscribe_url),
        ('<a href="%7B%7Bunsubscribe_url%7D%7D">', f'<a href="{LINKS.unsubscribe_url}">'),
        ("{{ preferences_url }} {{ PreferencesURL }}", f"{LINKS.preferences_url} " * 2),
        ("{{ view_url }}", LINKS.view_url),
    ],
)
def test_every_variable_and_spelling_renders(source: str, expected: str) -> None:
    html = (
        CompiledCampaign(
            CampaignContent(subject="s", html=f"<p>{source}</p>", campaign_name="Spring")
        )
        .render(ANN, "ann@x.test", LINKS)
        .html
    )
    assert html == f"<p>{expected.strip()}</p>"


def test_missing_variables_render_empty_and_are_counted() -> None:
    rendered = render(
        "<p>{{ contact.first_name }}|{{ contact.attributes.city }}|{{ nope }}</p>",
        {"email": "a@x.test"},
    )
    assert rendered.html == "<p>||</p>"
    assert rendered.missing == 3
    assert render("<p>{{ contact.first_name | default('friend') }}</p>", {}).missing == 0
    called = render("<p>{{ contact.attributes.nickname.title() }}!</p>", {"email": "a@x.test"})
    assert (called.html, called.missing) == ("<p>!</p>", 1)


def test_html_is_escaped_and_header_text_has_no_line_breaks() -> None:
    evil = {"first_name": "<b>x</b>\r\nBcc: victim@example.com", "email": "a@x.test"}
    rendered = render(
        "<p>{{ contact.first_name }}</p>", evil, subject="Hi {{ contact.first_name }}"
    )
    assert "<b>" not in rendered.html and "&lt;b&gt;" in rendered.html
    assert "\r" not in rendered.subject and "\n" not in rendered.subject


def test_preheader_is_hidden_preview_text_first_in_the_body_and_css_is_inlined() -> None:
    rendered = render(
        '<html><body><p class="a">Hi</p></body></html>',
        preheader="Only for {{ contact.first_name }}",
        css=".a{color:red}",
    )
    body = rendered.html.split("<body>", 1)[1]
    assert body.startswith('<div style="display:none')
    assert "Only for Ann" in body
    assert '<p class="a" style="color: red;">Hi</p>' in body


def test_css_is_inlined_after_rendering_when_the_template_has_blocks() -> None:
    html = '<html><body>{% for i in range(2) %}<p class="a">{{ i }}</p>{% endfor %}</body></html>'
    rendered = render(html, css=".a{color:red}")
    assert rendered.html.count('style="color: red;"') == 2


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ ''['__class__'] }}",
        "{{ range.__globals__ }}",
        "{{ x | no_such_filter }}",
        "{% for %}",
        "{{ unclosed",
    ],
)
def test_templates_that_cannot_compile_or_reach_internals_are_refused(source: str) -> None:
    with pytest.raises(TemplateRefused):
        compile_part(source, "html_content", html=True)


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'x' * 100000000 }}",
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
        "{{ '%999999999s' | format(1) }}",
        "{{ 'a' | center(999999999) }}",
        "{{ 9 ** 99999999 }}",
        "{% for i in range(9000) %}{{ 'x' * 200 }}{% endfor %}",
    ],
)
def test_renders_are_bounded(source: str) -> None:
    with pytest.raises(RenderFailed):
        render(source)


async def test_template_save_refuses_what_cannot_render(control: Control) -> None:
    admin = await control.user(await control.company(), "admin")
    html = template_body("X")["html_content"]
    for bad in ("{{ ''.__class__ }}", "{{ name | nosuchfilter }}", "{% if %}"):
        r = await control.client.post(
            "/api/email-templates/",
            headers=admin.auth,
            json=template_body("BAD", html_content=html.replace("Hello", f"Hello {bad}")),
        )
        assert r.status_code == 422, r.text
        assert "html_content" in r.json()["details"]["fields"]
    r = await control.client.post(
        "/api/email-templates/",
        headers=admin.auth,
        json=template_body(
            "OK",
            html_content=html.replace("Hello", "Hello {{ contact.first_name | default('you') }}"),
        ),
    )
    assert r.status_code == 201, r.text
