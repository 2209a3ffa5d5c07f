"""The Gradio page: query + documents in, ranked table + score chart out.

`build_app(settings)` assembles the Blocks; `launch(demo, settings)` serves it with the deployment's
auth, queue and upload limits; `main()` is the `rerank-ui` entry point and reads the environment.
"""

from __future__ import annotations

import logging
import os
import sys

# Gradio reads this when it is imported: the page must never phone home (air-gapped clusters).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402

from rerank_ui.client import RerankClient, RerankError  # noqa: E402
from rerank_ui.config import ConfigError, Settings, load_settings  # noqa: E402
from rerank_ui.documents import (  # noqa: E402
    SUPPORTED_UPLOADS,
    DocumentError,
    parse_upload,
    split_lines,
    to_one_line,
    validate_request,
)
from rerank_ui.examples import EXAMPLES  # noqa: E402
from rerank_ui.formatting import (  # noqa: E402
    CHART_COLUMNS,
    TABLE_COLUMNS,
    empty_chart,
    empty_table,
    error_block,
    error_message,
    results_table,
    score_chart,
    status_banner,
    usage_text,
)
from rerank_ui.status import StatusMonitor  # noqa: E402

log = logging.getLogger("rerank_ui")

STATUS_REFRESH_SECONDS = 15
UPLOAD_FAILED = "Could not read the file."
UNEXPECTED_ERROR = "Something unexpected went wrong in the UI; the details are in the UI pod's log."

# The default theme uses fonts bundled with Gradio, so the page renders without any CDN.
THEME = gr.themes.Default(primary_hue="indigo", secondary_hue="slate")
CSS = """
#rerank-error:has(p) { border: 1px solid var(--error-border-color); background: var(--error-background-fill);
                       border-radius: 8px; padding: 4px 12px; }
#rerank-error p, #rerank-error strong { color: var(--error-text-color) !important; }
#status-banner { padding: 6px 12px; border-radius: 8px; background: var(--background-fill-secondary); }
"""


class RerankPage:
    """The page's event handlers; kept apart from the layout so their behaviour reads on its own."""

    def __init__(self, settings: Settings, client: RerankClient):
        self.settings = settings
        self.client = client
        self.monitor = StatusMonitor(client.health, settings.status_file)

    async def banner(self) -> str:
        return status_banner(*await self.monitor.snapshot())

    async def rerank(self, query: str, documents_text: str, instruction: str, top_n: float | None
                     ) -> tuple[str, str, pd.DataFrame, pd.DataFrame]:
        """Returns (error markdown, usage markdown, ranked table, chart data)."""
        documents = split_lines(documents_text)
        try:
            validate_request(query, documents, max_documents=self.settings.max_documents,
                             max_chars=self.settings.max_document_chars)
            if len(instruction or "") > self.settings.max_document_chars:
                raise DocumentError(
                    f"The instruction is {len(instruction):,} characters long; the limit is "
                    f"{self.settings.max_document_chars:,}."
                )
            wanted = int(top_n) if top_n else 0
            if wanted < 0:
                raise DocumentError("Top N must be 0 (all documents) or a positive number.")
            response = await self.client.rerank(
                query.strip(), documents,
                top_n=min(wanted, len(documents)) or len(documents),
                instruction=(instruction or "").strip() or None,
            )
        except DocumentError as err:
            return self._failure(str(err))
        except RerankError as err:
            log.warning("rerank of %d documents failed: %s", len(documents), err)
            return self._failure(error_message(err))
        except Exception:  # a bug must still leave the page usable, and the trace belongs in the log
            log.exception("unexpected error while reranking")
            return self._failure(UNEXPECTED_ERROR)
        log.info("reranked %d documents in %.3f s (%s tokens)", len(documents), response.latency_seconds,
                 response.total_tokens)
        return "", usage_text(response), results_table(response.results), score_chart(response.results)

    def load_upload(self, path: str | None) -> tuple[str | dict, str]:
        """Fill the documents box from an uploaded file; returns (documents text, error markdown)."""
        if not path:
            return gr.skip(), ""
        try:
            documents = parse_upload(path, max_bytes=self.settings.max_upload_bytes)
            if len(documents) > self.settings.max_documents:
                raise DocumentError(
                    f"The file holds {len(documents):,} documents; this deployment accepts at most "
                    f"{self.settings.max_documents:,} per request."
                )
        except DocumentError as err:
            gr.Warning(str(err))
            return gr.skip(), error_block(str(err), UPLOAD_FAILED)
        except Exception:
            log.exception("unexpected error while reading an upload")
            gr.Warning(UNEXPECTED_ERROR)
            return gr.skip(), error_block(UNEXPECTED_ERROR, UPLOAD_FAILED)
        gr.Info(f"Loaded {len(documents)} documents.")
        return "\n".join(to_one_line(doc) for doc in documents), ""

    def _failure(self, message: str) -> tuple[str, str, pd.DataFrame, pd.DataFrame]:
        gr.Warning(message)
        return error_block(message), "", empty_table(), empty_chart()


