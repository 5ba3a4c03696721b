"""The benchmark: `python -m sam3neck bench [options]`, a module tree of its own that the runtime
package never imports (sam3neck imports none of it; only the `bench` command does).

Times this library against the CPU runtimes a user would otherwise pick, on the same cores, with
the same thread count and the same seeded float32 input, one after the other, and prints the rows
in two classes, each of our precisions read against the peers of its own accuracy class (and
writes them as JSON, `--json`, default ./bench.json, schema SCHEMA):

  f32 class   sam3neck "strict" (bound 1e-5) and "default" (1e-4) against the peers pinned to
              float32: ONNX Runtime, OpenVINO with INFERENCE_PRECISION_HINT=f32, PyTorch eager
  bf16 class  sam3neck "fast" (bound 1e-2: bfloat16 products where the CPU has them) against the
              peers computing in bfloat16: OpenVINO in its DEFAULT configuration (no precision
              hint: on CPUs with native bfloat16 it picks bf16; the inference precision it chose
              is read back from the compiled model, compiled.get_property(hints.
              inference_precision), and shown as its mode, e.g. "default (bf16)"), and PyTorch
              eager under torch.autocast("cpu", dtype=torch.bfloat16)

Ratios ("x vs PEER", and the closing "Within each class" lines, e.g. "fast vs OpenVINO default
(bf16) 2.10x") are computed within a class only; the closing lines also give fast against our own
default.

  sam3neck       each precision (--modes; default all three) for levels 0-3 batch 1, levels 0-2
                 batch 1 (what SAM 3's image model keeps) and levels 0-3 batch 4 (also per image);
                 in the default mode, levels 0-3 batch 1, also other element types and output
                 layouts (harness.IO_CASES, e.g. float32 in / float16 sequence out, bfloat16 in /
                 bfloat16 NHWC out; --all-io: all 26), each with "x vs f32 NCHW", the float32
                 NCHW row's median over its own
  peers          (--peers; default all five configurations, harness.PEER_CONFIGS) levels 0-3 and
                 0-2, batch 1, each only when importable (a configuration that is not says so,
                 with the reason); never dependencies of the library
                 (`pip install 'sam3neck[bench]'`)

Every row is the median (and min) of --runs timed runs after --warmup untimed ones. Every row runs
in its own subprocess (`python -m sam3neck.bench --worker SPEC`), started only after the previous
one has exited, so its peak RSS is its own (VmHWM of /proc/self/status: getrusage's ru_maxrss, also
recorded in the JSON, inherits the parent's RSS across fork + exec on Linux); for this library the
workspace the compile step reports is shown as well. GFLOP/s are against the DIRECT cost of the neck
(`level_flops`), whatever algorithm an engine uses. "x vs PEER" is the peer's median over this
row's median at the same levels and batch.

"max err", printed next to every row's time (peers, level subsets and batch 4 included): the
normalised error max|out - ref| / max|ref| of the WORST LEVEL (per level in the JSON, "errors"),
each level's taken over every image of the batch, against the float64 NumPy reference
(sam3neck.reference) on the input the row's timing used (rounded to the row's input type): the
outputs of the last timed run of the row's first round come back through temporary .npy files and
are compared after all rows have run, the reference computed one image at a time.

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
with INFERENCE_NUM_THREADS=threads and PERFORMANCE_HINT=LATENCY in both configurations, plus
INFERENCE_PRECISION_HINT=f32 in the pinned one (else it may compute in bf16 on CPUs that have it;
the pinned row warns if it reports anything but f32); PyTorch eager with
torch.set_num_threads(threads) under inference_mode (and, for pytorch-bf16, torch.autocast("cpu",
dtype=torch.bfloat16): the convolutions in bfloat16, as upstream SAM 3 runs inference).
This library runs with out= buffers reused between runs, threads=threads.

`--profile` prints the per-stage breakdown of sam3neck-profile (built with the library) after the
table.
"""

from .harness import SCHEMA, add_arguments, format_report, main, run_benchmark
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
    "format_report",
    "add_arguments",
    "main",
]
