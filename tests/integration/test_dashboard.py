"""The dashboard in a real browser: headless Chromium (the system's, driven by selenium and chromedriver)
opens `GET /dashboard` of one of two workers behind a read token, is asked for the token, and shows the
whole cluster's figures changing while traffic flows: requests per second, replies, provider latency,
tokens and cost per model, top agents by cost and by deferrals, breakers, dead letters, consumer lag.

The figures the page shows are checked against what the test itself sent and received, through
`/dashboard/data` of the other worker. A screenshot is saved (also to `DASHBOARD_SCREENSHOT` when set:
that is how the README's picture is made)."""

from __future__ import annotations

import asyncio
import os
import shutil
import urllib.request
import json
import uuid
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.fakes.base import ServerThread
from tests.fakes.openai_server import FakeOpenAI
from tests.integration.harness import Chat, message, profile, wait_until

TOKEN = "dashboard-reader-3f9a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MODEL = "gpt-4o-mini"


def executable(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError(f"none of {names} is installed (make test installs the distribution's chromium)")


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = executable("chromium", "chromium-browser")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1400,2000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable("chromedriver")), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def openai_fake():
    server = FakeOpenAI()
    with ServerThread(server.app) as thread:
        yield server, thread


def data(worker) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{worker.web_port}/dashboard/data",
                                     headers=AUTH)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


class Page:
    """The browser's view of the page; every call runs in a thread (selenium blocks) so the test's
    Kafka consumer keeps collecting replies meanwhile."""

    def __init__(self, driver) -> None:
        self.driver = driver

    async def text(self, element_id: str) -> str:
        return await asyncio.to_thread(lambda: self.driver.find_element(By.ID, element_id).text)

    async def number(self, element_id: str) -> float | None:
        text = (await self.text(element_id)).replace(",", "")
        try:
            return float(text)
        except ValueError:
            return None  # "–": no figure yet

    async def polls(self) -> int:
        return int(await asyncio.to_thread(self.driver.execute_script, "return document.body.dataset.polls || 0"))

    async def until(self, check, what: str, timeout: float = 60) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not await check():
            if asyncio.get_running_loop().time() > deadline:
                shot = await asyncio.to_thread(self.driver.get_screenshot_as_base64)
                raise AssertionError(f"the page never showed {what}; page text:\n"
                                     f"{await self.text('cluster')}\n(screenshot: {len(shot)} base64 chars)")
            await asyncio.sleep(0.5)


async def traffic(chat: Chat, agents: list[str], per_second: float, seconds: float) -> list[str]:
    """Messages at a steady rate, round-robin over the agents; their ids."""
    sent, loop = [], asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started < seconds:
        msg = message(agents[len(sent) % len(agents)], room_id=f"room-{len(sent) % 5}",
                      content=f"dashboard {len(sent)} {uuid.uuid4().hex[:6]}")
        await chat.message(msg)
        sent.append(msg["messageId"])
        await asyncio.sleep(1 / per_second)
    return sent


async def test_the_dashboard_shows_the_cluster_live_in_a_real_browser(cluster_factory, openai_fake, browser, tmp_path):
    _, thread = openai_fake
    cluster = cluster_factory(GATEWAY_WEB_READ_TOKENS=TOKEN, GATEWAY_RATE_WINDOW_SECONDS="2",
                              OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=thread.url + "/v1",
                              GATEWAY_RETRY_BASE_DELAY_SECONDS="0.05")
    first, second = cluster.worker(), cluster.worker()
    first.wait_ready()
    second.wait_ready()
    costly, limited = f"costly-{uuid.uuid4().hex[:6]}", f"limited-{uuid.uuid4().hex[:6]}"
    page = Page(browser)
    async with Chat(cluster.deployment) as chat:
        await chat.profile(profile(costly, provider="openai", model=MODEL))
        await chat.profile(profile(limited, rateLimits={"rpm": 2, "tpm": None}))  # echo: deferred, not refused
        await wait_until(lambda: all(first.get(f"/agents/{a}", AUTH)[0] == 200 for a in (costly, limited)), 60,
                         "both profiles")

        await asyncio.to_thread(browser.get, f"http://127.0.0.1:{first.web_port}/dashboard")
        # Behind tokens the page asks for one, then polls with it.
        await page.until(lambda: asyncio.to_thread(lambda: browser.find_element(By.ID, "token-form").is_displayed()),
                         "the token form")
        await asyncio.to_thread(lambda: browser.find_element(By.ID, "token").send_keys(TOKEN))
        await asyncio.to_thread(lambda: browser.find_element(By.CSS_SELECTOR, "#token-form button").click())
        await page.until(lambda: _ge(page.polls(), 1), "a first poll")
        await page.until(lambda: _contains(page.text("workers"), str(second.web_port)), "both workers")
        before = await page.number("replies-total") or 0

        await chat.send("messages", b"{not json", key=b"room-1")  # a dead letter at intake
        sent = await traffic(chat, [costly, costly, costly, limited], per_second=20, seconds=8)
        # While messages flow the rate is above zero; the totals follow what was answered.
        await page.until(lambda: _gt(page.number("rps"), 0), "requests per second above zero")
        await chat.wait_replies(sent, timeout=90)
        await page.until(lambda: _ge(page.number("replies-total"), before + len(sent)), "every reply counted")
        await page.until(lambda: _contains(page.text("tokens"), MODEL), "the model's tokens and cost")
        await page.until(lambda: _contains(page.text("top-cost"), costly), "the costly agent")
        await page.until(lambda: _contains(page.text("top-deferrals"), limited), "the deferred agent")
        await page.until(lambda: _contains(page.text("latency"), "openai"), "openai's latency")
        await page.until(lambda: _contains(page.text("dlq"), "invalid_json"), "the dead letter's code")
        breakers, lag = await page.text("breakers"), await page.text("lag")
        assert MODEL in breakers and "closed" in breakers
        assert cluster.deployment.topic("messages") in lag  # every assigned input partition has a row

        # The other worker answers the same cluster-wide figures, counted exactly.
        figures = data(second)
        assert not figures["partial"] and len(figures["workers"]) == 2
        assert figures["replies"]["by_status"].get("ok", 0) == len(chat.replies())
        model_row = next(row for row in figures["tokens"] if row["model"] == MODEL)
        billed = [b for _, b in chat.seen["billing"] if b["model"] == MODEL]
        assert model_row["input"] == sum(b["input_tokens"] for b in billed)
        assert model_row["output"] == sum(b["output_tokens"] for b in billed)
        assert figures["dlq"]["by_code"].get("invalid_json") == 1

    shot = tmp_path / "dashboard.png"
    await asyncio.to_thread(browser.save_screenshot, str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    if os.environ.get("DASHBOARD_SCREENSHOT"):
        Path(os.environ["DASHBOARD_SCREENSHOT"]).write_bytes(shot.read_bytes())


async def _ge(value, bound) -> bool:
    found = await value
    return found is not None and found >= bound


async def _gt(value, bound) -> bool:
    found = await value
    return found is not None and found > bound


async def _contains(text, part: str) -> bool:
    return part in await text
