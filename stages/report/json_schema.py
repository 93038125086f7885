"""The documented schema of `report/report.json` (JSON Schema, draft 2020-12).

It ships as code (so it is in every wheel), is written next to the report as
`report.schema.json`, and rendered as `SCHEMA.md`. `schema_problems` checks a report
against it without third-party packages (the subset used here: type, properties, required,
additionalProperties, items, enum, const).
"""
from __future__ import annotations

from typing import Any

FORMAT = "emoprep-report"
VERSION = 1


def _t(kind: str | list[str], desc: str, **kw: Any) -> dict[str, Any]:
    return {"type": kind, "description": desc, **kw}


def string(desc: str) -> dict[str, Any]:
    return _t("string", desc)


def string_or_null(desc: str) -> dict[str, Any]:
    return _t(["string", "null"], desc)


def integer(desc: str) -> dict[str, Any]:
    return _t("integer", desc)


def number_or_null(desc: str) -> dict[str, Any]:
    return _t(["number", "null"], desc)


def boolean(desc: str) -> dict[str, Any]:
    return _t("boolean", desc)


def array(desc: str, items: dict[str, Any]) -> dict[str, Any]:
    return _t("array", desc, items=items)


def obj(desc: str, props: dict[str, Any], nullable: bool = False) -> dict[str, Any]:
    return _t(["object", "null"] if nullable else "object", desc, properties=props,
              required=sorted(props), additionalProperties=False)


def mapping(desc: str, values: dict[str, Any]) -> dict[str, Any]:
    """An object used as a map (free keys, typed values)."""
    return _t("object", desc, additionalProperties=values)


ANY = {"description": "any JSON value"}
STATS = obj("distribution of one variable", {
    "n": integer("finite values"), "min": number_or_null("minimum"), "max": number_or_null("maximum"),
    "mean": number_or_null("mean"), "std": number_or_null("population standard deviation")}, nullable=True)
