"""gouache studio in a real browser (Debian's headless Chromium driven by Playwright) against
the e2e mesh: sign in, upload, pick styles and a model, stylize, see the result, rate it, then
the gallery, the admin page and a phone-width screen, with a screenshot of every step and
axe-core's WCAG 2.1 AA checks on each page.

Screenshots go to the test's tmp dir, and also to $GOUACHE_STUDIO_SCREENSHOTS when set
(`GOUACHE_STUDIO_SCREENSHOTS=docs/studio pytest tests/e2e/test_studio_browser.py` refreshes
the README's, as JPEG)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from gouache import catalogue
from gouache.cli.mesh import Mesh
from gouache.client import GouacheClient
from tests.e2e.images import small
from tests.fixtures.required import missing_server

CHROMIUM = Path("/usr/bin/chromium")
# axe-core, the accessibility engine, from the studio's own dev dependencies (npm ci).
AXE = Path(__file__).resolve().parents[2] / "studio" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
SCREENSHOTS_VARIABLE = "GOUACHE_STUDIO_SCREENSHOTS"
# adain's one pass on 256 px takes well under a second; the bound covers a loaded CI machine.
JOB_TIMEOUT_MS = 120_000
STEP_TIMEOUT_MS = 30_000
NOT_AN_IMAGE = b"these are notes, not pixels\n" * 20

playwright_sync = pytest.importorskip("playwright.sync_api")

pytestmark = [
    pytest.mark.slow,
    # One mesh is enough: the studio talks to the API, the same on either backend.
    pytest.mark.parametrize("mesh", ["local"], indirect=True),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium from Debian's package; Playwright's own browsers are never used."""
    if not CHROMIUM.exists():
        missing_server(f"{CHROMIUM} is missing: bash scripts/ensure-browser.sh installs it")
    with playwright_sync.sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                headless=True,
                # Root (CI containers) cannot use Chromium's sandbox.
                args=["--no-sandbox", "--disable-dev-shm-usage"],
            )
        except playwright_sync.Error as exc:
            missing_server(f"chromium cannot start: {exc}")
        yield chromium
        chromium.close()


class Shots:
    """Numbered screenshots in the test's tmp dir, copied to $GOUACHE_STUDIO_SCREENSHOTS."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.export = os.environ.get(SCREENSHOTS_VARIABLE)
        self.taken: list[Path] = []

    def take(self, page: Any, name: str, *, full_page: bool = True) -> Path:
        path = self.directory / f"{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        self.taken.append(path)
        if self.export:
            # JPEG keeps the screenshots the docs commit small.
            Path(self.export).mkdir(parents=True, exist_ok=True)
            with Image.open(path) as shot:
                shot.convert("RGB").save(Path(self.export) / f"{name}.jpg", quality=82)
        return path


@pytest.fixture
def shots(tmp_path: Path) -> Shots:
    return Shots(tmp_path)


def _studio_built(mesh: Mesh) -> None:
    if mesh.config.studio_dir is None:
        missing_server("gouache studio is not built: bash scripts/build-studio.sh (needs npm)")


def _open(browser: Any, mesh: Mesh, **context: Any) -> tuple[Any, Any, list[str]]:
    """A fresh page on the studio, noting every console error and each job event stream
    opened (with its status)."""
    page = browser.new_context(**context).new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    problems: list[str] = []
    page.on(
        "response",
        lambda response: (
            problems.append(f"event stream {response.status}")
            if ":events" in response.url
            else None
        ),
    )
    page.on(
        "console",
        lambda message: (
            problems.append(f"console {message.type}: {message.text}")
            if message.type == "error"
            else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.goto(mesh.config.public_url + "/")
    return page.context, page, problems


def _api(admin: GouacheClient, mesh: Mesh, path: str, **params: Any) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {admin.token()}"}
    response = httpx.get(mesh.config.public_url + path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _refusal_of(admin: GouacheClient, mesh: Mesh, data: bytes) -> tuple[int, str]:
    """Storage's status and message when the same bytes are uploaded outside the browser."""
    headers = {"authorization": f"Bearer {admin.token()}"}
    with httpx.Client(base_url=mesh.config.public_url, headers=headers) as http:
        signed = http.post(
            "/v1/uploads/sign",
            json={"filename": "notes.png", "content_type": "image/png", "kind": "content"},
        ).json()
        refused = http.put(
            signed["upload_url"], content=data, headers={"content-type": "image/png"}
        )
    assert refused.status_code >= 400, refused.text
    message: str = refused.json()["message"]
    return refused.status_code, message


