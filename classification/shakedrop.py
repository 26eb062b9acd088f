"""ShakeDrop (Yamada et al., IEEE Access 2019; supplement A.2).

G(x) = x + (b_l + alpha - b_l * alpha) F(x) in the forward pass, with the gradient scaled by
(b_l + beta - b_l * beta) in the backward pass, where b_l ~ Bernoulli(p_l), alpha ~ U(-1, 1) and
beta ~ U(0, 1). At test time F(x) is scaled by the expectation of the forward factor,
E[b_l + alpha - b_l * alpha] = p_l (E[alpha] = 0), as the official code does (models/shakedrop/shakedrop.py
line 23: ``(1 - p_drop) * x``); the supplement's test-phase line writes beta where the forward factor's
alpha is meant.
The survival probability decays linearly with the block index: p_l = 1 - l / L * (1 - P_L), P_L = 0.5.

How b_l is drawn (``model.shakedrop_gate``):

* ``batch`` (default): one b_l per block per mini-batch (per forward call), as the official PS-KD code
  does (models/shakedrop/shakedrop.py line 14: ``torch.cuda.FloatTensor([0]).bernoulli_(1 - p_drop)``),
  so in one step a block is kept for every sample or perturbed for every sample.
* ``sample``: one b_l per sample per block (this suite's earlier behaviour, kept as an option).

In both modes alpha and beta are drawn per sample (one value per sample, shared by all its channels and
positions), as in the official lines 17-18 and 29-30. The official code skips drawing alpha and beta
when b_l = 1 (a host sync on ``gate.item()``); here they are always drawn and multiplied by 1 - b_l, which
gives the same distribution of G without the sync.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

GATES = ("batch", "sample")


def survival_probabilities(num_blocks: int, p_last: float = 0.5) -> list[float]:
    """p_l = 1 - l / L * (1 - P_L) for l = 1 .. L (supplement A.2; official pyramid_shake_drop.py line 135)."""
    return [1.0 - (block + 1) / num_blocks * (1.0 - p_last) for block in range(num_blocks)]


class _ShakeDropFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, p_survive: float, per_sample_gate: bool) -> Tensor:
        per_sample = (x.shape[0],) + (1,) * (x.dim() - 1)
        gate_shape = per_sample if per_sample_gate else (1,) * x.dim()
        gate = torch.empty(gate_shape, device=x.device, dtype=x.dtype).bernoulli_(p_survive)
        alpha = torch.empty(per_sample, device=x.device, dtype=x.dtype).uniform_(-1.0, 1.0)
        ctx.save_for_backward(gate)
        ctx.per_sample = per_sample
        return x * (gate + alpha * (1.0 - gate))  # = b + alpha - b alpha, exact for b in {0, 1}

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        (gate,) = ctx.saved_tensors
        beta = torch.empty(ctx.per_sample, device=grad.device, dtype=grad.dtype).uniform_(0.0, 1.0)
        return grad * (gate + beta * (1.0 - gate)), None, None


class ShakeDrop(nn.Module):
    """Scales a residual branch F(x) as above; put it on the branch before the addition.

    ``gate`` is ``"batch"`` (one b_l per forward call, the official code) or ``"sample"`` (one per sample).
    """

    def __init__(self, p_survive: float, gate: str = "batch") -> None:
        super().__init__()
        if not 0.0 <= p_survive <= 1.0:
            raise ValueError(f"the survival probability must lie in [0, 1]; got {p_survive}")
        if gate not in GATES:
            raise ValueError(f"model.shakedrop_gate must be one of {', '.join(GATES)}; got {gate!r}")
        self.p_survive = p_survive
        self.gate = gate

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            return _ShakeDropFunction.apply(x, self.p_survive, self.gate == "sample")
        return x * self.p_survive

    def extra_repr(self) -> str:
        return f"p_survive={self.p_survive:.4f}, gate={self.gate}"
