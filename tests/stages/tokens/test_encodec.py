"""Thesis "Versions 1-2" tokenizers: EnCodec codes of 46 s clips and the patch-28 ViT, in the
tokens stage next to each other (one stage, one store per tokenizer), through the readers and
`validate`. The tiny EnCodec (`encodec-tiny-test`: 0.5 s clips → 4 codebooks × 750 frames)
runs the real code path in milliseconds; one test each builds the real 24 kHz EnCodec and the
real patch-28 ViT on a short input; the full 46 s clip is `slow`."""
from __future__ import annotations

import logging
import math
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from emoprep.manifests.token_store.layout import INDEX_FILE, KNOWN_CODEBOOKS, KNOWN_LAYOUTS, sequence_shape
from emoprep.manifests.token_store.reader import load_index, read_store_json
from emoprep.pipeline.errors import ConfigError
from emoprep.stages.common.naming import safe_name
from emoprep.stages.tokens import encodec, vit, weights
from emoprep.stages.tokens.resolve import weights_dir_for
from emoprep.stages.tokens.stage import Tokens, objects_dir, store_dir
from tests.helpers.token_fixtures import (
    V12_TINY,
    clip_label_rows,
    clip_signal,
    label_rows,
    run_tokens,
    sha,
    split_rows,
    tokens_ctx,
    v12_inputs,
    write_clips,
    write_pngs,
)

TINY = "encodec-tiny-test"
TINY_VIT = "vit-tiny-test"


@pytest.fixture(scope="module")
def tiny_model():
    return encodec.build_model(TINY, weights.WeightsSource("random", TINY), seed=0)


def tiny_clips(n: int, seed: int = 0) -> np.ndarray:
    """n different clips of the tiny tokenizer's exact length at its rate."""
    return np.stack([clip_signal(encodec.clip_samples(TINY), encodec.sample_rate(TINY), seed + k) for k in range(n)])


def hf_codes(model, clip: np.ndarray, tokenizer: str = TINY) -> np.ndarray:
    """The reference: transformers' own `EncodecModel.encode` on one clip."""
    import torch

    with torch.inference_mode():
        out = model.encode(torch.from_numpy(clip)[None, None], bandwidth=encodec.bandwidth(tokenizer))
    codes: np.ndarray = out.audio_codes[0, 0].numpy()
    return codes


@pytest.fixture
def encode_calls(monkeypatch):
    """Clips per EnCodec call (the expensive part the object store saves)."""
    calls = []
    real = encodec.encode

    def counting(model, audio, tokenizer, compute):
        calls.append(len(audio))
        return real(model, audio, tokenizer, compute)

    monkeypatch.setattr(encodec, "encode", counting)
    return calls


# ---- the architectures ---------------------------------------------------------------------

def test_encodec_24khz_layout_follows_from_the_published_config():
    """`EncodecConfig()` is facebook/encodec_24khz's config; 46 s at 24 kbps → 32 × 3450."""
    cfg = encodec.arch_config("encodec-24khz")
    published = {"sampling_rate": 24000, "audio_channels": 1, "upsampling_ratios": [8, 5, 4, 2],
                 "codebook_size": 1024, "codebook_dim": 128, "hidden_size": 128, "num_filters": 32,
                 "num_lstm_layers": 2, "use_causal_conv": True, "normalize": False, "chunk_length_s": None,
                 "target_bandwidths": [1.5, 3.0, 6.0, 12.0, 24.0]}
    got = {k: list(v) if isinstance(v, tuple) else v for k, v in ((k, getattr(cfg, k)) for k in published)}
    assert got == published
    assert (cfg.hop_length, cfg.frame_rate) == (320, 75)
    assert encodec.clip_samples("encodec-24khz") == 46 * 24000 == 1_104_000
    assert encodec.token_layout("encodec-24khz") == {"codes": (32, 3450)} == KNOWN_LAYOUTS["encodec-24khz"]
    assert KNOWN_CODEBOOKS["encodec-24khz"] == encodec.codebook_size("encodec-24khz") == 1024
    # the clips stage's 2,028,600 samples at 44.1 kHz resample to exactly the model's length
    assert round(2_028_600 * 24000 / 44100) == 1_104_000


