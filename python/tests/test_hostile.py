"""Checkpoints made by an attacker, loaded the way an application would (through the library, in a
child process so that a crash or a hang fails the test instead of the test run): each must give a
clear error, quickly, within a bounded amount of memory. The limits are those stated in
include/sam3_neck.h (Untrusted checkpoints).

Memory: the child reports its own peak resident set after the attempt (VmHWM: ru_maxrss would
include the pytest process's size at the fork); Python, NumPy and the library take about 60 MB. The bound asserted is 512 MB for every case (half the
1 GiB bar; the worst measured is about 210 MB); the figures are printed with `pytest -s` and
quoted in docs/checkpoints.md.
"""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import torchzip
from sam3neck import Neck, checkpoint

PEAK_RSS_BOUND_MB = 512
CHILD = r"""
import json, sys
from sam3neck import Neck, Sam3NeckError, inspection
action, path = sys.argv[1], sys.argv[2]
out = {}
try:
    if action == "load":
        Neck(path).close()
        out["ok"] = True
    else:
        out["report"] = inspection.report(path)
except Sam3NeckError as e:
    out["status"], out["message"] = e.status_name, e.message
with open("/proc/self/status") as f:
    out["peak_mb"] = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024
print(json.dumps(out))
"""


def attempt(path, action="load", timeout=120):
    """Runs `action` on `path` in a fresh interpreter; returns its JSON answer (asserting it did not
    crash, hang or exceed the memory bound)."""
    p = subprocess.run(
        [sys.executable, "-c", CHILD, action, str(path)], capture_output=True, text=True, timeout=timeout
    )
    assert p.returncode == 0, f"child died ({p.returncode}): {p.stderr[-2000:]}"
    out = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"\n{Path(path).name} ({action}): peak RSS {out['peak_mb']:.0f} MB; {out.get('message', 'ok')[:160]}")
    assert out["peak_mb"] < PEAK_RSS_BOUND_MB, out
    return out


def expect_error(path, status, *words, action="load"):
    out = attempt(path, action)
    assert out.get("status") == status, out
    for w in words:
        assert w in out["message"], (w, out["message"])
    return out["message"]


def torch_zip(path, pickle: bytes, storages=None):
    z = torchzip.ZipWriter(path)
    z.add("data.pkl", pickle)
    for key, blob in (storages or {}).items():
        z.add(f"data/{key}", blob)
    z.close()
    return path


# --- nesting -------------------------------------------------------------------------------


def test_deep_tuples_lists_dicts(tmp_path):
    tuples = b"\x80\x02N" + b"\x85" * 70_000 + b"."  # TUPLE1 70,000 times: a 70 KB pickle
    lists = b"\x80\x02" + b"]" * 10_000 + b"a" * 9_999 + b"."  # EMPTY_LIST x n, APPEND x (n-1)
    dicts = b"\x80\x02}" + b"K\x01}" * 10_000 + b"s" * 10_000 + b"."  # SETITEM x n
    for name, pkl in [("tuples", tuples), ("lists", lists), ("dicts", dicts)]:
        expect_error(torch_zip(tmp_path / f"{name}.pt", pkl), "SAM3_NECK_ERR_FORMAT", "nested", "limit of 200")


def test_deep_rebuild_from_type_reductions(tmp_path):
    # _rebuild_from_type_v2(_rebuild_parameter, Tensor, (<the same, one level down>,), {}) nested
    # 10,000 deep (50,000 values on the pickle's stack): each level gives back the tensor, so the
    # values stay shallow; the file is read to its end and the neck is simply not there.
    p = torchzip.Pickle()
    p.op(b"}").mark().str_("convs.2.conv_1x1.weight")
    depth = 10_000
    for _ in range(depth):
        p.global_("torch._tensor", "_rebuild_from_type_v2").mark()
        p.global_("torch._utils", "_rebuild_parameter").global_("torch", "Tensor").mark()
    p.tensor(torchzip.TensorRef("0", "FloatStorage", 4, (2, 2, 1, 1), (2, 1, 1, 1)))
    for _ in range(depth):
        p.op(b"t").op(b"}").op(b"t").op(b"R")
    p.op(b"u")
    path = torch_zip(tmp_path / "reduce.pt", p.stop(), {"0": np.zeros(4, np.float32).tobytes()})
    expect_error(path, "SAM3_NECK_ERR_MISSING_TENSOR", "convs.")


# --- arithmetic ----------------------------------------------------------------------------


