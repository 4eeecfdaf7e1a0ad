"""Search spaces in Hydra's sweep syntax, turned into Optuna distributions.

    model.out_1=int(interval(1,8))           an integer in [1, 8], both ends included
    optimizer.lr=tag(log,interval(1e-4,1e-1)) a float in [1e-4, 1e-1] on a log scale
    model.conv1.kernel_size=range(2,5)       2, 3 or 4: like Python's range, the stop is excluded
    optimizer=choice(adam,sgd)               one of the listed values (or config-group options)
    seed=7                                   not a sweep: every trial gets it

`range` means the same thing for every sampler and in every Hydra sweeper: the values Hydra's basic
sweeper would run (`-m x=range(2,5)` runs 2, 3, 4). It becomes an integer (or float) distribution
with that step, so TPE or CMA-ES see an ordered scale, and the grid sampler enumerates exactly those
values. (Hydra's published Optuna plugin included the stop; linesweep does not.)
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
)
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from linesweep.core.errors import ConfigError, LinesweepError


@dataclass(frozen=True)
class SearchSpace:
    """Distributions to sample, by override key, and overrides every trial shares."""

    distributions: dict[str, BaseDistribution]
    fixed: tuple[str, ...]

    def overrides(self, params: Mapping[str, Any]) -> list[str]:
        """The command-line overrides that give one trial its sampled values.

        `params` may hold more than the distributions: those a custom search space suggested.
        """
        extra = [key for key in params if key not in self.distributions]
        return [
            *self.fixed,
            *(f"{key}={override_value(params[key])}" for key in [*self.distributions, *extra]),
        ]

    def fixed_keys(self) -> set[str]:
        """The keys the fixed overrides set or delete (`+key=1`, `~key`: `key`)."""
        return {_bare_key(override.partition("=")[0]) for override in self.fixed}

    def grid(self) -> dict[str, list[Any]]:
        """Every value of every parameter, for Optuna's grid sampler (continuous: refused)."""
        values = self.finite_values()
        if values is not None:
            return values
        key = next(k for k, d in self.distributions.items() if _values_of(d) is None)
        raise ConfigError(
            "hydra/sweeper/sampler",
            "grid",
            f"finite values for every parameter, and {key} is continuous",
            "give it choice(...) or range(...), or use another sampler",
        )

    def finite_values(self) -> dict[str, list[Any]] | None:
        """Every value of every parameter, or None if one of them is continuous."""
        values = {key: _values_of(dist) for key, dist in self.distributions.items()}
        if any(v is None for v in values.values()):
            return None
        return values  # type: ignore[return-value]


def _values_of(dist: BaseDistribution) -> list[Any] | None:
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, (IntDistribution, FloatDistribution)) and dist.step is not None:
        count = round((dist.high - dist.low) / dist.step) + 1
        return [dist.low + i * dist.step for i in range(count)]
    return None  # a float interval: continuous (every integer distribution has a step)


def override_value(value: Any) -> str:
    """A sampled value written in Hydra's override grammar."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str) and not _reads_back_as_one_value(value):
        # A choice typed quoted ('=1+2', 'c,d'): Transformer.encode hands it over unquoted.
        return quoted(value)
    return str(value)  # ints, and strings Transformer.encode escaped (a\ b)


def _reads_back_as_one_value(text: str) -> bool:
    """Whether `key=<text>` parses as one plain value (not an error, not a sweep of several)."""
    try:
        (override,) = OverridesParser.create().parse_overrides([f"key={text}"])
    except HydraException:
        return False
    return not override.is_sweep_override()


def quoted(text: str) -> str:
    """A string as a single-quoted value in Hydra's override grammar, which reads it back as is.

    Hydra unescapes backslashes only before a quote (2n + 1 backslashes and a quote: n and a
    literal quote) and before the closing quote (2n: n); anywhere else a backslash is kept as
    typed. Doubling every backslash, as this once did, turned JSON's `\\u00e9` into `\\\\u00e9`:
    a trial of a study named `étude` looked for its journal in a folder named `\\u00e9tude`.
    """
    body = re.sub(r"(\\*)('|\Z)", lambda m: m[1] * 2 + ("\\'" if m[2] else ""), text)
    return f"'{body}'"


def literal_json(json_text: str) -> str:
    """JSON text in which OmegaConf finds no interpolation: `$` written as its JSON escape."""
    return json_text.replace("$", "\\u0024")


def parse_search_space(params: Mapping[str, Any] | None, arguments: Sequence[str]) -> SearchSpace:
    """Merge `hydra.sweeper.params` with the command line (which wins) into one search space."""
    parser = OverridesParser.create()
    parsed: dict[str, tuple[Override, str]] = {}  # key -> (override, where it came from)
    for key, expression in (params or {}).items():
        origin = f"hydra.sweeper.params.{key}"
        parsed[_bare_key(key)] = (
            _parse_one(parser, f"{key}={expression}", origin, str(expression)),
            origin,
        )
    for argument in arguments:
        key, _, expression = argument.partition("=")
        override = _parse_one(parser, argument, key, expression)
        parsed[_bare_key(override.get_key_element())] = (override, override.get_key_element())

    distributions: dict[str, BaseDistribution] = {}
    fixed: list[str] = []
    for override, origin in parsed.values():
        if override.is_sweep_override():
            distributions[override.get_key_element()] = to_distribution(override, origin)
        elif override.is_delete() and override.value_type is None:  # `~key`: delete, any value
            fixed.append(override.get_key_element())
        else:  # as typed: rebuilt from the parse, `false` read `False` and `${a}` `$\{a\}`
            fixed.append(override.input_line)
    return SearchSpace(distributions, tuple(fixed))


def check_keys(
    space: SearchSpace,
    config: DictConfig,
    group_options: Callable[[str], list[str]] | None = None,
) -> None:
    """Refuse a search-space key that is neither in the composed config nor a config group, and
    a config group's option that does not exist (`group_options` lists a group's options).

    Hydra would refuse them too, but only when the first trial's config is composed: after the
    study exists and the trial is asked. A key added with `+` is new by intent, and not checked;
    nor is one deleted with `~` (Hydra has deleted it from `config` already, or will refuse).
    """
    known = set(_paths(OmegaConf.to_container(config, resolve=False)))
    known = {k for k in known if k != "hydra" and not k.startswith("hydra.")}
    groups = set(OmegaConf.select(config, "hydra.runtime.choices", default=None) or {})
    keys = [*space.distributions, *(fixed.split("=", 1)[0] for fixed in space.fixed)]
    for key in keys:
        bare = key.split("@", 1)[0]
        if key.startswith(("+", "~")) or bare.startswith(("hydra.", "hydra/")):
            continue  # added by intent; or deleted, which Hydra checks as it composes
        if bare in groups and group_options is not None:
            _check_options(bare, _choices(space, key), group_options(bare))
            continue
        if bare in known or bare in groups:
            continue
        near = difflib.get_close_matches(bare, sorted(known | groups), n=3, cutoff=0.6)
        hint = f"the nearest: {', '.join(near)}" if near else "see --cfg job for the keys"
        raise LinesweepError(
            f"search-space key {bare} is not in the composed config, nor a config group; "
            f"{hint} (to add a new key, write +{bare}=...)"
        )


def _choices(space: SearchSpace, key: str) -> list[str]:
    """The options a search-space key can take: a categorical's choices, or its fixed value."""
    distribution = space.distributions.get(key)
    if isinstance(distribution, CategoricalDistribution):
        return [str(choice) for choice in distribution.choices]
    fixed = [f.split("=", 1)[1] for f in space.fixed if f.split("=", 1)[0] == key]
    return fixed


