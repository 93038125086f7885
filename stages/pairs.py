"""`pairs`: pair every audio item with an image of the same label (seed 002, Baione §4.2).

Seed 002 builds its music-image pairs so: "for each audio file of the dataset, its
corresponding image is sampled from those belonging to the same category of the audio
file", with 80/10/10 splits. Here the category is a label column of the `source` manifest
(the thesis's emotion class by default; a generic table's `label` works the same) and the
splits come from the `split` stage upstream (grouped by song, stratified by modality and
emotion), so:

- a pair inherits its audio item's split: the chunks or segments of one song never straddle
  splits;
- with `image_pool = "same-split"` (default) the image is drawn from the images of the same
  label AND split, so no image is seen in two splits; `"all"` draws from every image of the
  label (more pairs on small data, at the price of images shared across splits);
- deterministic from `seed`, independent of row order: within a pool (split, label) the
  images are ordered by a keyed hash of their id and the audio items by a keyed hash of
  theirs, and audio item r gets image r mod m. Images are thus reused evenly: when a pool
  has n audio items and m images, each image is in ⌊n/m⌋ or ⌈n/m⌉ pairs (and n < m leaves
  m − n images unused). Adding an item can change other pairs of its pool, not of others;
- an audio item whose pool has no image is rejected `no-image-for-label`, one without a
  label `missing-label`;
- `balance = "undersample"` makes the classes equal, as seed 002's are "balanced (in terms of
  numerosity)" (§3.2.1; table 3.1: 18 classes of 1,250-1,602 items, each with as many music
  samples as images, 24,216 of each): within each split, every label that has at least one
  pairable audio item keeps as many as the smallest such label has (the first ones in a
  keyed, seeded order); the others are rejected `class-balance`, and the images are then
  assigned among the kept items only (reuse stays even). Stricter than the seed, whose
  classes are near-equal by curation (largest / smallest = 1.28), not equal; image counts
  per class are not equalised. `"none"` (default) pairs every audio item, as seed 002's rule
  "for each audio file of the dataset" does (§4.2), and keeps the labels' own frequencies.

Output: the manifest (one row per pair, sample id = the audio item's) with `audio_id`,
`image_id`, `label`, `split`, the two files (`audio_path`, `image_path`, relative to the
output root, from the `audio_paths` / `image_paths` stages) and both items' normalised VA;
`pairs.csv` with the same pairs (seed 004's pairs-table shape); `pairs_summary.json` with
counts per split and pool, image reuse and unused images (and, with `balance` set, the
pairs kept per label in each split and how many items were left out).
"""
from __future__ import annotations

import csv
import hashlib
import io
import math
from collections import Counter
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from emoprep.manifests.columns import ITEM_COLUMNS
from emoprep.manifests.reasons import CLASS_BALANCE, MISSING_LABEL, NO_IMAGE_FOR_LABEL
from emoprep.pipeline.atomic import atomic_write_json, atomic_write_text
from emoprep.pipeline.columns import ColumnKind
from emoprep.pipeline.context import StageContext
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.stage import Outcome, Reject, Stage
from emoprep.pipeline.values import finite_float, natural_key

KINDS: dict[str, ColumnKind] = {
    **ITEM_COLUMNS, "audio_id": "str", "image_id": "str",
    "label": "str", "split": "str", "audio_path": "str", "image_path": "str",
    "audio_valence": "float", "audio_arousal": "float", "image_valence": "float",
    "image_arousal": "float", "pool_audio": "int", "pool_images": "int"}
CSV_COLUMNS = ("audio_id", "image_id", "label", "split", "audio_path", "image_path")
BALANCE_MODES = ("none", "undersample")


def keyed_order(ids: list[str], seed: int, role: str) -> list[str]:
    """`ids` ordered by a keyed BLAKE2b hash of (seed, role, id): a seeded shuffle that does
    not depend on the input order or the machine."""
    def key(item_id: str) -> tuple[bytes, str]:
        h = hashlib.blake2b(f"{role}\x00{item_id}".encode(), digest_size=8,
                            key=str(int(seed)).encode("ascii"), person=b"emoprep-pairs")
        return h.digest(), item_id
    return sorted(ids, key=key)


def assign_images(audio_ids: list[str], image_ids: list[str], seed: int) -> dict[str, str]:
    """Audio id → image id within one pool: r-th audio (keyed order) gets the (r mod m)-th
    image (keyed order), so reuse is even. Empty when the pool has no image."""
    if not image_ids:
        return {}
    images = keyed_order(image_ids, seed, "image")
    return {a: images[r % len(images)] for r, a in enumerate(keyed_order(audio_ids, seed, "audio"))}


