"""`hf:` tokenizers: any Hugging Face encoder checkpoint, every layer, whole or pooled.

Each architecture is a tiny random-init checkpoint saved with `save_pretrained`; the stored
arrays must equal the checkpoint's own `output_hidden_states`, run one input at a time on
its own processor's output, within float16 storage rounding."""
from __future__ import annotations

import inspect
import json
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from PIL import Image

from emoprep.manifests.reader import TokenDataset
from emoprep.pipeline.errors import ConfigError
from emoprep.stages.tokens.hf_checkpoint import resolve
from emoprep.stages.tokens.hf_model import cut_windows, input_limit
from tests.helpers.hf_checkpoints import BUILDERS, load_own, place_in_cache, save_checkpoint
from tests.helpers.token_fixtures import (
    label_rows,
    run_tokens,
    split_rows,
    tokens_ctx,
    v12_inputs,
    write_pngs,
)

IMAGE_ARCHS = [a for a, (_b, m) in BUILDERS.items() if m == "image"]
AUDIO_ARCHS = [a for a, (_b, m) in BUILDERS.items() if m == "audio"]
TOL = 2e-3  # float16 storage rounding (rtol and atol) of values of order 1


def _image_run(root):
    labels = label_rows(n_songs=0, chunks=0, n_images=3)
    split = split_rows(labels, root)
    return {"images": write_pngs(root, labels)["images"], "split": split}


def _audio_run(root, clip_s):
    return v12_inputs(root, n_songs=3, n_images=0, clip_s=clip_s)


def _own_states(model, proc, item, modality, window=None):
    """The checkpoint's own hidden states of one input: [windows, layers, tokens, dim]."""
    if modality == "image":
        arr = np.asarray(Image.open(item))
        rgb = np.repeat(arr[..., None], 3, axis=2) if arr.ndim == 2 else arr
        feats = [proc(images=[rgb], return_tensors="pt")]
    else:
        x, rate = sf.read(item, dtype="float32", always_2d=True)
        x = soxr.resample(x.mean(axis=1), rate, proc.sampling_rate, quality="HQ").astype(np.float32)
        feats = [proc([w], sampling_rate=proc.sampling_rate, return_tensors="pt") for w in cut_windows(x, window)]
    names = set(inspect.signature(model.forward).parameters)
    out = []
    for f in feats:
        with torch.inference_mode():
            hs = model(**{k: v for k, v in f.items() if k in names}, output_hidden_states=True).hidden_states
        out.append(torch.stack(hs, dim=1)[0].numpy())
    return np.stack(out)


def _run(root, manifests, tok, sources, **params):
    ctx = tokens_ctx(root, manifests, tokenizer=tok, sources=sources, shard_size=2, batch_size=2, **params)
    index, rejects = run_tokens(ctx)
    assert not rejects, rejects
    return index


@pytest.mark.parametrize("arch", IMAGE_ARCHS + AUDIO_ARCHS)
def test_stored_layers_are_the_models_own_hidden_states(tmp_path, arch):
    modality = BUILDERS[arch][1]
    folder = save_checkpoint(tmp_path / "ckpt", arch)
    tok = f"hf:{folder}"
    root = tmp_path / "out"
    root.mkdir()
    if modality == "image":
        manifests, sources, col = _image_run(root), ("images",), "images"
    else:
        manifests, sources, col = _audio_run(root, clip_s=2.5), ("clips",), "clips"
    index = _run(root, manifests, tok, sources, layers="all", pooling="none")
    cfg = json.loads((folder / "config.json").read_text())
    n_layers = cfg.get("encoder_layers", cfg.get("num_hidden_layers")) + 1
    assert list(index["layers"].iloc[0]) == list(range(n_layers))
    model, proc = load_own(folder)
    window = input_limit(resolve(tok))
    ds = TokenDataset(root, tokenizer=tok)
    paths = dict(zip(manifests[col]["sample_id"], manifests[col]["path"], strict=True))
    own_all = {}
    for i in range(len(ds)):
        own = _own_states(model, proc, root / paths[ds.sample_ids[i]], modality, window)
        own_all[ds.sample_ids[i]] = own
        want = own[0] if modality == "image" else own.transpose(1, 0, 2, 3)  # [L, (W,) T, D]
        got = ds.tokens(i)
        assert got.shape == want.shape and got.shape[0] == n_layers
        np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)
    # pooled: mean over tokens and windows of the same hidden states, one layer at a time
    root2 = tmp_path / "out2"
    root2.mkdir()
    manifests2 = _image_run(root2) if modality == "image" else _audio_run(root2, clip_s=2.5)
    _run(root2, manifests2, tok, sources, layers="all", pooling="mean")
    for k in (0, n_layers - 1):
        pooled = TokenDataset(root2, tokenizer=tok, layer=k)
        for i in range(len(pooled)):
            want = own_all[pooled.sample_ids[i]][:, k].mean(axis=1).mean(axis=0)
            np.testing.assert_allclose(pooled[i]["tokens"].numpy(), want, rtol=TOL, atol=TOL)


