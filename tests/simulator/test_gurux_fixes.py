"""The simulator's gurux server fixes: one named function each, checked against the gurux version."""
from __future__ import annotations

import warnings

import pytest

from tb_dlms.simulator import gurux_fixes


def test_every_fix_is_named_documented_and_for_the_pinned_gurux() -> None:
    names = [fix.__name__ for fix, _ in gurux_fixes.FIXES]
    assert len(names) == len(set(names)) >= 12
    for fix, for_version in gurux_fixes.FIXES:
        assert for_version == gurux_fixes.GURUX_VERSION, fix.__name__
        assert fix.__doc__ and len(fix.__doc__) > 40, f"{fix.__name__} does not say which bug it works around"


def test_the_pinned_gurux_is_installed() -> None:
    assert gurux_fixes.installed_gurux_version() == gurux_fixes.GURUX_VERSION


def test_another_gurux_version_warns_naming_the_fix() -> None:
    fix, for_version = gurux_fixes.FIXES[0]
    with pytest.warns(gurux_fixes.GuruxVersionWarning,
                      match=rf"{fix.__name__} was written for gurux-dlms {for_version}, installed is 1\.0\.999"):
        assert gurux_fixes.check_version(fix, for_version, "1.0.999") is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert gurux_fixes.check_version(fix, for_version, for_version) is True
