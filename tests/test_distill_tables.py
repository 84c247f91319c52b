"""Sharded conditioning tables: gathers, deduplicated rows, resume after an exception and after a
real ``kill -9`` of the writing process, refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from rdmeval.distill.tables import Table, TableError, check_row_aligned, prompts_sha256, write_table

REPO = Path(__file__).resolve().parents[1]


def fake_encode(prompts):
    """A deterministic row per prompt, (2, 3), from the prompt's bytes (no model)."""
    rows = []
    for p in prompts:
        b = np.frombuffer((p + "#" * 6).encode()[:6], dtype=np.uint8).astype(np.float32)
        rows.append(torch.from_numpy(b.reshape(2, 3) / 7.0 + len(p)))
    return torch.stack(rows)


PROMPTS = [f"prompt {i} " + "x" * (i % 5) for i in range(23)]


def test_rows_are_the_encoders_in_order_across_shards(tmp_path):
    write_table(tmp_path / "t", PROMPTS, fake_encode, shard_rows=5, batch_size=2, dtype="float32")
    table = Table(tmp_path / "t")
    assert len(table) == 23 and table.row_shape == (2, 3) and len(table.shards) == 5
    assert table.prompts_sha256 == prompts_sha256(PROMPTS)
    assert torch.equal(table[list(range(23))], fake_encode(PROMPTS))
    idx = torch.tensor([[22, 0], [5, 5]])
    assert table[idx].shape == (2, 2, 2, 3) and torch.equal(table[idx][0, 0], fake_encode([PROMPTS[22]])[0])
    assert table[3].shape == (2, 3)
    assert isinstance(table.shards[0], np.memmap)
    with pytest.raises(TableError, match="out of range for a table of 23 rows"):
        table[[23]]


def test_float16_storage_rounds_once(tmp_path):
    write_table(tmp_path / "t", PROMPTS, fake_encode, shard_rows=7)
    assert torch.equal(Table(tmp_path / "t")[list(range(23))], fake_encode(PROMPTS).half().float())


def test_dedupe_stores_each_prompt_once_and_repeats_rows_exactly(tmp_path):
    prompts = ["a", "b", "c"] + ["x", "y"] * 4  # a tiled block, like GenEval x32
    calls = []

    def encode(batch):
        calls.extend(batch)
        return fake_encode(batch) + torch.randn(len(batch), 1, 1) * 0  # same rows, other call pattern

    write_table(tmp_path / "t", prompts, encode, shard_rows=2, batch_size=3, dtype="float32", dedupe=True)
    table = Table(tmp_path / "t")
    assert sorted(calls) == ["a", "b", "c", "x", "y"]  # each distinct prompt encoded once
    assert len(table) == 11 and table.meta["stored_rows"] == 5
    assert table.prompts_sha256 == prompts_sha256(prompts)  # the pool's rows, not the stored ones
    assert torch.equal(table[list(range(11))], fake_encode(prompts))
    rows = table[list(range(3, 11))]
    assert all(torch.equal(rows[i], rows[i % 2]) for i in range(8))


def test_resume_after_an_exception_equals_an_uninterrupted_build(tmp_path):
    write_table(tmp_path / "ref", PROMPTS, fake_encode, shard_rows=4, batch_size=3)
    seen = []

    def failing(batch):
        if len(seen) >= 9:
            raise RuntimeError("boom")
        seen.extend(batch)
        return fake_encode(batch)

    with pytest.raises(RuntimeError, match="boom"):
        write_table(tmp_path / "t", PROMPTS, failing, shard_rows=4, batch_size=3)
    with pytest.raises(TableError, match="did not finish; run it again to resume"):
        Table(tmp_path / "t")
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["shard-00000.npy", "shard-00001.npy", "table.json"]
    again = []
    write_table(tmp_path / "t", PROMPTS, lambda b: again.extend(b) or fake_encode(b), shard_rows=4, batch_size=3)
    assert again == PROMPTS[8:]  # the two whole shards were kept, the half-written third was redone
    assert torch.equal(Table(tmp_path / "t")[list(range(23))], Table(tmp_path / "ref")[list(range(23))])


_WRITER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[3])
    from test_distill_tables import PROMPTS, fake_encode
    from rdmeval.distill.tables import write_table

    done = []

    def slow(batch):
        if len(done) == 10:  # shard 2 (rows 8..11) has its first batch on disk: stop in the middle of it
            print("mid-shard", flush=True)
            time.sleep(120)  # the parent kills us here
        done.extend(batch)
        return fake_encode(batch)

    write_table(sys.argv[1], PROMPTS, slow, shard_rows=int(sys.argv[2]), batch_size=2, dedupe=True)