@dataclass(frozen=True)
class Balanced:
    """What `balance = "undersample"` keeps: the audio ids; per split, the pairs every label
    keeps; per (split, label), the pairable audio items there were."""

    keep: frozenset[str]
    per_label: dict[str, int]
    available: dict[tuple[str, str], int]


def balanced_keep(groups: dict[tuple[str, str], list[str]], seed: int) -> Balanced:
    """Undersample (split, label) -> pairable audio ids to equal classes: in each split every
    label keeps as many as the smallest label of that split has, the first in a keyed,
    seeded order (independent of row order)."""
    per_label: dict[str, int] = {}
    for (split, _label), ids in groups.items():
        per_label[split] = min(per_label.get(split, len(ids)), len(ids))
    keep = frozenset(aid for (split, _label), ids in groups.items()
                     for aid in keyed_order(ids, seed, "balance")[:per_label[split]])
    return Balanced(keep, dict(sorted(per_label.items())), {k: len(v) for k, v in groups.items()})


def pool_key(split: str, label: str, image_pool: str) -> tuple[str, str]:
    return (split if image_pool == "same-split" else "*", label)


# A pool of images or audio items: (split, or "*" with image_pool = "all"; label) -> ids.
Pools = dict[tuple[str, str], list[str]]


@dataclass(frozen=True)
class PairsParams:
    source: str = "split"          # a manifest with both modalities, the label and split columns
    label_column: str = "emotion"
    audio_paths: str = "salient"   # stage whose `path` is each audio item's file ("" = none)
    image_paths: str = "images"    # stage whose `path` is each image's file ("" = none)
    seed: int = 0
    image_pool: Literal["same-split", "all"] = "same-split"
    # "undersample": equal pairs per label within each split (seed 002's balanced classes);
    # "none": every pairable audio item is paired (the labels' own frequencies)
    balance: Literal["none", "undersample"] = "none"


class Pairs(Stage[PairsParams]):
    name = "pairs"
    version = "1"
    default_inputs = ("split", "salient", "images")
    description = "each audio item paired with an image of the same label, seeded, in its split (seed 002)"
    Params = PairsParams
    manifest_columns = KINDS

    def inputs(self, params: PairsParams) -> list[str]:
        return list(dict.fromkeys(s for s in (params.source, params.audio_paths, params.image_paths) if s))

    def run(self, ctx: StageContext[PairsParams]) -> Outcome:
        q = ctx.params
        if q.image_pool not in ("same-split", "all"):
            raise ConfigError(f"pairs.image_pool must be 'same-split' or 'all', not {q.image_pool!r}")
        if q.balance not in BALANCE_MODES:
            raise ConfigError(f"pairs.balance must be 'none' or 'undersample', not {q.balance!r}")
        df = ctx.input_manifest(q.source)
        missing = [c for c in ("sample_id", "modality", q.label_column, "split") if c not in df.columns]
        if missing:
            raise ConfigError(f"pairs: the {q.source} manifest lacks {missing}; pair after the split stage "
                              f"(pairs.source) and name the label with pairs.label_column")
        items = [_item(r, q.label_column) for r in df.to_dict("records")]
        audio = [i for i in items if i["modality"] == 1]
        images = [i for i in items if i["modality"] == 0 and i["label"] is not None]
        paths = {**self._paths(ctx, q.audio_paths), **self._paths(ctx, q.image_paths)}
        pools: Pools = {}
        for im in images:
            pools.setdefault(pool_key(im["split"], im["label"], q.image_pool), []).append(im["sample_id"])
        outcome = Outcome()
        by_id = {i["sample_id"]: i for i in items}
        wanted: Pools = {}
        for a in audio:
            if a["label"] is None:
                outcome.rejects.append(Reject(a["sample_id"], MISSING_LABEL,
                                              f"{q.source}: {a['sample_id']} has no {q.label_column}"))
            else:
                wanted.setdefault(pool_key(a["split"], a["label"], q.image_pool), []).append(a["sample_id"])
        balanced = self._balance(wanted, pools, by_id, q)
        for key in sorted(wanted):
            paired = [aid for aid in wanted[key] if balanced is None or aid in balanced.keep]
            chosen = assign_images(paired, pools.get(key, []), q.seed)
            for aid in wanted[key]:
                if aid in chosen:
                    outcome.rows.append(_pair(by_id[aid], by_id[chosen[aid]], paths, len(paired), len(pools[key])))
                elif balanced is None or not pools.get(key):
                    outcome.rejects.append(Reject(aid, NO_IMAGE_FOR_LABEL, _no_image(key, q)))
                else:
                    outcome.rejects.append(Reject(aid, CLASS_BALANCE, _balanced_out(by_id[aid], balanced, q)))
        self._write(ctx, outcome.rows, pools, wanted, q, balanced)
        return outcome

    @staticmethod
    def _balance(wanted: Pools, pools: Pools, by_id: dict[str, dict[str, Any]], q: PairsParams) -> Balanced | None:
        """What `balance = "undersample"` keeps of the pairable audio items (None: "none")."""
        if q.balance == "none":
            return None
        groups: Pools = {}
        for key, ids in wanted.items():
            if pools.get(key):
                for aid in ids:
                    groups.setdefault((by_id[aid]["split"], by_id[aid]["label"]), []).append(aid)
        return balanced_keep(groups, q.seed)

    @staticmethod
    def _paths(ctx: StageContext[PairsParams], stage: str) -> dict[str, str]:
        if not stage:
            return {}
        df = ctx.input_manifest(stage)
        if "path" not in df.columns:
            raise ConfigError(f"pairs: the {stage} manifest has no path column (pairs.audio_paths / image_paths)")
        return {str(s): str(p) for s, p in zip(df["sample_id"], df["path"], strict=True) if isinstance(p, str)}

    @staticmethod
    def _write(ctx: StageContext[PairsParams], rows: list[dict[str, Any]], pools: Pools, wanted: Pools,
               q: PairsParams, balanced: Balanced | None) -> None:
        """pairs.csv and pairs_summary.json in the stage folder."""
        ordered = sorted(rows, key=lambda r: natural_key(r["sample_id"]))
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for r in ordered:
            writer.writerow(["" if r[c] is None else r[c] for c in CSV_COLUMNS])
        atomic_write_text(ctx.out_dir / "pairs.csv", buf.getvalue())
        uses = Counter(r["image_id"] for r in rows)
        all_images = {i for ids in pools.values() for i in ids}
        per_pool = [{"split": k[0], "label": k[1], "audio": len(wanted.get(k, [])), "images": len(pools.get(k, [])),
                     "pairs": sum(1 for r in rows if pool_key(r["split"], r["label"], q.image_pool) == k),
                     "max_image_uses": max((uses[i] for i in pools.get(k, [])), default=0)}
                    for k in sorted(set(pools) | set(wanted))]
        summary: dict[str, Any] = {
            "label_column": q.label_column, "image_pool": q.image_pool, "seed": int(q.seed),
            "pairs": dict(sorted(Counter(r["split"] for r in rows).items())),
            "images_used": len(uses), "images_unused": len(all_images - set(uses)),
            "max_image_uses": max(uses.values(), default=0), "pools": per_pool}
        if balanced is not None:   # absent by default, so the default summary keeps its bytes
            summary["balance"] = {"mode": q.balance, "pairs_per_label": balanced.per_label,
                                  "left_out": sum(balanced.available.values()) - len(balanced.keep)}
        atomic_write_json(ctx.out_dir / "pairs_summary.json", summary)


