"""The shipped machine rules, table-driven: each documented case gets the documented reason."""

from __future__ import annotations

import pytest

from tracker.machine import MachineRules, Request, RulesError

RULES = MachineRules.load()
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)


@pytest.mark.parametrize(
    ("kind", "user_agent", "ip", "headers", "since", "reason"),
    [
        ("open", CHROME, "198.51.100.4", {}, 3600, None),
        ("click", CHROME, "198.51.100.4", {}, 3600, None),
        ("open", "Mozilla/5.0", "198.51.100.4", {}, 2, "apple_mail_privacy_protection"),
        ("open", CHROME, "17.58.1.2", {}, 3600, "apple_mail_privacy_protection"),
        ("open", GMAIL_PROXY, "66.249.1.1", {}, 5, "google_image_proxy_prefetch"),
        ("open", GMAIL_PROXY, "66.249.1.1", {}, 7200, None),  # a person opening in Gmail
        ("click", CHROME, "198.51.100.4", {}, 3, "clicked_within_seconds_of_delivery"),
        ("click", CHROME, "198.51.100.4", {}, None, None),  # no send time: no timing rule
        ("click", CHROME, "198.51.100.4", {"sec-purpose": "prefetch"}, 900, "prefetch"),
        (
            "click",
            "Mozilla/5.0 (compatible; Mimecast)",
            None,
            {},
            900,
            "security_scanner_user_agent",
        ),
        ("click", "Slackbot-LinkExpanding 1.0", None, {}, 900, "link_preview_or_bot"),
        ("click", "python-requests/2.32", None, {}, 900, "http_library"),
        ("click", "", None, {}, 900, "empty_user_agent"),
        ("click", CHROME, "40.94.12.7", {}, 900, "security_scanner_network"),
        ("click", CHROME, "2001:db8::1", {}, 900, None),
    ],
)
def test_shipped_rules(kind, user_agent, ip, headers, since, reason) -> None:
    request = Request(kind, user_agent, ip, headers, since)
    assert RULES.classify(request) == reason
    assert RULES.classify(request) == reason  # the User-Agent cache gives the same answer


def test_rule_order_holds_with_the_cache() -> None:
    # a scanner UA clicking within seconds: the earlier timing rule names the reason
    scanner = "Mozilla/5.0 Proofpoint"
    assert RULES.classify(Request("click", scanner, None, {}, 900)) == "security_scanner_user_agent"
    fast = Request("click", scanner, None, {}, 1)
    assert RULES.classify(fast) == "clicked_within_seconds_of_delivery"


@pytest.mark.parametrize(
    "text",
    [
        'rule = [{ kinds = ["open"], user_agent = "x" }]',  # no reason
        'rule = [{ reason = "r", kinds = ["view"], user_agent = "x" }]',
        'rule = [{ reason = "r", kinds = ["open"] }]',  # no condition
        'rule = [{ reason = "r", kinds = ["open"], user_agent = "(" }]',
        'rule = [{ reason = "r", kinds = ["open"], networks = ["300.1.1.1/8"] }]',
        'rule = [{ reason = "r", kinds = ["open"], user_agent = "x", colour = "red" }]',
    ],
)
def test_bad_rules_files_are_refused_with_the_rule_named(tmp_path, text) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(RulesError, match="rule 1"):
        MachineRules.load(path)
