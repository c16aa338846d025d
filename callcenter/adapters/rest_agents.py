"""REST: agent operations and the live state of queues and agents.

    POST /api/agents/{agent}/login      {"endpoint": "agent7"}   (optional)
    POST /api/agents/{agent}/ready
    POST /api/agents/{agent}/pause      {"reason": "lunch"}
    POST /api/agents/{agent}/wrapup/end
    POST /api/agents/{agent}/logout
    POST /api/agents/{agent}/transfer   {"queue": "ventes"}, {"agent": "a05"}
                                        or {"number": "0612345678"}
    POST /api/agents/{agent}/consult    {"number": "0612345678"}  (attended transfer)
    POST /api/agents/{agent}/consult/complete | /consult/cancel
    POST /api/agents/{agent}/conference {"number": "0612345678"} or {"agent": "a05"}
    POST /api/agents/{agent}/hold | /resume | /hangup
    POST /api/agents/{agent}/dial       {"number": "0612345678"}  (click-to-call; "queue" optional)
    POST /api/agents/{agent}/callbacks  {"interaction": "...", "number": "0612345678",
                                         "at": "2026-12-02T15:30:00+01:00",
                                         "until": "2026-12-02T18:00:00+01:00"}
                                        (at, until: optional; not taken by "until": expired)
    POST /api/interactions/{id}/disposition  {"agent": "a03", "code": "resolved", "notes": ""}
    POST /api/agents/{agent}/message    {"text": "..."}  (supervisor -> agent desktop)
    POST /api/supervisors/{sup}/coach   {"agent": "a03", "mode": "listen|whisper|barge"}
    GET  /api/agents                    every agent: state, since, reason
    GET  /api/queues                    waiting calls per queue, longest wait
    GET  /api/interactions/{id}         one live or recent interaction
    GET  /api/calls                     live calls (supervisors)

Errors are JSON ``{"error": "..."}``: 400 for a malformed request, 401
without a valid session, 403 when the caller's role forbids it (an agent acts
only on themself), 404 for an unknown agent or interaction, 409 when the
agent's state forbids the operation (the state is unchanged). A supervisor
acting on someone else's state, coaching or messaging is written to the
audit trail.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from aiohttp import web

from callcenter.acd import Engine
from callcenter.adapters.rest_auth import authorize, json_body, json_error, principal_of
from callcenter.adapters.telephony import SpyMode
from callcenter.callpath.service import CallPath
from callcenter.cti.access import Action, Principal, acts_for_other
from callcenter.cti.journal import SUPERVISORS, agent_stream
from callcenter.cti.projector import Publication
from callcenter.cti.views import LiveViews
from callcenter.errors import AsteriskError, ConfigError, IllegalTransition, RoutingError

__all__ = ["agent_routes"]

T = TypeVar("T")


Audit = Callable[[Principal, str, str | None, dict[str, Any]], Awaitable[None]]
Notify = Callable[[Publication], object]


def agent_routes(
    callpath: CallPath, engine: Engine, views: LiveViews, audit: Audit, notify: Notify
) -> list[web.RouteDef]:
    def text_field(data: dict[str, Any], key: str, *, required: bool) -> str | None:
        value = data.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value or len(value) > 100:
            raise json_error(400, f"'{key}' must be a non-empty string of at most 100 characters")
        return value

    async def operate(request: web.Request, name: str, action: Any, **detail: Any) -> web.Response:
        agent = known_agent(request)
        try:
            action(agent)
        except IllegalTransition as exc:
            raise json_error(409, str(exc)) from None
        except (RoutingError, ConfigError) as exc:
            raise json_error(409 if agent in engine.agents else 404, str(exc)) from None
        await audited(request, name, agent, **detail)
        return web.json_response(views.agent(agent))

    async def audited(request: web.Request, name: str, target: str, **detail: Any) -> None:
        principal = principal_of(request)
        if acts_for_other(principal, target):
            await audit(principal, name, target, detail)

    async def login(request: web.Request) -> web.Response:
        endpoint = text_field(await json_body(request), "endpoint", required=False)
        return await operate(
            request, "agent.login", lambda a: callpath.agent_login(a, endpoint), endpoint=endpoint
        )

    async def ready(request: web.Request) -> web.Response:
        return await operate(request, "agent.ready", callpath.agent_ready)

    async def pause(request: web.Request) -> web.Response:
        reason = text_field(await json_body(request), "reason", required=True)
        assert reason is not None
        return await operate(
            request, "agent.pause", lambda a: callpath.agent_pause(a, reason), reason=reason
        )

    async def end_wrapup(request: web.Request) -> web.Response:
        return await operate(request, "agent.wrapup_end", callpath.end_wrapup)

    async def logout(request: web.Request) -> web.Response:
        return await operate(request, "agent.logout", callpath.agent_logout)

    async def on_call(operation: Awaitable[T]) -> T:
        """Run a call operation; its errors become 409 (not now) or 502 (Asterisk)."""
        try:
            return await operation
        except RoutingError as exc:
            raise json_error(409, str(exc)) from None
        except AsteriskError as exc:
            raise json_error(502, f"Asterisk refused: {exc}") from None

    def known_agent(request: web.Request) -> str:
        """The agent named in the path, if it exists and the caller may act on it."""
        agent = request.match_info["agent"]
        if agent not in callpath.site.agents:
            raise json_error(404, f"unknown agent {agent!r}")
        authorize(request, Action.AGENT_OPERATE, agent)
        return agent

    async def transfer(request: web.Request) -> web.Response:
        data = await json_body(request)
        queue = text_field(data, "queue", required=False)
        number = text_field(data, "number", required=False)
        to_agent = text_field(data, "agent", required=False)
        agent = known_agent(request)
        interaction = await on_call(
            callpath.blind_transfer(agent, queue=queue, number=number, to_agent=to_agent)
        )
        return web.json_response(
            {"interaction": interaction, "queue": queue, "agent": to_agent, "number": number}
        )

    async def consult(request: web.Request) -> web.Response:
        number = text_field(await json_body(request), "number", required=True) or ""
        interaction = await on_call(callpath.consult(known_agent(request), number))
        return web.json_response({"interaction": interaction})

    async def consult_complete(request: web.Request) -> web.Response:
        interaction = await on_call(callpath.complete_transfer(known_agent(request)))
        return web.json_response({"interaction": interaction})

    async def consult_cancel(request: web.Request) -> web.Response:
        interaction = await on_call(callpath.cancel_transfer(known_agent(request)))
        return web.json_response({"interaction": interaction})

    async def conference(request: web.Request) -> web.Response:
        data = await json_body(request)
        number = text_field(data, "number", required=False)
        other = text_field(data, "agent", required=False)
        agent = known_agent(request)
        room = await on_call(callpath.conference(agent, number=number, agent=other))
        return web.json_response({"room": room})

    def tell(agent: str, kind: str, interaction: str) -> None:
        """A call step that only the REST action knows of: the agent's screens
        and the wallboards hear of it too."""
        now = callpath.clock.wall()
        data = {"interaction": interaction, "agent": agent}
        notify(Publication(agent_stream(agent), now, kind, data))
        notify(Publication(SUPERVISORS, now, kind, data))

    async def hold(request: web.Request) -> web.Response:
        agent = known_agent(request)
        interaction = await on_call(callpath.hold(agent))
        tell(agent, "call.held", interaction)
        return web.json_response({"interaction": interaction, "held": True})

    async def resume(request: web.Request) -> web.Response:
        agent = known_agent(request)
        interaction = await on_call(callpath.resume(agent))
        tell(agent, "call.resumed", interaction)
        return web.json_response({"interaction": interaction, "held": False})

    async def hangup(request: web.Request) -> web.Response:
        agent = known_agent(request)
        interaction = await on_call(callpath.hangup(agent))
        return web.json_response({"interaction": interaction})

    async def schedule_callback(request: web.Request) -> web.Response:
        data = await json_body(request)
        agent = known_agent(request)
        interaction = text_field(data, "interaction", required=True) or ""
        number = text_field(data, "number", required=True) or ""
        at_text = text_field(data, "at", required=False)
        until_text = text_field(data, "until", required=False)

        def moment_of(name: str, text: str | None) -> float | None:
            if text is None:
                return None
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                raise json_error(400, f"'{name}' must be an ISO 8601 date-time") from None
            if moment.tzinfo is None:
                raise json_error(400, f"'{name}' needs a time zone offset, e.g. +01:00")
            return moment.timestamp()

        not_before = moment_of("at", at_text)
        not_after = moment_of("until", until_text)
        if not_after is not None:
            if not_before is not None and not_after <= not_before:
                raise json_error(400, "'until' must be after 'at' (the window would be empty)")
            if not_after <= callpath.clock.wall():
                raise json_error(400, "'until' is in the past: the callback could never be made")
        try:
            callback = callpath.schedule_callback(agent, interaction, number, not_before, not_after)
        except RoutingError as exc:
            raise json_error(409, str(exc)) from None
        await audited(
            request, "callback.schedule", agent, number=number, at=at_text, until=until_text
        )
        return web.json_response(
            {"callback": callback, "not_before": not_before, "not_after": not_after}
        )

    async def dial(request: web.Request) -> web.Response:
        data = await json_body(request)
        agent = known_agent(request)
        number = text_field(data, "number", required=True) or ""
        queue = text_field(data, "queue", required=False)
        try:
            interaction = callpath.click_to_call(agent, number, queue)
        except RoutingError as exc:
            raise json_error(409, str(exc)) from None
        await audited(request, "call.dial", agent, number=number)
        return web.json_response({"interaction": interaction, "number": number})

    async def disposition(request: web.Request) -> web.Response:
        data = await json_body(request)
        agent = text_field(data, "agent", required=True) or ""
        code = text_field(data, "code", required=True) or ""
        notes = data.get("notes", "")
        if not isinstance(notes, str) or len(notes) > 4000:
            raise json_error(400, "'notes' must be a string of at most 4000 characters")
        wanted = request.match_info["interaction"]
        authorize(request, Action.AGENT_OPERATE, agent)
        try:
            callpath.set_disposition(wanted, agent, code, notes)
        except RoutingError as exc:
            raise json_error(409, str(exc)) from None
        return web.json_response({"interaction": wanted, "code": code})

    async def coach(request: web.Request) -> web.Response:
        data = await json_body(request)
        agent = text_field(data, "agent", required=True)
        mode_text = text_field(data, "mode", required=True)
        try:
            mode = SpyMode(mode_text or "")
        except ValueError:
            raise json_error(400, "'mode' must be listen, whisper or barge") from None
        supervisor = request.match_info["supervisor"]
        if supervisor not in callpath.site.supervisors:
            raise json_error(404, f"unknown supervisor {supervisor!r}")
        principal = authorize(request, Action.COACH, supervisor)
        leg = await on_call(callpath.coach(supervisor, agent or "", mode))
        await audit(principal, "coach", agent, {"mode": mode.value, "supervisor": supervisor})
        return web.json_response({"supervisor_leg": leg, "agent": agent, "mode": mode.value})

    async def message(request: web.Request) -> web.Response:
        text = text_field(await json_body(request), "text", required=True) or ""
        agent = request.match_info["agent"]
        if agent not in callpath.site.agents:
            raise json_error(404, f"unknown agent {agent!r}")
        principal = authorize(request, Action.MESSAGE, agent)
        data = {"from": principal.login, "text": text}
        notify(Publication(agent_stream(agent), callpath.clock.wall(), "message", data))
        await audit(principal, "message", agent, {"text": text})
        return web.json_response({"agent": agent, "sent": True})

    async def agents(_request: web.Request) -> web.Response:
        return web.json_response(views.agents())

    async def queues(_request: web.Request) -> web.Response:
        return web.json_response(views.queues())

    async def calls(request: web.Request) -> web.Response:
        authorize(request, Action.SUPERVISE)
        return web.json_response(views.live_calls())

    async def interaction(request: web.Request) -> web.Response:
        wanted = request.match_info["interaction"]
        record = callpath.recent(wanted)
        if record is None:
            raise json_error(404, f"unknown interaction {wanted!r}")
        principal = principal_of(request)
        if record.agent_id is None or record.agent_id != principal.site_id:
            authorize(request, Action.SUPERVISE)
        return web.json_response(views.call(record))

    return [
        web.post("/api/agents/{agent}/login", login),
        web.post("/api/agents/{agent}/ready", ready),
        web.post("/api/agents/{agent}/pause", pause),
        web.post("/api/agents/{agent}/wrapup/end", end_wrapup),
        web.post("/api/agents/{agent}/logout", logout),
        web.post("/api/agents/{agent}/transfer", transfer),
        web.post("/api/agents/{agent}/consult", consult),
        web.post("/api/agents/{agent}/consult/complete", consult_complete),
        web.post("/api/agents/{agent}/consult/cancel", consult_cancel),
        web.post("/api/agents/{agent}/conference", conference),
        web.post("/api/interactions/{interaction}/disposition", disposition),
        web.post("/api/agents/{agent}/message", message),
        web.post("/api/agents/{agent}/hold", hold),
        web.post("/api/agents/{agent}/resume", resume),
        web.post("/api/agents/{agent}/hangup", hangup),
        web.post("/api/agents/{agent}/dial", dial),
        web.post("/api/agents/{agent}/callbacks", schedule_callback),
        web.post("/api/supervisors/{supervisor}/coach", coach),
        web.get("/api/agents", agents),
        web.get("/api/queues", queues),
        web.get("/api/calls", calls),
        web.get("/api/interactions/{interaction}", interaction),
    ]
