"""Frozen, self-validating configs that round-trip through dict / JSON / TOML.

A config is a frozen dataclass deriving from `Config`. Construction runs `validate()`, so an
invalid config can never exist. `from_dict` rejects unknown keys (with a "did you mean") and
wrong types, naming the key.

Polymorphic fields (e.g. "which dictionary geometry") use a *family*: a base class with a
`family` registry; each member sets `kind` and registers itself. Serialized, a member is a
dict with a `"kind"` key:

    {"kind": "spiked", "rho": 0.5}

TOML has no null, so `to_toml` drops fields whose value is None; `from_dict` then restores
their default (only fields that default to None may be None).

Types. Construction checks every field against its annotation before `validate()` runs, so Python
constructors are as strict as TOML: an `int` field takes an int (not a bool, a float or a str), a
`float` field a finite int or float (not a bool or a str; NaN and inf are refused unless the field is
declared with `dataclasses.field(metadata={"nonfinite": True})`), `str` / `bool` exactly those,
tuples their items (a list is accepted and stored as a tuple), nested configs an instance of the
annotated class, `X | None` None or an X. Numpy scalars are converted to the builtin type.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import functools
import json
import math
import numbers
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, NoReturn, TypeVar

import tomli_w

from synthsae.errors import ConfigError, fail
from synthsae.registry import Registry

C = TypeVar("C", bound="Config")


@dataclasses.dataclass(frozen=True)
class Config:
    """Base class of every synthsae config. Subclasses are `@dataclass(frozen=True)`."""

    # Set on a family's base class: the registry of its members (see module docstring).
    family: ClassVar[Registry | None] = None
    # Set on each member of a family: its registered name.
    kind: ClassVar[str | None] = None
    # How errors name this config's fields (`label.field`); None = the class name.
    error_label: ClassVar[str | None] = None

    def __post_init__(self) -> None:
        check_field_types(self)
        self.validate()

    def validate(self) -> None:
        """Raise `ValueError` (via `synthsae.errors.fail`) for invalid values. Override."""

    # ---- serialization -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A plain dict of builtins (tuples become lists, nested configs become dicts)."""
        out: dict[str, Any] = {}
        if self.family is not None and self.kind is not None:
            out["kind"] = self.kind
        for f in dataclasses.fields(self):
            out[f.name] = _to_plain(getattr(self, f.name))
        return out

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any], *, path: str | None = None) -> C:
        """Build (and validate) a config from a dict; `path` prefixes key names in errors."""
        path = path or cls.__name__
        if not isinstance(data, dict):
            fail(path, data, "a config section must be a table/dict", f"a dict of {cls.__name__} fields")
        data = dict(data)
        target: type[Config] = cls
        if cls.family is not None:
            kind = data.pop("kind", cls.kind)
            if kind is None:
                fail(f"{path}.kind", None, "this section needs a kind", f"one of {cls.family.available()}")
            try:
                target = cls.family.get(kind)
            except ValueError as err:
                raise ConfigError(f"{path}.kind: {err}") from None
        elif "kind" in data and data["kind"] == cls.kind:
            data.pop("kind")
        hints = typing.get_type_hints(target)
        names = [f.name for f in dataclasses.fields(target) if f.init]
        for key in data:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigError(
                    f"{path}: unknown key {key!r}.{hint} Valid keys: {', '.join(names)}."
                )
        kwargs = {k: _from_plain(v, hints[k], f"{path}.{k}") for k, v in data.items()}
        check_field_types(kwargs, target, path)  # here too, so that a type error names the key path
        return target(**kwargs)  # type: ignore[return-value]

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls: type[C], text: str) -> C:
        return cls.from_dict(json.loads(text))

    def to_toml(self) -> str:
        return tomli_w.dumps(_drop_none(self.to_dict()))

    @classmethod
    def from_toml(cls: type[C], text: str) -> C:
        return cls.from_dict(tomllib.loads(text))

    @classmethod
    def load(cls: type[C], path: str | Path) -> C:
        """Read a `.json` or `.toml` file."""
        path = Path(path)
        text = path.read_text()
        return cls.from_toml(text) if path.suffix == ".toml" else cls.from_json(text)

    def replace(self: C, **changes: Any) -> C:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _to_plain(value: Any) -> Any:
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    return value


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        if any(v is None for v in value):
            raise ConfigError("TOML cannot store None inside a list; use JSON for this config")
        return [_drop_none(v) for v in value]
    return value


