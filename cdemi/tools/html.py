"""Executed notebooks as self-contained HTML pages that render offline.

Guarantees of every page written here:

- **one file**: figures are the notebook's own base64 PNG/JPEG outputs, written as ``data:`` URIs;
  images a markdown cell links from a local file or an attachment are embedded the same way;
  the notebook stylesheet is inlined in ``<style>`` elements;
- **no network**: the page loads no script, stylesheet, font, image or frame from any address
  (neither remote nor relative). The MathJax, RequireJS, Mermaid and widget scripts nbconvert
  would fetch from a CDN are left out, and every page is checked with
  :func:`external_references` before it is written (a remaining reference is an error, not a
  warning). Plain links (``<a href>``) are kept: following one is the reader's choice;
- **maths without JavaScript**: LaTeX in markdown cells and ``text/markdown`` outputs
  (``$...$``, ``$$...$$``, ``\\(...\\)``, ``\\[...\\]``, ``\\begin{env}...\\end{env}``) and
  ``text/latex`` outputs is converted to MathML when the page is built; browsers draw MathML
  natively. TeX the converter cannot read is shown verbatim in a ``<code>`` element.

For readers, :func:`export_folder` writes each report twice: without its code cells (tables, figures
and text first; the page links its twin) and with them (under ``code/``), plus an ``index.html``
linking every report.  Command line (the Makefile's ``html`` target)::

    python -m cdemi.tools.html reports reports/html
"""
from __future__ import annotations

import argparse
import copy
import re
import warnings
from html import escape
from pathlib import Path

import nbformat
from bs4 import BeautifulSoup
from jinja2 import DictLoader, pass_context
from latex2mathml.converter import convert as _latex_to_mathml
from nbconvert.exporters import HTMLExporter
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath, MathBlockParser, MathInlineParser

from ..artifacts import atomic_write_bytes

DEFAULT_DEST = Path("reports") / "html"

# nbconvert's "lab" page without the blocks that fetch scripts from a CDN.
_OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}
<style type="text/css">
  code.tex-unrendered { white-space: pre-wrap; }
</style>
{%- endblock extra_css -%}
"""

# attributes that make a browser fetch something; <a href> only navigates and is not listed
_FETCH_ATTRS = ("src", "poster", "data", "background")
_HREF_FETCH_TAGS = {"link", "use", "image", "feimage", "script"}
_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)|@import\s+['"]([^'"]+)""", re.IGNORECASE)


def tex_to_mathml(tex: str, display: str = "inline") -> str:
    """MathML for one piece of TeX (without its ``$`` delimiters).

    :param tex: the maths source, e.g. ``r"\\tau^2 \\mathrm{KL}(p_T \\| p_S)"``.
    :param display: ``"inline"`` or ``"block"`` (a centred line of its own).
    :returns: one ``<math>`` element; TeX the converter rejects comes back verbatim, HTML-escaped,
        in ``<code class="tex-unrendered">`` (with a warning).
    """
    try:
        return _latex_to_mathml(tex.strip(), display=display)
    except Exception as err:  # the converter raises assorted errors on malformed TeX
        warnings.warn(f"TeX not converted to MathML ({type(err).__name__}: {err}): {tex!r}", stacklevel=2)
        return f'<code class="tex-unrendered">{escape(tex)}</code>'


class _MathMLRenderer(IPythonRenderer):
    """nbconvert's markdown renderer with the maths drawn as MathML instead of left for MathJax."""

    def inline_math(self, body: str) -> str:
        return tex_to_mathml(body, "inline")

    def block_math(self, body: str) -> str:
        return tex_to_mathml(body, "block")

    def latex_environment(self, name: str, body: str) -> str:
        return tex_to_mathml(f"\\begin{{{name}}}{body}\\end{{{name}}}", "block")


# nbconvert reads ``\\(...\\)`` and ``\\[...\\]`` (two backslashes) as maths; Jupyter's own markdown
# renderer also reads the single-backslash ``\(...\)`` and ``\[...\]``. Both are maths here.
_INLINE_LATEX = r"(?s:(?<!\\)\\{1,2}\((?P<math_inline_latex>.*?)(?<!\\)\\{1,2}\))"
_DISPLAY_LATEX = r"(?s:(?<!\\)\\{1,2}\[(?P<math_block_latex>.*?)(?<!\\)\\{1,2}\])"


class _InlineParser(MathInlineParser):
    SPECIFICATION = {**MathInlineParser.SPECIFICATION,
                     "inline_math_latex": _INLINE_LATEX, "block_math_latex": _DISPLAY_LATEX}


