"""The ctypes declarations of sam3neck._lib against include/sam3_neck.h (no library needed).

The header is the single source of truth of the ABI; these tests parse it and check that every
function is declared exactly once with the right arity and types, and that the structs, enums
and constants agree.
"""

import ctypes
import re
from pathlib import Path

import pytest

from sam3neck import _lib, reference

HEADER = Path(__file__).resolve().parents[2] / "include" / "sam3_neck.h"

pytestmark = pytest.mark.skipif(not HEADER.is_file(), reason=f"{HEADER} not found")


def _source():
    text = HEADER.read_text()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    return text


def _functions():
    text = _source()
    text = text.replace("\\\n", " ")  # join continued lines
    text = re.sub(r"^\s*#[^\n]*", " ", text, flags=re.M)  # preprocessor lines
    text = re.sub(r"typedef\s+(struct|enum)\s+\w*\s*\{.*?\}\s*\w+\s*;", " ", text, flags=re.S)
    text = re.sub(r"typedef[^;]*;", " ", text)
    text = text.replace('extern "C" {', " ").replace("}", " ")
    decls = {}
    for stmt in text.split(";"):
        stmt = " ".join(stmt.split())
        m = re.match(r"^(.*?)\b(sam3_neck_\w+)\s*\((.*)\)$", stmt)
        if not m:
            continue
        ret, name, args = m.group(1).strip(), m.group(2), m.group(3).strip()
        assert name not in decls, f"{name} declared twice in the header"
        params = [] if args in ("", "void") else [a.strip() for a in args.split(",")]
        decls[name] = (ret, params)
    return decls


def test_header_functions_declared_exactly_once():
    decls = _functions()
    assert len(decls) >= 17
    assert set(decls) == set(_lib.FUNCTIONS), (
        f"missing in _lib: {sorted(set(decls) - set(_lib.FUNCTIONS))}; "
        f"not in header: {sorted(set(_lib.FUNCTIONS) - set(decls))}"
    )


def test_functions_are_declared_in_header_order():
    assert list(_lib.FUNCTIONS) == list(_functions())


_CORE = {
    "uint32_t": ctypes.c_uint32,
    "int32_t": ctypes.c_int32,
    "int64_t": ctypes.c_int64,
    "size_t": ctypes.c_size_t,
    "float": ctypes.c_float,
    "char": ctypes.c_char,
    "void": None,
    "sam3_neck_status": ctypes.c_int,
    "sam3_neck_kind": ctypes.c_int,
    "sam3_neck_layout": ctypes.c_int,
    "sam3_neck_precision": ctypes.c_int,
    "sam3_neck_dtype": ctypes.c_int,
    "sam3_neck_output_layout": ctypes.c_int,
    "sam3_neck_load_params": _lib.LoadParams,
    "sam3_neck_config": _lib.Config,
    "sam3_neck_compile_params": _lib.CompileParams,
    "sam3_neck_io_params": _lib.IoParams,
}


def _expected_ctype(decl: str, named: bool = True):
    """The ctypes type for a C declaration: a parameter ("const float *out", named=True) or a
    return / field type without a name (named=False)."""
    tokens = decl.replace("*", " * ").split()
    array = False
    if named:
        last = tokens.pop()
        array = "[" in last
    tokens = [t for t in tokens if t != "const"]
    stars = tokens.count("*")
    core = " ".join(t for t in tokens if t != "*")
    if core == "sam3_neck":  # the opaque handle: sam3_neck * is c_void_p
        t, stars = ctypes.c_void_p, stars - 1
    elif core == "char" and stars >= 1:
        t, stars = ctypes.c_char_p, stars - 1
    elif core == "void" and stars >= 1:
        t, stars = ctypes.c_void_p, stars - 1
    else:
        t = _CORE[core]
    for _ in range(stars + (1 if array else 0)):  # an array parameter decays to a pointer
        t = ctypes.POINTER(t)
    return t


@pytest.mark.parametrize("name", sorted(_lib.FUNCTIONS))
def test_function_signature(name):
    decls = _functions()
    ret, params = decls[name]
    restype, argtypes = _lib.FUNCTIONS[name]
    assert len(argtypes) == len(params), f"{name}: header has {len(params)} parameters"
    assert restype == _expected_ctype(ret, named=False), f"{name}: return type {ret!r}"
    for p, a in zip(params, argtypes):
        assert a == _expected_ctype(p), f"{name}: parameter {p!r} is declared as {a}"


def _structs():
    out = {}
    for m in re.finditer(r"typedef\s+struct\s+(\w+)\s*\{([^{}]*)\}\s*(\w+)\s*;", _source(), flags=re.S):
        fields = []
        for decl in m.group(2).split(";"):
            decl = " ".join(decl.split())
            if not decl:
                continue
            fm = re.match(r"^(.*?)\s*\b(\w+)\s*(\[(\w+)\])?$", decl)
            fields.append((fm.group(1).strip(), fm.group(2), fm.group(4)))
        out[m.group(3)] = fields
    return out


