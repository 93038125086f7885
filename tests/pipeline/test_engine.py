"""The DAG engine on toy stages: skip, invalidation, fingerprints, accounting, resume, locks."""
from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.executors.inline import InlineExecutor
from emoprep.pipeline.executors.process_pool import ProcessPoolExecutorBackend
from emoprep.pipeline.lock import EXCL_NAME, STALE_AFTER_S, OutputLock
from emoprep.pipeline.runner import Runner
from tests.helpers.catalog import recipe, toy_catalog
from tests.helpers.cli import invoke, said
from tests.helpers.paths import EMOPREP, REPO, TOY_RECIPE, pythonpath_with_repo
from tests.helpers.treecmp import diff, done_but_incomplete, snapshot, temp_files


def make_data(root: Path, n: int = 10, bad: bool = True) -> Path:
    (root / "numbers").mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        (root / "numbers" / f"{i}.txt").write_text(f"{i}\n")
    if bad:
        (root / "numbers" / f"{n + 1}.txt").write_text("not a number\n")
    return root


def runner(out: Path, data: Path, sets=()) -> Runner:
    return Runner(recipe(str(TOY_RECIPE), list(sets), toy_catalog()), out, data, "cpu")


def run(out: Path, data: Path, sets=(), executor=None, force=False, target=None):
    return runner(out, data, sets).run(target, executor or InlineExecutor(), force=force)


def statuses(out: Path, data: Path, sets=()) -> dict[str, tuple[str, list[str]]]:
    return {p.name: (p.status, p.reasons) for p in runner(out, data, sets).plan()}


@pytest.fixture
def data(tmp_path):
    return make_data(tmp_path / "data")


def test_second_run_skips_every_stage_and_changes_nothing(tmp_path, data):
    out = tmp_path / "out"
    first = run(out, data)
    assert [s.status for s in first] == ["ran", "ran", "ran"]
    before = snapshot(out)
    second = run(out, data)
    assert [s.status for s in second] == ["up-to-date"] * 3
    assert snapshot(out) == before


def test_the_kill_checker_sees_a_done_stage_with_a_missing_file(tmp_path, data):
    out = tmp_path / "out"
    run(out, data)
    assert done_but_incomplete(out) == []
    victim = next(out.glob("square/*/values/*"))
    victim.unlink()
    assert any(victim.name in line for line in done_but_incomplete(out))


def test_parameter_change_invalidates_exactly_the_stage_and_its_dependents(tmp_path, data):
    out = tmp_path / "out"
    run(out, data)
    st = statuses(out, data, ["square.power=3"])
    assert st["toy"][0] == "done"
    assert st["square"] == ("stale", ["parameter power: 2 -> 3"])
    assert st["total"] == ("stale", ["input square changed"])
    st = statuses(out, data, ["total.offset=1"])
    assert [st[k][0] for k in ("toy", "square", "total")] == ["done", "done", "stale"]
    # A runtime knob cannot change results, so it invalidates nothing.
    assert {k: v[0] for k, v in statuses(out, data, ["square.sleep_s=0.5"]).items()} == \
        {"toy": "done", "square": "done", "total": "done"}
    summary = run(out, data, ["square.power=3"])
    assert [s.status for s in summary] == ["up-to-date", "ran", "ran"]
    total = pq.read_table(out / "manifests" / "total.parquet").to_pylist()[0]
    assert total["value"] == sum(i ** 3 for i in range(1, 11))


def test_changed_source_file_invalidates_the_ingest_stage(tmp_path, data):
    out = tmp_path / "out"
    run(out, data)
    (data / "numbers" / "3.txt").write_text("33\n")
    st = statuses(out, data)
    assert st["toy"] == ("stale", ["source data changed"])
    assert st["square"][1] == ["input toy changed"]


