"""Model Garden override text: the dotted `a.b.c=value,d.e=[1,2]` form or a YAML mapping.

Shared by every CLI that takes `--params-override`, so `describe` accepts what `train`
documents.
"""

from __future__ import annotations

from typing import Any

from mnas_tf.config_files import ConfigError


def _split_top_level(text: str) -> list[str]:
    """Splits on commas that are not inside [...] or {...}."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return parts + [current]


def parse_override(text: str) -> Any:
    """`a.b.c=value,d.e=[1,2]` (Model Garden's dotted form) or a YAML/JSON mapping."""
    import yaml
    if "=" not in text or text.lstrip().startswith("{") or ":" in text.split("=", 1)[0]:
        return text
    result: dict = {}
    for item in _split_top_level(text):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form key.path=value")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"override {item!r}: cannot parse the value {value!r}") from None
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = parsed
    return result
