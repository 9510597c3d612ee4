"""Benchmark: what an authorization check costs with many ACLs (issue 17: ≲ 2 µs with 10 000).

Builds an :class:`~headrace.security.authorizer.AclAuthorizer` over ``--acls`` bindings (literal
and prefixed topics, groups, 200 principals, some DENYs) and times ``authorize(ctx, [action])``
— the call the request pipeline makes per request — three ways:

- *cached*: requests cycling over ``--keys`` distinct (principal, host, action) keys, as a busy
  broker sees (the verdict cache's hit path);
- *uncached*: every check right after a change of the bindings (index rebuilt once, then each
  key decided from the index: the miss path);
- *baseline*: ``AllowAll.authorize`` in the same run (the pipeline's call with no ACLs at all),
  so the ratio says what ACLs add on this machine at this moment.

    python bench/acl_bench.py --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "broker"), str(ROOT)]

from headrace.core.policies import AllowAll  # noqa: E402
from headrace.core.requests import RequestContext, Session  # noqa: E402
from headrace.core.security import Action, Operation, Principal, ResourceType  # noqa: E402
from headrace.security.acls import AclBinding, PatternType, Permission  # noqa: E402
from headrace.security.authorizer import AclAuthorizer, AclStore  # noqa: E402
from headrace.security.records import MemorySecurityRecords  # noqa: E402

OPERATIONS = [Operation.READ, Operation.WRITE, Operation.DESCRIBE, Operation.ALL]


def _bindings(count: int, rng: random.Random) -> list[AclBinding]:
    bindings = []
    for index in range(count):
        principal = f"User:u{index % 200}"
        kind = index % 10
        if kind < 6:
            pattern, rtype, name = PatternType.LITERAL, ResourceType.TOPIC, f"topic-{index}"
        elif kind < 8:
            pattern, rtype, name = PatternType.PREFIXED, ResourceType.TOPIC, f"team{index % 97}-"
        else:
            pattern, rtype, name = PatternType.LITERAL, ResourceType.GROUP, f"group-{index}"
        permission = Permission.DENY if index % 50 == 0 else Permission.ALLOW
        bindings.append(AclBinding(rtype, name, pattern, principal, "*",
                                   rng.choice(OPERATIONS), permission))
    return bindings


def _contexts_and_actions(keys: int, acls: int, rng: random.Random,
                          ) -> list[tuple[RequestContext, list[Action]]]:
    asked = []
    for _ in range(keys):
        principal = Principal("User", f"u{rng.randrange(200)}")
        ctx = RequestContext(0, 9, 1, "bench", Session("PLAINTEXT", "10.0.0.1", principal))
        if rng.random() < 0.5:
            name = f"topic-{rng.randrange(acls)}"
        else:
            name = f"team{rng.randrange(97)}-orders-{rng.randrange(1000)}"
        asked.append((ctx, [Action(rng.choice(OPERATIONS[:3]), ResourceType.TOPIC, name)]))
    return asked


def _per_check_us(check: Callable[[RequestContext, list[Action]], object],
                  asked: list[tuple[RequestContext, list[Action]]], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for ctx, actions in asked:
            check(ctx, actions)
        samples.append((time.perf_counter() - started) / len(asked))
    return statistics.median(samples) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--acls", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rng = random.Random(17)
    store = AclStore(MemorySecurityRecords())
    asyncio.run(store.create(_bindings(args.acls, rng)))
    authorizer = AclAuthorizer(store, ["User:admin"])
    asked = _contexts_and_actions(args.keys, args.acls, rng)
    allow_all = AllowAll()

    baseline = _per_check_us(allow_all.authorize, asked, args.rounds)
    authorizer.authorize(*asked[0])  # build the index once
    cached = _per_check_us(authorizer.authorize, asked, args.rounds)  # first round fills it
    uncached_samples = []
    for _ in range(args.rounds):
        authorizer._changed("acl")  # what a change of the bindings does
        started = time.perf_counter()
        for ctx, actions in asked:
            authorizer.authorize(ctx, actions)
        uncached_samples.append((time.perf_counter() - started) / len(asked))
    uncached = statistics.median(uncached_samples) * 1e6
    allowed = sum(bool(authorizer.authorize(ctx, actions)[0]) for ctx, actions in asked)
    result = {
        "acls": args.acls, "distinct_keys": args.keys, "allowed_share": allowed / len(asked),
        "cached_us": round(cached, 3), "uncached_us": round(uncached, 3),
        "baseline_allow_all_us": round(baseline, 3),
        "cached_vs_baseline": round(cached / baseline, 2),
        "uncached_vs_baseline": round(uncached / baseline, 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
