"""What ``fast``, ``precision``, ``compile`` and ``channels_last`` mean on this device,
resolved once.

[`Runtime.resolve`][ganlib.runtime.Runtime.resolve] turns the Trainer's engineering
switches into one object, with the reason for every choice, which
[`Runtime.describe`][ganlib.runtime.Runtime.describe] prints at the start of ``fit``.
The step reads it (autocast, grad scaler, memory format); process-global switches
(``cudnn.benchmark``) are set by [`Runtime.activate`][ganlib.runtime.Runtime.activate]
when training starts, never in a constructor.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

__all__ = [
    "CompiledOrEager",
    "Precision",
    "PrecisionName",
    "Runtime",
    "canonical_precision",
    "native_bf16",
]

# The canonical names: what `Runtime.precision` and `Trainer.precision` hold.
Precision = Literal["32", "bf16", "16"]
# Everything `precision=` accepts: the canonical names and Lightning 2's spellings.
PrecisionName = Literal["32", "32-true", 32, "bf16", "bf16-mixed", "16", "16-mixed", 16]
_ALIASES: dict[str | int, Precision] = {
    "32": "32",
    "32-true": "32",
    32: "32",
    "bf16": "bf16",
    "bf16-mixed": "bf16",
    "16": "16",
    "16-mixed": "16",
    16: "16",
}
_AUTOCAST_DTYPES = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}


def canonical_precision(precision: Any) -> Precision:
    """The canonical name (``"32"``, ``"bf16"`` or ``"16"``) of a precision name.

    Lightning 2's names are accepted as aliases: ``"32-true"`` and ``32`` mean
    ``"32"``, ``"bf16-mixed"`` means ``"bf16"``, ``"16-mixed"`` and ``16`` mean
    ``"16"`` (both autocast; ganlib keeps the weights in fp32).

    Raises:
        ValueError: For any other value, listing the accepted ones.
    """
    # (32.0 == 32 and True == 1 would otherwise find a key: only str and int are names.)
    if isinstance(precision, (str, int)) and not isinstance(precision, bool):
        canonical = _ALIASES.get(precision)
        if canonical is not None:
            return canonical
    aliases = [repr(name) for name, short in _ALIASES.items() if name != short]
    hint = (
        " (ganlib keeps fp32 weights and autocasts: use a '-mixed' name)"
        if isinstance(precision, str) and precision.endswith("-true")
        else ""
    )
    raise ValueError(
        f"`precision` must be one of {list(get_args(Precision))}, got {precision!r}; "
        f"Lightning's names {', '.join(aliases[:-1])} and {aliases[-1]} are accepted too{hint}"
    )


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 arithmetic is native (fast) on ``device``, not emulated."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:  # oneDNN's own check for AVX512-BF16 / AMX
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


class CompiledOrEager:
    """``torch.compile(module)``, falling back to the plain module (with one warning)
    where compiling fails, say on a machine without a C++ compiler."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self._compiled: Callable[..., Tensor] | None = torch.compile(module)
        self._proven = False

    def __call__(self, *args: Any) -> Tensor:
        if self._compiled is None:
            return self.module(*args)
        if self._proven:
            return self._compiled(*args)
        try:
            out = self._compiled(*args)
        except Exception as exc:  # inductor raises many types; none should stop training
            warnings.warn(
                f"torch.compile failed for {type(self.module).__name__} "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                "training continues uncompiled",
                stacklevel=2,
            )
            self._compiled = None
            return self.module(*args)
        self._proven = True
        return out


