"""The benchmark: `python -m sam3neck bench [options]`, a module tree of its own that the runtime
package never imports (sam3neck imports none of it; only the `bench` command does).

Times this library against the CPU runtimes a user would otherwise pick, on the same cores, with
the same thread count and the same seeded float32 input, one after the other, and prints ONE table
(and writes it as JSON, `--json`, default ./bench.json):

  sam3neck       precision "default" and "strict", each for levels 0-3 batch 1, levels 0-2 batch 1
                 (what SAM 3's image model keeps) and levels 0-3 batch 4 (also per image);
                 in the default mode, levels 0-3 batch 1, also other element types and output
                 layouts (harness.IO_CASES, e.g. float32 in / float16 sequence out, bfloat16 in /
                 bfloat16 NHWC out; --all-io: all 26), each with "x vs f32 NCHW", the float32
                 NCHW row's median over its own
  ONNX Runtime   (onnxruntime)  levels 0-3 and 0-2, batch 1 } peers, each only when importable;
  OpenVINO       (openvino)     levels 0-3 and 0-2, batch 1 } never dependencies of the library
  PyTorch eager  (torch)        levels 0-3 and 0-2, batch 1 } (`pip install 'sam3neck[bench]'`)

Every row is the median (and min) of --runs timed runs after --warmup untimed ones. Every row runs
in its own subprocess (`python -m sam3neck.bench --worker SPEC`), started only after the previous
one has exited, so its peak RSS is its own (VmHWM of /proc/self/status: getrusage's ru_maxrss, also
recorded in the JSON, inherits the parent's RSS across fork + exec on Linux); for this library the
workspace the compile step reports is shown as well. GFLOP/s are against the DIRECT cost of the neck
(`level_flops`), whatever algorithm an engine uses. "x vs PEER" is the peer's median over this
row's median at the same levels and batch. "max err" is the worst level's normalised error
max|out - ref| / max|ref| against the float64 NumPy reference (sam3neck.reference), for the
batch-1, all-levels run of each engine (the outputs come back through temporary .npy files).

The peers' model. ONNX Runtime and OpenVINO run one ONNX graph (opset 17, float32, static shapes):
when torch is importable, the PyTorch module below exported with torch.onnx.export
(`torch_onnx_bytes`, what a PyTorch user would deploy); otherwise the same graph built with
onnx.helper straight from the checkpoint's tensors (`onnx_model`): per branch,
ConvTranspose(k=2, s=2) for each transposed conv, exact GELU written as
x * 0.5 * (1 + Erf(x / sqrt(2))) (the ops torch.onnx emits for nn.GELU() below opset 20), Conv 1x1,
Conv 3x3 with pads 1, MaxPool(k=2, s=2, floor), one graph output per level. That graph is an exact
equivalent of the PyTorch module (`torch_neck`, the upstream Sam3DualViTDetNeck structure, which
PyTorch eager runs here): same operators, same weights, same order; upstream's ONNX export emits
the same ops. python/tests/test_bench.py checks the graph against the float64 reference.

Peer settings: ONNX Runtime with intra_op_num_threads=threads, inter_op_num_threads=1,
ORT_SEQUENTIAL, ORT_ENABLE_ALL, outputs bound to preallocated buffers (IO binding); OpenVINO CPU
with INFERENCE_NUM_THREADS=threads, PERFORMANCE_HINT=LATENCY and INFERENCE_PRECISION_HINT=f32 (else
it may silently compute in bf16 on CPUs that have it; the precision it reports back after compiling
is shown in the table); PyTorch eager with torch.set_num_threads(threads) under inference_mode.
This library runs with out= buffers reused between runs, threads=threads.

`--profile` prints the per-stage breakdown of sam3neck-profile (built with the library) after the
table.
"""

from .harness import SCHEMA, add_arguments, main, run_benchmark
from .models import (
    ALL_LEVELS,
    level_flops,
    make_input,
    neck_flops,
    onnx_model,
    peer_model_bytes,
    torch_neck,
    torch_onnx_bytes,
)

__all__ = [
    "ALL_LEVELS",
    "SCHEMA",
    "level_flops",
    "neck_flops",
    "make_input",
    "onnx_model",
    "torch_onnx_bytes",
    "peer_model_bytes",
    "torch_neck",
    "run_benchmark",
    "add_arguments",
    "main",
]
