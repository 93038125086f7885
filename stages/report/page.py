"""`report/index.html`: one self-contained page (inline CSS, PNGs inlined as data URIs),
rendered from `templates/index.html.j2` with autoescaping on.

Inlined images keep the page whole when it is copied, attached or opened from an archive;
the same PNGs are also written next to it for slides and papers. The page needs no network
and no JavaScript to read; a few lines of script only check that every image decoded and
show a warning (and `data-images-*` attributes, read by the headless-browser test) if not.
"""
from __future__ import annotations

import base64
import json
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

# (id, label) of the page's sections, in page order; the nav lists those present.
LINKS = (("deviations", "Differences"), ("published", "As published"), ("thesis-counts", "Thesis counts"),
         ("stages", "Stages"), ("labels", "Labels"), ("splits", "Splits"), ("audio", "Audio"),
         ("rejects", "Rejects"), ("audit", "Audit"), ("weights", "Weights"), ("params", "Parameters"),
         ("timings", "Timings"))


def fmt(x: object, digits: int = 4) -> str:
    """Numbers for tables: thousands separators for ints, 4 significant digits for floats."""
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def dumps(value: object, **kw: Any) -> str:
    """JSON text of a value (parameters, rules) as the page prints it."""
    return json.dumps(value, **{"ensure_ascii": False, **kw})


@cache
def environment(autoescape: bool) -> jinja2.Environment:
    """The report's templates (package data of emoprep.stages.report). HTML (autoescape) prints
    None as ''; Markdown prints it as Python does ("None"), as the card always has."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("emoprep.stages.report", "templates"),
        autoescape=autoescape,  # noqa: S701 - off only for the Markdown card
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, extensions=["jinja2.ext.do"],
        finalize=(lambda x: "" if x is None else x) if autoescape else None)
    env.filters.update(fmt=fmt, dumps=dumps)
    return env


def render(r: dict[str, Any], pngs: dict[str, bytes], timings: dict[str, Any] | None) -> str:
    """The whole page from report.json's content `r`, the figures' PNG bytes by key and
    timings.json's content (None: the stage's reproducible page, without timings)."""
    figs = {f["file"][:-4]: {**f, "data": base64.b64encode(pngs[f["file"][:-4]]).decode("ascii")}
            for f in r["figures"] if f["file"][:-4] in pngs}
    return environment(True).get_template("index.html.j2").render(r=r, figs=figs, timings=timings, links=LINKS)
