"""`gateway` console script.

- `gateway worker [faust worker options]`: run a worker (e.g. `--web-port 6067 --data-dir d -l info`);
- `gateway demo`: publish a demo echo agent and message, print the reply;
- `gateway contract`: print the JSON schemas of every event of the wire contract.

Accepts `--data-dir`/`--datadir` anywhere (faust wants it before the sub-command) and defaults the
web port to GATEWAY_WEB_PORT.
"""

from __future__ import annotations

import json
import sys

from gateway_app.settings import get_settings


def normalise_argv(argv: list[str]) -> list[str]:
    """Move `--data-dir X` / `--datadir X` / `--data-dir=X` in front of the sub-command for faust."""
    head: list[str] = []
    rest: list[str] = []
    it = iter(argv)
    for arg in it:
        name, eq, value = arg.partition("=")
        if name in ("--data-dir", "--datadir"):
            head += ["--datadir", value if eq else next(it, "")]
        else:
            rest.append(arg)
    return head + rest


def print_contract() -> int:
    from gateway_app.contract.events import INPUT_EVENTS, OUTPUT_EVENTS

    schemas = {topic: model.model_json_schema() for topic, model in {**INPUT_EVENTS, **OUTPUT_EVENTS}.items()}
    print(json.dumps(schemas, indent=2))
    return 0


def main(argv: list[str] | None = None) -> None:
    args = normalise_argv(list(sys.argv[1:] if argv is None else argv))
    if args[:1] == ["demo"]:
        from gateway_app.demo import main as demo_main

        sys.exit(demo_main())
    if args[:1] == ["contract"]:
        sys.exit(print_contract())
    from gateway_app.app import create_gateway

    gateway = create_gateway(get_settings())
    sys.argv = [sys.argv[0], *args]
    gateway.app.main()


if __name__ == "__main__":
    main()
