"""ACD routing decisions per second on a realistic load.

A centre of N agents, each with 3-5 of S skills at levels 1-10, 90 % French
speakers and 30 % English ones; one queue per skill with SL thresholds of 20,
30 or 60 s and a relaxation step (after 60 s any level); calls need one skill
at level 1-5, French or English, 5 % VIP. Two phases, each timed apart:

* **busy** (the hard case): every agent busy and W calls waiting; a cycle is
  an agent freed (the "which call next" decision across all its queues:
  the offer is answered at once) and a new call arriving (the "which agent"
  decision: nobody ready, so it waits);
* **idle**: a fifth of the agents are ready and nobody waits; a cycle is a
  call arriving (an agent picked by the queue's policy among the ready
  eligible ones), answered, ended and wrapped up (the freed agent finds no
  waiting call).

A decision is one routing question answered (an arrival or an agent freed),
whether or not it produces an offer. The issue's load: 1,000 agents, 100
skills, 1,000 waiting calls (the RESULT line), after 100 and 10,000 agents
(how the cost grows with the centre; ``--no-sweep`` skips them).

    .venv/bin/python bench/routing.py [--agents 1000 --skills 100 --waiting 1000] [--no-sweep]

Last line: RESULT routing_decisions_per_s=<busy+idle decisions/s> ...
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from dataclasses import dataclass

from callcenter.acd import (
    AgentProfile,
    Engine,
    InteractionRequest,
    OfferDecision,
    QueueRules,
    Relaxation,
)


@dataclass(frozen=True)
class Figures:
    agents: int
    skills: int
    waiting: int
    busy_rate: float
    idle_rate: float
    decisions: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.decisions / self.seconds


class Centre:
    def __init__(self, agents: int, skills: int, seed: int) -> None:
        self.rnd = random.Random(seed)
        self.skills = [f"s{i:03d}" for i in range(skills)]
        self.engine = Engine(
            (
                QueueRules(
                    skill,
                    sl_threshold=self.rnd.choice([20.0, 30.0, 60.0]),
                    wrapup=0.0,
                    relaxations=(Relaxation(after=60.0, min_level=1),),
                )
                for skill in self.skills
            ),
            records=False,
        )
        self.now = 0.0
        self.ids = iter(range(10**9))
        self.active: dict[str, str] = {}  # agent -> interaction talking
        for i in range(agents):
            held = self.rnd.sample(self.skills, self.rnd.randint(3, 5))
            levels = {s: self.rnd.randint(1, 10) for s in held}
            languages = {"fr"} if self.rnd.random() < 0.9 else set()
            if self.rnd.random() < 0.3 or not languages:
                languages.add("en")
            self.engine.agent_login(0.0, AgentProfile(f"a{i}", levels, frozenset(languages)))

    def new_call(self) -> InteractionRequest:
        skill = self.rnd.choice(self.skills)
        return InteractionRequest(
            f"node1-{1_700_000_000 + next(self.ids) / 100:.2f}",
            skill,
            {skill: self.rnd.randint(1, 5)},
            "fr" if self.rnd.random() < 0.85 else "en",
            1 if self.rnd.random() < 0.05 else 0,
        )

    def take(self, offers: list[OfferDecision]) -> None:
        for offer in offers:
            self.engine.offer_answered(self.now, offer.interaction_id, offer.agent_id)
            self.active[offer.agent_id] = offer.interaction_id

    def fill(self, waiting: int) -> None:
        """Arrivals until every agent who can be busy is, and ``waiting`` calls wait."""
        while self.engine.waiting_count() < waiting:
            self.now += 0.001
            self.take(self.engine.interaction_arrived(self.now, self.new_call()))

    def busy_cycles(self, cycles: int) -> tuple[int, float]:
        busy = list(self.active)
        decisions = 0
        gc.collect()
        gc.freeze()  # the set-up's objects are long-lived, as in a running daemon
        start = time.perf_counter()
        for _ in range(cycles):
            self.now += 0.01
            agent = busy[self.rnd.randrange(len(busy))]
            interaction = self.active.pop(agent, None)
            if interaction is None:
                continue
            self.engine.interaction_ended(self.now, interaction)
            self.take(self.engine.wrapup_ended(self.now, agent))
            self.take(self.engine.interaction_arrived(self.now, self.new_call()))
            decisions += 2
        return decisions, time.perf_counter() - start

    def drain(self, ready_share: float) -> None:
        """End calls until nobody waits and ``ready_share`` of agents are ready."""
        while self.engine.waiting_count():
            for interaction in list(self.engine.interactions):
                call = self.engine.interactions[interaction]
                if call.waiting:
                    self.engine.interaction_abandoned(self.now, interaction)
        target = int(len(self.engine.agents) * (1 - ready_share))
        for agent in list(self.active)[target:]:
            self.now += 0.001
            self.engine.interaction_ended(self.now, self.active.pop(agent))
            self.engine.wrapup_ended(self.now, agent)

    def idle_cycles(self, cycles: int) -> tuple[int, float]:
        decisions = 0
        gc.collect()
        gc.freeze()  # the set-up's objects are long-lived, as in a running daemon
        start = time.perf_counter()
        for _ in range(cycles):
            self.now += 0.01
            request = self.new_call()
            offers = self.engine.interaction_arrived(self.now, request)
            decisions += 1
            for offer in offers:
                self.engine.offer_answered(self.now, offer.interaction_id, offer.agent_id)
                self.engine.interaction_ended(self.now, offer.interaction_id)
                self.engine.wrapup_ended(self.now, offer.agent_id)
                decisions += 1
            if not offers:  # nobody ready for it: it is not what this phase measures
                self.engine.interaction_abandoned(self.now, request.interaction_id)
        return decisions, time.perf_counter() - start


def measure(agents: int, skills: int, waiting: int, cycles: int, seed: int = 7) -> Figures:
    centre = Centre(agents, skills, seed)
    centre.fill(waiting)
    busy_n, busy_s = centre.busy_cycles(cycles)
    centre.drain(0.2)
    idle_n, idle_s = centre.idle_cycles(cycles)
    return Figures(
        agents, skills, waiting, busy_n / busy_s, idle_n / idle_s, busy_n + idle_n, busy_s + idle_s
    )


def show(f: Figures) -> None:
    print(
        f"{f.agents:>6} agents {f.skills:>4} skills {f.waiting:>5} waiting: "
        f"busy {f.busy_rate:>9,.0f}/s ({1e6 / f.busy_rate:5.1f} us)  "
        f"idle {f.idle_rate:>9,.0f}/s ({1e6 / f.idle_rate:5.1f} us)  "
        f"all {f.rate:>9,.0f}/s"
    )


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--agents", type=int, default=1000)
    cli.add_argument("--skills", type=int, default=100)
    cli.add_argument("--waiting", type=int, default=1000)
    cli.add_argument("--cycles", type=int, default=20_000)
    cli.add_argument("--no-sweep", action="store_true", help="skip the 100 and 10,000 agent points")
    options = cli.parse_args()
    if not options.no_sweep:
        # How the cost grows with the centre's size (the 100/1,000/10,000).
        for agents in (100, 10_000):
            show(measure(agents, options.skills, options.waiting, options.cycles))
    main_figures = measure(options.agents, options.skills, options.waiting, options.cycles)
    show(main_figures)
    f = main_figures
    print(
        f"RESULT routing_decisions_per_s={f.rate:.0f} agents={f.agents} skills={f.skills} "
        f"waiting={f.waiting} busy_per_s={f.busy_rate:.0f} idle_per_s={f.idle_rate:.0f}"
    )


if __name__ == "__main__":
    main()
