"""The manual as the tests read it: the README (its front page) and every page of docs/, their code blocks, and the
shell commands of their bash blocks."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"


def page(relative: str) -> str:
    """A page of docs/ by its path there (`guides/monitoring.md`)."""
    return (DOCS / relative).read_text()


def pages() -> dict[str, str]:
    """The README and every docs page, by their path from the repository's root."""
    found = {"README.md": README.read_text()}
    found |= {str(p.relative_to(REPO)): p.read_text() for p in sorted(DOCS.rglob("*.md"))}
    return found


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def commands(text: str) -> list[str]:
    """Shell commands of a page's bash blocks, with line continuations and multi-line quotes joined."""
    result, buffer = [], ""
    for line in "\n".join(blocks(text, "bash")).splitlines():
        buffer = f"{buffer}\n{line}" if buffer else line
        try:
            shlex.split(buffer, comments=True)
        except ValueError:  # an open quote: the command goes on on the next line
            continue
        if buffer.strip():
            result.append(buffer.strip())
        buffer = ""
    return result


def all_commands() -> list[tuple[str, str]]:
    """(page, command) for every shell command of the manual."""
    return [(name, command) for name, text in pages().items() for command in commands(text)]


# The Service the client snippets of the rerank API guide call, and the model names they send.
SNIPPET_URL = "http://qwen3-reranker.rerank-system.svc:8000"
SNIPPET_MODEL = "Qwen/Qwen3-Reranker-4B"
SNIPPET_SHORT_NAME = "Qwen3-Reranker-4B"


def client_snippets(base_url: str, model: str, short_name: str) -> dict[str, str]:
    """The rerank API guide's Python snippets by the client each imports first, pointed at `base_url` and the
    served model's names instead of the guide's Service and Qwen3 model."""
    snippets = {}
    for code in blocks(page("guides/rerank-api.md"), "python"):
        client = re.search(r"^(?:from|import) (\w+)", code, flags=re.M).group(1)
        code = code.replace(SNIPPET_URL, base_url)
        code = re.sub(rf"\b{re.escape(SNIPPET_MODEL)}\b|\b{re.escape(SNIPPET_SHORT_NAME)}\b",
                      lambda m: model if m.group(0) == SNIPPET_MODEL else short_name, code)
        snippets[client] = code
    return snippets