def test_huge_stride_of_a_size_one_axis_loads_correctly(tmp_path):
    weights = checkpoint.synthetic_neck(8, 4, seed=1)
    plain = tmp_path / "plain.pt"
    torchzip.write_checkpoint(plain, weights)

    def edit(refs):  # the [4, 8, 1, 1] conv_1x1 weights: strides of the size-1 axes near 2^63
        for name, r in refs.items():
            if name.endswith("conv_1x1.weight"):
                r.stride = (r.stride[0], r.stride[1], 2**63 - 1, 2**63 - 2)

    odd = tmp_path / "odd.pt"
    torchzip.write_checkpoint(odd, weights, edit_refs=edit)
    assert attempt(odd).get("ok"), "a view whose size-1 axes have huge strides is valid"
    x = np.random.default_rng(0).standard_normal((1, 8, 5, 6), dtype=np.float32)
    with Neck(plain) as a, Neck(odd) as b:
        a.compile(5, 6)
        b.compile(5, 6)
        for la, lb in zip(a.run(x), b.run(x)):
            assert np.array_equal(la.features, lb.features)


def test_overflowing_offsets_and_storage_sizes(tmp_path):
    weights = checkpoint.synthetic_neck(8, 4, seed=1)
    cases = {
        "offset": lambda r: setattr(r, "offset", 2**63 - 2),
        "stride": lambda r: setattr(r, "stride", (2**62, 1, 1, 1)),
        "numel": lambda r: setattr(r, "numel", 2**62),
    }
    for case, change in cases.items():

        def edit(refs):
            change(refs["convs.2.conv_1x1.weight"])

        path = tmp_path / f"{case}.pt"
        torchzip.write_checkpoint(path, weights, edit_refs=edit)
        expect_error(path, "SAM3_NECK_ERR_FORMAT", "convs.2.conv_1x1.weight" if case != "numel" else "should hold")


# --- memory claimed before it is backed --------------------------------------------------------


def test_expanded_view_claiming_a_huge_trunk(tmp_path):
    # conv_1x1 weights of branch 2 as a stride-0 view of one float claiming trunk_dim 2^40: the
    # loader refuses it from the shapes, and inspection does not read a neck that large.
    weights = checkpoint.synthetic_neck(8, 4, seed=1)

    def edit(refs, width=2**40):
        r = refs["convs.2.conv_1x1.weight"]
        r.shape, r.stride, r.numel = (4, width, 1, 1), (0, 0, 0, 0), 1

    path = tmp_path / "expanded.pt"
    torchzip.write_checkpoint(path, weights, edit_refs=edit)
    expect_error(path, "SAM3_NECK_ERR_SHAPE", "trunk_dim 1099511627776")  # shapes disagree: refused before reading
    report = attempt(path, action="inspect")["report"]
    (t,) = [t for n in report["necks"] for t in n["tensors"] if t["name"] == "convs.2.conv_1x1.weight"]
    assert "not read" in t["error"] and "134217728" in t["error"], t
    # A small neck whose view repeats one stored float 4,000 times: past the 64x limit when read.
    small = tmp_path / "expanded-small.pt"
    torchzip.write_checkpoint(small, weights, edit_refs=lambda refs: edit(refs, 1000))
    report = attempt(small, action="inspect")["report"]
    (t,) = [t for n in report["necks"] for t in n["tensors"] if t["name"] == "convs.2.conv_1x1.weight"]
    assert "claims 4000 elements from 1 stored" in t["error"] and "64 times its storage" in t["error"], t


def test_view_spanning_a_huge_sparse_storage(tmp_path):
    # Two elements 2^28 apart in a (sparse) 1 GiB storage: refused before the span is read.
    n = 2**28 + 1
    p = torchzip.Pickle().op(b"}").mark().str_("convs.2.conv_1x1.weight")
    p.tensor(torchzip.TensorRef("0", "FloatStorage", n, (2, 1, 1, 1), (2**28, 1, 1, 1))).op(b"u")
    z = torchzip.ZipWriter(tmp_path / "span.pt")
    z.add("data.pkl", p.stop())
    z.add_sparse("data/0", 4 * n)
    z.close()
    report = attempt(tmp_path / "span.pt", action="inspect")["report"]
    (t,) = [t for n_ in report["necks"] for t in n_["tensors"]]
    assert "spans 268435457 elements" in t["error"] and "limit of 134217728" in t["error"], t


def test_sparse_safetensors_claiming_d_model_65536(tmp_path):
    shapes = checkpoint.neck_tensor_shapes(256, 65536)
    header, offset = {}, 0
    for name, shape in shapes.items():
        size = 4 * int(np.prod(shape))
        header[f"convs.{name}"] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode()
    path = tmp_path / "sparse.safetensors"
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        f.truncate(8 + len(text) + offset)  # ~620 GB apparent, no blocks
    expect_error(path, "SAM3_NECK_ERR_FORMAT", "parameters", "d_model 65536", "limit of 134217728")
    report = attempt(path, action="inspect")["report"]
    errors = [t["error"] for n in report["necks"] for t in n["tensors"] if "error" in t]
    assert len(errors) == 22 and all("not read" in e and "134217728" in e for e in errors), errors


