"""Imports run one way: data ← envs ← agents ← agents.meta ← leaderboard ← experiments ← the CLI.

Every module of the installed packages is parsed (``ast``, nothing is imported) and each of its
imports is given the layer of the module it names. A module may import its own layer and the
layers below it, never one above: the environments know nothing of who acts in them, a learner
knows nothing of meta-training or the leaderboard, and no library module reaches into a
command-line front end. The core (``vsml_bench.protocol``, ``errors``, ``deprecation``, ``io``,
``provenance``, ``xla`` and ``data``) is the bottom layer: it imports none of ``envs``, ``agents`` or
``leaderboard``. A new module must be given a layer here (test_every_module_has_a_layer).

Counted as imports: ``import``/``from ... import`` statements anywhere in a module (function
bodies and ``TYPE_CHECKING`` blocks included: a lazy import is still a dependency) and string
constants that name a module, such as the ``"pkg.module"`` or ``"pkg.module:attr"`` targets of
lazy export tables and registries. A bare ``import vsml_bench`` is neutral (every first-party
import loads the parent package first); ``from vsml_bench import NAME`` counts as importing the
submodule ``NAME`` when there is one, and otherwise as importing the public API at the top,
except ``__version__``. A module's ``if __name__ == "__main__":`` block is skipped: it runs
only as a program, so it may call the CLI.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Bottom to top. A module's layer is that of the longest prefix it starts with.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "core",
        (
            "vsml_bench.protocol",
            "vsml_bench.errors",
            "vsml_bench.deprecation",
            "vsml_bench.io",
            "vsml_bench.provenance",
            "vsml_bench.xla",
            "vsml_bench.data",
        ),
    ),
    ("envs", ("vsml_bench.envs",)),
    ("agents", ("vsml_bench.agents",)),
    ("meta", ("vsml_bench.agents.meta",)),
    ("leaderboard", ("vsml_bench.leaderboard",)),
    ("experiments", ("vsml_bench.experiments",)),
    # The public API (``vsml_bench`` itself) and the command-line front ends.
    ("app", ("vsml_bench", "vsml_bench.cli", "vsml_bench.__main__", "vsml_bench.demo")),
)
RANK = {name: rank for rank, (name, _) in enumerate(LAYERS)}

_MODULE_STRING = re.compile(r"vsml_bench(?:\.\w+)+(?::[\w.]+)?")


def layer_of(module: str) -> str | None:
    """The layer ``module`` belongs to, or None when no prefix covers it."""
    best, best_len = None, -1
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            covers = module == prefix or (
                module.startswith(prefix + ".") and prefix != "vsml_bench"
            )
            if covers and len(prefix) > best_len:
                best, best_len = name, len(prefix)
    return best


def is_cli(module: str) -> bool:
    """A command-line front end: ``vsml_bench.cli``, a package's ``cli`` or ``cli_*`` module."""
    last = module.rsplit(".", 1)[-1]
    return last == "cli" or last.startswith("cli_") or layer_of(module) == "app"


