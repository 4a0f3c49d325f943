"""Who an entry is: safe display names, their confusable skeletons, and learner specs.

A leaderboard name identifies one learner (spec + meta-parameters + config) across the whole
board, so the rules here are strict and checked before anything else is trusted:

* **Names** are NFKC-normalised, at most :data:`MAX_NAME_LENGTH` characters of Unicode letters
  and digits plus the ASCII punctuation in :data:`NAME_PUNCTUATION`, start with a letter or
  digit, and have single inner spaces only. Control characters, zero-width characters, lone
  surrogates and markup characters (``<>&"'`/\\``) are refused.
* **Skeletons** (after Unicode TR39's idea, with a small fixed table): NFKC, Cyrillic and Greek
  homoglyphs mapped to Latin, case-folded, accents and zero-width characters dropped, ``0 -> o``
  and ``1 -> l``, and separators removed. Two names with the same skeleton are confusable:
  ``"sgd"``, ``"ЅGD"`` (Cyrillic) and ``"s-g-d"`` are one name to a reader.
* **Specs** are never paths chosen by a file: ``NAME``, ``NAME:SHIPPED`` (meta-parameters that
  ship with the package) or ``NAME:params/<sha256>.msgpack`` (a content-addressed file under
  the results folder; the name is the sha256 of its bytes). The grammar is checked before any
  file is opened.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

MAX_NAME_LENGTH = 80
#: ASCII punctuation allowed in names besides letters, digits and single spaces.
NAME_PUNCTUATION = frozenset(" -_.()+:,@#")
#: ``params/<64 hex>.msgpack``: the only parameter files a results file may name.
PARAMS_FOLDER = "params"
_PARAMS_RE = re.compile(rf"^{PARAMS_FOLDER}/([0-9a-f]{{64}})\.msgpack$")
_SPEC_RE = re.compile(
    r"^(?P<name>[a-z][a-z0-9_]{0,63})"
    rf"(?::(?P<extra>[a-z0-9][a-z0-9_]{{0,63}}|{PARAMS_FOLDER}/[0-9a-f]{{64}}\.msgpack))?$"
)

# Capitals first (their lower-case forms can look like other Latin letters: Greek Η is "H",
# η looks like "n"), then the lower-case table after case folding.
_UPPER = str.maketrans(
    {
        **dict(zip("АВЕКМНОРСТХУЅІЈԚԜ", "ABEKMHOPCTXYSIJQW", strict=True)),
        **dict(zip("ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ", "ABEZHIKMNOPTYX", strict=True)),
    }
)
_LOWER = str.maketrans(
    {
        **dict(zip("авекмнорстхуѕіјԛԝԁһӏьɡ", "abekmhopctxysijqwdhlbg", strict=True)),
        **dict(zip("αβγεικνοτυχωρμ", "abyeikvotuxwpu", strict=True)),
        "ı": "i",
        "0": "o",
        "1": "l",
    }
)


class IdentityError(ValueError):
    """A name or spec that breaks the rules above (the message says which rule)."""


def text_problem(text: str) -> str | None:
    """Why ``text`` may not appear in a results file, or None.

    Lone surrogates (not encodable as UTF-8) and non-printable characters (controls,
    zero-width and other format characters, line and paragraph separators) are refused
    everywhere: they can break a terminal, a page, or a file write.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (not valid Unicode text)"
    if not text.isprintable():
        bad = next(ch for ch in text if not ch.isprintable())
        return f"contains the non-printable character U+{ord(bad):04X}"
    return None


def name_problem(name: str) -> str | None:
    """Why ``name`` is not an acceptable entry name, or None."""
    problem = text_problem(name)
    if problem is not None:
        return problem
    normal = unicodedata.normalize("NFKC", name)
    if normal != name:
        return f"is not NFKC-normalised (use {normal!r})"
    if len(name) > MAX_NAME_LENGTH:
        return f"is longer than {MAX_NAME_LENGTH} characters"
    if not name[:1].isalnum():
        return "must start with a letter or digit"
    if name != name.rstrip() or "  " in name:
        return "has trailing or repeated spaces"
    for ch in name:
        if ch in NAME_PUNCTUATION:
            continue
        if unicodedata.category(ch)[0] not in "LN":
            return (
                f"contains {ch!r}; use letters, digits, single spaces and "
                f"{''.join(sorted(NAME_PUNCTUATION - {' '}))}"
            )
    return None


def skeleton(name: str) -> str:
    """The confusable skeleton of ``name``: equal skeletons read as the same name."""
    text = unicodedata.normalize("NFKC", name).translate(_UPPER).casefold()
    text = unicodedata.normalize("NFKD", text)
    # Drop combining marks (accents) and format characters (zero-width joiners and spaces).
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Mn", "Me", "Cf"))
    text = text.translate(_LOWER)
    return "".join(ch for ch in text if ch.isalnum())


def parse_spec(spec: str) -> tuple[str, str | None, str | None]:
    """``(learner, shipped name or None, params sha256 or None)`` of a results-file spec.

    Raises :class:`IdentityError` for anything but ``NAME``, ``NAME:SHIPPED`` or
    ``NAME:params/<sha256>.msgpack`` (no file is opened here).
    """
    match = _SPEC_RE.match(spec) if isinstance(spec, str) else None
    if match is None:
        raise IdentityError(
            "must be NAME, NAME:PRETRAINED or NAME:params/<sha256>.msgpack (a registered "
            "learner, shipped meta-parameters, or a parameter file under the results folder)"
        )
    extra = match["extra"]
    if extra is None:
        return match["name"], None, None
    params = _PARAMS_RE.match(extra)
    if params is not None:
        return match["name"], None, params[1]
    return match["name"], extra, None


def check_spec_registered(spec: str) -> None:
    """Raise :class:`IdentityError` unless the spec's learner and shipped name exist."""
    from vsml_bench.agents import learner_names, pretrained

    name, shipped, _ = parse_spec(spec)
    if name not in learner_names():
        raise IdentityError(f"names learner {name!r}, which is not registered")
    sets = pretrained.names(name) if shipped is not None else []
    if shipped is not None and shipped not in sets:
        raise IdentityError(
            f"names shipped meta-parameters {shipped!r}, which this package does not ship "
            f"for {name} (shipped: {', '.join(sets) or 'none'})"
        )


def learner_identity(learner: Any) -> tuple[str, str | None, str]:
    """What makes two entries the same learner: spec, meta-parameter sha256, config JSON."""
    import json

    return (
        learner.get("spec"),
        learner.get("meta_params_sha256"),
        json.dumps(learner.get("config"), sort_keys=True),
    )