@pytest.mark.parametrize("case", ["list", "memo", "stack"])
def test_pickle_budgets(tmp_path, case):
    if case == "list":  # 16 M None in one list: 16 MB of pickle
        pkl = b"\x80\x02]" + (b"(" + b"N" * 1_000_000 + b"e") * 16 + b"."
        words = ["more than 4194304 items"]
    elif case == "memo":  # 4 M memo entries
        pkl = b"\x80\x02N" + b"".join(b"r" + struct.pack("<I", i) for i in range(4 * 2**20)) + b"."
        words = ["more than 1048576 memo entries"]
    else:
        pkl = b"\x80\x02" + b"N" * (2**20 + 1) + b"."
        words = ["more than 1048576 values on the stack"]
    expect_error(torch_zip(tmp_path / f"{case}.pt", pkl), "SAM3_NECK_ERR_FORMAT", *words)


def test_huge_json_header_of_numbers(tmp_path):
    body = b"[" + b"1," * 49_999_998 + b"1]"  # just under 100 MB: the format's own limit
    path = tmp_path / "numbers.safetensors"
    path.write_bytes(struct.pack("<Q", len(body)) + body)
    expect_error(path, "SAM3_NECK_ERR_FORMAT", "more than 2097152 values")


# --- file types and folders --------------------------------------------------------------------


def test_fifos_and_devices_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.pt"
    os.mkfifo(fifo)
    expect_error(fifo, "SAM3_NECK_ERR_IO", "FIFO", "not a regular file")
    expect_error("/dev/zero", "SAM3_NECK_ERR_IO", "character device")
    # A FIFO named as a shard of a sharded index.
    folder = tmp_path / "sharded"
    folder.mkdir()
    os.mkfifo(folder / "model-00001-of-00001.safetensors")
    weight_map = {f"convs.{k}": "model-00001-of-00001.safetensors" for k in checkpoint.neck_tensor_shapes(8, 4)}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    expect_error(folder, "SAM3_NECK_ERR_IO", "FIFO")


def test_shard_symlinks_stay_inside_the_folder(tmp_path):
    weights = checkpoint.synthetic_neck(8, 4, seed=2)
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"SECRET!!" + bytes(64))
    blobs = tmp_path / "models--org--neck" / "blobs"
    blobs.mkdir(parents=True)
    checkpoint.save_safetensors(blobs / "a1b2c3", weights)
    weight_map = {name: "model-00001-of-00001.safetensors" for name in weights}
    index = json.dumps({"weight_map": weight_map})
    # A plain folder whose shard links to another file: refused, and nothing of that file leaks.
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "model.safetensors.index.json").write_text(index)
    (plain / "model-00001-of-00001.safetensors").symlink_to(secret)
    message = expect_error(plain, "SAM3_NECK_ERR_FORMAT", "outside the index's folder")
    assert str(int.from_bytes(b"SECRET!!", "little")) not in message
    # The hub cache: snapshots/REV/ links into the same repository's blobs/: loads.
    snap = tmp_path / "models--org--neck" / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    (snap / "model.safetensors.index.json").write_text(index)
    (snap / "model-00001-of-00001.safetensors").symlink_to("../../blobs/a1b2c3")
    assert attempt(snap).get("ok")
    # ... but not beyond that repository.
    (snap / "model-00001-of-00001.safetensors").unlink()
    (snap / "model-00001-of-00001.safetensors").symlink_to(secret)
    expect_error(snap, "SAM3_NECK_ERR_FORMAT", "outside the index's folder")


# --- smaller points ------------------------------------------------------------------------------


def test_duplicate_keys_in_an_entry_are_refused(tmp_path):
    header = b'{"convs.2.conv_1x1.bias":{"dtype":"F32","dtype":"F16","shape":[4],"data_offsets":[0,16]}}'
    path = tmp_path / "dup.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
    expect_error(path, "SAM3_NECK_ERR_FORMAT", '"dtype" appears twice')


def test_nul_in_a_name_does_not_cut_the_message(tmp_path):
    header = b'{"a\\u0000b":{"dtype":"F32","shape":[4],"data_offsets":[0,99]}}'
    path = tmp_path / "nul.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
    expect_error(path, "SAM3_NECK_ERR_FORMAT", "'a\\0b' has data_offsets", "outside the 16 data bytes")
