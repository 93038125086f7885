"""A PMEmo copy's annotations, parsed, and what each song takes from them: its static
values and its dynamic frames, each only when unambiguous and on PMEmo's 0–1 scale. A fault
in one kind (values outside [0, 1], repeated rows that disagree) blanks that kind only and
is noted in the song's issues.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.lazy import np
from emoprep.pipeline.values import finite_float
from emoprep.stages.pmemo.layout import LAYOUT_HELP, PmemoLayout
from emoprep.stages.pmemo.parsers import (
    DynamicTable,
    MetadataTable,
    PmemoFormatError,
    StaticTable,
    decode_text,
    parse_dynamic,
    parse_metadata,
    parse_static,
)

SCALE = (0.0, 1.0)  # PMEmo's static and dynamic annotation scale


@dataclass
class PmemoAnnotations:
    static: StaticTable
    static_std: StaticTable
    dynamic: DynamicTable
    metadata: MetadataTable
    problems: list[str]

    def ids(self) -> set[int]:
        return set(self.static.values) | set(self.static.conflicts) | set(self.dynamic.valence) \
            | set(self.dynamic.conflicts)


def load_annotations(layout: PmemoLayout) -> PmemoAnnotations:
    """Parse every annotation file the layout has; a missing optional file is an empty table,
    a file with a foreign header is a ConfigError naming it."""
    def read(rel: str) -> str:
        return decode_text((layout.root / rel).read_bytes())

    try:
        static = parse_static(read(layout.static), layout.static) if layout.static else StaticTable()
        std = (parse_static(read(layout.static_std), layout.static_std, kind="std")
               if layout.static_std else StaticTable())
        dynamic = parse_dynamic(read(layout.dynamic), layout.dynamic) if layout.dynamic else DynamicTable()
    except PmemoFormatError as exc:
        raise ConfigError(f"{exc}; {LAYOUT_HELP}") from None
    metadata = parse_metadata(read(layout.metadata), layout.metadata) if layout.metadata else MetadataTable()
    problems = [*static.problems, *std.problems, *dynamic.problems, *metadata.problems]
    return PmemoAnnotations(static, std, dynamic, metadata, problems)


def in_scale(x: float) -> bool:
    return math.isfinite(x) and SCALE[0] <= x <= SCALE[1]


def static_payload(ann: PmemoAnnotations, sid: int, issues: list[str]) -> dict[str, float | None] | None:
    """The song's static values if present, unambiguous and in [0, 1] (else None, with why)."""
    if sid in ann.static.conflicts:
        issues.append(f"{ann.static.conflicts[sid]}: static annotation not used")
        return None
    rec = ann.static.values.get(sid)
    if rec is None:
        return None
    if not (in_scale(rec["valence"]) and in_scale(rec["arousal"])):
        issues.append(f"static valence/arousal {rec['valence']}/{rec['arousal']} missing or outside "
                      f"[0, 1]: not used")
        return None
    std = ann.static_std.values.get(sid, {}) if sid not in ann.static_std.conflicts else {}
    return {"valence": rec["valence"], "arousal": rec["arousal"],
            "valence_std": finite_float(std.get("valence")), "arousal_std": finite_float(std.get("arousal"))}


def dynamic_payload(ann: PmemoAnnotations, sid: int,
                    issues: list[str]) -> tuple[list[float | None], list[float | None]] | None:
    """The song's frames (None for NaN) with out-of-scale values blanked, or None."""
    if sid in ann.dynamic.conflicts:
        issues.append(f"{ann.dynamic.conflicts[sid]}: dynamic annotation not used")
        return None
    if sid not in ann.dynamic.valence:
        return None
    v, a = ann.dynamic.valence[sid].copy(), ann.dynamic.arousal[sid].copy()
    bad = 0
    for x in (v, a):
        out = np.isfinite(x) & ((x < SCALE[0]) | (x > SCALE[1]))
        bad += int(out.sum())
        x[out] = np.nan
    if bad:
        issues.append(f"{bad} dynamic values outside [0, 1] set to NaN")
    if not (np.isfinite(v) & np.isfinite(a)).any():
        issues.append("no dynamic frame has both valence and arousal: dynamic annotation not used")
        return None
    return [finite_float(x) for x in v], [finite_float(x) for x in a]
