"""Leaderboard rendering: ranking, Markdown and HTML escaping, and the page in headless Chromium."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vsml_bench.leaderboard import render, schema

sys.path.insert(0, str(Path(__file__).parent))
from test_leaderboard_schema import make_doc

XSS = "<img src=x onerror=alert(1)>"
SCRIPT_XSS = "</td><script>document.title='pwned'</script>"
#: Set to 1 where a missing Chromium must fail the browser test rather than skip it (.ci/run).
REQUIRE_BROWSER = "VSML_BENCH_REQUIRE_BROWSER"


def chromium_or_skip() -> str:
    """The path of a headless-capable Chromium/Chrome; skip (or fail, where required) if none."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    if os.environ.get(REQUIRE_BROWSER) == "1":
        pytest.fail(
            f"{REQUIRE_BROWSER}=1 but no Chromium is on PATH: install it "
            "(apt-get install chromium), as .ci/run does"
        )
    pytest.skip(
        "no Chromium on PATH, so the page is not checked in a browser "
        f"(apt-get install chromium to run it; CI sets {REQUIRE_BROWSER}=1 to require it)"
    )


@pytest.fixture(scope="module")
def entries():
    return [
        make_doc(name="strong", p=0.8, seed=1),
        make_doc(name="strong twin", p=0.8, seed=2),
        make_doc(name=XSS, p=0.5, seed=3),
        make_doc(name=SCRIPT_XSS, p=0.3, seed=4, trained_on=()),
    ]


def test_ranking_ties_and_order(entries):
    rows = render.rank_entries(entries)["offline-v0"]
    assert [r.name for r in rows] == ["strong twin", "strong", XSS, SCRIPT_XSS] or [
        r.name for r in rows
    ] == ["strong", "strong twin", XSS, SCRIPT_XSS]
    assert [r.rank for r in rows] == [1, 1, 3, 4]  # the two p=0.8 entries are tied
    assert rows[1].p_better_than_next > 0.9  # strong vs the p=0.5 entry
    assert 0.3 < rows[0].p_better_than_next < 0.7  # the tie


def test_markdown_escapes_user_strings(entries):
    md = render.render_markdown(entries)
    assert "<img" not in md and "<script" not in md
    assert "&lt;img src=x onerror=alert\\(1\\)&gt;" in md
    table_rows = [line for line in md.splitlines() if line.startswith("| ")]
    # header + 4 entries, every row with the same number of cells (no | injected).
    assert len(table_rows) == 5
    assert len({row.count(" | ") for row in table_rows}) == 1


def test_like_is_ranked_with_like():
    """Complete zero-shot entries first; incomplete ones after them; non-zero-shot apart."""
    board = [
        make_doc(name="complete", p=0.5, seed=1, suite_id="ood-v0"),
        make_doc(name="skips kmnist", p=0.9, seed=2, suite_id="ood-v0", missing=("kmnist",)),
        make_doc(name="skips more", p=0.95, seed=3, suite_id="ood-v0", missing=("kmnist", "svhn")),
        make_doc(name="skips too", p=0.6, seed=4, suite_id="ood-v0", missing=("kmnist",)),
        make_doc(name="saw mnist", p=0.99, seed=5, suite_id="ood-v0", trained_on=("mnist",)),
    ]
    rows = render.rank_entries(board)["ood-v0"]
    assert [(r.name, r.rank) for r in rows] == [
        ("complete", 1),
        ("skips kmnist", 1),
        ("skips too", 2),
        ("skips more", 1),
        ("saw mnist", 1),
    ]
    assert [r.complete for r in rows] == [True, False, False, False, True]
    assert [r.zero_shot for r in rows] == [True, True, True, True, False]
    # P(>next) compares within a group only.
    assert rows[0].p_better_than_next is None and rows[1].p_better_than_next > 0.9
    assert rows[2].p_better_than_next is None
    md = render.render_markdown(board)
    headings = [line for line in md.splitlines() if line.startswith("### ")]
    assert headings == [
        "### zero\\-shot, all 11 tasks",
        "### zero\\-shot, incomplete: 10 of 11 tasks \\(not run: kmnist\\)",
        "### zero\\-shot, incomplete: 9 of 11 tasks \\(not run: kmnist, svhn\\)",
        "### not zero\\-shot \\(meta\\-trained on mnist\\), all 11 tasks",
    ]
    assert "*0.9" in md  # the in-distribution mnist cell of "saw mnist" in italics
    page = render.render_html(board)
    assert page.count('<table class="board" data-suite="ood-v0">') == 4


