"""Is configuration i worse than configuration j? For every pair of K configurations, fast.

    table = PairwiseTable(values, seeds, "maximize", "auto")
    p, tests = table.row(i)   # p[j]: one-sided p that i is worse than j; tests[j]: which test

`linesweep.core.answer` tests each configuration against every other one (its fixed sequence):
up to K(K - 1) pairs, 16,256 for a grid of 128 and about a million for 1,000. `compare_pairs`
builds a `Comparison` per pair, about 20 microseconds each; this module gives the same
p-values as arrays, a row (one configuration against all the others) in a few scipy calls,
because the others are prepared once: grouped by how many finite values they hold (Welch's t,
Mann-Whitney U) and aligned by seed (the paired t). The tests themselves are
`linesweep.core.stats.row_tests`, the same code `compare_pairs` runs, and they choose as it
does: auto pairs where both ran the same seeds and at least 2 pairs are finite, else Welch;
paired asked for with different seeds falls back to Welch; fewer than 2 pairs under paired,
untested (p = 1, the conservative p-value).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from linesweep.core.stats import TESTS, hashable_seed, row_tests

# Which test a pair got: tests[j] holds one of these codes.
UNTESTED, WELCH, PAIRED, MANNWHITNEY, WELCH_FALLBACK = range(5)
CODE_TESTS = {UNTESTED: "none", WELCH: "welch", PAIRED: "paired", MANNWHITNEY: "mannwhitney"}
CODE_TESTS[WELCH_FALLBACK] = "welch"  # paired asked for, but the seeds differ


class PairwiseTable:
    """K configurations' replicate values, prepared once to test any one against the others."""

    def __init__(
        self,
        values: Sequence[Sequence[float]],
        seeds: Sequence[Sequence[Hashable] | None],
        direction: str,
        test: str = "auto",
    ) -> None:
        if test not in TESTS:
            raise ValueError(f"test={test!r}: one of {', '.join(TESTS)}")
        self.direction, self.test, self.k = direction, test, len(values)
        rows = [np.asarray(v, dtype=float).reshape(-1) for v in values]
        self.finite = [r[np.isfinite(r)] for r in rows]
        # Unpaired tests: the others grouped by their count of finite values, (g, m) each.
        counts = np.array([f.size for f in self.finite])
        self.by_count = {
            int(m): (idx, np.stack([self.finite[j] for j in idx]))
            for m in np.unique(counts)
            if (idx := np.flatnonzero(counts == m)).size
        }
        # Paired tests: configurations that ran the same seeds (none twice), aligned by seed.
        self.group = np.full(self.k, -1)
        self.aligned: list[tuple[np.ndarray, np.ndarray]] = []  # (members, (g, r) values)
        if test in ("auto", "paired"):
            self._align(rows, seeds)

    def _align(self, rows: list[np.ndarray], seeds: Sequence[Sequence[Hashable] | None]) -> None:
        keyed: dict[frozenset, list[int]] = {}
        for j, s in enumerate(seeds):
            if s is None:
                continue
            if len(s) != rows[j].size:
                raise ValueError("each value needs its seed: seeds and values differ in length")
            keys = [hashable_seed(x) for x in s]
            if len(set(keys)) == len(keys):
                keyed.setdefault(frozenset(keys), []).append(j)
        for members in keyed.values():
            position = {key: n for n, key in enumerate(hashable_seed(x) for x in seeds[members[0]])}
            matrix = np.empty((len(members), len(position)))  # (g, r): row g's value of seed r
            for g, j in enumerate(members):
                for key, value in zip((hashable_seed(x) for x in seeds[j]), rows[j], strict=True):
                    matrix[g, position[key]] = value
            self.group[members] = len(self.aligned)
            self.aligned.append((np.asarray(members), matrix))

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(p, tests), each (K,): p[j] that i is worse than j, one-sided; p[i] = 1, tests[i]
        UNTESTED. The numbers `compare_pairs` gives pair by pair."""
        p, tests = self.rows([i])
        return p[0], tests[0]

    def rows(self, rows: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """`row` for several configurations at once, (len(rows), K) each: a few scipy calls in
        all (each costs about a millisecond however many pairs it tests)."""
        rows = np.asarray(rows, dtype=int)
        p = np.ones((rows.size, self.k))
        tests = np.full((rows.size, self.k), UNTESTED)
        done = np.zeros((rows.size, self.k), dtype=bool)
        done[np.arange(rows.size), rows] = True  # a configuration against itself: untested
        for g in np.unique(self.group[rows]):
            if g >= 0:
                self._paired(rows, np.flatnonzero(self.group[rows] == g), g, p, tests, done)
        code = {"auto": WELCH, "welch": WELCH, "paired": WELCH_FALLBACK}.get(self.test, MANNWHITNEY)
        name = "mannwhitney" if code == MANNWHITNEY else "welch"
        counts = np.array([self.finite[i].size for i in rows])
        for n in np.unique(counts):
            at = np.flatnonzero(counts == n)  # the rows with n finite values
            x_rows = np.stack([self.finite[i] for i in rows[at]])  # (a, n)
            for m, (idx, y_rows) in self.by_count.items():
                need = ~done[np.ix_(at, idx)].reshape(-1)  # (a * g,): each row against each
                if min(n, m) < 2 or not need.any():
                    continue  # no variance on a side: untested, p = 1
                a, j = np.divmod(np.flatnonzero(need), idx.size)
                x, y = x_rows[a], y_rows[j]  # (pairs, n), (pairs, m)
                p[at[a], idx[j]] = row_tests(name, x, y, self.direction, None).p
                tests[at[a], idx[j]] = code
        return p, tests

    def _paired(
        self,
        rows: np.ndarray,
        at: np.ndarray,
        g: int,
        p: np.ndarray,
        tests: np.ndarray,
        done: np.ndarray,
    ) -> None:
        """The pairs of rows[at] with the configurations that ran their seeds (group g): paired
        where 2 or more pairs are finite; under auto the rest are left to Welch, under paired
        they are untested."""
        members, matrix = self.aligned[g]  # (g,), (g, r)
        where = {int(j): n for n, j in enumerate(members)}
        own = matrix[[where[int(i)] for i in rows[at]]]  # (a, r)
        mask = np.isfinite(own)[:, None, :] & np.isfinite(matrix)[None, :, :]  # (a, g, r)
        mask = mask.reshape(-1, matrix.shape[1])  # (a * g, r): the pairs both hold
        enough = np.flatnonzero(mask.sum(axis=1) >= 2)
        enough = enough[~done[at[enough // members.size], members[enough % members.size]]]
        if self.test == "paired":
            done[np.ix_(at, members)] = True  # fewer than 2 pairs: untested, p = 1
        # Rows grouped by which pairs they hold (one pattern, all, in the usual case): a
        # pattern as the integer its bits spell.
        bits = mask[enough] @ (1 << np.arange(matrix.shape[1], dtype=np.int64))
        for pattern in np.unique(bits):
            pairs = enough[bits == pattern]
            a, j = np.divmod(pairs, members.size)
            keep = mask[pairs[0]]  # (r,)
            x, y = own[a][:, keep], matrix[j][:, keep]  # (pairs, finite pairs) each
            p[at[a], members[j]] = row_tests("paired", x, y, self.direction, None).p
            tests[at[a], members[j]] = PAIRED
            done[at[a], members[j]] = True
