"""The web console (issue 17) in headless Chromium against the running control API: what a
user notices — logging in (with the second factor), seeing their templates, creating a campaign
through the wizard, importing a CSV with progress, roles seeing only what they may, logout
ending the session — with an axe-core scan and desktop and phone screenshots of each page."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pyotp
import pytest

from control.performance import roll_up
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, check_page, require_console_and_browser
from tests.support.fixtures_control import PASSWORD, Control, campaign_body
from tests.support.tracked_campaign import delivered_recipients, tracking_event

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    require_console_and_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    """A fresh browser context; any Content-Security-Policy refusal fails the test (the console
    must work under its own policy)."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(10_000)
    refusals: list[str] = []
    page.on(
        "console",
        lambda m: refusals.append(m.text) if "Content Security Policy" in m.text else None,
    )
    yield page
    await context.close()
    assert not refusals, refusals


async def drag_block(page: Any, block: str) -> None:
    """Drag a GrapesJS block from the block panel into the middle of the canvas."""
    frame = await page.locator("iframe.gjs-frame").bounding_box()
    source = await page.locator(".gjs-block", has_text=block).bounding_box()
    assert frame is not None and source is not None
    await page.mouse.move(source["x"] + source["width"] / 2, source["y"] + source["height"] / 2)
    await page.mouse.down()
    await page.wait_for_timeout(100)
    await page.mouse.move(frame["x"] + 200, frame["y"] + 300, steps=10)
    await page.wait_for_timeout(150)
    await page.mouse.move(frame["x"] + 220, frame["y"] + 320, steps=5)
    await page.wait_for_timeout(150)
    await page.mouse.up()


async def log_in(page: Any, control: Control, email: str) -> None:
    await page.goto(control.url + "/ui/")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("heading", name="Dashboard").wait_for()


