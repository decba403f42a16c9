"""The command lines: `gateway replay reprocess|shadow|reprice|compare ...` and `gateway dlq replay ...`
(docs/replays.md describes them). Parsing and dispatch only; each mode is its own module."""

from __future__ import annotations

import argparse
import asyncio
import sys
from decimal import Decimal, InvalidOperation
from typing import TextIO

from aiokafka.errors import KafkaError

from gateway_app.replay.ranges import TimeBound, parse_bound, parse_time
from gateway_app.replay.run import Job
from gateway_app.settings import Settings


def decimal_usd(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount in USD") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError("the cap is an amount of 0 or more")
    return value


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError("a whole number of 1 or more")
    return int(text)


def range_options(parser: argparse.ArgumentParser, topic_default: str) -> None:
    parser.add_argument("--from", dest="start_text", metavar="FROM", required=True,
                        help="first record: ISO 8601 time, an offset for every partition, or P:N,P:N")
    parser.add_argument("--to", dest="stop_text", metavar="TO", default=None, help="first record NOT read (default: the end "
                        "when the run started); same forms as --from")
    parser.add_argument("--agent", default=None, help="only this agent's records")
    parser.add_argument("--topic", default=None, help=f"the topic to read (default: {topic_default})")
    parser.add_argument("--execute", action="store_true", help="do it (default: a dry run that only reports)")
    parser.add_argument("--run", default=None, help="the run's name; an existing run resumes (default: a new id)")
    parser.add_argument("--max-cost-usd", type=decimal_usd, default=None,
                        help="stop before provider spend would pass this amount (whole run)")


def replay_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway replay", description="Re-run a range of a topic.")
    modes = parser.add_subparsers(dest="mode", required=True)
    reprocess = modes.add_parser("reprocess", help="send unanswered messages through the live pipeline again")
    range_options(reprocess, "the messages topic")
    shadow = modes.add_parser("shadow", help="answer the range with another provider/model into shadow topics")
    range_options(shadow, "the messages topic")
    shadow.add_argument("--provider", required=True)
    shadow.add_argument("--model", required=True)
    shadow.add_argument("--concurrency", type=positive, default=4, help="provider calls in flight (default 4)")
    reprice = modes.add_parser("reprice", help="recompute billing events with another price table")
    range_options(reprice, "the billing topic")
    reprice.add_argument("--prices", required=True,
                         help="a price-table version of gateway_app/pricing, or a JSON file")
    compare = modes.add_parser("compare", help="a shadow run beside the original replies")
    compare.add_argument("run_name", metavar="RUN")
    compare.add_argument("--format", default="table", choices=("table", "json"))
    compare.add_argument("--since", default=None,
                         help="read the live topics from this time (default: the run's range start, else all)")
    return parser


def dlq_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway dlq", description="Dead letters.")
    commands = parser.add_subparsers(dest="mode", required=True)
    replay = commands.add_parser("replay", help="send dead letters of one error code back to their topics")
    replay.add_argument("--code", required=True, help="error code, e.g. provider_unavailable")
    replay.add_argument("--since", required=True, help="ISO 8601 time: dead letters written from then on")
    replay.add_argument("--agent", default=None)
    replay.add_argument("--topic", default=None, help="the DLQ topic (default: GATEWAY_TOPIC_DLQ)")
    replay.add_argument("--execute", action="store_true", help="send (default: a dry run that lists them)")
    replay.add_argument("--run", default=None, help="name carried in the gateway-replay header (default: an id)")
    return parser


def parse(argv: list[str]) -> argparse.Namespace:
    group, rest = argv[0], argv[1:]
    args = (replay_parser() if group == "replay" else dlq_parser()).parse_args(rest)
    args.group = group
    if group == "dlq":
        args.since_bound = TimeBound(parse_time(args.since))
    elif args.mode == "compare":
        args.since_ms = parse_time(args.since) if args.since else None
    else:
        args.start = parse_bound(args.start_text)
        args.stop = parse_bound(args.stop_text) if args.stop_text else None
    return args


def handler(args: argparse.Namespace):
    from gateway_app.replay import compare, dlq, reprice, reprocess, shadow

    if args.group == "dlq":
        return dlq.run_dlq_replay
    return {"reprocess": reprocess.run_reprocess, "shadow": shadow.run_shadow, "reprice": reprice.run_reprice,
            "compare": compare.run_compare}[args.mode]


def main(argv: list[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    """`argv` starts with `replay` or `dlq`."""
    out, err = out or sys.stdout, err or sys.stderr
    name = f"gateway {' '.join(argv[:2])}"
    try:
        args = parse(argv)
    except ValueError as exc:
        print(f"{name}: {exc}", file=err)
        return 2
    try:
        return asyncio.run(handler(args)(Job(Settings(), args, out, err)))
    except ValueError as exc:  # what the operator asked for cannot be done: said, no traceback
        print(f"{name}: {exc}", file=err)
        return 2
    except (KafkaError, RuntimeError) as exc:  # the broker failed us: the run resumes from its last batch
        print(f"{name}: {type(exc).__name__}: {exc}", file=err)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted; the same command with the --run printed above goes on from the last "
              f"saved batch", file=err)
        return 130