def build_app(settings: Settings, client: RerankClient | None = None) -> gr.Blocks:
    client = client or RerankClient(settings.endpoint, model=settings.model, timeout_seconds=settings.timeout_seconds,
                                    max_connections=settings.concurrency_limit, health_url=settings.health_url)
    page = RerankPage(settings, client)
    model = f"`{settings.model}`" if settings.model else "the engine's default model"

    with gr.Blocks(title="Reranker", analytics_enabled=False) as demo:
        gr.Markdown(f"# Reranker playground\nRank passages against a query with {model}.")
        banner = gr.Markdown(elem_id="status-banner")
        with gr.Row(equal_height=False):
            with gr.Column(scale=5):
                query = gr.Textbox(label="Query", placeholder="What are you searching for? (Enter to rerank)", lines=1,
                                   max_lines=6, elem_id="query")
                documents = gr.Textbox(
                    label=f"Documents — one per line (up to {settings.max_documents})",
                    placeholder="Paste candidate passages here, one per line…", lines=10, max_lines=30,
                    elem_id="documents",
                )
                upload = gr.File(label="…or upload .txt (one per line), .csv (a 'text' column) or .jsonl",
                                 file_types=list(SUPPORTED_UPLOADS), type="filepath", height=140)
                with gr.Row():
                    instruction = gr.Textbox(label="Instruction", value=settings.default_instruction, lines=1,
                                             max_lines=4, scale=4, elem_id="instruction",
                                             info="Tells the reranker what 'relevant' means for your task.")
                    top_n = gr.Number(label="Top N", value=0, minimum=0, maximum=settings.max_documents, precision=0,
                                      scale=1, min_width=120, info="0 = all documents")
                with gr.Row():
                    submit = gr.Button("Rerank", variant="primary", elem_id="rerank-button")
                    clear = gr.ClearButton(value="Clear")
                gr.Examples(
                    examples=[[ex.query, ex.documents_text] for ex in EXAMPLES],
                    example_labels=[ex.label for ex in EXAMPLES],
                    inputs=[query, documents],
                    cache_examples=False,
                    label="Examples",
                )
            with gr.Column(scale=6):
                error = gr.Markdown(elem_id="rerank-error")
                usage = gr.Markdown(elem_id="rerank-usage")
                table = gr.Dataframe(
                    value=empty_table(), headers=TABLE_COLUMNS, label="Ranked documents", interactive=False,
                    wrap=True, column_widths=["10%", "14%", "62%", "14%"], max_height=720, elem_id="ranked-table",
                )
                chart = gr.BarPlot(
                    value=empty_chart(), x=CHART_COLUMNS[0], y=CHART_COLUMNS[1], sort="-y",
                    label="Relevance score by rank", x_title="Rank", y_title="Score", y_lim=[0, 1],
                    tooltip=["Rank", "Score", "Document"],
                    elem_id="score-chart",
                )

        clear.add([query, documents, upload, error, usage, table, chart])
        outputs = [error, usage, table, chart]
        inputs = [query, documents, instruction, top_n]
        # One concurrency group for both triggers: at most `concurrency_limit` calls reach the engine at once
        # from this UI replica; the rest wait in the (bounded) queue.
        for trigger, api_name, visibility in ((submit.click, "rerank", "public"),
                                              (query.submit, "rerank_on_enter", "private")):
            trigger(page.rerank, inputs=inputs, outputs=outputs, api_name=api_name, api_visibility=visibility,
                    concurrency_limit=settings.concurrency_limit, concurrency_id="rerank", show_progress="minimal",
                    ).then(page.banner, outputs=banner, queue=False, api_visibility="private")
        upload.upload(page.load_upload, inputs=upload, outputs=[documents, error], api_name="load_upload")
        demo.load(page.banner, outputs=banner, queue=False, api_name="status")
        gr.Timer(STATUS_REFRESH_SECONDS).tick(page.banner, outputs=banner, queue=False, api_visibility="private")

    demo.queue(max_size=settings.queue_max_size, default_concurrency_limit=settings.concurrency_limit)
    return demo


def launch(demo: gr.Blocks, settings: Settings, **overrides):
    """Serve the page with the deployment's auth and limits; `overrides` go to `Blocks.launch`."""
    options = dict(
        server_name=settings.server_name,
        server_port=settings.server_port,
        auth=settings.auth,
        auth_message="Sign in with the credentials of this reranker deployment." if settings.auth else None,
        max_file_size=settings.max_upload_bytes,
        show_error=False,
        theme=THEME,
        css=CSS,
        footer_links=["api"],
        ssr_mode=False,
        pwa=False,
        mcp_server=False,
        enable_monitoring=False,
    )
    options.update(overrides)
    return demo.launch(**options)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
    except ConfigError as err:
        print(f"rerank-ui: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    log.info("serving the rerank UI on %s:%d for %s", settings.server_name, settings.server_port, settings.endpoint)
    launch(build_app(settings), settings)


if __name__ == "__main__":
    main()
