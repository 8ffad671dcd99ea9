"""The web console in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, installed by .ci/run) driven by Selenium against a served gateway
with authentication on. Screenshots of each step go to tests/artifacts/ (git-ignored)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import auth
from gateway.server import create_app
from tests.builtin_models.conftest import TINY_HYPERPARAMS, build_tiny_bert, sentiment_frame
from tests.conftest import RayCluster
from tests.threaded_server import serving

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).parents[1] / "artifacts"
CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser() -> Iterator[Any]:
    if CHROMIUM is None or DRIVER is None:  # .ci/run installs both; a skip would hide it
        pytest.fail(
            "the console's browser test needs Debian's chromium and chromium-driver: "
            "apt-get install -y chromium chromium-driver (as .ci/run does)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1280,900"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def gateway_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """A served gateway with one registered model and an admin token: (url, token)."""
    monkeypatch.setattr(auth, "CACHE_S", 0.0)
    app = create_app(home=tmp_path)
    with serving(app, "gateway") as url:
        answer = httpx.post(
            f"{url}/api/sql",
            json={"query": "CREATE MODEL house_price PREDICT y USING "
                  "url.predict='http://127.0.0.1:9/predict', format='ray_serve'"},
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        _, token = app.state.gateway.create_token("console-admin", "admin")
        yield url, token


def shot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"console-{name}.png"))


def test_the_console_runs_sql_and_lists_models(browser: Any, gateway_url: tuple[str, str]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, token = gateway_url
    wait = WebDriverWait(browser, 15)
    browser.get(url + "/")
    # authentication is on: the page asks for a token first
    field = wait.until(ec.visibility_of_element_located((By.ID, "token")))
    shot(browser, "1-token")
    field.send_keys(token, Keys.ENTER)

    editor = wait.until(ec.visibility_of_element_located((By.ID, "sql-input")))
    editor.clear()
    editor.send_keys("SELECT 1 AS one")
    editor.send_keys(Keys.CONTROL, Keys.ENTER)
    cell = (By.CSS_SELECTOR, "#sql-output td")
    wait.until(ec.text_to_be_present_in_element(cell, "1"))
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#sql-output th")]
    assert headers == ["one"]
    shot(browser, "2-sql")

    # an error shows its code, message and position
    editor.clear()
    editor.send_keys("SELEC 1")
    editor.send_keys(Keys.CONTROL, Keys.ENTER)
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#sql-output"), "PARSE_ERROR"))
    assert "line 1" in browser.find_element(By.CSS_SELECTOR, "#sql-output .error").text

    browser.find_element(By.LINK_TEXT, "Models").click()
    link = wait.until(ec.visibility_of_element_located((By.LINK_TEXT, "house_price")))
    shot(browser, "3-models")
    link.click()
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h2"), "Model house_price"))
    assert "ray_serve" in browser.find_element(By.ID, "view").text
    shot(browser, "4-model")

    browser.find_element(By.LINK_TEXT, "Queries").click()
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h2"), "Queries"))
    browser.find_element(By.LINK_TEXT, "Datasources").click()
    wait.until(ec.visibility_of_element_located((By.LINK_TEXT, "local"))).click()
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h3"), "Tables of local"))
    shot(browser, "5-datasources")


def test_the_queries_page_shows_progress_and_cancels_a_write_back(
    browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 20,000-row write-back against a slow real model: the Queries page shows its
    progress moving, and its Cancel button stops it between batches."""
    import json
    import sqlite3
    import threading

    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from datasources.embedded import embedded_schema_path

    async def predict(request: Request) -> Response:
        import asyncio

        rows = json.loads((await request.json())["df"])
        await asyncio.sleep(0.02)
        return JSONResponse({"prediction": [2 * r["id"] for r in rows]})

    monkeypatch.setattr(auth, "CACHE_S", 0.0)
    with sqlite3.connect(embedded_schema_path(tmp_path, "test_data")) as conn:
        conn.execute("CREATE TABLE src (id INTEGER)")
        conn.executemany("INSERT INTO src VALUES (?)", ((i,) for i in range(1, 20_001)))
    model = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
    app = create_app(home=tmp_path)
    with serving(model, "slow model") as model_url, serving(app, "gateway") as url:
        _, token = app.state.gateway.create_token("console-admin", "admin")
        headers = {"Authorization": f"Bearer {token}"}
        created = httpx.post(
            f"{url}/api/sql",
            headers=headers,
            json={"query": f"CREATE MODEL slow PREDICT y USING url.predict='{model_url}/predict',"
                  " format='ray_serve'"},
        )  # fmt: skip
        assert created.status_code == 200, created.text
        answer: dict[str, Any] = {}
        write = (
            "CREATE TABLE local.out AS SELECT t.id, p.y FROM local.test_data.src AS t "
            "JOIN slow AS p USING batch_size = 100, concurrency = 1"
        )

        def run() -> None:
            response = httpx.post(
                f"{url}/api/sql",
                headers=headers,
                json={"query": write, "query_id": "ui-write"},
                timeout=120,
            )
            answer["status"], answer["body"] = response.status_code, response.json()

        thread = threading.Thread(target=run)
        thread.start()
        try:
            wait = WebDriverWait(browser, 30)
            browser.get(url + "/#queries")
            wait.until(ec.visibility_of_element_located((By.ID, "token"))).send_keys(
                token, Keys.ENTER
            )
            browser.get(url + "/#queries")
            wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button.cancel")))
            first = float(
                browser.find_element(By.CSS_SELECTOR, "progress").get_attribute("value") or 0
            )

            def moved(_: Any) -> bool:  # the page refreshes every 2 s
                try:
                    value = float(
                        browser.find_element(By.CSS_SELECTOR, "progress").get_attribute("value")
                        or 0
                    )
                except Exception:  # noqa: BLE001 - replaced by a refresh meanwhile
                    return False
                return value > first

            wait.until(moved)
            shot(browser, "6-queries")

            def cancel(_: Any) -> bool:  # a refresh may replace the button under the click
                try:
                    browser.find_element(By.CSS_SELECTOR, "button.cancel").click()
                except Exception:  # noqa: BLE001 - stale: try the new one
                    return False
                return True

            wait.until(cancel)
        finally:
            thread.join(timeout=120)
        assert answer["status"] == 409, answer
        error = answer["body"]["error"]
        assert error["code"] == "QUERY_CANCELLED" and error["rows_written"] > 0
        progress = httpx.get(f"{url}/api/queries/ui-write", headers=headers).json()
        assert progress["status"] == "cancelled" and progress["rows_done"] < 20_000
        wait.until(ec.text_to_be_present_in_element((By.ID, "view"), "cancelled"))
        shot(browser, "7-cancelled")


