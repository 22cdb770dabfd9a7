"""The dead-letter console in headless Chromium (Debian's package, driven by Playwright).

A DLQ is filled on a real broker (Redis), the page is opened, one letter is replayed by
clicking its button (and confirming), and the event reaches its handler. Screenshots go to
``$EVENTWIRE_SCREENSHOTS`` (``docs/images`` when refreshing the docs) or the test's folder.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import uuid
from pathlib import Path

import pytest

from tests._tools import missing
from tests.gateway._domain import TOKEN, make_domain
from tests.gateway._letters import Refunds, fill
from tests.gateway.conftest import build_app, http_server, until

pytestmark = [pytest.mark.anyio, pytest.mark.broker]

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


async def test_replay_one_letter_by_clicking(tmp_path: Path) -> None:
    if shutil.which(CHROMIUM) is None:
        missing("chromium is not installed (apt-get install -y chromium)")
    from playwright.async_api import Locator, async_playwright

    shots = Path(os.environ.get("EVENTWIRE_SCREENSHOTS", tmp_path))
    tag = f"gwc-{uuid.uuid4().hex[:8]}"
    url = f"redis://127.0.0.1:6379/0?prefix={tag}:"
    domain = make_domain(tmp_path, tag)
    refunds = Refunds(url, domain)
    async with refunds.bus:
        await fill(url, domain, refunds, rejected=2, failed=2)
        refunds.healed = True
        with http_server(build_app(url, domain)) as base:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = await browser.new_page(viewport={"width": 1280, "height": 640})
                failed_requests: list[str] = []

                def row_of(key: str) -> Locator:  # the row whose key cell is exactly `key`
                    cell = page.locator("td:nth-child(3) code", has_text=re.compile(f"^{key}$"))
                    return page.locator("tbody tr", has=cell)

                page.on("requestfailed", lambda r: failed_requests.append(r.url))
                await page.goto(f"{base}/console")
                row = page.locator("tr", has_text=domain.orders)
                assert (await row.locator(".badge").inner_text()) == "4"
                await page.screenshot(path=str(shots / "gateway-console-channels.png"))

                await row.locator("a").click()
                await page.wait_for_url(f"{base}/console/{domain.orders}")
                await page.fill("#token", TOKEN)
                await page.dispatch_event("#token", "change")
                assert await page.locator("tbody tr").count() == 4

                page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
                await row_of("r-1").locator("button").click()
                status = page.locator("#status")
                await status.filter(has_text="Replayed").wait_for()
                assert await status.inner_text() == "Replayed 1 letter(s)."
                await page.screenshot(
                    path=str(shots / "gateway-console-letters.png"), full_page=True
                )

                await row_of("f-0").locator("a").click()
                await page.locator("h2", has_text="Payload").wait_for()
                text = await page.locator("main").inner_text()
                assert "no stock record for f-0" in text and "max-attempts" in text
                await page.screenshot(
                    path=str(shots / "gateway-console-letter.png"), full_page=True
                )
                await browser.close()
                assert failed_requests == []  # everything the page needs is served by the app
        await until(lambda: refunds.handled == ["r-1"], timeout=20)
        await asyncio.sleep(0.3)
        assert refunds.handled == ["r-1"]  # exactly the clicked letter, once


async def test_purge_by_clicking_asks_first(tmp_path: Path) -> None:
    """Dismissing the confirmation purges nothing; confirming empties the DLQ, and the page
    shows the emptied table with the count."""
    if shutil.which(CHROMIUM) is None:
        missing("chromium is not installed (apt-get install -y chromium)")
    from playwright.async_api import Dialog, async_playwright

    tag = f"gwp-{uuid.uuid4().hex[:8]}"
    url = f"redis://127.0.0.1:6379/0?prefix={tag}:"
    domain = make_domain(tmp_path, tag)
    refunds = Refunds(url, domain)
    async with refunds.bus:
        await fill(url, domain, refunds, rejected=1, failed=2)
        with http_server(build_app(url, domain)) as base:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = await browser.new_page()
                await page.goto(f"{base}/console/{domain.orders}")
                await page.fill("#token", TOKEN)
                await page.dispatch_event("#token", "change")
                purge = page.locator("button.danger")
                assert await purge.inner_text() == f"Purge {domain.orders}.dlq"

                asked: list[str] = []

                async def dismiss(dialog: Dialog) -> None:
                    asked.append(dialog.message)
                    await dialog.dismiss()

                page.once("dialog", dismiss)
                await purge.click()
                await until(lambda: asked, timeout=10)
                assert "cannot be undone" in asked[0]
                assert len(await refunds.bus.dead_letters(domain.orders)) == 3

                page.once("dialog", lambda d: asyncio.ensure_future(d.accept()))
                await purge.click()
                status = page.locator("#status")
                await status.filter(has_text="Purged").wait_for()
                assert await status.inner_text() == "Purged 3 letter(s)."
                assert await page.locator("tbody tr").count() == 0
                await browser.close()
        assert await refunds.bus.dead_letters(domain.orders) == []
