"""The wan-image-mcp command line."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__

if TYPE_CHECKING:
    from .core.journal import Tenant
    from .core.results.sinks import ResultSink


DESCRIPTION = (
    "An MCP server for Alibaba Cloud Model Studio's Wan image models. With no command it serves MCP over stdio, "
    "as an MCP host starts it; 'wan-image-mcp COMMAND --help' tells more of each command."
)


def _parser() -> argparse.ArgumentParser:
    """The commands and their options; each option has a help text, in plain words (argparse prints it as is)."""
    parser = argparse.ArgumentParser(prog="wan-image-mcp", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".")

    serve = command("serve", "run the MCP server (stdio by default)")
    serve.add_argument(
        "--transport",
        choices=("stdio", "http"),
        default="stdio",
        help="stdio for one MCP host on this machine (default), http for streamable HTTP at /mcp",
    )
    serve.add_argument("--host", default="127.0.0.1", help="http: address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="http: port (default 8000; 0 picks a free one)")
    serve.add_argument(
        "--allowed-dirs",
        nargs="*",
        default=[],
        metavar="DIR",
        help="folders input images may come from (adds to WAN_MCP_ALLOWED_DIRS)",
    )
    gallery = command("gallery", "write an HTML page of every saved result, newest first")
    gallery.add_argument("--open", action="store_true", help="open it in the default browser")
    gallery.add_argument(
        "--tenant",
        metavar="SUB",
        help="only the tasks of this OAuth subject (of WAN_MCP_AUTH_ISSUER); default: everyone's",
    )
    gallery.add_argument(
        "--folder",
        help="a demo's folder (its results/ and journal.sqlite3) instead of WAN_MCP_OUTPUT_DIR and WAN_MCP_DB",
    )
    demo = command("demo", "run Model Studio's image-editing scenarios on a local emulator, no key needed")
    demo.add_argument("--output", help="where the images go (default: a new temporary directory)")
    emulator = command("emulator", "run the local DashScope emulator on 127.0.0.1")
    emulator.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    emulator.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    emulator.add_argument("--latency", type=float, default=0.0, help="seconds a task takes (0: one step per poll)")
    emulator.add_argument(
        "--latency-spread", type=float, default=0.0, help="up to this many seconds more, a fixed share per task"
    )
    emulator.add_argument("--api-key", action="append", help="key to accept (default: sk-emulator); repeatable")
    return parser


def _remove_leftover_parts(folder: Path) -> None:
    """Temp files a killed server left in the output folder go at start (never failing the start)."""
    from .core.results.local_folder import remove_leftover_parts

    try:
        files, size = remove_leftover_parts(folder)
    except OSError as exc:
        logging.getLogger("wan_image_mcp").warning("could not look for leftover temp files in %s: %s", folder, exc)
        return
    if files:
        logging.getLogger("wan_image_mcp").info(
            "removed %d leftover temp file(s) (%.1f MB) from %s", files, size / 1e6, folder
        )


def _probe_output(folder: Path, sink: ResultSink | None) -> None:
    """Create the output folder and prove it (and the bucket, with WAN_MCP_OUTPUT_URL) writable, saying what is
    wrong in one log line. The server starts all the same: a host shows a server that exits only as
    "disconnected", while one that runs refuses each paid call with the place and the fix, for the agent to relay,
    and takes the folder as soon as it is fixed (``probe.OutputProbe``)."""
    from .core.errors import OutputNotWritable
    from .core.results.probe import probe_output

    log = logging.getLogger("wan_image_mcp")
    try:
        probe_output(folder, sink)
    except OutputNotWritable as exc:
        log.warning("at start: %s The server runs; the free tools work.", exc)
        return
    log.info("results are saved in %s", sink.where if sink is not None else folder)


def _tenant(issuer: str | None, subject: str) -> Tenant:
    """``gallery --tenant SUBJECT``'s tenant: ``subject`` of ``issuer`` (WAN_MCP_AUTH_ISSUER). Raises
    ConfigurationError without an issuer, or for a subject that names no tenant."""
    from .core.errors import ConfigurationError, InvalidTenant
    from .core.journal import Tenant

    if issuer is None:
        raise ConfigurationError("--tenant is a subject of WAN_MCP_AUTH_ISSUER's tokens, which is not set")
    try:
        return Tenant.of(issuer, subject)
    except InvalidTenant as exc:
        raise ConfigurationError(f"--tenant: {exc}") from None


def _gallery(args: argparse.Namespace) -> int:
    """``gallery``: write the page of every saved result (only one OAuth subject's with ``--tenant``), print its
    path, and open it with ``--open``."""
    from .core.errors import ConfigurationError
    from .settings import Settings
    from .wiring import gallery_page

    folder = Path(args.folder).expanduser().resolve() if args.folder else None
    if folder is not None and not (folder / "journal.sqlite3").is_file():
        print(f"wan-image-mcp: {folder} holds no journal.sqlite3: give the folder a demo printed", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
        if folder is not None:
            settings = settings.model_copy(
                update={
                    "output_dir": folder / "results",
                    "journal_path": folder / "journal.sqlite3",
                    "journal_url": None,
                }
            )
        tenant = None if args.tenant is None else _tenant(settings.auth_issuer, args.tenant)
        page = gallery_page(settings, tenant=tenant)  # from a bucket (WAN_MCP_OUTPUT_URL) or the output folder
    except ConfigurationError as exc:
        print(f"wan-image-mcp: {exc}", file=sys.stderr)
        return 2
    print(page)
    if args.open:
        import webbrowser

        webbrowser.open(page.as_uri())
    return 0


def _serving() -> None:
    """Called once everything the server holds for its life is built (the modules, the settings, the tools),
    right before it serves. Until then the cyclic garbage collector is off: importing mcp and building the
    tools' pydantic models make some 150,000 objects that live as long as the process, and with the collector on,
    its passes over them as they grow took about a quarter of the start. ``gc.freeze`` then sets them aside, so
    no later pass walks them either; the few thousand objects of start-up cycles that were garbage (well under a
    megabyte) stay with them."""
    gc.freeze()
    gc.enable()


def _serve(args: argparse.Namespace) -> int:
    """``serve``: check the settings, the journal and the bucket at start (one line and exit 2 on a problem),
    then serve over stdio, or over HTTP with ``--transport http``."""
    from .core.errors import ConfigurationError
    from .core.journal.sqlite import check_journal
    from .mcp_server.app import build_app
    from .settings import Settings
    from .wiring import check_journal_folder, result_sink

    try:
        settings = Settings.from_env()
        extra = tuple(Path(d).expanduser() for d in getattr(args, "allowed_dirs", []) if d.strip())
        settings = settings.model_copy(update={"allowed_dirs": settings.allowed_dirs + extra})
        check_journal_folder(settings)  # fail now, in one line, rather than inside the session
        if settings.journal_url is None:  # a damaged journal too (read-only: the file is left as it is)
            check_journal(settings.journal_path)
        sink = result_sink(settings, at_start=True)  # a bucket that cannot be listed: said now, in one line
        _probe_output(settings.output_dir, sink)  # one that cannot be written: said, and paid calls refused
        _remove_leftover_parts(settings.output_dir)
        if getattr(args, "transport", "stdio") == "http":
            from .mcp_server.transports.http import serve_http

            token = settings.http_token.get_secret_value() if settings.http_token else None
            hosts = settings.http_allowed_hosts
            serve_http(settings, host=args.host, port=args.port, token=token, allowed_hosts=hosts, ready=_serving)
            return 0
    except ConfigurationError as exc:
        print(f"wan-image-mcp: {exc}", file=sys.stderr)
        return 2
    server = build_app(settings, personal=True)  # stdio: one person's own machine
    _serving()
    server.run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in (None, "serve") and gc.isenabled():
        gc.disable()  # until _serving(): see there
        try:
            return _command(args)
        finally:
            gc.enable()
    return _command(args)


def _command(args: argparse.Namespace) -> int:
    from .settings import Settings

    # stdout belongs to the protocol: every log line goes to stderr.
    logging.basicConfig(
        stream=sys.stderr, level=Settings.log_level_of(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # stamina's own line per retry says only "stamina.retry_scheduled"; the client logs what it retries and why.
    logging.getLogger("stamina").setLevel(logging.ERROR)
    if args.command in (None, "serve"):
        return _serve(args)
    if args.command == "gallery":
        return _gallery(args)
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(args.output)
    if args.command == "emulator":
        from .core.errors import ConfigurationError
        from .emulator.serve import run_foreground
        from .emulator.state import EmulatorConfig

        keys = frozenset(args.api_key or ["sk-emulator"])
        config = EmulatorConfig(api_keys=keys, latency=args.latency, latency_spread=args.latency_spread)
        try:
            run_foreground(config, host=args.host, port=args.port)
        except ConfigurationError as exc:
            print(f"wan-image-mcp emulator: {exc}", file=sys.stderr)
            return 2
        return 0
    raise AssertionError(f"unhandled command {args.command}")  # pragma: no cover - argparse refuses others


if __name__ == "__main__":
    raise SystemExit(main())