def test_real_encodec_on_a_short_clip_gives_32_codebooks_at_75_hz_and_decodes_back():
    """The real 24 kHz architecture (seeded random init): 2 s → 32 × 150 codes, equal to
    transformers' `encode`, and the codes decode to 2 s of audio."""
    model = encodec.build_model("encodec-24khz", weights.WeightsSource("random", "encodec-24khz"), seed=0)
    assert model.quantizer.get_num_quantizers_for_bandwidth(24.0) == 32
    clip = clip_signal(2 * 24000, 24000, seed=1)
    codes = encodec.encode(model, clip[None], "encodec-24khz", weights.Compute("cpu", None))
    assert codes.shape == (1, 32, 150) and codes.dtype == np.int16
    assert codes.min() >= 0 and codes.max() < 1024 and len(np.unique(codes)) > 100
    np.testing.assert_array_equal(codes[0], hf_codes(model, clip, "encodec-24khz"))
    assert encodec.decode(model, codes).shape == (1, 2 * 24000)


def test_every_layout_table_entry_matches_what_the_models_produce(tiny_model):
    for name in encodec.ARCHS:
        assert encodec.token_layout(name) == KNOWN_LAYOUTS[name]
    codes = encodec.encode(tiny_model, tiny_clips(1), TINY, weights.Compute("cpu", None))
    assert codes.shape[1:] == KNOWN_LAYOUTS[TINY]["codes"] == (4, 750)
    assert vit.token_layout("vit-patch28-h2048") == {"cls": (2048,), "patches": (64, 2048)}
    assert sequence_shape(KNOWN_LAYOUTS["vit-patch28-h2048"]) == [65, 2048]


def test_patch28_vit_gives_64_patches_of_2048_and_is_recorded_as_not_pretrained(tmp_path, caplog):
    """The real patch-28 / hidden-2048 architecture on one image, through the stage."""
    cfg = vit.arch_config("vit-patch28-h2048")
    assert (cfg.patch_size, cfg.hidden_size, cfg.num_attention_heads, cfg.num_hidden_layers,
            cfg.intermediate_size, cfg.image_size) == (28, 2048, 32, 12, 3072, 224)
    assert cfg.hidden_size // cfg.num_attention_heads == 64  # ViT-base's head width
    labels = label_rows(n_songs=0, n_images=1)
    manifests = {"images": write_pngs(tmp_path, labels)["images"], "split": split_rows(labels, tmp_path)}
    weights._WARNED.clear()
    with caplog.at_level(logging.WARNING):
        index, rejects = run_tokens(tokens_ctx(tmp_path, manifests, tokenizer="vit-patch28-h2048",
                                               sources=("images",), num_workers=0), publish=False)
    assert "RANDOM INIT" in caplog.text and "No published checkpoint" in caplog.text
    assert not rejects and index["shape"].map(list).tolist() == [[65, 2048]]
    assert set(index["weights"]) == {"random-init"} and set(index["tokenizer"]) == {"vit-patch28-h2048"}
    assert np.load(tmp_path / index["cls_path"][0]).shape == (1, 2048)
    assert np.load(tmp_path / index["patches_path"][0]).shape == (1, 64, 2048)


# ---- batching, round trip, random init -------------------------------------------------------

def test_batched_codes_equal_one_clip_at_a_time(tiny_model):
    clips = tiny_clips(7)
    compute = weights.Compute("cpu", None)
    alone = np.stack([hf_codes(tiny_model, c) for c in clips])
    assert len(np.unique(alone)) == 16  # every code of the tiny codebook is used: not a trivial case
    for batch in (1, 2, 3, 5, 7):
        got = np.concatenate([encodec.encode(tiny_model, clips[i:i + batch], TINY, compute)
                              for i in range(0, len(clips), batch)])
        np.testing.assert_array_equal(got, alone, err_msg=f"batch size {batch}")


def test_codes_decode_back_to_a_clip_of_the_same_length(tiny_model):
    codes = encodec.encode(tiny_model, tiny_clips(3), TINY, weights.Compute("cpu", None))
    audio = encodec.decode(tiny_model, codes)
    assert audio.shape == (3, encodec.clip_samples(TINY)) and np.isfinite(audio).all()


