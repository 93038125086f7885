"""Token stores on object storage: a real S3-compatible server (moto's server mode, started by
the test as its own process), the store uploaded with s3fs, read back through s3:// URLs."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from emoprep.manifests import MixedTokenDataset, TokenDataset, load_index
from tests.helpers.fixtures import TINY_AUDIO as AUDIO
from tests.helpers.fixtures import TINY_IMAGE as IMAGE

TOK = "vit-tiny-test"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """(storage_options, s3fs filesystem) of a moto S3 server on a free local port."""
    s3fs = pytest.importorskip("s3fs")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    options = {"endpoint_url": f"http://127.0.0.1:{port}", "key": "test", "secret": "test",
               "client_kwargs": {"region_name": "eu-west-1"}}
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline and server.poll() is None, "moto_server did not start"
                time.sleep(0.2)
        fs = s3fs.S3FileSystem(**options)
        fs.mkdir("stores")
        yield options, fs
    finally:
        server.kill()
        server.wait()


def test_a_store_on_s3_reads_the_same_arrays_as_from_disk(store, s3, tmp_path, monkeypatch):
    root, _ = store
    options, fs = s3
    fs.put(f"{root}/", "stores/v3", recursive=True)
    monkeypatch.setenv("EMOPREP_CACHE", str(tmp_path / "cache"))
    local = TokenDataset(root, tokenizer=TOK, split="train")
    remote = TokenDataset("s3://stores/v3", tokenizer=TOK, split="train", storage_options=options)
    assert remote.sample_ids == local.sample_ids
    assert not list((tmp_path / "cache").rglob("*.npy"))  # nothing fetched before an item is read
    for i in range(len(local)):
        assert torch.equal(remote[i]["tokens"], local[i]["tokens"]) and remote[i]["sample_id"] == local[i]["sample_id"]
    fetched = sorted(p.name for p in (tmp_path / "cache").rglob("*.npy"))
    assert fetched and all(not n.startswith(".") for n in fetched)  # whole shards, renamed into place
    # DataLoader workers share the cache; a second dataset reads the cached copies
    again = TokenDataset("s3://stores/v3", tokenizer=TOK, split="train", storage_options=options)
    got = {sid: t for b in DataLoader(again, batch_size=4, num_workers=2)
           for sid, t in zip(b["sample_id"], b["tokens"], strict=True)}
    assert all(torch.equal(got[local[i]["sample_id"]], local[i]["tokens"]) for i in range(len(local)))
    # one store folder on its own, by URL
    store_dir = next(Path(root).glob(f"tokens/{TOK}/*/store.json")).parent
    fs.put(f"{store_dir}/", "stores/one", recursive=True)
    assert len(load_index("s3://stores/one", TOK, options).df) == len(load_index(root, TOK).df)


def test_the_v12_stores_mix_from_s3(v12, s3, tmp_path, monkeypatch):
    options, fs = s3
    fs.put(f"{v12}/", "stores/v12", recursive=True)
    monkeypatch.setenv("EMOPREP_CACHE", str(tmp_path / "cache"))
    local = MixedTokenDataset(v12, tokenizers=(AUDIO, IMAGE), split="train", enhanced=True)
    remote = MixedTokenDataset("s3://stores/v12", tokenizers=(AUDIO, IMAGE), split="train", enhanced=True,
                               storage_options=options)
    assert len(remote) == len(local)
    assert all(torch.equal(remote[i]["tokens"], local[i]["tokens"]) for i in range(len(local)))


def test_a_missing_remote_store_says_what_it_looked_for(s3, tmp_path, monkeypatch):
    options, _ = s3
    monkeypatch.setenv("EMOPREP_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=r"neither store\.json"):
        load_index("s3://stores/nothing-here", storage_options=options)


def test_the_readme_object_storage_snippet_runs(v12, s3, tmp_path, monkeypatch):
    from tests.manifests.test_readme_training import snippets

    options, fs = s3
    fs.mkdir("bucket")
    fs.put(f"{v12}/", "bucket/emoprep-out", recursive=True)
    monkeypatch.setenv("EMOPREP_CACHE", str(tmp_path / "cache"))
    code = snippets()[3]
    for real, tiny in (("encodec-24khz", AUDIO), ("vit-patch28-h2048", IMAGE),
                       ('{"endpoint_url": "https://…"}', repr(options))):
        assert real in code
        code = code.replace(real, tiny)
    scope: dict[str, object] = {"MixedTokenDataset": MixedTokenDataset}
    exec(compile(code, "README.md (object storage)", "exec"), scope)  # noqa: S102 - the README's own code
    local = MixedTokenDataset(v12, tokenizers=(AUDIO, IMAGE), split="train")
    ds = scope["ds"]
    assert isinstance(ds, MixedTokenDataset) and ds.sample_ids == local.sample_ids
    assert torch.equal(ds[len(ds) - 1]["tokens"], local[len(local) - 1]["tokens"])


def test_an_export_reads_its_stores_from_s3(v12, s3, tmp_path, monkeypatch):
    from emoprep.manifests.export.step import export

    options, fs = s3
    fs.put(f"{v12}/", "stores/v12-export", recursive=True)
    monkeypatch.setenv("EMOPREP_CACHE", str(tmp_path / "cache"))
    local = export(v12, tmp_path / "local", "webdataset", with_images=True).dest
    remote = export("s3://stores/v12-export", tmp_path / "remote", "webdataset", with_images=True,
                    storage_options=options).dest
    files = {p.relative_to(local).as_posix(): p.read_bytes() for p in local.rglob("*.tar")}
    assert files and files == {p.relative_to(remote).as_posix(): p.read_bytes() for p in remote.rglob("*.tar")}
