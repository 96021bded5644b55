#!/usr/bin/env python3
"""Check the gateway config and probe every meter before a deploy: ``python test_config.py --help``.

A thin entry point so it runs from a checkout (without installing the package) and from an
installed location alike; the logic lives in ``tb_dlms.tools.check``.
"""
import sys
from pathlib import Path

try:
    import tb_dlms  # noqa: F401
except ImportError:  # a checkout that was not pip-installed
    sys.path.insert(0, str(Path(__file__).resolve().parent / "connectors"))

from tb_dlms.tools.check import main

if __name__ == "__main__":
    sys.exit(main(prog="test_config.py"))
