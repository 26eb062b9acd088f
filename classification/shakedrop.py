"""ShakeDrop (Yamada et al., IEEE Access 2019; supplement A.2).

G(x) = x + (b_l + alpha - b_l * alpha) F(x) in the forward pass, with the gradient scaled by
(b_l + beta - b_l * beta) in the backward pass, where b_l ~ Bernoulli(p_l) per sample, alpha ~ U(-1, 1)
and beta ~ U(0, 1). At test time F(x) is scaled by the expectation of the forward factor,
E[b_l + alpha - b_l * alpha] = p_l (E[alpha] = 0), as in the ShakeDrop paper and its reference code; the
supplement's test-phase line writes beta where the forward factor's alpha is meant.
The survival probability decays linearly with the block index: p_l = 1 - l / L * (1 - P_L), P_L = 0.5.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def survival_probabilities(num_blocks: int, p_last: float = 0.5) -> list[float]:
    """p_l = 1 - l / L * (1 - P_L) for l = 1 .. L."""
    return [1.0 - (block + 1) / num_blocks * (1.0 - p_last) for block in range(num_blocks)]


class _ShakeDropFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, p_survive: float) -> Tensor:
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        gate = torch.empty(shape, device=x.device, dtype=x.dtype).bernoulli_(p_survive)
        alpha = torch.empty(shape, device=x.device, dtype=x.dtype).uniform_(-1.0, 1.0)
        ctx.save_for_backward(gate)
        return x * (gate + alpha * (1.0 - gate))  # = b + alpha - b alpha, exact for b in {0, 1}

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (gate,) = ctx.saved_tensors
        beta = torch.empty_like(gate).uniform_(0.0, 1.0)
        return grad * (gate + beta * (1.0 - gate)), None


class ShakeDrop(nn.Module):
    """Scales a residual branch F(x) as above; put it on the branch before the addition."""

    def __init__(self, p_survive: float) -> None:
        super().__init__()
        if not 0.0 <= p_survive <= 1.0:
            raise ValueError(f"the survival probability must lie in [0, 1]; got {p_survive}")
        self.p_survive = p_survive

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            return _ShakeDropFunction.apply(x, self.p_survive)
        return x * self.p_survive

    def extra_repr(self) -> str:
        return f"p_survive={self.p_survive:.4f}"
