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


def S(desc: str) -> dict[str, Any]:
    return _t("string", desc)


def Sn(desc: str) -> dict[str, Any]:
    return _t(["string", "null"], desc)


def I(desc: str) -> dict[str, Any]:  # noqa: E743
    return _t("integer", desc)


def N(desc: str) -> dict[str, Any]:
    return _t(["number", "null"], desc)


def B(desc: str) -> dict[str, Any]:
    return _t("boolean", desc)


def A(desc: str, items: dict[str, Any]) -> dict[str, Any]:
    return _t("array", desc, items=items)


def O(desc: str, props: dict[str, Any], nullable: bool = False) -> dict[str, Any]:  # noqa: E743
    return _t(["object", "null"] if nullable else "object", desc, properties=props,
              required=sorted(props), additionalProperties=False)


def M(desc: str, values: dict[str, Any]) -> dict[str, Any]:
    """An object used as a map (free keys, typed values)."""
    return _t("object", desc, additionalProperties=values)


ANY = {"description": "any JSON value"}
STATS = O("distribution of one variable", {
    "n": I("finite values"), "min": N("minimum"), "max": N("maximum"), "mean": N("mean"),
    "std": N("population standard deviation")}, nullable=True)
COUNTS_BY_CLASS = M("emotion class -> samples (every class, zeros included)", I("samples"))

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://emoprep/report.schema.json",
    "title": "emoprep report.json",
    **O("The numbers behind report/index.html. A pure function of the stage folders it covers: "
        "no timings (see timings.json), no absolute paths, keys sorted.", {
        "format": _t("string", "always 'emoprep-report'", const=FORMAT),
        "version": _t("integer", "schema version (this document: 1)", const=VERSION),
        "title": S("page title (report.title parameter)"),
        "stages": A("every stage folder covered, in DAG order", O("one stage folder", {
            "name": S("stage name"), "dir": S("folder relative to the output root"),
            "fingerprint": S("full stage fingerprint (SHA-256)"), "version": S("stage code version"),
            "inputs": A("upstream stage names", S("stage")),
            "items": I("work items (per-sample stages: inputs; chunks: songs; tokens: shards)"),
            "rows": I("kept rows (manifest.parquet)"), "rejects": I("rejected inputs (rejects.parquet)"),
            "reasons": M("reject reason code -> count", I("count")),
            "counters": M("named counts that are neither rows nor rejects (e.g. short tails dropped)", I("count")),
            "params": M("fingerprinted parameters as the stage saw them", ANY),
            "libraries": M("library -> version (part of the fingerprint)", S("version")),
            "extra": M("other fingerprint inputs (model weight identity, device, compute dtype)", ANY)})),
        "labels": O("normalised valence/arousal", {
            "stage": Sn("stage whose manifest holds the labels (split, else labels)"),
            "by_modality": M("modality name (image, audio) -> summary", O("one modality", {
                "modality": I("modality code (0 image, 1 audio)"), "samples": I("labelled samples"),
                "sources": _t(["integer", "null"], "distinct source items (songs, images)"),
                "datasets": M("dataset (sample id prefix) -> samples", I("samples")),
                "valence": STATS, "arousal": STATS, "valence_raw": STATS, "arousal_raw": STATS}))}),
        "normalisation": A("each normalisation.json", O("one labels stage", {
            "stage": S("stage"), "method": Sn("minmax or fixed"), "sources": ANY,
            "bounds": A("raw bounds mapped to [-1, 1]", O("one group and dimension", {
                "group": S("modality name (minmax) or source stage (fixed)"), "key": S("key in normalisation.json"),
                "dimension": S("valence or arousal"), "min": N("raw value mapped to -1"),
                "max": N("raw value mapped to 1")}))})),
        "emotions": O("emotion classes (thesis eq. 2.1)", {
            "classes": A("the 12 thesis classes in order, then any other label found", S("class")),
            "counts": M("modality name -> split -> counts", M("split name ('all' without a split)", COUNTS_BY_CLASS))}),
        "splits": O("the split", {
            "names": A("split names in order", S("name")),
            "rows": M("split -> samples", I("samples")), "sources": M("split -> distinct source items", I("items")),
            "by_modality": M("modality name -> split -> samples", M("split -> samples", I("samples"))),
            "ratios": ANY, "method": Sn("split method (quota, hash)"), "seed": _t(["integer", "null"], "split seed"),
            "strata": A("split_summary.json strata (emotion x modality)", ANY)}),
        "categories": O("images by category (thesis fig 2.3)", {
            "column": Sn("category column (foodpics.category_column)"), "stage": Sn("manifest it was read from"),
            "by_category": A("largest first", O("one category", {
                "category": S("value"), "n": I("images"), "valence_mean": N("mean normalised valence"),
                "arousal_mean": N("mean normalised arousal"), "valence_std": N("std of normalised valence"),
                "arousal_std": N("std of normalised arousal"), "top_emotion": Sn("most frequent emotion class")}))}),
        "durations": M("stage with duration_s -> audio durations", O("one stage", {
            "n": I("songs"), "min_s": N("shortest (s)"), "median_s": N("median (s)"), "max_s": N("longest (s)"),
            "total_hours": N("sum (h)"), "histogram": O("bins as plotted", {
                "edges_s": A("bin edges (s): 0.1 s when all lie within 5 s, else 1 s to 60 s, then 10 s", N("edge")),
                "counts": A("songs per bin", I("songs"))})})),
        "chunks_per_song": M("stage with chunk_index -> chunks per song", O("one stage", {
            "songs": I("songs of the upstream manifest and of this one"), "chunks": I("chunk rows"),
            "songs_without_chunks": I("songs that gave no chunk"),
            "histogram": M("chunks per song -> songs", I("songs"))})),
        "rejects": O("every reject of the covered stages", {
            "total": I("rejects"),
            "by_reason": A("most frequent first", O("one reason code", {
                "reason": S("stable kebab-case code"), "count": I("rejects"),
                "meaning": S("meaning from manifests/schema.py REJECT_CODES"),
                "documented": B("listed in REJECT_CODES"),
                "by_stage": M("stage -> rejects", I("count")),
                "examples": A("first rejects by sample id", O("one reject", {
                    "sample_id": S("id"), "stage": S("stage"), "message": S("message naming the file")}))}))}),
        "audit": A("each audit.json (DEAM annotation audit)", O("one audit", {
            "stage": S("stage"), "static_fix": Sn("auto, swap-le-1000 or none"),
            "n_fixed": _t(["integer", "null"], "songs whose static columns were swapped back"),
            "fixed_song_ids": A("[first, last] runs of fixed song ids", A("run", I("song id"))),
            "blocks": A("per id block: r_sv_dv, r_sa_da, r_sv_da, r_sa_dv (static vs mean dynamic), "
                        "straight, crossed, verdict, fixed (as in audit.json)", ANY),
            "warnings": A("audit warnings", S("warning")),
            "n_parse_problems": _t(["integer", "null"], "annotation cells/rows that did not parse"),
            "parse_problems": A("the first 20", S("problem")), "zip_checks": A("zip member checks", ANY)})),
        "weights": A("tokenizer weights per stage", O("one tokenizing stage", {
            "stage": S("stage"), "tokenizer": Sn("tokenizer name"), "name": Sn("weights name"),
            "sha256": Sn("weights checksum, or 'random-init'"), "seed": _t(["integer", "null"], "init seed"),
            "rows_by_weights": M("weights value in the rows -> rows", I("rows")),
            "random_init": B("true when tokens come from randomly initialised weights"),
            "device": Sn("device in the fingerprint"), "compute_dtype": Sn("compute dtype")})),
        "figures": A("PNG files next to index.html (also inlined in it)", O("one figure", {
            "file": S("file name"), "title": S("title"), "caption": S("what it shows")})),
        "warnings": A("problems met while building the report (missing folders, unreadable files)", S("warning")),
    }),
}


# ---------------------------------------------------------------- checking

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def schema_problems(value: Any, schema: dict[str, Any] = SCHEMA, path: str = "$") -> list[str]:
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
             f"`report.json` (format `{FORMAT}`, version {VERSION}) holds the numbers of `index.html`. "
             "Machine-readable: `report.schema.json` (JSON Schema 2020-12, the same content). Rules: keys are "
             "sorted, numbers rounded to 6 decimals, missing values are `null`, no absolute paths and no "
             "timings (those are in `timings.json`, written only by `emoprep report`).", ""]
    for k, v in SCHEMA["properties"].items():
        lines += _lines(v, k, 0)
    return "\n".join(lines) + "\n"
