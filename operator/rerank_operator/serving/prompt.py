"""The Qwen3-Reranker prompt, and the score template that makes vLLM apply it server-side.

Qwen3-Reranker was trained on one exact prompt (see the model card): a fixed system turn, a user
turn ``<Instruct>: …\\n<Query>: …\\n<Document>: …`` and an assistant turn opened with an empty
think block. The relevance score is P("yes") from the softmax over the "no"/"yes" logits at the
last position. Any other wording still yields numbers -- just worse rankings -- so the format
lives here once, and both the engine's template and the reference scorer in the tests derive
from it.

vLLM's scoring endpoints (``/v1/rerank``, ``/v2/rerank``, ``/rerank``, ``/score``) render each
(query, document) pair through ``--chat-template`` with the messages
``[{"role": "query", ...}, {"role": "document", ...}]`` and the request's
``chat_template_kwargs`` (a request's top-level ``instruction`` is folded into
``chat_template_kwargs["instruction"]``). :func:`score_template` builds that template with the
deployment's default instruction baked in, so a request without an instruction gets the
deployment's, and a request with one overrides it.
"""

from __future__ import annotations

import json

# The instruction the Qwen3-Reranker authors use when none is given.
DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"

SYSTEM_PROMPT = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".'
)
PREFIX = f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n"
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"

# The two answer tokens whose logits make the score (order matters: softmax index 1 is "yes").
ANSWER_TOKENS = ("no", "yes")


def effective_instruction(instruction: str | None, default: str | None = None) -> str:
    """The instruction a pair is scored with: the request's, else the deployment's, else the model's.

    An empty string counts as "not given" -- clients (and the UI) send "" for an empty field.
    """
    if instruction:
        return instruction
    if default:
        return default
    return DEFAULT_INSTRUCTION


def format_pair(query: str, document: str, instruction: str | None = None, *, default: str | None = None) -> str:
    """The full prompt text for one (query, document) pair, exactly as the model expects it."""
    instruct = effective_instruction(instruction, default)
    return f"{PREFIX}<Instruct>: {instruct}\n<Query>: {query}\n<Document>: {document}{SUFFIX}"


def _jinja_string(value: str) -> str:
    """A Jinja string literal for ``value``.

    JSON's escapes (``\\"``, ``\\\\``, ``\\n``, ``\\uXXXX`` for control characters) are all ones
    Jinja's lexer undoes, and they leave no raw quote or newline that could end the literal (so no
    ``%}``/``}}`` inside it can end the tag). Non-ASCII stays as is: the lexer round-trips it, whereas
    JSON's surrogate-pair escapes for characters beyond the BMP would not survive.
    """
    return json.dumps(value, ensure_ascii=False)


def score_template(default_instruction: str | None = None) -> str:
    """The ``--chat-template`` for vLLM's scoring endpoints, rendering :func:`format_pair`.

    Written without block tags or line breaks outside the literals, so Hugging Face's Jinja
    settings (``trim_blocks``/``lstrip_blocks``) cannot change its whitespace.
    """
    default = effective_instruction(None, default_instruction)
    prefix_and_instruct = _jinja_string(PREFIX + "<Instruct>: ")
    return (
        "{%- set q = messages | selectattr('role', 'eq', 'query') | map(attribute='content') | first -%}"
        "{%- set d = messages | selectattr('role', 'eq', 'document') | map(attribute='content') | first -%}"
        # `instruction` comes from the request's chat_template_kwargs; empty or absent -> default.
        "{%- set i = instruction if (instruction is defined and instruction) else " + _jinja_string(default) + " -%}"
        "{{- " + prefix_and_instruct + " ~ i ~ " + _jinja_string("\n<Query>: ") + " ~ q ~ "
        + _jinja_string("\n<Document>: ") + " ~ d ~ " + _jinja_string(SUFFIX) + " -}}"
    )
