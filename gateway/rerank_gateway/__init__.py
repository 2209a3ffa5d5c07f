"""The rerank gateway: a thin async HTTP service in front of the vLLM engines of one RerankerDeployment.

It speaks vLLM's rerank/score API plus the Cohere fields real clients send, answers repeated
(query, document) pairs from a score cache, scores long documents in windows, routes each request
to the Ready engine with the fewest outstanding pairs, and holds requests while the engine scales
up from zero replicas.
"""
