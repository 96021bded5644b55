"""Keep gurux-dlms off stdout.

gurux reports diagnostics with bare ``print()``. Examples: "Encryption is
applied." on every ciphered APDU, invalid HDLC frames, unknown objects. On
the HIGH_ECDSA and general-signing paths it prints "Private signed key: <hex>".
Under the gateway, stdout is a service log, so the noise is a cost and the
key material is a leak.

Python looks up ``print`` in a function's module globals before builtins.
So a module-level ``print`` in each gurux module that calls it takes over
every call. The gurux code and the process-wide builtin stay untouched. The
gateway's own prints, and other libraries' prints, are left as they are.

Messages go to a logger at DEBUG. Anything that seems to name key material
is dropped whole before it reaches a handler, not redacted. gurux formats
keys in several ways (hex, an object's str()), and a redactor that missed
one would leak the key.
"""
from __future__ import annotations

import importlib
import logging
import pkgutil
import re
import sys
import threading
from types import ModuleType
from typing import Any

__all__ = ["silence_gurux", "is_sensitive"]

_PACKAGE = "gurux_dlms"
_MARK = "_tb_dlms_quiet"

# Word fragments, not whole words. gurux spells them "signing key", "signed
# key", "Signin public key", "sharedSecret", "password", "KEK".
_SENSITIVE = re.compile(r"key|secret|passw|pwd|kek|credential|private", re.IGNORECASE)

_lock = threading.Lock()
_logger = logging.getLogger("tb_dlms.gurux")
_imported_all = False


def is_sensitive(message: str) -> bool:
    return _SENSITIVE.search(message) is not None


def _gurux_print(*args: object, sep: str | None = " ", end: str | None = "\n", file: Any = None,  # noqa: ARG001
                 flush: bool = False) -> None:
    # Same signature as builtins.print, so every gurux call form still works.
    # end/file/flush are ignored: the output goes to a log record, not a stream.
    logger = _logger
    if not logger.isEnabledFor(logging.DEBUG):
        return  # the common case: cost of a disabled debug log, no formatting
    try:
        message = (sep if sep is not None else " ").join(str(a) for a in args)
    except Exception:  # pylint: disable=broad-except
        return  # an object whose __str__ fails must not break a meter read
    if is_sensitive(message):
        return
    logger.debug("%s", message)


setattr(_gurux_print, _MARK, True)


def _import_all_gurux() -> None:
    """Import every gurux submodule now, so all of them get patched.

    gurux imports several submodules lazily, inside functions (e.g.
    GXCryptoKeyParameter in decryptAesGcm, SecuritySuite in AesGcmParameter).
    A module loaded after silence_gurux() would print to stdout again.
    Importing all of them once at start-up closes that gap without an import
    hook.
    """
    global _imported_all
    if _imported_all:
        return
    pkg = importlib.import_module(_PACKAGE)
    for info in pkgutil.walk_packages(pkg.__path__, prefix=_PACKAGE + "."):
        if info.name in sys.modules:
            continue
        try:
            importlib.import_module(info.name)
        except Exception:  # pylint: disable=broad-except
            # A submodule with an optional dependency we don't use can't
            # print either.
            continue
    _imported_all = True


_PRINT_CALL = re.compile(r"^[^#\n]*\bprint\s*\(", re.MULTILINE)


def _calls_print(module: ModuleType) -> bool:
    path = getattr(module, "__file__", None)
    if not path or not path.endswith(".py"):
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return _PRINT_CALL.search(fh.read()) is not None
    except OSError:
        return False


def _patch_loaded() -> int:
    """Inject ``print`` only into gurux modules whose source calls it.

    Most gurux modules, and every package ``__init__``, have no ``__all__``.
    Without one, a global ``print`` would be exported by ``from gurux_dlms.enums
    import *`` (gurux's own examples use this style) and would silently take
    over the importing application's prints. Where we do inject and the
    module has no ``__all__``, we first pin ``__all__`` to the public names
    it already exports. Star-imports then stay exactly as they were.
    """
    patched = 0
    for name, module in list(sys.modules.items()):
        if module is None or not (name == _PACKAGE or name.startswith(_PACKAGE + ".")):
            continue
        if getattr(module.__dict__.get("print"), _MARK, False):
            continue
        if not _calls_print(module):
            continue
        if not hasattr(module, "__all__"):
            vars(module)["__all__"] = [n for n in vars(module) if not n.startswith("_")]
        vars(module)["print"] = _gurux_print
        patched += 1
    return patched


def silence_gurux(logger_name: str = "tb_dlms.gurux") -> logging.Logger:
    """Send gurux's print() output to ``logger_name`` at DEBUG. Safe to call repeatedly.

    A later call with a different name moves the output to that logger.
    Returns the logger.
    """
    global _logger
    with _lock:
        _logger = logging.getLogger(logger_name)
        _import_all_gurux()
        _patch_loaded()
        return _logger
