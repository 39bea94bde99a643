"""Type checks of config values against what they are declared as, before anything is built.

A string where a number belongs (`seed: "abc"`, `target_ms: "25"`) would otherwise travel
into Keras or NumPy and crash there with a TypeError traceback. Each check gives one line
that names the key, the expected type and the value. Used for our dataclass configs (search,
proxy, PPO, search spaces), the MSNAS defaults, and Model Garden overrides.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Mapping

from mnas_tf.config_files import ConfigError

_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
          tuple: "a list", list: "a list", dict: "a mapping"}


def describe_value(value: Any) -> str:
    """`'25' (a string)`: the value as written, with its YAML type."""
    kind = {str: "a string", bool: "a boolean", int: "an integer", float: "a number",
            list: "a list", tuple: "a list", dict: "a mapping", type(None): "null"}
    return f"{value!r} ({kind.get(type(value), type(value).__name__)})"


def matches(value: Any, expected: Any) -> bool:
    """Whether `value` (as YAML gives it) fits the type annotation `expected`."""
    origin = typing.get_origin(expected)
    if expected is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, arg) for arg in typing.get_args(expected))
    if expected is type(None):
        return value is None
    if origin in (tuple, list) or expected in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return False
        args = [a for a in typing.get_args(expected) if a is not Ellipsis]
        return all(matches(v, args[0]) for v in value) if args else True
    if origin is dict or expected is dict:
        return isinstance(value, Mapping)
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(expected, type):
        return isinstance(value, expected)
    return True


def type_name(expected: Any) -> str:
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        names = [type_name(a) for a in typing.get_args(expected) if a is not type(None)]
        return " or ".join(names) + (" (or null)" if type(None) in typing.get_args(expected)
                                     else "")
    if origin in (tuple, list):
        args = [a for a in typing.get_args(expected) if a is not Ellipsis]
        return f"a list of {type_name(args[0]).split(' ', 1)[-1]}s" if args else "a list"
    return _NAMES.get(origin or expected, getattr(expected, "__name__", str(expected)))


def check_fields(cls: type, values: Mapping[str, Any], where: str,
                 error: type = ConfigError) -> dict[str, Any]:
    """`values` checked against dataclass `cls`'s annotations; lists become tuples where a
    tuple is declared (so frozen configs stay hashable). Unknown keys are left to the caller."""
    hints = typing.get_type_hints(cls)
    out = dict(values)
    for field in dataclasses.fields(cls):
        if field.name not in values or field.name not in hints:
            continue
        value, expected = values[field.name], hints[field.name]
        if not matches(value, expected):
            key = f"{where}.{field.name}" if where else field.name
            raise error(f"{key} must be {type_name(expected)}, got "
                        f"{describe_value(value)}")
        if isinstance(value, list) and (typing.get_origin(expected) is tuple
                                        or expected is tuple):
            out[field.name] = tuple(value)
    return out


_SIMPLE = (int, float, bool, str, type(None))


def _simple(expected: Any) -> bool:
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType, tuple, list):
        return all(_simple(a) for a in typing.get_args(expected) if a is not Ellipsis)
    return expected in _SIMPLE or expected in (tuple, list)


def check_annotated(value: Any, expected: Any, key: str, error: type = ConfigError) -> None:
    """`value` against a declared type made of scalars and lists only (others: unchecked,
    e.g. nested configs that accept mappings)."""
    if _simple(expected) and not matches(value, expected):
        raise error(f"{key} must be {type_name(expected)}, got {describe_value(value)}")


def check_like(value: Any, default: Any, key: str, error: type = ConfigError) -> None:
    """`value` must have the type of `default` (an int stays an int, a number a number);
    a None default accepts anything, and null is left to the caller's range checks."""
    if default is None or value is None:
        return
    expected = {bool: bool, int: int, float: float, str: str}.get(type(default))
    if expected is not None and not matches(value, expected):
        raise error(f"config key '{key}' must be {type_name(expected)}, got "
                    f"{describe_value(value)}")
    if isinstance(default, (list, tuple)) and not isinstance(value, (list, tuple)):
        raise error(f"config key '{key}' must be a list, got {describe_value(value)}")
