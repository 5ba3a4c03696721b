"""Facts the docs repeat are checked against their one home, so that a change there fails here
until the docs follow:
- the checkpoint parsers' limits: `static let max...` constants in the Swift sources, shown in
  docs/checkpoints.md's table and stated in include/sam3_neck.h's "Untrusted checkpoints";
- measured errors and the headline speed table: bench/*.json, rendered by bench/render.py into
  docs/accuracy.md, docs/performance.md and README.md.
Needs neither the native library nor a Swift toolchain."""

import ast
import importlib.util
import json
import operator
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIMIT_FOLDERS = ("Sources/Sam3Neck/Checkpoint", "Sources/Sam3Neck/Model")

# How include/sam3_neck.h states each limit ({} is the number), its comment text joined into one line.
HEADER_PHRASES = {
    "SafetensorsFile.maxHeaderBytes": "safetensors header {} bytes",
    "ShardedSafetensors.maxIndexBytes": "sharded index {} bytes",
    "JSONParser.maxDepth": "JSON nesting {} levels",
    "JSONParser.maxValues": "{} values per document",
    "ZipDirectory.maxDirectoryBytes": "zip central directory {} bytes",
    "TorchCheckpoint.maxPickleBytes": "data.pkl {} bytes",
    "Unpickler.maxDepth": "pickle nesting {} levels",
    "Unpickler.maxCells": "{} items in tuples, lists and dicts",
    "Unpickler.maxStack": "{} values on the stack",
    "Unpickler.maxMemo": "{} memo entries",
    "TorchCheckpoint.maxViewExpansion": "at most {} times the elements of its storage",
    "Tensor.maxElements": "one tensor {} elements",
    "NeckWeights.maxParameters": "the neck's tensors {} parameters in all",
}

_OPS = {
    ast.LShift: operator.lshift,
    ast.Mult: operator.mul,
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Pow: operator.pow,
}