class _BlockParser(MathBlockParser):
    # a display formula is one paragraph, so blank lines inside it do not split it
    SPECIFICATION = {**MathBlockParser.SPECIFICATION, "multiline_math": (
        r"(?s:(?<!\\)[$]{2}.*?(?<!\\)[$]{2}"
        r"|(?<!\\)\\{1,2}\[.*?(?<!\\)\\{1,2}\]"
        r"|\\begin\{(?P<math_env_name>[a-z]*\*?)\}.*?\\end\{(?P=math_env_name)\})")}


def _markdown_to_html(source: str, renderer: IPythonRenderer) -> str:
    """Markdown with maths to HTML through ``renderer`` (nbconvert's parser, both ``\\(`` forms)."""
    return MarkdownWithMath(renderer=renderer, block=_BlockParser(), inline=_InlineParser(hard_wrap=False)).render(source)


class OfflineHTMLExporter(HTMLExporter):
    """nbconvert's lab-style HTML exporter: embedded images, MathML maths, no CDN scripts."""

    def __init__(self, **kw):
        kw.setdefault("template_name", "lab")
        kw.setdefault("template_file", "cdemi_offline.html.j2")
        kw.setdefault("embed_images", True)
        kw.setdefault("extra_loaders", [DictLoader({"cdemi_offline.html.j2": _OFFLINE_TEMPLATE})])
        super().__init__(**kw)

    @pass_context
    def markdown2html(self, context, source):
        """The markdown filter of :class:`HTMLExporter` with :class:`_MathMLRenderer`."""
        cell = context.get("cell", {})
        path = context.get("resources", {}).get("metadata", {}).get("path", "")
        renderer = _MathMLRenderer(
            escape=False,
            attachments=cell.get("attachments", {}),
            embed_images=self.embed_images,
            path=path,
            anchor_link_text=self.anchor_link_text,
            exclude_anchor_links=self.exclude_anchor_links,
            **self.lexer_options,
        )
        return _markdown_to_html(source, renderer)