def test_a_lone_surrogate_cannot_break_rendering(tmp_path, monkeypatch):
    """Validation refuses it; should one reach the renderer, both outputs are still written."""
    from vsml_bench.leaderboard import cli_render

    doc = make_doc(name="x\ud800y")
    md, page = render.render_markdown([doc]), render.render_html([doc])
    assert "x\ufffdy" in md and "x\ufffdy" in page
    results = tmp_path / "results"
    results.mkdir()
    monkeypatch.setattr(schema, "load_entries", lambda root: ([doc], []))
    n, _ = cli_render.write_leaderboard(results, tmp_path / "README.md", tmp_path / "i.html")
    assert n == 1 and (tmp_path / "README.md").exists() and (tmp_path / "i.html").exists()


def test_leaderboard_is_written_all_or_nothing(tmp_path, monkeypatch):
    from vsml_bench.leaderboard import cli_render

    results = tmp_path / "results"
    path = tmp_path / "in.json"
    path.write_text(schema.dump_results(make_doc()))
    schema.submit(path, results)
    md, page = tmp_path / "README.md", tmp_path / "site" / "index.html"
    cli_render.write_leaderboard(results, md, page)
    before = (md.read_bytes(), page.read_bytes())
    path.write_text(schema.dump_results(make_doc(name="second")))
    schema.submit(path, results)  # the next render differs, so a partial write would show

    def broken(*args, **kwargs):
        raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")

    monkeypatch.setattr(render, "render_html", broken)
    with pytest.raises(UnicodeEncodeError):
        cli_render.write_leaderboard(results, md, page)
    assert (md.read_bytes(), page.read_bytes()) == before
    monkeypatch.undo()
    page.unlink()
    page.mkdir()  # a folder where the page goes: refused, and the Markdown is not replaced
    (results / "history").mkdir()
    with pytest.raises(cli_render.UserError, match="is a folder"):
        cli_render.write_leaderboard(results, md, page)
    assert md.read_bytes() == before[0]
    assert sorted(p.name for p in md.parent.iterdir()) == [
        "README.md",
        "in.json",
        "results",
        "site",
    ]


def test_html_escapes_user_strings(entries):
    page = render.render_html(entries)
    assert XSS not in page and "<script>document" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert page.count("<script>") == 1
    assert "Content-Security-Policy" in page and "http" not in page.split("</head>")[1]


def test_empty_leaderboard_renders():
    assert "No entries yet" in render.render_markdown([])
    assert "No entries yet" in render.render_html([])


def test_browser_test_skips_without_chromium_unless_required(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv(REQUIRE_BROWSER, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no Chromium on PATH"):
        chromium_or_skip()
    monkeypatch.setenv(REQUIRE_BROWSER, "1")
    with pytest.raises(pytest.fail.Exception, match=f"{REQUIRE_BROWSER}=1 but no Chromium"):
        chromium_or_skip()
    monkeypatch.setattr(shutil, "which", lambda name: f"/opt/bin/{name}")
    assert chromium_or_skip() == "/opt/bin/chromium"


def _dump_dom(chromium: str, tmp_path: Path, html_path: Path) -> str:
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=2000",
            "--dump-dom",
            html_path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_page_in_headless_chromium(tmp_path, entries):
    chromium = chromium_or_skip()
    # Names like these no longer pass validation (identity rules); the page must escape them
    # anyway, as a second line of defence, so it is rendered from the entries directly.
    html_path = tmp_path / "site" / "index.html"
    html_path.parent.mkdir()
    html_path.write_text(render.render_html(entries))
    (tmp_path / "README.md").write_text(render.render_markdown(entries))
    dom = _dump_dom(chromium, tmp_path, html_path)
    # Our own script ran (the CSP allows it by hash) ...
    assert 'data-script="ran"' in dom
    # ... the injected ones did not: no <img> element, no extra <script>, title untouched.
    assert "<img" not in dom
    assert dom.count("<script") == 1
    assert "<title>vsml-bench leaderboard</title>" in dom and "pwned" not in dom.split("<body")[0]
    names = re.findall(r'<td class="name learner"[^>]*>(.*?)</td>', dom)
    assert sorted(names) == sorted(
        [
            "strong",
            "strong twin",
            "&lt;img src=x onerror=alert(1)&gt;",
            "&lt;/td&gt;&lt;script&gt;document.title='pwned'&lt;/script&gt;",
        ]
    )
    assert dom.count("<polyline") == 4 * 6  # a learning curve per learner and task
    assert (tmp_path / "README.md").read_text().count("\n| ") == 5
