"""`switchboard server` serves a Prefect UI that reaches its own API, on any port and address.

The UI asks ``/ui-settings`` where the API is. Prefect 3.9 answers from its settings, not from
``--port``, so a server on another port served a UI that called ``127.0.0.1:4200`` and showed
"Oops. Something went wrong". These tests start the real server and read what the UI reads, and
once render a flow-run page in headless Chromium.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import tempfile
from urllib.parse import urljoin

import httpx
import pytest

from tests.helpers.processes import Processes

CHROMIUM = shutil.which("chromium")
# What the probe of this machine found Chromium needs offline (no background connections).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


async def _ui_settings(processes: Processes) -> dict[str, str]:
    async with httpx.AsyncClient() as client:
        response = await client.get(processes.api.removesuffix("/api") + "/ui-settings", timeout=10)
    response.raise_for_status()
    settings: dict[str, str] = response.json()
    return settings


async def _render(url: str) -> str:
    """The DOM of ``url`` after its scripts ran (headless Chromium, a fresh profile)."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        browser = await asyncio.create_subprocess_exec(
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--virtual-time-budget=15000",
            "--dump-dom",
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        dom, _ = await asyncio.wait_for(browser.communicate(), 90)
    return dom.decode(errors="replace")


async def test_the_ui_reaches_the_api_of_the_port_it_is_served_on(processes: Processes) -> None:
    # A PREFECT_API_URL in the server's own environment (another server) must not leak into the UI.
    processes.env["PREFECT_API_URL"] = "http://127.0.0.1:9/api"
    await processes.start_server()
    settings = await _ui_settings(processes)
    page = processes.api.removesuffix("/api") + "/"
    assert urljoin(page, settings["api_url"]) == processes.api

    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (make test installs it: scripts/ensure-chromium.sh)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    code, out, err = await processes.cli("run", "examples/branching.yaml", "-i", "count=7", "--json")
    assert code == 0, err
    flow_run_id = json.loads(out)["flow_run_id"]
    for ui in ("", "v2/"):  # Prefect 3.9 serves two UIs; both must work
        dom = await _render(f"{page}{ui}runs/flow-run/{flow_run_id}")
        assert "Oops" not in dom and "Something went wrong" not in dom, dom[-2000:]
        assert "branching draft · cli" in dom, dom[-2000:]

    # The run's artifact draws the workflow (Mermaid): Prefect 3.9's current UI (/v2/, where
    # Switchboard's links go) renders it as a picture; the classic UI shows the source text.
    async with httpx.AsyncClient() as client:
        found = await client.post(
            f"{processes.api}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}}
        )
    (artifact,) = found.json()
    dom = await _render(f"{page}v2/artifacts/artifact/{artifact['id']}")
    drawn = re.findall(r'<svg[^>]*id="(mermaid-[^"]*)"', dom)
    assert drawn and "n_check" in dom, "the v2 UI draws the run graph: " + dom[-2000:]
