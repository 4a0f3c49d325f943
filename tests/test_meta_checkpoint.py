"""Checkpoint integrity: a damaged checkpoint is one clear error naming a good alternative.

A run's ``checkpoint.msgpack`` carries the sha256 of its bytes; resuming checks it, the tree
(keys, shapes, dtypes) and that parameters are finite. Nothing is deleted; the error names the
previous checkpoint (``checkpoint.prev.msgpack``) or ``best.msgpack``. Plain files written
before the checksum existed, and the shipped meta-parameter files, still load.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_meta_toy import SPEC, TOY_LEARNER, toy_evaluate, toy_objective

from vsml_bench.agents.meta import checkpoint as ckpt
from vsml_bench.agents.meta.loop import TrainConfig, train
from vsml_bench.errors import UserError

CONFIG = TrainConfig(
    method="es",
    steps=4,
    n_pairs=2,
    sigma=0.05,
    learning_rate=0.05,
    eval_every=2,
    checkpoint_every=1,
    seed=3,
)


def _train(out: Path, **kw):
    return train(
        TOY_LEARNER,
        SPEC,
        toy_objective(),
        CONFIG,
        out,
        evaluate=toy_evaluate(),
        progress=False,
        **kw,
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run stopped after step 3: checkpoint (3), checkpoint.prev (2), best (step 2)."""
    out = tmp_path_factory.mktemp("ckpt") / "run"
    _train(out, stop_after=3)
    return out


def _target():
    """The state a resumed toy run restores into (as loop.train builds it)."""
    meta = TOY_LEARNER.meta_init(jax.random.key(0), SPEC)
    opt = CONFIG.optimizer().init(meta)
    return {
        "step": np.int64(0),
        "key_data": np.zeros(2, np.uint32),
        "meta_params": meta,
        "opt_state": opt,
        "best": {"step": np.int64(-1), "score": np.float64(-np.inf), "meta_params": meta},
        "wall_time_s": np.float64(0.0),
        "cpu_time_s": np.float64(0.0),
    }


def _copy_run(run_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    return out


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.slow
def test_run_files_have_a_checksum_and_a_previous_checkpoint(run_dir):
    data = (run_dir / "checkpoint.msgpack").read_bytes()
    assert ckpt.CHECKSUM_KEY.encode() in data
    state = ckpt.load(run_dir / "checkpoint.msgpack", _target())
    prev = ckpt.load(run_dir / "checkpoint.prev.msgpack", _target())
    assert (int(state["step"]), int(prev["step"])) == (3, 2)
    # best.msgpack stays a plain meta-parameter file (read as it is by --init-from, the harness).
    best = (run_dir / "best.msgpack").read_bytes()
    assert ckpt.CHECKSUM_KEY.encode() not in best
    assert set(ckpt.serialization.msgpack_restore(best)) == {"w0", "b", "log_lr"}


def test_files_without_a_checksum_still_load(tmp_path, run_dir):
    state = ckpt.load(run_dir / "checkpoint.msgpack", _target())
    ckpt.save(tmp_path / "old.msgpack", state, checksum=False)  # the format before checksums
    assert ckpt.CHECKSUM_KEY.encode() not in (tmp_path / "old.msgpack").read_bytes()
    old = ckpt.load(tmp_path / "old.msgpack", _target())
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(old), strict=True):
        np.testing.assert_array_equal(a, b)


def test_shipped_meta_parameter_files_load_unchanged():
    """The shipped msgpack files (checked by their model card's sha256) have no checksum entry
    and must keep loading, byte for byte, through the registry and through ckpt.load."""
    import hashlib

    from vsml_bench import agents

    folder = Path(agents.__file__).parent / "pretrained"
    shipped = sorted(folder.glob("*.msgpack"))
    assert shipped
    for path in shipped:
        data = path.read_bytes()
        card = json.loads(path.with_suffix(".json").read_text())
        assert hashlib.sha256(data).hexdigest() == card["sha256"]
        assert ckpt.CHECKSUM_KEY.encode() not in data
        plain = ckpt.serialization.msgpack_restore(data)
        loaded = ckpt.load(path, plain)
        for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(loaded), strict=True):
            np.testing.assert_array_equal(a, b)
    agents.make("vsml", pretrained="mnist")  # the registry path checks the card's sha256


def _flip_bit(data: bytes, bit: int) -> bytes:
    b = bytearray(data)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


