"""YAML that cannot stall or blow up the process reading it.

PyYAML's safe loader already refuses to build arbitrary objects, but two things in a hostile
file still hurt: nesting deep enough to exhaust the recursion of its composer, and aliases
that refer to aliases ("billion laughs": nine levels of nine aliases is 9^9 values once
expanded; anything that walks or prints the result walks or prints all of them). This loader
refuses both, with a MarkedYAMLError that carries the line, before anything is constructed
(libyaml itself stops at 1,000 levels while composing).
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_DEPTH = 40  # nested collections
MAX_NODES = 200_000  # values in one document once every alias is expanded


class TooBig(yaml.MarkedYAMLError):
    """A document over one of the limits (nesting, values with aliases expanded)."""


# libyaml's parser and composer (C) read the rule pack ten times faster than the pure-Python
# ones; both build the same nodes with the same line marks.
_SafeLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class BoundedLoader(_SafeLoader):  # type: ignore[misc, valid-type]
    """A safe loader whose documents are checked against the limits before construction."""


def load_bounded(text: str, loader_class: type[BoundedLoader] = BoundedLoader) -> Any:
    """The one document in `text`, or None; TooBig (a MarkedYAMLError) past the limits."""
    loader = loader_class(text)
    try:
        node = _compose(loader)
        if node is None:
            return None
        _check_depth(node)
        size = expanded_size(node)
        if size > MAX_NODES:
            raise TooBig(problem=f"{size:,} values once its aliases are expanded, over the "
                         f"limit of {MAX_NODES:,} (an alias bomb?)",
                         problem_mark=node.start_mark)  # fmt: skip
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _compose(loader: BoundedLoader) -> yaml.Node | None:
    try:
        return loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        if "nesting depth" not in str(exc.problem):
            raise
        # libyaml's own limit, far past ours: say it in the same words
        raise TooBig(problem=f"nested more than {MAX_DEPTH} levels deep",
                     problem_mark=exc.problem_mark) from None  # fmt: skip


def expanded_size(root: yaml.Node) -> int:
    """Nodes in the document once every alias is expanded, counted without expanding any:
    each distinct node's size is computed once, after its children's, without recursion. A
    node that contains itself (`&a [*a]`) has no finite size: MAX_NODES + 1."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if children_done:
            open_nodes.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in _children(node))
            continue
        if id(node) in open_nodes:
            return MAX_NODES + 1
        open_nodes.add(id(node))
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:
                return MAX_NODES + 1
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def _check_depth(root: yaml.Node) -> None:
    """TooBig at the first collection nested more than MAX_DEPTH deep (walked without
    recursion; a node reached again through an alias is not walked twice)."""
    seen: set[int] = set()
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise TooBig(problem=f"nested more than {MAX_DEPTH} levels deep",
                         problem_mark=node.start_mark)  # fmt: skip
        if id(node) not in seen:
            seen.add(id(node))
            stack.extend((child, depth + 1) for child in _children(node))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
