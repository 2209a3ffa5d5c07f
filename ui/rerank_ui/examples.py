"""Ready-made queries with candidate passages, a click away in the page.

Each mixes passages that answer the query with plausible-looking ones that do not, so a reranker's
ordering can be judged at a glance.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    label: str
    query: str
    documents: tuple[str, ...]

    @property
    def documents_text(self) -> str:
        # The documents box holds one document per line.
        return "\n".join(" ".join(doc.split()) for doc in self.documents)


CHINESE_CSV = Example(
    label="中文 · 读取大型CSV",
    query="如何用Python高效读取大型CSV文件？",
    documents=(
        "使用 pandas.read_csv 的 chunksize 参数分块读取，每次只把一部分行载入内存，逐块处理后再汇总结果。",
        "Python 的列表推导式可以让代码更简洁，例如 [x * 2 for x in range(10)] 会生成一个新的列表。",
        "用 dask.dataframe.read_csv 读取，它把大文件切分成多个分区并行处理，适合超过内存大小的数据集。",
        "CSV 是一种用逗号分隔字段的纯文本格式，最早出现在上世纪七十年代的大型机上。",
        "polars 的 scan_csv 会惰性扫描文件，只在 collect() 时按需读取所需的列和行，速度快且内存占用低。",
        "使用标准库 csv 模块的 csv.reader 逐行迭代文件对象，不会一次性把整个文件读入内存。",
    ),
)

ENGLISH_RAG = Example(
    label="English · vector search",
    query="How does a reranker improve retrieval-augmented generation?",
    documents=(
        "A cross-encoder reranker scores each query–passage pair jointly, so it can reorder the top candidates "
        "from a fast vector search and put the passages that actually answer the question first.",
        "The Eiffel Tower was completed in 1889 and was the tallest man-made structure in the world for 41 years.",
        "Retrieval-augmented generation feeds retrieved passages into the prompt of a language model; better "
        "ordered passages mean the model sees the relevant evidence within its context budget.",
        "Bi-encoders embed queries and documents separately, which makes them fast to search but less precise "
        "than models that read the query and document together.",
        "Sourdough bread relies on a fermented starter of wild yeast and lactic acid bacteria.",
    ),
)

CODE_SEARCH = Example(
    label="Code · snippets",
    query="reverse a linked list in place",
    documents=(
        "Python: prev = None; while node: node.next, prev, node = prev, node, node.next; return prev",
        "SQL: SELECT name FROM users ORDER BY created_at DESC LIMIT 10;",
        "Java: Node prev = null; while (head != null) { Node next = head.next; head.next = prev; prev = head; "
        "head = next; } return prev;",
        "Python: def fib(n): a, b = 0, 1; for _ in range(n): a, b = b, a + b; return a",
        "JavaScript: const copy = [...arr].reverse(); // copies an array, then reverses the copy",
        "Python: items.reverse() reverses a list object in place; reversed(items) iterates it backwards",
    ),
)

EXAMPLES: tuple[Example, ...] = (CHINESE_CSV, ENGLISH_RAG, CODE_SEARCH)