def test_random_codebooks_are_seeded_spread_and_leave_the_callers_rng_alone():
    import torch

    def books(seed):
        m = encodec.build_model(TINY, weights.WeightsSource("random", TINY), seed=seed)
        return torch.stack([layer.codebook.embed for layer in m.quantizer.layers])

    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = books(0)
    assert torch.equal(torch.rand(1), before)
    assert torch.equal(a, books(0)) and not torch.equal(a, books(1))
    # transformers' own init leaves the codebooks at zero: every code would be 0
    from transformers import EncodecModel

    book = EncodecModel(encodec.arch_config(TINY)).quantizer.layers[0].codebook
    assert not book.embed.any()  # type: ignore[union-attr, operator]  # torch: a Module attribute is Tensor | Module
    assert all(b.abs().sum() > 0 for b in a) and len({tuple(b[0].tolist()) for b in a}) == len(a)


# ---- the stage with two tokenizers -------------------------------------------------------------

@pytest.fixture
def v12(tmp_path):
    return tmp_path, v12_inputs(tmp_path, n_songs=5, n_images=3)


def test_one_stage_writes_a_store_per_tokenizer_and_one_index(v12, tiny_model):
    out_root, manifests = v12
    ctx = tokens_ctx(out_root, manifests, shard_size=2, **V12_TINY)
    stage = Tokens()
    assert stage.output_subdir(ctx.params) == "tokens/encodec-tiny-test+vit-tiny-test"
    assert stage.inputs(ctx.params) == ["clips", "images", "split"]
    items = stage.plan(ctx)
    assert [it.key for it in items] == ["encodec-tiny-test/shard-00000", "encodec-tiny-test/shard-00001",
                                        "encodec-tiny-test/shard-00002", "vit-tiny-test/shard-00000",
                                        "vit-tiny-test/shard-00001"]
    index, rejects = run_tokens(ctx)
    assert rejects == [] and len(index) == 8
    assert index.groupby("tokenizer")["sample_id"].apply(list).to_dict() == {
        TINY: ["deam:2", "deam:3", "deam:4", "deam:5", "deam:6"],
        TINY_VIT: ["foodpics:0001", "foodpics:0002", "foodpics:0003"]}
    audio = index[index["tokenizer"] == TINY]
    assert audio["shape"].map(list).tolist() == [[4, 750]] * 5 and set(audio["dtype"]) == {"int16"}
    assert audio["audio_path"].tolist() == manifests["clips"]["path"].tolist()  # ids trace to the clips
    assert audio["path"].equals(audio["codes_path"]) and audio["cls_path"].isna().all()
    # every row holds the codes of its own clip, computed from the FLAC as the stage reads it
    for r in audio.itertuples():
        clip, err, _sha = encodec.load_clip(out_root / r.audio_path, TINY)
        assert err is None and clip is not None and clip.shape == (encodec.clip_samples(TINY),)
        codes = np.load(out_root / r.codes_path, allow_pickle=False)
        assert codes.dtype == np.int16 and codes.shape[1:] == (4, 750)
        np.testing.assert_array_equal(codes[r.row], hf_codes(tiny_model, clip))
    # two self-describing store folders, and one object store per tokenizer
    for tok, n in ((TINY, 5), (TINY_VIT, 3)):
        folder = store_dir(ctx.out_dir, ctx.params, tok)
        assert folder == ctx.out_dir / tok
        meta = read_store_json(folder)
        own = pd.read_parquet(folder / INDEX_FILE)
        assert meta["tokenizer"] == tok and meta["n_samples"] == n == len(own) and set(own["tokenizer"]) == {tok}
        assert (out_root / "tokens" / tok / "objects").is_dir()
    meta = read_store_json(ctx.out_dir / TINY)
    assert meta["arrays"] == {"codes": [4, 750]} and meta["dtype"] == "int16" and meta["codebook_size"] == 16
    assert "cls_path" not in pd.read_parquet(ctx.out_dir / TINY / INDEX_FILE).columns
    # a store folder opened on its own reads its files by name
    alone = load_index(ctx.out_dir / TINY)
    assert alone.arrays() == ["codes"] and alone.resolve(audio["codes_path"].iloc[0]).is_file()


def test_audio_batch_size_does_not_change_stored_bytes(v12, encode_calls):
    out_root, manifests = v12
    digests = set()
    for bs in (1, 3):
        ctx = tokens_ctx(out_root, manifests, out_dir=out_root / f"b{bs}", audio_batch_size=bs, **V12_TINY)
        for tok in (TINY, TINY_VIT):  # compute, do not re-use
            shutil.rmtree(objects_dir(out_root, ctx.params, tok), ignore_errors=True)
        encode_calls.clear()
        index, _ = run_tokens(ctx, publish=False)
        assert sum(encode_calls) == 5 and max(encode_calls) == bs
        digests.add(tuple(index["codes_sha256"].dropna()))
    assert len(digests) == 1