def _nan_params(run_dir: Path) -> bytes:
    state = ckpt.load(run_dir / "checkpoint.msgpack", _target())
    state["meta_params"]["w0"] = np.full_like(state["meta_params"]["w0"], np.nan)
    tmp = run_dir.parent / "nan.msgpack"
    ckpt.save(tmp, state)  # a valid checksum over NaN parameters
    return tmp.read_bytes()


def _other_tree(run_dir: Path) -> bytes:
    state = ckpt.load(run_dir / "checkpoint.msgpack", _target())
    del state["opt_state"]
    tmp = run_dir.parent / "other.msgpack"
    ckpt.save(tmp, state)
    return tmp.read_bytes()


def _wrong_shape(run_dir: Path) -> bytes:
    state = ckpt.load(run_dir / "checkpoint.msgpack", _target())
    state["meta_params"]["w0"] = np.zeros((5, 2), np.float32)
    state["best"]["meta_params"]["w0"] = np.zeros((5, 2), np.float32)
    tmp = run_dir.parent / "shape.msgpack"
    ckpt.save(tmp, state)
    return tmp.read_bytes()


CORRUPTIONS = {
    "one flipped bit in a parameter": lambda d, r: _flip_bit(d, 8 * (len(d) - 40) + 3),
    "one flipped bit in the checksum": lambda d, r: _flip_bit(
        d, 8 * d.index(ckpt.CHECKSUM_KEY.encode()) + 8 * 20 + 1
    ),
    "one flipped bit in the checksum key": lambda d, r: _flip_bit(
        d, 8 * d.index(ckpt.CHECKSUM_KEY.encode()) + 8 * 3
    ),
    "truncated": lambda d, r: d[: len(d) // 2],
    "truncated by one byte": lambda d, r: d[:-1],
    "empty": lambda d, r: b"",
    "garbage": lambda d, r: b"\x00\xff" * 300,
    "a JSON file": lambda d, r: b'{"step": 3}',
    "NaN parameters": lambda d, r: _nan_params(r),
    "a different tree": lambda d, r: _other_tree(r),
    "wrong shapes": lambda d, r: _wrong_shape(r),
    "a meta-parameter file": lambda d, r: (r / "best.msgpack").read_bytes(),
    "an extra byte": lambda d, r: d + b"\x00",
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_a_corrupt_checkpoint_is_one_line_naming_the_file_and_an_alternative(
    name, run_dir, tmp_path
):
    out = _copy_run(run_dir, tmp_path)
    path = out / "checkpoint.msgpack"
    path.write_bytes(CORRUPTIONS[name](path.read_bytes(), run_dir))
    before = _snapshot(out)
    with pytest.raises(ckpt.CorruptCheckpoint) as err:
        _train(out, resume=True)
    message = str(err.value)
    assert isinstance(err.value, UserError) and "\n" not in message
    assert str(path) in message and "nothing was deleted" in message
    prev = out / "checkpoint.prev.msgpack"
    assert err.value.alternative == prev and f"{prev} (step 2)" in message
    assert _snapshot(out) == before  # not one byte changed, nothing removed


def test_without_a_good_previous_checkpoint_best_is_named_then_nothing(run_dir, tmp_path):
    out = _copy_run(run_dir, tmp_path)
    (out / "checkpoint.msgpack").write_bytes(b"")
    (out / "checkpoint.prev.msgpack").write_bytes(b"\x01")
    with pytest.raises(ckpt.CorruptCheckpoint) as err:
        _train(out, resume=True)
    best = out / "best.msgpack"
    assert err.value.alternative == best and f"--init-from {best}" in str(err.value)
    best.write_bytes(best.read_bytes()[:-3])
    with pytest.raises(ckpt.CorruptCheckpoint, match="no good alternative") as err:
        _train(out, resume=True)
    assert err.value.alternative is None


def test_the_named_alternative_resumes(run_dir, tmp_path):
    out = _copy_run(run_dir, tmp_path)
    path = out / "checkpoint.msgpack"
    path.write_bytes(_flip_bit(path.read_bytes(), 8 * 60))
    with pytest.raises(ckpt.CorruptCheckpoint) as err:
        _train(out, resume=True)
    shutil.copyfile(err.value.alternative, path)  # what the message says to do
    assert _train(out, resume=True)["step"] == CONFIG.steps


@pytest.mark.parametrize(
    "text",
    ["", "{", '{"train": 3}', "[1, 2]", "\udcff", '{"train": {"steps": ' * 5000],
)
def test_a_corrupt_run_config_is_one_line(run_dir, tmp_path, text):
    out = _copy_run(run_dir, tmp_path)
    (out / "config.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(ckpt.CorruptCheckpoint) as err:
        _train(out, resume=True)
    assert str(out / "config.json") in str(err.value) and "\n" not in str(err.value)
    (out / "config.json").unlink()
    with pytest.raises(ckpt.CorruptCheckpoint, match="cannot be read"):
        _train(out, resume=True)


def test_a_folder_in_place_of_the_checkpoint_is_one_line(run_dir, tmp_path):
    out = _copy_run(run_dir, tmp_path)
    (out / "checkpoint.msgpack").unlink()
    (out / "checkpoint.msgpack").mkdir()
    with pytest.raises(ckpt.CorruptCheckpoint, match="cannot be read"):
        ckpt.load(out / "checkpoint.msgpack", _target())


def test_every_sampled_single_bit_flip_is_caught(run_dir, tmp_path):
    data = (run_dir / "checkpoint.msgpack").read_bytes()
    path = tmp_path / "c.msgpack"
    rng = np.random.default_rng(0)
    for bit in rng.choice(8 * len(data), size=48, replace=False):
        path.write_bytes(_flip_bit(data, int(bit)))
        with pytest.raises(ckpt.CorruptCheckpoint):
            ckpt.load(path, _target())


@st.composite
def damaged(draw, data: bytes) -> bytes:
    """A checkpoint damaged the ways disks, copies and people damage files."""
    kind = draw(st.sampled_from(["flip", "truncate", "overwrite", "insert", "delete", "splice"]))
    n = len(data)
    if kind == "flip":
        bits = draw(st.lists(st.integers(0, 8 * n - 1), min_size=1, max_size=8, unique=True))
        out = data
        for bit in bits:
            out = _flip_bit(out, bit)
        return out
    if kind == "truncate":
        return data[: draw(st.integers(0, n - 1))]
    at = draw(st.integers(0, n - 1))
    if kind == "overwrite":
        junk = draw(st.binary(min_size=1, max_size=64))
        return data[:at] + junk + data[at + len(junk) :]
    if kind == "insert":
        return data[:at] + draw(st.binary(min_size=1, max_size=64)) + data[at:]
    if kind == "delete":
        return data[:at] + data[at + draw(st.integers(1, 64)) :]
    # splice: a stretch of the file copied over another place (a misplaced block)
    length = draw(st.integers(1, 128))
    source = draw(st.integers(0, n - 1))
    return data[:at] + data[source : source + length] + data[at + length :]


def test_fuzz_corrupt_checkpoints_never_traceback_nor_load(run_dir, tmp_path_factory, request):
    """>= 300 damaged checkpoints under --runslow (CI), a quick sample otherwise: every one is
    refused with one line naming it; never an exception of another type, never a load."""
    examples = 340 if request.config.getoption("--runslow") else 30
    good = (run_dir / "checkpoint.msgpack").read_bytes()
    folder = tmp_path_factory.mktemp("fuzz-ckpt")
    path = folder / "checkpoint.msgpack"
    refused = []

    @given(data=damaged(good).filter(lambda d: d != good))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    def check(data):
        path.write_bytes(data)
        with pytest.raises(ckpt.CorruptCheckpoint) as err:
            ckpt.load(path, _target())
        assert "\n" not in str(err.value) and str(path) in str(err.value)
        assert path.read_bytes() == data  # the loader never rewrites or deletes
        refused.append(data)

    check()
    assert len(refused) >= examples
    assert len({*refused}) >= 0.9 * examples  # >= 306 distinct damaged files under --runslow
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.msgpack"]


def test_save_refuses_a_state_that_uses_the_checksum_key(tmp_path):
    with pytest.raises(ValueError, match="__sha256__"):
        ckpt.save(tmp_path / "c.msgpack", {"__sha256__": np.zeros(1)})
    assert not (tmp_path / "c.msgpack").exists()


def test_read_state_checks_the_checksum_without_a_target(tmp_path):
    path = tmp_path / "checkpoint.msgpack"
    ckpt.save(path, {"step": np.int64(3), "meta_params": {"w": np.arange(4, dtype=np.float32)}})
    state = ckpt.read_state(path)
    assert int(state["step"]) == 3 and set(state) == {"step", "meta_params"}
    data = bytearray(path.read_bytes())
    data[data.index(np.arange(4, dtype=np.float32).tobytes())] ^= 1  # one flipped bit
    path.write_bytes(bytes(data))
    with pytest.raises(ckpt.CorruptCheckpoint, match="sha256"):
        ckpt.read_state(path)