def test_fingerprints_ignore_paths_and_process(tmp_path, data):
    other = make_data(tmp_path / "elsewhere" / "copy")
    a = {p.name: p.fp for p in runner(tmp_path / "out1", data).plan()}
    b = {p.name: p.fp for p in runner(tmp_path / "out2", other).plan()}
    assert a == b
    repo, toy, out3, data3 = str(REPO), str(TOY_RECIPE), str(tmp_path / "out3"), str(other)
    code = (f"import json,sys; sys.path.insert(0, {repo!r}); "
            "from tests.helpers.catalog import recipe, toy_catalog; from emoprep.pipeline.runner import Runner; "
            "from pathlib import Path; "
            f"r = Runner(recipe({toy!r}, catalog=toy_catalog()), Path({out3!r}), Path({data3!r}), 'cpu'); "
            "print(json.dumps({p.name: p.fp for p in r.plan()}))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path, env={**os.environ, "PYTHONHASHSEED": "123"})
    assert json.loads(res.stdout) == a


def test_every_input_is_a_row_or_a_reject(tmp_path, data):
    out = tmp_path / "out"
    summary = {s.name: s for s in run(out, data, ["toy.min_value=3"])}
    toy = summary["toy"]
    assert toy.items == 11 and toy.rows == 8 and toy.rejects == 3
    rejects = pq.read_table(out / "manifests" / "rejects.parquet").to_pylist()
    assert [(r["sample_id"], r["reason"]) for r in rejects] == [
        ("toy:1", "too-small"), ("toy:2", "too-small"), ("toy:11", "not-a-number")]
    assert "numbers/11.txt" in next(r["message"] for r in rejects if r["sample_id"] == "toy:11")
    ids = pq.read_table(out / "manifests" / "toy.parquet").column("sample_id").to_pylist()
    assert ids == [f"toy:{i}" for i in range(3, 11)]  # natural order, not toy:10 < toy:3
    done = json.loads(next((out / "toy").glob("*/_DONE.json")).read_text())
    assert done["counts"]["items"] == done["counts"]["rows"] + done["counts"]["rejects"]
    assert set(pq.read_table(out / "manifests" / "square.parquet").column("fingerprint").to_pylist()) == \
        {summary["square"].fingerprint}


def test_an_exception_in_one_item_is_a_reject_not_a_crash(tmp_path, data, monkeypatch):
    monkeypatch.setenv("TOY_RAISE_ON", "toy:4")
    out = tmp_path / "out"
    summary = {s.name: s for s in run(out, data)}
    assert summary["square"].rows == 9 and summary["square"].reasons == {"internal-error": 1}
    rej = [r for r in pq.read_table(out / "manifests" / "rejects.parquet").to_pylist() if r["stage"] == "square"]
    assert rej == [{"sample_id": "toy:4", "stage": "square", "reason": "internal-error",
                    "message": "RuntimeError: boom"}]


def test_a_dying_worker_loses_only_its_item(tmp_path, data, monkeypatch):
    monkeypatch.setenv("TOY_CRASH_ON", "toy:5")
    out = tmp_path / "out"
    ex = ProcessPoolExecutorBackend(2)
    try:
        summary = {s.name: s for s in run(out, data, executor=ex)}
    finally:
        ex.close()
    assert summary["square"].reasons == {"worker-crashed": 1}
    kept = pq.read_table(out / "manifests" / "square.parquet").column("sample_id").to_pylist()
    assert kept == [f"toy:{i}" for i in range(1, 11) if i != 5]


def test_pool_workers_stop_when_a_stage_finishes_and_restart_for_the_next(tmp_path, data):
    # Idle workers keep their peak heap (and torch): they must not sit beside the runner
    # while it assembles a manifest or runs later stages.
    import multiprocessing

    ex = ProcessPoolExecutorBackend(2)
    try:
        summary = {s.name: s for s in run(tmp_path / "out", data, executor=ex)}
        assert multiprocessing.active_children() == []
    finally:
        ex.close()
    assert [s.status for s in summary.values()] == ["ran"] * len(summary) and summary["square"].rows > 0


def test_the_pool_keeps_no_result_it_has_handed_over(tmp_path):
    """Once an item's Outcome is yielded, it is the caller's: the pool must not hold it (its
    futures kept every result of a stage until the stage ended, so the runner grew with the
    data: +0.1 GiB over a 10× DEAM spectrogram stage)."""
    import gc
    import weakref

    from emoprep.pipeline.context import ItemContext
    from emoprep.pipeline.stage import WorkItem
    from tests.helpers.toy_stages import Square, SquareParams

    out_dir = tmp_path / "square"
    ctx = ItemContext(stage="square", params=SquareParams(), out_root=tmp_path, out_dir=out_dir)
    items = [WorkItem(f"toy:{i}", {"value": i}) for i in range(40)]
    ex = ProcessPoolExecutorBackend(2)
    refs: list[weakref.ref[object]] = []
    try:
        for item, result in ex.map_unordered(Square(), items, ctx):
            assert not isinstance(result, BaseException), result
            refs.append(weakref.ref(result))
            del item, result
            if len(refs) == 30:
                gc.collect()
                held = [r for r in refs[:20] if r() is not None]
                assert held == [], f"{len(held)} of the first 20 results still held by the pool"
    finally:
        ex.close()
    assert len(refs) == 40


class StopAfter(InlineExecutor):
    """Inline executor that simulates Ctrl-C after `n` items and counts what it processed."""

    def __init__(self, n: int | None = None):
        self.n = n
        self.seen: list[str] = []

    def map_unordered(self, stage, items, ctx):
        for item, result in super().map_unordered(stage, items, ctx):
            if stage.name == "square":
                if self.n is not None and len(self.seen) == self.n:
                    raise KeyboardInterrupt
                self.seen.append(item.key)
            yield item, result


def test_interrupted_run_resumes_without_redoing_items(tmp_path, data):
    clean = tmp_path / "clean"
    run(clean, data)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run(out, data, executor=StopAfter(4))
    assert statuses(out, data)["square"] == ("in-progress", ["4 items committed"])
    again = StopAfter()
    summary = {s.name: s for s in run(out, data, executor=again)}
    assert summary["square"].resumed == 4
    assert len(again.seen) == 6
    assert diff(snapshot(clean), snapshot(out)) == []
    assert not (next((out / "square").glob("*")) / "_ledger").exists()


def test_force_rebuilds(tmp_path, data):
    out = tmp_path / "out"
    run(out, data)
    assert [s.status for s in run(out, data, force=True)] == ["ran"] * 3


TOY_PLUGINS = {"EMOPREP_PLUGINS": "tests.helpers.toy_stages"}


def _cli(args, env_extra=None, **kw):
    env = {**os.environ, "EMOPREP_PLUGINS": "tests.helpers.toy_stages",
           "PYTHONPATH": pythonpath_with_repo()}
    env.update(env_extra or {})
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([str(EMOPREP), *args], env=env, stdout=subprocess.PIPE, text=True, **kw)


def _toy_args(out: Path, data: Path, *extra: str) -> list[str]:
    return ["run", "--recipe", str(TOY_RECIPE), "--data-root", str(data), "--out", str(out), "-q", *extra]


def test_an_item_that_never_returns_becomes_a_timeout_reject_and_the_run_goes_on(tmp_path):
    """numbers/7.txt is a FIFO nobody writes to: opening it blocks forever, as a file on a
    stalled mount would. Planning does not open it (hashing skips what is not a regular file);
    its item is stopped after --item-timeout, its worker replaced, and every other item is built.
    Workers take 5 s to start (longer than the limit): the limit counts from an item's real
    start in a worker, not from its queueing (on a loaded machine that timed healthy items out)."""
    data = make_data(tmp_path / "data", n=12, bad=False)
    (data / "numbers" / "7.txt").unlink()
    os.mkfifo(data / "numbers" / "7.txt")
    out = tmp_path / "out"
    t0 = time.time()
    proc = _cli(_toy_args(out, data, "--workers", "2", "--item-timeout", "3"), env_extra={"TOY_IMPORT_DELAY": "5"})
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert time.time() - t0 < 120
    rejects = pq.read_table(out / "manifests" / "rejects.parquet").to_pandas()
    hung = rejects[rejects["sample_id"] == "toy:7"]
    message = str(hung["message"].iat[0])
    assert hung["reason"].tolist() == ["timeout"] and "numbers/7.txt" in message and "no result after 3 s" in message
    kept = pq.read_table(out / "manifests" / "toy.parquet").to_pandas()
    assert sorted(kept["value"]) == [v for v in range(1, 13) if v != 7]
    assert (out / "manifests" / "total.parquet").exists()


def test_off_a_terminal_a_long_stage_reports_progress_every_30_seconds(tmp_path):
    """stderr piped (as under nohup, SLURM or CI): a stage running 40 s says within 35 s of its
    start how far it is (items, rate, ETA), on stderr and as a `progress` event in the log."""
    data = make_data(tmp_path / "data", n=5, bad=False)
    out = tmp_path / "out"
    args = ["run", "--recipe", str(TOY_RECIPE), "--data-root", str(data), "--out", str(out), "--workers", "1",
            "--set", "square.sleep_s=8"]
    proc = _cli(args, env_extra={"EMOPREP_PROGRESS_SECONDS": ""})  # the default interval
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    lines = [ln for ln in err.splitlines() if re.match(r"square: \d/5 items \(\d+\.\d %\), [\d.]+ items/s, ETA ", ln)]
    assert lines, err
    events = [json.loads(ln) for log in (out / "logs").glob("*.jsonl") for ln in log.read_text().splitlines()]
    start = next(e["t"] for e in events if e["event"] == "stage-start" and e["stage"] == "square")
    ticks = [e for e in events if e["event"] == "progress" and e["stage"] == "square"]
    assert ticks and ticks[0]["t"] - start <= 35, [e["t"] - start for e in ticks]
    assert ticks[0]["total"] == 5 and 0 <= ticks[0]["done"] < 5 and ticks[0]["message"] in lines


def _sigkill_trials(tmp_path: Path, delays: list[float]) -> None:
    data = make_data(tmp_path / "data", n=40)
    slow = ["--set", "square.sleep_s=0.03"]
    clean = tmp_path / "clean"
    assert _cli(_toy_args(clean, data, *slow)).wait(120) == 0
    expected = snapshot(clean)
    interrupted = 0
    for i, delay in enumerate(delays):
        out = tmp_path / f"killed{i}"
        proc = _cli(_toy_args(out, data, *slow), start_new_session=True)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its worker processes
        proc.wait()
        assert done_but_incomplete(out) == [], f"kill after {delay}s"
        interrupted += not (out / "manifests" / "total.parquet").exists()
        res = _cli(_toy_args(out, data, *slow))
        assert res.wait(120) == 0, res.stderr.read()
        assert diff(expected, snapshot(out)) == [], f"kill after {delay}s"
        assert temp_files(out) == []
    assert interrupted >= len(delays) // 2, "the kills must land before the run ends"


def test_sigkill_at_several_points_then_rerun_gives_identical_outputs(tmp_path):
    _sigkill_trials(tmp_path, [0.4, 1.0, 1.6, 2.2])


@pytest.mark.slow
def test_sigkill_many_random_points(tmp_path):
    import random
    rng = random.Random(7)
    _sigkill_trials(tmp_path, [rng.uniform(0.2, 3.0) for _ in range(20)])


@pytest.mark.parametrize("mode", ["flock", "excl"])
def test_second_run_on_the_same_output_waits_or_exits_2(tmp_path, data, mode, monkeypatch):
    if mode == "excl":  # the O_EXCL lock file, as on a filesystem without flock (the runs inherit it)
        monkeypatch.setenv("EMOPREP_LOCK", "excl")
    out = tmp_path / "out"
    out.mkdir()
    lock = OutputLock(out).acquire()
    try:
        proc = _cli(_toy_args(out, data, "--no-wait"))
        assert proc.wait(60) == 2
        assert "in use by another emoprep run" in proc.stderr.read()
        log = (tmp_path / "waiting.err").open("w+")
        waiting = _cli(_toy_args(out, data), stderr=log)
        deadline = time.time() + 120  # a loaded machine may take a while to start Python
        while "waiting" not in (tmp_path / "waiting.err").read_text() and time.time() < deadline:
            assert waiting.poll() is None, "the second run ended while the lock was held"
            time.sleep(0.1)
        assert "waiting" in (tmp_path / "waiting.err").read_text()
        time.sleep(0.5)
        assert waiting.poll() is None  # still waiting for the lock
    finally:
        lock.release()
    assert waiting.wait(60) == 0
    assert (out / "manifests" / "total.parquet").exists()
    assert not (out / EXCL_NAME).exists()  # released


def test_without_flock_the_lock_is_a_file_created_exclusively(tmp_path, monkeypatch):
    def no_flock(fh, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    lock = OutputLock(tmp_path).acquire()
    info = json.loads((tmp_path / EXCL_NAME).read_text())
    assert lock.mode == "excl" and info["pid"] == os.getpid() and info["host"] == socket.gethostname()
    assert "flock is not available" in info["why"] and info["since"]
    with pytest.raises(ConfigError, match=f"pid {os.getpid()} on {socket.gethostname()}"):
        OutputLock(tmp_path, wait=False).acquire()
    lock.release()
    assert not (tmp_path / EXCL_NAME).exists()
    OutputLock(tmp_path, wait=False).acquire().release()


def test_a_lock_file_left_by_a_killed_run_is_taken_over(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOPREP_LOCK", "excl")
    code = ("import sys, time\nfrom pathlib import Path\nfrom emoprep.pipeline.lock import OutputLock\n"
            f"OutputLock(Path({str(tmp_path)!r})).acquire()\nprint('held', flush=True)\ntime.sleep(600)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(ConfigError, match=f"pid {holder.pid}"):  # alive: not stale
        OutputLock(tmp_path, wait=False).acquire()
    holder.kill()
    holder.wait()
    said: list[str] = []
    OutputLock(tmp_path, wait=False, on_wait=said.append).acquire().release()
    assert len(said) == 1 and f"pid {holder.pid}" in said[0] and "is gone" in said[0]


def test_a_lock_file_of_another_host_is_stale_only_when_no_longer_refreshed(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOPREP_LOCK", "excl")
    path = tmp_path / EXCL_NAME
    path.write_text(json.dumps({"pid": 1, "host": "node-17", "since": "2026-12-01T00:00:00+0000"}))
    with pytest.raises(ConfigError, match="pid 1 on node-17"):
        OutputLock(tmp_path, wait=False).acquire()
    old = time.time() - STALE_AFTER_S - 5
    os.utime(path, (old, old))
    said: list[str] = []
    OutputLock(tmp_path, wait=False, on_wait=said.append).acquire().release()
    assert len(said) == 1 and "not refreshed" in said[0]


def test_wrong_data_root_is_exit_2_with_the_expected_layout(tmp_path):
    (tmp_path / "empty").mkdir()
    res = invoke(*_toy_args(tmp_path / "out", tmp_path / "empty"), env=TOY_PLUGINS)
    assert res.exit_code == 2, said(res)
    assert "expected the toy layout" in res.stderr


def test_recipe_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown parameter square\.pwoer \(did you mean 'power'\?\)"):
        recipe(str(TOY_RECIPE), ["square.pwoer=3"], catalog=toy_catalog())
    with pytest.raises(ConfigError, match="unknown stage"):
        recipe(str(TOY_RECIPE), ["sqare.power=3"], catalog=toy_catalog())
    with pytest.raises(ConfigError, match="expected an integer"):
        recipe(str(TOY_RECIPE), ["square.power=2.5"], catalog=toy_catalog())
    with pytest.raises(ConfigError, match=r"STAGE\.KEY=VALUE"):
        recipe(str(TOY_RECIPE), ["power=3"], catalog=toy_catalog())
    child = tmp_path / "child.toml"
    child.write_text(f'[recipe]\nextends = "{TOY_RECIPE}"\nname = "child"\n[total]\noffset = 7\n[bogus]\nx = 1\n')
    with pytest.raises(ConfigError, match=r"unknown stage \[bogus\]"):
        recipe(str(child), catalog=toy_catalog())
    child.write_text(f'[recipe]\nextends = "{TOY_RECIPE}"\nname = "child"\n[total]\noffset = 7\n')
    rec = recipe(str(child), ["toy.root=/some/where"], catalog=toy_catalog())
    assert rec.targets == ["total"] and rec.sections["square"] == {"power": 2}
    assert rec.sections["total"] == {"offset": 7} and rec.sections["toy"] == {"root": "/some/where"}


def test_help_reads_well():
    for args in ([], ["run"], ["status"], ["demo-data"], ["stages"], ["recipes"]):
        res = invoke(*args, "--help")
        assert res.exit_code == 0, said(res)
        assert "Usage" in res.stdout
    res = invoke("run", "--help")
    for opt in ("--stage", "--recipe", "--data-root", "--out", "--force", "--executor", "--device",
                "--dry-run", "--set", "--no-wait"):
        assert opt in res.stdout
    version = invoke("--version")
    assert version.exit_code == 0 and re.fullmatch(r"emoprep \d+\.\d+\.\d+\S*\n", version.stdout)
    for opt, bad in (("--executor", "threads"), ("--device", "tpu")):
        res = invoke("run", opt, bad)
        assert res.exit_code == 2 and bad in res.stderr, said(res)  # a choice, refused before anything runs
    assert "--install-completion" in invoke("--help").stdout


def test_temp_files_of_a_killed_writer_are_swept(tmp_path, data):
    out = tmp_path / "out"
    run(out, data)
    sq = next((out / "square").glob("*"))
    (sq / "values" / ".tmp-deadbeef-toy_1.txt").write_text("partial")
    (sq / "_DONE.json").unlink()  # as if killed before the end
    run(out, data)
    assert temp_files(out) == []


def test_copy_of_output_tree_is_relocatable(tmp_path, data):
    out = tmp_path / "out"
    run(out, data)
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    assert [s.status for s in run(moved, data)] == ["up-to-date"] * 3


def test_a_committed_item_whose_file_vanished_is_redone(tmp_path, data):
    clean = tmp_path / "clean"
    run(clean, data)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run(out, data, executor=StopAfter(4))
    sq = next((out / "square").glob("*"))
    victim = sorted((sq / "values").glob("*.txt"))[0]
    victim.write_bytes(b"")  # as a power loss could leave a renamed but unflushed file
    again = StopAfter()
    run(out, data, executor=again)
    assert len(again.seen) == 7
    assert diff(snapshot(clean), snapshot(out)) == []


def test_a_full_disk_stops_the_run_with_a_clear_message_and_keeps_outputs(tmp_path, data, monkeypatch):
    out = tmp_path / "out"
    run(out, data)
    before = snapshot(out)
    monkeypatch.setenv("TOY_ENOSPC_ON", "toy:6")
    from emoprep.pipeline.runner import EnvironmentFault
    with pytest.raises(EnvironmentFault, match="no space left on the device while processing toy:6"):
        run(out, data, ["square.power=5"])
    after = snapshot(out)
    assert all(after[k] == v for k, v in before.items())  # earlier outputs untouched
    assert not any(k.startswith("manifests/") and after.get(k) != before.get(k) for k in after)
    monkeypatch.delenv("TOY_ENOSPC_ON")
    summary = {s.name: s for s in run(out, data, ["square.power=5"])}
    assert summary["square"].resumed >= 1 and summary["square"].rejects == 0


def test_full_disk_through_the_cli_is_exit_1(tmp_path, data):
    res = invoke(*_toy_args(tmp_path / "out", data), env={**TOY_PLUGINS, "TOY_ENOSPC_ON": "toy:2"})
    assert res.exit_code == 1, said(res)
    assert "no space left on the device" in res.stderr


def test_switching_back_to_an_up_to_date_folder_makes_it_current_again(tmp_path, data):
    out = tmp_path / "out"
    first = {s.name: s for s in run(out, data)}
    run(out, data, ["total.offset=9"])
    assert (out / "total-current.txt").read_text() != first["total"].fingerprint
    again = {s.name: s for s in run(out, data)}
    assert again["total"].status == "up-to-date"
    assert (out / "total-current.txt").read_text() == first["total"].fingerprint
    current = json.loads((out / "manifests" / "_current.json").read_text())
    assert current["total"]["fingerprint"] == first["total"].fingerprint
