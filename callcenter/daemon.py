"""The one wiring module: Asterisk events -> tracker -> (ACD) -> decisions -> actions.

The daemon owns every long-lived component and every task; ``stop`` cancels
and awaits them in reverse order of start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import uuid4

import aiohttp
import structlog

from callcenter.acd import Engine, QueueRules
from callcenter.adapters.ami import AmiClient, Connected, Disconnected, Resync, StreamItem
from callcenter.adapters.cti_ws import CtiServer
from callcenter.adapters.fastagi import AgiSession, FastAgiServer
from callcenter.adapters.http import HttpServer
from callcenter.adapters.metrics import DaemonHealth, MetricsExporter, metrics_routes
from callcenter.adapters.openapi import openapi_routes
from callcenter.adapters.recordings import Processed, RecordingWorker
from callcenter.adapters.rest_agents import agent_routes
from callcenter.adapters.rest_auth import LOCAL_ADMIN, auth_middleware, auth_routes
from callcenter.adapters.rest_reports import add_report_routes
from callcenter.adapters.telephony import Telephony, TelephonyConfig
from callcenter.callpath.service import CallPath, CallRecord, Phase, row_of
from callcenter.callpath.site import Site, load_site
from callcenter.clock import Clock, SystemClock
from callcenter.config import Settings
from callcenter.crm.http import HttpCrm
from callcenter.crm.ivr_lookup import crm_lookup
from callcenter.crm.model import Crm
from callcenter.crm.screenpop import screen_pop
from callcenter.crm.store import PgCrm
from callcenter.crm.webhooks import WebhookSender, call_data
from callcenter.cti.access import Principal, Role
from callcenter.cti.bridge import CtiBridge
from callcenter.cti.journal import Journal
from callcenter.cti.views import LiveViews, queue_kpis
from callcenter.errors import ConfigError, RoutingError, StoreError
from callcenter.flows.inbound import Qualification, resume_of, wait_in_queue
from callcenter.flows.ivr import (
    IvrServices,
    node_exits,
    prompt_files,
    run_ivr,
    run_ivr_message,
    speech_service,
)
from callcenter.flows.selftest import selftest
from callcenter.ivr.loader import load_script
from callcenter.ivr.messages import (
    CallbackResult,
    CallInfo,
    IvrContext,
    Lookup,
    LookupResult,
    OfferCallback,
    Outcome,
    Route,
    Transfer,
    Voicemail,
)
from callcenter.ivr.simulate import Fixture, fixture_lookup, load_fixture
from callcenter.protocol.channels import ChannelTracker
from callcenter.stats.events import (
    Abandoned,
    Answered,
    Ended,
    IvrNodeExited,
    Offered,
    RecordingWritten,
    StatsEvent,
)
from callcenter.stats.model import StatsConfig
from callcenter.stats.realtime import RealtimeStats
from callcenter.store.agent_months import month_handled_at_start
from callcenter.store.db import create_pool, migrate
from callcenter.store.interactions import (
    InteractionWriter,
    current_agent_states,
    pending_callbacks,
)
from callcenter.store.interval_refresher import IntervalRefresher
from callcenter.store.spool import spool_path
from callcenter.store.stats import AgentInfo
from callcenter.store.users import UserStore, users_spool_path
from callcenter.web import web_routes

log = structlog.get_logger("callcenter.daemon")


class Daemon:
    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        node = settings.node.name
        self.tracker = ChannelTracker(node=node)
        self.ami = AmiClient(
            settings.ami, settings.ami.resolved_secret(), node=node, clock=self.clock
        )
        self.ami.subscribe(self._on_ami)
        self.site: Site = load_site(settings.site.file)
        # Every script the site names is loaded (and validated) at start-up:
        # a broken script never reaches a caller.
        self.scripts = {
            name: load_script(settings.ivr.scripts_dir / f"{name}.yaml")
            for name in sorted(self.site.scripts())
        }
        # Scripts with speech nodes need a Vosk model per language: checked
        # here, loaded in start(). A missing model stops the daemon, never a call.
        self.speech = speech_service(settings, self.scripts.values())
        self.prompts = prompt_files(settings)
        self.crm = (
            load_fixture(settings.ivr.crm_fixture)
            if settings.ivr.crm_fixture is not None and settings.ivr.crm_fixture.exists()
            else Fixture()
        )
        # Every queue's rules from the site: SL, wrap-up, policy, relaxation
        # steps (levels, overflow to a queue or to extended agents).
        queue_rules: list[QueueRules] = self.site.queue_rules()
        self.acd = Engine(queue_rules)
        self.dialer = (
            AmiClient(
                settings.ami,
                settings.ami.resolved_secret(),
                node=node,
                clock=self.clock,
                events=False,
                lane="d",
            )
            if settings.ami.dialer_session
            else None
        )
        self.telephony = Telephony(
            self.ami,
            TelephonyConfig(recordings_dir=settings.recording.asterisk_dir),
            dialer=self.dialer,
        )
        self.callpath = CallPath(self.acd, self.telephony, self.site, self.clock, node=node)
        self.agi = FastAgiServer(
            settings.agi.host,
            settings.agi.port,
            {"selftest": selftest, "inbound": self._inbound, "after-agent": self._after_agent},
            idle_timeout=settings.agi.idle_timeout,
        )
        self.http = HttpServer(settings.http.host, settings.http.port, self.health)
        auth_required = settings.http.auth == "required"
        if auth_required and settings.database.url is None:
            raise ConfigError(
                "http.auth = required needs database.url (users and sessions live in "
                "PostgreSQL); for a loopback-only lab set http.auth = off"
            )
        self.users: UserStore | None = None
        self.views = LiveViews(self.callpath, self.acd)
        self.cti = CtiServer(
            Journal(epoch=uuid4().hex[:12]),
            self._authenticate,
            lambda who: self.views.snapshot(who, lambda: queue_kpis(self.stats.snapshot())),
            self.clock,
            heartbeat=settings.http.cti_heartbeat,
        )
        self.bridge = CtiBridge(
            self.views,
            self.cti,
            self.clock,
            self._contact_for,
            kpis=lambda: queue_kpis(self.stats.snapshot()),
        )
        self.http.app.middlewares.append(
            auth_middleware(lambda: self.users, required=auth_required)
        )
        self.http.app.add_routes(auth_routes(lambda: self.users))
        self.http.app.add_routes(
            agent_routes(self.callpath, self.acd, self.views, self._audit, self.bridge.publish)
        )
        self.http.app.add_routes(self.cti.routes())
        self.http.app.add_routes(web_routes())
        self.http.app.add_routes(
            openapi_routes(
                {"agent": sorted(self.site.agents), "supervisor": sorted(self.site.supervisors)}
            )
        )
        self.stats = RealtimeStats(
            StatsConfig(
                queue_sl_thresholds={n: q.sl_threshold for n, q in self.site.queues.items()}
            ),
            self.clock,
        )
        for name, queue in self.site.queues.items():
            self.stats.declare_queue(name, [next(iter(queue.skills), "")])
        self.callpath.on_stats = self._on_stats
        self.callpath.on_disposition = self._disposition_set
        self.metrics = MetricsExporter(self.stats, self._metrics_health)
        self.http.app.add_routes(metrics_routes(self.metrics))
        add_report_routes(
            self.http.app,
            lambda: self.pool,
            config=self.stats.config,
            agents={a: AgentInfo(s.team, s.extended) for a, s in self.site.agents.items()},
        )
        self.pool: Any = None
        self.interval_refresher: IntervalRefresher | None = None
        self.writer: InteractionWriter | None = None
        recording = settings.recording
        self.recordings: RecordingWorker | None = (
            RecordingWorker(
                recording.local_dir,
                output_format=recording.format,
                keep_source=recording.keep_wav,
                on_done=self._recording_done,
            )
            if recording.local_dir is not None
            else None
        )
        # The CRM answers the IVR's identification and the screen-pop once the
        # database is up (start); without a database the JSON fixture answers.
        self.contacts: Crm | None = None
        self.crm_session: aiohttp.ClientSession | None = None
        self.webhooks: WebhookSender | None = (
            WebhookSender(settings.crm.webhooks) if settings.crm.webhooks.endpoints else None
        )
        self._started: list[str] = []

    async def start(self) -> None:
        url = self.settings.database.url
        if url is not None:
            revision = await migrate(url.get_secret_value())
            log.info("database.ready", revision=revision)
            self.pool = await create_pool(
                url.get_secret_value(),
                min_size=self.settings.database.min_connections,
                max_size=self.settings.database.max_connections,
            )
            self._started.append("pool")
            if self.settings.http.auth == "required":
                self.users = UserStore(
                    self.pool,
                    session_ttl=timedelta(hours=self.settings.http.session_hours),
                    spool=users_spool_path(
                        self.settings.database.spool_dir, self.settings.node.name
                    ),
                )
            db = self.settings.database
            self.writer = InteractionWriter(
                self.pool,
                spool=spool_path(db.spool_dir, self.settings.node.name),
                max_memory_rows=db.writer_max_memory_rows,
                write_timeout=db.write_timeout,
                retry_max=db.writer_retry_max,
            )
            await self.writer.start()
            self._started.append("writer")
            writer = self.writer
            self.callpath.on_callback = writer.submit
            self.callpath.on_records = writer.submit
            if writer.backlog:
                # Rows spooled by the previous run (agent states, callbacks)
                # go in before the state is read back from the database.
                await writer.flush(timeout=30.0)
                if writer.backlog:
                    log.warning("daemon.restoring_before_spool_written", backlog=writer.backlog)
            # Extended agents' interactions this month so far (after the
            # spool's rows went in), before anyone logs in: their monthly cap
            # must hold across restarts. PostgreSQL failing here: a warning,
            # the counts start at 0, the start goes on.
            extended = [a for a, s in self.site.agents.items() if s.extended]
            self.callpath.month_handled = await month_handled_at_start(
                self.pool,
                extended,
                self.clock.wall(),
                self.settings.interval_refresh.zone(),
                timeout=db.write_timeout,
            )
            states = await current_agent_states(self.pool)
            self.callpath.restore_agents(states)
            pending = await pending_callbacks(self.pool, node=self.settings.node.name)
            self.callpath.restore_callbacks(pending)
            log.info("daemon.restored", agents=len(states), callbacks=len(pending))
            crm = self.settings.crm
            builtin = PgCrm(self.pool, crm)
            self.contacts = builtin
            if crm.backend == "http" and crm.http is not None:
                self.crm_session = aiohttp.ClientSession()
                self._started.append("crm_session")
                self.contacts = HttpCrm(
                    self.crm_session,
                    crm.http,
                    fallback=builtin,
                    clock=self.clock,
                    country_code=crm.country_code,
                )
        if self.webhooks is not None:
            await self.webhooks.start()
            self._started.append("webhooks")
        if self.recordings is not None:
            await self.recordings.start()
            self._started.append("recordings")
        self.callpath.on_finished = self._finished
        # Extended agents' monthly counts start again on the 1st, in the zone
        # of the daemon's local days (the one the counts were read back in).
        self.callpath.follow_months(self.settings.interval_refresh.zone())
        await self.callpath.start()
        self._started.append("callpath")
        if self.speech is not None:
            await self.speech.start()
            self._started.append("speech")
        await self.agi.start()
        self._started.append("agi")
        await self.http.start()
        self._started.append("http")
        await self.bridge.start()
        self._started.append("cti")
        if self.dialer is not None:
            await self.dialer.start()
            self._started.append("dialer")
        await self.ami.start()
        self._started.append("ami")
        refresh = self.settings.interval_refresh
        if self.pool is not None and refresh.enabled:
            self.interval_refresher = IntervalRefresher(
                self.pool,
                self.stats.config,
                agents={a: AgentInfo(s.team, s.extended) for a, s in self.site.agents.items()},
                interval=refresh.interval,
                days=refresh.days,
                tz=refresh.zone(),
                clock=self.clock,
            )
            await self.interval_refresher.start()
            self._started.append("interval_refresher")
        log.info(
            "daemon.started",
            node=self.settings.node.name,
            agi_port=self.agi.port,
            http_port=self.http.port,
        )

    async def stop(self) -> None:
        for name in reversed(self._started):
            try:
                if name == "ami":
                    await self.ami.stop()
                elif name == "dialer" and self.dialer is not None:
                    await self.dialer.stop()
                elif name == "interval_refresher" and self.interval_refresher is not None:
                    await self.interval_refresher.stop()
                elif name == "http":
                    await self.http.stop()
                elif name == "cti":
                    await self.bridge.stop()
                elif name == "agi":
                    await self.agi.stop()
                elif name == "speech" and self.speech is not None:
                    await self.speech.stop()
                elif name == "callpath":
                    await self.callpath.stop()
                elif name == "recordings" and self.recordings is not None:
                    await self.recordings.stop()
                elif name == "writer" and self.writer is not None:
                    await self.writer.stop()
                elif name == "webhooks" and self.webhooks is not None:
                    await self.webhooks.stop(drain=2.0)
                elif name == "crm_session" and self.crm_session is not None:
                    await self.crm_session.close()
                elif name == "pool":
                    try:
                        if self.users is not None:
                            await self.users.close()  # sessions/audit rows waiting: a last try
                    finally:
                        await self.pool.close()
            except Exception:
                log.exception("daemon.stop_failed", component=name)
        self._started.clear()
        log.info("daemon.stopped")

    async def run_until(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    def health(self) -> dict[str, Any]:
        stats = self.ami.stats
        return {
            "ok": self.ami.connected,
            "node": self.settings.node.name,
            "ami": {
                "connected": self.ami.connected,
                "events": stats.events,
                "malformed": stats.malformed,
                "reconnects": stats.reconnects,
                "ping_timeouts": stats.ping_timeouts,
                # None: no dialer session (Originates go on the main one).
                "dialer_connected": self.dialer.connected if self.dialer else None,
            },
            "channels": len(self.tracker.channels()),
            "calls_waiting": sum(1 for c in self.callpath.calls.values() if c.waiting),
            "db_writer_backlog": self.writer.backlog if self.writer else None,
            "db_writer": (
                {
                    "in_memory": self.writer.in_memory,
                    "spooled": self.writer.spooled,
                    "oldest_seconds": round(self.writer.oldest_age(), 3),
                    "written": self.writer.written,
                    "failures": self.writer.failures,
                    "spool_failures": self.writer.spool_failures,
                    "rejected": self.writer.rejected,
                    "spool": str(self.writer.spool_path),
                }
                if self.writer
                else None
            ),
            "users": (
                {"backlog": self.users.backlog, "spool_failures": self.users.spool_failures}
                if self.users
                else None
            ),
            "recordings_backlog": self.recordings.backlog if self.recordings else None,
        }

    def _metrics_health(self) -> DaemonHealth:
        last = self.ami.stats.last_event_at
        return DaemonHealth(
            ami_connected=self.ami.connected,
            # Time since the last AMI event was processed: a rough lag figure
            # (0 when idle is indistinguishable from 0 when current).
            ami_event_lag_seconds=0.0 if last is None else max(0.0, self.clock.now() - last),
            fastagi_sessions=self.agi.stats.active,
            db_writer_backlog=self.writer.backlog if self.writer else 0,
            db_writer_memory_rows=self.writer.in_memory if self.writer else 0,
            db_writer_spooled_rows=self.writer.spooled if self.writer else 0,
            db_writer_oldest_seconds=self.writer.oldest_age() if self.writer else 0.0,
            db_writer_failures=self.writer.failures if self.writer else 0,
            db_writer_spool_failures=self.writer.spool_failures if self.writer else 0,
            db_writer_rejected_rows=self.writer.rejected if self.writer else 0,
            ami_dialer_connected=self.dialer.connected if self.dialer else True,
            users_backlog=self.users.backlog if self.users else 0,
            users_spool_failures=self.users.spool_failures if self.users else 0,
        )

    def _ivr_exits(self, outcome: Outcome) -> None:
        now, script = self.clock.now(), outcome.context.script
        for node, exit_ in node_exits(outcome):
            self._on_stats(IvrNodeExited(now, script, node, exit_))

    def _wall_now(self) -> datetime:
        """The IVR's idea of now (opening hours, holidays): the injected clock."""
        return datetime.fromtimestamp(self.clock.wall(), UTC)

    def _on_stats(self, event: StatsEvent) -> None:
        self.stats.apply(event)
        self.bridge.observe(event)
        if self.webhooks is not None:
            self._webhook(event)

    def _disposition_set(self, record: CallRecord) -> None:
        if self.webhooks is not None:
            self.webhooks.submit("call.disposition", call_data(record, outcome=record.phase.value))

    def _webhook(self, event: StatsEvent) -> None:
        assert self.webhooks is not None
        kind = _WEBHOOK_OF.get(type(event))
        interaction_id = getattr(event, "interaction_id", None)
        record = self.callpath.recent(interaction_id) if kind and interaction_id else None
        if kind is None or record is None:
            return
        outcome = "abandoned" if isinstance(event, Abandoned) else record.phase.value
        self.webhooks.submit(kind, call_data(record, outcome=outcome))

    async def _authenticate(self, token: str) -> Principal:
        if self.settings.http.auth == "off":
            # Lab mode (loopback only): the token names who the page is.
            role, _, site_id = token.partition(":")
            if role in ("agent", "supervisor") and site_id:
                return Principal(token, Role(role), site_id)
            return LOCAL_ADMIN
        if self.users is None:
            raise StoreError("the user store is not ready")
        return await self.users.resolve(token, datetime.now(UTC))

    async def _audit(
        self, principal: Principal, action: str, target: str | None, detail: dict[str, Any]
    ) -> None:
        log.info("audit", actor=principal.login, action=action, target=target, **detail)
        if self.users is not None:
            try:
                await self.users.audit(principal.login, action, target, detail)
            except StoreError as exc:
                log.error("audit.write_failed", error=str(exc))

    async def _contact_for(self, number: str) -> dict[str, Any] | None:
        if self.contacts is not None:
            return await screen_pop(self.contacts, number, limit=self.settings.crm.history_limit)
        result = fixture_lookup(self.crm, Lookup("crm_ani", {"ani": number}))
        if result.data is None:
            return None
        return {"contact": dict(result.data), "history": []}

    def _finished(self, record: CallRecord) -> None:
        if self.writer is not None:
            self.writer.submit(row_of(record))
        if self.recordings is not None and record.recording and record.phase is Phase.COMPLETED:
            self.recordings.submit(record.interaction_id)

    def _recording_done(self, result: Processed) -> None:
        record = self.callpath.recent(result.interaction_id)
        if record is None:
            return
        record.context["recording_file"] = str(result.output)
        record.context["recording_seconds"] = round(result.seconds, 2)
        self._on_stats(RecordingWritten(self.clock.now(), record.queue))
        if self.writer is not None:
            self.writer.submit(row_of(record))

    async def _inbound(self, session: AgiSession) -> None:
        resume = resume_of(session.request)
        qualification = None
        query = session.request.query
        if resume is None and "from" not in query:
            dnis = query.get("dnis") or session.request.extension
            _queue, route = self.site.route_for(dnis)
            if route.ivr is not None:
                qualification = await self._qualify(session, route.ivr)
                if qualification is None:
                    return  # the IVR finished the call (transfer, message, hang-up)
        await wait_in_queue(session, self.callpath, self.clock, qualification, resume)

    async def _qualify(self, session: AgiSession, script_name: str) -> Qualification | None:
        script = self.scripts[script_name]
        await session.answer()
        call = CallInfo(
            ani=session.request.callerid,
            now=self._wall_now(),
            dnis=session.request.query.get("dnis", ""),
        )
        outcome = await run_ivr(session, script, call, self._ivr_services())
        self._ivr_exits(outcome)
        context = _ivr_context(outcome.context)
        if isinstance(outcome, Route):
            language_skill = script.language_skill.format(language=outcome.language)
            skills = {k: v for k, v in outcome.skills.items() if k != language_skill}
            return Qualification(
                outcome.queue,
                skills,
                outcome.priority,
                outcome.language,
                outcome.context.customer_id,
                context,
            )
        if isinstance(outcome, Transfer) and outcome.number and outcome.number.isdigit():
            await session.exec_("Dial", f"PJSIP/{outcome.number}@trunk", "60")
        elif isinstance(outcome, Voicemail):
            await run_ivr_message(session, self._ivr_services(), outcome)
        await session.hangup()
        return None

    def _ivr_services(self) -> IvrServices:
        fixture = self.crm
        contacts = self.contacts

        async def lookup(request: Lookup) -> LookupResult:
            # Web-service lookups ("http" nodes) still come from the fixture.
            if contacts is None or request.kind == "http":
                return fixture_lookup(fixture, request)
            return await crm_lookup(contacts, request, now=self._wall_now())

        async def offer_callback(request: OfferCallback) -> CallbackResult:
            try:
                self.callpath.register_callback(
                    request.queue,
                    request.number,
                    language=request.language,
                    priority=request.priority,
                    context={"ivr": _ivr_context(request.context)},
                )
            except RoutingError as exc:
                return CallbackResult(False, str(exc))
            return CallbackResult(True)

        return IvrServices(
            lookup,
            offer_callback,
            self.settings.recording.asterisk_dir,
            prompts=self.prompts,
            speech=self.speech,
        )

    async def _after_agent(self, session: AgiSession) -> None:
        """The agent hung up first: the queue's survey, if any, then hang up."""
        interaction = await session.get_variable("CC_INTERACTION")
        record = self.callpath.recent(interaction) if interaction else None
        survey = self.site.queues[record.queue].survey if record is not None else None
        if record is not None and survey is not None:
            call = CallInfo(
                ani=session.request.callerid,
                now=self._wall_now(),
                language=record.language,
                variables={"survey_opt_out": False, "agent_id": record.agent_id or ""},
            )
            outcome = await run_ivr(session, self.scripts[survey], call, self._ivr_services())
            self._ivr_exits(outcome)
            variables = outcome.context.variables
            answer = {
                "score": variables.get("survey.score"),
                "comment": variables.get("survey.comment"),
                "agent": record.agent_id,
            }
            record.context["survey"] = answer
            log.info("survey.answered", interaction=record.interaction_id, **answer)
            if self.writer is not None:
                self.writer.submit(row_of(record))
        await session.hangup()

    def _on_ami(self, item: StreamItem) -> Coroutine[Any, Any, None] | None:
        """Synchronous, so that the AMI client handles an event as it reads
        it (issue 4's agent-free -> ring); only a resync has awaiting to do."""
        if isinstance(item, Connected | Disconnected):
            return None
        if isinstance(item, Resync):
            changes = self.tracker.resync(list(item.channels), list(item.bridges))
            log.info("ami.resynced", channels=len(item.channels), changes=len(changes))
        else:
            changes = self.tracker.apply(item)
        for change in changes:
            self.callpath.on_change(change)
        return self._resynced() if isinstance(item, Resync) else None

    async def _resynced(self) -> None:
        # Calls a previous daemon connected are tracked to completion;
        # callers who hung up while we were blind are abandons now (above);
        # waiting callers get offers again.
        adopted = await self.callpath.adopt_calls(self.tracker)
        if adopted:
            log.info("calls.adopted", count=adopted)
        self.callpath.telephony_restored()


_WEBHOOK_OF: dict[type, Literal["call.started", "call.answered", "call.ended"]] = {
    Offered: "call.started",
    Answered: "call.answered",
    Ended: "call.ended",
    Abandoned: "call.ended",
}


def _ivr_context(context: IvrContext) -> dict[str, object]:
    """The IVR context as the agent's screen shows it (sensitive values masked)."""
    return {
        "script": context.script,
        "path": list(context.path),
        "intent": context.intent,
        "customer_id": context.customer_id,
        "vip": context.vip,
        "language": context.language,
        "variables": {k: v for k, v in context.variables.items() if _plain(v)},
    }


def _plain(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)
