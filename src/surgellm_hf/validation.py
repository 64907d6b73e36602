"""Checked settings dataclasses (`RunConfig`, `TaskSpec`) on huggingface_hub's `strict`, as transformers' configs use it.

A field's type check comes from its annotation (strict's), its range or choice check from a small named
`Requirement`, and any failure becomes one line naming the setting, the value and what it must be ("`batch_size`
must be a positive integer, got 0."), where strict's own error is a multi-line report. Validators that need more
words (a pattern, a list of unknown keys) raise their own ValueError, passed on in one line.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import operator
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

from huggingface_hub.dataclasses import strict, validated_field
from huggingface_hub.errors import StrictDataclassFieldValidationError


class Unmet(ValueError):
    """A value its field refuses; the message is what the value must be (`Requirement.words`)."""


@dataclasses.dataclass(frozen=True)
class Requirement:
    """A named validator: `holds(value)` must be true; `words` say what the value must be ('a positive integer').

    None passes: whether a field may be null is its annotation's business.
    """

    words: str
    holds: Callable[[Any], bool]

    def __call__(self, value: Any) -> None:
        if value is not None and not self.holds(value):
            raise Unmet(self.words)


def one_of(choices: Iterable[Any], words: str | None = None) -> Requirement:
    """The value must be one of `choices` ('one of [...]' unless `words` says it otherwise)."""
    allowed = tuple(choices)
    return Requirement(words or f"one of {list(allowed)}", lambda v: v in allowed)


def at_least(low: int, words: str) -> Requirement:
    """An integer setting's lower bound."""
    return Requirement(words, lambda v: v >= low)


def setting(
    *validators: Callable[[Any], None],
    default: Any = dataclasses.MISSING,
    default_factory: Any = dataclasses.MISSING,
    help: str,
    must_be: str | None = None,
    error: type[Exception] = ValueError,
    convert: Callable[[Any], Any] | None = None,
    **metadata: Any,
) -> Any:
    """A checked dataclass field: its `help` (docs, --help) and its validators (run after the annotation's type check).

    A refusal says the value must be `must_be` (default: the failing `Requirement`'s words; for a wrong type, the
    first `Requirement`'s, else words for the annotation) and raises `error` (ValueError; TypeError where an API
    promised it). `convert` reads a value before it is checked (a YAML reading: `no` read as false).
    """
    return validated_field(
        list(validators),
        default=default,
        default_factory=default_factory,
        metadata={"help": help, "must_be": must_be, "error": error, "convert": convert, **metadata},
    )


def checked(
    *, label: str = "{}", context: Callable[[Any], str] = lambda obj: "", end: str = ""
) -> Callable[[type], type]:
    """Class decorator over `@dataclass`: strict's checks from the annotations and the fields' validators, each
    failure raised as one line '<context><label> must be <words>, got <value>' + `end` (a validator's own ValueError:
    '<context><its message>').

    `label` formats a field name ('`{}`' for a run config key); `context(obj)` prefixes what the object is ("task
    'x': "). String annotations (`from __future__ import annotations`) are resolved first, so strict checks them. A
    mutable dataclass is checked on every assignment; a frozen one assigns past `__setattr__`, so its
    `__post_init__` calls `check_fields(self)`.
    """

    def wrap(cls: type) -> type:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            f.type = _runtime_type(hints[f.name])
        frozen_setattr = cls.__setattr__ if cls.__dataclass_params__.frozen else None
        cls = strict(cls)
        for f in dataclasses.fields(cls):
            validators = cls.__validators__[f.name]  # [strict's type check of the annotation, *the field's]
            validators[0] = _type_check(validators[0])
        cls.__checked_format__ = (label, context, end)
        if frozen_setattr is not None:  # assignment stays refused as frozen; `check_fields` checks
            cls.__setattr__ = frozen_setattr
            return cls
        strict_setattr = cls.__setattr__

        def __setattr__(self: Any, name: str, value: Any) -> None:
            try:
                strict_setattr(self, name, _convert(type(self), name, value))
            except StrictDataclassFieldValidationError as err:
                raise refusal(self, name, value, err.__cause__) from None
            except (TypeError, ValueError) as err:  # from `convert`
                raise refusal(self, name, value, err) from None

        cls.__setattr__ = __setattr__
        return cls

    return wrap


def check_fields(obj: Any) -> None:
    """Run every field's conversion, type check and validators, in field order (a frozen checked dataclass calls it
    from `__post_init__`); converted values are stored."""
    cls = type(obj)
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        try:
            converted = _convert(cls, f.name, value)
            for validator in cls.__validators__[f.name]:
                validator(converted)
        except (TypeError, ValueError) as err:
            raise refusal(obj, f.name, value, err) from None
        if converted is not value:
            object.__setattr__(obj, f.name, converted)


def refusal(obj: Any, name: str, value: Any, cause: BaseException | None) -> Exception:
    """The one-line error of a refused field value (see `checked`)."""
    label, context, end = type(obj).__checked_format__
    field = type(obj).__dataclass_fields__[name]
    where = context(obj)
    if isinstance(cause, Unmet):
        requirements = [v.words for v in field.metadata.get("validator", ()) if isinstance(v, Requirement)]
        words = (
            field.metadata.get("must_be")
            or str(cause)
            or next(iter(requirements), None)
            or _describe(field.type)
        )
        return field.metadata.get("error", ValueError)(
            f"{where}{label.format(name)} must be {words}, got {value!r}{end}"
        )
    return (TypeError if isinstance(cause, TypeError) else ValueError)(f"{where}{cause}")


def _convert(cls: type, name: str, value: Any) -> Any:
    field = cls.__dataclass_fields__.get(name)
    convert = field.metadata.get("convert") if field is not None else None
    return value if convert is None else convert(value)


def _type_check(check: Callable[[Any], None]) -> Callable[[Any], None]:
    """strict's type check, failing as `Unmet` so the message says what the field must be."""

    def type_check(value: Any) -> None:
        try:
            check(value)
        except TypeError:
            raise Unmet() from None

    return type_check


def _runtime_type(hint: Any) -> Any:
    """The annotation as strict checks it: a float setting also takes an int (PEP 484's numeric tower; YAML reads
    `1` as an int), and a parametrised Callable is checked as a callable."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is float:
        return int | float
    if origin is collections.abc.Callable:
        return collections.abc.Callable
    if origin in (types.UnionType, typing.Union):
        return functools.reduce(operator.or_, [_runtime_type(a) for a in args])
    if origin in (list, dict, tuple, collections.abc.Sequence):
        return origin[tuple(_runtime_type(a) for a in args)]
    return hint


_WORDS = {bool: "true or false", int: "an integer", str: "a string", type(None): "null", dict: "a mapping"}


def _describe(hint: Any) -> str:
    """Words for what an annotation accepts ('a string or null'), for a field without `must_be`."""
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        parts = [
            _describe(a) for a in typing.get_args(hint) if a is not int or float not in typing.get_args(hint)
        ]
        return " or ".join(dict.fromkeys(parts))
    origin = typing.get_origin(hint) or hint
    if origin is float:
        return "a number"
    if origin in (list, tuple, collections.abc.Sequence):
        return "a list"
    if origin is collections.abc.Callable:
        return "a callable"
    return _WORDS.get(origin, getattr(origin, "__name__", str(origin)))


def is_integer(value: Any) -> bool:
    """An int that is not a bool (YAML's true is no count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An int or a float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)
