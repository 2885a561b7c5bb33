"""Executed notebooks exported to one self-contained HTML file each, opened in headless Chromium.

Chromium is required, not optional: ``make test`` installs it (``make chromium``); without it these
tests fail with that advice. The browser runs with name resolution disabled, so a page that
needed the network would show it.
"""
from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup

from cdemi.tools.html import export_folder, external_references, main, notebook_to_html

REPORTS = Path(__file__).resolve().parents[2] / "reports"
# executed reports with a figure and/or a table, most useful first
REAL_REPORTS = ("condensed_summary.ipynb", "claims.ipynb", "guidance_summary.ipynb")

MARKDOWN = r"""# Distillation loss

The student matches the teacher's softened outputs, $\tau^2 \, \mathrm{KL}(p_T \| p_S)$, with \(\tau = 4\):

$$\mathcal{L} = \frac{a}{b} + \sum_{i=1}^{n} x_i^2$$
"""

# Appended to a copy of a page: after load, measures what the browser laid out and writes it as JSON.
PROBE = """<script>
window.addEventListener("load", () => {
  const box = (e) => { const r = e.getBoundingClientRect(); return {w: r.width, h: r.height, top: r.top}; };
  const out = {
    images: [...document.images].map((i) => ({complete: i.complete, natural: i.naturalWidth,
                                               data: i.src.startsWith("data:"), ...box(i)})),
    tables: [...document.querySelectorAll("table")].map((t) => ({rows: t.rows.length, ...box(t)})),
    maths: [...document.querySelectorAll("math")].map((m) => ({css: getComputedStyle(m).display, ...box(m)})),
    fracs: [...document.querySelectorAll("mfrac")].map((f) => [box(f.children[0]).top, box(f.children[1]).top]),
    fetched: performance.getEntriesByType("resource").map((r) => r.name),
  };
  const pre = document.createElement("pre");
  pre.id = "render-probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("headless Chromium not found: run `make chromium` (`make test` does it first)", pytrace=False)
    return exe


def _browse(chromium: str, page: Path, *extra: str) -> str:
    """The DOM of ``page`` after headless Chromium has loaded it (offline: every host unresolvable)."""
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={page.parent / '.chromium-profile'}",
           "--window-size=1280,2000", *extra, "--dump-dom", page.resolve().as_uri()]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "</html>" in run.stdout, f"no DOM dumped: {run.stderr[-2000:]}"
    return run.stdout


def _probe(chromium: str, page: Path) -> dict:
    """Layout measurements of ``page`` in Chromium (see PROBE); the page itself is not modified."""
    probed = page.with_name(page.stem + ".probe.html")
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = _browse(chromium, probed, "--virtual-time-budget=5000")
    pre = BeautifulSoup(dom, "html.parser").find("pre", id="render-probe")
    assert pre is not None, "the probe script did not run"
    return json.loads(pre.get_text())


def _assert_self_contained(html: str) -> None:
    assert external_references(html) == []
    soup = BeautifulSoup(html, "html.parser")
    for tag, attr in (("script", "src"), ("link", "href"), ("img", "src"), ("iframe", "src")):
        for el in soup.find_all(tag):
            assert not re.match(r"\s*(https?:)?//", el.get(attr) or ""), f"<{tag} {attr}={el.get(attr)!r}>"
    assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", " ".join(s.get_text() for s in soup.find_all("style")))
    assert "mathjax" not in html.lower()


def _png_figure() -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [3, 1, 2])
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """An executed-looking notebook: maths in markdown, a PNG figure, a pandas table; exported."""
    import pandas as pd

    folder = tmp_path_factory.mktemp("html_export")
    table = pd.DataFrame({"host": ["ResNet-18", "MobileNetV2"], "accuracy": [91.2, 89.7]})
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(MARKDOWN),
        nbformat.v4.new_code_cell("plot(); table", execution_count=1, outputs=[
            nbformat.v4.new_output("display_data", data={"image/png": _png_figure(), "text/plain": "<Figure>"}),
            nbformat.v4.new_output("execute_result", execution_count=1,
                                   data={"text/html": table.to_html(), "text/plain": table.to_string()}),
        ]),
    ]
    nbformat.validate(nb)
    nbformat.write(nb, folder / "sample.ipynb")
    notebook_to_html(folder / "sample.ipynb", folder / "sample.html")
    return folder / "sample.html"


def test_sample_page_is_self_contained(sample):
    html = sample.read_text(encoding="utf-8")
    _assert_self_contained(html)
    assert "\\frac" not in html and "$$" not in html  # maths converted when the page was built
    assert not list(sample.parent.glob(".sample.html.*"))  # no temporary file left behind


def test_external_references_finds_what_a_browser_would_fetch():
    page = ('<link rel="stylesheet" href="https://cdn.example/x.css"><script src="//cdn.example/a.js"></script>'
            '<img src="fig.png"><img src="data:image/png;base64,AAAA"><a href="https://example.org">link</a>'
            '<style>@import "https://fonts.example/f.css"; p { background: url(data:image/png;base64,AA) }</style>')
    assert external_references(page) == ["https://cdn.example/x.css", "//cdn.example/a.js", "fig.png",
                                         "https://fonts.example/f.css"]


def test_sample_page_in_chromium_has_figure_table_and_maths(chromium, sample):
    soup = BeautifulSoup(_browse(chromium, sample), "html.parser")
    imgs = [i for i in soup.find_all("img") if i.get("src", "").startswith("data:image/png;base64,")]
    assert len(imgs) == 1
    tables = soup.find_all("table")
    assert len(tables) == 1 and "MobileNetV2" in tables[0].get_text()
    maths = soup.find_all("math")
    assert len(maths) == 3  # two inline, one display
    assert [m.get("display") for m in maths].count("block") == 1
    assert soup.find("mfrac") is not None and soup.find("munderover") is not None


def test_sample_page_renders_in_chromium(chromium, sample):
    probe = _probe(chromium, sample)
    assert probe["fetched"] == []
    [img] = probe["images"]
    assert img["data"] and img["complete"] and img["natural"] == 180 and img["w"] > 0  # 3 in x 60 dpi
    [table] = probe["tables"]
    assert table["rows"] == 3 and table["h"] > 0 and table["w"] > 0
    assert len(probe["maths"]) == 3
    for m in probe["maths"]:
        assert "math" in m["css"] and m["w"] > 0 and m["h"] > 0  # laid out as MathML, not as unknown tags
    [(numerator_top, denominator_top)] = probe["fracs"]
    assert numerator_top < denominator_top  # the fraction is stacked, as only a MathML layout does


MD_TABLE = re.compile(r"^\|.*\|[ \t]*\n\|[ \t]*:?-{3,}", re.MULTILINE)  # a pipe table's header + rule


def _shown(data: dict) -> tuple[str, str]:
    """The MIME type an HTML page shows for an output (nbconvert's priority order) and its text."""
    for mime in ("text/html", "text/markdown", "image/svg+xml", "text/latex", "image/png", "image/jpeg", "text/plain"):
        if mime in data:
            return mime, data[mime] if isinstance(data[mime], str) else ""
    return "", ""


def _real_report() -> Path:
    for name in REAL_REPORTS:
        path = REPORTS / name
        if path.exists():
            return path
    pytest.fail(f"none of the executed reports {REAL_REPORTS} is in {REPORTS}", pytrace=False)


def test_real_report_exports_and_renders(chromium, tmp_path):
    src = _real_report()
    nb = nbformat.read(src, as_version=4)
    shown = [_shown(o.get("data", {})) for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    n_png = sum(mime == "image/png" for mime, _ in shown)
    n_tables = sum(text.count("<table") if mime == "text/html" else len(MD_TABLE.findall(text))
                   for mime, text in shown if mime in ("text/html", "text/markdown"))
    assert n_png + n_tables > 0, f"{src.name} has neither a figure nor a table"

    page = tmp_path / src.with_suffix(".html").name
    html = notebook_to_html(src, page)
    _assert_self_contained(html)
    soup = BeautifulSoup(_browse(chromium, page), "html.parser")
    assert len([i for i in soup.find_all("img") if i.get("src", "").startswith("data:image/png")]) == n_png
    assert len(soup.find_all("table")) == n_tables

    probe = _probe(chromium, page)
    assert probe["fetched"] == []
    assert len(probe["images"]) == n_png and all(i["complete"] and i["natural"] > 0 and i["w"] > 0 for i in probe["images"])
    assert len(probe["tables"]) == n_tables and all(t["rows"] > 1 and t["h"] > 0 for t in probe["tables"])


def _input_areas(soup) -> list:
    """The code cells' sources a page shows (nbconvert's lab template: ``jp-InputArea`` of a ``jp-CodeCell``)."""
    return [c.find(class_="jp-InputArea") for c in soup.find_all(class_="jp-CodeCell") if c.find(class_="jp-InputArea")]


def test_folder_export_writes_reader_pages_code_pages_and_an_index(chromium, tmp_path, sample):
    src, dest = tmp_path / "reports", tmp_path / "reports" / "html"
    (src / "train").mkdir(parents=True)
    shutil.copy(sample.with_suffix(".ipynb"), src / "summary.ipynb")
    shutil.copy(sample.with_suffix(".ipynb"), src / "train" / "teacher.ipynb")
    main([str(src), str(dest)])
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*.html")) == [
        "code/summary.html", "code/train/teacher.html", "index.html", "summary.html", "train/teacher.html"]
    assert export_folder(src, dest) == [dest / "summary.html", dest / "train" / "teacher.html", dest / "index.html"]

    index = BeautifulSoup(_browse(chromium, dest / "index.html"), "html.parser")
    _assert_self_contained((dest / "index.html").read_text(encoding="utf-8"))
    links = [a["href"] for a in index.find_all("a")]
    assert links == ["summary.html", "code/summary.html", "train/teacher.html", "code/train/teacher.html"]
    assert all((dest / href).is_file() for href in links)
    assert [a.get_text() for a in index.find_all("a")][0] == "Distillation loss"  # the report's own heading

    for reader, code in ((dest / "summary.html", "code/summary.html"), (dest / "train/teacher.html",
                                                                        "../code/train/teacher.html")):
        html = reader.read_text(encoding="utf-8")
        _assert_self_contained(html)
        shown = BeautifulSoup(_browse(chromium, reader), "html.parser")
        assert _input_areas(shown) == [] and "plot(); table" not in shown.get_text()  # no code cell shows
        assert shown.find("img") is not None and shown.find("table") is not None and shown.find("math") is not None
        assert shown.find("a", string="the same report with its code")["href"] == code
        assert (reader.parent / code).is_file()
    with_code = BeautifulSoup(_browse(chromium, dest / "code" / "summary.html"), "html.parser")
    assert len(_input_areas(with_code)) == 1 and "plot(); table" in with_code.get_text()


def test_every_maths_form_becomes_mathml(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("inline $a$, \\(b\\), \\\\(c\\\\); display \\[d\\]\n\n\\begin{align}e\\end{align}\n\n"
                                      "not maths: \\$5, `$f$`"),
        nbformat.v4.new_code_cell("x", execution_count=1, outputs=[nbformat.v4.new_output(
            "execute_result", execution_count=1, data={"text/latex": "$$g^2$$", "text/plain": "g**2"})]),
    ]
    nbformat.write(nb, tmp_path / "forms.ipynb")
    soup = BeautifulSoup(notebook_to_html(tmp_path / "forms.ipynb"), "html.parser")
    maths = soup.find_all("math")
    assert [m.get("display") for m in maths] == ["inline"] * 3 + ["block"] * 3
    assert [m.get_text() for m in maths] == ["a", "b", "c", "d", "e(1)", "g2"]
    assert "$5" in soup.get_text() and soup.find("code", string="$f$") is not None