def _latex_outputs_as_mathml(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` where every ``text/latex`` output without HTML gains MathML ``text/html``."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "text/latex" in data and "text/html" not in data:
                data["text/html"] = _markdown_to_html(data["text/latex"], _MathMLRenderer(escape=False))
    return nb


def external_references(html: str) -> list[str]:
    """Everything in ``html`` a browser would fetch that is not inside the page itself.

    Looks at ``src``/``srcset``/``poster``/``data`` attributes on any element, ``href`` on
    ``<link>``, ``<script>`` and SVG ``<use>``/``<image>``, and ``url(...)``/``@import`` in
    ``<style>`` elements and ``style`` attributes. ``data:`` URIs and ``#fragment`` references are
    in the page and are not reported.

    :returns: the offending references in document order (empty for a self-contained page).
    """
    soup = BeautifulSoup(html, "html.parser")
    refs: list[str] = []
    for tag in soup.find_all(True):
        values = [tag.get(a) for a in _FETCH_ATTRS]
        values += [c.split()[0] for c in re.split(r",\s+", (tag.get("srcset") or "").strip()) if c]
        if tag.name.lower() in _HREF_FETCH_TAGS:
            values += [tag.get("href"), tag.get("xlink:href")]
        css = (tag.get("style") or "") + (tag.get_text() if tag.name == "style" else "")
        values += [m[0] or m[1] for m in _CSS_URL.findall(css)]
        refs += [v.strip() for v in values if isinstance(v, str) and v.strip() and not v.strip().startswith(("data:", "#"))]
    return refs


def notebook_to_html(notebook: str | Path, dest: str | Path | None = None, exclude_input: bool = False) -> str:
    """Convert one executed notebook into one self-contained, offline HTML page.

    :param notebook: the ``.ipynb`` file (nbformat 4); its outputs are used as they are (nothing is run).
    :param dest: where to write the page (atomically: temporary file, then rename); ``None`` writes
        nothing.
    :param exclude_input: leave the code cells' sources out (outputs and markdown only). Default: keep them.
    :returns: the page, UTF-8 text. See the module docstring for what it guarantees.
    :raises ValueError: the page would still fetch something (e.g. a markdown image linked by URL).
    """
    notebook = Path(notebook)
    nb = _latex_outputs_as_mathml(nbformat.read(notebook, as_version=4))
    exporter = OfflineHTMLExporter(exclude_input=exclude_input)
    resources = {"metadata": {"name": notebook.stem, "path": str(notebook.parent)}}
    html, _ = exporter.from_notebook_node(nb, resources=resources)
    refs = external_references(html)
    if refs:
        raise ValueError(f"{notebook}: the HTML page would fetch {len(refs)} outside resource(s): {refs[:5]}")
    if dest is not None:
        atomic_write_bytes(dest, html.encode("utf-8"))
    return html


CODE_DIR = "code"  # the pages with their code cells, under the destination folder


def report_title(notebook: str | Path) -> str:
    """The first heading of the notebook's first markdown cell (``# Claims report: ...``), else its file name."""
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#+\s+(.+)$", cell.source, flags=re.M)
            if m:
                return m.group(1).strip()
    return Path(notebook).stem


def _link_to_code(html: str, href: str) -> str:
    """``html`` with a line under its first heading (or at the top of the body) linking its code page."""
    soup = BeautifulSoup(html, "html.parser")
    note = soup.new_tag("p", attrs={"class": "cdemi-code-link"})
    note.append("Code cells are hidden on this page: ")
    link = soup.new_tag("a", href=href)
    link.string = "the same report with its code"
    note.append(link)
    note.append(".")
    heading = soup.find(["h1", "h2"])
    if heading is not None:
        heading.insert_after(note)
    else:
        soup.body.insert(0, note)
    return str(soup)


def _index_page(entries: list[tuple[str, str, str, str]]) -> str:
    """The index: one row per report (folder, title, reader page, code page), grouped by folder."""
    rows, folder = [], None
    for group, title, reader, code in entries:
        if group != folder:
            folder = group
            rows.append(f'<tr><th colspan="2">{escape(group or "tables, figures and summaries")}</th></tr>')
        rows.append(f'<tr><td><a href="{escape(reader)}">{escape(title)}</a></td>'
                    f'<td><a href="{escape(code)}">with code</a></td></tr>')
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>cdemi reports</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}th{text-align:left;padding-top:1em}"
            "td{padding:0.15em 1em 0.15em 0}</style></head><body><h1>cdemi reports</h1>"
            "<p>Every executed notebook of the pipeline as a page of its tables, figures and text; each also with its "
            "code.</p><table>" + "".join(rows) + "</table></body></html>\n")


def export_folder(src: str | Path = "reports", dest: str | Path = DEFAULT_DEST) -> list[Path]:
    """Export every notebook under ``src``: a reader page without code cells per notebook, a second page
    with them, and an index linking all of them.

    ``src/a/b.ipynb`` becomes ``dest/a/b.html`` (code cells hidden, a link to the code page under its
    first heading) and ``dest/code/a/b.html`` (as executed, code included); ``dest/index.html`` lists
    every report by its title (:func:`report_title`), grouped by folder.  Every page is written
    atomically and is self-contained and offline (see the module docstring).  Checkpoint folders
    (``.ipynb_checkpoints``) and anything already under ``dest`` are skipped.

    :param src: the folder of executed notebooks. Default ``reports``.
    :param dest: the output folder. Default ``reports/html``.
    :returns: the reader pages written, in sorted notebook order, then the index.
    :raises FileNotFoundError: ``src`` is not a folder.
    """
    src, dest = Path(src), Path(dest)
    if not src.is_dir():
        raise FileNotFoundError(f"no notebook folder {src}")
    written, entries = [], []
    for nb_path in sorted(src.rglob("*.ipynb")):
        rel = nb_path.relative_to(src)
        if ".ipynb_checkpoints" in rel.parts or nb_path.resolve().is_relative_to(dest.resolve()):
            continue
        page, code_page = rel.with_suffix(".html"), Path(CODE_DIR) / rel.with_suffix(".html")
        notebook_to_html(nb_path, dest / code_page)
        up = "../" * (len(rel.parts) - 1)
        reader = _link_to_code(notebook_to_html(nb_path, exclude_input=True), f"{up}{code_page.as_posix()}")
        atomic_write_bytes(dest / page, reader.encode("utf-8"))
        written.append(dest / page)
        entries.append((rel.parent.as_posix() if len(rel.parts) > 1 else "", report_title(nb_path), page.as_posix(),
                        code_page.as_posix()))
    index = _index_page(sorted(entries, key=lambda e: (e[0] != "", e[0])))
    if external_references(index):
        raise ValueError(f"the index would fetch outside resources: {external_references(index)[:5]}")
    atomic_write_bytes(dest / "index.html", index.encode("utf-8"))
    return [*written, dest / "index.html"]


def main(argv: list[str] | None = None) -> None:
    """``python -m cdemi.tools.html [SRC] [DEST]``."""
    parser = argparse.ArgumentParser(prog="python -m cdemi.tools.html", description=__doc__.split("\n")[0])
    parser.add_argument("src", nargs="?", default="reports", help="folder of executed notebooks (default: reports)")
    parser.add_argument("dest", nargs="?", default=str(DEFAULT_DEST), help="output folder (default: reports/html)")
    args = parser.parse_args(argv)
    pages = export_folder(args.src, args.dest)
    print(f"{len(pages) - 1} report(s) as self-contained HTML in {args.dest} (code hidden; with code under "
          f"{Path(args.dest) / CODE_DIR}), listed in {Path(args.dest) / 'index.html'}")


if __name__ == "__main__":
    main()
