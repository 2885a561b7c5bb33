"""The project's commands, apart from the library and the table builders; each runs as ``python -m``:

- :mod:`cdemi.tools.repro`: the main job, ``dvc repro`` with one progress bar (``make repro``);
- :mod:`cdemi.tools.recheck`: the reproduction check, a slice of the pipeline rerun in a fresh clone;
- :mod:`cdemi.tools.html`: the executed reports as self-contained offline HTML (``make html``);
- :mod:`cdemi.tools.readme`: the README's generated blocks written from their sources (``make readme``),
  or checked (``--check``, the last step of ``make test``).
"""
