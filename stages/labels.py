"""`labels`: VA normalisation to [-1, 1] and the thesis's emotion classes.

The thesis min-max normalises valence and arousal per modality over the whole dataset
(§2.1.1–2.1.2), then names an emotion class from the slope arousal/valence (eq. 2.1). Raw
values and the (min, max) used are kept so the mapping can be inverted. `method = "fixed"`
maps a declared scale instead (e.g. DEAM static 1–9), which does not move when the dataset
changes. A scale is declared per source stage (`scales = {clips = [1.0, 9.0]}`) or per dataset,
the sample-id prefix (`scales = {deam = [1.0, 9.0], pmemo = [0.0, 1.0]}`), so one source that
merges datasets on different scales (e.g. `features` over DEAM and PMEmo) lands on one scale;
a source's own scale wins over its rows' dataset scales.
"""
from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Literal

from emoprep.manifests.columns import NEGATIVE, POSITIVE
from emoprep.manifests.reasons import DUPLICATE_ID, MISSING_VA, VA_OUT_OF_RANGE
from emoprep.pipeline.atomic import atomic_write_json
from emoprep.pipeline.context import StageContext
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.stage import Outcome, Reject, Stage
from emoprep.pipeline.values import finite_float

# A row that passed the checks: (source stage, manifest record, raw valence, raw arousal).
Candidate = tuple[str, dict[Hashable, Any], float, float]
# (min, max) per dimension ("valence", "arousal"), per modality (minmax) or declared scale (fixed).
Bounds = dict[int | str, dict[str, tuple[float, ...]]]



def _band(slope: float) -> int:
    """Index of the slope band: > 0.66, (0.33, 0.66], (0, 0.33], (-0.33, 0], (-0.66, -0.33], ≤ -0.66."""
    if slope > 0.66:
        return 0
    if slope > 0.33:
        return 1
    if slope > 0:
        return 2
    if slope > -0.33:
        return 3
    if slope > -0.66:
        return 4
    return 5


def emotion_class(valence: float, arousal: float) -> str:
    """Thesis eq. 2.1 on normalised VA: slope = arousal / valence, banded per valence sign.

    Valence = 0 belongs to the "valence ≤ 0" side, and the slope there is its limit from
    negative valence: arousal > 0 gives slope −∞ (tense), arousal < 0 gives +∞ (tired),
    arousal = 0 gives 0 (frustrated). So the class is continuous from the left and never
    divides by zero.
    """
    if math.isnan(valence) or math.isnan(arousal):
        raise ValueError("emotion_class needs finite valence and arousal")
    at_zero = -math.inf if arousal > 0 else (math.inf if arousal < 0 else 0.0)
    slope = at_zero if valence == 0 else arousal / valence
    return (POSITIVE if valence > 0 else NEGATIVE)[_band(slope)]


def minmax_to_unit(x: float, lo: float, hi: float) -> float:
    """Map [lo, hi] to [-1, 1]; a constant column (hi == lo) maps to 0."""
    if hi == lo:
        return 0.0
    return 2.0 * (x - lo) / (hi - lo) - 1.0


@dataclass(frozen=True)
class LabelsParams:
    # The stages whose items are tokenized (they carry valence_raw/arousal_raw), so a
    # sample lost in any earlier stage never enters the bounds or the split.
    sources: tuple[str, ...] = ("spectrogram", "images")
    method: Literal["minmax", "fixed"] = "minmax"
    # method = "fixed": the declared raw scale of each source stage or dataset (sample-id
    # prefix), e.g. {clips = [1.0, 9.0]} or {deam = [1.0, 9.0], pmemo = [0.0, 1.0]}
    scales: dict[str, tuple[float, float]] = field(default_factory=dict)


