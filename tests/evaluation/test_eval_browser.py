"""The HTML report in a real headless Chromium: it renders, every image loads, the console stays quiet.

Chromium comes from the distribution's packages; the session fixture installs it once when it is
missing (CI runs as root with apt reachable). A probe script, injected into a *copy* of the
report, records every image's load state, error events and console calls into the DOM, which
``--dump-dom`` returns; Chromium's own log (``--enable-logging=stderr``) lists every console
message besides. A deliberately broken copy checks that the probe does see a broken image.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fadtq.evaluation import write_report

PROBE = """<script>
window.__errors = [];
addEventListener('error', e => __errors.push('error: ' + (e.message || (e.target && e.target.outerHTML || '').slice(0, 80))), true);
addEventListener('unhandledrejection', e => __errors.push('rejection: ' + e.reason));
addEventListener('securitypolicyviolation', e => __errors.push('csp: ' + e.violatedDirective));
for (const level of ['error', 'warn']) { const real = console[level];
  console[level] = (...a) => { __errors.push(level + ': ' + a.join(' ')); real(...a); }; }
addEventListener('load', () => {
  const result = {errors: __errors, tables: document.querySelectorAll('table').length,
    svgs: [...document.querySelectorAll('svg')].filter(s => s.getBoundingClientRect().width > 0).length,
    height: document.body.scrollHeight,
    images: [...document.images].map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth}))};
  const out = document.createElement('pre'); out.id = 'probe'; out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>"""


def _apt_get(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["apt-get", *args], capture_output=True, text=True, timeout=900,
                          env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed on first use (apt-get update only when the install needs it)."""
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        done = _apt_get("install", "-y", "--no-install-recommends", "chromium")
        if done.returncode != 0:
            _apt_get("update")
            done = _apt_get("install", "-y", "--no-install-recommends", "chromium")
        assert done.returncode == 0, f"apt-get install chromium failed: {done.stderr[-500:]}"
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is not on PATH after installing it"
    return found


def headless_args(chromium: str, profile: Path) -> list[str]:
    """Flags for a quiet, offline, one-shot headless Chromium (root in containers needs --no-sandbox)."""
    return [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
            f"--user-data-dir={profile}"]


def probe(chromium: str, page: Path, profile: Path) -> tuple[dict, list[str]]:
    """Load ``page`` with the probe injected; returns the probe's result and Chromium's console lines."""
    probed = page.with_name(page.stem + ".probed.html")
    probed.write_text(page.read_text().replace("<head>", "<head>" + PROBE, 1))
    done = subprocess.run([*headless_args(chromium, profile), "--enable-logging=stderr", "--v=0",
                           "--virtual-time-budget=10000", "--dump-dom", probed.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-800:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.DOTALL)
    assert found, f"the probe never ran: {done.stdout[-300:]}"
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return json.loads(html.unescape(found.group(1))), console


def broken_images(result: dict) -> list[str]:
    return [i["alt"] for i in result["images"] if not (i["complete"] and i["width"] > 0)]


@pytest.fixture(scope="module")
def report(model_eval: Path, demo_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report([model_eval, demo_run], tmp_path_factory.mktemp("browser") / "report.html")


def test_report_renders_with_every_image_and_a_quiet_console(chromium, report, tmp_path):
    result, console = probe(chromium, report, tmp_path / "profile")
    assert result["errors"] == [] and console == []
    assert len(result["images"]) == 12 and broken_images(result) == []
    assert result["tables"] >= 5 and result["svgs"] == 10 and result["height"] > 2000


def test_the_probe_sees_a_broken_image_and_console_errors(chromium, report, tmp_path):
    page = tmp_path / "broken.html"
    broken = re.sub(r'src="data:image/png;base64,[^"]{20}', 'src="data:image/png;base64,AAAA', report.read_text(), count=1)
    page.write_text(broken.replace("</body>", "<script>console.error('planted')</script></body>"))
    result, console = probe(chromium, page, tmp_path / "profile")
    assert len(broken_images(result)) == 1 and broken_images(result)[0].startswith("reference image")
    assert "error: planted" in result["errors"] and any("planted" in line for line in console)
