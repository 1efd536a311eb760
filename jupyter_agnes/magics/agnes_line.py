"""`%agnes`: tables, describe, rebuild, sync, whoami, connect, disconnect, status, help."""

from __future__ import annotations

import os
from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.display import display

from jupyter_agnes.magics import display as render
from jupyter_agnes.magics.context import AgnesContext
from jupyter_agnes.magics.errors import AgnesMagicError
from jupyter_agnes.magics.local import no_data_message
from jupyter_agnes.magics.options import MagicArgumentParser

HELP = """\
%agnes tables                    the catalog: name, rows, size, source, freshness
%agnes describe TABLE            columns and 5 sample rows
%agnes rebuild [SOURCE]          rebuild analytics.duckdb (all sources, or one)
%agnes sync [SOURCE]             run configured sources (extract, then rebuild), per-table progress
%agnes whoami                    who the magics run as
%agnes connect URL [--token-env VAR] [--insecure]
                                 remote mode: use the Agnes server at URL with the PAT
                                 held in the env var VAR (default AGNES_TOKEN)
%agnes disconnect                back to local mode (under JupyterHub: the Agnes service)
%agnes status                    mode, data, server, LLM settings
%agnes help                      this text

%%sql [-o VAR] [--limit N] [--format df|arrow|polars]   run SQL once, result in VAR (_sql)
%sql [options] SELECT ...                                 the one-line form
%%ask [--model M] [--format markdown|code|json|sql] [--run] [-o VAR] [--with-samples]
                                 ask the configured LLM; {var} is filled from the notebook

Local mode reads $AGNES_DATA_DIR/analytics.duckdb; under JupyterHub the magics use the
Agnes service with your server's hub token. `$name` in SQL binds notebook variables."""

COMMANDS = (
    "tables",
    "describe",
    "rebuild",
    "sync",
    "whoami",
    "connect",
    "disconnect",
    "status",
    "help",
)


def _parser() -> MagicArgumentParser:
    parser = MagicArgumentParser("%agnes")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=MagicArgumentParser)
    for name in ("tables", "whoami", "disconnect", "status", "help"):
        sub.add_parser(name)
    sub.add_parser("describe").add_argument("table")
    sub.add_parser("rebuild").add_argument("source", nargs="?")
    sub.add_parser("sync").add_argument("source", nargs="?")
    connect = sub.add_parser("connect")
    connect.add_argument("url")
    connect.add_argument("--token-env", default=None)
    connect.add_argument("--insecure", action="store_true")
    return parser


class _ProgressBar:
    """An ipywidgets bar driven by the orchestrator's progress(done, total, label)."""

    def __init__(self, description: str = "rebuild") -> None:
        self.widget: Any = None
        try:
            import ipywidgets as w
        except ImportError:  # the report still shows
            return
        self.bar = w.IntProgress(value=0, min=0, max=1, description=description)
        self.label = w.Label("starting")
        self.widget = w.HBox([self.bar, self.label])
        display(self.widget)

    def __call__(self, done: int, total: int, label: str) -> None:
        if self.widget is None:
            return
        self.bar.max = max(total, 1)
        self.bar.value = min(done, self.bar.max)
        self.label.value = str(label)[:200]

    def finish(self, ok: bool) -> None:
        if self.widget is not None:
            self.bar.bar_style = "success" if ok else "danger"
            self.bar.value = self.bar.max
            self.label.value = "done" if ok else "failed"


@magics_class
class AgnesLineMagics(Magics):
    def __init__(self, shell: Any, ctx: AgnesContext) -> None:
        super().__init__(shell)
        self.ctx = ctx
        self.parser = _parser()

    @line_magic
    def agnes(self, line: str) -> None:
        """Agnes commands; `%agnes help` lists them."""
        args = self.parser.parse_line(line)
        command = args.command or "help"
        getattr(self, f"_cmd_{command}")(args)

    # --- subcommands -------------------------------------------------------------------

    def _cmd_help(self, _: Any) -> None:
        print(HELP)

    def _cmd_tables(self, _: Any) -> None:
        display(render.catalog_bundle(self.ctx.backend().tables()), raw=True)

    def _cmd_describe(self, args: Any) -> None:
        display(render.describe_bundle(self.ctx.backend().describe(args.table)), raw=True)

    def _cmd_rebuild(self, args: Any, sync: bool = False) -> None:
        backend = self.ctx.backend()
        if backend.mode == "local" and not backend.data_dir.is_dir():
            raise AgnesMagicError(no_data_message(backend.data_dir))
        bar = _ProgressBar("sync" if sync else "rebuild")
        # Remote, both are a sync job (the server runs a configured source first).
        run = backend.sync if sync and backend.mode == "local" else backend.rebuild
        try:
            report = run(args.source, bar)
        except BaseException:
            bar.finish(False)
            raise
        bar.finish(True)
        display(render.report_bundle(report), raw=True)

    def _cmd_sync(self, args: Any) -> None:
        self._cmd_rebuild(args, sync=True)

    def _cmd_whoami(self, _: Any) -> None:
        display(render.mapping_bundle("whoami", self.ctx.backend().whoami()), raw=True)

    def _cmd_connect(self, args: Any) -> None:
        from jupyter_agnes.magics.remote import RemoteBackend, normalise_url

        url = normalise_url(args.url, args.insecure)
        var = args.token_env or self.ctx.settings.token_env
        if not var.isidentifier():
            raise AgnesMagicError(f"--token-env needs an env var name, not {var!r:.40}")
        token = os.environ.get(var, "").strip()  # a name chosen by the user, read on demand
        if not token:
            raise AgnesMagicError(
                f"Set the environment variable {var} to your Agnes personal access token "
                "(agnes_pat_…) before `%agnes connect`; the token never goes in the notebook"
            )
        backend = RemoteBackend(url, token, var, self.ctx.settings.remote_timeout)
        try:
            me = backend.whoami()
        except BaseException:
            backend.close()
            raise
        self.ctx.set_remote(backend)
        display(render.mapping_bundle(f"connected to {url}", me), raw=True)

    def _cmd_disconnect(self, _: Any) -> None:
        self.ctx.set_remote(None)
        service = self.ctx.service()
        print(f"Back to the Agnes service at {service.url}" if service else "Back to local mode")

    def _cmd_status(self, _: Any) -> None:
        backend = self.ctx.backend()
        if backend.mode == "local" and not backend.available(backend.data_dir):
            info: dict[str, Any] = {"mode": "none", "hint": no_data_message(backend.data_dir)}
        else:
            info = backend.status()
        info.update(_llm_status())
        display(render.mapping_bundle("agnes status", info), raw=True)


def _llm_status() -> dict[str, Any]:
    try:
        from jupyter_agnes.llm import LLMSettings

        settings = LLMSettings()
    except Exception as exc:  # the LLM package is optional for the data magics
        return {"llm": f"unavailable ({type(exc).__name__})"}
    return {
        "llm_provider": settings.provider,
        "llm_model": settings.model,
        "llm_api_key": "set" if settings.api_key else f"missing: set {settings.key_env_hint()}",
    }
