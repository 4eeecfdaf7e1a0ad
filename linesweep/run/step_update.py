"""The update of the hand-written step (`linesweep.run.step`): torch's fused optimizer kernels
on the members' rows of one (R, P) parameter buffer, each member with its own hyperparameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor

from linesweep.run.update_rule import Unsupported, UpdateRule

# Numbers in a row of the buffers, rounded up to this: a row is whole 64-byte vectors.
ALIGN = 16


class FusedUpdate:
    """An optimizer's update of a (R, P) buffer with torch's fused kernel, one pass per call.

    This is the arithmetic torch.optim runs with `fused=True` (the config's default), on the
    members' rows as its tensors. Each member has its own state and its own hyperparameters in
    `rules`, as torch keeps them per parameter group: `update.rules[r] = replace(rule,
    lr=0.003)`. Every rule has the same kind (one of Adam, AdamW, SGD: one state layout).

    Members sharing a rule share one kernel call, and a run of adjacent members is one tensor
    to it, their rows end to end: all R members with one rule are one tensor of R*P numbers.
    The kernel's cost is per tensor (R=256, P=119: 117 µs for 256 rows, 19 µs as one tensor).
    It computes a row's last P mod 16 numbers with scalar code and the rest with vector
    instructions, which round differently; rows of whole vectors (`ALIGN`: the buffers are
    (R, P') with P' a multiple of 16, P of them used, the rest zeros that stay zero) make every
    number vector-computed, so a member's update is bit for bit the same alone or in a run.

    Why the fused kernel rather than the update written out with a per-member learning rate
    broadcast as an (R, 1) tensor (commit 07c5e21): that is torch's single-tensor Adam in 13
    element-wise operations. Medians on the project's machine, one thread: R=1, 39 µs against
    6 µs for the kernel; R=8, 47 µs against 17 µs when the members share a learning rate and
    36 µs when all eight differ (one call each).
    """

    def __init__(self, rows: list[Tensor], rule: UpdateRule, members: int) -> None:
        self.rules = [rule] * members
        self._rows = rows  # params, grad, then the state: (R, P') each, or (R,) step counts
        self._calls: tuple[tuple[UpdateRule, list[list[Tensor]]], ...] = ()
        self._calls_rules: tuple[UpdateRule, ...] = ()

    def freeze(self, member: int) -> None:
        """Stop a member where it is: its learning rate 0 (its state still moves, unused)."""
        self.rules[member] = replace(self.rules[member], lr=0.0)

    def keep(self, members: Sequence[int], params: Tensor, grad: Tensor) -> None:
        """Keep only `members`, in that order: their state, rules and step counts."""
        index = torch.as_tensor(list(members), dtype=torch.long, device=params.device)
        self._rows = [params, grad, *(t.index_select(0, index) for t in self._rows[2:])]
        self.rules = [self.rules[m] for m in members]
        self._calls_rules = ()

    def calls(self) -> tuple[tuple[UpdateRule, list[list[Tensor]]], ...]:
        """(rule, for each buffer the tensors of its members' runs) for each distinct rule."""
        if tuple(self.rules) != self._calls_rules:
            kinds = {rule.kind for rule in self.rules}
            if len(kinds) > 1:
                raise Unsupported(f"one population with several optimizers: {sorted(kinds)}")
            self._calls_rules = tuple(self.rules)
            members: dict[UpdateRule, list[int]] = {}
            for r, rule in enumerate(self.rules):
                members.setdefault(rule, []).append(r)
            self._calls = tuple(
                (rule, [[_run(t, *run) for run in _runs(rs)] for t in self._rows])
                for rule, rs in members.items()
            )
        return self._calls


def _runs(members: list[int]) -> list[tuple[int, int]]:
    """Ascending member indices as runs of adjacent ones: [0, 1, 2, 5] -> [(0, 3), (5, 6)]."""
    runs: list[tuple[int, int]] = []
    for m in members:
        if runs and runs[-1][1] == m:
            runs[-1] = (runs[-1][0], m + 1)
        else:
            runs.append((m, m + 1))
    return runs


def _run(t: Tensor, start: int, stop: int) -> Tensor:
    """Members start..stop of a buffer (R, P') as one flat tensor; of step counts (R,), the
    first member's (all members step together, so their counts are equal)."""
    return t[start:stop].view(-1) if t.dim() == 2 else t[start : start + 1]


class Adam(FusedUpdate):
    """torch.optim.Adam and AdamW (weight decay, not amsgrad): torch's fused kernel."""

    def __init__(self, params: Tensor, grad: Tensor, rule: UpdateRule) -> None:
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(params), torch.zeros_like(params)
        step = torch.zeros(len(params), device=params.device, dtype=torch.float32)  # (R,)
        super().__init__([params, grad, self.exp_avg, self.exp_avg_sq, step], rule, len(params))
        self._kernel = torch._fused_adamw_ if rule.kind == "adamw" else torch._fused_adam_

    @property
    def step(self) -> Tensor:
        """Each member's step count (R,)."""
        return self._rows[4]

    def keep(self, members: Sequence[int], params: Tensor, grad: Tensor) -> None:
        super().keep(members, params, grad)
        self.exp_avg, self.exp_avg_sq = self._rows[2], self._rows[3]

    def __call__(self) -> None:
        self.step.add_(1)  # (R,)
        for rule, (params, grads, exp_avgs, exp_avg_sqs, steps) in self.calls():
            self._kernel(
                params, grads, exp_avgs, exp_avg_sqs, [], steps,
                lr=rule.lr, beta1=rule.betas[0], beta2=rule.betas[1],
                weight_decay=rule.weight_decay, eps=rule.eps, amsgrad=False, maximize=False,
            )  # fmt: skip


class SGD(FusedUpdate):
    """torch.optim.SGD (momentum, dampening, nesterov, weight decay): torch's fused kernel.

    The momentum buffer is set to the first step's gradient: one flag for all members, as they
    all step on every call (`keep` drops members, never adds one at another step).
    """

    def __init__(self, params: Tensor, grad: Tensor, rule: UpdateRule) -> None:
        self.momentum_buffer = torch.zeros_like(params)  # (R, P'), set to the gradient at first
        super().__init__([params, grad, self.momentum_buffer], rule, len(params))
        self._first = True

    def keep(self, members: Sequence[int], params: Tensor, grad: Tensor) -> None:
        super().keep(members, params, grad)
        self.momentum_buffer = self._rows[2]

    def __call__(self) -> None:
        for rule, (params, grads, buffers) in self.calls():
            torch._fused_sgd_(
                params, grads, buffers if rule.momentum else [],
                weight_decay=rule.weight_decay, momentum=rule.momentum, lr=rule.lr,
                dampening=rule.dampening, nesterov=rule.nesterov, maximize=False,
                is_first_step=self._first and rule.momentum != 0,
            )  # fmt: skip
        self._first = False
