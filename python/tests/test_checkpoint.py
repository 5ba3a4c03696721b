"""safetensors I/O and the synthetic checkpoint writer (no native library needed)."""

import json
import os
import struct

import numpy as np
import pytest

from sam3neck import checkpoint

RNG = np.random.default_rng(7)


def _header(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    return n, json.loads(data[8 : 8 + n]), data


def test_round_trip_f32_exact(tmp_path):
    tensors = {
        "a": RNG.standard_normal((3, 4)).astype(np.float32),
        "b.c": RNG.standard_normal((2, 1, 5)).astype(np.float32),
        "scalar": np.array(2.5, dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "f64": RNG.standard_normal(5),  # float64 input is stored as F32
    }
    p = tmp_path / "x.safetensors"
    checkpoint.save_safetensors(p, tensors)
    back = checkpoint.load_safetensors(p)
    assert list(back) == list(tensors)
    for k, v in tensors.items():
        assert back[k].dtype == np.float32
        assert back[k].shape == v.shape
        np.testing.assert_array_equal(back[k], v.astype(np.float32))


def test_round_trip_f16(tmp_path):
    x = (RNG.standard_normal((4, 6)) * 100).astype(np.float32)
    x[0, 0] = 70000.0  # overflows F16 -> inf
    x[0, 1] = 1e-8  # underflows to a subnormal / zero
    p = tmp_path / "h.safetensors"
    checkpoint.save_safetensors(p, {"x": x}, dtype="F16")
    n, header, _ = _header(p)
    assert header["x"]["dtype"] == "F16"
    back = checkpoint.load_safetensors(p)["x"]
    assert back.dtype == np.float32
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(back, x.astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(back, checkpoint.round_to_dtype(x, "F16"))
    assert np.isinf(back[0, 0])


# (float32 bits, expected bfloat16 bits) chosen to exercise round-to-nearest-even
BF16_CASES = [
    (0x3F800000, 0x3F80),  # 1.0 exact
    (0x3F807FFF, 0x3F80),  # just below half: down
    (0x3F808000, 0x3F80),  # tie, even kept: down
    (0x3F818000, 0x3F82),  # tie, odd: up to even
    (0x3F808001, 0x3F81),  # just above half: up
    (0xBF818000, 0xBF82),  # negative tie, odd: away from zero to even
    (0x3F7FFFFF, 0x3F80),  # carries into the exponent
    (0x7F7FFFFF, 0x7F80),  # largest f32 rounds to +inf
    (0x7F800000, 0x7F80),  # +inf
    (0xFF800000, 0xFF80),  # -inf
    (0x00000001, 0x0000),  # smallest subnormal -> +0
    (0x0000FFFF, 0x0001),  # rounds up to the smallest bf16 subnormal
    (0x80008000, 0x8000),  # tie at -0: stays -0
    (0x80018000, 0x8002),  # odd tie: up
    (0x7FC00000, 0x7FC0),  # quiet NaN
]


def test_bf16_round_to_nearest_even_bits():
    bits = np.array([c[0] for c in BF16_CASES], dtype=np.uint32)
    got = checkpoint.to_bf16_bits(bits.view(np.float32))
    for (src, want), g in zip(BF16_CASES, got):
        assert int(g) == want, f"{src:#010x}: got {int(g):#06x}, want {want:#06x}"


def test_bf16_nan_stays_nan():
    # a signalling NaN whose payload lies only in the low 16 bits must not become infinity
    bits = np.array([0x7F800001, 0xFF800001, 0x7FFFFFFF], dtype=np.uint32)
    got = checkpoint.from_bf16_bits(checkpoint.to_bf16_bits(bits.view(np.float32)))
    assert np.all(np.isnan(got))
    assert np.signbit(got[1])


def test_round_trip_bf16(tmp_path):
    x = RNG.standard_normal((5, 7)).astype(np.float32)
    bits = np.array([c[0] for c in BF16_CASES if c[0] != 0x7FC00000], dtype=np.uint32)
    special = bits.view(np.float32)
    p = tmp_path / "b.safetensors"
    checkpoint.save_safetensors(p, {"x": x, "special": special}, dtype="BF16")
    n, header, data = _header(p)
    assert header["x"]["dtype"] == "BF16"
    begin, end = header["special"]["data_offsets"]
    raw = np.frombuffer(data[8 + n + begin : 8 + n + end], dtype="<u2")
    np.testing.assert_array_equal(raw, [c[1] for c in BF16_CASES if c[0] != 0x7FC00000])
    back = checkpoint.load_safetensors(p)
    assert back["x"].dtype == np.float32
    np.testing.assert_array_equal(back["x"], checkpoint.round_to_dtype(x, "BF16"))
    # BF16 keeps 8 significant bits: relative rounding error at most half an ulp, 2^-8
    assert np.all(np.abs(back["x"] - x) <= np.abs(x) * 2.0**-8)
    # the values of bfloat16 are exactly the float32 values whose low 16 bits are zero
    assert np.all((back["x"].view(np.uint32) & 0xFFFF) == 0)


def test_header_layout_and_alignment(tmp_path):
    tensors = {"odd": np.ones(3, np.float32), "w": np.ones((2, 2), np.float32), "i": np.arange(3, dtype=np.int64)}
    for name_len in range(1, 9):  # vary the JSON length so every padding amount occurs
        t = dict(tensors)
        t["x" * name_len] = np.zeros(1, np.float32)
        p = tmp_path / f"a{name_len}.safetensors"
        checkpoint.save_safetensors(p, t, dtype="F16", metadata={"k": "v"})
        n, header, data = _header(p)
        assert n % 8 == 0
        raw = data[8 : 8 + n]
        assert raw.rstrip(b" ") == raw.rstrip()  # padding is spaces only
        assert header["__metadata__"] == {"k": "v"}
        # offsets are relative to the data section, back to back, and cover it exactly
        spans = sorted(tuple(v["data_offsets"]) for k, v in header.items() if k != "__metadata__")
        assert spans[0][0] == 0
        for (a, b), (c, _) in zip(spans, spans[1:]):
            assert b == c
        assert spans[-1][1] == len(data) - 8 - n
        assert header["i"]["dtype"] == "I64"
        back = checkpoint.load_safetensors(p)
        np.testing.assert_array_equal(back["i"], [0, 1, 2])
        assert back["i"].dtype == np.int64


def test_metadata_must_be_strings(tmp_path):
    with pytest.raises(TypeError):
        checkpoint.save_safetensors(tmp_path / "m.safetensors", {"a": np.zeros(1)}, metadata={"n": 1})


def test_bad_dtype_argument(tmp_path):
    with pytest.raises(ValueError):
        checkpoint.save_safetensors(tmp_path / "m.safetensors", {"a": np.zeros(1)}, dtype="F64")


def test_interop_with_safetensors_package(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    x = RNG.standard_normal((3, 2)).astype(np.float32)
    p = tmp_path / "i.safetensors"
    checkpoint.save_safetensors(p, {"x": x}, metadata={"format": "np"})
    np.testing.assert_array_equal(st.load_file(str(p))["x"], x)
    q = tmp_path / "j.safetensors"
    st.save_file({"y": x}, str(q))
    np.testing.assert_array_equal(checkpoint.load_safetensors(q)["y"], x)


# ------------------------------------------------------------------------------------------------
# synthetic checkpoints
# ------------------------------------------------------------------------------------------------


def test_synthetic_neck_shapes_real_widths():
    t = checkpoint.synthetic_neck(1024, 256, seed=0)
    p = "convs."
    assert t[p + "0.dconv_2x2_0.weight"].shape == (1024, 512, 2, 2)
    assert t[p + "0.dconv_2x2_1.weight"].shape == (512, 256, 2, 2)
    assert t[p + "0.conv_1x1.weight"].shape == (256, 256, 1, 1)
    assert t[p + "1.dconv_2x2.weight"].shape == (1024, 512, 2, 2)
    assert t[p + "1.conv_1x1.weight"].shape == (256, 512, 1, 1)
    assert t[p + "2.conv_1x1.weight"].shape == (256, 1024, 1, 1)
    assert t[p + "3.conv_1x1.weight"].shape == (256, 1024, 1, 1)
    for i in range(4):
        assert t[f"{p}{i}.conv_3x3.weight"].shape == (256, 256, 3, 3)
        assert t[f"{p}{i}.conv_3x3.bias"].shape == (256,)
    assert t[p + "0.dconv_2x2_0.bias"].shape == (512,)
    assert t[p + "0.dconv_2x2_1.bias"].shape == (256,)
    assert len(t) == 22
    params = sum(v.size for v in t.values())
    assert 7.7e6 < params < 7.9e6  # "about 7.8 M parameters"
    assert all(v.dtype == np.float32 for v in t.values())
    # names follow NECK_MODULES
    expected = {
        f"convs.{i}.{m}.{p_}" for i, ms in checkpoint.NECK_MODULES.items() for m in ms for p_ in ("weight", "bias")
    }
    assert set(t) == expected


def test_synthetic_neck_deterministic_and_scaled():
    a = checkpoint.synthetic_neck(16, 8, seed=3)
    b = checkpoint.synthetic_neck(16, 8, seed=3)
    c = checkpoint.synthetic_neck(16, 8, seed=4)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        assert not np.array_equal(a[k], c[k])
    w = a["convs.2.conv_1x1.weight"]
    assert np.max(np.abs(w)) <= 1 / np.sqrt(16)
    assert np.all(a["convs.2.conv_1x1.bias"] != 0)
    g = checkpoint.synthetic_neck(16, 8, seed=3, group="sam2_convs")
    assert all(k.startswith("sam2_convs.") for k in g)


def test_synthetic_neck_rejects_bad_width():
    with pytest.raises(ValueError):
        checkpoint.synthetic_neck(18, 8)


@pytest.mark.parametrize("dtype", ["F32", "F16", "BF16"])
def test_write_synthetic_checkpoint(tmp_path, dtype):
    p = tmp_path / "s.safetensors"
    prefix = "detector.backbone.vision_backbone."
    neck = checkpoint.write_synthetic_checkpoint(p, trunk_dim=16, d_model=8, seed=2, dtype=dtype)
    assert set(neck) == set(checkpoint.synthetic_neck(16, 8, 2))
    back = checkpoint.load_safetensors(p)
    for k, v in neck.items():
        assert v.dtype == np.float32
        np.testing.assert_array_equal(back[prefix + k], v)  # returned values = stored values
    raw = checkpoint.synthetic_neck(16, 8, 2)
    for k, v in neck.items():
        np.testing.assert_array_equal(v, checkpoint.round_to_dtype(raw[k], dtype))
    # extras: the tracker neck (other values), trunk, text encoder and an int64 buffer
    sam2 = {k for k in back if k.startswith(prefix + "sam2_convs.")}
    assert len(sam2) == 22
    assert not np.array_equal(back[prefix + "sam2_convs.2.conv_1x1.weight"], back[prefix + "convs.2.conv_1x1.weight"])
    assert "detector.backbone.vision_backbone.trunk.blocks.0.attn.qkv.weight" in back
    assert any("language_backbone" in k for k in back)
    assert any(v.dtype == np.int64 for v in back.values())
    n, header, _ = _header(p)
    assert header[prefix + "convs.0.conv_1x1.weight"]["dtype"] == dtype
    assert header["__metadata__"]["format"] == "pt"


@pytest.mark.parametrize("prefix", ["", "vision_backbone.", "backbone.vision_backbone."])
def test_write_synthetic_checkpoint_prefix_no_extras(tmp_path, prefix):
    p = tmp_path / "s.safetensors"
    neck = checkpoint.write_synthetic_checkpoint(p, 8, 4, prefix=prefix, extras=False)
    back = checkpoint.load_safetensors(p)
    assert set(back) == {prefix + k for k in neck}


def test_default_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("SAM3NECK_CACHE", str(tmp_path / "cache"))
    path = checkpoint.default_checkpoint_path()
    assert str(path).startswith(str(tmp_path / "cache"))
    assert path.name == "synthetic-sam3-neck-c1024-d256-seed0.safetensors"
    small = checkpoint.ensure_default_checkpoint(trunk_dim=16, d_model=8)
    assert small.is_file() and small.name == "synthetic-sam3-neck-c16-d8-seed0.safetensors"
    mtime = os.stat(small).st_mtime_ns
    assert checkpoint.ensure_default_checkpoint(trunk_dim=16, d_model=8) == small
    assert os.stat(small).st_mtime_ns == mtime  # not rewritten
    assert [f.name for f in small.parent.iterdir()] == [small.name]  # no temporary left behind
    monkeypatch.delenv("SAM3NECK_CACHE")
    assert checkpoint.default_checkpoint_path().parent.name == "sam3neck"