def test_batched_equals_one_at_a_time(tmp_path):
    folder = save_checkpoint(tmp_path / "ckpt", "wav2vec2")
    stores = []
    for bs in (1, 3):
        root = tmp_path / f"b{bs}"
        root.mkdir()
        ctx = tokens_ctx(root, _audio_run(root, clip_s=0.5), tokenizer=f"hf:{folder}", sources=("clips",),
                         shard_size=3, batch_size=bs, layers="all")
        run_tokens(ctx)
        ds = TokenDataset(root, tokenizer=f"hf:{folder}")
        stores.append(np.stack([ds.tokens(i) for i in range(len(ds))]))
    np.testing.assert_allclose(stores[0], stores[1], rtol=TOL, atol=TOL)


def test_layer_subset_and_last(tmp_path):
    folder = save_checkpoint(tmp_path / "ckpt", "vit")
    root = tmp_path / "out"
    root.mkdir()
    index = _run(root, _image_run(root), f"hf:{folder}", ("images",), layers=[2, 0], pooling="cls")
    assert list(index["layers"].iloc[0]) == [2, 0] and index["pooling"].iloc[0] == "cls"
    assert TokenDataset(root, tokenizer=f"hf:{folder}", layer=2)[0]["tokens"].shape == (32,)
    with pytest.raises(ValueError, match="holds hidden states"):
        TokenDataset(root, tokenizer=f"hf:{folder}", layer=1)
    store = json.loads(next(root.glob("tokens/hf-*/*/store.json")).read_text())
    assert store["layers"] == [2, 0] and store["pooling"] == "cls" and store["shape"] == [2, 32]