@pytest.mark.parametrize(
    "cname,cls",
    [
        ("sam3_neck_load_params", _lib.LoadParams),
        ("sam3_neck_config", _lib.Config),
        ("sam3_neck_compile_params", _lib.CompileParams),
        ("sam3_neck_io_params", _lib.IoParams),
    ],
)
def test_struct_fields(cname, cls):
    fields = _structs()[cname]
    assert [f[1] for f in fields] == [f[0] for f in cls._fields_]
    for (ctype, fname, count), (pname, ptype) in zip(fields, cls._fields_):
        expected = _expected_ctype(ctype, named=False)
        if count is not None:
            n = _lib.NUM_LEVELS if count == "SAM3_NECK_NUM_LEVELS" else int(count)
            expected = expected * n
            assert ptype._length_ == n and ptype._type_ == expected._type_, fname
        else:
            assert ptype == expected, f"{cname}.{fname}"


def _enum(name):
    m = re.search(r"typedef\s+enum\s+\w*\s*\{([^{}]*)\}\s*" + name + r"\s*;", _source(), flags=re.S)
    values = {}
    for item in m.group(1).split(","):
        item = item.strip()
        if item:
            k, v = (s.strip() for s in item.split("="))
            values[k] = int(v)
    return values


def test_enums_and_constants():
    status = _enum("sam3_neck_status")
    assert {v: k for k, v in status.items()} == _lib.STATUS_NAMES
    assert _enum("sam3_neck_kind") == {"SAM3_NECK_KIND_SAM3": _lib.KIND_SAM3, "SAM3_NECK_KIND_SAM2": _lib.KIND_SAM2}
    assert _enum("sam3_neck_layout") == {
        "SAM3_NECK_LAYOUT_NCHW": _lib.LAYOUT_NCHW,
        "SAM3_NECK_LAYOUT_NHWC": _lib.LAYOUT_NHWC,
    }
    assert _enum("sam3_neck_precision") == {
        "SAM3_NECK_PRECISION_DEFAULT": _lib.PRECISION_DEFAULT,
        "SAM3_NECK_PRECISION_STRICT": _lib.PRECISION_STRICT,
        "SAM3_NECK_PRECISION_FAST": _lib.PRECISION_FAST,
    }
    assert _enum("sam3_neck_dtype") == {
        "SAM3_NECK_DTYPE_FLOAT32": _lib.DTYPE_FLOAT32,
        "SAM3_NECK_DTYPE_FLOAT16": _lib.DTYPE_FLOAT16,
        "SAM3_NECK_DTYPE_BFLOAT16": _lib.DTYPE_BFLOAT16,
    }
    assert _enum("sam3_neck_output_layout") == {
        "SAM3_NECK_OUTPUT_NCHW": _lib.OUTPUT_NCHW,
        "SAM3_NECK_OUTPUT_NHWC": _lib.OUTPUT_NHWC,
        "SAM3_NECK_OUTPUT_SEQUENCE": _lib.OUTPUT_SEQUENCE,
    }
    src = HEADER.read_text()
    # each precision's bound: the header's macro is reference.TOLERANCE's number
    bounds = {
        m.group(1).lower(): float(m.group(2))
        for m in re.finditer(r"#define SAM3_NECK_BOUND_([A-Z]+) ([0-9.eE+-]+)\s*$", src, re.M)
    }
    assert bounds == reference.TOLERANCE == {"default": 1e-4, "strict": 1e-5, "fast": 1e-2}
    assert int(re.search(r"#define SAM3_NECK_ABI_VERSION (\d+)", src).group(1)) == _lib.ABI_VERSION
    assert int(re.search(r"#define SAM3_NECK_NUM_LEVELS (\d+)", src).group(1)) == _lib.NUM_LEVELS
    import sam3neck

    ver = ".".join(
        re.search(rf"#define SAM3_NECK_VERSION_{p} (\d+)", src).group(1) for p in ("MAJOR", "MINOR", "PATCH")
    )
    assert ver == sam3neck.__version__


def test_library_not_found_lists_places(monkeypatch, tmp_path):
    monkeypatch.setenv("SAM3NECK_LIBRARY", str(tmp_path / "nope.so"))
    with pytest.raises(_lib.LibraryNotFoundError, match="nope.so"):
        _lib.library_path()
    monkeypatch.delenv("SAM3NECK_LIBRARY")
    monkeypatch.setattr(_lib, "candidate_paths", lambda: [tmp_path / "a.so", tmp_path / "b.so"])
    with pytest.raises(_lib.LibraryNotFoundError) as e:
        _lib.library_path()
    assert "a.so" in str(e.value) and "b.so" in str(e.value) and "SAM3NECK_LIBRARY" in str(e.value)


def test_candidate_paths_order():
    paths = _lib.candidate_paths()
    pkg = Path(_lib.__file__).resolve().parent
    assert paths[0] == pkg / "libsam3neck.so"
    assert paths[1] == pkg.parent.parent / ".build" / "release" / "libsam3neck.so"