def test_bad_clips_are_rejected_with_reasons_and_the_rest_kept(v12):
    out_root, manifests = v12
    clips = manifests["clips"].copy()
    paths = dict(zip(clips["sample_id"], clips["path"], strict=True))
    raw = (out_root / paths["deam:2"]).read_bytes()
    (out_root / paths["deam:2"]).write_bytes(raw[:200])                                 # truncated FLAC
    sf.write(out_root / paths["deam:3"], np.zeros(44100, np.float32), 44100, format="FLAC")  # 1.0 s, not 0.5
    (out_root / paths["deam:4"]).unlink()                                               # gone
    nan = out_root / "clips/fp0/audio/5.npy"
    np.save(nan, np.full(22050, np.nan, np.float32), allow_pickle=False)                # NaN samples
    clips.loc[clips["sample_id"] == "deam:5", "path"] = "clips/fp0/audio/5.npy"
    index, rejects = run_tokens(tokens_ctx(out_root, {**manifests, "clips": clips}, shard_size=10, **V12_TINY))
    got = {r.sample_id: r.reason for r in rejects}
    assert got == {"deam:2": "unreadable-audio", "deam:3": "bad-audio-length", "deam:4": "missing-file",
                   "deam:5": "non-finite-audio"}
    assert all(r.message.startswith("clips/fp0/audio/") for r in rejects)  # names the file
    assert "1.000 s" in next(r.message for r in rejects if r.sample_id == "deam:3")
    kept = index[index["tokenizer"] == TINY]
    assert kept["sample_id"].tolist() == ["deam:6"] and kept["row"].tolist() == [0]
    assert len(np.load(out_root / kept["codes_path"].iloc[0])) == 1


def test_npy_clips_use_the_manifest_rate_and_give_the_flac_codes(v12):
    """clips.audio_format = "npy": float32 samples, the rate comes from the manifest row."""
    out_root, manifests = v12
    clips = manifests["clips"].copy()
    for i, r in clips.iterrows():
        data, _ = sf.read(out_root / r.path, dtype="float32")
        rel = r.path.replace(".flac", ".npy")
        np.save(out_root / rel, data, allow_pickle=False)
        clips.loc[i, "path"] = rel
    a, _ = run_tokens(tokens_ctx(out_root, manifests, out_dir=out_root / "flac", **V12_TINY), publish=False)
    b, rejects = run_tokens(tokens_ctx(out_root, {**manifests, "clips": clips}, out_dir=out_root / "npy",
                                       **V12_TINY), publish=False)
    assert rejects == []
    assert a["codes_sha256"].dropna().tolist() == b["codes_sha256"].dropna().tolist()
    no_rate = clips.drop(columns=["sample_rate"])
    _, rejects = run_tokens(tokens_ctx(out_root, {**manifests, "clips": no_rate}, out_dir=out_root / "x",
                                       **V12_TINY), publish=False)
    assert {r.reason for r in rejects} == {"unreadable-audio"} and "sample_rate" in rejects[0].message


def test_a_new_split_relinks_the_codes_without_running_encodec(v12, encode_calls):
    out_root, manifests = v12
    run_tokens(tokens_ctx(out_root, manifests, out_dir=out_root / "A", **V12_TINY), publish=False)
    assert sum(encode_calls) == 5
    encode_calls.clear()
    other = manifests["split"].copy()
    other["split"] = np.where(other["split"] == "train", "test", "train")
    b, _ = run_tokens(tokens_ctx(out_root, {**manifests, "split": other}, out_dir=out_root / "B", **V12_TINY),
                      publish=False)
    assert encode_calls == []
    sa, sb = (out_root / "A" / TINY / "codes-00000.npy").stat(), (out_root / "B" / TINY / "codes-00000.npy").stat()
    assert sa.st_ino == sb.st_ino  # one copy of the bytes, hard-linked
    assert b.set_index("sample_id")["split"].to_dict() == other.set_index("sample_id")["split"].to_dict()


def test_labelled_clips_without_audio_are_no_input_rejects(v12):
    out_root, manifests = v12
    clips = manifests["clips"]
    _, rejects = run_tokens(tokens_ctx(out_root, {**manifests, "clips": clips.iloc[1:]}, **V12_TINY), publish=False)
    assert [(r.sample_id, r.reason) for r in rejects] == [("deam:2", "no-input")]


