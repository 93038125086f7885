"""Dependencies: ranges in pyproject.toml that a training environment can satisfy, and one
lock file that `make setup` installs exactly, so two clones get the same versions and the
same fingerprints."""
from __future__ import annotations

import re
import tomllib
from importlib import metadata
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.helpers.paths import REPO

# The libraries a trainer brings its own of: emoprep must install beside them, not over them.
TRAINER_OWNED = ("torch", "transformers", "numpy", "pandas")


def _project() -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return project


def _requirements(extras: bool = True) -> list[Requirement]:
    proj = _project()
    reqs = [Requirement(r) for r in proj["dependencies"]]
    if extras:
        reqs += [Requirement(r) for group in proj["optional-dependencies"].values() for r in group]
    return reqs


def _name(name: str) -> str:
    return str(canonicalize_name(name))


def _lock() -> dict[str, Version]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line)
        if m:
            pins[_name(m.group(1))] = Version(m.group(2))
    return pins


def test_trainer_libraries_are_ranges_with_a_floor_and_the_next_major_as_ceiling():
    """Ceiling: the major after the one the lock tests (a major release may break the API)."""
    by_name = {_name(r.name): r for r in _requirements(extras=False)}
    pins = _lock()
    for name in TRAINER_OWNED:
        spec = by_name[name].specifier
        assert not any(s.operator in ("==", "===", "~=") for s in spec), f"{name} is pinned: {spec}"
        floors = [Version(s.version) for s in spec if s.operator == ">="]
        ceilings = [Version(s.version) for s in spec if s.operator == "<"]
        assert floors and ceilings, f"{name} needs a floor and a ceiling: {spec}"
        assert floors[0] <= pins[name], f"{name}: the floor is above the locked {pins[name]}"
        assert ceilings[0] == Version(f"{pins[name].major + 1}"), \
            f"{name}: ceiling {ceilings[0]} is not the major after the locked {pins[name]}"
    # The torch a training environment is likely to hold already (a CUDA 2.9 or 2.14) is kept.
    assert {"2.9.1", "2.13.0", "2.14.1"} <= set(by_name["torch"].specifier.filter(["2.9.1", "2.13.0", "2.14.1"]))


def test_the_lock_pins_every_requirement_inside_its_range():
    pins = _lock()
    for req in _requirements():
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = _name(req.name)
        assert name in pins, f"{req} is not in requirements.lock: run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"requirements.lock pins {name}=={pins[name]} outside {req.specifier}: run `make lock`"


def test_this_environment_is_exactly_the_lock():
    """`make setup` installs from the lock, so what runs the tests is what the lock says."""
    pins = _lock()
    installed = {_name(d.metadata["Name"]): Version(d.version) for d in metadata.distributions()}
    wrong = {name: (str(v), str(installed.get(name))) for name, v in pins.items() if installed.get(name) != v}
    assert not wrong, f"installed versions differ from requirements.lock (pinned, installed): {wrong}"
    # Nothing beyond the lock but emoprep itself and the installer's own tools.
    extra = set(installed) - set(pins) - {"emoprep", "pip", "setuptools", "wheel"}
    assert not extra, f"installed but not in requirements.lock: {sorted(extra)}"


def test_the_license_is_an_spdx_expression():
    """The `license = {text = ...}` table makes setuptools warn on every install."""
    assert _project()["license"] == "MIT"
