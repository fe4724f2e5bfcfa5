"""The bundled demo: a small reasoning model trained here, its task, and ``steering demo``."""

from pathlib import Path

MODEL_DIR = Path(__file__).parent / "model"
MODEL_ID = "steering/demo-arith-4L"  # the id vectors made on the bundled model are registered under
