"""Which vLLM command-line flags the operator owns, and how vLLM's parser spells them (pure).

``spec.engine.extraArgs`` is appended to the command line the operator writes; a flag there that
the operator already sets (or that changes the prompt or the model served) would silently win
(argparse keeps the last value). vLLM's ``FlexibleArgumentParser`` accepts many spellings of one
flag, so matching the text literally is not enough:

* ``_`` for ``-`` in the name (``--tensor_parallel_size``), before any ``=`` or ``.``;
* ``--flag=value`` as well as ``--flag value``;
* dotted sub-keys of JSON-valued flags (``--hf-overrides.is_original_qwen3_reranker=false``
  replaces the whole ``--hf-overrides``);
* any unambiguous prefix of a long flag (argparse's ``allow_abbrev``: ``--tensor-parallel``), and of
  a short one (``-t`` for ``-tp``); an ambiguous prefix is an error in vLLM, so refusing every prefix
  of an owned flag refuses nothing vLLM would have run, except the exact flags in
  :data:`PREFIX_EXCEPTIONS` (other flags that happen to be prefixes of owned ones);
* a single-character short option takes its value attached (``-qfp8`` is ``--quantization fp8``).

The same rules are written twice from :data:`OWNED_LONG_FLAGS`: :func:`owned_flag` (pydantic) and
:func:`cel_rule` (the CRD, so ``kubectl apply`` refuses them). ``tests/unit/api/test_api_engine_flags.py``
checks both against vLLM's real parser: every owned flag in every spelling that parser maps to it is
refused, and every other flag of the parser is accepted.
"""

from __future__ import annotations

import re

# Owned flags are written into regexes (CEL and Python's re) unescaped: keep them to these characters.
_FLAG_CHARS = re.compile(r"^--?[a-z][-a-z]*$")
# Flags the operator writes itself, plus the ones that would change the prompt, the model or the
# weights actually served, or where the server listens (its probes and Services expect the port).
OWNED_LONG_FLAGS: tuple[str, ...] = (
    # written by the operator (serving.engine_args)
    "--model", "--host", "--port", "--served-model-name", "--tensor-parallel-size", "--runner",
    "--hf-overrides", "--dtype", "--max-model-len", "--gpu-memory-utilization", "--device-memory-utilization",
    "--max-num-seqs",
    "--max-num-batched-tokens", "--quantization", "--revision", "--download-dir", "--chat-template",
    # change the prompt the reranker is scored with
    "--chat-template-content-format", "--default-chat-template-kwargs", "--trust-request-chat-template",
    "--no-trust-request-chat-template", "--tokenizer", "--tokenizer-mode", "--tokenizer-revision",
    "--skip-tokenizer-init", "--no-skip-tokenizer-init",
    # change the model or the scores served
    "--hf-config-path", "--code-revision", "--convert", "--pooler-config", "--load-format",
    "--quantization-config",
    # change where the server listens (a Unix socket instead of the port the probes use)
    "--uds",
    # reads any of the above from a file
    "--config",
)
# Short aliases of owned flags (vLLM: -tp for --tensor-parallel-size, -q for --quantization).
OWNED_SHORT_FLAGS: tuple[str, ...] = ("-tp", "-q")
# Flags of vLLM's parser that are not owned but are a prefix of an owned one: an exact match wins in
# argparse, so these reach the flag they name. Checked against vLLM's parser by the unit tests.
PREFIX_EXCEPTIONS: tuple[str, ...] = ()


def flag_name(arg: str) -> str | None:
    """The flag ``arg`` names as vLLM's parser reads it (``--tensor-parallel-size`` for
    ``--tensor_parallel_size=4``), or None when ``arg`` is not a long flag (a value, a short flag, ``--``)."""
    if not arg.startswith("--") or arg == "--":
        return None
    key = arg.split("=", 1)[0].split(".", 1)[0]
    return "--" + key[2:].replace("_", "-")


def owned_flag(arg: str) -> str | None:
    """The owned flag ``arg`` would set (or may set: an ambiguous prefix), None when it sets none."""
    name = flag_name(arg)
    if name is not None:
        if name in PREFIX_EXCEPTIONS or len(name) <= 2:
            return None
        for flag in OWNED_LONG_FLAGS:
            if flag.startswith(name):
                return flag
        return None
    if arg.startswith("-") and not arg.startswith("--") and len(arg) > 1:
        key = arg.split("=", 1)[0]
        for flag in OWNED_SHORT_FLAGS:
            if flag.startswith(key):  # -t, -tp (prefixes of a short flag)
                return flag
            if len(flag) == 2 and arg.startswith(flag):  # -qfp8: a one-letter flag with its value attached
                return flag
    return None


assert all(_FLAG_CHARS.match(f) for f in OWNED_LONG_FLAGS + OWNED_SHORT_FLAGS + PREFIX_EXCEPTIONS)


def _trie_regex(words: list[str]) -> str:
    """An RE2 regex matching every non-empty prefix of ``words`` (``-`` also written ``_``)."""
    trie: dict = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})

    def emit(node: dict) -> str:
        branches = []
        for ch, child in sorted(node.items()):
            atom = "[-_]" if ch == "-" else ch
            branches.append(atom + (f"(?:{emit(child)})?" if child else ""))
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    return emit(trie)


def long_flag_regex() -> str:
    """Args that name an owned long flag in any spelling (the prefix before ``=`` or ``.``)."""
    names = [f[2:] for f in OWNED_LONG_FLAGS]
    return "^--" + _trie_regex(names) + "([.=].*)?$"


def short_flag_regex() -> str:
    alternatives = []
    for flag in OWNED_SHORT_FLAGS:
        if len(flag) == 2:
            alternatives.append(flag + ".*")
        else:
            alternatives.append(flag[:2] + "(?:" + flag[2:] + ")?(=.*)?")
    return "^(?:" + "|".join(alternatives) + ")$"


def exception_regex() -> str | None:
    if not PREFIX_EXCEPTIONS:
        return None
    names = "|".join(f[2:].replace("-", "[-_]") for f in PREFIX_EXCEPTIONS)
    return "^--(?:" + names + ")([.=].*)?$"


def cel_rule() -> str:
    """The CEL rule over the list ``self`` (spec.engine.extraArgs) that refuses every owned flag."""
    long_re, short_re = long_flag_regex(), short_flag_regex()
    refused = f"a.matches('{long_re}') || a.matches('{short_re}')"
    exceptions = exception_regex()
    if exceptions:
        refused = f"(a.matches('{long_re}') && !a.matches('{exceptions}')) || a.matches('{short_re}')"
    return f"self.all(a, !({refused}))"