COUNTS_BY_CLASS = mapping("emotion class -> samples (every class, zeros included)", integer("samples"))

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://emoprep/report.schema.json",
    "title": "emoprep report.json",
    **obj("The numbers behind report/index.html. A pure function of the stage folders it covers: "
          "no timings (see timings.json), no absolute paths, keys sorted.", {
        "format": _t("string", "always 'emoprep-report'", const=FORMAT),
        "version": _t("integer", "schema version (this document: 1)", const=VERSION),
        "title": string("page title (report.title parameter)"),
        "stages": array("every stage folder covered, in DAG order", obj("one stage folder", {
            "name": string("stage name"), "dir": string("folder relative to the output root"),
            "fingerprint": string("full stage fingerprint (SHA-256)"), "version": string("stage code version"),
            "inputs": array("upstream stage names", string("stage")),
            "items": integer("work items (per-sample stages: inputs; chunks: songs; tokens: shards)"),
            "rows": integer("kept rows (manifest.parquet)"), "rejects": integer("rejected inputs (rejects.parquet)"),
            "reasons": mapping("reject reason code -> count", integer("count")),
            "counters": mapping("named counts that are neither rows nor rejects (e.g. short tails dropped)",
                                integer("count")),
            "params": mapping("fingerprinted parameters as the stage saw them", ANY),
            "libraries": mapping("library -> version (part of the fingerprint)", string("version")),
            "extra": mapping("other fingerprint inputs (model weight identity, device, compute dtype)", ANY)})),
        "labels": obj("normalised valence/arousal", {
            "stage": string_or_null("stage whose manifest holds the labels (split, else labels)"),
            "by_modality": mapping("modality name (image, audio) -> summary", obj("one modality", {
                "modality": integer("modality code (0 image, 1 audio)"), "samples": integer("labelled samples"),
                "sources": _t(["integer", "null"], "distinct source items (songs, images)"),
                "datasets": mapping("dataset (sample id prefix) -> samples", integer("samples")),
                "valence": STATS, "arousal": STATS, "valence_raw": STATS, "arousal_raw": STATS}))}),
        "normalisation": array("each normalisation.json", obj("one labels stage", {
            "stage": string("stage"), "method": string_or_null("minmax or fixed"), "sources": ANY,
            "bounds": array("raw bounds mapped to [-1, 1]", obj("one group and dimension", {
                "group": string("modality name (minmax) or source stage (fixed)"),
                "key": string("key in normalisation.json"),
                "dimension": string("valence or arousal"), "min": number_or_null("raw value mapped to -1"),
                "max": number_or_null("raw value mapped to 1")}))})),
        "emotions": obj("emotion classes (thesis eq. 2.1)", {
            "classes": array("the 12 thesis classes in order, then any other label found", string("class")),
            "counts": mapping("modality name -> split -> counts",
                              mapping("split name ('all' without a split)", COUNTS_BY_CLASS))}),
        "splits": obj("the split", {
            "names": array("split names in order", string("name")),
            "rows": mapping("split -> samples", integer("samples")),
            "sources": mapping("split -> distinct source items", integer("items")),
            "by_modality": mapping("modality name -> split -> samples",
                                   mapping("split -> samples", integer("samples"))),
            "ratios": ANY, "method": string_or_null("split method (quota, hash)"),
            "seed": _t(["integer", "null"], "split seed"),
            "strata": array("split_summary.json strata (emotion x modality)", ANY)}),
        "categories": obj("images by category (thesis fig 2.3)", {
            "column": string_or_null("category column (foodpics.category_column)"),
            "stage": string_or_null("manifest it was read from"),
            "by_category": array("largest first", obj("one category", {
                "category": string("value"), "n": integer("images"),
                "valence_mean": number_or_null("mean normalised valence"),
                "arousal_mean": number_or_null("mean normalised arousal"),
                "valence_std": number_or_null("std of normalised valence"),
                "arousal_std": number_or_null("std of normalised arousal"),
                "top_emotion": string_or_null("most frequent emotion class")}))}),
        "durations": mapping("stage with duration_s -> audio durations", obj("one stage", {
            "n": integer("songs"), "min_s": number_or_null("shortest (s)"), "median_s": number_or_null("median (s)"),
            "max_s": number_or_null("longest (s)"),
            "total_hours": number_or_null("sum (h)"), "histogram": obj("bins as plotted", {
                "edges_s": array("bin edges (s): 0.1 s when all lie within 5 s, else 1 s to 60 s, then 10 s",
                                 number_or_null("edge")),
                "counts": array("songs per bin", integer("songs"))})})),
        "chunks_per_song": mapping("stage with chunk_index -> chunks per song", obj("one stage", {
            "songs": integer("songs of the upstream manifest and of this one"), "chunks": integer("chunk rows"),
            "songs_without_chunks": integer("songs that gave no chunk"),
            "histogram": mapping("chunks per song -> songs", integer("songs"))})),
        "rejects": obj("every reject of the covered stages", {
            "total": integer("rejects"),
            "by_reason": array("most frequent first", obj("one reason code", {
                "reason": string("stable kebab-case code"), "count": integer("rejects"),
                "meaning": string("meaning from manifests/reasons.py"),
                "documented": boolean("listed in REJECT_CODES"),
                "by_stage": mapping("stage -> rejects", integer("count")),
                "examples": array("first rejects by sample id", obj("one reject", {
                    "sample_id": string("id"), "stage": string("stage"),
                    "message": string("message naming the file")}))}))}),
        "audit": array("each audit.json (DEAM annotation audit)", obj("one audit", {
            "stage": string("stage"), "static_fix": string_or_null("auto, swap-le-1000 or none"),
            "n_fixed": _t(["integer", "null"], "songs whose static columns were swapped back"),
            "fixed_song_ids": array("[first, last] runs of fixed song ids", array("run", integer("song id"))),
            "fixes": array("each block the fix swapped", obj("one fixed block", {
                "block": string("id block, e.g. 1-1000"), "why": string("the reason, with the block's vote"),
                "song_ids": array("[first, last] runs", array("run", integer("song id"))),
                "n": integer("songs swapped")})),
            "n_auto_fix": _t(["integer", "null"], "songs static_fix = auto would swap"),
            "auto_fix_song_ids": array("[first, last] runs of the songs auto would swap",
                                       array("run", integer("song id"))),
            "blocks": array("per id block: r_sv_dv, r_sa_da, r_sv_da, r_sa_dv (static vs mean dynamic), "
                            "straight, crossed, n_informative, songs_crossed, songs_straight, vote, verdict, "
                            "fixed (as in audit.json)", ANY),
            "warnings": array("audit warnings", string("warning")),
            "n_parse_problems": _t(["integer", "null"], "annotation cells/rows that did not parse"),
            "parse_problems": array("the first 20", string("problem")),
            "zip_checks": array("zip member checks", ANY)})),
        "deviations": array("how the recipe's data differs from the paper(s) it follows (report.deviations)",
                            string("one difference")),
        "published": _t(["object", "null"], "as published vs corrected (report.compare_with): corrected_recipe, "
                        "parameters that differ, static_va (songs whose static VA differ), chunks (added/removed "
                        "under the corrected rules), split (songs in two splits, held-out items sharing a song "
                        "with a train item)"),
        "thesis_counts": array("each count the thesis reports beside this run's (report.thesis_counts)",
                               obj("one count", {"what": string("quantity"), "thesis": string("as printed"),
                                                 "section": string("thesis section"),
                                                 "this_run": _t(["integer", "null"], "this run's count"),
                                                 "why": string("why the two can differ")})),
        "weights": array("tokenizer weights per stage", obj("one tokenizing stage", {
            "stage": string("stage"), "tokenizer": string_or_null("tokenizer name"),
            "name": string_or_null("weights name"),
            "sha256": string_or_null("weights checksum, or 'random-init'"),
            "seed": _t(["integer", "null"], "init seed"),
            "rows_by_weights": mapping("weights value in the rows -> rows", integer("rows")),
            "random_init": boolean("true when tokens come from randomly initialised weights"),
            "device": string_or_null("device in the fingerprint"), "compute_dtype": string_or_null("compute dtype")})),
        "figures": array("PNG files next to index.html (also inlined in it)", obj("one figure", {
            "file": string("file name"), "title": string("title"), "caption": string("what it shows")})),
        "warnings": array("problems met while building the report (missing folders, unreadable files)",
                          string("warning")),
    }),
}

