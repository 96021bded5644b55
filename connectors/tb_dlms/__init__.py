"""tb-dlms: a DLMS/COSEM connector for the ThingsBoard IoT Gateway.

The version lives in one place, ``pyproject.toml``; ``__version__`` reads it from the installed
package's metadata (a checkout used without ``pip install`` reports ``0+unknown``).
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("tb-dlms")
except PackageNotFoundError:  # pragma: no cover - a checkout on sys.path, not installed
    __version__ = "0+unknown"
