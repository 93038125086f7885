"""`validate` on the manifests: labels, modality flags, splits, coverage, weights."""
from __future__ import annotations

import pandas as pd
import pytest

from emoprep.manifests.token_store.layout import RANDOM_INIT_BY_DESIGN
from emoprep.manifests.validate import validate
from emoprep.manifests.validate_manifests import check_weights
from emoprep.manifests.validate_report import FAIL, WARN, ValidationReport
from tests.helpers.token_fixtures import check, failed, index_of, save_index


def test_require_pretrained_fails_on_random_init(out):
    report = validate(out, require_pretrained=True)
    assert failed(report) == {"weights": ["vit-tiny-test: 17 rows random-init"]}


def test_require_pretrained_lets_architectures_without_a_published_checkpoint_warn():
    """The thesis's patch-28 ViT can only be random-init: a warning naming why, not a failure;
    beside a tokenizer that has weights to get, only that one fails."""
    index = pd.DataFrame({"tokenizer": ["vit-patch28-h2048"] * 3 + ["encodec-24khz"] * 2,
                          "weights": ["random-init"] * 3 + ["ab" * 32] * 2})
    report = ValidationReport("x")
    check_weights(report, index, require_pretrained=True)
    assert report.ok and report.checks[0].status == WARN
    why = RANDOM_INIT_BY_DESIGN["vit-patch28-h2048"]
    assert report.checks[0].offenders == [f"vit-patch28-h2048: 3 rows random-init by design ({why})"]
    index.loc[3:, "weights"] = "random-init"
    report = ValidationReport("x")
    check_weights(report, index, require_pretrained=True)
    assert not report.ok and report.checks[0].status == FAIL
    assert report.checks[0].detail.startswith("1 tokenizers with random-init weights")


@pytest.mark.parametrize("where", ["tokens", "split"])
def test_valence_out_of_range_names_the_id(out, where):
    path = out / f"manifests/{where}.parquet"
    df = pd.read_parquet(path)
    sid = str(df.at[2, "sample_id"])
    df.at[2, "valence"] = 1.2
    df.to_parquet(path, index=False)
    bad = failed(validate(out))
    assert set(bad) == {"va-range"} and bad["va-range"] == [f"{sid} (valence 1.2 in {where})"]


def test_flipped_modality_flag_names_the_id(out):
    df = index_of(out)
    i = df.index[df.sample_id.str.startswith("deam:")][0]
    df.at[i, "modality"] = 0
    save_index(out, df)
    bad = failed(validate(out))
    assert set(bad) == {"modality-flags"}
    assert all(o.startswith(str(df.at[i, "sample_id"]) + " ") for o in bad["modality-flags"])


def test_song_in_two_splits_names_the_song(out):
    for name in ("tokens", "split"):
        path = out / f"manifests/{name}.parquet"
        df = pd.read_parquet(path)
        i = df.index[df.sample_id == "deam:3:1"][0]
        df.at[i, "split"] = "train" if df.at[i, "split"] == "test" else "test"
        df.to_parquet(path, index=False)
    bad = failed(validate(out))
    assert set(bad) == {"split-disjoint"} and all(o.startswith("deam:3 (") for o in bad["split-disjoint"])


def _write_rejects(root, *rows) -> None:
    pd.DataFrame([{"sample_id": sid, "stage": stage, "reason": reason, "message": "x"} for sid, stage, reason in rows],
                 columns=["sample_id", "stage", "reason", "message"]
                 ).to_parquet(root / "manifests/rejects.parquet", index=False)


def test_labelled_id_without_tokens_fails_unless_tokens_rejected_it(out):
    df = index_of(out)
    gone = str(df.at[5, "sample_id"])
    save_index(out, df.drop(index=5))
    bad = failed(validate(out))
    assert bad == {"manifest-coverage": [f"{gone} (in split manifest, no tokens)"]}
    # a reject by a stage before `split` does not explain it: such an id should not be labelled
    _write_rejects(out, (gone, "spectrogram", "silent"), (gone, "images", "image-too-large"))
    assert failed(validate(out)) == {"manifest-coverage": [f"{gone} (in split manifest, no tokens)"]}
    _write_rejects(out, (gone, "spectrogram", "silent"), (gone, "tokens", "unreadable-image"))
    report = validate(out)
    assert report.ok
    assert "1 labelled ids without tokens were rejected by tokens" in check(report, "manifest-coverage").detail


def test_a_stage_downstream_of_split_may_also_explain_a_missing_token(out):
    """Read from the run's `_current.json` and each stage's `_DONE.json` inputs."""
    import json

    df = index_of(out)
    gone = str(df.at[5, "sample_id"])
    save_index(out, df.drop(index=5))
    dirs = {"labels": ("labels/fp0", {}), "split": ("split/fp0", {"labels": "labels/fp0"}),
            "filter": ("filter/fp0", {"split": "split/fp0"}), "late": ("late/fp0", {"filter": "filter/fp0"}),
            "images": ("images/fp0", {}), "tokens": ("tokens/t/fp0", {"split": "split/fp0"})}
    for stage, (rel, inputs) in dirs.items():
        (out / rel).mkdir(parents=True, exist_ok=True)
        (out / rel / "_DONE.json").write_text(json.dumps({"stage": stage, "inputs": inputs}))
    current = {k: {"dir": v[0], "fingerprint": "fp0"} for k, v in dirs.items()}
    (out / "manifests/_current.json").write_text(json.dumps(current))
    for stage, ok in (("late", True), ("filter", True), ("images", False), ("labels", False), ("split", False)):
        _write_rejects(out, (gone, stage, "some-reason"))
        # (these synthetic stage folders hold no manifests, so only the coverage check is asked)
        assert (check(validate(out), "manifest-coverage").status == "pass") is ok, stage
