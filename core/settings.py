"""The parts every settings model of the project is built from.

What enters: nothing at import (standard library only: the Airflow DAGs load this file by its
path, outside the project's virtualenv). What leaves: :class:`SettingsError`, the one error root
of every settings model (server, pipeline, Airflow, the online and offline store addresses): an
environment variable or flag with an invalid value, named in the message; the text parsers
(:func:`parse_bool`, :func:`parse_int`, :func:`parse_float`, :func:`parse_choice`,
:func:`parse_symbols`); the field metadata (:func:`about`, :func:`secret`); and the machinery a
frozen settings dataclass derives from that metadata: :func:`env_values` (``from_env``),
:func:`env_of` (``to_env``), :func:`add_flags` / :func:`flag_values` (the CLI and its
``--help``), :func:`replaced` (``with_overrides``) and :func:`unknown_variables`.

One behaviour for every model:

- Empty text means unset. A variable set to ``""`` (or blanks) leaves its field at the default,
  as if it were not set; :func:`parse_bool` given empty text returns its ``default``. So
  ``FEAST_REDIS_SSL=`` and an unset ``FEAST_REDIS_SSL`` mean the same everywhere.
- Booleans are ``1/true/yes/on`` or ``0/false/no/off`` (any case); anything else is an error.
- Numbers must be finite; an error names the variable (or flag) and the text it got.
- A secret (``secret(...)``) is read from its environment variable only: it has no flag (argv is
  visible to every user in ``ps``), its text is kept verbatim (not stripped), and ``--help``
  says it is environment-only without showing a default.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar


class SettingsError(ValueError):
    """An environment variable or flag has an invalid value (the message names it)."""


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def parse_bool(name: str, raw: str, default: bool = False) -> bool:
    """``1/true/yes/on`` -> True, ``0/false/no/off`` -> False (any case, blanks ignored);
    empty text -> ``default`` (empty means unset); anything else -> SettingsError."""
    lowered = raw.strip().lower()
    if not lowered:
        return default
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS:
        return False
    raise SettingsError(f"{name}={raw!r} is not true or false (1/0, yes/no, on/off)")


def parse_int(name: str, raw: str) -> int:
    """A decimal integer, or SettingsError naming ``name``."""
    try:
        return int(raw.strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None


def parse_float(name: str, raw: str) -> float:
    """A finite number, or SettingsError naming ``name``."""
    try:
        value = float(raw.strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value):
        raise SettingsError(f"{name}={raw!r} is not a finite number")
    return value


def parse_choice(
    name: str, raw: str, choices: Iterable[str], aliases: Mapping[str, str] | None = None
) -> str:
    """One of ``choices`` (case-insensitive); an alias (an old spelling) gives its value."""
    allowed = tuple(choices)
    value = raw.strip().lower()
    value = (aliases or {}).get(value, value)
    if value not in allowed:
        raise SettingsError(f"{name}={raw!r} must be one of {', '.join(allowed)}")
    return value


SYMBOL_PATTERN = re.compile(r"[A-Z0-9_]{1,16}")
"""A symbol is 1-16 characters of [A-Z0-9_] (the proto documents the same rule)."""


def parse_symbols(name: str, raw: str) -> tuple[str, ...]:
    """Comma-separated symbols, blanks dropped, each 1-16 characters of [A-Z0-9_]; an empty
    list is the model's to refuse (its message names the field)."""
    symbols = parse_list(name, raw)
    for symbol in symbols:
        if not SYMBOL_PATTERN.fullmatch(symbol):
            raise SettingsError(
                f"{name}={raw!r} has {symbol!r}; a symbol must be 1-16 characters of [A-Z0-9_]"
            )
    return symbols


def parse_list(name: str, raw: str) -> tuple[str, ...]:
    """Comma-separated items, blanks dropped."""
    del name
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _parse_str(name: str, raw: str) -> str:
    del name
    return raw.strip()


def _parse_path(name: str, raw: str) -> Path:
    del name
    return Path(raw.strip())


def parse_resolved_path(name: str, raw: str) -> Path:
    """A path made absolute against the working directory (the pipeline's folders)."""
    del name
    return Path(raw.strip()).resolve()


