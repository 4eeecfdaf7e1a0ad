"""Nested configs as flat dotted keys and back: the names users type as overrides.

compare's table columns and the loggers' hyperparameters both speak in these keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"model": {"out_1": 4}} -> {"model.out_1": 4}; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of `flatten`; a key below a value ({"a": 1, "a.b": 2}) keeps its dotted name."""
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = tree
        for n, part in enumerate(parents):
            if not isinstance(node.setdefault(part, {}), dict):
                leaf = ".".join([*parents[n:], leaf])
                break
            node = node[part]
        node[leaf] = value
    return tree
