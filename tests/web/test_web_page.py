"""The web page in a real headless Chromium against the real embedded stack."""

from __future__ import annotations

import time

import httpx

from service.params import MAX_FRAMES, MIN_FRAMES

# Long enough (a few seconds on the tiny model) for the page to show steps in between.
# Long enough (seconds, not one 400 ms poll) that the page shows progress between 0 and 100%.
WATCHED_JOB = {"frames": "31", "height": "256", "width": "256", "steps": "120"}
LONG_JOB = {"frames": "31", "height": "256", "width": "256", "steps": "200"}


def fill_job(page, prompt: str, frames: str, height: str, width: str, steps: str) -> None:
    page.get_by_label("Prompt", exact=True).fill(prompt)
    page.get_by_label("Frames", exact=True).fill(frames)
    page.get_by_label("Height (pixels)", exact=True).fill(height)
    page.get_by_label("Width (pixels)", exact=True).fill(width)
    page.get_by_label("Inference steps", exact=True).fill(steps)


def job_item(page, prompt: str):
    return page.locator("li.job", has_text=prompt)


def test_page_is_served_by_the_api_with_a_strict_policy(stack):
    page = httpx.get(stack.api_url + "/", follow_redirects=True)
    assert page.status_code == 200 and str(page.url).endswith("/web/")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="app.js"' in page.text and "http" not in page.text.split("<body>")[0]
    limits = httpx.get(stack.api_url + "/web/parameters.json").json()["parameters"]
    assert limits["num_frames"]["minimum"] == MIN_FRAMES
    assert limits["num_frames"]["maximum"] == MAX_FRAMES


def test_sign_in_by_keyboard_with_labelled_fields_and_a_refused_key(tab):
    page = tab.page
    tab.open()
    unlabeled = page.evaluate(
        """() => [...document.querySelectorAll('input, textarea, select')]
              .filter(el => el.labels.length === 0 && !el.getAttribute('aria-label'))
              .map(el => el.id)"""
    )
    assert unlabeled == []

    page.get_by_label("API key", exact=True).fill("not-a-key")
    page.keyboard.press("Enter")
    error = page.locator("#api-key-error")
    error.wait_for(state="visible")
    assert "refused" in error.inner_text()
    assert page.get_by_label("API key", exact=True).get_attribute("aria-invalid") == "true"
    tab.screenshot("1-refused-key")

    # Keyboard only from the top of the page: Tab to the key field, type, Enter.
    page.reload()
    for _ in range(5):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "api-key":
            break
    assert page.evaluate("document.activeElement.id") == "api-key"
    page.keyboard.type(tab.stack.api_key)
    page.keyboard.press("Enter")
    page.locator("#workspace").wait_for(state="visible")
    page.wait_for_function("() => document.activeElement.id === 'field-prompt'")
    # The hints come with the limits (parameters.json), which may land after the focus.
    page.wait_for_function("() => document.getElementById('hint-num_frames').textContent !== ''")
    hint = page.locator("#hint-num_frames").inner_text()
    assert f"{MIN_FRAMES}–{MAX_FRAMES}" in hint and "6k+1" in hint

    reached = []
    for _ in range(12):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.id"))
        if reached[-1] == "submit-job":
            break
    assert reached[-1] == "submit-job", reached
    assert "field-num_frames" in reached and "field-seed" in reached
    tab.screenshot("2-signed-in")
    assert tab.unexpected_console_errors(refused_requests=True) == []


def test_submit_watch_progress_to_100_percent_and_play_the_video(tab):
    page = tab.page
    tab.open()
    tab.sign_in()
    prompt = "a lighthouse at dusk, browser test"
    fill_job(page, prompt, **WATCHED_JOB)
    page.get_by_role("button", name="Generate").click()
    item = job_item(page, prompt)
    item.wait_for()

    progress = item.locator("progress")
    seen = set()
    deadline = time.monotonic() + 60
    while item.get_attribute("data-status") != "succeeded":
        assert time.monotonic() < deadline, item.inner_text()
        seen.add(int(float(progress.get_attribute("value") or 0)))
        if len(seen) == 3:
            tab.screenshot("1-progress")
        time.sleep(0.1)
    steps = int(WATCHED_JOB["steps"])
    assert any(0 < value < steps for value in seen), f"no intermediate progress seen: {seen}"
    assert item.locator(".progress-text").inner_text() == f"{steps}/{steps} steps (100%)"
    assert page.evaluate("el => [el.value, el.max]", progress.element_handle()) == [steps, steps]

    video = item.locator("video")
    video.wait_for(state="visible")
    page.wait_for_function(
        "v => v.readyState >= 2 && v.duration > 0", arg=video.element_handle(), timeout=15000
    )
    page.evaluate("v => v.play()", video.element_handle())
    page.wait_for_function("v => v.currentTime > 0", arg=video.element_handle(), timeout=15000)
    duration = page.evaluate("v => v.duration", video.element_handle())
    assert abs(duration - int(WATCHED_JOB["frames"]) / 30) < 0.1
    download = item.get_by_role("link", name="Download MP4")
    assert download.get_attribute("href").startswith("blob:")
    assert download.get_attribute("download").endswith(".mp4")
    tab.screenshot("2-playing")
    assert tab.unexpected_console_errors() == []


def test_validation_error_is_shown_next_to_its_field(tab):
    page = tab.page
    tab.open()
    tab.sign_in()
    fill_job(page, "eight frames is not 6k+1", frames="8", height="64", width="64", steps="2")
    page.get_by_role("button", name="Generate").click()
    error = page.locator("#error-num_frames")
    error.wait_for(state="visible")
    assert "6k+1" in error.inner_text()
    frames = page.get_by_label("Frames", exact=True)
    assert frames.get_attribute("aria-invalid") == "true"
    assert "error-num_frames" in frames.get_attribute("aria-describedby")
    page.wait_for_function("() => document.activeElement.id === 'field-num_frames'")
    assert page.locator("#error-prompt").inner_text() == ""
    assert job_item(page, "eight frames").count() == 0
    tab.screenshot("1-num-frames-error")

    frames.fill("13")
    page.get_by_role("button", name="Generate").click()
    job_item(page, "eight frames").wait_for()
    assert error.inner_text() == "" and frames.get_attribute("aria-invalid") is None
    assert tab.unexpected_console_errors(refused_requests=True) == []


def test_cancel_a_running_job(tab):
    page = tab.page
    tab.open()
    tab.sign_in()
    prompt = "a very long job to cancel"
    fill_job(page, prompt, **LONG_JOB)
    page.get_by_role("button", name="Generate").click()
    item = job_item(page, prompt)
    item.wait_for()
    page.wait_for_function(
        "li => li.dataset.status === 'running' && li.querySelector('progress').value >= 2",
        arg=item.element_handle(),
        timeout=30000,
    )
    tab.screenshot("1-running")
    cancel = item.get_by_role("button", name="Cancel job")
    cancel.focus()
    page.keyboard.press("Enter")
    page.wait_for_function(
        "li => li.dataset.status === 'canceled' || li.querySelector('.cancel').disabled",
        arg=item.element_handle(),
    )
    page.wait_for_function(
        "li => li.dataset.status === 'canceled'", arg=item.element_handle(), timeout=15000
    )
    steps = int(float(item.locator("progress").get_attribute("value")))
    assert steps < 200
    assert "canceled" in item.locator(".job-error").inner_text()
    assert not cancel.is_visible()
    tab.screenshot("2-canceled")
    assert tab.unexpected_console_errors() == []