Parser = Callable[[str, str], Any]
"""``parser(name, raw)``: the value, or SettingsError naming ``name`` (a variable or a flag)."""

_PARSERS: dict[str, Parser] = {
    "str": _parse_str,
    "int": parse_int,
    "float": parse_float,
    "bool": parse_bool,
    "tuple[str, ...]": parse_list,
    "Path": _parse_path,
    "Path | None": _parse_path,
}
"""Each field type's parser, keyed by the annotation's text (annotations are strings)."""


def about(
    env: str | None,
    doc: str,
    *,
    flag: str | None = None,
    parse: Parser | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Field metadata: its environment variable (None: flag only), one-line doc (also the
    ``--help`` text), its flag (None: ``--field-name``), a parser other than its type's, and
    whatever else a model keeps per field (the pipeline's ``commands``)."""
    return {"env": env, "doc": doc, "flag": flag, "parse": parse, "secret": False, **extra}


def secret(env: str, doc: str) -> dict[str, Any]:
    """A secret: read from its environment variable only (no flag: argv is visible in ``ps``),
    kept verbatim, never in ``--help``'s defaults (declare the field with ``repr=False``)."""
    return {"env": env, "doc": doc, "flag": None, "parse": None, "secret": True}


def read_variable(
    metadata: Mapping[str, Any], environ: Mapping[str, str], default: Any, type_name: str = "str"
) -> Any:
    """One variable read outside a settings dataclass (the store addresses' ``from_env``), by
    the same metadata and parser as the fields that declare it: ``default`` when unset or
    empty, the text verbatim for a secret, else its parser's value (or SettingsError)."""
    env = metadata["env"]
    raw = environ.get(env)
    if raw is None or not raw.strip():
        return default
    if metadata.get("secret"):
        return raw
    parser: Parser = metadata.get("parse") or _PARSERS[type_name]
    return parser(env, raw)


def shared(metadata: Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
    """A shared variable's metadata with this model's own doc, flag or extras (its name and
    parser stay those of the one declaration)."""
    return {**metadata, **overrides}


def settings_fields(cls: type) -> tuple[dataclasses.Field[Any], ...]:
    """The fields of a settings dataclass that carry this module's metadata."""
    return tuple(f for f in dataclasses.fields(cls) if "doc" in f.metadata)


def flag_of(f: dataclasses.Field[Any]) -> str | None:
    """The field's flag (``--redis-host`` from ``redis_host`` unless named); None for a secret."""
    if f.metadata.get("secret"):
        return None
    named: str | None = f.metadata.get("flag")
    return named or "--" + f.name.replace("_", "-")


def parse_value(f: dataclasses.Field[Any], raw: str, *, source: str) -> Any:
    """One field's text value from ``source`` (its variable or flag), or SettingsError."""
    parser: Parser | None = f.metadata.get("parse") or _PARSERS.get(str(f.type))
    if parser is None:  # a new field's type: add its parser to _PARSERS
        raise TypeError(f"no parser for {f.name}: {f.type}")
    if f.metadata.get("secret"):
        return raw  # verbatim: a password may hold any character
    try:
        return parser(source, raw)
    except SettingsError:
        raise
    except ValueError:
        raise SettingsError(f"{source}={raw!r} is not a valid {f.type}") from None


def format_value(value: object) -> str:
    """A value as the text its parser reads back (``to_env``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    if isinstance(value, float):
        return repr(value)  # shortest text that parses back to the same float
    if value is None:
        return ""  # empty means unset: the default (None) again
    return str(value)


def env_values(cls: type, environ: Mapping[str, str]) -> dict[str, Any]:
    """The fields whose variable is set to non-empty text, parsed (``from_env``)."""
    values: dict[str, Any] = {}
    for f in settings_fields(cls):
        env = f.metadata["env"]
        raw = environ.get(env) if env else None
        if raw is not None and raw.strip():
            values[f.name] = parse_value(f, raw, source=env)
    return values


def env_of(settings: object) -> dict[str, str]:
    """Every field with a variable, as that variable: the inverse of ``from_env`` (``to_env``)."""
    return {
        f.metadata["env"]: format_value(getattr(settings, f.name))
        for f in settings_fields(type(settings))
        if f.metadata["env"]
    }


Settings = TypeVar("Settings")


def replaced(settings: Settings, values: Mapping[str, Any]) -> Settings:
    """A copy with some fields replaced, validated again; None values are ignored
    (a flag not given)."""
    given = {name: value for name, value in values.items() if value is not None}
    return dataclasses.replace(settings, **given)  # type: ignore[type-var]


def secret_variables(cls: type) -> tuple[str, ...]:
    """The environment-only variables of a model (named in ``--help``)."""
    return tuple(f.metadata["env"] for f in settings_fields(cls) if f.metadata.get("secret"))


def _shown_default(f: dataclasses.Field[Any]) -> str:
    default = f.default
    if isinstance(default, tuple):
        return ",".join(str(item) for item in default)
    return str(default)


def flag_help(f: dataclasses.Field[Any]) -> str:
    """``doc [env VAR; default D]``: the one help line of a field, from its metadata."""
    env = f.metadata["env"]
    where = f"env {env}; " if env else ""
    if f.type == "bool":
        return (
            f"{f.metadata['doc'].removesuffix(' (true/false)')} "
            f"[{where.replace('; ', '=true|false; ')}default {_shown_default(f).lower()}]"
        )
    return f"{f.metadata['doc']} [{where}default {_shown_default(f)}]"


def add_flags(parser: argparse.ArgumentParser, fields: Iterable[dataclasses.Field[Any]]) -> None:
    """One flag per field (a secret gets none); a boolean is an ``--x/--no-x`` pair. Every flag
    defaults to None: not given leaves the environment's value."""
    for f in fields:
        flag = flag_of(f)
        if flag is None:
            continue
        if f.type == "bool":
            parser.add_argument(
                flag,
                dest=f.name,
                default=None,
                action=argparse.BooleanOptionalAction,
                help=flag_help(f),
            )
        else:
            parser.add_argument(
                flag, dest=f.name, default=None, metavar=f.name.upper(), help=flag_help(f)
            )


def flag_values(
    args: argparse.Namespace, fields: Iterable[dataclasses.Field[Any]]
) -> dict[str, Any]:
    """The fields whose flag was given, parsed (an error names the flag)."""
    values: dict[str, Any] = {}
    for f in fields:
        flag = flag_of(f)
        raw = getattr(args, f.name, None)
        if flag is None or raw is None:
            continue
        values[f.name] = raw if isinstance(raw, bool) else parse_value(f, raw, source=flag)
    return values


def unknown_variables(
    environ: Mapping[str, str], known: Iterable[str], prefixes: tuple[str, ...]
) -> list[tuple[str, str | None]]:
    """(name, closest known name or None) of every set variable under ``prefixes`` that is not
    ``known``: a misspelt ``USDCOP_MAX_CONCURENT_RPCS`` would otherwise be ignored."""
    names = sorted(set(known))
    found = []
    for name in sorted(environ):
        if name.startswith(prefixes) and name not in names:
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.8)
            found.append((name, close[0] if close else None))
    return found


# --- Variables more than one settings model reads: declared once, here -------------------------

SYMBOLS_VARIABLE = about("USDCOP_SYMBOLS", "comma-separated symbols served", parse=parse_symbols)
"""``USDCOP_SYMBOLS``: the server's and the pipeline's symbols."""
SERVER_PORT_VARIABLE = about("USDCOP_PORT", "gRPC port; 0 picks a free one")
"""``USDCOP_PORT``: the server's gRPC port (and the one ``pipeline up`` starts it on)."""
METRICS_PORT_VARIABLE = about("USDCOP_METRICS_PORT", "Prometheus /metrics HTTP port")
"""``USDCOP_METRICS_PORT``: the server's metrics port (and the one ``pipeline up`` gives it)."""
DATA_DIR_VARIABLE = about("USDCOP_DATA_DIR", "data folder")
"""``USDCOP_DATA_DIR``: the data folder (raw/, offline/); the pipeline makes it absolute."""
FEATURE_REPO_VARIABLE = about(
    "USDCOP_FEATURE_REPO", "Feast repository folder", parse=parse_resolved_path
)
"""``USDCOP_FEATURE_REPO``: the Feast repository (the pipeline's and the DAGs')."""