# ---------------------------------------------------------------- checking

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is(value: object, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def schema_problems(value: object, schema: dict[str, Any] = SCHEMA, path: str = "$") -> list[str]:
    """Where `value` breaks `schema` (empty list: it conforms)."""
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(value, k) for k in kinds):
            return [f"{path}: expected {'/'.join(kinds)}, got {type(value).__name__}"]
    if "const" in schema and value != schema["const"]:
        return [f"{path}: expected {schema['const']!r}"]
    out: list[str] = []
    if isinstance(value, dict):
        props = schema.get("properties", {})
        out += [f"{path}: missing key {k!r}" for k in schema.get("required", []) if k not in value]
        extra = schema.get("additionalProperties", True)
        for k, v in value.items():
            if k in props:
                out += schema_problems(v, props[k], f"{path}.{k}")
            elif extra is False:
                out.append(f"{path}: undocumented key {k!r}")
            elif isinstance(extra, dict):
                out += schema_problems(v, extra, f"{path}.{k}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            out += schema_problems(v, schema["items"], f"{path}[{i}]")
    return out


# ---------------------------------------------------------------- SCHEMA.md

def _kind(s: dict[str, Any]) -> str:
    k = s.get("type", "any")
    return " | ".join(k) if isinstance(k, list) else k


def _lines(s: dict[str, Any], path: str, depth: int) -> list[str]:
    out = [f"{'  ' * depth}- `{path}` ({_kind(s)}): {s.get('description', '')}"]
    for k, v in (s.get("properties") or {}).items():
        out += _lines(v, f"{path}.{k}" if path else k, depth + 1)
    if isinstance(s.get("additionalProperties"), dict):
        out += _lines(s["additionalProperties"], f"{path}.<key>", depth + 1)
    if isinstance(s.get("items"), dict) and (s["items"].get("properties") or s["items"].get("items")
                                             or isinstance(s["items"].get("additionalProperties"), dict)):
        out += _lines(s["items"], f"{path}[]", depth + 1)
    return out


def schema_markdown() -> str:
    lines = ["# report.json schema", "",
             (f"`report.json` (format `{FORMAT}`, version {VERSION}) holds the numbers of `index.html`. "
              "Machine-readable: `report.schema.json` (JSON Schema 2020-12, the same content). Rules: keys are "
              "sorted, numbers rounded to 6 decimals, missing values are `null`, no absolute paths and no "
              "timings (those are in `timings.json`, written only by `emoprep report`)."), ""]
    for k, v in SCHEMA["properties"].items():
        lines += _lines(v, k, 0)
    return "\n".join(lines) + "\n"
