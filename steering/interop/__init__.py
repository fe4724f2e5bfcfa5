"""Vectors in other tools' formats: llama.cpp / repeng GGUF control vectors, steering-vectors
objects, IBM activation-steering ``.svec`` JSON, and vLLM serving exports. JSON and GGUF only; no pickle.

Layer numbering: our layer ``L`` is the output of decoder block ``L`` (0-based). llama.cpp adds
``direction.L`` to the output of its block ``L`` and has no slot for block 0; repeng, IBM's
activation-steering and steering-vectors add their layer ``L`` to ``model.layers[L]``'s output. So
every format's layer ``L`` is our layer ``L`` where the vector is *applied*.
"""

from .gguf import export_gguf, import_gguf
from .peers import from_repeng, from_steering_vectors, load_svec, to_svec
from .serving import export_vllm

__all__ = ["export_gguf", "export_vllm", "from_repeng", "from_steering_vectors", "import_gguf", "load_svec", "to_svec"]