def test_resolves_by_id_from_the_hf_cache_offline(tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    snap = place_in_cache(cache, "tiny-org/tiny-vit", save_checkpoint(tmp_path / "ckpt", "vit"), "ab" * 20)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ckpt = resolve("hf:tiny-org/tiny-vit")
    assert ckpt.folder == snap and ckpt.revision == "ab" * 20 and ckpt.has_weights
    root = tmp_path / "out"
    root.mkdir()
    _run(root, _image_run(root), "hf:tiny-org/tiny-vit", ("images",), pooling="mean")
    assert TokenDataset(root, tokenizer="hf:tiny-org/tiny-vit", layer=2)[0]["tokens"].shape == (32,)


def test_windows_follow_the_stated_rule():
    x = np.zeros(46 * 100, np.float32)  # 46 s at 100 Hz, 10 s windows
    assert [len(w) for w in cut_windows(x, 1000)] == [1000] * 4 + [600]
    assert [len(w) for w in cut_windows(x[:4400], 1000)] == [1000] * 4  # a 4 s rest < half a window
    assert [len(w) for w in cut_windows(x[:300], 1000)] == [300]
    assert len(cut_windows(x, None)) == 1


# ---- refused before any item runs (exit 2) ---------------------------------------------

def _plan(root, manifests, tok, sources, **params):
    from emoprep.stages.tokens.stage import Tokens

    ctx = tokens_ctx(root, manifests, tokenizer=tok, sources=sources, **params)
    Tokens().fingerprint_extra(ctx)
    return Tokens().plan(ctx)


def test_unknown_id_names_the_cache_folder(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ConfigError, match=str(tmp_path / "hub" / "models--nobody--nothing")):
        _plan(tmp_path, _image_run(tmp_path), "hf:nobody/nothing", ("images",))


def test_bad_configurations_are_refused(tmp_path):
    vit = save_checkpoint(tmp_path / "vit", "vit")
    siglip = save_checkpoint(tmp_path / "siglip", "siglip_vision")
    (tmp_path / "empty").mkdir()
    root = tmp_path / "out"
    root.mkdir()
    images = _image_run(root)
    with pytest.raises(ConfigError, match=r"no config\.json"):
        _plan(root, images, f"hf:{tmp_path / 'empty'}", ("images",))
    with pytest.raises(ConfigError, match="no classification token"):
        _plan(root, images, f"hf:{siglip}", ("images",), pooling="cls")
    with pytest.raises(ConfigError, match=r"out of range.*0\.\.2"):
        _plan(root, images, f"hf:{vit}", ("images",), layers=[0, 3])
    with pytest.raises(ConfigError, match="expected one of"):
        _plan(root, images, f"hf:{vit}", ("images",), pooling="max")
    audio = v12_inputs(tmp_path / "a", n_songs=2, n_images=1)
    with pytest.raises(ConfigError, match="image encoder, but source 'clips' gives audio"):
        _plan(tmp_path / "a", audio, f"hf:{vit}", ("clips",))
    cfg = json.loads((vit / "config.json").read_text())
    (vit / "config.json").write_text(json.dumps({**cfg, "auto_map": {"AutoModel": "modeling_x.XModel"}}))
    (vit / "modeling_x.py").write_text("# remote code\n")
    with pytest.raises(ConfigError, match=r"remote code \(modeling_x\.py\).*trust_remote_code"):
        _plan(root, images, f"hf:{vit}", ("images",))


def test_random_init_needs_permission(tmp_path):
    from emoprep.stages.tokens.stage import Tokens

    folder = save_checkpoint(tmp_path / "ckpt", "vit", weights=False)
    root = tmp_path / "out"
    root.mkdir()
    ctx = tokens_ctx(root, _image_run(root), tokenizer=f"hf:{folder}", sources=("images",), allow_random_init=False)
    with pytest.raises(ConfigError, match="allow-random-init"):
        Tokens().fingerprint_extra(ctx)
    index = _run(root, _image_run(root), f"hf:{folder}", ("images",), pooling="mean")
    assert (index["weights"] == "random-init").all()


# ---- validate reads layered and pooled stores ------------------------------------------

@pytest.mark.parametrize("pooling", ["none", "mean"])
def test_validate_checks_the_layer_axis(tmp_path, pooling):
    from emoprep.manifests.validate import validate
    from tests.helpers.token_fixtures import failed, index_of, save_index

    folder = save_checkpoint(tmp_path / "ckpt", "dinov2")
    root = tmp_path / "out"
    root.mkdir()
    _run(root, _image_run(root), f"hf:{folder}", ("images",), layers="all", pooling=pooling)
    assert failed(validate(root)) == {}
    df = index_of(root)
    df.at[1, "layers"] = [0, 1]  # type: ignore[assignment]  # pandas-stubs: a cell holds a scalar
    save_index(root, df)
    bad = failed(validate(root))
    assert set(bad) == {"layer-axis"} and bad["layer-axis"][0].startswith(str(df.at[1, "sample_id"]) + " ")


def test_out_of_memory_halves_the_batch_and_retries(tmp_path, monkeypatch, caplog):
    """An OOM injected on CPU for forwards of more than 2 inputs: the batch of 5 is cut to
    2 + 2 + 1 and the stored values are those of an undisturbed run."""
    from emoprep.stages.tokens import hf_model, weights

    folder = save_checkpoint(tmp_path / "ckpt", "vit")
    clean = tmp_path / "clean"
    clean.mkdir()
    _run(clean, _image_run(clean), f"hf:{folder}", ("images",), layers="all")
    weights._MODELS.clear()
    real, sizes = hf_model.hidden_states, []

    def tight(loaded, features):
        sizes.append(len(features["pixel_values"]))
        if sizes[-1] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real(loaded, features)

    monkeypatch.setattr(hf_model, "hidden_states", tight)
    root = tmp_path / "out"
    root.mkdir()
    ctx = tokens_ctx(root, _image_run(root), tokenizer=f"hf:{folder}", sources=("images",), shard_size=5,
                     batch_size=5, layers="all")
    run_tokens(ctx)
    assert sizes == [3, 1, 1, 1] and "retrying with 1" in caplog.text
    a, b = TokenDataset(clean, tokenizer=f"hf:{folder}"), TokenDataset(root, tokenizer=f"hf:{folder}")
    np.testing.assert_allclose(np.stack([a.tokens(i) for i in range(3)]), np.stack([b.tokens(i) for i in range(3)]),
                               rtol=TOL, atol=TOL)


def test_a_46_s_clip_through_a_10_s_model_gives_5_windows(tmp_path):
    import torch as _torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTModel

    folder = tmp_path / "ast10"
    _torch.manual_seed(0)
    ASTModel(ASTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                       max_length=1000)).save_pretrained(folder)
    ASTFeatureExtractor(max_length=1000).save_pretrained(folder)
    assert input_limit(resolve(f"hf:{folder}")) == 160240  # 999 frames of 10 ms + one of 25 ms at 16 kHz
    root = tmp_path / "out"
    root.mkdir()
    manifests = v12_inputs(root, n_songs=1, n_images=0, clip_s=46.0, rate=16000)
    index = _run(root, manifests, f"hf:{folder}", ("clips",), pooling="none")
    assert list(index["shape"].iloc[0])[:2] == [1, 5]  # [layers, windows, tokens, dim]


