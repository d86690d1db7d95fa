"""The command line: `python -m gateway [serve|call|echo|fake-twilio] ...`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine
from typing import Any

from gateway import __version__


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run on uvloop where it is installed, else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - platform without uvloop
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def _serve(args: argparse.Namespace) -> int:
    from gateway.config import ConfigError, load_settings
    from gateway.env import load_env_file
    from gateway.observability.logging import configure_logging

    env_file_arg = getattr(args, "env_file", None)
    try:
        # The .env file first (the environment wins over it), then every setting, validated at once.
        env_file = None if env_file_arg == "none" else load_env_file(env_file_arg or ".env",
                                                                      required=env_file_arg is not None)
        settings = load_settings()
    except ConfigError as exc:
        print(exc.describe(), file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)  # secrets are registered by `serve`
    import structlog

    from gateway.app import serve

    log = structlog.get_logger("gateway")
    if settings.offline:
        why = ("REALTIME_PROVIDER=echo" if settings.upstream_choice.startswith("echo: REALTIME_PROVIDER")
               else "no OPENAI_API_KEY, AZURE_OPENAI_ENDPOINT or REALTIME_URL set")
        log.warning("offline_echo_line", message=f"{why}: calls are answered by the built-in offline echo line, "
                    "which plays back what the caller says")
    else:
        log.info("upstream_configured", provider=settings.upstream.provider, url=settings.upstream.describe(),
                 dialect=settings.upstream.dialect, auth=settings.upstream.auth, chosen=settings.upstream_choice)
    for warning in settings.warnings:
        log.warning("configuration_warning", message=warning)
    if env_file is not None:  # names only: values may be secrets
        log.info("env_file_loaded", path=env_file.path, variables=len(env_file.loaded),
                 **({"kept_from_environment": list(env_file.kept)} if env_file.kept else {}))
    if settings.stream_token_secret_generated:
        log.info("stream_token_secret_generated", note="set STREAM_TOKEN_SECRET when running several replicas")
    from gateway.carriers import registry

    for name, carrier in registry.build(settings.carriers).items():
        if not carrier.signs_webhooks:
            log.warning("webhook_unauthenticated", carrier=name,
                        note=f"no signing secret for {name}: /voice/{name} accepts unsigned requests")
    try:
        _run(serve(settings))
    except OSError as exc:
        log.error("cannot_listen", host=settings.host, port=settings.port, error=str(exc))
        return 1
    return 0


def _echo(args: argparse.Namespace) -> int:
    from gateway.observability.logging import configure_logging
    from gateway.sim.echo import serve_forever

    configure_logging("info", "auto")
    try:
        _run(serve_forever(args.host, args.port, pace=args.pace))
    except KeyboardInterrupt:
        pass
    return 0


def _no_bench(args: argparse.Namespace) -> int:
    print("bench: the load bench is not installed with the gateway; run it from a source checkout "
          "(make bench, or python -m gateway bench)", file=sys.stderr)
    return 2


def _call(args: argparse.Namespace) -> int:
    from gateway.sim import call_command

    return call_command.run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    parser.add_argument("--version", action="version", version=f"voice-gateway {__version__}")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the gateway (the default); configured through the environment, "
                           "see .env.example")
    serve.add_argument("--env-file", metavar="PATH", default=None,
                       help="variables to load first, in docker compose's env_file syntax; those already set in "
                       "the environment win (default: ./.env when it exists; 'none': no file)")
    serve.set_defaults(func=_serve)
    call = sub.add_parser("call", help="place one simulated Twilio call against a running gateway")
    from gateway.sim import call_command

    call_command.add_arguments(call)
    call.set_defaults(func=_call)
    bench = sub.add_parser("bench", help="load the gateway and a forward-only relay with simulated calls; report "
                           "CPU, latency, barge-in and truncation")
    try:
        from gateway.bench import command as bench_command
    except ImportError:  # an installed gateway (the image): the bench ships with the source checkout only
        bench.set_defaults(func=_no_bench)
    else:
        bench_command.add_arguments(bench)
        bench.set_defaults(func=bench_command.run)
    echo = sub.add_parser("echo", help="run the offline Realtime echo line on its own")
    echo.add_argument("--host", default="127.0.0.1")
    echo.add_argument("--port", type=int, default=8765)
    echo.add_argument("--pace", type=float, default=2.0, help="answer audio speed, times real time (0: at once)")
    echo.set_defaults(func=_echo)
    fake = sub.add_parser("fake-twilio", help="run a loopback fake of Twilio's REST API whose dialled calls the "
                          "simulated caller answers: POST /calls offline, without an account")
    from gateway.sim import twilio_api

    twilio_api.add_arguments(fake)
    fake.set_defaults(func=twilio_api.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["serve", *(argv or [])])
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
