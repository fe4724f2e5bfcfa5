"""The handle ``steer`` yields and ``attach`` returns: what is applied, and its ``remove()``."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

from .hooks import Attachment
from .scopes import ScopeSpec
from .vector import SteeringVector


class DroppedHandleWarning(UserWarning):
    """An ``attach`` handle was lost while its hooks were on the model (``steering.detach_all`` removes them)."""


@dataclass
class Steering:
    """What a ``steer`` block or an ``attach`` handle applies; ``remove()`` detaches it (idempotent)."""

    vector: SteeringVector
    strength: float
    scope: ScopeSpec
    operator: str
    chosen_by: dict[str, str]  # "strength" / "scope" -> "argument" | "recommended" | "default"
    _attachment: Attachment | None = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        return self._attachment is not None and self._attachment.active

    def remove(self) -> None:
        if self._attachment is not None:
            self._attachment.remove()

    def __enter__(self) -> Steering:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()

    def __del__(self) -> None:
        try:
            if self.active:
                warnings.warn(
                    f"A steering handle (layers {self.vector.layers}) was garbage-collected while attached: its "
                    "hooks stay on the model. Keep the handle and call handle.remove(), or call "
                    "steering.detach_all(model).",
                    DroppedHandleWarning,
                    stacklevel=2,
                )
        except Exception:  # interpreter shutdown: nothing left to warn with
            pass

    def __repr__(self) -> str:
        how = {k: "" if v == "argument" else f" ({v})" for k, v in self.chosen_by.items()}
        return (
            f"Steering(layers={self.vector.layers}, strength={self.strength:.4g}{how['strength']}, "
            f"scope={self.scope!r}{how['scope']}, operator={self.operator!r}, active={self.active})"
        )