def _accessibility_violations(page: Any) -> list[str]:
    """What axe-core finds against WCAG 2.1 A and AA on the page as it is now."""
    if not AXE.is_file():
        missing_server(f"{AXE} is missing: bash scripts/build-studio.sh installs it")
    # Evaluated through the DevTools protocol: the studio's CSP refuses injected script tags.
    page.evaluate(AXE.read_text())
    found = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})"
        ".then(r => r.violations.map(v => `${v.id} (${v.impact}): ${v.help}: `"
        " + v.nodes.map(n => n.target.join(' ')).join(', ')))",
        WCAG_AA,
    )
    return list(found)


def _sign_in(page: Any, api_key: str) -> None:
    page.get_by_label("API key").fill(api_key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Main").wait_for()


def test_sign_in_upload_stylize_see_and_rate(
    mesh: Mesh, admin: GouacheClient, browser: Any, shots: Shots
) -> None:
    _studio_built(mesh)
    assert mesh.credentials is not None
    expect = playwright_sync.expect
    context, page, problems = _open(browser, mesh, viewport={"width": 1280, "height": 900})

    # A wrong key is refused with auth's own message.
    page.get_by_label("API key").fill("gk_not_a_key")
    page.get_by_role("button", name="Sign in").click()
    refused = httpx.post(
        mesh.config.public_url + "/v1/auth/token",
        json={"grant_type": "client_credentials", "api_key": "gk_not_a_key"},
    )
    assert refused.status_code == 400, refused.text
    expect(page.get_by_role("alert")).to_have_text(refused.json()["message"])
    shots.take(page, "sign-in-refused")
    assert _accessibility_violations(page) == []
    _sign_in(page, mesh.credentials.admin_api_key)
    expect(page.get_by_text("admin@gouache.local (admin)")).to_be_visible()

    # Bytes that are no image: the browser cannot tell, storage refuses, its words are shown.
    page.get_by_label("Content image", exact=True).set_input_files(
        {"name": "notes.png", "mimeType": "image/png", "buffer": NOT_AN_IMAGE}
    )
    refusal = page.get_by_role("alert").filter(has_text="Upload refused")
    expect(refusal).to_be_visible(timeout=STEP_TIMEOUT_MS)
    upload_status, upload_message = _refusal_of(admin, mesh, NOT_AN_IMAGE)
    expect(refusal).to_have_text(f"Upload refused: {upload_message}")
    shots.take(page, "upload-refused")

    page.get_by_label("Content image", exact=True).set_input_files(
        {"name": "chelsea.png", "mimeType": "image/png", "buffer": small("chelsea", 256)}
    )
    expect(page.get_by_text("chelsea.png (")).to_contain_text("uploaded")

    curated = _api(admin, mesh, "/v1/styles", curated="true")["styles"]
    assert len(curated) >= 2, curated
    first, second = curated[0], curated[1]
    grid = page.get_by_role("list", name="Curated styles")
    grid.get_by_role("button", name=first["title"]).click()
    grid.get_by_role("button", name=second["title"]).click()
    expect(grid.get_by_role("button", name=first["title"])).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(grid.get_by_text(first["artist"]).first).to_be_visible()
    page.get_by_role("slider", name=second["title"]).fill("20")
    expect(page.get_by_role("slider", name=first["title"])).to_have_attribute(
        "aria-valuetext", "71 percent of the mix"
    )
    page.get_by_label("Model").select_option("adain")
    page.get_by_label("Style strength").fill("0.8")
    page.get_by_text("Advanced").click()
    page.get_by_label("Output format").select_option("jpeg")
    page.get_by_label("Seed").fill("7")
    shots.take(page, "ready")

    page.get_by_role("button", name="Stylize").click()
    expect(page.get_by_test_id("preview-status")).to_contain_text("done", timeout=JOB_TIMEOUT_MS)
    expect(page.get_by_test_id("full-status")).to_contain_text("done", timeout=JOB_TIMEOUT_MS)
    after = page.get_by_role("img", name="After: full result", exact=False)
    expect(after).to_be_visible()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.compare img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    page.get_by_label("Before and after split").fill("30")
    # The window as a person sees it at the top of the page: the result stays in view.
    page.evaluate("() => window.scrollTo(0, 0)")
    shots.take(page, "result", full_page=False)

    page.get_by_role("radio", name="4 stars").check()
    expect(page.get_by_text("Thanks: rated 4 of 5.")).to_be_visible()
    shots.take(page, "rated")
    assert _accessibility_violations(page) == []

    # What the browser did, as the API saw it: an export and a preview of adain, rated 4.
    jobs = _api(admin, mesh, "/v1/jobs", page_size=5)["jobs"]
    export = next(job for job in jobs if job["lane"] == "export")
    assert export["status"] == "succeeded"
    assert export["model_version"] == catalogue.DEFAULT
    assert export["params"]["alpha"] == pytest.approx(0.8)
    assert (export["params"]["output_format"], export["params"]["seed"]) == ("jpeg", 7)
    assert export["params"]["weights"] == pytest.approx([0.7143, 0.2857], abs=1e-3)
    assert any(job["lane"] == "preview" for job in jobs)
    stats = {row["model_version"]: row for row in _api(admin, mesh, "/v1/feedback/stats")["stats"]}
    assert int(stats[export["model_version"]]["ratings_count"]) >= 1

    page.get_by_role("link", name="Gallery").click()
    expect(page).to_have_url(mesh.config.public_url + "/gallery")
    result = page.get_by_role("img", name=f"Result of job {export['job_id']}")
    expect(result).to_be_visible()
    card = page.get_by_role("listitem").filter(has=result)
    card.get_by_role("button", name="Compare with the photo").click()
    expect(card.get_by_role("img", name="Before: your content image")).to_be_visible()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.job-card img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    shots.take(page, "gallery")
    assert _accessibility_violations(page) == []

    page.get_by_role("link", name="Admin").click()
    expect(page.get_by_role("row").filter(has_text=export["model_version"]).first).to_be_visible()
    shots.take(page, "admin")
    assert _accessibility_violations(page) == []

    page.reload()  # the key survives a reload of the tab, and a page path is the app
    expect(page.get_by_role("heading", name="Admin")).to_be_visible()
    page.get_by_role("link", name="Create").click()  # the settings used are the defaults now
    expect(page.get_by_label("Model")).to_have_value("adain")
    expect(page.get_by_label("Style strength")).to_have_value("0.8")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("() => sessionStorage.length") == 0
    context.close()
    # The browser logs each refused request; only the two this test provoked may be there.
    provoked = [f"status of {status}" for status in (refused.status_code, upload_status)]
    # Progress came live from GET /v1/jobs/{id}:events, the preview's and the result's.
    assert problems.count("event stream 200") == 2, problems
    provoked.append("event stream 200")
    unexpected = [line for line in problems if not any(p in line for p in provoked)]
    assert unexpected == [], "\n".join(unexpected)


def test_phone_width_in_the_dark_is_usable_by_keyboard(
    mesh: Mesh, browser: Any, shots: Shots
) -> None:
    _studio_built(mesh)
    assert mesh.credentials is not None
    expect = playwright_sync.expect
    context, page, problems = _open(
        browser,
        mesh,
        viewport={"width": 375, "height": 812},
        is_mobile=True,
        has_touch=True,
        # The dark palette, so that axe checks its contrast too.
        color_scheme="dark",
    )
    # Keyboard only: Tab to the key field, type, Enter.
    page.get_by_label("API key").wait_for()
    page.keyboard.press("Tab")
    expect(page.get_by_label("API key")).to_be_focused()
    page.keyboard.type(mesh.credentials.admin_api_key)
    page.keyboard.press("Enter")
    page.get_by_role("navigation", name="Main").wait_for()
    expect(page.get_by_role("list", name="Curated styles")).to_be_visible()

    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow} px at 375 px"
    page.keyboard.press("Tab")
    focused = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert focused != "none", "the focused element shows no outline"
    shots.take(page, "phone")
    assert _accessibility_violations(page) == []
    context.close()
    assert problems == [], "\n".join(problems)