def _int_expr(text):
    """The value of a Swift integer literal expression (`32 << 20`, `100_000_000`, `1 << 22`)."""

    def ev(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        raise ValueError(f"not an integer expression: {text!r}")

    return ev(ast.parse(text.replace("_", ""), mode="eval").body)


def swift_limits(root=ROOT):
    """{"Type.maxName": value} for every integer `static let max...` in the parsers and the model."""
    decl = re.compile(
        r"^(\s*)(?:(?:package|public|internal|private|fileprivate|final)\s+)*"
        r"(?:struct|class|enum|actor|extension)\s+(\w+)"
    )
    const = re.compile(
        r"^(\s*)(?:(?:package|public|internal|private|fileprivate)\s+)*static\s+let\s+"
        r"(max\w+)\s*(?::\s*Int\s*)?=\s*([0-9_ <*+()-]+?)\s*(?://.*)?$"
    )
    limits = {}
    for folder in LIMIT_FOLDERS:
        for path in sorted((root / folder).glob("*.swift")):
            stack = []  # (indent, type name)
            for line in path.read_text().splitlines():
                m = decl.match(line)
                if m:
                    indent = len(m.group(1))
                    while stack and stack[-1][0] >= indent:
                        stack.pop()
                    stack.append((indent, m.group(2)))
                    continue
                m = const.match(line)
                if m:
                    indent = len(m.group(1))
                    owners = [name for ind, name in stack if ind < indent]
                    assert owners, f"{path}: {m.group(2)} outside a type"
                    limits[f"{owners[-1]}.{m.group(2)}"] = _int_expr(m.group(3))
    return limits


def docs_limits(text):
    """{"Type.maxName": (row label, first integer of the value cell)} of docs/checkpoints.md's table."""
    rows = {}
    for line in text.splitlines():
        m = re.match(r"^\|\s*(.+?)\s*\|\s*(.+?)\s*\|\s*`(\w+\.max\w+)`\s*\|$", line)
        if m:
            number = re.search(r"\d+", m.group(2))
            rows[m.group(3)] = (m.group(1), int(number.group()) if number else None)
    return rows


def header_text(root=ROOT):
    """The header's "Untrusted checkpoints" comment as one line of words."""
    text = (root / "include/sam3_neck.h").read_text()
    start = text.index(" * Untrusted checkpoints")
    end = text.index("\n *\n", start)
    return " ".join(line.strip().lstrip("*").strip() for line in text[start:end].splitlines())


def limit_mismatches(limits, rows, header):
    problems = []
    for name, value in sorted(limits.items()):
        if name not in rows:
            problems.append(f"docs/checkpoints.md's limits table has no row for {name} ({value})")
        elif rows[name][1] != value:
            problems.append(f"docs/checkpoints.md: {rows[name][0]} is {rows[name][1]}, but {name} = {value}")
        phrase = HEADER_PHRASES.get(name)
        if phrase is None:
            problems.append(f"{name}: no HEADER_PHRASES entry (say how include/sam3_neck.h states it)")
            continue
        pattern = re.escape(phrase).replace(r"\{\}", r"(\d+)")
        m = re.search(pattern, header)
        if not m:
            problems.append(f"include/sam3_neck.h does not state {name} as {phrase.format(value)!r}")
        elif int(m.group(1)) != value:
            problems.append(f"include/sam3_neck.h says {phrase.format(m.group(1))!r}, but {name} = {value}")
    for name in sorted(set(rows) - set(limits)):
        problems.append(f"docs/checkpoints.md lists {name}, which is no limit constant in {LIMIT_FOLDERS}")
    return problems


def test_swift_limits_are_found():
    limits = swift_limits()
    # the parsers' and the model's limits, at least these (a renamed one must be renamed here too)
    assert set(HEADER_PHRASES) <= set(limits), set(HEADER_PHRASES) - set(limits)
    assert limits["SafetensorsFile.maxHeaderBytes"] == 100_000_000
    assert limits["ZipDirectory.maxDirectoryBytes"] == 32 << 20


def test_docs_and_header_state_the_swift_limits():
    problems = limit_mismatches(swift_limits(), docs_limits((ROOT / "docs/checkpoints.md").read_text()), header_text())
    assert not problems, "\n".join(problems)


def test_limit_check_can_fail():
    limits = swift_limits()
    rows = docs_limits((ROOT / "docs/checkpoints.md").read_text())
    header = header_text()
    drifted = dict(limits, **{"Unpickler.maxDepth": 300})
    assert any(
        "Unpickler.maxDepth" in p and "docs/checkpoints.md" in p for p in limit_mismatches(drifted, rows, header)
    )
    assert any("include/sam3_neck.h says" in p for p in limit_mismatches(drifted, rows, header))
    new = dict(limits, **{"Zip.maxEntries": 10})
    assert any("no row for Zip.maxEntries" in p for p in limit_mismatches(new, rows, header))


def _render():
    spec = importlib.util.spec_from_file_location("bench_render", ROOT / "bench" / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "doc,what",
    [
        ("docs/accuracy.md", "errors"),
        ("docs/performance.md", "headline"),
        ("README.md", "headline"),
    ],
)
def test_docs_show_the_bench_results_as_rendered(doc, what):
    render = _render()
    table = getattr(render, what)(render.newest_per_class())
    text = (ROOT / doc).read_text().splitlines()
    missing = [line for line in table.splitlines() if line not in text]
    assert not missing, f"{doc} lacks these lines of `bench/render.py --{what}` (copy them in):\n" + "\n".join(missing)


def test_every_bench_json_names_its_cpu_and_date():
    render = _render()
    for path in sorted((ROOT / "bench").glob("*.json")):
        doc = json.loads(path.read_text())
        assert re.match(r"\d{4}-\d\d-\d\dT", doc.get("date", "")), path
        assert doc["machine"].get("cpu"), path
        assert render.cpu_class(doc) in render.CPU_CLASSES.values(), f"{path}: add its CPU to CPU_CLASSES"


def test_performance_page_shows_the_zen4_tables_as_rendered():
    """docs/performance.md's full table is `bench/render.py bench/2026-12-07-zen4-2c.json`'s."""
    from sam3neck.bench.harness import format_report

    report = format_report(json.loads((ROOT / "bench/2026-12-07-zen4-2c.json").read_text())).splitlines()
    text = (ROOT / "docs/performance.md").read_text()
    block = text[text.index("## The full table") :]
    block = block[block.index("```\n") + 4 :]
    block = block[: block.index("```")].splitlines()
    assert len(block) > 20
    missing = [line for line in block if line not in report]
    assert not missing, "docs/performance.md's table is not the bench's rendering:\n" + "\n".join(missing)