def _from_plain(value: Any, hint: Any, path: str) -> Any:
    """Convert a plain value (from TOML, JSON or a dict) to the annotated type, or fail naming `path`."""
    return _coerce(value, hint, path, load=True)


def _describe(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


# ---- field types: converted when loading, checked at construction ---------------------------------
class _Mismatch(Exception):
    """A value that does not match its annotation: args (sub-path such as "[1]", value, why)."""


@functools.lru_cache(maxsize=None)
def _field_hints(cls: type) -> tuple[tuple[str, Any, bool, str], ...]:
    """(name, annotation, non-finite floats allowed, config label) for every init field of `cls`."""
    hints = typing.get_type_hints(cls)
    label = getattr(cls, "error_label", None) or cls.__name__
    return tuple((f.name, hints[f.name], bool(f.metadata.get("nonfinite", False)), label)
                 for f in dataclasses.fields(cls) if f.init and f.name in hints)


def check_field_types(config: "Config | dict[str, Any]", cls: type | None = None, label: str | None = None) -> None:
    """Check every field of `config` against its annotation (see the module docstring); fail naming the
    field as `label.field` (label: the class name by default). Numpy scalars and lists are stored as
    builtin ints / floats and tuples. `config` may also be a dict of constructor keywords for `cls`."""
    cls = cls or type(config)
    for name, hint, nonfinite, default_label in _field_hints(cls):
        if isinstance(config, dict):
            if name not in config:
                continue
            value = config[name]
        else:
            value = getattr(config, name)
        try:
            converted = _coerce(value, hint, "", load=False, nonfinite=nonfinite)
        except _Mismatch as err:
            sub, bad, why = err.args
            fail(f"{label or default_label}.{name}{sub}", bad, why, _expected(hint, nonfinite))
        if converted is not value:
            if isinstance(config, dict):
                config[name] = converted
            else:
                object.__setattr__(config, name, converted)


def _coerce(value: Any, hint: Any, where: str, *, load: bool, nonfinite: bool = False) -> Any:
    """Match `value` to the annotation `hint` and return what to store: the one walk over annotations
    behind both loading (`from_dict`, load=True) and the constructor's check (`check_field_types`).

    Conventions:
    - Returns `value` itself when it matches as is, else a converted value: a list becomes a tuple and
      a numpy scalar a builtin; loading also stores a float field's int as a float, an int field's whole
      float as an int and a nested config's table as that config.
    - Loading takes only the builtin types TOML and JSON produce. It fails at once (`ConfigError`),
      naming `where`, the full key path ("world.firing.exponent"), and what this annotation expects.
      It leaves NaN / inf to `check_field_types`, which `from_dict` runs afterwards.
    - Checking also takes numpy scalars and refuses NaN / inf unless `nonfinite`. It raises
      `_Mismatch(where, value, why)`, `where` being the sub-path below the field ("", "[1]", "[1][0]"):
      `check_field_types` names the field and what the whole field expects.
    - The two modes word their reasons differently; the wordings are part of the messages users see.
    """

    def reject(why: str, expected: str) -> NoReturn:
        # `expected` describes this annotation; only loading's messages use it (see above).
        if load:
            fail(where, value, why, expected)
        raise _Mismatch(where, value, why)

    def wrong_type(needed: str, expected: str) -> NoReturn:
        reject(f"expected {needed}" if load else f"a {type(value).__name__} where {needed} is needed", expected)

    if hint is Any or hint is object:
        return value
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = typing.get_args(hint)
        if value is None:
            if type(None) in members:
                return None
            reject("this field may not be None", _describe(hint))
        # Loading also sees a nested config's own errors (from_dict, validate) as a member's failure.
        failed_member = (TypeError, ValueError) if load else _Mismatch
        failures: list[Exception] = []
        for member in members:
            if member is type(None):
                continue
            try:
                return _coerce(value, member, where, load=load, nonfinite=nonfinite)
            except failed_member as err:
                failures.append(err)
        if load:
            if len(failures) == 1:  # `X | None`: X's own message says more than "none of the types"
                raise ConfigError(str(failures[0]))
            fail(where, value, "it matches none of the allowed types", _describe(hint))
        # A reason from inside a member (an item of a tuple, a NaN float) beats "wrong type".
        specific = next((err for err in failures if err.args[0] != where or "finite" in err.args[2]), None)
        raise specific or _Mismatch(where, value, f"a {type(value).__name__} matches none of the allowed types")
    if origin is typing.Literal:
        allowed = typing.get_args(hint)
        # Checking also compares types, so that True does not pass for 1.
        if not (value in allowed if load else any(value == a and type(value) is type(a) for a in allowed)):
            reject("not an allowed value" if load else "not one of the allowed values",
                   " or ".join(map(repr, allowed)))
        return value
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            reject("expected a list" if load else f"a {type(value).__name__} where a sequence is needed",
                   _describe(hint))
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        elif len(args) != len(value):
            reject(f"expected {len(args)} items" if load else f"{len(value)} items where {len(args)} are needed",
                   _describe(hint))
        items = tuple(_coerce(item, arg, f"{where}[{i}]", load=load, nonfinite=nonfinite)
                      for i, (item, arg) in enumerate(zip(value, args)))
        # The same tuple back when nothing changed, so that check_field_types stores nothing.
        return value if isinstance(value, tuple) and all(new is old for new, old in zip(items, value)) else items
    if origin in (dict, collections.abc.Mapping) or hint is dict:
        if not load and not isinstance(value, collections.abc.Mapping):
            raise _Mismatch(where, value, f"a {type(value).__name__} where a table/dict is needed")
        return value
    bools = (bool, *_np_bool())  # a bool (numpy's too) is never a number here
    if hint is bool:
        if not isinstance(value, bool if load else bools):
            wrong_type("a boolean", "true or false")
        return bool(value)
    if hint is int:
        if load and isinstance(value, float) and value.is_integer():
            return int(value)  # a file may write a whole number as 3.0
        if isinstance(value, bools) or not isinstance(value, int if load else numbers.Integral):
            wrong_type("an integer", "an int")
        return value if load or type(value) is int else int(value)
    if hint is float:
        if isinstance(value, bools) or not isinstance(value, (int, float) if load else numbers.Real):
            wrong_type("a number", "a float")
        if load:
            return float(value)  # NaN / inf: refused by the check_field_types that follows
        if not nonfinite and not math.isfinite(value):
            raise _Mismatch(where, value, "the value must be finite (NaN and inf are not allowed here)")
        return value if type(value) in (int, float) else float(value)
    if hint is str:
        if not isinstance(value, str):
            wrong_type("a string", "a str")
        return value
    if isinstance(hint, type) and not isinstance(value, hint):
        if not load:
            raise _Mismatch(where, value, f"a {type(value).__name__} where a {hint.__name__} is needed")
        if issubclass(hint, Config):
            return hint.from_dict(value, path=where)  # a table of the nested config's fields
    # Loading takes other classes as is (the constructor's check follows); annotations that are not
    # classes (callables, generics) are checked by validate(), if at all.
    return value


@functools.lru_cache(maxsize=1)
def _np_bool() -> tuple[type, ...]:
    """numpy's bool scalar type (not an int, whatever numbers.Integral says), if numpy is installed."""
    try:
        import numpy
    except ImportError:  # pragma: no cover
        return ()
    return (numpy.bool_,)


def _expected(hint: Any, nonfinite: bool) -> str:
    text = _describe_hint(hint)
    return text.replace("a float", "a finite float") if not nonfinite else text


def _describe_hint(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe_hint(a) for a in typing.get_args(hint))
    if origin is typing.Literal:
        return " or ".join(map(repr, typing.get_args(hint)))
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of items, each {_describe_hint(args[0])}"
        return f"a list of {len(args)} items ({', '.join(_describe_hint(a) for a in args)})"
    names = {int: "an int (not a bool, float or str)", float: "a float", bool: "true or false", str: "a str",
             type(None): "None"}
    if hint in names:
        return names[hint]
    if isinstance(hint, type) and issubclass(hint, Config):
        return f"a {hint.__name__}" + (f" (one of {hint.family.available()})" if hint.family is not None else "")
    return _describe(hint)