class Labels(Stage[LabelsParams]):
    name = "labels"
    version = "1"
    description = "normalise VA to [-1, 1] per modality and dimension; emotion class (thesis eq. 2.1)"
    Params = LabelsParams

    def inputs(self, params: LabelsParams) -> list[str]:
        return list(params.sources)

    def run(self, ctx: StageContext[LabelsParams]) -> Outcome:
        p = ctx.params
        candidates: list[Candidate] = []
        rejects: list[Reject] = []
        seen: set[str] = set()
        for source in p.sources:
            df = ctx.input_manifest(source)
            for rec in df.to_dict("records"):
                sid = str(rec["sample_id"])
                v, a = finite_float(rec.get("valence_raw")), finite_float(rec.get("arousal_raw"))
                if sid in seen:
                    rejects.append(Reject(sid, DUPLICATE_ID, f"{sid} appears in more than one of {p.sources}"))
                    continue
                seen.add(sid)
                if v is None or a is None:
                    rejects.append(Reject(sid, MISSING_VA, f"{source}: valence_raw={rec.get('valence_raw')!r}, "
                                                           f"arousal_raw={rec.get('arousal_raw')!r}"))
                    continue
                if p.method == "fixed":
                    lo, hi = p.scales[scale_key(p.scales, source, sid)]
                    if not (lo <= v <= hi and lo <= a <= hi):
                        rejects.append(Reject(sid, VA_OUT_OF_RANGE,
                                              f"{source}: VA ({v}, {a}) outside the declared scale [{lo}, {hi}]"))
                        continue
                candidates.append((source, rec, v, a))
        bounds = self._bounds(candidates, p)
        rows: list[dict[str, Any]] = []
        for source, rec, v, a in candidates:
            b = bounds[scale_key(p.scales, source, str(rec["sample_id"])) if p.method == "fixed"
                       else int(rec["modality"])]
            vn = minmax_to_unit(v, *b["valence"])
            an = minmax_to_unit(a, *b["arousal"])
            rows.append({
                "sample_id": rec["sample_id"], "source_id": rec.get("source_id"),
                "modality": int(rec["modality"]), "label_source": source,
                "start_s": finite_float(rec.get("start_s")), "end_s": finite_float(rec.get("end_s")),
                "valence_raw": v, "arousal_raw": a, "valence": vn, "arousal": an,
                "valence_min": b["valence"][0], "valence_max": b["valence"][1],
                "arousal_min": b["arousal"][0], "arousal_max": b["arousal"][1],
                "emotion": emotion_class(vn, an),
            })
        atomic_write_json(ctx.out_dir / "normalisation.json",
                          {"method": p.method, "bounds": {str(k): v for k, v in bounds.items()}})
        return Outcome(rows=rows, rejects=rejects)

    @staticmethod
    def _bounds(candidates: list[Candidate], p: LabelsParams) -> Bounds:
        """(min, max) per modality (minmax) or per declared scale used (fixed), per dimension."""
        if p.method == "fixed":
            used = {scale_key(p.scales, source, str(rec["sample_id"])) for source, rec, _, _ in candidates}
            used |= {s for s in p.sources if s in p.scales}
            return {k: {"valence": tuple(p.scales[k]), "arousal": tuple(p.scales[k])} for k in sorted(used)}
        out: Bounds = {}
        for modality in sorted({int(rec["modality"]) for _, rec, _, _ in candidates}):
            vs = [v for _, rec, v, _ in candidates if int(rec["modality"]) == modality]
            as_ = [a for _, rec, _, a in candidates if int(rec["modality"]) == modality]
            out[modality] = {"valence": (min(vs), max(vs)), "arousal": (min(as_), max(as_))}
        return out


def scale_key(scales: dict[str, tuple[float, float]], source: str, sample_id: str) -> str:
    """The declared scale for a row of `source`: the source's own, else its dataset's (the
    sample-id prefix, `pmemo` of `pmemo:12`). Raises ConfigError naming both when neither
    is declared."""
    if source in scales:
        return source
    dataset = sample_id.split(":", 1)[0]
    if dataset in scales:
        return dataset
    raise ConfigError(f"labels.method = 'fixed' needs labels.scales for source {source!r} or dataset "
                      f"{dataset!r} (row {sample_id}), e.g. --set 'labels.scales={{{source}=[1.0, 9.0]}}'")
