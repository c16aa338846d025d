"""ACD routing decisions per second on a busy centre.

500 agents with 3 of 20 skills each, 2,000 calls waiting (every agent busy),
then a cycle: an agent finishes wrap-up and takes the best waiting call
(the "agent free" decision scans every waiting call it may take), the call is
answered and ended, and a new call arrives (the "call arrives" decision).

    .venv/bin/python bench/routing.py [--agents 500] [--waiting 2000] [--cycles 5000]
"""

from __future__ import annotations

import argparse
import random
import time

from callcenter.acd import AgentProfile, Engine, InteractionRequest, QueueRules

SKILLS = [f"s{i:02d}" for i in range(20)]


def main(agents: int, waiting: int, cycles: int) -> None:
    rnd = random.Random(7)
    engine = Engine(QueueRules(skill, sl_threshold=rnd.choice([20, 30, 60])) for skill in SKILLS)
    now = 0.0
    for i in range(agents):
        skills = {s: rnd.randint(1, 10) for s in rnd.sample(SKILLS, 3)}
        engine.agent_login(now, AgentProfile(f"a{i}", skills, frozenset({"fr"})))
    call_ids = iter(range(10**9))

    def new_call() -> InteractionRequest:
        skill = rnd.choice(SKILLS)
        return InteractionRequest(
            f"c{next(call_ids)}", skill, {skill: 1}, "fr", 1 if rnd.random() < 0.05 else 0
        )

    # Fill: the first calls go to agents, who answer; the rest wait.
    active: dict[str, str] = {}
    while len(engine.interactions) - len(active) < waiting:
        now += 0.01
        for offer in engine.interaction_arrived(now, new_call()):
            engine.offer_answered(now, offer.interaction_id, offer.agent_id)
            active[offer.agent_id] = offer.interaction_id
    decisions = 0
    start = time.perf_counter()
    busy = list(active)
    for _ in range(cycles):
        now += 0.01
        agent = busy[rnd.randrange(len(busy))]
        interaction = active.pop(agent, None)
        if interaction is None:
            continue
        engine.interaction_ended(now, interaction)
        for offer in engine.wrapup_ended(now, agent):
            engine.offer_answered(now, offer.interaction_id, offer.agent_id)
            active[offer.agent_id] = offer.interaction_id
        decisions += 1
        for offer in engine.interaction_arrived(now, new_call()):
            engine.offer_answered(now, offer.interaction_id, offer.agent_id)
            active[offer.agent_id] = offer.interaction_id
        decisions += 1
    elapsed = time.perf_counter() - start
    rate = decisions / elapsed
    print(
        f"{agents} agents, {len(SKILLS)} skills, ~{waiting} calls waiting, "
        f"{decisions} decisions in {elapsed:.2f} s"
    )
    print(f"routing decisions/s: {rate:,.0f}   mean {elapsed / decisions * 1e6:.0f} µs")
    print(f"RESULT routing_decisions_per_s={rate:.0f} waiting={waiting} agents={agents}")


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--agents", type=int, default=500)
    cli.add_argument("--waiting", type=int, default=2000)
    cli.add_argument("--cycles", type=int, default=5000)
    options = cli.parse_args()
    main(options.agents, options.waiting, options.cycles)