def _check_options(group: str, chosen: list[str], options: list[str]) -> None:
    for option in chosen:
        if option not in options:
            near = difflib.get_close_matches(option, options, n=3, cutoff=0.5)
            hint = f"the nearest: {', '.join(near)}" if near else f"one of {', '.join(options)}"
            raise LinesweepError(
                f"search-space key {group}: {option!r} is not an option of the config group "
                f"{group}; {hint}"
            )


def _paths(node: object, prefix: str = "") -> Iterator[str]:
    """Every dotted key of a config as plain containers (list items are not keys of their own)."""
    if isinstance(node, dict):
        for name, child in node.items():
            path = f"{prefix}{name}"
            yield path
            yield from _paths(child, f"{path}.")


def _bare_key(key: str) -> str:
    return key.lstrip("+~")


def _parse_one(parser: OverridesParser, text: str, origin: str, expression: str) -> Override:
    try:
        return parser.parse_overrides([text])[0]
    except HydraException as err:
        detail = str(err).splitlines()[0]
        raise ConfigError(origin, expression, f"Hydra's sweep syntax ({detail})") from None


def to_distribution(override: Override, origin: str) -> BaseDistribution:
    """One sweep expression as an Optuna distribution, or a ConfigError naming it."""
    sweep = override.value()
    expression = (override.input_line or "").split("=", 1)[-1]
    log = "log" in getattr(sweep, "tags", set())

    def refuse(allowed: str, fix: str | None = None) -> ConfigError:
        return ConfigError(origin, expression, allowed, fix)

    if isinstance(sweep, ChoiceSweep) or (isinstance(sweep, RangeSweep) and sweep.shuffle):
        choices = list(override.sweep_iterator(transformer=Transformer.encode))
        if not choices:
            raise refuse("at least one choice")
        if log:
            raise refuse("tag(log, ...) on an interval or a range, not on a choice")
        return CategoricalDistribution(choices)
    if isinstance(sweep, RangeSweep):
        values = list(override.sweep_iterator())
        if not values:
            raise refuse("a range with at least one value (start < stop for a positive step)")
        step, low, high = abs(sweep.step), min(values), max(values)  # range(5,2,-1) is 3, 4, 5
        if all(isinstance(v, int) for v in (sweep.start, sweep.stop, step)):
            if log and step != 1:
                raise refuse("a log-scale integer range with step 1")
            _check_log(log, low, refuse)
            return IntDistribution(low, high, log=log, step=1 if log else step)
        if log:
            raise refuse("tag(log, ...) on an integer range or an interval, not a float range")
        return FloatDistribution(float(low), float(high), step=float(step))
    if isinstance(sweep, IntervalSweep):
        low, high = sweep.start, sweep.end
        if low is None or high is None or not all(map(math.isfinite, (low, high))):
            raise refuse("interval(low, high) with finite bounds")
        if low > high:
            raise refuse(f"interval(low, high) with low <= high (got low {low} > high {high})")
        _check_log(log, low, refuse)
        if isinstance(low, int) and isinstance(high, int):
            return IntDistribution(low, high, log=log)
        return FloatDistribution(float(low), float(high), log=log)
    raise refuse("choice(...), range(...) or interval(...)", "glob() is not supported: use choice")


def _check_log(log: bool, low: float, refuse: Any) -> None:
    if log and low <= 0:
        raise refuse(f"a log scale needs low > 0 (got low {low})")