@dataclass(frozen=True)
class Runtime:
    """The engineering choices of one training run.

    Attributes:
        device: Where the networks and batches live.
        precision: ``"32"``, ``"bf16"`` (autocast) or ``"16"`` (autocast + grad scaler).
        compile: ``torch.compile`` each network's forward.
        channels_last: Weights and images in channels_last memory format.
        fused_optimizers: The default Adam uses its fused kernel (CUDA).
        cudnn_benchmark: Set ``torch.backends.cudnn.benchmark`` when training starts.
        preload: Hold tensor data on the device and gather batches there.
        reasons: Why each automatic choice went the way it did, for
            [`describe`][ganlib.runtime.Runtime.describe].
    """

    device: torch.device
    precision: Precision = "32"
    compile: bool = False
    channels_last: bool = False
    fused_optimizers: bool = False
    cudnn_benchmark: bool = False
    preload: bool = False
    reasons: tuple[str, ...] = ()

    @classmethod
    def resolve(
        cls,
        device: torch.device,
        *,
        fast: bool = False,
        precision: PrecisionName | None = None,
        compile: bool | None = None,
        channels_last: bool | None = None,
    ) -> Runtime:
        """Decide every switch for ``device``; an explicit argument always wins.

        Args:
            device: The training device.
            fast: The fast path: preload, channels_last, bf16 where native, compile
                on CUDA or in bf16, fused Adam and cudnn.benchmark on CUDA.
            precision: ``"32"``, ``"bf16"``, ``"16"`` or one of Lightning 2's names for
                them (``"32-true"``, ``32``, ``"bf16-mixed"``, ``"16-mixed"``, ``16``;
                the runtime holds the short name), or ``None`` to decide.
            compile: Compile the networks' forwards, or ``None`` to decide.
            channels_last: channels_last memory format, or ``None``: follows ``fast``.

        Raises:
            ValueError: For an unknown ``precision``.
        """
        reasons: list[str] = []
        if precision is None:
            native = fast and native_bf16(device)
            precision = "bf16" if native else "32"
            if fast:
                reasons.append(
                    f"bf16: native on this {device.type}"
                    if native
                    else f"fp32: bf16 is not native on this {device.type}"
                )
        checked = canonical_precision(precision)
        if compile is None:
            # On a CPU in fp32, compiling measured no faster than channels_last alone
            # (0.98x; docs/performance.md): the fast path compiles on CUDA and in bf16.
            compile = fast and (device.type == "cuda" or checked != "32")
            if fast:
                reasons.append(
                    "compile: on CUDA or in bf16"
                    if compile
                    else "no compile: measured no faster on a CPU in fp32"
                )
        on_cuda = device.type == "cuda"
        return cls(
            device=device,
            precision=checked,
            compile=bool(compile),
            channels_last=fast if channels_last is None else bool(channels_last),
            fused_optimizers=fast and on_cuda,
            cudnn_benchmark=fast and on_cuda,
            preload=fast,
            reasons=tuple(reasons),
        )

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype, ``None`` in fp32."""
        return _AUTOCAST_DTYPES[self.precision]

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The forward passes' autocast context (a no-op in fp32)."""
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A grad scaler, enabled only in fp16."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "16")

    def place(self, module: nn.Module) -> nn.Module:
        """Move ``module`` to the device (and memory format), in place."""
        module.to(self.device)
        if self.channels_last:
            module.to(memory_format=torch.channels_last)
        return module

    def format_batch(self, images: Tensor) -> Tensor:
        """A batch in the networks' memory format."""
        if self.channels_last and images.dim() == 4:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def maybe_compile(self, module: nn.Module) -> Callable[..., Tensor]:
        """``module`` compiled (with eager fallback) when compiling, else itself."""
        return CompiledOrEager(module) if self.compile else module

    def activate(self) -> None:
        """Set the process-global switches this runtime asks for (at the start of fit)."""
        if self.cudnn_benchmark:
            torch.backends.cudnn.benchmark = True

    def summary(self) -> str:
        """What was chosen, without the device and the reasons: ``"precision bf16,
        compile on, channels_last on, data on the device"``."""
        fields = [
            f"precision {self.precision}",
            f"compile {'on' if self.compile else 'off'}",
            f"channels_last {'on' if self.channels_last else 'off'}",
        ]
        if self.fused_optimizers:
            fields.append("fused Adam")
        if self.cudnn_benchmark:
            fields.append("cudnn.benchmark")
        if self.preload:
            fields.append("data on the device")
        return ", ".join(fields)

    def describe(self) -> str:
        """One line: what was chosen, and why."""
        why = f" ({'; '.join(self.reasons)})" if self.reasons else ""
        return f"runtime: device {self.device}, {self.summary()}{why}"
