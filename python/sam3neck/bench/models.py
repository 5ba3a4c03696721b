"""The neck's direct cost (FLOPs) and the peers' model of it: the ONNX graph and the PyTorch
module, built from canonical weights (what Neck.weights() returns). See sam3neck.bench."""

from __future__ import annotations

import importlib
import math

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .. import reference

ALL_LEVELS = (0, 1, 2, 3)


def _version() -> str:
    from .. import __version__

    return __version__


# ------------------------------------------------------------------------------------------------
# The direct cost of the neck
# ------------------------------------------------------------------------------------------------


def level_flops(level: int, trunk_dim: int, d_model: int, height: int, width: int, batch: int = 1) -> int:
    """Direct FLOPs of one level for an H x W grid: 2 x multiply-accumulates of its transposed
    convs (k=2 s=2: every input pixel feeds 4 output pixels), 1x1 and 3x3 convs, from the layer
    shapes; GELU, max pool and biases are not counted.

      conv k x k on P output pixels, Cin -> Cout:           2 * P * Cin * Cout * k * k
      transposed conv k=2 s=2 on P input pixels, Cin -> Cout: 2 * P * Cin * Cout * 4

      level 0 (4x):   tconv(HW, C, C/2) + tconv(4HW, C/2, C/4) + conv1(16HW, C/4, d) + conv3(16HW, d, d)
      level 1 (2x):   tconv(HW, C, C/2) + conv1(4HW, C/2, d) + conv3(4HW, d, d)
      level 2 (1x):   conv1(HW, C, d) + conv3(HW, d, d)
      level 3 (0.5x): conv1(hw, C, d) + conv3(hw, d, d) with h, w = floor(H/2), floor(W/2)

    For C=1024, d=256 at 72x72: 152.2 + 51.6 + 8.8 + 2.2 = 214.8 GFLOP per image.
    """
    c, d, h, w = int(trunk_dim), int(d_model), int(height), int(width)

    def conv(pixels: int, cin: int, cout: int, k: int) -> int:
        return 2 * pixels * cin * cout * k * k

    def tconv(pixels: int, cin: int, cout: int) -> int:
        return 2 * pixels * cin * cout * 4

    hw = h * w
    if level == 0:
        f = tconv(hw, c, c // 2) + tconv(4 * hw, c // 2, c // 4) + conv(16 * hw, c // 4, d, 1) + conv(16 * hw, d, d, 3)
    elif level == 1:
        f = tconv(hw, c, c // 2) + conv(4 * hw, c // 2, d, 1) + conv(4 * hw, d, d, 3)
    elif level == 2:
        f = conv(hw, c, d, 1) + conv(hw, d, d, 3)
    elif level == 3:
        q = (h // 2) * (w // 2)
        f = conv(q, c, d, 1) + conv(q, d, d, 3)
    else:
        raise ValueError(f"level must be in 0..3, got {level}")
    return int(batch) * f


def neck_flops(levels: Sequence[int], trunk_dim: int, d_model: int, height: int, width: int, batch: int = 1) -> int:
    """Direct FLOPs of the given levels (see level_flops)."""
    return sum(level_flops(i, trunk_dim, d_model, height, width, batch) for i in levels)


# ------------------------------------------------------------------------------------------------
# Weights and input
# ------------------------------------------------------------------------------------------------


def make_input(seed: int, batch: int, trunk_dim: int, height: int, width: int) -> np.ndarray:
    """The benchmark's input: seeded standard normal float32 [B, C, H, W] (image 0 of a batch is
    the batch-1 input)."""
    return np.random.default_rng(seed).standard_normal((batch, trunk_dim, height, width), dtype=np.float32)


# ------------------------------------------------------------------------------------------------
# The peers' model: ONNX graph and PyTorch module
# ------------------------------------------------------------------------------------------------


def onnx_model(
    weights: Mapping[str, np.ndarray],
    batch: int,
    height: int,
    width: int,
    levels: Sequence[int] = ALL_LEVELS,
    opset: int = 17,
):
    """The neck as an onnx.ModelProto (float32, static input [B, C, H, W] named "x", one output
    "level{i}" per requested level), built with onnx.helper from canonical or checkpoint-named
    weights. An exact equivalent of `torch_neck` (see the module docstring)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
    c, d = reference.neck_config(w)
    levels = sorted(set(int(i) for i in levels))
    nodes: list = []
    inits: Dict[str, object] = {}

    def init(name: str, value) -> str:
        if name not in inits:
            inits[name] = numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)
        return name

    def param(i: int, module: str, kind: str) -> str:
        key = f"{i}.{module}.{kind}"
        if key not in w:
            raise KeyError(f"neck tensor {key!r} is missing from the weights")
        return init("convs." + key, w[key])

    def node(op: str, inputs: List[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def tconv(i: int, module: str, x: str) -> str:
        return node(
            "ConvTranspose",
            [x, param(i, module, "weight"), param(i, module, "bias")],
            f"{i}.{module}",
            kernel_shape=[2, 2],
            strides=[2, 2],
        )

    def conv(i: int, module: str, x: str, k: int, out: Optional[str] = None) -> str:
        p = k // 2
        return node(
            "Conv",
            [x, param(i, module, "weight"), param(i, module, "bias")],
            out or f"{i}.{module}",
            kernel_shape=[k, k],
            strides=[1, 1],
            pads=[p, p, p, p],
        )

    def gelu(x: str, tag: str) -> str:  # x * (1 + erf(x / sqrt(2))) * 0.5, exact (erf) GELU
        t = node("Div", [x, init("gelu.sqrt2", math.sqrt(2.0))], f"{tag}.div")
        t = node("Erf", [t], f"{tag}.erf")
        t = node("Add", [t, init("gelu.one", 1.0)], f"{tag}.add")
        t = node("Mul", [x, t], f"{tag}.mul")
        return node("Mul", [t, init("gelu.half", 0.5)], tag)

    outputs = []
    for i in levels:
        if i == 0:
            y = tconv(0, "dconv_2x2_0", "x")
            y = gelu(y, "0.gelu")
            y = tconv(0, "dconv_2x2_1", y)
        elif i == 1:
            y = tconv(1, "dconv_2x2", "x")
        elif i == 2:
            y = "x"
        elif i == 3:
            y = node("MaxPool", ["x"], "3.maxpool_2x2", kernel_shape=[2, 2], strides=[2, 2])
        else:
            raise ValueError(f"level must be in 0..3, got {i}")
        y = conv(i, "conv_1x1", y, 1)
        name = f"level{i}"
        conv(i, "conv_3x3", y, 3, out=name)
        outputs.append(
            helper.make_tensor_value_info(
                name, TensorProto.FLOAT, list(reference.level_shape(i, batch, d, height, width))
            )
        )
    graph = helper.make_graph(
        nodes,
        "sam3_neck",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, c, height, width])],
        outputs,
        initializer=list(inits.values()),
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="sam3neck.bench",
        producer_version=_version(),
    )
    model.ir_version = 8  # the IR of opset 17; runtimes of that era and later all read it
    onnx.checker.check_model(model)
    return model


def torch_neck(weights: Mapping[str, np.ndarray], levels: Sequence[int] = ALL_LEVELS):
    """The neck as a torch nn.Module with the upstream structure (Sam3DualViTDetNeck's `convs`:
    one nn.Sequential per scale 4, 2, 1, 0.5 with modules dconv_2x2_0 / gelu / dconv_2x2_1,
    dconv_2x2, maxpool_2x2, conv_1x1, conv_3x3), loaded strictly from the weights; its forward
    returns the requested levels' features. Needs torch."""
    import torch
    from torch import nn

    w = weights
    c, d = reference.neck_config(w)
    wanted = sorted(set(int(i) for i in levels))

    class Neck(nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = nn.ModuleList()
            for scale in reference.SCALES:
                branch = nn.Sequential()
                width = c
                if scale == 4.0:
                    branch.add_module("dconv_2x2_0", nn.ConvTranspose2d(c, c // 2, 2, stride=2))
                    branch.add_module("gelu", nn.GELU())
                    branch.add_module("dconv_2x2_1", nn.ConvTranspose2d(c // 2, c // 4, 2, stride=2))
                    width = c // 4
                elif scale == 2.0:
                    branch.add_module("dconv_2x2", nn.ConvTranspose2d(c, c // 2, 2, stride=2))
                    width = c // 2
                elif scale == 0.5:
                    branch.add_module("maxpool_2x2", nn.MaxPool2d(kernel_size=2, stride=2))
                branch.add_module("conv_1x1", nn.Conv2d(width, d, kernel_size=1))
                branch.add_module("conv_3x3", nn.Conv2d(d, d, kernel_size=3, padding=1))
                self.convs.append(branch)

        def forward(self, x):
            return [self.convs[i](x) for i in wanted]

    module = Neck()
    state = {f"convs.{k}": torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in w.items()}
    module.load_state_dict(state, strict=True)
    return module.eval()


def torch_onnx_bytes(
    weights: Mapping[str, np.ndarray],
    batch: int,
    height: int,
    width: int,
    levels: Sequence[int] = ALL_LEVELS,
    opset: int = 17,
) -> bytes:
    """`torch_neck` exported by torch.onnx.export (the TorchScript exporter, opset 17, static
    shapes, input "x", outputs "level{i}"): the peers' model as a PyTorch user would make it.
    Needs torch (and onnx)."""
    import io
    import warnings

    import torch

    module = torch_neck(weights, levels)
    c, _ = reference.neck_config(weights)
    x = torch.zeros(batch, c, height, width)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the exporter's notice that a newer exporter exists
        torch.onnx.export(
            module,
            (x,),
            buf,
            opset_version=opset,
            dynamo=False,
            input_names=["x"],
            output_names=[f"level{i}" for i in sorted(set(int(i) for i in levels))],
        )
    return buf.getvalue()


def peer_model_bytes(
    weights: Mapping[str, np.ndarray], batch: int, height: int, width: int, levels: Sequence[int] = ALL_LEVELS
) -> Tuple[bytes, str]:
    """The ONNX model the peers run and how it was made: exported from the PyTorch module when
    torch is importable, else built with onnx.helper (the same operators)."""
    if importlib.util.find_spec("torch") is not None:
        import torch

        return (
            torch_onnx_bytes(weights, batch, height, width, levels),
            f"torch.onnx.export of the PyTorch module (torch {torch.__version__}, opset 17)",
        )
    return (
        onnx_model(weights, batch, height, width, levels).SerializeToString(),
        "onnx.helper (torch not importable; same operators as torch.onnx.export emits)",
    )
