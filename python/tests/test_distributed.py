"""examples/neck_on_dask.py on a LocalCluster (2 worker processes x 1 thread): every output against
the float64 reference. Needs the native library and dask.distributed (`pip install
'python[cluster]'`); skipped without dask."""

import importlib
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip(
    "dask.distributed",
    reason="dask.distributed is not installed (pip install 'dask[distributed]', or the package's 'cluster' extra)",
)

from sam3neck import checkpoint, reference  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TOL = reference.TOLERANCE["default"]
C, D = 16, 8


@pytest.fixture(scope="module")
def example():
    # On sys.path (not loaded from a file path) so that the worker processes, which receive this
    # process's sys.path, import the same module when they unpickle its functions.
    sys.path.insert(0, str(EXAMPLES))
    try:
        yield importlib.import_module("neck_on_dask")
    finally:
        sys.path.remove(str(EXAMPLES))


def test_example_on_local_cluster(example, tmp_path):
    ck = tmp_path / "tiny.safetensors"
    checkpoint.write_synthetic_checkpoint(ck, C, D, seed=9)
    weights = checkpoint.canonical(checkpoint.load_safetensors(ck), prefix=checkpoint.DEFAULT_PREFIX)
    src = tmp_path / "features"
    src.mkdir()
    rng = np.random.default_rng(0)
    inputs = {}
    for k, shape in enumerate([(C, 6, 5), (C, 6, 5), (2, C, 4, 4), (C, 6, 5), (C, 3, 7)]):
        inputs[f"f{k}"] = rng.standard_normal(shape).astype(np.float32)
        np.save(src / f"f{k}.npy", inputs[f"f{k}"])
    np.save(src / "f5.npy", np.zeros((C + 1, 4, 4), np.float32))  # wrong channel count
    paths = sorted(str(p) for p in src.glob("*.npy"))
    out = tmp_path / "out"

    t0 = time.perf_counter()
    with example.connect(None, workers=2) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        summary = example.run_on_cluster(client, str(ck), paths, str(out), threads=1)
    elapsed = time.perf_counter() - t0

    assert summary["files"] == 6
    assert [Path(p).name for p in summary["written"]] == [f"f{k}.npz" for k in range(5)]
    assert len(summary["failed"]) == 1
    path, reason = summary["failed"][0]
    assert path.endswith("f5.npy") and "17 channels" in reason and "trunk_dim is 16" in reason
    assert sum(summary["workers"].values()) == 5
    assert 3 <= summary["compiles"] <= 3 + 3  # 3 shapes; at most once per shape per chunk's worker
    for name, x in inputs.items():
        squeeze = x.ndim == 3
        ref = reference.forward(weights, x[None] if squeeze else x)
        with np.load(out / f"{name}.npz") as z:
            assert sorted(z.files) == ["level0", "level1", "level2", "level3"]
            for i, (feat, _) in enumerate(ref):
                got = z[f"level{i}"]
                assert got.shape == (feat.shape[1:] if squeeze else feat.shape)
                err = reference.normalised_error(got, feat[0] if squeeze else feat)
                assert err <= TOL, f"{name} level {i}: {err:.2e}"
    assert elapsed < 60, f"the cluster run took {elapsed:.1f} s"


def test_workers_with_several_threads_are_refused(example, tmp_path):
    from dask.distributed import Client, LocalCluster

    ck = tmp_path / "tiny.safetensors"
    checkpoint.write_synthetic_checkpoint(ck, C, D, extras=False)
    np.save(tmp_path / "a.npy", np.zeros((C, 4, 4), np.float32))
    with (
        LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        with pytest.raises(RuntimeError, match="one thread each"):
            example.run_on_cluster(client, str(ck), [str(tmp_path / "a.npy")], str(tmp_path / "o"))


def test_example_main(example, tmp_path, capsys):
    """The script's own entry point (what docs/python.md shows), on a LocalCluster of 2 workers."""
    ck = tmp_path / "tiny.safetensors"
    checkpoint.write_synthetic_checkpoint(ck, C, D, seed=2, extras=False)
    weights = checkpoint.canonical(checkpoint.load_safetensors(ck), prefix=checkpoint.DEFAULT_PREFIX)
    src = tmp_path / "features"
    src.mkdir()
    xs = [np.random.default_rng(k).standard_normal((C, 5, 4)).astype(np.float32) for k in range(3)]
    for k, x in enumerate(xs):
        np.save(src / f"x{k}.npy", x)
    assert example.main([str(ck), str(src), str(tmp_path / "out"), "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert f"3 of 3 files written to {tmp_path / 'out'} by " in text
    for k, x in enumerate(xs):
        with np.load(tmp_path / "out" / f"x{k}.npz") as z:
            for i, (feat, _) in enumerate(reference.forward(weights, x[None])):
                assert reference.normalised_error(z[f"level{i}"], feat[0]) <= TOL
    assert example.main([str(ck), str(tmp_path / "out"), str(tmp_path / "o2")]) == 1  # no .npy
    assert "no .npy files" in capsys.readouterr().err