# ---- exports of layered and pooled stores ---------------------------------------------

@pytest.mark.parametrize("pooling", ["none", "mean"])
def test_exports_read_back_as_the_store(tmp_path, pooling):
    import datasets
    import webdataset as wds

    from emoprep.manifests.export.step import export
    from emoprep.manifests.token_store.layout import tokenizer_folder

    folder = save_checkpoint(tmp_path / "ckpt", "clip_vision")
    tok = f"hf:{folder}"
    root = tmp_path / "out"
    root.mkdir()
    _run(root, _image_run(root), tok, ("images",), layers="all", pooling=pooling)
    store = TokenDataset(root, tokenizer=tok)
    stored = {store.sample_ids[i]: store.tokens(i) for i in range(len(store))}
    config = tokenizer_folder(tok)
    export(root, tmp_path / "hf", "hf", shard_size=2)
    export(root, tmp_path / "wds", "webdataset", shard_size=2)
    for split in sorted(set(store.index["split"])):
        ds = datasets.load_dataset(str(tmp_path / "hf"), name=config, split=split, cache_dir=str(tmp_path / "c"))
        for row in ds:
            np.testing.assert_allclose(np.asarray(row["hidden"], np.float32), stored[row["sample_id"]])
        names = (tmp_path / "wds" / config / f"{split}.txt").read_text().split()
        for sample in wds.WebDataset([str(tmp_path / "wds" / config / n) for n in names], shardshuffle=False).decode():
            np.testing.assert_array_equal(sample["tokens.npy"].astype(np.float32), stored[sample["json"]["sample_id"]])
            assert sample["json"]["pooling"] == pooling


def test_layers_pooling_and_window_enter_the_fingerprint_and_the_object_key(tmp_path):
    from emoprep.stages.tokens.encode import object_config
    from emoprep.stages.tokens.resolve import check_params, identity_of, preprocessing_of
    from emoprep.stages.tokens.stage import Tokens

    folder = save_checkpoint(tmp_path / "ckpt", "ast")
    tok = f"hf:{folder}"
    manifests = _audio_run(tmp_path, clip_s=0.5)
    setups: list[dict[str, Any]] = [{}, {"layers": "all"}, {"pooling": "mean"}, {"window_s": 0.5}, {"dtype": "float32"}]
    extras, keys = [], []
    for extra in setups:
        ctx = tokens_ctx(tmp_path, manifests, tokenizer=tok, sources=("clips",), **extra)
        extras.append(json.dumps(Tokens().fingerprint_extra(ctx), sort_keys=True))
        p = ctx.params
        keys.append(json.dumps(object_config(p, "cpu", identity_of(p, tok), tok, preprocessing_of(p, tok)),
                               sort_keys=True))
    assert len(set(keys)) == len(setups)
    assert len(set(extras[:4])) == 4  # dtype enters through the stage's parameters instead
    vit_params = tokens_ctx(tmp_path, manifests, sources=("clips",), pooling="mean").params
    with pytest.raises(ConfigError, match="hf: tokenizers only"):
        check_params(vit_params)
