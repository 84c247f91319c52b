"""One writer per run folder and shard: real second processes are refused, killed holders release."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rdmeval.cli.main import main
from rdmeval.errors import RdmevalError, RunStoreError
from rdmeval.store import RunStore, WorkItem
from rdmeval.store.lock import LOCK_DIR, RunLock, lock_folder

HOLD = textwrap.dedent("""
    import sys, time
    from rdmeval.store.lock import RunLock
    lock = RunLock(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    lock.opened()
    print("held", flush=True)
    time.sleep(600)
""")


def _gen(out, *extra, prompts="demo-geneval") -> int:
    return main(["generate", "--model", "dummy", "--prompts", str(prompts), "--out", str(out),
                 "--resolution", "32", "--rng-device", "cpu", "--no-progress", *extra])


def _hold(run: Path, role: str = "generate", rank: int = 0, world: int = 1) -> subprocess.Popen:
    """Another process that takes a run's locks and keeps them until it is killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run), role, str(rank), str(world)],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture
def holders():
    procs: list[subprocess.Popen] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            _kill(p)


def test_second_generate_on_the_same_run_and_shard_is_refused_at_once(tmp_path, capsys, holders):
    run = tmp_path / "r"
    holders.append(proc := _hold(run))
    t0 = time.time()
    assert _gen(run) == 2
    err = capsys.readouterr().err
    lock = lock_folder(run) / "generate-shard-0-of-1"
    assert f"generate shard 0/1 is already being written by pid {proc.pid} " in err and str(lock) in err
    assert time.time() - t0 < 30 and not (run / "manifest.json").exists()
    _kill(proc)  # the kernel drops the lock with its process: no stale lock
    assert _gen(run) == 0 and json.loads((run / "manifest.json").read_text())["complete"]


def test_a_killed_cli_writer_releases_the_run_and_its_temporaries_go_on_resume(tmp_path, capsys):
    prompts = tmp_path / "many.txt"
    prompts.write_text("\n".join(f"prompt number {i}" for i in range(400)) + "\n")
    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "rdmeval", "generate", "--model", "dummy", "--prompts", str(prompts), "--out", str(run),
           "--resolution", "32", "--rng-device", "cpu", "--n-per-prompt", "2", "--batch-size", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(list(run.rglob("*.png"))) < 10:
            time.sleep(0.005)
        assert proc.poll() is None, "the first writer must still be running"
        assert _gen(run, "--n-per-prompt", "2", "--batch-size", "1", prompts=prompts) == 2  # refused while it runs
        assert f"already being written by pid {proc.pid} " in capsys.readouterr().err
    finally:
        _kill(proc)
    # what a writer killed between mkstemp and rename leaves behind
    orphan = RunStore(run).image_path(WorkItem(0, 0)).parent / ".0000.png.ab12cd_9.tmp"
    orphan.write_bytes(b"partial")
    manifest_tmp = run / ".manifest.json.zz00zz00.tmp"
    manifest_tmp.write_bytes(b"{")
    assert _gen(run, "--n-per-prompt", "2", "--batch-size", "1", prompts=prompts) == 0
    assert not orphan.exists() and not manifest_tmp.exists()
    removed = re.search(r"removed (\d+) temporary files left in ", capsys.readouterr().err)
    assert removed and int(removed.group(1)) >= 2  # ours, plus any the kill itself left mid-write
    assert not [p for p in run.rglob("*.tmp")] and json.loads((run / "manifest.json").read_text())["complete"]


def test_shards_of_one_run_still_run_in_parallel(tmp_path, holders):
    run = tmp_path / "r"
    holders.append(_hold(run, "generate", 1, 2))  # shard 1/2 is being written by another process
    assert _gen(run, "--shard", "0/2") == 0
    assert not json.loads((run / "manifest.json").read_text())["complete"]  # shard 1's images are still to come
    assert not any(p.name.startswith(".") for p in run.iterdir())  # the locks live beside the run, not in it
    assert (run.parent / LOCK_DIR / "r").is_dir()


def test_temporaries_are_kept_while_another_writer_may_be_writing_them(tmp_path, holders):
    run = tmp_path / "r"
    assert _gen(run, "--shard", "0/2") == 0
    holders.append(_hold(run, "generate", 1, 2))
    pending = RunStore(run).image_path(WorkItem(0, 1)).parent / ".0001.png.abcdefgh.tmp"
    pending.write_bytes(b"in flight")
    assert _gen(run, "--shard", "0/2") == 0
    assert pending.exists()  # shard 1's writer is alive: its temporary file may be about to be renamed


def test_fresh_refuses_while_another_process_writes_the_run(tmp_path, capsys, holders):
    run = tmp_path / "r"
    assert _gen(run, "--shard", "0/2") == 0
    holders.append(proc := _hold(run, "generate", 1, 2))
    assert _gen(run, "--shard", "0/2", "--n-per-prompt", "2", "--fresh") == 2
    err = capsys.readouterr().err
    assert "--fresh would move the run aside while it is being written by" in err
    assert f"pid {proc.pid} " in err and "generate-shard-1-of-2" in err
    assert not list(tmp_path.glob("r.replaced-*"))  # nothing moved
    _kill(proc)
    assert _gen(run, "--shard", "0/2", "--n-per-prompt", "2", "--fresh") == 0
    assert len(list(tmp_path.glob("r.replaced-*"))) == 1


def test_a_second_scorer_on_the_same_run_and_shard_is_refused(tmp_path, holders):
    from rdmeval.scorers.geneval.score import score_geneval_run

    run = tmp_path / "r"
    assert _gen(run) == 0
    holders.append(proc := _hold(run, "score-geneval", 0, 1))
    with pytest.raises(RunStoreError, match=rf"score-geneval shard 0/1 is already being written by pid {proc.pid} "):
        score_geneval_run(run, rejudge=True, progress=False)
    _kill(proc)
    with pytest.raises(RdmevalError, match="--rejudge needs cached detections"):  # past the lock now
        score_geneval_run(run, rejudge=True, progress=False)


def test_locks_are_reentrant_within_a_process_and_released(tmp_path):
    run = tmp_path / "r"
    a = RunLock(run, "generate", 0, 1)
    b = RunLock(run, "generate", 0, 1)  # e.g. a library caller resuming after an exception kept `a` alive
    a.release()
    b.release()
    probe = subprocess.run([sys.executable, "-c", HOLD.replace("time.sleep(600)", ""), str(run), "generate", "0", "1"],
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0 and probe.stdout.strip() == "held"  # another process can take it now
