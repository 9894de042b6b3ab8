"""One record built from another by field name: dataclass <-> protobuf message, row -> dataclass.

`build(Target, source, **values)` is `Target(**fields)` where each field of `Target` is the
keyword given in `values`, else `source`'s attribute of the same name. Every field must come
from one or the other: a field added to `Target` that `source` does not have fails at once
(AttributeError) instead of silently taking a default. Only the fields that differ (a
renamed one, a conversion, a computed part) are written out at the call.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def build(target: type[T], source: object, /, **values: Any) -> T:
    names = field_names(target)
    unknown = values.keys() - set(names)
    if unknown:
        raise TypeError(f"{target.__name__} has no field {', '.join(sorted(unknown))}")
    fields = {name: values[name] if name in values else getattr(source, name) for name in names}
    return target(**fields)


def field_names(target: type[Any]) -> tuple[str, ...]:
    """The fields `target`'s constructor takes: a dataclass's init fields or a protobuf
    message's fields."""
    names = _FIELD_NAMES.get(target)
    if names is None:
        if dataclasses.is_dataclass(target):
            names = tuple(f.name for f in dataclasses.fields(target) if f.init)
        elif hasattr(target, "DESCRIPTOR"):
            names = tuple(f.name for f in target.DESCRIPTOR.fields)
        else:
            raise TypeError(f"{target.__name__} is neither a dataclass nor a protobuf message")
        _FIELD_NAMES[target] = names
    return names


_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}