# ---- parameters and weights ---------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    {"tokenizers": {"spectrogram": TINY}},                 # not a source
    {"tokenizers": {"clips": "encodec-48khz"}},            # unknown tokenizer
    {"audio_batch_size": -1},
    {"weights": {"vit-base-patch16-224": "/x"}},           # not a tokenizer of this stage
])
def test_impossible_parameters_are_configuration_errors(v12, bad):
    out_root, manifests = v12
    params = {**V12_TINY, **bad}
    with pytest.raises(ConfigError):
        Tokens().plan(tokens_ctx(out_root, manifests, out_dir=out_root / "x", **params))


def _save_tiny_encodec(folder, seed=7, **overrides):
    import torch
    from transformers import EncodecModel

    cfg = encodec.arch_config(TINY)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    torch.manual_seed(seed)
    model = EncodecModel(cfg)
    encodec.init_random_codebooks(model.eval(), seed)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def test_encodec_weights_folder_is_loaded_checksummed_and_recorded(v12):
    out_root, manifests = v12
    folder = _save_tiny_encodec(out_root.parent / "enc-ckpt")
    want = sha(folder / "model.safetensors")
    ctx = tokens_ctx(out_root, manifests, weights=str(folder), **V12_TINY)  # one folder, two tokenizers
    extra = Tokens().fingerprint_extra(ctx)["tokenizers"]
    assert extra[TINY]["weights"] == {"name": "enc-ckpt", "sha256": want, "seed": 0}
    assert extra[TINY_VIT]["weights"]["sha256"] == "random-init"  # matched by model_type: not the ViT's
    index, _ = run_tokens(ctx, publish=False)
    audio = index[index["tokenizer"] == TINY]
    assert set(audio["weights"]) == {want}
    from transformers import EncodecModel

    ref = EncodecModel.from_pretrained(folder).eval()
    r = audio.iloc[0]
    clip, _, _ = encodec.load_clip(out_root / r.audio_path, TINY)
    assert clip is not None
    np.testing.assert_array_equal(np.load(out_root / r.codes_path)[r.row], hf_codes(ref, clip))
    # a table names the folder per tokenizer
    assert weights_dir_for(tokens_ctx(out_root, manifests, weights={TINY: str(folder)}, **V12_TINY).params,
                           TINY_VIT) is None


def test_wrong_encodec_checkpoints_are_configuration_errors(tmp_path, v12):
    out_root, manifests = v12
    wide = _save_tiny_encodec(tmp_path / "wide", num_filters=8)
    with pytest.raises(ConfigError, match="num_filters"):
        encodec.build_model(TINY, encodec.locate_weights(TINY, str(wide)), seed=0)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "config.json").write_text('{"model_type": "encodec"}')
    (tmp_path / "bin" / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ConfigError, match="EnCodec checkpoint"):
        encodec.locate_weights(TINY, str(tmp_path / "bin"))
    # one folder of a kind none (or two) of the tokenizers has: say how to name it per tokenizer
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"model_type": "wav2vec2"}')
    ctx = tokens_ctx(out_root, manifests, weights=str(tmp_path / "other"), **V12_TINY)
    with pytest.raises(ConfigError, match=r"tokens\.weights="):
        Tokens().fingerprint_extra(ctx)


def test_random_init_is_loud_and_recorded_per_tokenizer(v12, caplog):
    out_root, manifests = v12
    weights._WARNED.clear()
    with caplog.at_level(logging.WARNING):
        extra = Tokens().fingerprint_extra(tokens_ctx(out_root, manifests, seed=5, **V12_TINY))
    assert "NO PRETRAINED WEIGHTS for encodec-tiny-test" in caplog.text
    assert extra == {"tokenizers": {
        TINY: {"weights": {"name": TINY, "sha256": "random-init", "seed": 5}, "device": "cpu",
               "compute_dtype": "float32"},
        TINY_VIT: {"weights": {"name": TINY_VIT, "sha256": "random-init", "seed": 5}, "device": "cpu",
                   "compute_dtype": "float32", "preprocessing": vit.DEFAULT_PREPROCESSING.record()}}}


