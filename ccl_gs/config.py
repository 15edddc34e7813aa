"""Config dataclasses <-> command line <-> JSON.

Each component has a config dataclass whose fields carry their help text in
``field(metadata={"help": ...})``. :func:`add_arguments` turns a (possibly
nested) config into ``--flag`` options (nested fields become
``--outer.inner``), :func:`from_args` builds the config back, and
:func:`from_dict` restores a config saved as JSON beside an output.

Booleans are ``--flag`` / ``--no-flag`` pairs whose default is the dataclass
default, so a flag never silently defaults to True behind ``store_true``.
Help texts (and the defaults shown in them) are plain text: a ``%`` in them
is escaped for argparse's ``%``-formatting.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def _help(f: dataclasses.Field) -> str:
    return f.metadata.get("help", "")


def _escape_percent(text: str) -> str:
    """``text`` safe as an argparse help string (which is %-formatted): a literal ``%`` becomes ``%%``."""
    return text.replace("%", "%%")


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def _resolve_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def add_arguments(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    """Add one option per (nested) dataclass field of ``cls`` to ``parser``."""
    hints = _resolve_types(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp, optional = _unwrap_optional(hints[f.name])
        name = f"{prefix}{f.name}"
        flag = "--" + name.replace("_", "-")
        default = _default(f)
        if dataclasses.is_dataclass(tp):
            add_arguments(parser, tp, prefix=name + ".")
            continue
        help_text = _help(f)
        if default is not dataclasses.MISSING:
            help_text = f"{help_text} (default: {default})"
        kwargs: dict[str, Any] = dict(dest=name, help=_escape_percent(help_text), default=argparse.SUPPRESS)
        if default is dataclasses.MISSING:
            kwargs["required"] = True
            kwargs.pop("default")
        if tp is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        origin = typing.get_origin(tp)
        if origin in (list, tuple):
            args = typing.get_args(tp)
            elem = args[0] if args else str
            kwargs["nargs"] = "*" if origin is list else len([a for a in args if a is not Ellipsis])
            if origin is tuple and Ellipsis in args:
                kwargs["nargs"] = "*"
            kwargs["type"] = elem
        elif origin is typing.Literal:
            choices = typing.get_args(tp)
            kwargs["choices"] = choices
            kwargs["type"] = type(choices[0])
        elif tp in (int, float, str, Path):
            kwargs["type"] = tp
        else:
            kwargs["type"] = str
        if optional:
            base = kwargs.get("type", str)
            kwargs["type"] = lambda s, base=base: None if s.lower() == "none" else base(s)
        parser.add_argument(flag, **kwargs)


def _set_path(d: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
    d[parts[-1]] = value


def from_args(cls: type[T], ns: argparse.Namespace, base: T | None = None) -> T:
    """Build ``cls`` from parsed options; options not given keep ``base``'s (or default) values."""
    overrides: dict[str, Any] = {}
    for key, value in vars(ns).items():
        _set_path(overrides, key, value)
    start = to_dict(base) if base is not None else {}
    return from_dict(cls, _merge(start, overrides), strict=False)


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def to_dict(cfg: Any) -> dict:
    """A config as a JSON-able dict (paths as strings, tuples as lists)."""
    from ccl_gs.io.artifacts import to_jsonable

    return to_jsonable(cfg)


def from_dict(cls: type[T], d: dict, strict: bool = True) -> T:
    """Rebuild a (nested) config from a dict; unknown keys raise when ``strict``."""
    hints = _resolve_types(cls)
    names = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = set(d) - set(names)
    if unknown and strict:
        raise ValueError(f"unknown config keys for {cls.__name__}: {sorted(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, f in names.items():
        if name not in d:
            continue
        tp, _ = _unwrap_optional(hints[name])
        v = d[name]
        if dataclasses.is_dataclass(tp) and isinstance(v, dict):
            v = from_dict(tp, v, strict=strict)
        elif v is not None and tp is Path:
            v = Path(v)
        elif v is not None and typing.get_origin(tp) is tuple:
            v = tuple(v)
        kwargs[name] = v
    return cls(**kwargs)


def diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys where two nested config dicts differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def changed_options(saved: dict, cfg: Any, ignore: set[str] = frozenset()) -> list[str]:
    """Dotted keys where the config dict ``saved`` beside a run differs from the config ``cfg``.

    Options added since ``saved`` was written count as their defaults (a run made before an
    option existed behaved as its default, when the default keeps the old behaviour); a dict that
    no longer parses is compared as it is. Top-level keys in ``ignore`` (options a resumed run
    may change) are left out.
    """
    try:
        saved = to_dict(from_dict(type(cfg), saved))
    except (TypeError, ValueError):
        pass
    return [k for k in diff_keys(saved, to_dict(cfg)) if k.split(".")[0] not in ignore]
