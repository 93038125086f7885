"""`report/index.html`: one self-contained page (inline CSS, PNGs inlined as data URIs).

Inlined images keep the page whole when it is copied, attached or opened from an archive;
the same PNGs are also written next to it for slides and papers. The page needs no network
and no JavaScript to read; a few lines of script only check that every image decoded and
show a warning (and `data-images-*` attributes, read by the headless-browser test) if not.
"""
from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable, Sequence

from emoprep.stages.report.shapes import PageFigure, ReportJson, Timings

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;\
color:#1d1d1f;background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:24px;margin:8px 0 4px}h2{font-size:19px;margin:32px 0 8px;border-bottom:2px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
nav{font-size:13px;margin:8px 0 16px}nav a{margin-right:12px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px;background:#fff}
th,td{border:1px solid #d9d9d9;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}
figure{margin:12px 0 20px;background:#fff;border:1px solid #e3e3e3;padding:8px}
figure img{max-width:100%;height:auto;display:block}figcaption{font-size:12.5px;color:#444;margin-top:6px}
.banner{padding:10px 14px;margin:10px 0;border-radius:4px;font-weight:600}
.danger{background:#fde2e1;border:2px solid #d93025;color:#8b1a12}
.warn{background:#fff4ce;border:1px solid #e0b000}
.ok{background:#e6f4ea;border:1px solid #34a853}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:10px 0}
.card{background:#fff;border:1px solid #ddd;border-radius:4px;padding:8px 12px;min-width:140px}
.card b{display:block;font-size:20px}.muted{color:#666;font-size:12.5px}
.crossed{background:#fde2e1}details{margin:4px 0}summary{cursor:pointer}
"""

IMAGE_CHECK = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var bad = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  var root = document.documentElement;
  root.setAttribute("data-images-total", String(imgs.length));
  root.setAttribute("data-images-loaded", String(imgs.length - bad.length));
  root.setAttribute("data-images-failed", String(bad.length));
  if (bad.length) {
    var div = document.createElement("div");
    div.className = "banner danger";
    div.textContent = bad.length + " figure(s) failed to load: " +
      bad.map(function (i) { return i.getAttribute("data-file"); }).join(", ");
    document.querySelector("main").prepend(div);
  }
});
"""


def esc(x: object) -> str:
    return html.escape("" if x is None else str(x), quote=True)


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


def table(headers: Sequence[str | None], rows: Iterable[Sequence[object]], *, num_cols: Sequence[int] = (),
          row_attrs: Sequence[str] | None = None, raw_cols: Sequence[int] = ()) -> str:
    """An HTML table; cells are escaped unless their column is in `raw_cols`."""
    head = "".join(f'<th class="num">{esc(h)}</th>' if i in num_cols else f"<th>{esc(h)}</th>"
                   for i, h in enumerate(headers))
    body = []
    for k, row in enumerate(rows):
        attrs = f" {row_attrs[k]}" if row_attrs else ""
        cells = []
        for i, v in enumerate(row):
            text = v if i in raw_cols else esc(fmt(v))
            cells.append(f'<td class="num">{text}</td>' if i in num_cols else f"<td>{text}</td>")
        body.append(f"<tr{attrs}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figure(fig: PageFigure) -> str:
    data = base64.b64encode(fig["png"]).decode("ascii")
    return (f'<figure id="fig-{esc(fig["file"][:-4])}"><img data-file="{esc(fig["file"])}" alt="{esc(fig["title"])}" '
            f'src="data:image/png;base64,{data}"><figcaption><b>{esc(fig["title"])}.</b> {esc(fig["caption"])} '
            f'<a href="{esc(fig["file"])}">{esc(fig["file"])}</a></figcaption></figure>')


# ---------------------------------------------------------------- sections

def banners(r: ReportJson) -> str:
    out = [f'<div class="banner danger" data-random-init="{esc(w["tokenizer"])}">⚠ RANDOM-INIT WEIGHTS: '
           f'the {esc(w["stage"])} stage '
           f'({esc(w["tokenizer"])}) ran without pretrained weights (seeded random init). These tokens are '
           "not pretrained features; do not train on them for results. Pass <code>--weights DIR</code> "
           "or put the checkpoint in the local Hugging Face cache and re-run.</div>"
           for w in r["weights"] if w["random_init"]]
    out.extend(f'<div class="banner warn">{esc(w)}</div>' for w in r["warnings"])
    return "".join(out)


def summary_cards(r: ReportJson) -> str:
    cards = [(f"{s['samples']:,}", f"{mod} samples ({', '.join(s['datasets'])})")
             for mod, s in r["labels"]["by_modality"].items()]
    cards += [(f"{n:,}", f"{name} split") for name, n in r["splits"]["rows"].items()]
    cards += [(f"{r['rejects']['total']:,}", "inputs rejected (all stages)"), (str(len(r["stages"])), "stages")]
    return ('<div class="cards">' + "".join(f'<div class="card"><b>{esc(a)}</b>{esc(b)}</div>' for a, b in cards)
            + "</div>")


def stages_section(r: ReportJson, figs: dict[str, PageFigure]) -> str:
    rows = [(s["name"], f'<code>{esc(s["fingerprint"][:16])}</code>', ", ".join(s["inputs"]) or "raw data",
             s["items"], s["rows"], s["rejects"],
             ", ".join(f"{k} {v}" for k, v in s["counters"].items()))
            for s in r["stages"]]
    t = table(["stage", "fingerprint", "inputs", "items", "kept rows", "rejects", "counters"], rows,
              num_cols=(3, 4, 5), raw_cols=(1,), row_attrs=[f'data-stage="{esc(s["name"])}"' for s in r["stages"]])
    note = ('<p class="muted">items = the stage\'s units of work (songs for <code>chunks</code>, shards for '
            "<code>tokens</code>); inputs = kept + rejected for per-sample stages.</p>")
    return f'<h2 id="stages">Stages and counts</h2>{t}{note}{fig_html(figs, "stage_counts")}'


def labels_section(r: ReportJson, figs: dict[str, PageFigure]) -> str:
    lab = r["labels"]
    if not lab["by_modality"]:
        return '<h2 id="labels">Labels</h2><p>No stage with normalised valence/arousal in this run.</p>'
    rows: list[tuple[object, ...]] = []
    for mod, s in lab["by_modality"].items():
        for dim, d, raw in (("valence", s["valence"], s.get("valence_raw")),
                            ("arousal", s["arousal"], s.get("arousal_raw"))):
            rows.append((mod, dim, d["n"], d["min"], d["max"], d["mean"], d["std"],
                         raw["min"] if raw else None, raw["max"] if raw else None))
    t = table(["modality", "dimension", "n", "min", "max", "mean", "std", "raw min", "raw max"], rows,
              num_cols=(2, 3, 4, 5, 6, 7, 8))
    norm = ""
    for n in r["normalisation"]:
        nrows = [(b["group"], b["dimension"], b["min"], b["max"]) for b in n["bounds"]]
        norm += (f'<h3 id="normalisation">Normalisation bounds ({esc(n["stage"])}, method '
                 f'<code>{esc(n["method"])}</code>)</h3><p class="muted">Raw values in [min, max] map linearly '
                 f'to [-1, 1] per group; the raw values stay in the manifests.</p>'
                 + table(["group", "dimension", "raw min", "raw max"], nrows, num_cols=(2, 3)))
    return (f'<h2 id="labels">Labels (from <code>{esc(lab["stage"])}</code>)</h2>{t}{norm}'
            f'{fig_html(figs, "va_scatter")}{fig_html(figs, "va_by_emotion")}{categories_html(r, figs)}')


def categories_html(r: ReportJson, figs: dict[str, PageFigure]) -> str:
    c = r["categories"]
    if not c["by_category"]:
        return ""
    rows = [(x["category"], x["n"], x["valence_mean"], x["arousal_mean"], x["valence_std"], x["arousal_std"],
             x["top_emotion"]) for x in c["by_category"]]
    t = table([c["column"], "images", "valence mean", "arousal mean", "valence std", "arousal std",
               "most frequent class"], rows, num_cols=(1, 2, 3, 4, 5))
    return f'<h3 id="categories">Images by {esc(c["column"])}</h3>{t}{fig_html(figs, "va_by_category")}'


def splits_section(r: ReportJson, figs: dict[str, PageFigure]) -> str:
    sp = r["splits"]
    names = sp["names"]
    rows = [("all modalities", *[sp["rows"].get(n, 0) for n in names])]
    rows += [(mod, *[v.get(n, 0) for n in names]) for mod, v in sp["by_modality"].items()]
    if sp["sources"]:
        rows.append(("source items (songs / images)", *[sp["sources"].get(n, 0) for n in names]))
    t = table(["", *names], rows, num_cols=tuple(range(1, len(names) + 1)))
    how = ""
    if sp["method"]:
        how = (f'<p class="muted">method <code>{esc(sp["method"])}</code>, seed {esc(sp["seed"])}, ratios '
               f'{esc(sp["ratios"])}; grouped by source song, stratified by emotion class per modality.</p>')
    ec = r["emotions"]
    erows = []
    for mod, per in ec["counts"].items():
        for s, counts in per.items():
            erows.append((mod, s, *[counts.get(k, 0) for k in ec["classes"]]))
    et = table(["modality", "split", *ec["classes"]], erows,
               num_cols=tuple(range(2, len(ec["classes"]) + 2))) if erows else ""
    return (f'<h2 id="splits">Splits</h2>{t}{how}<h3>Emotion classes per split</h3>{et}'
            f'{fig_html(figs, "emotion_counts")}')


def audio_section(r: ReportJson, figs: dict[str, PageFigure]) -> str:
    if not r["durations"] and not r["chunks_per_song"]:
        return ""
    rows = [(n, d["n"], d["min_s"], d["median_s"], d["max_s"], d["total_hours"]) for n, d in r["durations"].items()]
    t = table(["stage", "songs", "min (s)", "median (s)", "max (s)", "total (h)"], rows,
              num_cols=(1, 2, 3, 4, 5)) if rows else ""
    crow = [(n, c["songs"], c["chunks"], c["songs_without_chunks"]) for n, c in r["chunks_per_song"].items()]
    ct = table(["stage", "songs", "chunks", "songs without chunks"], crow, num_cols=(1, 2, 3)) if crow else ""
    return f'<h2 id="audio">Audio</h2>{t}{fig_html(figs, "durations")}{ct}{fig_html(figs, "chunks_per_song")}'


def rejects_section(r: ReportJson, figs: dict[str, PageFigure]) -> str:
    rej = r["rejects"]
    if not rej["by_reason"]:
        return '<h2 id="rejects">Rejects</h2><p>No input was rejected.</p>'
    rows, attrs = [], []
    for x in rej["by_reason"]:
        ex = "<br>".join(f'<code>{esc(e["sample_id"])}</code> ({esc(e["stage"])}): {esc(e["message"])}'
                         for e in x["examples"])
        for stage, n in x["by_stage"].items():
            rows.append((f'<code>{esc(x["reason"])}</code>', stage, n, esc(x["meaning"]), ex))
            attrs.append(f'data-reason="{esc(x["reason"])}" data-stage="{esc(stage)}"')
    t = table(["reason", "stage", "count", "meaning (manifests/reasons.py)", "examples (first by sample id)"], rows,
              num_cols=(2,), raw_cols=(0, 3, 4), row_attrs=attrs)
    return (f'<h2 id="rejects">Rejects ({rej["total"]:,})</h2>{fig_html(figs, "rejects")}{t}'
            '<p class="muted">All rejects with their messages: <code>manifests/rejects.parquet</code>.</p>')


def audit_section(r: ReportJson, figs: dict[str, PageFigure]) -> str:
    if not r["audit"]:
        return ""
    out = ['<h2 id="audit">Annotation audit</h2>']
    for a in r["audit"]:
        rows, attrs = [], []
        for b in a["blocks"]:
            rows.append((b.get("block"), b.get("kind"), b.get("n"), b.get("r_sv_dv"), b.get("r_sa_da"),
                         b.get("r_sv_da"), b.get("r_sa_dv"), b.get("straight"), b.get("crossed"), b.get("vote"),
                         b.get("verdict"), "swapped back" if b.get("fixed") else "kept as in the file"))
            cls = ' class="crossed"' if b.get("verdict") == "crossed" else ""
            attrs.append(f'data-block="{esc(b.get("block"))}" data-verdict="{esc(b.get("verdict"))}"{cls}')
        t = table(["id block", "kind", "songs", "r(sV, dV)", "r(sA, dA)", "r(sV, dA)", "r(sA, dV)", "straight",
                   "crossed", "vote", "verdict", "what the fix did"], rows, num_cols=(2, 3, 4, 5, 6, 7, 8, 9),
                  row_attrs=attrs)
        ids = ", ".join(f"{lo}–{hi}" if lo != hi else str(lo) for lo, hi in a["fixed_song_ids"]) or "none"
        out.append(
            f'<p><code>{esc(a["stage"])}</code>: <code>static_fix = "{esc(a["static_fix"])}"</code>; '
            f'<b id="n-fixed">{fmt(a["n_fixed"])}</b> songs had their static valence/arousal columns swapped back '
            f'(ids {esc(ids)}).</p>{t}<p class="muted">s = static (song-level, 1–9), d = mean of the dynamic '
            "(2 Hz, −1 … 1) ratings of the same song. straight = mean of r(sV, dV) and r(sA, dA); crossed = mean "
            "of r(sV, dA) and r(sA, dV). vote = Σ d / Σ |d| with d = (sV − sA)(dA − dV) per song (static on "
            "the dynamic scale), +1 when every song fits crossed; a release block is <i>crossed</i> when its "
            "vote ≥ the audit margin (<i>insufficient</i>: too few songs whose valence and arousal differ). "
            "Only release blocks are fixed, whole; <i>detected</i> runs are a diagnostic.</p>"
            + "".join(f"<p>Fixed block {esc(f['block'])}: {esc(f['why'])}.</p>" for f in a["fixes"]))
        extra = a["warnings"] + [f"{a['n_parse_problems']} annotation parse problem(s), e.g. {p}"
                                 for p in a["parse_problems"][:1]]
        out += [f'<div class="banner warn">{esc(w)}</div>' for w in extra]
        if a["zip_checks"]:
            out.append(f'<details><summary>zip archive checks ({len(a["zip_checks"])})</summary><pre class="mono">'
                       f'{esc(json.dumps(a["zip_checks"], indent=1, sort_keys=True, ensure_ascii=False))}'
                       '</pre></details>')
    out.append(fig_html(figs, "audit"))
    return "".join(out)


def deviations_section(r: ReportJson) -> str:
    if not r["deviations"]:
        return ""
    return ('<h2 id="deviations">How this data differs from the paper</h2><ul>'
            + "".join(f"<li>{esc(d)}</li>" for d in r["deviations"]) + "</ul>")


def published_section(r: ReportJson) -> str:
    """As published vs corrected: what each difference from the corrected recipe changes."""
    c = r["published"]
    out = []
    if c is not None:
        out.append(f'<h2 id="published">As published vs corrected</h2><p>This run reproduces the thesis\'s own '
                   f'choices; <code>{esc(c["corrected_recipe"])}</code> is the corrected recipe. Each difference '
                   "and what it changes in this data:</p>")
        if c.get("error"):
            out.append(f'<div class="banner warn">{esc(c["error"])}</div>')
        diffs = [(f'{p["stage"]}.{p["key"]}', json.dumps(p["this_run"]), json.dumps(p["corrected"]))
                 for p in c["parameters"]]
        out.append(table(["parameter", "this run", "corrected"], diffs))
        items = []
        if (sv := c.get("static_va")) is not None:
            ids = ", ".join(f"{lo}–{hi}" if lo != hi else str(lo) for lo, hi in sv["song_ids"]) or "none"
            use = (f'; {sv["clips_affected"]} clips are labelled with them' if sv["used_by_tokens"]
                   else "; no item of this run is labelled with static VA (chunks use the dynamic ratings)")
            items.append(f'<li data-diff="static"><b id="static-differ">{sv["songs"]}</b> songs have different '
                         f'static valence/arousal (static_fix {esc(sv["this_run"])} vs {esc(sv["corrected"])}: '
                         f"ids {esc(ids)}){esc(use)}.</li>")
        if (ch := c.get("chunks")) is not None:
            items.append(f'<li data-diff="chunks">The corrected chunk rules add <b id="chunks-added">{ch["added"]}'
                         f'</b> and remove <b id="chunks-removed">{ch["removed"]}</b> chunks: '
                         f'{ch["chunks_this_run"]} here, {ch["chunks_corrected"]} corrected '
                         f'({esc(json.dumps(ch["rules_this_run"]))} vs {esc(json.dumps(ch["rules_corrected"]))}; '
                         f'{ch["songs_compared"]} songs compared).</li>')
        if (sp := c.get("split")) is not None:
            items.append(f'<li data-diff="split">Split grouped by {esc(sp["group_by"])}: '
                         f'<b id="split-straddle">{sp["sources_in_two_splits"]}</b> of {sp["sources"]} songs/sources '
                         f'have items in two splits; <b id="split-sharing">'
                         f'{sp["held_out_items_sharing_a_song_with_train"]}</b> of {sp["held_out_items"]} '
                         "held-out items share a song with a train item (0 under the corrected, grouped split).</li>")
        out.append(f"<ul>{''.join(items)}</ul>")
    if r["thesis_counts"]:
        rows = [(t["what"], t["thesis"], t["section"], t["this_run"], t["why"]) for t in r["thesis_counts"]]
        out.append('<h2 id="thesis-counts">Thesis counts beside this run</h2>'
                   + table(["quantity", "thesis", "section", "this run", "why they can differ"], rows,
                           num_cols=(3,))
                   + '<p class="muted">Thesis figures as printed (seed 000, ch. 2); this run\'s from its manifests '
                   "and rejects. On the demo data the counts are small by design; run the recipe on the real "
                   "downloads to get the full-data figures.</p>")
    return "".join(out)


def weights_section(r: ReportJson) -> str:
    if not r["weights"]:
        return ""
    rows = [(w["stage"], w["tokenizer"], w["name"], "RANDOM-INIT" if w["random_init"] else w["sha256"],
             w["seed"] if w["random_init"] else None, ", ".join(f"{k}: {v}" for k, v in w["rows_by_weights"].items()),
             w["device"], w["compute_dtype"]) for w in r["weights"]]
    t = table(["stage", "tokenizer", "weights", "checksum (SHA-256)", "init seed", "rows by weights", "device",
               "compute dtype"], rows,
              row_attrs=[f'data-random-init="{str(w["random_init"]).lower()}"' for w in r["weights"]])
    return f'<h2 id="weights">Weights used</h2>{t}'


def params_section(r: ReportJson) -> str:
    parts = [('<h2 id="params">Parameters and fingerprints</h2><p class="muted">Every fingerprinted parameter of '
              "every stage (runtime knobs such as workers and batch size do not change outputs and are not "
              "listed). <a href=\"recipe.toml\">recipe.toml</a> rebuilds this dataset: "
              "<code>emoprep run --recipe recipe.toml</code>.</p>")]
    for s in r["stages"]:
        prow = [(k, json.dumps(v, ensure_ascii=False)) for k, v in s["params"].items()]
        lrow = ", ".join(f"{k} {v}" for k, v in s["libraries"].items())
        parts.append(f'<details><summary><b>{esc(s["name"])}</b> <code>{esc(s["dir"])}</code> '
                     f'(version {esc(s["version"])})</summary><p class="mono">fingerprint {esc(s["fingerprint"])}</p>'
                     + (table(["parameter", "value"], prow) if prow else "<p>no parameters</p>")
                     + (f'<p class="muted">libraries: {esc(lrow)}</p>' if lrow else "") + "</details>")
    return "".join(parts)


def timings_section(timings: Timings | None) -> str:
    if timings is None:
        return ('<h2 id="timings">Run timings</h2><p class="muted">Timings differ from run to run, so they are not '
                "part of the reproducible report built by the <code>report</code> stage. "
                "<code>emoprep report --out DIR</code> renders this page again with them.</p>")
    rows = [(t["name"], t["seconds"], t["resumed_items"], t["executor"], t["workers"]) for t in timings["stages"]]
    return (f'<h2 id="timings">Run timings</h2><p class="muted">Seconds each stage took in the run that built it '
            f'(from <code>_DONE.json</code> "run"); total {fmt(timings["total_seconds"])} s.</p>'
            + table(["stage", "seconds", "items resumed", "executor", "workers"], rows, num_cols=(1, 2, 4)))


def fig_html(figs: dict[str, PageFigure], key: str) -> str:
    f = figs.get(key)
    return figure(f) if f else ""


def render(r: ReportJson, figs: dict[str, PageFigure], timings: Timings | None) -> str:
    """The whole page. `figs`: key -> {"file", "title", "caption", "png"}."""
    links = [("deviations", "Differences"), ("published", "As published"), ("thesis-counts", "Thesis counts"),
             ("stages", "Stages"),
             ("labels", "Labels"), ("splits", "Splits"), ("audio", "Audio"),
             ("rejects", "Rejects"), ("audit", "Audit"), ("weights", "Weights"), ("params", "Parameters"),
             ("timings", "Timings")]
    body = "".join([
        deviations_section(r), published_section(r), stages_section(r, figs), labels_section(r, figs),
        splits_section(r, figs), audio_section(r, figs),
        rejects_section(r, figs), audit_section(r, figs), weights_section(r), params_section(r),
        timings_section(timings),
        '<h2 id="files">Files</h2><p><a href="report.json">report.json</a> (these numbers; schema: '
        '<a href="SCHEMA.md">SCHEMA.md</a>, <a href="report.schema.json">report.schema.json</a>) · '
        '<a href="DATASET.md">DATASET.md</a> (dataset card) · <a href="recipe.toml">recipe.toml</a>'
        + (' · <a href="timings.json">timings.json</a>' if timings is not None else "") + "</p>",
    ])
    present = [(k, v) for k, v in links if f'id="{k}"' in body]
    nav = "<nav>" + "".join(f'<a href="#{k}">{esc(v)}</a>' for k, v in present) + "</nav>"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(r['title'])}</title><style>{CSS}</style></head><body><main>"
            f"<h1>{esc(r['title'])}</h1><p class=\"muted\">emoprep report over {len(r['stages'])} stage folders; "
            f"every number below is also in <a href=\"report.json\">report.json</a>.</p>{nav}"
            f"{banners(r)}{summary_cards(r)}{body}</main><script>{IMAGE_CHECK}</script></body></html>\n")