def test_thesis_v12_recipe_configures_both_tokenizers_in_one_tokens_stage():
    from tests.helpers.catalog import recipe

    rec = recipe("thesis-v12")
    p = rec.params_for(Tokens())
    assert rec.targets == ["tokens", "report"]  # the tokens of both modalities, then the report
    assert p.tokenizers == {"clips": "encodec-24khz", "images": "vit-patch28-h2048"}
    assert Tokens().inputs(p) == ["clips", "images", "split"]
    assert Tokens().output_subdir(p) == "tokens/encodec-24khz+vit-patch28-h2048"
    assert list(rec.sections["labels"]["sources"]) == ["clips", "images"]


# ---- through the real runner: validate and the readers ------------------------------------------

def _fake_v12_upstream(n_songs=5, n_images=4, clip_s=0.5):
    """The built-in catalog with stand-ins: `labels` (clip + image label rows), `fake-clips`
    (FLACs), `fake-images` (PNGs)."""
    from PIL import Image

    from emoprep.pipeline.atomic import atomic_path
    from emoprep.pipeline.stage import NoParams, Outcome, Stage, WorkItem
    from emoprep.stages.catalog import builtin_catalog

    class FakeLabels(Stage[NoParams]):
        name = "labels"

        def run(self, ctx):
            rows = clip_label_rows(n_songs=n_songs, n_images=n_images).to_dict("records")
            return Outcome(rows=[{str(k): v for k, v in row.items()} for row in rows])

    class FakeFiles(Stage[NoParams]):
        default_inputs = ("labels",)
        modality = 1

        def plan(self, ctx):
            df = ctx.input_manifest("labels")
            return [WorkItem(r.sample_id, {"source_id": r.source_id}) for r in df.itertuples()
                    if r.modality == self.modality]

        def process(self, item, ctx):
            seed = sum(map(ord, item.key))
            if self.modality:
                out = ctx.out_dir / f"{safe_name(item.key)}.flac"
                with atomic_path(out) as tmp:
                    sf.write(tmp, clip_signal(int(clip_s * 44100), 44100, seed), 44100, format="FLAC",
                             subtype="PCM_24")
            else:
                out = ctx.out_dir / f"{safe_name(item.key)}.png"
                with atomic_path(out) as tmp:
                    rng = np.random.default_rng(seed)
                    Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)).save(tmp, format="PNG")
            return Outcome(rows=[{"sample_id": item.key, **item.payload, "modality": self.modality,
                                  "path": ctx.rel(out), **({"sample_rate": 44100} if self.modality else {})}])

    class FakeClips(FakeFiles):
        name = "fake-clips"

    class FakeImages(FakeFiles):
        name = "fake-images"
        modality = 0

    return builtin_catalog().with_stages([FakeLabels(), FakeClips(), FakeImages()])


def test_runner_builds_both_stores_that_validate_and_read_as_thesis_tokens(tmp_path, monkeypatch):
    from emoprep.manifests.hf_view import hf_parquet_view
    from emoprep.manifests.reader import TokenDataset
    from emoprep.manifests.validate import validate
    from emoprep.pipeline.executors.inline import InlineExecutor
    from emoprep.pipeline.recipe import Recipe
    from emoprep.pipeline.runner import Runner

    recipe = Recipe(name="t12", targets=["tokens"], catalog=_fake_v12_upstream(), sections={
        "split": {"seed": 0, "method": "hash"},
        "tokens": {"sources": ["fake-clips", "fake-images"], "shard_size": 3, "num_workers": 0,
                   "tokenizers": {"fake-clips": TINY, "fake-images": TINY_VIT}}})
    summary = {s.name: s for s in Runner(recipe, tmp_path, None, "cpu").run("tokens", InlineExecutor())}
    assert summary["tokens"].rows == 9 and summary["tokens"].rejects == 0
    report = validate(tmp_path)
    assert report.ok, [(c.name, c.offenders) for c in report.failures]
    checks = {(c.name, c.tokenizer): c.status for c in report.checks}
    assert checks[("code-range", TINY)] == "pass" and ("finite-values", TINY) not in checks
    assert checks[("finite-values", TINY_VIT)] == "pass"
    index = pd.read_parquet(tmp_path / "manifests/tokens.parquet")
    assert sorted(set(index["tokenizer"])) == [TINY, TINY_VIT]
    assert all(p.startswith("tokens/encodec-tiny-test+vit-tiny-test/") for p in index["path"])
    # the thesis's enhanced tokens: every code row + [valence, arousal, modality]
    audio = TokenDataset(tmp_path, tokenizer=TINY, enhanced=True)
    item = audio[0]
    r = index.set_index("sample_id").loc[item["sample_id"]]
    codes = np.load(tmp_path / r.codes_path, allow_pickle=False)[r.row]
    assert item["tokens"].shape == (4, 753) and item["tokens"].dtype.is_floating_point
    np.testing.assert_array_equal(item["tokens"][:, :750].numpy(), codes.astype(np.float32))
    np.testing.assert_allclose(item["tokens"][:, 750:].numpy(), [[r.valence, r.arousal, 1.0]] * 4, rtol=1e-6)
    images = TokenDataset(tmp_path, tokenizer=TINY_VIT, enhanced=True, include_cls=False)
    assert images[0]["tokens"].shape == (196, 35) and images[0]["modality"] == 0
    assert len(TokenDataset(tmp_path, tokenizer=TINY_VIT)[0]["tokens"]) == 197
    # the Hugging Face view of the code store: int16 [4][750] per row
    import pyarrow.parquet as pq

    files = hf_parquet_view(tmp_path, tokenizer=TINY)
    t = pq.read_table(files["train"][0] if "train" in files else next(iter(files.values()))[0])
    assert "codes" in t.column_names and "cls" not in t.column_names and "image_path" not in t.column_names
    first = np.asarray(t.column("codes")[0].as_py(), dtype=np.int16)
    assert first.shape == (4, 750)
    # the one store of a tokenizer is found without the published manifest
    (tmp_path / "manifests/tokens.parquet").rename(tmp_path / "tokens.bak")
    assert load_index(tmp_path, TINY).arrays() == ["codes"]


