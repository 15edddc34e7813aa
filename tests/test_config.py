"""Config dataclasses <-> command line: help texts are safe for argparse's %-formatting."""

import argparse
from dataclasses import dataclass, field

from ccl_gs.config import add_arguments, from_args


@dataclass
class _Percent:
    decay: float = field(default=0.5, metadata={"help": "decays to 1% by the end; 100%s literal"})
    label: str = field(default="50%", metadata={"help": "a default with a percent sign"})


def test_help_with_percent_signs_formats():
    parser = argparse.ArgumentParser()
    add_arguments(parser, _Percent)
    text = parser.format_help()
    assert "decays to 1% by the end; 100%s literal" in text and "(default: 50%)" in text
    cfg = from_args(_Percent, parser.parse_args(["--decay", "0.25"]), base=_Percent())
    assert cfg.decay == 0.25 and cfg.label == "50%"


def test_changed_options_fills_options_added_since_and_ignores_resumable_ones():
    from dataclasses import dataclass, field

    from ccl_gs.config import changed_options, to_dict

    @dataclass
    class Inner:
        a: int = 1

    @dataclass
    class Cfg:
        x: int = 0
        new: bool = True
        inner: Inner = field(default_factory=Inner)
        progress: bool = True

    cfg = Cfg()
    saved = to_dict(cfg)
    del saved["new"]
    assert changed_options(saved, cfg) == []
    assert changed_options({**saved, "x": 3, "progress": False}, cfg, {"progress"}) == ["x"]
    assert changed_options({**saved, "inner": {"a": 2}}, cfg) == ["inner.a"]
    assert changed_options({**saved, "unknown": 1}, cfg) == ["new", "unknown"]  # no longer parses: compared as is
