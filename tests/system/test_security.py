"""Security (SPEC §7.2, issue 9): no pickle, safetensors only, no remote code, no path from a
table, a folder listing or a manifest leaves its root, Pillow's bomb guard on.

(a) a static scan (AST) of the package sources, plus the weight loaders run on hostile
    checkpoint folders (a pickle that would leave a marker if it were ever loaded);
(b) every reader that takes a path or file name from data gets `../../etc/passwd`-style
    entries, absolute paths and symlinks leading out of its root: each is rejected with a
    documented reason code, and a recorder on `open` proves the outside file is never read;
(c) a 50000×50000 image header is refused before any pixel is allocated.
"""
from __future__ import annotations

import ast
import io
import json
import os
import pickle
import resource
import struct
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

from emoprep.manifests.reader import TokenDataset
from emoprep.manifests.reasons import REJECT_CODES
from emoprep.manifests.token_store import layout as ts
from emoprep.pipeline.context import StageContext
from emoprep.pipeline.errors import ConfigError, DataError
from emoprep.pipeline.stage import Stage
from emoprep.stages.common.audio_io import AudioError
from emoprep.stages.common.audio_source import load_mono
from emoprep.stages.common.image_io import DEFAULT_MAX_PIXELS, ImageTooLarge, decode_image
from emoprep.stages.deam.stage import Deam
from emoprep.stages.foodpics.stage import FoodPics
from emoprep.stages.generic import Generic
from emoprep.stages.images import Images
from emoprep.stages.pmemo.stage import Pmemo
from emoprep.stages.tokens import vit, weights
from emoprep.stages.tokens.inputs import match_labels
from tests.corpus.media import png_bomb
from tests.helpers.paths import REPO
from tests.helpers.spies import opened_files

PACKAGE_DIRS = ("pipeline", "stages", "manifests")
HOSTILE = ["../../etc/passwd", "/etc/passwd", "sub/../../x.png", "..\\..\\x.png", "C:\\x.png",
           "../outside.png"]


# ---- (a) static scan --------------------------------------------------------------------

BANNED_MODULES = {"pickle", "cPickle", "_pickle", "cloudpickle", "dill", "joblib", "shelve", "marshal"}
BANNED_CALLS = {"eval", "exec", "compile", "__import__"}
BANNED_ATTRS = {"read_pickle", "to_pickle"}
GUARD_ATTRS = {"MAX_IMAGE_PIXELS", "LOAD_TRUNCATED_IMAGES"}  # Pillow's bomb / truncation guards
REQUIRED_KEYWORDS = {  # call (by dotted name or suffix) -> keywords it must pass, with values
    "np.load": {"allow_pickle": False}, "numpy.load": {"allow_pickle": False},
    "np.save": {"allow_pickle": False}, "np.lib.format.write_array": {"allow_pickle": False},
    "torch.load": {"weights_only": True},
    ".from_pretrained": {"trust_remote_code": False, "use_safetensors": True, "local_files_only": True},
}
# Loaders of a checkpoint's configuration or input processor read JSON, never weights: they
# need no `use_safetensors`.
NO_WEIGHTS = ("Config.from_pretrained", "Processor.from_pretrained", "FeatureExtractor.from_pretrained")
# The one module where a checkpoint's own code may run: `trust_remote_code=trust_remote_code`,
# the user's `tokens.trust_remote_code` (SPEC §6; refused without it, warned with it: test_hf.py).
USER_GATED_REMOTE_CODE = {"stages/tokens/hf_model.py"}


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return "?"


def keyword_value(call: ast.Call, name: str) -> Any:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else "<not a constant>"
    return "<absent>"