def test_the_model_page_watches_training_then_shows_metrics_and_loss(
    browser: Any, ray_cluster: RayCluster, tmp_path: Path
) -> None:
    """A built-in classifier trained on Ray: its page shows the training progress moving,
    then the holdout metrics, the confusion matrix and the loss curve read from MLflow."""
    import json
    import sqlite3

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from datasources.embedded import embedded_schema_path

    tiny = build_tiny_bert(tmp_path / "tiny_bert")
    with sqlite3.connect(embedded_schema_path(tmp_path, "shop")) as conn:
        conn.execute("CREATE TABLE reviews (review TEXT, sentiment TEXT)")
        conn.executemany(
            "INSERT INTO reviews VALUES (?, ?)",
            sentiment_frame(200).itertuples(index=False, name=None),
        )
    # 160 training rows, 10 steps an epoch: 600 steps, long enough to watch (~10 s)
    hyper = json.dumps({**TINY_HYPERPARAMS, "num_train_epochs": 60})
    app = create_app(home=tmp_path)
    with serving(app, "gateway") as url:
        created = httpx.post(
            f"{url}/api/sql",
            json={"query": "CREATE MODEL sentiment FROM local "
                  "(SELECT review AS text, sentiment FROM shop.reviews) PREDICT sentiment "
                  f"USING task = 'text_classification', model_name = '{tiny}', "
                  f"hyperparams = '{hyper}', test_size = 0.2"},
        )  # fmt: skip
        assert created.status_code == 200, created.text
        wait = WebDriverWait(browser, 240)
        browser.get(url + "/#model/sentiment")

        def percent(_: Any) -> float | None:  # the page is rebuilt every 2 s
            try:
                bar = browser.find_element(By.CSS_SELECTOR, "progress.training")
                return float(bar.get_attribute("value") or 0)
            except Exception:  # noqa: BLE001 - not there (yet), or replaced meanwhile
                return None

        first = wait.until(lambda d: (p := percent(d)) is not None and p > 5.0 and p)
        wait.until(lambda d: (p := percent(d)) is not None and p > first)
        assert "step" in browser.find_element(By.CSS_SELECTOR, ".progress-line").text
        shot(browser, "8-training")

        # finished (trained, logged and deployed): no progress bar, no refresh any more, the
        # metrics and pictures of version 1
        wait.until(
            lambda d: (
                not d.find_elements(By.CSS_SELECTOR, "progress.training")
                and d.find_elements(By.CSS_SELECTOR, "svg.curve")
            )
        )
        assert "complete" in browser.find_element(By.ID, "view").text
        line = browser.find_element(By.CSS_SELECTOR, "svg.curve polyline")
        assert line.get_attribute("data-series") == "v1"
        # 600 steps are over artifacts.MAX_CURVE_POINTS (500): logged as means of 2 steps
        assert len(line.get_attribute("points").split()) == 300
        cells = browser.find_elements(By.CSS_SELECTOR, "table.confusion td.cm")
        assert len(cells) == 4 and sum(int(c.text) for c in cells) == 40  # the holdout
        heads = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "table.confusion th")]
        assert {"negative", "positive"} <= set(heads)
        view = browser.find_element(By.ID, "view").text
        assert "Holdout metrics" in view and "accuracy" in view
        browser.set_window_size(1280, 2000)  # the whole page in the screenshot
        shot(browser, "9-model-trained")
