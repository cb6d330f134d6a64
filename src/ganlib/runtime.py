"""What ``fast``, ``precision``, ``compile`` and ``channels_last`` mean on this device,
resolved once.

[`Runtime.resolve`][ganlib.runtime.Runtime.resolve] turns the Trainer's engineering
switches into one object, with the reason for every choice, which
[`Runtime.describe`][ganlib.runtime.Runtime.describe] prints at the start of ``fit``.
One choice waits for ``fit``, when the run's length is known:
[`Runtime.for_run`][ganlib.runtime.Runtime.for_run] drops the fast path's compile for a run
too short to win back the compile time (`COMPILE_PAYBACK_STEPS`).
The step reads it (autocast, grad scaler, memory format); process-global switches
(``cudnn.benchmark``) are set by [`Runtime.activate`][ganlib.runtime.Runtime.activate]
when training starts, never in a constructor.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

__all__ = [
    "COMPILE_PAYBACK_STEPS",
    "CompiledOrEager",
    "Precision",
    "PrecisionName",
    "Runtime",
    "canonical_precision",
    "native_bf16",
    "steps_left",
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

# Per device type, the run length (steps) from which the fast path's torch.compile wins
# back its compile time: the first steps' extra wait over eager divided by the time each
# compiled step saves, measured by `benchmarks/compile_cost.py` (docs/performance.md).
# A run shorter than that stays eager (decided at fit: `Runtime.for_run`); ``None``: the
# fast path never compiles there. CPU: compiled steps measured no faster than eager (the
# MNIST DCGAN, fp32 and bf16, 1 and 2 threads), so no run pays the ~20 s compile back.
# CUDA: not measured yet, so every fast run compiles (0). Other devices: no compile.
COMPILE_PAYBACK_STEPS: dict[str, int | None] = {"cpu": None, "cuda": 0}


def _compile_reason(device_type: str, payback: int | None) -> str:
    """Why the fast path compiles on ``device_type`` or not (`COMPILE_PAYBACK_STEPS`)."""
    if payback is None:
        if device_type in COMPILE_PAYBACK_STEPS:
            return f"no compile: measured no faster on a {device_type}"
        return f"no compile on {device_type}: not measured"
    return f"compile: on {device_type}" + (f" for runs of {payback}+ steps" if payback else "")


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


def fast_by_default(device: torch.device) -> bool:
    """Whether runs (``ganlib train``, the MNIST example) take the fast path when they do
    not say: where its precision was measured to keep quality — CUDA, and CPUs that compute
    bf16 natively (docs/performance.md, "Fast by default"). The ``Trainer``'s own default
    stays ``fast=False``."""
    return device.type == "cuda" or (device.type == "cpu" and native_bf16(device))


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
        fused_optimizers: The default Adam uses its fused kernel (CUDA and CPU).
        cudnn_benchmark: Set ``torch.backends.cudnn.benchmark`` when training starts.
        preload: Hold tensor data on the device and gather batches there.
        reasons: Why each automatic choice went the way it did, for
            [`describe`][ganlib.runtime.Runtime.describe].
        auto_compile: ``compile`` was the fast path's choice, not the caller's: a run too
            short to pay it back drops it ([`for_run`][ganlib.runtime.Runtime.for_run]).
    """

    device: torch.device
    precision: Precision = "32"
    compile: bool = False
    channels_last: bool = False
    fused_optimizers: bool = False
    cudnn_benchmark: bool = False
    preload: bool = False
    reasons: tuple[str, ...] = ()
    auto_compile: bool = False

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
                where it pays back (`COMPILE_PAYBACK_STEPS`: on CUDA), fused Adam (CUDA
                and CPU) and cudnn.benchmark on CUDA.
            precision: ``"32"``, ``"bf16"``, ``"16"`` or one of Lightning 2's names for
                them (``"32-true"``, ``32``, ``"bf16-mixed"``, ``"16-mixed"``, ``16``;
                the runtime holds the short name), or ``None`` to decide.
            compile: Compile the networks' forwards, or ``None`` to decide (and let a
                short run drop it at ``fit``: [`for_run`][ganlib.runtime.Runtime.for_run]).
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
        auto_compile = compile is None
        if compile is None:
            # Where compiled steps measured no faster (a CPU, in fp32 and in bf16), the
            # fast path does not compile; where it pays back, a short run may still skip it.
            payback = COMPILE_PAYBACK_STEPS.get(device.type)
            compile = fast and payback is not None
            if fast:
                reasons.append(_compile_reason(device.type, payback))
        on_cuda = device.type == "cuda"
        return cls(
            device=device,
            precision=checked,
            compile=bool(compile),
            channels_last=fast if channels_last is None else bool(channels_last),
            # Adam's fused kernel: on a CPU 1.02x the for-loop Adam's step (docs/performance.md)
            fused_optimizers=fast and device.type in ("cuda", "cpu"),
            cudnn_benchmark=fast and on_cuda,
            preload=fast,
            reasons=tuple(reasons),
            auto_compile=auto_compile and bool(compile),
        )

    def for_run(self, steps: int | None) -> Runtime:
        """This runtime for a run of ``steps`` more training steps (``None``: not known).

        The fast path's own ``compile`` is dropped, with the reason, when the run is
        shorter than `COMPILE_PAYBACK_STEPS` for this device type: compiling would cost
        more time than it saves. A ``compile=True`` the caller asked for always stays.
        """
        payback = COMPILE_PAYBACK_STEPS.get(self.device.type) or 0
        if not self.auto_compile or steps is None or steps >= payback:
            return self
        reasons = [reason for reason in self.reasons if not reason.startswith("compile")]
        reasons.append(
            f"compile: off for a run of {steps} steps, shorter than the ~{payback} steps "
            "compiling takes to pay back"
        )
        return replace(self, compile=False, reasons=tuple(reasons), auto_compile=False)

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


def steps_left(
    position: Any, max_steps: int | None, max_epochs: int | None, batches_per_epoch: int | None
) -> int | None:
    """The most steps a run can still take: the nearer of its step and epoch limits, or
    ``None`` when neither can be counted (an epoch limit on data of unknown length).

    Args:
        position: Where the run stands: a [`TrainerState`][ganlib.TrainerState] (its
            ``step``, ``epoch`` and ``batch_in_epoch``).
        max_steps: The run's step limit, or ``None``.
        max_epochs: Its epoch limit, or ``None``.
        batches_per_epoch: Steps per epoch, or ``None`` when not known.
    """
    bounds = [] if max_steps is None else [max_steps - position.step]
    if max_epochs is not None and batches_per_epoch is not None:
        done = position.epoch * batches_per_epoch + position.batch_in_epoch
        bounds.append(max_epochs * batches_per_epoch - done)
    return max(0, min(bounds)) if bounds else None
