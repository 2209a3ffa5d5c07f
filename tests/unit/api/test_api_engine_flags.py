"""The owned-flag check of spec.engine.extraArgs against vLLM's real command-line parser.

vLLM's ``FlexibleArgumentParser`` with the OpenAI server's arguments (``make_arg_parser``) is built
from the pinned vllm in the test environment, and every spelling is parsed by it: a spelling the
check refuses must reach an owned flag in vLLM (or make vLLM refuse the command line), and every
flag vLLM has that the operator does not own must pass the check. Both the pydantic check
(``owned_flag``) and the CRD's CEL regexes (run here with Python's ``re``; they use only the RE2
subset both share) are held to it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from pathlib import Path
from typing import Any

import pytest

from rerank_operator.api import engine_flags as F

from tests.unit.api.admission_cases import OWNED_FLAG_VALUES, owned_flag_spellings

vllm_cli = pytest.importorskip("vllm.entrypoints.launchers.cli_args")
vllm_argparse = pytest.importorskip("vllm.utils.argparse_utils")

OWNED = F.OWNED_LONG_FLAGS + F.OWNED_SHORT_FLAGS


@pytest.fixture(scope="module")
def parser() -> argparse.ArgumentParser:
    return vllm_cli.make_arg_parser(vllm_argparse.FlexibleArgumentParser())


@pytest.fixture(scope="module")
def owned_dests(parser) -> set[str]:
    return {a.dest for a in parser._actions if set(a.option_strings) & set(OWNED)}


@pytest.fixture(scope="module")
def defaults(parser) -> argparse.Namespace:
    return parser.parse_args([])


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("vllm") / "config.yaml"
    path.write_text("port: 9001\n")
    return path


# Owned switches turned on, so that their --no- forms show (they would set the default again).
SWITCHES_ON = ["--trust-request-chat-template", "--skip-tokenizer-init"]


def _parse(parser, argv: list[str]) -> Any:
    with contextlib.redirect_stderr(io.StringIO()):
        return parser.parse_args(argv)


def reached(parser, defaults, owned_dests, argv: list[str]) -> str | None:
    """What vLLM makes of ``argv``: the owned option it sets ("dest"), "refused" (vLLM exits with a
    usage error), or None (it parses and sets no owned option)."""
    try:
        alone = _parse(parser, argv)
        after_switches = _parse(parser, SWITCHES_ON + argv)
    except (SystemExit, ValueError, AssertionError):
        return "refused"
    switches = _parse(parser, SWITCHES_ON)
    changed = [d for d in owned_dests if getattr(alone, d, None) != getattr(defaults, d, None)]
    changed += [d for d in owned_dests if getattr(after_switches, d, None) != getattr(switches, d, None)]
    return changed[0] if changed else None


def cel_refuses(arg: str) -> bool:
    long_re, short_re, exc = F.long_flag_regex(), F.short_flag_regex(), F.exception_regex()
    if re.search(short_re, arg):
        return True
    return bool(re.search(long_re, arg)) and not (exc and re.search(exc, arg))


def _argv(argv: list[str], config_file: Path) -> list[str]:
    return [str(config_file) if a == OWNED_FLAG_VALUES["--config"] else a for a in argv]


def test_every_owned_flag_exists_in_vllm_with_every_alias_owned(parser):
    options = {o for a in parser._actions for o in a.option_strings}
    assert not [f for f in OWNED if f not in options], "vLLM renamed or dropped an owned flag"
    for action in parser._actions:
        if set(action.option_strings) & set(OWNED):
            assert set(action.option_strings) <= set(OWNED), f"an alias of an owned flag is not owned: {action.option_strings}"


def test_prefix_exceptions_are_exactly_vllms_flags_that_prefix_an_owned_one(parser):
    options = {o for a in parser._actions for o in a.option_strings if o.startswith("--")}
    expected = {o for o in options - set(OWNED) if any(f.startswith(o) for f in F.OWNED_LONG_FLAGS)}
    assert set(F.PREFIX_EXCEPTIONS) == expected


@pytest.mark.parametrize("case_id,flag,argv", owned_flag_spellings(), ids=[c[0] for c in owned_flag_spellings()])
def test_each_generated_spelling_reaches_the_owned_flag_in_vllm_and_is_refused(
        case_id, flag, argv, parser, defaults, owned_dests, config_file):
    outcome = reached(parser, defaults, owned_dests, _argv(argv, config_file))
    assert outcome is not None, f"{argv} sets nothing the operator owns in vLLM: not a real spelling"
    assert F.owned_flag(argv[0]) is not None
    assert cel_refuses(argv[0])


def test_most_generated_spellings_set_the_flag_rather_than_fail(parser, defaults, owned_dests, config_file):
    outcomes = [reached(parser, defaults, owned_dests, _argv(argv, config_file)) for _, _, argv in owned_flag_spellings()]
    assert sum(o not in (None, "refused") for o in outcomes) > 0.8 * len(outcomes)


def _every_prefix_spelling(parser) -> list[tuple[str, list[str]]]:
    """Every abbreviation of every owned long flag, with and without underscores and '=' (the full
    set, beyond the one-per-kind admission cases)."""
    out = []
    for flag in F.OWNED_LONG_FLAGS:
        value = OWNED_FLAG_VALUES.get(flag, "x")
        for end in range(3, len(flag) + 1):
            prefix = flag[:end]
            for spelled in {prefix, "--" + prefix[2:].replace("-", "_")}:
                out.append((flag, [spelled] + ([] if value is None else [value])))
                if value is not None:
                    out.append((flag, [f"{spelled}={value}"]))
    return out


def test_every_abbreviation_that_vllm_resolves_to_an_owned_flag_is_refused(parser, defaults, owned_dests, config_file):
    resolved = 0
    for flag, argv in _every_prefix_spelling(parser):
        outcome = reached(parser, defaults, owned_dests, _argv(argv, config_file))
        if outcome is None:
            continue  # an exact non-owned flag (PREFIX_EXCEPTIONS) or a prefix that means something else
        resolved += outcome != "refused"
        assert F.owned_flag(argv[0]) is not None, (argv, outcome)
        assert cel_refuses(argv[0]), (argv, outcome)
    assert resolved > 500


def test_every_dotted_sub_key_of_an_owned_flag_is_refused(parser, defaults, owned_dests):
    for flag in F.OWNED_LONG_FLAGS:
        if flag.startswith("--no-") or OWNED_FLAG_VALUES.get(flag, "x") is None or flag == "--config":
            continue
        for argv in ([f"{flag}.key=1"], [f"{flag}.key", "1"], ["--" + flag[2:].replace("-", "_") + ".a.b=2"],
                     [flag[:-1] + ".key=1"]):
            outcome = reached(parser, defaults, owned_dests, argv)
            assert outcome is not None, argv
            assert F.owned_flag(argv[0]) is not None and cel_refuses(argv[0]), argv


def test_every_other_vllm_flag_passes_in_every_spelling(parser):
    for action in parser._actions:
        for option in action.option_strings:
            if option in OWNED or option in ("-h", "--help"):
                continue
            spellings = [option, f"{option}=1"]
            if option.startswith("--"):
                spellings += ["--" + option[2:].replace("-", "_"), f"{option}.key=1"]
            for spelled in spellings:
                assert F.owned_flag(spelled) is None, spelled
                assert not cel_refuses(spelled), spelled


@pytest.mark.parametrize("arg", ["4", "half", "--", "-", "-O3", "--enable-prefix-caching", "--max-logprobs=0",
                                 "--portx", "--models", "--tensor-parallel-size-x", "--chat-template-kwargs"])
def test_values_and_non_flags_pass(arg: str) -> None:
    assert F.owned_flag(arg) is None
    assert not cel_refuses(arg)


def test_message_names_the_index_and_the_flag() -> None:
    from pydantic import ValidationError

    from rerank_operator.api.v1alpha1 import describe_error, parse_spec

    with pytest.raises(ValidationError) as info:
        parse_spec({"engine": {"extraArgs": ["--enable-prefix-caching", "--tensor_parallel=4"]}})
    text = describe_error(info.value)
    assert "spec.engine.extraArgs" in text and "extraArgs[1]" in text and "--tensor-parallel-size" in text, text
