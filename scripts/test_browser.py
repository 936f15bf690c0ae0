#!/usr/bin/env python3
"""The playground page of `charlm serve` in a real browser: Debian's chromium, headless, driven
by Selenium through chromium-driver. Types a prompt, generates over a throttled link and checks
that the text appears in pieces as it streams, coloured by probability; switches to the neuron
view and checks that the text is coloured by a neuron's activation, then clicks a suggested
neuron; stops a long generation as its first characters appear. Saves screenshots.

    python3 scripts/test_browser.py http://127.0.0.1:PORT ARTIFACT_DIR
"""
import os
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait


# Chromium's own network throttling: a slow link (16 KB/s down), and back to none.
SLOW_LINK = {"offline": False, "latency": 20, "downloadThroughput": 16 * 1024, "uploadThroughput": -1}
FAST_LINK = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}


def main():
    base, artifacts = sys.argv[1], sys.argv[2]
    os.makedirs(artifacts, exist_ok=True)
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,1000"):
        options.add_argument(flag)
    options.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    failures = 0

    def check(ok, what):
        nonlocal failures
        print(("ok: " if ok else "FAIL: ") + what, flush=True)
        failures += 0 if ok else 1

    try:
        driver.get(base + "/")
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: "lstm" in d.find_element(By.ID, "model").text or "gru" in d.find_element(By.ID, "model").text)
        check(True, "the page loads and names the model: " + driver.find_element(By.ID, "model").text)
        prompt = driver.find_element(By.ID, "prompt")
        prompt.clear()
        prompt.send_keys("(lynx [")
        for field, value in (("max", "1000"), ("seed", "3")):
            box = driver.find_element(By.ID, field)
            box.clear()
            box.send_keys(value)
        # A slow connection (Chromium's own throttling, 16 KB/s down): a small model generates
        # 1000 characters within one frame here, so on a fast link the whole text may arrive
        # before the first screen update and streaming would go unseen. The test looks at the
        # page every 20 ms while it generates and counts the states with part of the text.
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.emulateNetworkConditions", SLOW_LINK)
        partial = set()

        def watch(d):
            shown, status = d.execute_script(
                "return [document.querySelectorAll('#out span[title]').length,"
                " document.getElementById('status').textContent]")
            if status.startswith("generating") and 0 < shown < 1000:
                partial.add(shown)
            return status.startswith(("done", "error"))

        started = time.monotonic()
        driver.find_element(By.ID, "generate").click()
        WebDriverWait(driver, 60, poll_frequency=0.02).until(watch)
        seconds = time.monotonic() - started
        driver.execute_cdp_cmd("Network.emulateNetworkConditions", FAST_LINK)
        status = driver.find_element(By.ID, "status").text
        check(status == "done: 1000 characters", f"generation finished ({status!r})")
        stats = driver.execute_script("return window.charlmStats")
        check(stats["reads"] >= 2 and len(partial) >= 2,
              f"the text arrived in pieces and was shown as it came (in {seconds:.1f} s: {stats['reads']} reads, "
              f"{len(partial)} states with part of the text, {sorted(partial)[:6]}..., "
              f"{stats['paints']} screen updates)")
        out = driver.execute_script("return document.getElementById('out').textContent")
        check(out.startswith("(lynx [") and len(out) == len("(lynx [") + 1000,
              f"the prompt and 1000 characters shown ({len(out)})")
        coloured = driver.execute_script(
            "return [...document.querySelectorAll('#out span')].filter(s => s.style.backgroundColor).length")
        check(coloured == 1000, f"each generated character coloured by its probability ({coloured})")
        driver.save_screenshot(os.path.join(artifacts, "serve-probability.png"))

        Select(driver.find_element(By.ID, "mode")).select_by_value("neuron")
        wait.until(lambda d: d.find_element(By.ID, "status").text.startswith("layer "))
        values = driver.execute_script(
            "return [...document.querySelectorAll('#out span')].map(s => s.style.backgroundColor)")
        check(len(values) == len("(lynx [") + 1000 and all(v.startswith("rgb") for v in values),
              f"neuron view: every character coloured by the activation ({len(values)})")
        check(len(set(values)) > 5, "the colours vary along the text")
        suggestions = driver.find_elements(By.CSS_SELECTOR, "#suggestions button")
        check(len(suggestions) >= 3, f"{len(suggestions)} neurons suggested for simple properties")
        depth = [b for b in suggestions if b.text.startswith("bracket depth")]
        label = (depth or suggestions)[0].text
        (depth or suggestions)[0].click()  # the list is rebuilt: read the label first
        wait.until(lambda d: "unit " + label.split(" unit ")[1].split(" ")[0] in d.find_element(By.ID, "status").text)
        check(True, "a suggestion shows its neuron: " + label)
        driver.save_screenshot(os.path.join(artifacts, "serve-neuron.png"))
        # Stop: a long generation can be stopped from the page.
        Select(driver.find_element(By.ID, "mode")).select_by_value("probability")
        box = driver.find_element(By.ID, "max")
        box.clear()
        box.send_keys("100000")
        # A user who clicks Stop as the first generated characters appear (in the page itself:
        # WebDriver polls too slowly), on the slow link, so that the 100,000 cannot all have come.
        driver.execute_cdp_cmd("Network.emulateNetworkConditions", SLOW_LINK)
        driver.execute_script("""
            const out = document.getElementById('out');
            document.getElementById('generate').click();
            const observer = new MutationObserver(() => {
              if ([...out.querySelectorAll('span')].some(s => s.title)) {
                observer.disconnect();
                document.getElementById('stop').click();
              }
            });
            observer.observe(out, {childList: true, subtree: true});""")
        wait.until(lambda d: d.find_element(By.ID, "status").text.startswith(("stopped", "done", "error")))
        driver.execute_cdp_cmd("Network.emulateNetworkConditions", FAST_LINK)
        status = driver.find_element(By.ID, "status").text
        stopped_after = int(status.split()[2]) if status.startswith("stopped after ") else -1
        check(0 < stopped_after < 100000, "Stop ends a generation under way: " + status)
        logs = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        check(not logs, f"no errors in the browser console {logs[:2]}")
    finally:
        driver.quit()
    print(f"{failures} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