def discover_modules(root: Path = ROOT) -> dict[str, Path]:
    """Module name -> source file, for every package pyproject.toml installs."""
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_dirs: dict[str, str] = setuptools["package-dir"]
    modules: dict[str, Path] = {}
    for package, folder in package_dirs.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = list(path.relative_to(root / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join([package, *parts])
            # A folder mapped to its own package (vsml_bench.envs -> envs/) wins over a
            # same-named folder that may sit below vsml_bench/.
            if len(parts) and f"{package}.{parts[0]}" in package_dirs:
                continue
            modules[name] = path
    return modules


def _resolve_from(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_main_block(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
        and any(
            isinstance(c, ast.Constant) and c.value == "__main__" for c in node.test.comparators
        )
    )


def imports_of(
    module: str, source: str, known: set[str], is_package: bool = False
) -> list[tuple[int, str]]:
    """``(line, imported module)`` for each first-party import of ``module``'s ``source``."""
    found: list[tuple[int, str]] = []
    tree = ast.parse(source)
    # ``if __name__ == "__main__":`` runs only as a program (``python -m``), i.e. at the top of
    # the stack: a script block may hand over to the CLI.
    tree.body = [node for node in tree.body if not _is_main_block(node)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            # A bare ``import vsml_bench`` (e.g. to register the env IDs) loads no more than any
            # first-party import does: the parent package always comes first.
            found += [(node.lineno, a.name) for a in node.names if a.name != "vsml_bench"]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve_from(module, is_package, node)
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                if submodule in known:
                    found.append((node.lineno, submodule))
                elif not (target == "vsml_bench" and alias.name == "__version__"):
                    found.append((node.lineno, target))
        elif isinstance(node, ast.Constant) and _MODULE_STRING.fullmatch(str(node.value)):
            name = str(node.value).split(":")[0]
            # "pkg.module.attr" names the longest known module it starts with.
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != "vsml_bench":  # e.g. the entry-point group name
                found.append((node.lineno, name))
    return [(line, name) for line, name in found if name.split(".")[0] == "vsml_bench"]


def back_edges(sources: dict[str, tuple[str, bool]]) -> list[str]:
    """One line per import that runs up the layering or into a CLI from outside the CLIs.

    ``sources`` maps a module name to ``(source text, is_package)``.
    """
    known = set(sources)
    problems = []
    for module, (source, is_package) in sorted(sources.items()):
        here = layer_of(module)
        for line, target in imports_of(module, source, known, is_package):
            there = layer_of(target)
            if here is None or there is None:
                continue  # reported by test_every_module_has_a_layer
            if RANK[there] > RANK[here]:
                problems.append(f"{module}:{line} ({here}) imports {target} ({there})")
            elif is_cli(target) and not is_cli(module):
                problems.append(f"{module}:{line} imports the command-line module {target}")
    return problems


def _read_all() -> dict[str, tuple[str, bool]]:
    return {
        name: (path.read_text(encoding="utf-8"), path.name == "__init__.py")
        for name, path in discover_modules().items()
    }


def test_every_module_has_a_layer():
    modules = discover_modules()
    assert "vsml_bench.envs.core" in modules and "vsml_bench.protocol" in modules
    assert [m for m in modules if layer_of(m) is None] == []


def test_imports_run_one_way():
    problems = back_edges(_read_all())
    assert not problems, "imports that run back up the layering:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("vsml_bench.envs.core", "from vsml_bench.agents import make\n", "(envs) imports"),
        ("vsml_bench.envs.core", "def f():\n    from vsml_bench import agents\n", "(envs)"),
        ("vsml_bench.data.store", "from ..envs import core\n", "(core) imports"),
        ("vsml_bench.protocol", "X = 'vsml_bench.leaderboard.harness:main'\n", "(core)"),
        ("vsml_bench.agents.vsml", "from vsml_bench.agents.meta import loop\n", "(agents)"),
        ("vsml_bench.agents.meta.loop", "import vsml_bench.leaderboard.harness\n", "(meta)"),
        ("vsml_bench.leaderboard.harness", "from vsml_bench.cli import main\n", "(leaderboard)"),
        ("vsml_bench.agents.registry", "from vsml_bench.agents.cli import x\n", "command-line"),
        ("vsml_bench.envs.factory", "from vsml_bench import make_env\n", "(envs) imports"),
        ("vsml_bench.agents.meta.export", "from vsml_bench.cli import main\n", "(meta) imports"),
    ],
)
def test_a_planted_back_edge_is_caught(module, source, expected):
    sources = _read_all()
    is_package = sources[module][1]
    sources[module] = (source, is_package)
    problems = back_edges(sources)
    assert any(p.startswith(module) and expected in p for p in problems), problems


def test_downward_imports_pass():
    sources = _read_all()
    sources["vsml_bench.leaderboard.harness"] = (
        "from vsml_bench.agents.meta import loop\nfrom vsml_bench import __version__, envs\n",
        False,
    )
    sources["vsml_bench.envs.core"] = ("from vsml_bench.protocol import TaskSpec\n", False)
    sources["vsml_bench.agents.meta.export"] = (
        'if __name__ == "__main__":\n    from vsml_bench.cli import main\n',
        False,
    )
    assert back_edges(sources) == []
