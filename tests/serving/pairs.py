"""Queries and documents for the serving tests: English, Chinese and code, related and not."""

from __future__ import annotations

QUERIES: dict[str, list[str]] = {
    "What is the capital of France?": [
        "Paris is the capital and largest city of France.",
        "Berlin is the capital of Germany.",
        "The Eiffel Tower was completed in 1889.",
        "France is known for its wine and cheese.",
        "The quick brown fox jumps over the lazy dog.",
        "法国的首都是巴黎。",
        "def capital(country):\n    return {'France': 'Paris'}[country]",
    ],
    "中国的首都是哪里？": [
        "北京是中华人民共和国的首都。",
        "上海是中国最大的城市。",
        "今天天气很好，我们去公园散步吧。",
        "Beijing is the capital of China.",
        "机器学习是人工智能的一个分支。",
        "SELECT capital FROM countries WHERE name = 'China';",
        "长城是世界上最长的建筑。",
    ],
    "python function that adds two numbers": [
        "def add(a, b):\n    return a + b",
        "function add(a, b) { return a + b; }",
        "for i in range(10):\n    print(i * i)",
        "import numpy as np\nx = np.zeros((3, 3))",
        "Addition is one of the four basic operations of arithmetic.",
        "两个数相加的函数：def add(x, y): return x + y",
        "SELECT a + b AS total FROM numbers;",
    ],
}

CUSTOM_INSTRUCTION = "Given a code search query, retrieve code snippets that implement it"