def scan(source: str, where: str = "<src>") -> list[str]:
    """Violations of the no-pickle / safetensors / no-remote-code / no-eval rules."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = f"{where}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [f"{line}: import {a.name}" for a in node.names if a.name.split(".")[0] in BANNED_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in BANNED_MODULES:
            found.append(f"{line}: from {node.module} import")
        elif isinstance(node, ast.Assign):
            found += [f"{line}: sets {dotted(t)}" for t in node.targets
                      if isinstance(t, ast.Attribute) and t.attr in GUARD_ATTRS]
        elif isinstance(node, ast.Call):
            name = dotted(node.func)
            if name in BANNED_CALLS:
                found.append(f"{line}: {name}(...)")
            if isinstance(node.func, ast.Attribute) and node.func.attr in BANNED_ATTRS:
                found.append(f"{line}: {name}(...)")
            if keyword_value(node, "allow_pickle") is True or keyword_value(node, "shell") is True:
                found.append(f"{line}: {name}(... allow_pickle/shell=True)")
            for pattern, wanted in REQUIRED_KEYWORDS.items():
                if name == pattern or (pattern.startswith(".") and name.endswith(pattern)):
                    found += [f"{line}: {name}(...) without {k}={v}" for k, v in wanted.items()
                              if keyword_value(node, k) != v and not _excused(name, k, node, where)]
    return found


def _excused(name: str, keyword: str, call: ast.Call, where: str) -> bool:
    if keyword == "use_safetensors":
        return name.endswith(NO_WEIGHTS)
    if keyword == "trust_remote_code" and where in USER_GATED_REMOTE_CODE:
        value = next((kw.value for kw in call.keywords if kw.arg == keyword), None)
        return isinstance(value, ast.Name) and value.id == "trust_remote_code"
    return False


def package_sources() -> list[Path]:
    return sorted(p for d in PACKAGE_DIRS for p in (REPO / d).rglob("*.py"))


def test_package_sources_pass_the_security_scan():
    problems = []
    for path in package_sources():
        problems += scan(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))
    assert problems == []


def test_the_scan_sees_the_real_call_sites():
    """Guard against a scan that passes because it looks at nothing."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in package_sources())
    tree = ast.parse(text)
    names = [dotted(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert len(package_sources()) > 30
    # np.load: the upstream-audio reader (audio_source) and the token store reader (two)
    assert sum(n == "np.load" for n in names) >= 3
    assert sum(n.endswith(".from_pretrained") for n in names) >= 2


@pytest.mark.parametrize("bad", [
    "import pickle", "from pickle import loads", "import joblib", "np.load(f)", "np.load(f, allow_pickle=True)",
    "numpy.load(f, mmap_mode='r')", "np.save(f, a)", "torch.load(f)", "torch.load(f, weights_only=False)",
    "M.from_pretrained(p)", "M.from_pretrained(p, trust_remote_code=True, use_safetensors=True, local_files_only=True)",
    "M.from_pretrained(p, trust_remote_code=False, local_files_only=True)", "eval(s)", "exec(s)",
    "AutoConfig.from_pretrained(p, local_files_only=True)",
    "M.from_pretrained(p, trust_remote_code=trust_remote_code, use_safetensors=True, local_files_only=True)",
    "df.to_pickle(p)", "pd.read_pickle(p)", "subprocess.run(c, shell=True)", "Image.MAX_IMAGE_PIXELS = None",
    "ImageFile.LOAD_TRUNCATED_IMAGES = True"])
def test_the_scan_flags_each_banned_pattern(bad):
    assert scan(bad)


def test_the_scan_allows_the_safe_forms():
    assert scan("np.load(f, mmap_mode='r', allow_pickle=False)\nmodel.eval()\n"
                "M.from_pretrained(p, local_files_only=True, use_safetensors=True, trust_remote_code=False)\n"
                "torch.load(f, weights_only=True)\nnp.save(f, a, allow_pickle=False)") == []


# ---- (a) weights: safetensors only, never remote code ------------------------------------

class _Boom:
    """Unpickling this creates `marker` (a stand-in for arbitrary code execution)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def poisoned_bin(folder: Path, marker: Path) -> None:
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"w": _Boom(str(marker))}))


def tiny_vit_checkpoint(folder: Path) -> Path:
    import torch
    from transformers import ViTModel

    torch.manual_seed(3)
    ViTModel(vit.arch_config("vit-tiny-test"), add_pooling_layer=False).save_pretrained(folder, safe_serialization=True)
    return folder


def test_pickle_weights_are_refused_and_never_loaded(tmp_path):
    marker = tmp_path / "UNPICKLED"
    folder = tmp_path / "bin-only"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "vit"}))
    poisoned_bin(folder, marker)
    with pytest.raises(ConfigError, match="pickle"):
        weights.locate("vit-tiny-test", str(folder), None, "ViT")
    assert not marker.exists()


def test_safetensors_win_over_a_poisoned_bin_and_remote_code_is_ignored(tmp_path):
    """A checkpoint folder that also holds a poisoned pytorch_model.bin and a config asking
    for remote code (auto_map + modeling file that would leave a marker when imported)
    loads the safetensors weights with the library's own class, running nothing."""
    import torch
    from safetensors.torch import load_file

    marker_bin, marker_code = tmp_path / "UNPICKLED", tmp_path / "REMOTE_CODE_RAN"
    folder = tiny_vit_checkpoint(tmp_path / "ckpt")
    poisoned_bin(folder, marker_bin)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["auto_map"] = {"AutoModel": "modeling_evil.EvilModel", "AutoConfig": "modeling_evil.EvilConfig"}
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "modeling_evil.py").write_text(f"import os\nos.mkdir({str(marker_code)!r})\n")
    source = vit.locate_weights("vit-tiny-test", str(folder))
    model = vit.build_model("vit-tiny-test", source, seed=0)
    assert not marker_bin.exists() and not marker_code.exists()
    want = load_file(str(folder / "model.safetensors"))
    got = model.state_dict()
    key = next(k for k in want if k.endswith("patch_embeddings.projection.weight"))
    assert torch.equal(got[next(k for k in got if k.endswith("patch_embeddings.projection.weight"))], want[key])
    assert type(model).__module__.startswith("transformers.")


# ---- (b) paths from data never leave the root ---------------------------------------------



def assert_never_read(opened: list[Path], *outside: Path) -> None:
    targets = {p.resolve() for p in outside} | {Path("/etc/passwd").resolve()}
    read = [p for p in opened if p.resolve() in targets]
    assert read == [], read


def png_bytes(color=(120, 30, 30), size=(8, 6)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def wav_as_mp3_name(path: Path) -> None:
    """A short real MP3 (soundfile writes MP3), 1 s of a tone at 44.1 kHz."""
    t = np.arange(44100) / 44100
    sf.write(path, (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 44100, format="MP3")


P = TypeVar("P")


def stage_ctx(stage: str, params: P, tmp: Path, roots: dict[str, Path],
              **manifests: pd.DataFrame) -> StageContext[P]:
    return StageContext(stage=stage, params=params, out_root=tmp / "out", out_dir=tmp / "out" / stage / "fp",
                        roots=roots, manifests=manifests)


def ingest(stage: Stage[P], name: str, root: Path, tmp: Path) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """An ingest stage with default parameters on `root`: its source signature, then its items."""
    ctx = stage_ctx(name, stage.Params(), tmp, {name: root})
    stage.source_signature(ctx)
    return run_items(stage, ctx)


def run_items(stage: Stage[P], ctx: StageContext[P]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    rows: list[dict[str, Any]] = []
    reasons: dict[str, str] = {}
    items = stage.plan(ctx)
    assert items is not None, "a per-item stage"
    for item in items:
        out = stage.process(item, ctx.item_context())
        rows += out.rows
        reasons.update({r.sample_id: r.reason for r in out.rejects})
    assert set(reasons.values()) <= set(REJECT_CODES)
    return rows, reasons


def test_generic_table_paths_never_leave_the_root(tmp_path):
    root = tmp_path / "set"
    (root / "img" / "sub").mkdir(parents=True)
    (root / "img" / "ok.png").write_bytes(png_bytes())
    outside = tmp_path / "outside.png"
    outside.write_bytes(png_bytes((0, 0, 0)))
    (root / "img" / "link.png").symlink_to(outside)
    (root / "linkdir").symlink_to(tmp_path)
    paths = {**{f"h{i}": p for i, p in enumerate(HOSTILE)}, "sym": "img/link.png", "symdir": "linkdir/outside.png",
             "ok": "img/ok.png"}
    table = "id,path,valence,arousal\n" + "".join(f"{k},{p},5,5\n" for k, p in paths.items())
    (root / "table.csv").write_text(table)
    ctx = stage_ctx("generic", Generic.Params(table="table.csv", scale=(1.0, 9.0)), tmp_path, {"generic": root})
    with opened_files() as opened:
        Generic().source_signature(ctx)
        rows, reasons = run_items(Generic(), ctx)
    assert [r["item_id"] for r in rows] == ["ok"]
    assert {k: reasons[f"generic:{k}"] for k in paths if k != "ok"} == {
        k: "path-outside-root" for k in paths if k != "ok"}
    assert_never_read(opened, outside)


def test_foodpics_images_linked_out_of_the_root_are_never_read(tmp_path):
    root = tmp_path / "foodpics"
    root.mkdir()
    outside = tmp_path / "outside.png"
    outside.write_bytes(png_bytes((0, 0, 0)))
    (root / "0001.png").write_bytes(png_bytes())
    (root / "0002.png").symlink_to(outside)
    (root / "sub").symlink_to(tmp_path)  # a subfolder that is a link out of the root
    cols = ",".join(["Image_No", *FoodPics.Params().valence_columns, *FoodPics.Params().arousal_columns])
    rows = "".join(f"{n},{','.join(['5'] * 8)}\n" for n in ("1", "2", "../../etc/passwd", "/etc/passwd"))
    (root / "ratings.csv").write_text(cols + "\n" + rows)
    ctx = stage_ctx("foodpics", FoodPics.Params(), tmp_path, {"foodpics": root})
    with opened_files() as opened:
        FoodPics().source_signature(ctx)
        kept, reasons = run_items(FoodPics(), ctx)
    assert [r["image_no"] for r in kept] == [1]
    assert reasons["foodpics:file:0002.png"] == "path-outside-root"
    assert reasons["foodpics:2"] == "missing-image"  # its rating has no image inside the root
    assert reasons["foodpics:file:sub/outside.png"] == "path-outside-root"
    assert sorted(v for k, v in reasons.items() if "sheet-row" in k) == ["bad-id", "bad-id"]
    assert_never_read(opened, outside)


def test_images_stage_refuses_manifest_paths_out_of_the_root(tmp_path):
    """`images` reads the paths an ingest manifest names (relative to the dataset root)."""
    root = tmp_path / "foodpics"
    root.mkdir()
    (root / "0001.png").write_bytes(png_bytes())
    outside = tmp_path / "outside.png"
    outside.write_bytes(png_bytes((0, 0, 0)))
    (root / "0002.png").symlink_to(outside)
    bad = ["../outside.png", str(outside), "x/../../outside.png", "0002.png"]
    manifest = pd.DataFrame([{"sample_id": f"foodpics:{i}", "source_id": f"foodpics:{i}", "modality": 0,
                              "image_no": i, "image_path": p, "content_hash": None}
                             for i, p in enumerate(["0001.png", *bad], start=1)])
    ctx = stage_ctx("images", Images.Params(), tmp_path, {"foodpics": root}, foodpics=manifest)
    with opened_files() as opened:
        rows, reasons = run_items(Images(), ctx)
    assert [r["sample_id"] for r in rows] == ["foodpics:1"]
    assert reasons == {f"foodpics:{i}": "path-outside-root" for i in range(2, 6)}
    assert_never_read(opened, outside)


def test_pmemo_and_deam_audio_linked_out_of_the_root_is_never_read(tmp_path):
    outside = tmp_path / "outside.mp3"
    wav_as_mp3_name(outside)
    pm = tmp_path / "pmemo"
    (pm / "chorus").mkdir(parents=True)
    (pm / "annotations").mkdir()
    wav_as_mp3_name(pm / "chorus" / "1.mp3")
    (pm / "chorus" / "2.mp3").symlink_to(outside)
    (pm / "annotations" / "static_annotations.csv").write_text(
        "musicId,Arousal(mean),Valence(mean)\n1,0.5,0.5\n2,0.5,0.5\n")
    (pm / "metadata.csv").write_text("musicId,fileName,title\n1,../../etc/passwd,x\n2,/etc/passwd,y\n")
    deam = tmp_path / "deam"
    static = deam / "annotations/annotations averaged per song/song_level"
    static.mkdir(parents=True)
    (deam / "MEMD_audio").mkdir()
    wav_as_mp3_name(deam / "MEMD_audio" / "2.mp3")
    (deam / "MEMD_audio" / "3.mp3").symlink_to(outside)
    (static / "static_annotations_averaged_songs_1_2000.csv").write_text(
        "song_id, valence_mean, valence_std, arousal_mean, arousal_std\n2, 5, 1, 5, 1\n3, 5, 1, 5, 1\n")
    with opened_files() as opened:
        rows, reasons = ingest(Pmemo(), "pmemo", pm, tmp_path)
        assert len(rows) == 1 and set(reasons.values()) == {"path-outside-root"}, reasons
        rows, reasons = ingest(Deam(), "deam", deam, tmp_path)
        assert len(rows) == 1 and set(reasons.values()) == {"path-outside-root"}, reasons
    assert_never_read(opened, outside)


def test_deam_annotation_file_linked_out_of_the_root_is_a_data_error(tmp_path):
    deam = tmp_path / "deam"
    static = deam / "annotations/annotations averaged per song/song_level"
    static.mkdir(parents=True)
    (deam / "MEMD_audio").mkdir()
    secret = tmp_path / "secret.csv"
    secret.write_text("song_id,valence_mean,arousal_mean\n2,5,5\n")
    (static / "static_annotations_averaged_songs_1_2000.csv").symlink_to(secret)
    ctx = stage_ctx("deam", Deam.Params(), tmp_path, {"deam": deam})
    with opened_files() as opened, pytest.raises(DataError, match=r"leaves the dataset root|out of the dataset root"):
        Deam().plan(ctx)
    assert_never_read(opened, secret)


@pytest.mark.parametrize("ref", ["../../etc/passwd", "/etc/passwd", "chunks/../../x.npy", "link/x.npy"])
@pytest.mark.parametrize("kind", ["raw", "output"])
def test_audio_payload_refs_never_leave_their_root(tmp_path, ref, kind):
    """Salient / features / clips read audio named by an upstream manifest: raw (dataset
    root) or an upstream output (output root, e.g. an NPY chunk)."""
    outside = tmp_path / "x.npy"
    np.save(outside, np.zeros(10, np.float32), allow_pickle=False)
    out_root, data_root = tmp_path / "out", tmp_path / "data"
    for root in (out_root, data_root):
        root.mkdir()
        (root / "link").symlink_to(tmp_path)
    ctx = stage_ctx("salient", None, tmp_path, {"generic": data_root})
    p = {"kind": kind, "source": "generic", "ref": ref, "sample_rate": 44100}
    with opened_files() as opened, pytest.raises(AudioError) as err:
        load_mono(p, ctx.item_context(), 22050)
    assert err.value.reason == "path-outside-root"
    assert_never_read(opened, outside)


def test_spectrogram_refuses_chunk_paths_out_of_the_output_root(tmp_path):
    from emoprep.stages.common.audio_io import AudioError
    from emoprep.stages.spectrogram.params import SpectrogramParams
    from emoprep.stages.spectrogram.stage import _load_chunk_any_rate

    outside = tmp_path / "x.flac"
    sf.write(outside, np.zeros(4410, np.float32), 44100, format="FLAC")
    out_root = tmp_path / "out"
    out_root.mkdir()
    (out_root / "link").symlink_to(tmp_path)
    ctx = stage_ctx("spectrogram", SpectrogramParams(), tmp_path, {})
    with opened_files() as opened:
        for rel in ("../x.flac", str(outside), "chunks/../../x.flac", "link/x.flac"):
            with pytest.raises(AudioError) as err:
                _load_chunk_any_rate({"sample_id": "deam:2:0", "path": rel}, ctx.item_context(), {})
            assert err.value.reason == "bad-path"
    assert_never_read(opened, outside)


def test_tokens_refuses_manifest_paths_out_of_the_output_root():
    inputs = pd.DataFrame({"sample_id": ["a", "b", "c"], "path": ["../x.png", "/etc/passwd", "images/fp/a.png"],
                           "stage": ["images"] * 3})
    labels = pd.DataFrame({"sample_id": ["a", "b", "c"], "modality": [0, 0, 0]}).set_index("sample_id")
    samples, rejects = match_labels(inputs, labels)
    assert [s["sample_id"] for s in samples] == ["c"]
    assert {(r.sample_id, r.reason) for r in rejects} == {("a", "bad-path"), ("b", "bad-path")}


def test_tokens_refuses_a_symlink_in_the_output_root_that_leads_out(tmp_path):
    from emoprep.stages.tokens.inputs import inside_output_root

    out = tmp_path / "out"
    (out / "images" / "fp").mkdir(parents=True)
    (tmp_path / "secret.png").write_bytes(b"x")
    (out / "images" / "fp" / "a.png").symlink_to(tmp_path / "secret.png")
    (out / "images" / "fp" / "b.png").write_bytes(b"y")
    samples = [{"sample_id": sid, "input_path": f"images/fp/{sid}.png", "stage": "images"} for sid in "ab"]
    kept, rejects = inside_output_root(samples, out)
    assert [s["sample_id"] for s in kept] == ["b"]
    assert [(r.sample_id, r.reason) for r in rejects] == [("a", "bad-path")]
    ctx = stage_ctx("tokens", None, tmp_path, {})
    with pytest.raises(ValueError, match="out of the output root"):
        ctx.item_context().abs("images/fp/a.png")


def read_every_item(root: Path) -> list[dict[str, Any]]:
    """Open the store and read each of its items (what a trainer's data loader does)."""
    ds = TokenDataset(root, tokenizer="vit-tiny-test")
    return [ds[i] for i in range(len(ds))]


def test_token_reader_never_opens_index_paths_out_of_the_root(tmp_path):
    from tests.helpers.token_fixtures import build_store

    root = tmp_path / "out"
    root.mkdir()
    build_store(root, n_songs=1, chunks=2, n_images=2, shard_size=2)
    outside = tmp_path / "cls.npy"
    np.save(outside, np.ones((4, 32), np.float16), allow_pickle=False)
    (root / "link").symlink_to(tmp_path)
    index_path = root / "manifests" / "tokens.parquet"
    clean = pd.read_parquet(index_path)
    for bad in ("../cls.npy", str(outside), "tokens/../../cls.npy", "link/cls.npy"):
        df = clean.copy()
        df.loc[0, "cls_path"] = bad
        df.to_parquet(index_path, index=False)
        with opened_files() as opened, pytest.raises(ts.StoreError, match="store root"):
            read_every_item(root)
        assert_never_read(opened, outside)


# ---- (c) decompression bombs ---------------------------------------------------------------



def bmp_header(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + 16, 0, 0, 14 + 40) + info + b"\0" * 16


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("data", [png_bomb(50000, 50000), bmp_header(50000, 50000)], ids=["png", "bmp"])
@pytest.mark.parametrize("max_pixels", [DEFAULT_MAX_PIXELS, 10 ** 12])
def test_bomb_headers_are_refused_before_decoding(data, max_pixels):
    """50000 × 50000 × 3 bytes would be 7.5 GB; whatever `max_pixels` says (Pillow's own
    hard limit holds above it), the image is refused from its header alone."""
    before = max_rss_mb()
    with pytest.raises(ImageTooLarge, match="50000"):
        decode_image(data, max_pixels, name="bomb.png")
    assert max_rss_mb() - before < 200
    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS <= DEFAULT_MAX_PIXELS


def test_bomb_in_a_dataset_is_an_image_too_large_reject(tmp_path):
    root = tmp_path / "set"
    root.mkdir()
    (root / "bomb.png").write_bytes(png_bomb(50000, 50000))
    (root / "ok.png").write_bytes(png_bytes())
    (root / "t.csv").write_text("id,path\nbomb,bomb.png\nok,ok.png\n")
    ctx = stage_ctx("generic", Generic.Params(table="t.csv"), tmp_path, {"generic": root})
    before = max_rss_mb()
    rows, reasons = run_items(Generic(), ctx)
    assert [r["item_id"] for r in rows] == ["ok"] and reasons == {"generic:bomb": "image-too-large"}
    assert max_rss_mb() - before < 200
