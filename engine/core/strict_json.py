"""Strict JSON decoding for input lines and prediction files: one set of rules, one error type, one reason text.

A value is refused (`InvalidJSON`, whose `reason` starts with "invalid JSON (") when it could not be written back
out as JSON unchanged or when decoding it would cost more than its size suggests:
1. not JSON: the json module's own error, with its column;
2. NaN, Infinity or -Infinity (Python's json reads them, JSON has no such values);
3. a float too large for a double (1e999 would become inf);
4. an integer of more than `MAX_INT_DIGITS` digits (Python refuses to convert longer ones to and from text);
5. an object with a repeated key, at any depth (json would keep the last one without a word);
6. arrays and objects nested deeper than `MAX_NESTING` levels. The C decoder recurses once per level and raises
   RecursionError somewhere below the interpreter's recursion limit (where depends on the caller's stack), so a
   line nesting 100,000 arrays costs microseconds to refuse; values that decode are then measured, iteratively, so
   the limit is the same wherever the decoder is called from, and every accepted value can be encoded again;
7. a value that does not fit in memory (MemoryError).
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_NESTING = 100  # arrays and objects inside each other; a QA record needs 3 ({"answers": [{...}]})
MAX_INT_DIGITS = 4300  # Python's default int <-> str limit (sys.int_info.default_max_str_digits)


class InvalidJSON(ValueError):
    """Text that is not a JSON value under these rules. `position` is the offset of the fault in the text when the
    json module reports one (rules 1), else None."""

    def __init__(self, reason: str, position: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.position = position


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages: "a JSON {json_type(value)}"."""
    if value is None:
        return "null"
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def decode(text: str) -> Any:
    """The single JSON value that `text` holds (surrounding whitespace allowed)."""
    return _measured(_checked(_DECODER.decode, text))


def decode_document(text: str) -> Any:
    """`decode` for a whole file read as one value (the nested SQuAD format): rules 1-5 and 7, and rule 6 only as far
    as the decoder's own recursion limit. Measuring every container of a 30 MB document would double its reading
    time, and a document's values are read where they are, never written back out."""
    return _checked(_DECODER.decode, text)


def raw_decode(text: str, position: int) -> tuple[Any, int]:
    """The JSON value starting at `position` and the offset just after it (for a value inside a larger text)."""
    value, end = _checked(_DECODER.raw_decode, text, position)
    return _measured(value), end


class _Refused(ValueError):
    """Raised by the decoder's hooks; the message is the whole reason."""


def _unique_keys_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record = dict(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"the key {key!r} appears twice in one object")
            seen.add(key)
    return record


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses to inf, which JSON cannot write back
        raise _Refused(f"the number {text} is too large")
    return value


def _bounded_int(text: str) -> int:
    digits = len(text) - text.startswith("-")
    if digits > MAX_INT_DIGITS:  # checked first: int() would refuse it with a message about sys settings
        raise _Refused(f"an integer of {digits} digits; at most {MAX_INT_DIGITS} are read")
    return int(text)


def _reject_constant(name: str) -> None:
    raise _Refused(f"{name} is not a JSON value")


# One decoder for every call: json.loads with hooks would build a new one per call, a measurable share of the time.
_DECODER = json.JSONDecoder(
    object_pairs_hook=_unique_keys_object, parse_float=_finite_float, parse_int=_bounded_int,
    parse_constant=_reject_constant,
)  # fmt: skip
_TOO_DEEP = f"nested deeper than {MAX_NESTING} levels"


def _checked(decode_function: Any, *arguments: Any) -> Any:
    try:
        decoded = decode_function(*arguments)
    except json.JSONDecodeError as error:
        raise InvalidJSON(f"invalid JSON ({error.msg}, column {error.colno})", error.pos) from None
    except _Refused as error:
        raise InvalidJSON(f"invalid JSON ({error})") from None
    except RecursionError:
        raise InvalidJSON(f"invalid JSON ({_TOO_DEEP})") from None
    except MemoryError:
        raise InvalidJSON("invalid JSON (too large to decode in the memory available)") from None
    return decoded


def _measured(value: Any) -> Any:
    if isinstance(value, (list, dict)) and _nesting(value) > MAX_NESTING:
        raise InvalidJSON(f"invalid JSON ({_TOO_DEEP})")
    return value


def _nesting(value: list | dict) -> int:
    """Levels of arrays and objects, counted without recursion (a value may hold hundreds of levels)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_NESTING:
            return deepest
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (list, dict)))
    return deepest
