"""Inputs of the tokens stage: every labelled id ends as a token row or a tokens reject."""
from __future__ import annotations

from emoprep.stages.tokens.stage import UNMATCHED_KEY, Tokens
from tests.helpers.token_fixtures import run_tokens, tokens_ctx


def test_unlabelled_and_mismatched_items_are_rejected(small_run):
    out_root, manifests = small_run
    split = manifests["split"]
    dropped = split["sample_id"].iloc[0]
    images = manifests["images"].copy()
    images.loc[0, "modality"] = 1  # says audio, label says image
    ctx = tokens_ctx(out_root, {**manifests, "images": images, "split": split.iloc[1:]})
    items = Tokens().plan(ctx)
    assert items[-1].key == UNMATCHED_KEY
    out = Tokens().process(items[-1], ctx.item_context())
    got = {r.sample_id: r.reason for r in out.rejects}
    assert got == {dropped: "unlabelled", images.loc[0, "sample_id"]: "modality-mismatch"}
    assert all(r.message.startswith(("spectrogram/", "images/")) for r in out.rejects)  # names the file


def test_labelled_ids_without_an_image_are_rejected_and_accounted_for(small_run):
    out_root, manifests = small_run
    spec = manifests["spectrogram"]
    gone = spec["sample_id"].iloc[[1, 4, 5]].tolist()
    ctx = tokens_ctx(out_root, {**manifests, "spectrogram": spec[~spec["sample_id"].isin(gone)]}, shard_size=4)
    index, rejects = run_tokens(ctx, publish=False)
    assert {r.sample_id: r.reason for r in rejects} == dict.fromkeys(gone, "no-image")
    assert all(r.message.startswith(r.sample_id + ":") and "spectrogram" in r.message for r in rejects)
    split_ids = manifests["split"]["sample_id"].tolist()
    assert sorted([*index["sample_id"], *(r.sample_id for r in rejects)]) == sorted(split_ids)