def _item(rec: Mapping[Hashable, Any], label_column: str) -> dict[str, Any]:
    label = rec.get(label_column)
    if label is not None and not isinstance(label, str) and math.isnan(float(label)):
        label = None
    return {"sample_id": str(rec["sample_id"]), "source_id": str(rec.get("source_id") or rec["sample_id"]),
            "modality": int(rec["modality"]), "label": None if label is None or label == "" else str(label),
            "split": str(rec["split"]), "valence": finite_float(rec.get("valence")),
            "arousal": finite_float(rec.get("arousal"))}


def _pair(a: dict[str, Any], im: dict[str, Any], paths: dict[str, str], n_audio: int, n_images: int) -> dict[str, Any]:
    return {"sample_id": a["sample_id"], "source_id": a["source_id"], "modality": 1,
            "audio_id": a["sample_id"], "image_id": im["sample_id"], "label": a["label"], "split": a["split"],
            "audio_path": paths.get(a["sample_id"]), "image_path": paths.get(im["sample_id"]),
            "audio_valence": a["valence"], "audio_arousal": a["arousal"],
            "image_valence": im["valence"], "image_arousal": im["arousal"],
            "pool_audio": n_audio, "pool_images": n_images}


def _balanced_out(item: dict[str, Any], balanced: Balanced, q: PairsParams) -> str:
    split, label = item["split"], item["label"]
    return (f"left out by pairs.balance = {q.balance!r}: {q.label_column} {label!r} has "
            f"{balanced.available[(split, label)]} pairable items in split {split!r}, where every "
            f"{q.label_column} keeps {balanced.per_label[split]} (the smallest one's count)")


def _no_image(key: tuple[str, str], q: PairsParams) -> str:
    where = f"in split {key[0]!r} " if q.image_pool == "same-split" else ""
    return (f"no image with {q.label_column} = {key[1]!r} {where}to pair with"
            + (" (image_pool = 'all' draws from every split)" if q.image_pool == "same-split" else ""))
