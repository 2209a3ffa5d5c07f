"""One client request's scores: windows, cache lookup, misses to an engine, merge in order.

Pairs whose score is cached are answered from the cache; only the misses (each distinct pair
once) go to the engines (dispatch.py: one engine chosen by the pool, or pieces across several for a
large request, each sent again elsewhere if an engine fails it); their scores are cached and merged
back into the request's order. Nothing here knows about HTTP shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import chunking, metrics
from .cache import NoCache, ScoreCache, pair_keys
from .dispatch import DispatchConfig, Dispatcher
from .engine import EngineClient
from .protocol import ScoringJob
from .routing import EnginePool



FROM_CACHE = metrics.PAIRS.labels(source="cache")
FROM_ENGINE = metrics.PAIRS.labels(source="engine")


@dataclass(frozen=True)
class ModelConfig:
    served_names: tuple[str, ...] = ()  # the first is the canonical name; the others are aliases of it
    revision: str = ""
    default_instruction: str | None = None  # the deployment's effective instruction


@dataclass
class ScoreResult:
    model: str
    scores: list[float]
    prompt_tokens: int
    cached_pairs: int = 0
    engine_pairs: int = 0
    windows: list[int] = field(default_factory=list)  # windows per document (1: scored whole)


class Scorer:
    def __init__(self, pool: EnginePool, client: EngineClient, cache: ScoreCache, model: ModelConfig,
                 chunks: chunking.ChunkingConfig | None = None, dispatch: DispatchConfig | None = None):
        self.pool, self.client, self.cache, self.model, self.chunks = pool, client, cache, model, chunks
        self.dispatcher = Dispatcher(pool, dispatch or DispatchConfig())

    def served_name(self, requested: str | None) -> tuple[str | None, bool]:
        """The engine's name for ``requested`` and whether it is known (an unknown name is passed to
        the engine as is, uncached, so the engine's own 404 reaches the client)."""
        names = self.model.served_names
        if not names:
            return requested, requested is not None
        if requested is None or requested in names:
            return names[0], True
        return requested, False

    async def score(self, job: ScoringJob) -> ScoreResult:
        model, known = self.served_name(job.model)
        instruction = job.instruction or self.model.default_instruction
        # None: every document is scored whole (no chunking, or the client truncates per document).
        texts = await self._windows(job, model) if self.chunks and not job.max_tokens_per_doc else None
        units = job.pairs if texts is None else [(q, t) for (q, _), windows in zip(job.pairs, texts) for t in windows]

        scores: list[float | None]
        cached = known and not isinstance(self.cache, NoCache)
        if cached:
            keys = pair_keys(model or "", self.model.revision, instruction or "", job.max_tokens_per_doc, units)
            scores = await self.cache.get_many(keys)
            idents: list = keys
        else:
            scores, idents = [None] * len(units), units
        missing = [i for i, s in enumerate(scores) if s is None]
        # Identical pairs within one request are scored once.
        first_of: dict[object, int] = {}
        for i in missing:
            first_of.setdefault(idents[i], i)
        distinct = list(first_of.values())
        prompt_tokens = 0
        if distinct:
            asked = [units[i] for i in distinct]
            fresh, prompt_tokens = await self.dispatcher.score(len(asked), lambda url, first, end, timeout: (
                self.client.score(url, model or "", asked[first:end], instruction, job.max_tokens_per_doc, timeout)))
            by_ident = dict(zip(first_of, fresh))
            for i in missing:
                scores[i] = by_ident[idents[i]]
            if cached:
                await self.cache.put_many({keys[i]: scores[i] for i in distinct})
        FROM_CACHE.inc(len(units) - len(missing))
        FROM_ENGINE.inc(len(distinct))

        if texts is None:
            merged = scores
        else:
            merged, at = [], 0
            for windows in texts:
                part = [float(s) for s in scores[at: at + len(windows)]]
                at += len(windows)
                merged.append(part[0] if len(part) == 1 else
                              chunking.aggregate(part, self.chunks.aggregate, self.chunks.top_k))
        return ScoreResult(model=model or "", scores=merged, prompt_tokens=prompt_tokens,
                           cached_pairs=len(units) - len(missing), engine_pairs=len(distinct),
                           windows=[1] * len(job.pairs) if texts is None else [len(w) for w in texts])

    async def _windows(self, job: ScoringJob, model: str | None) -> list[list[str]]:
        assert self.chunks is not None
        if not any(chunking.may_need_chunking(d, self.chunks.window_tokens) for _, d in job.pairs):
            return [[d] for _, d in job.pairs]
        engine = await self.pool.acquire(0)
        try:
            async def tokenize(text: str) -> list[int]:
                return await self.client.tokenize(engine.url, model or "", text)

            async def detokenize(tokens: list[int]) -> str:
                return await self.client.detokenize(engine.url, model or "", tokens)

            out = [await chunking.split(d, self.chunks, tokenize, detokenize) for _, d in job.pairs]
        finally:
            self.pool.release(engine, 0)
        metrics.CHUNKED_DOCUMENTS.inc(sum(1 for w in out if len(w) > 1))
        return out
