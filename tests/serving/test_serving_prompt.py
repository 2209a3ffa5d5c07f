"""The Qwen3-Reranker prompt and the engine's score template that reproduces it."""

from __future__ import annotations

import pytest
from transformers.utils.chat_template_utils import _compile_jinja_template

from rerank_operator.serving.prompt import DEFAULT_INSTRUCTION, effective_instruction, format_pair, score_template

# Written out by hand from the Qwen3-Reranker model card, independently of the module's constants.
OFFICIAL = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    "provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n<|im_start|>user\n"
    "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"
    "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
)


def render(template: str, query: str, document: str, **kwargs) -> str:
    """Render like vLLM's scoring path: Hugging Face's Jinja environment, query/document messages."""
    messages = [{"role": "query", "content": query}, {"role": "document", "content": document}]
    return _compile_jinja_template(template).render(messages=messages, **kwargs)


def test_format_pair_is_the_model_card_prompt():
    assert format_pair("what is vLLM?", "vLLM is an inference engine.", "Find docs") == OFFICIAL.format(
        instruction="Find docs", query="what is vLLM?", document="vLLM is an inference engine.")
    assert DEFAULT_INSTRUCTION == "Given a web search query, retrieve relevant passages that answer the query"


@pytest.mark.parametrize(("request_instruction", "deployment", "expected"), [
    (None, None, DEFAULT_INSTRUCTION),
    ("", None, DEFAULT_INSTRUCTION),
    (None, "Deployment's", "Deployment's"),
    ("", "Deployment's", "Deployment's"),
    ("Request's", "Deployment's", "Request's"),
])
def test_request_instruction_wins_then_the_deployment_then_the_model_default(request_instruction, deployment, expected):
    assert effective_instruction(request_instruction, deployment) == expected
    rendered = render(score_template(deployment), "q", "d",
                      **({} if request_instruction is None else {"instruction": request_instruction}))
    assert rendered == OFFICIAL.format(instruction=expected, query="q", document="d")


@pytest.mark.parametrize("text", [
    'quotes " and \' and \\ backslashes',
    "jinja {{ x }} {% if y %} %} }} {# c #}",
    "lines\nand\ttabs\r\n",
    "中文指令：判断文档是否回答了问题",
    "emoji beyond the BMP 😀 and U+2028 \u2028 end",
])
def test_any_deployment_instruction_survives_the_template_verbatim(text):
    assert render(score_template(text), "查询 {{q}}", "doc\n```py\nx = {}\n```") == OFFICIAL.format(
        instruction=text, query="查询 {{q}}", document="doc\n```py\nx = {}\n```")
    # Query and document text with template syntax is data, never evaluated.
    assert render(score_template(), "{{ 7*7 }}", "{% raw %}") == OFFICIAL.format(
        instruction=DEFAULT_INSTRUCTION, query="{{ 7*7 }}", document="{% raw %}")


def test_the_template_is_one_line_so_vllm_reads_it_as_a_template_not_a_path():
    # vLLM's --chat-template takes a file path, or the template itself when the value has braces or
    # newlines; a single line keeps it readable in `kubectl get sts -o yaml`.
    template = score_template("x")
    assert "\n" not in template and "{" in template