""")


def test_resume_after_kill_9_in_the_middle_of_a_shard_equals_an_uninterrupted_build(tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(out), "4", str(Path(__file__).parent)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()  # blocks until the writer is mid-shard (or exits)
        if line.strip() != "mid-shard":
            proc.wait(timeout=30)
            pytest.fail(f"the writer did not stop mid-shard: {line!r} {proc.stderr.read()}")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert json.loads((out / "table.json").read_text())["complete"] is False
    temps = sorted(p.name for p in out.iterdir() if p.name.startswith("."))
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "index.npy", "shard-00000.npy", "shard-00001.npy", "table.json"]
    assert len(temps) == 1 and temps[0].startswith(".shard-00002.npy.") and temps[0].endswith(".tmp")  # the partial shard
    redone = []
    write_table(out, PROMPTS, lambda b: redone.extend(b) or fake_encode(b), shard_rows=4, batch_size=2, dedupe=True)
    assert redone == PROMPTS[8:]
    assert not any(p.name.startswith(".") for p in out.iterdir())  # the partial shard is gone
    write_table(tmp_path / "ref", PROMPTS, fake_encode, shard_rows=4, batch_size=5, dedupe=True)
    assert torch.equal(Table(out)[list(range(23))], Table(tmp_path / "ref")[list(range(23))])


def test_resume_with_other_prompts_or_encoder_is_refused(tmp_path):
    write_table(tmp_path / "t", PROMPTS, fake_encode, shard_rows=4, info={"model": "a"})
    with pytest.raises(TableError, match="other prompts_sha256; use another output folder or remove it"):
        write_table(tmp_path / "t", PROMPTS[:-1], fake_encode, shard_rows=4, info={"model": "a"})
    with pytest.raises(TableError, match="other info"):
        write_table(tmp_path / "t", PROMPTS, fake_encode, shard_rows=4, info={"model": "b"})
    assert Table(tmp_path / "t").info == {"model": "a"}


def test_a_temporary_shard_of_a_killed_build_is_removed(tmp_path):
    write_table(tmp_path / "t", PROMPTS, fake_encode, shard_rows=4)
    stale = tmp_path / "t" / ".shard-00003.npy.abcd1234.tmp"
    stale.write_bytes(b"partial")
    write_table(tmp_path / "t", PROMPTS, fake_encode, shard_rows=4)
    assert not stale.exists()


def test_missing_pieces_are_named(tmp_path):
    with pytest.raises(TableError, match="no table.json"):
        Table(tmp_path)
    write_table(tmp_path / "t", PROMPTS, fake_encode, shard_rows=4)
    (tmp_path / "t" / "shard-00002.npy").unlink()
    with pytest.raises(TableError, match="shard-00002.npy is missing"):
        Table(tmp_path / "t")


def test_damaged_files_are_named_and_a_rebuild_rewrites_a_damaged_shard(tmp_path):
    """A truncated shard used to be a numpy ValueError traceback out of `rdmeval train`."""
    write_table(tmp_path / "t", PROMPTS, fake_encode, shard_rows=4, dedupe=True)
    whole = Table(tmp_path / "t")[list(range(len(PROMPTS)))]
    shard = tmp_path / "t" / "shard-00001.npy"
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(TableError, match=r"shard-00001\.npy is damaged .*delete it and run the table's build again"):
        Table(tmp_path / "t")
    write_table(tmp_path / "t", PROMPTS, fake_encode, shard_rows=4, dedupe=True)  # the build rewrites it
    assert torch.equal(Table(tmp_path / "t")[list(range(len(PROMPTS)))], whole)
    (tmp_path / "t" / "index.npy").write_bytes(b"not npy")
    with pytest.raises(TableError, match=r"index\.npy is damaged"):
        Table(tmp_path / "t")
    (tmp_path / "t" / "table.json").write_text("{")
    with pytest.raises(TableError, match=r"table\.json is not readable JSON"):
        Table(tmp_path / "t")
    with pytest.raises(TableError, match=r"table\.json is not readable JSON"):
        write_table(tmp_path / "t", PROMPTS, fake_encode, shard_rows=4, dedupe=True)


def test_row_alignment_check(tmp_path):
    write_table(tmp_path / "a", PROMPTS, fake_encode, shard_rows=4)
    write_table(tmp_path / "b", PROMPTS, lambda b: fake_encode(b)[:, 0], shard_rows=10, dtype="float32", dedupe=True)
    write_table(tmp_path / "c", list(reversed(PROMPTS)), fake_encode, shard_rows=4)
    check_row_aligned(Table(tmp_path / "a"), Table(tmp_path / "b"))
    with pytest.raises(TableError, match="different prompts or row orders"):
        check_row_aligned(Table(tmp_path / "a"), Table(tmp_path / "c"))
