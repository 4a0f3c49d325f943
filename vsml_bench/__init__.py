"""vsml-bench: a Gymnasium benchmark for learned learning algorithms.

Importing the package registers every ``vsml_bench/...`` environment ID with Gymnasium.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vsml-bench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from vsml_bench.envs.registration import register_envs as _register_envs

_register_envs()

__all__ = ["__version__"]
