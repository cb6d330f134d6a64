"""Distances between two sets of features: Fréchet distance and kernel (KID) distance."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .._validation import check_int

__all__ = ["FeatureStats", "frechet_distance", "kernel_distance"]


def _as_features(name: str, features: Tensor, min_rows: int = 2) -> Tensor:
    if features.dim() != 2:
        raise ValueError(f"`{name}` must be (N, D) features, got shape {tuple(features.shape)}")
    if features.shape[0] < min_rows:
        raise ValueError(f"`{name}` needs >= {min_rows} rows, got {features.shape[0]}")
    return features.detach().to(device="cpu", dtype=torch.float64)


@dataclass(frozen=True)
class FeatureStats:
    """Mean and covariance of a feature set (float64): all a Fréchet distance needs.

    Compute the reference set's stats once (``FeatureStats.of(real_features)``)
    and compare many generated sets against it.
    """

    mean: Tensor  # (D,)
    cov: Tensor  # (D, D)
    count: int

    @classmethod
    def of(cls, features: Tensor) -> FeatureStats:
        """Stats of (N, D) features, N >= 2 (unbiased covariance)."""
        return _stats("features", features)


def _stats(name: str, value: Tensor | FeatureStats) -> FeatureStats:
    if isinstance(value, FeatureStats):
        return value
    x = _as_features(name, value)
    return FeatureStats(x.mean(0), torch.cov(x.T).reshape(x.shape[1], x.shape[1]), x.shape[0])


def _sqrt_psd(matrix: Tensor) -> Tensor:
    """Square root of a symmetric positive semi-definite matrix (negative eigenvalues -> 0)."""
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(a: Tensor | FeatureStats, b: Tensor | FeatureStats) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets, in float64.

    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``, the quantity FID
    reports in Inception's feature space. The trace of the matrix square root is
    taken from the eigenvalues of ``S_a^(1/2) S_b S_a^(1/2)``, which is symmetric,
    so it stays real and accurate where ``sqrtm`` of the product can go complex.

    Args:
        a: (N, D) features or their [`FeatureStats`][ganlib.metrics.FeatureStats].
        b: (M, D) features or their [`FeatureStats`][ganlib.metrics.FeatureStats].
    """
    stats_a, stats_b = _stats("a", a), _stats("b", b)
    if stats_a.mean.shape != stats_b.mean.shape:
        raise ValueError(
            f"feature sizes differ: {stats_a.mean.shape[0]} and {stats_b.mean.shape[0]}"
        )
    root_a = _sqrt_psd(stats_a.cov)
    middle = root_a @ stats_b.cov @ root_a
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    mean_term = (stats_a.mean - stats_b.mean).square().sum()
    value = mean_term + stats_a.cov.trace() + stats_b.cov.trace() - 2 * trace_sqrt
    return float(value.clamp(min=0))


def _polynomial_mmd2(x: Tensor, y: Tensor, degree: int, coef0: float) -> Tensor:
    """Unbiased MMD^2 with the kernel ``(x.y / D + coef0) ** degree``."""
    dim = x.shape[1]
    k_xx = (x @ x.T / dim + coef0) ** degree
    k_yy = (y @ y.T / dim + coef0) ** degree
    k_xy = (x @ y.T / dim + coef0) ** degree
    m, n = len(x), len(y)
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return within_x + within_y - 2 * k_xy.mean()


def kernel_distance(
    a: Tensor,
    b: Tensor,
    *,
    num_subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    coef0: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel distance (KID in Inception's space): unbiased MMD^2, polynomial kernel.

    Averaged over ``num_subsets`` random subsets of ``subset_size`` rows of each
    set, as Bińkowski et al. (2018) do. A ``subset_size`` larger than either set
    is refused, not shrunk (as torch-fidelity and torchmetrics do): the estimate's
    spread depends on the subset size, so KIDs are only comparable at equal sizes.

    Args:
        a: (N, D) features.
        b: (M, D) features.
        num_subsets: Subsets to average over.
        subset_size: Rows per subset, 2 to ``min(N, M)``.
        degree: Kernel degree (3 in KID).
        coef0: Kernel offset (1 in KID).
        seed: Seed for choosing the subsets.

    Returns:
        The mean and the standard deviation over subsets.

    Raises:
        ValueError: If ``subset_size`` exceeds ``N`` or ``M``, or the features are
            misshaped.
    """
    x = _as_features("a", a)
    y = _as_features("b", b)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature sizes differ: {x.shape[1]} and {y.shape[1]}")
    check_int("num_subsets", num_subsets, 1)
    size = check_int("subset_size", subset_size, 2)
    if size > min(len(x), len(y)):
        raise ValueError(
            f"`subset_size` must be <= the rows of `a` and of `b` ({len(x)} and {len(y)}), "
            f"got {size}"
        )
    rng = torch.Generator().manual_seed(seed)
    values = torch.stack(
        [
            _polynomial_mmd2(
                x[torch.randperm(len(x), generator=rng)[:size]],
                y[torch.randperm(len(y), generator=rng)[:size]],
                check_int("degree", degree, 1),
                coef0,
            )
            for _ in range(num_subsets)
        ]
    )
    spread = values.std() if num_subsets > 1 else torch.zeros(())
    return float(values.mean()), float(spread)
