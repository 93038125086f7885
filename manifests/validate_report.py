"""The result of `emoprep validate`: one `Check` per check (and tokenizer), with its status
and the offending ids or files, collected in a `ValidationReport`. The checks are in
`validate_store` (token stores) and `validate_manifests` (stage manifests, labels, splits).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"


@dataclass
class Check:
    name: str
    status: str
    detail: str
    offenders: list[str] = field(default_factory=list)
    tokenizer: str | None = None


@dataclass
class ValidationReport:
    out_root: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    def add(self, name: str, offenders: list[str], detail_ok: str, detail_fail: str,
            tokenizer: str | None = None, status_fail: str = FAIL) -> None:
        """Record a check that fails (or warns) exactly when it has offenders."""
        if offenders:
            self.checks.append(Check(name, status_fail, detail_fail.format(n=len(offenders)),
                                     sorted(set(offenders)), tokenizer))
        else:
            self.checks.append(Check(name, PASS, detail_ok, [], tokenizer))

    def to_dict(self) -> dict[str, Any]:
        return {"out_root": self.out_root, "ok": self.ok, "checks": [asdict(c) for c in self.checks]}
