"""Apply our vectors inside llama.cpp through llama-cpp-python, as llama.cpp's own loader would.

llama.cpp adds control vectors at the end of each decoder block (``build_cvec(cur, il)``, the output
of block ``il``: our layer ``il``). Its C API takes one float buffer for all layers, laid out from
layer 1 (block 0 has no slot): ``data[(il - 1) * n_embd : il * n_embd]`` is the direction for block
``il``, times the scale, applied for ``il_start <= il <= il_end``. :func:`control_vector_buffer` builds
that buffer the way ``common_control_vector_load`` builds it from a GGUF file (directions summed per
layer, each times its file's scale); :func:`apply_control_vector` hands it to a ``llama_cpp.Llama``.

Only ``scope="all"`` exists there: llama.cpp adds the vector at every position, prompt and generated.

    from llama_cpp import Llama
    llm = Llama(model_path="SmolLM2-135M-Instruct.Q4_1.gguf", logits_all=True)
    apply_control_vector(llm, vec, scale=2.0)       # or a .gguf control vector file
    llm.create_completion("...", max_tokens=32)
    apply_control_vector(llm, None)                 # off again

With the ``llama-server`` binary the same file goes on the command line:
``llama-server -m model.gguf --control-vector-scaled vec.gguf:2.0``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError, ShapeMismatchError
from ..vector import SteeringVector
from .gguf import import_gguf


def control_vector_buffer(
    vectors: SteeringVector | str | os.PathLike[str] | list[tuple[Any, float]], scale: float = 1.0
) -> tuple[np.ndarray, int]:
    """``(buffer, n_embd)`` for ``llama_set_adapter_cvec``: layer 1 first, no slot for layer 0.

    ``vectors`` is a vector, a control-vector GGUF file, or a list of ``(vector or file, scale)`` (summed,
    as ``--control-vector-scaled a.gguf:1 b.gguf:0.5`` does).

    Examples:
        >>> import torch
        >>> buf, d = control_vector_buffer(SteeringVector({2: torch.ones(3)}), scale=2.0)
        >>> d, buf.tolist()
        (3, [0.0, 0.0, 0.0, 2.0, 2.0, 2.0])
    """
    parts = vectors if isinstance(vectors, list) else [(vectors, scale)]
    loaded = [(v if isinstance(v, SteeringVector) else import_gguf(v), float(s)) for v, s in parts]
    if not loaded:
        raise InvalidArgumentError("control_vector_buffer needs at least one vector.")
    n_embd = loaded[0][0].hidden_size
    top = max(max(v.layers) for v, _ in loaded)
    data = np.zeros(n_embd * top, dtype=np.float32)
    for v, s in loaded:
        if v.hidden_size != n_embd:
            raise ShapeMismatchError(f"Control vectors of widths {n_embd} and {v.hidden_size} cannot be summed.")
        if 0 in v.directions:
            raise ShapeMismatchError("llama.cpp has no control-vector slot for layer 0; select the layers >= 1.")
        for layer, d in v.directions.items():
            data[(layer - 1) * n_embd : layer * n_embd] += s * d.detach().to("cpu").float().numpy()
    return data, n_embd


def apply_control_vector(
    llm: Any,
    vectors: SteeringVector | str | os.PathLike[str] | list[tuple[Any, float]] | None,
    scale: float = 1.0,
    *,
    il_start: int | None = None,
    il_end: int | None = None,
) -> None:
    """Set (or with ``None`` clear) the control vector of a ``llama_cpp.Llama``; layers ``il_start..il_end``
    (default: all, ``1..n_layer`` as ``llama-server`` does)."""
    import llama_cpp

    ctx = llm.ctx
    n_layer = llama_cpp.llama_model_n_layer(llm.model)
    if vectors is None:
        if llama_cpp.llama_set_adapter_cvec(ctx, None, 0, llama_cpp.llama_model_n_embd(llm.model), -1, -1):
            raise InvalidArgumentError("llama.cpp refused to clear the control vector.")
        return
    data, n_embd = control_vector_buffer(vectors, scale)
    if n_embd != llama_cpp.llama_model_n_embd(llm.model):
        raise ShapeMismatchError(
            f"The vector has width {n_embd}; this llama.cpp model has n_embd {llama_cpp.llama_model_n_embd(llm.model)}."
        )
    # llama.cpp only overwrites the layers the buffer reaches: pad to every layer, or a previous vector's
    # higher layers would stay in force.
    data = np.concatenate([data, np.zeros(max(0, (n_layer - 1) * n_embd - data.size), dtype=np.float32)])
    start = 1 if il_start is None or il_start <= 0 else il_start
    end = n_layer if il_end is None or il_end <= 0 else il_end
    ptr = data.ctypes.data_as(llama_cpp.ctypes.POINTER(llama_cpp.ctypes.c_float))
    if llama_cpp.llama_set_adapter_cvec(ctx, ptr, data.size, n_embd, start, end):
        raise InvalidArgumentError("llama.cpp refused the control vector (check its width and layers).")
    llm.reset()  # cached states were computed without (or with another) vector
