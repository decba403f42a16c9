"""`gateway` console script.

- `gateway worker [faust worker options]`: run a worker (e.g. `--web-port 6067 --data-dir d -l info`);
- `gateway demo`: publish a demo echo agent and message, print the reply;
- `gateway contract`: print the JSON schema of every event of the wire contract, each with an example;
- `gateway plugins [--json]`: list the installed provider and stage plugins (exit 1 if one is unusable).
- `gateway keys generate [--id KID]`: print a new keyring entry `kid:<base64>` for GATEWAY_KEYRING;
- `gateway keys encrypt --agent A --provider P`: read a provider key on stdin, print its `enc:` reference
  (encrypted under GATEWAY_KEYRING's first key, bound to that agent and provider);
- `gateway keys rotate [--dry-run]`: publish every stored profile whose `enc:` references use an older
  key id as its next version, re-encrypted under GATEWAY_KEYRING's first key;
- `gateway moderation eval [path] [--errors]`: print each local moderation check's precision and recall on
  a labelled set (default: the set under tests/moderation_set).
- `gateway report [--from D] [--to D] [--group-by agent|user|provider|model] [--format table|csv|json]`:
  usage recomputed from the billing topic (read from its beginning, each event id once).
- `gateway replay reprocess|shadow|reprice --from X [--to Y] [--execute] ...`, `gateway replay compare RUN`:
  re-run a range of a topic without touching the live consumer group (docs/replays.md);
- `gateway dlq replay --code C --since T [--agent A] [--execute]`: dead letters back to their topics.

`--data-dir`/`--datadir` may stand anywhere; the other options are faust's worker options.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from typing import TextIO

from gateway_app.settings import get_settings


def split_data_dir(argv: list[str]) -> tuple[str | None, list[str]]:
    """Take `--data-dir X` / `--datadir X` / `--data-dir=X` out of the arguments.

    The data dir is applied through the settings (GATEWAY_DATA_DIR), which the app is built from.
    """
    data_dir: str | None = None
    rest: list[str] = []
    it = iter(argv)
    for arg in it:
        name, eq, value = arg.partition("=")
        if name in ("--data-dir", "--datadir"):
            data_dir = value if eq else next(it, "")
        else:
            rest.append(arg)
    return data_dir, rest


def print_contract() -> int:
    from gateway_app.contract.events import INPUT_EVENTS, OUTPUT_EVENTS
    from gateway_app.contract.examples import EXAMPLES

    schemas = {topic: {**model.model_json_schema(), "examples": [EXAMPLES[topic]]}
               for topic, model in {**INPUT_EVENTS, **OUTPUT_EVENTS}.items()}
    print(json.dumps(schemas, indent=2))
    return 0


def print_plugins(as_json: bool) -> int:
    from gateway_app.plugins.discovery import discover

    plugins = discover()
    listing = plugins.as_list()
    if as_json:
        print(json.dumps(listing, indent=2))
    elif not listing:
        print("no plugins installed (entry-point groups ai_gateway.providers, ai_gateway.stages)")
    for item in [] if as_json else listing:
        kind = "provider" if item["group"].endswith("providers") else "stage"
        extra = f" {item['position']} limit={item['time_limit_seconds']}s {item['failure_mode']}" \
            if item.get("position") else ""
        status = "ok" if item["loaded"] else f"UNUSABLE: {item['error']}"
        print(f"{kind:8} {item['name']:24} {item['target']} ({item['distribution']}){extra} {status}")
    return 0 if all(item["loaded"] for item in listing) else 1


def keys_command(argv: list[str], stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """`gateway keys ...`: keyring entries and `enc:` credential references (see the module docstring)."""
    import argparse

    from gateway_app.credentials.keyring import generate_key, load_keyring
    from gateway_app.settings import Settings

    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    parser = argparse.ArgumentParser(prog="gateway keys", description="Per-agent credential keys.")
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="print a new keyring entry kid:<base64 of 32 bytes>")
    generate.add_argument("--id", dest="key_id", default=None, help="key id (default: k + UTC date-time)")
    encrypt = commands.add_parser("encrypt", help="read a key on stdin, print its enc: reference")
    encrypt.add_argument("--agent", required=True)
    encrypt.add_argument("--provider", required=True)
    rotate = commands.add_parser("rotate", help="re-encrypt every stored enc: reference under the newest key")
    rotate.add_argument("--dry-run", action="store_true", help="print which agents would get a new version")
    args = parser.parse_args(argv)
    try:
        if args.command == "rotate":
            from gateway_app.credentials.kafka_rotation import rotate_stored_profiles

            return asyncio.run(rotate_stored_profiles(Settings(), dry_run=args.dry_run, out=stdout))
        if args.command == "generate":
            print(generate_key(args.key_id), file=stdout)
            return 0
        keyring = load_keyring(Settings())
        if keyring is None:
            print("gateway keys encrypt: GATEWAY_KEYRING is not set", file=sys.stderr)
            return 2
        if stdin.isatty():
            import getpass

            key = getpass.getpass("key (not echoed): ")
        else:
            key = stdin.read()
        key = key.removesuffix("\n").removesuffix("\r")
        if not key:
            print("gateway keys encrypt: no key on stdin", file=sys.stderr)
            return 2
        print(keyring.encrypt(args.agent, args.provider, key), file=stdout)
        return 0
    except ValueError as exc:
        print(f"gateway keys {args.command}: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> None:
    data_dir, args = split_data_dir(list(sys.argv[1:] if argv is None else argv))
    if data_dir:
        os.environ["GATEWAY_DATA_DIR"] = data_dir
    if args[:1] == ["demo"]:
        from gateway_app.demo import main as demo_main

        sys.exit(demo_main())
    if args[:1] == ["contract"]:
        sys.exit(print_contract())
    if args[:1] == ["plugins"]:
        sys.exit(print_plugins("--json" in args[1:]))
    if args[:1] == ["keys"]:
        sys.exit(keys_command(args[1:]))
    if args[:1] == ["moderation"]:
        from gateway_app.moderation.evaluate import main as moderation_main

        sys.exit(moderation_main(args[1:]))
    if args[:1] == ["report"]:
        from gateway_app.usage_report import main as report_main

        sys.exit(report_main(args[1:]))
    if args[:1] in (["replay"], ["dlq"]):
        from gateway_app.replay.command import main as replay_main

        sys.exit(replay_main(args))
    from gateway_app import log_redaction
    from gateway_app.app import create_gateway, freeze_long_lived
    from gateway_app.observability import tracing

    log_redaction.install()  # before anything logs: no key reaches a log line
    tracing.setup()  # as the standard OTEL_* variables say: off (and free) unless they turn it on

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    gateway = create_gateway(settings)
    quiet_per_request_logs()
    freeze_long_lived()  # everything imported so far (warm-up freezes what it loads, later)
    sys.argv = [sys.argv[0], *args]
    gateway.app.main()


def quiet_per_request_logs() -> None:
    """The provider SDKs' HTTP client logs every request at INFO: one line per call is noise (and CPU)
    at gateway rates. Failures still show through the gateway's own `provider.*` lines."""
    logging.getLogger("httpx").setLevel(logging.WARNING)


if __name__ == "__main__":
    main()