async def test_console_is_served_at_ui_with_a_strict_policy(control: Control) -> None:
    require_console_and_browser()
    c = control.client
    assert (await c.get("/")).headers["location"] == "/ui/"
    page = await c.get("/ui/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["cache-control"] == "no-store"
    deep = await c.get("/ui/campaigns/12")
    assert deep.status_code == 200 and deep.text == page.text
    script = re.search(r'src="(/ui/assets/[^"]+\.js)"', page.text)
    assert script is not None
    asset = await c.get(script.group(1))
    assert asset.status_code == 200 and "immutable" in asset.headers["cache-control"]
    assert (await c.get("/ui/assets/missing.js")).status_code == 404
    preview = await c.get("/ui/preview.html")
    assert preview.status_code == 200 and preview.headers["x-frame-options"] == "SAMEORIGIN"
    assert "script-src 'self'" in preview.headers["content-security-policy"]
    builder = (await c.get("/ui/builder.html")).headers["content-security-policy"]
    assert "script-src 'self';" in builder and "style-src 'self' 'unsafe-inline'" in builder
    assert (await c.get("/ui/assets/../../console.py")).status_code in (404, 200)
    assert "ConsoleFiles" not in (await c.get("/ui/assets/../../console.py")).text


@pytest.mark.slow  # ~11 s: eight pages scanned and photographed
async def test_marketer_logs_in_sees_templates_and_creates_a_campaign_in_the_wizard(
    control: Control, page: Any
) -> None:
    acme = await control.company()
    admin = await control.user(acme)
    ids = await control.fixtures(admin)
    template = (
        await control.client.get(f"/api/email-templates/{ids['template']}/", headers=admin.auth)
    ).json()

    await log_in(page, control, admin.email)
    await check_page(page, "dashboard")

    await page.get_by_role("link", name="Templates").click()
    await page.get_by_role("link", name=template["template_name"]).wait_for()
    await check_page(page, "templates")
    await page.get_by_role("link", name=template["template_name"]).click()
    await page.get_by_role("heading", name="Content checks").wait_for()
    # The email as recipients see it, in the sandboxed preview, at a phone's width too.
    preview = page.frame_locator("iframe[title^='Email preview']")
    await preview.get_by_text("Hello {{first_name}}").wait_for()
    await page.get_by_role("button", name="Phone").click()
    frame = page.locator("iframe[title='Email preview, phone width']")
    assert (await frame.bounding_box())["width"] <= 377
    await page.get_by_role("button", name="{{last_name}}").click()
    await preview.get_by_text("{{last_name}}").wait_for()  # inserted at the cursor, re-shown
    await check_page(page, "template")

    await page.get_by_role("link", name="Campaigns").click()
    await page.get_by_role("heading", name="Campaigns").wait_for()
    await page.get_by_role("link", name="Spring sale").first.wait_for()
    await check_page(page, "campaigns")
    await page.get_by_role("link", name="New campaign").click()
    await page.get_by_label("Campaign name").fill("Autumn launch")
    await page.get_by_label("Subject line").fill("Leaves are falling")
    await page.get_by_label("Sender").select_option(str(ids["sender"]))
    await check_page(page, "wizard-details")
    await page.get_by_role("button", name="Next: Template").click()
    await page.get_by_label(template["template_name"]).check()
    await page.get_by_role("button", name="Next: Audience").click()
    await page.get_by_text("1 subscribed").first.wait_for()
    await page.locator(".choice", has_text="1 subscribed").first.locator("input").check()
    await page.get_by_text("About 1 recipients").wait_for()
    await check_page(page, "wizard-audience")
    await page.get_by_role("button", name="Next: Schedule").click()
    await page.get_by_label("Keep as a draft").check()
    await page.get_by_role("button", name="Next: Review").click()
    await page.get_by_text("Passed the content checks").wait_for()
    await check_page(page, "wizard-review")
    await page.get_by_role("button", name="Create campaign").click()
    await page.get_by_role("heading", name="Autumn launch").wait_for()
    await page.get_by_text("Draft", exact=False).first.wait_for()
    await check_page(page, "campaign")

    listed = await control.client.get(
        "/api/email-campaigns/", headers=admin.auth, params={"search": "Autumn"}
    )
    (created,) = listed.json()["results"]
    assert created["subject_line"] == "Leaves are falling"
    assert created["campaign_status"] == "draft"
    assert created["sender_profile_id"] == ids["sender"]

    # Send it from its page: the status moves and the badge says so (not colour alone).
    await page.get_by_role("button", name="Send now").click()
    await page.locator(".page-head .badge", has_text="sending").wait_for()


async def test_csv_import_shows_progress_counts_and_refused_rows(
    control: Control, page: Any
) -> None:
    acme = await control.company()
    admin = await control.user(acme)
    ids = await control.fixtures(admin)
    await log_in(page, control, admin.email)
    await page.goto(control.url + f"/ui/lists/{ids['list']}")
    await page.get_by_role("heading", name="Import contacts from CSV").wait_for()
    rows = ["email,first_name", "ann@example.net,Ann", "not-an-address,Bob", "cy@example.net,Cy"]
    await page.get_by_label("CSV file").set_input_files(
        {"name": "people.csv", "mimeType": "text/csv", "buffer": "\n".join(rows).encode()}
    )
    await page.get_by_role("button", name="Import", exact=True).click()
    status = page.locator(".import-progress")
    await status.get_by_text("finished").wait_for()
    text = await status.inner_text()
    assert "3 rows read" in text and "2 imported" in text and "1 refused" in text
    assert "Row 3, email:" in text  # the refused row, by its line in the file
    # The members table shows the imported people, and the page stays usable.
    await page.get_by_role("link", name="ann@example.net").wait_for()
    await check_page(page, "list-import")
    # One more by hand.
    await page.get_by_role("button", name="Add a contact by hand").click()
    await page.get_by_label("Email address").fill("dee@example.net")
    await page.get_by_role("button", name="Add to this list").click()
    await page.get_by_role("link", name="dee@example.net").wait_for()
    # The list feeds a campaign: deleting it is refused, naming the campaign.
    page.on("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Delete this list").click()
    alert = page.get_by_role("alert").filter(has_text="The list was not deleted")
    await alert.get_by_role("link").wait_for()


async def test_roles_see_only_what_they_may(control: Control, page: Any) -> None:
    acme = await control.company()
    admin = await control.user(acme)
    ids = await control.fixtures(admin)
    analyst = await control.user(acme, "analyst")
    await log_in(page, control, analyst.email)
    nav = page.get_by_role("navigation", name="Main")
    for allowed in ("Dashboard", "Campaigns", "Lists", "Analytics"):
        await nav.get_by_role("link", name=allowed).wait_for()
    for hidden in ("Users", "API keys", "Approvals", "Settings", "Audit log"):
        assert await nav.get_by_role("link", name=hidden).count() == 0
    await nav.get_by_role("link", name="Campaigns").click()
    await page.get_by_role("link", name="Spring sale").wait_for()
    assert await page.get_by_role("link", name="New campaign").count() == 0
    # A campaign created elsewhere appears without a reload (the WebSocket, token sent as its
    # first message).
    body = campaign_body(ids["template"], ids["list"], ids["sender"], campaign_name="Flash")
    made = await control.client.post("/api/email-campaigns/", headers=admin.auth, json=body)
    assert made.status_code == 201
    await page.get_by_role("link", name="Flash").wait_for()
    await nav.get_by_role("link", name="Analytics").click()
    await page.get_by_text("Delivery funnel").first.wait_for()
    await check_page(page, "analytics")
    await nav.get_by_role("link", name="Contacts").click()
    await page.get_by_text("Your role sees addresses masked.").wait_for()
    await page.goto(control.url + "/ui/users")
    await page.get_by_role("heading", name="Not available to your role").wait_for()

    await page.get_by_role("button", name="Log out").click()
    await page.get_by_role("heading", name="Sign in to Sendmill").wait_for()
    await log_in(page, control, admin.email)
    await page.get_by_role("link", name="Users").click()
    await page.get_by_text(analyst.email).first.wait_for()
    await check_page(page, "users")
    await page.get_by_role("link", name="API keys").click()
    await page.get_by_role("button", name="New API key").click()
    await page.get_by_label("Name").fill("shop")
    await page.get_by_label("campaigns:read").check()
    await page.get_by_role("button", name="Create key").click()
    secret = await page.locator(".secret code").inner_text()
    me = await control.client.get("/api/auth/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.json()["permissions"] == ["campaigns:read"]
    await check_page(page, "api-keys")


async def test_second_factor_and_logout_that_ends_the_session(control: Control, page: Any) -> None:
    acme = await control.company()
    admin = await control.user(acme)
    c = control.client
    setup = (
        await c.post("/api/auth/totp/setup", headers=admin.auth, json={"password": PASSWORD})
    ).json()
    totp = pyotp.TOTP(setup["secret"])
    confirmed = await c.post(
        "/api/auth/totp/confirm", headers=admin.auth, json={"code": totp.now()}
    )
    assert confirmed.status_code == 200

    await page.goto(control.url + "/ui/campaigns")
    await page.get_by_label("Email").fill(admin.email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    # A code counts once (the confirmation spent this step's): the next step's code, which the
    # server accepts for clock drift.
    await page.get_by_label("Authentication code").fill(totp.at(time.time() + totp.interval))
    await check_page(page, "login-totp")
    await page.get_by_role("button", name="Verify").click()
    # Back where the user was going, and the token is nowhere in the URL.
    await page.get_by_role("heading", name="Campaigns").wait_for()
    assert "token" not in page.url
    stored = await page.evaluate("JSON.parse(sessionStorage.getItem('sendmill.session'))")
    await page.get_by_role("button", name="Log out").click()
    await page.get_by_role("heading", name="Sign in to Sendmill").wait_for()
    assert await page.evaluate("sessionStorage.getItem('sendmill.session')") is None
    # The server ended the session: neither token works any more.
    me = await c.get("/api/auth/me", headers={"Authorization": f"Bearer {stored['access']}"})
    assert me.status_code == 401
    again = await c.post("/api/auth/refresh", json={"refresh_token": stored["refresh"]})
    assert again.status_code == 401


async def test_an_approver_approves_from_the_queue(control: Control, page: Any) -> None:
    acme = await control.company()
    admin = await control.user(acme)
    required = await control.client.put(
        "/api/settings/", headers=admin.auth, json={"approval": {"required": True}}
    )
    assert required.status_code == 200, required.text
    ids = await control.fixtures(admin)  # the campaign's creator: admin
    manager = await control.user(acme, "marketing_manager")

    await log_in(page, control, manager.email)
    await page.get_by_role("link", name="Approvals").click()
    card = page.locator(".card", has_text="Spring sale")
    await card.get_by_role("button", name="Approve “Spring sale”").wait_for()
    await check_page(page, "approvals")
    await card.get_by_role("button", name="Approve “Spring sale”").click()
    await page.get_by_text("Nothing is waiting for approval.").wait_for()
    campaign = await control.client.get(
        f"/api/email-campaigns/{ids['campaign']}/", headers=admin.auth
    )
    assert campaign.json()["approval_status"] == "approved"
    assert campaign.json()["approved_by_user_id"] == manager.id


async def test_admin_settings_senders_audit_log_and_second_factor_set_up(
    control: Control, page: Any
) -> None:
    acme = await control.company()
    admin = await control.user(acme)
    await log_in(page, control, admin.email)
    nav = page.get_by_role("navigation", name="Main")

    await nav.get_by_role("link", name="Settings").click()
    await page.get_by_label("Every campaign needs approval").check()
    await page.get_by_label("Approving and rejecting").check()
    await check_page(page, "settings")
    await page.get_by_role("button", name="Save settings").click()
    await page.get_by_text("Settings saved.").wait_for()
    saved = (await control.client.get("/api/settings/", headers=admin.auth)).json()
    assert saved["approval"]["required"] is True and saved["mfa_required_for"] == ["approve"]

    await nav.get_by_role("link", name="Senders").click()
    await page.get_by_text("No sender yet").wait_for()
    await page.get_by_label("Profile name").fill("News")
    await page.get_by_label("From address").fill(f"news@{acme.domain}")
    await page.get_by_role("button", name="Add sender").click()
    await page.get_by_role("cell", name="News", exact=True).wait_for()
    await check_page(page, "senders")

    await nav.get_by_role("link", name="Audit log").click()
    await page.get_by_text("sender_profile.create").first.wait_for()
    await check_page(page, "audit-log")

    await page.get_by_role("link", name="Account").click()
    await page.get_by_label("Your password").fill(PASSWORD)
    await page.get_by_role("button", name="Set up an authenticator").click()
    secret = await page.locator("code").first.inner_text()
    await page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
    await check_page(page, "account")
    await page.get_by_role("button", name="Turn on").click()
    await page.get_by_text("The second factor is on").wait_for()
    # Turning it on ended the admin's other sessions (the test's own token among them): a
    # colleague sees it.
    colleague = await control.user(acme)
    me = (await control.client.get(f"/api/users/{admin.id}/", headers=colleague.auth)).json()
    assert me["totp_enabled"] is True


async def test_edit_a_draft_then_bulk_cancel_and_filter_by_status(
    control: Control, page: Any
) -> None:
    acme = await control.company()
    admin = await control.user(acme)
    ids = await control.fixtures(admin)
    body = campaign_body(ids["template"], ids["list"], ids["sender"], campaign_name="Winter")
    assert (
        await control.client.post("/api/email-campaigns/", headers=admin.auth, json=body)
    ).is_success
    page.on("dialog", lambda dialog: dialog.accept())
    await log_in(page, control, admin.email)
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Campaigns").click()
    # Edit a draft through the wizard, its answers filled in.
    await page.get_by_role("link", name="Winter").click()
    await page.get_by_role("link", name="Edit").click()
    await page.get_by_label("Subject line").fill("Snow is coming")
    for step in ("Template", "Audience", "Schedule", "Review"):
        await page.get_by_role("button", name=f"Next: {step}").click()
    await page.get_by_role("button", name="Save changes").click()
    await page.get_by_role("heading", name="Winter").wait_for()
    await page.get_by_text("Snow is coming").wait_for()
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Campaigns").click()
    await page.get_by_label("Choose every campaign on this page").check()
    await check_page(page, "campaigns-bulk")
    await page.get_by_role("button", name="Cancel", exact=True).click()
    await page.get_by_text("Cancel: 2 done").wait_for()
    await page.get_by_label("Status").select_option("draft")
    await page.get_by_text("No campaign matches these filters.").wait_for()
    await page.get_by_label("Status").select_option("cancelled")
    await page.get_by_role("link", name="Winter").wait_for()
    assert await page.locator("tbody .badge", has_text="cancelled").count() == 2


async def test_an_expired_access_token_is_refreshed_without_the_user_noticing(
    make_control: Any, page: Any
) -> None:
    control = await make_control(access_token_ttl="2s")
    acme = await control.company()
    admin = await control.user(acme)
    await control.fixtures(admin)
    await log_in(page, control, admin.email)
    first = await page.evaluate("JSON.parse(sessionStorage.getItem('sendmill.session')).access")
    await page.wait_for_timeout(2500)
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Templates").click()
    await page.get_by_role("link", name=re.compile("^Template T")).wait_for()
    second = await page.evaluate("JSON.parse(sessionStorage.getItem('sendmill.session')).access")
    assert second != first


async def test_build_a_template_by_dragging_blocks(control: Control, page: Any) -> None:
    acme = await control.company()
    admin = await control.user(acme)
    ids = await control.fixtures(admin)
    await log_in(page, control, admin.email)
    await page.goto(control.url + f"/ui/templates/{ids['template']}")
    await page.get_by_role("link", name="Open the drag-and-drop builder").click()
    await page.get_by_text("Drag blocks from the right").wait_for()
    await page.frame_locator("iframe.gjs-frame").get_by_text("Hello {{first_name}}").wait_for()
    # Personalisation variables are blocks beside the preset's layout blocks.
    await page.locator(".gjs-block", has_text="First name").wait_for()
    # Drag the preset's Button block into the email: a native drag and drop, the pointer
    # pausing as a hand would so that the editor sees the drag over its canvas.
    canvas = page.frame_locator("iframe.gjs-frame").locator("body")
    await drag_block(page, "Button")
    await canvas.get_by_text("Button", exact=True).wait_for()
    await page.get_by_role("button", name="Save").click()
    await page.get_by_role("status").get_by_text(re.compile("^Saved")).wait_for()
    saved = await control.client.get(f"/api/email-templates/{ids['template']}/", headers=admin.auth)
    html = saved.json()["html_content"]
    assert (
        ">Button</a>" in html and "Hello {{first_name}}" in html and "{{unsubscribe_url}}" in html
    )
    assert 'name="viewport"' in html
    # GrapesJS's editor needs a wider screen than a phone (its panels do not fold); phones
    # get the console's own template page, which does fit.
    await check_page(page, "builder", fits_phone=False)


async def test_a_phone_user_finds_their_way_with_the_keyboard(control: Control, page: Any) -> None:
    acme = await control.company()
    admin = await control.user(acme)
    await control.fixtures(admin)
    await page.set_viewport_size({"width": 375, "height": 740})
    await log_in(page, control, admin.email)
    nav = page.get_by_role("navigation", name="Main")
    assert not await nav.is_visible()  # folded behind the Menu button on a phone
    await page.keyboard.press("Tab")  # the skip link comes first, and shows when focused
    assert await page.get_by_role("link", name="Skip to content").is_visible()
    menu = page.get_by_role("button", name="Menu")
    while not await menu.evaluate("b => b === document.activeElement"):
        await page.keyboard.press("Tab")
    outline = await menu.evaluate("b => getComputedStyle(b).outlineStyle")
    assert outline != "none"  # focus is visible
    await page.keyboard.press("Enter")
    assert await menu.get_attribute("aria-expanded") == "true"
    await nav.get_by_role("link", name="Templates").focus()
    await page.keyboard.press("Enter")
    heading = page.get_by_role("heading", name="Templates", level=1)
    await heading.wait_for()
    # Focus moves to the new page's heading, so a screen reader starts there.
    await page.wait_for_function(
        "document.activeElement && document.activeElement.tagName === 'H1'"
    )
    assert not await nav.is_visible()  # the menu folds again after navigating


async def test_the_campaign_chart_changes_after_a_tracked_click(
    control: Control, page: Any
) -> None:
    acme = await control.company()
    admin = await control.user(acme)
    ids = await control.fixtures(admin)
    campaign = ids["campaign"]
    first, _ = await delivered_recipients(control.pool, acme.id, campaign, 2)
    await log_in(page, control, admin.email)
    await page.goto(control.url + f"/ui/campaigns/{campaign}")
    await page.get_by_text("No opens or clicks recorded yet.").wait_for()
    await tracking_event(control.pool, acme.id, campaign, "open", first)
    await tracking_event(control.pool, acme.id, campaign, "click", first)
    # The counters' round publishes email_campaign.performance_update: the page redraws.
    assert await roll_up(control.pool) >= 1
    chart = page.get_by_role("img", name=re.compile("^Opens and clicks per hour"))
    await chart.wait_for()
    clicked = page.locator(".stat", has_text="Clicked by people")
    await clicked.get_by_text("50.0%").wait_for()
    await check_page(page, "campaign-results")
