"""YAML from untrusted files, loaded safely and in bounded time.

``yaml.safe_load`` refuses arbitrary Python objects but still expands aliases: a
"billion laughs" file of a few hundred bytes becomes billions of values. Here the
document is composed first (aliases shared, not copied) and refused when expanding them
would give more than ``MAX_NODES`` values, before anything is built. Used for schemas,
YOLO data.yaml, class mappings and rebalance targets.
"""

from __future__ import annotations

from typing import Any

from mlcycle.errors import MlcycleError

MAX_NODES = 100_000  # values once aliases are expanded ("billion laughs" stops here)


def load(text: str, name: str, loader_class: Any = None) -> Any:
    """The document in ``text`` (``None`` when empty), built by ``loader_class`` (a
    ``yaml.SafeLoader`` subclass; default SafeLoader). YAML errors propagate as
    ``yaml.YAMLError`` for the caller to word; an alias bomb or a too-deep document is
    an ``MlcycleError`` naming ``name``."""
    import yaml

    loader = (loader_class or yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if expanded_size(node, {}) > MAX_NODES:
            raise MlcycleError(f"{name}: YAML aliases expand to more than {MAX_NODES} values (an alias bomb?); not read")
        return loader.construct_document(node)
    except RecursionError:
        raise MlcycleError(f"{name}: cannot read YAML: nested too deeply") from None
    finally:
        loader.dispose()


def expanded_size(node: Any, memo: dict[int, int]) -> int:
    """How many values ``node`` is once every alias is copied (each shared node is
    visited once; a node that contains itself counts as infinite)."""
    done = memo.get(id(node))
    if done is not None:
        return done
    memo[id(node)] = MAX_NODES + 1
    total = 1
    value = node.value
    if isinstance(value, list):
        for item in value:
            if isinstance(item, tuple):  # a mapping's (key, value)
                total += expanded_size(item[0], memo) + expanded_size(item[1], memo)
            else:
                total += expanded_size(item, memo)
            if total > MAX_NODES:
                break
    memo[id(node)] = total
    return total