# ---- validate on code stores ----------------------------------------------------------------------

@pytest.fixture
def code_store(v12):
    out_root, manifests = v12
    ctx = tokens_ctx(out_root, manifests, **V12_TINY)
    run_tokens(ctx)
    return out_root


def _rewrite_codes(root, fn):
    idx = pd.read_parquet(root / "manifests/tokens.parquet")
    rel = idx.loc[idx["tokenizer"] == TINY, "codes_path"].iloc[0]
    arr = fn(np.load(root / rel))
    (root / rel).unlink()  # a new file: the object's hard link keeps the old bytes
    np.save(root / rel, arr, allow_pickle=False)
    idx.loc[idx["codes_path"] == rel, "codes_sha256"] = sha(root / rel)
    if arr.dtype != np.int16:
        idx.loc[idx["codes_path"] == rel, "dtype"] = arr.dtype.name
    idx.to_parquet(root / "manifests/tokens.parquet", index=False)
    return idx[idx["codes_path"] == rel]


def test_validate_passes_a_mixed_store_and_names_codes_outside_the_codebook(code_store):
    from emoprep.manifests.validate import validate

    assert validate(code_store).ok
    rows = _rewrite_codes(code_store, lambda a: np.where(np.arange(a.shape[2]) == 7, 16, a).astype(np.int16))
    report = validate(code_store)
    bad = {c.name: c.offenders for c in report.failures}
    assert list(bad) == ["code-range"] and len(bad["code-range"]) == len(rows)
    assert all("..16)" in o for o in bad["code-range"])


def test_validate_refuses_codes_stored_as_floats(code_store):
    from emoprep.manifests.validate import validate

    _rewrite_codes(code_store, lambda a: a.astype(np.float16))
    bad = {c.name for c in validate(code_store).failures}
    assert bad == {"index-shapes"}  # float16 is not a code dtype


@pytest.mark.slow
def test_a_46_s_clip_gives_32_by_3450_codes_that_decode_to_46_s(tmp_path):
    """The acceptance shape on the real model: one 46.0 s clip at 44.1 kHz through the stage."""
    labels = clip_label_rows(n_songs=1, n_images=0)
    manifests = {"clips": write_clips(tmp_path, labels, clip_s=46.0), "split": split_rows(labels, tmp_path)}
    index, rejects = run_tokens(tokens_ctx(tmp_path, manifests, tokenizer="encodec-24khz", sources=("clips",)))
    assert not rejects and index["shape"].map(list).tolist() == [[32, 3450]]
    codes = np.load(tmp_path / index["codes_path"][0])
    assert codes.shape == (1, 32, 3450) and codes.dtype == np.int16
    model = encodec.get_encodec("encodec-24khz", None, 0, "cpu", "auto").model
    assert encodec.decode(model, codes).shape == (1, 46 * 24000)
    assert math.ceil(46 * 24000 / 320) == 3450
