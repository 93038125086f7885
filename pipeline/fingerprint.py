"""Stage fingerprints: a hash of everything that decides a stage's outputs, nothing else.

components = {stage, version, params (runtime knobs excluded), inputs (upstream fingerprints),
source (digest of the raw data's content signature), extra (e.g. weight identity), libraries
(versions of the distributions the stage names)}. Canonical JSON, then SHA-256. Paths, times,
hostnames and object ids never enter, so a fingerprint is the same across processes and
machines; the components are kept in `_DONE.json` so `status` can say *what* changed.
"""
from __future__ import annotations

import hashlib
from functools import cache
from importlib import metadata
from typing import Any

from emoprep.pipeline.atomic import canonical_json
from emoprep.pipeline.recipe import params_as_dict
from emoprep.pipeline.stage import AnyStage

SHORT = 16  # hex digits used in folder names (64 bits)


@cache
def library_version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not-installed"


def digest(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


def components(stage: AnyStage, params: Any, input_fps: dict[str, str], source: Any = None,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "stage": stage.name,
        "version": str(stage.version),
        "params": params_as_dict(params, include_runtime=False),
        "inputs": dict(sorted(input_fps.items())),
        "source": None if source is None else digest(source),
        "extra": extra or {},
        "libraries": {d: library_version(d) for d in sorted(stage.libraries_for(params))},
    }


def fingerprint(comps: dict[str, Any]) -> str:
    return digest(comps)


def explain_change(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """Human reasons why `new` components differ from `old` ones (empty if equal)."""
    if not old:
        return ["never built"]
    reasons: list[str] = []
    if old.get("version") != new["version"]:
        reasons.append(f"stage code version {old.get('version')} -> {new['version']}")
    op, np_ = old.get("params", {}), new["params"]
    reasons += [f"parameter {key}: {op.get(key, '<unset>')!r} -> {np_.get(key, '<unset>')!r}"
                for key in sorted(set(op) | set(np_)) if op.get(key, "<unset>") != np_.get(key, "<unset>")]
    oi, ni = old.get("inputs", {}), new["inputs"]
    reasons += [f"input {key} changed" for key in sorted(set(oi) | set(ni)) if oi.get(key) != ni.get(key)]
    if old.get("source") != new["source"]:
        reasons.append("source data changed")
    if old.get("extra") != new["extra"]:
        keys = sorted(k for k in set(old.get("extra", {})) | set(new["extra"])
                      if old.get("extra", {}).get(k) != new["extra"].get(k))
        reasons.append(f"{', '.join(keys) or 'extra'} changed")
    ol, nl = old.get("libraries", {}), new["libraries"]
    reasons += [f"library {key} {ol.get(key)} -> {nl.get(key)}"
                for key in sorted(set(ol) | set(nl)) if ol.get(key) != nl.get(key)]
    return reasons or ["fingerprint differs"]
