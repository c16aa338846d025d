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
    POST /api/interactions/{id}/disposition  {"agent": "a03", "code": "resolved", "notes": ""}
    POST /api/supervisors/{sup}/coach   {"agent": "a03", "mode": "listen|whisper|barge"}
    GET  /api/agents                    every agent: state, since, reason
    GET  /api/queues                    waiting calls per queue, longest wait
    GET  /api/interactions/{id}         one live or recent interaction

Errors are JSON ``{"error": "..."}``: 400 for a malformed request, 404 for
an unknown agent or interaction, 409 when the agent's state forbids the
operation (the state is unchanged). Authentication and roles come with the
CTI bridge; until then bind the HTTP server to 127.0.0.1 (the default).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from callcenter.acd import Engine
from callcenter.adapters.telephony import SpyMode
from callcenter.callpath.service import CallPath, CallRecord
from callcenter.errors import AsteriskError, ConfigError, IllegalTransition, RoutingError

__all__ = ["agent_routes"]

_MAX_BODY = 4096


def agent_routes(callpath: CallPath, engine: Engine) -> list[web.RouteDef]:
    async def body(request: web.Request) -> dict[str, Any]:
        if request.content_length and request.content_length > _MAX_BODY:
            raise web.HTTPRequestEntityTooLarge(
                max_size=_MAX_BODY, actual_size=request.content_length
            )
        raw = await request.read()
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise _error(400, "body is not valid JSON") from None
        if not isinstance(data, dict):
            raise _error(400, "body must be a JSON object")
        return data

    def text_field(data: dict[str, Any], key: str, *, required: bool) -> str | None:
        value = data.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value or len(value) > 100:
            raise _error(400, f"'{key}' must be a non-empty string of at most 100 characters")
        return value

    def operate(request: web.Request, action: Any) -> web.Response:
        agent = request.match_info["agent"]
        if agent not in callpath.site.agents:
            raise _error(404, f"unknown agent {agent!r}")
        try:
            action(agent)
        except IllegalTransition as exc:
            raise _error(409, str(exc)) from None
        except (RoutingError, ConfigError) as exc:
            raise _error(409 if agent in engine.agents else 404, str(exc)) from None
        return web.json_response(_agent_view(engine, callpath, agent))

    async def login(request: web.Request) -> web.Response:
        endpoint = text_field(await body(request), "endpoint", required=False)
        return operate(request, lambda a: callpath.agent_login(a, endpoint))

    async def ready(request: web.Request) -> web.Response:
        return operate(request, callpath.agent_ready)

    async def pause(request: web.Request) -> web.Response:
        reason = text_field(await body(request), "reason", required=True)
        assert reason is not None
        return operate(request, lambda a: callpath.agent_pause(a, reason))

    async def end_wrapup(request: web.Request) -> web.Response:
        return operate(request, callpath.end_wrapup)

    async def logout(request: web.Request) -> web.Response:
        return operate(request, callpath.agent_logout)

    async def transfer(request: web.Request) -> web.Response:
        data = await body(request)
        queue = text_field(data, "queue", required=False)
        number = text_field(data, "number", required=False)
        to_agent = text_field(data, "agent", required=False)
        agent = request.match_info["agent"]
        if agent not in callpath.site.agents:
            raise _error(404, f"unknown agent {agent!r}")
        try:
            interaction = await callpath.blind_transfer(
                agent, queue=queue, number=number, to_agent=to_agent
            )
        except RoutingError as exc:
            raise _error(409, str(exc)) from None
        except AsteriskError as exc:
            raise _error(502, f"Asterisk refused: {exc}") from None
        return web.json_response(
            {"interaction": interaction, "queue": queue, "agent": to_agent, "number": number}
        )

    async def consult(request: web.Request) -> web.Response:
        number = text_field(await body(request), "number", required=True) or ""
        return await call_action(request, lambda agent: callpath.consult(agent, number))

    async def consult_complete(request: web.Request) -> web.Response:
        return await call_action(request, callpath.complete_transfer)

    async def consult_cancel(request: web.Request) -> web.Response:
        return await call_action(request, callpath.cancel_transfer)

    async def call_action(request: web.Request, action: Any) -> web.Response:
        agent = request.match_info["agent"]
        if agent not in callpath.site.agents:
            raise _error(404, f"unknown agent {agent!r}")
        try:
            interaction = await action(agent)
        except RoutingError as exc:
            raise _error(409, str(exc)) from None
        except AsteriskError as exc:
            raise _error(502, f"Asterisk refused: {exc}") from None
        return web.json_response({"interaction": interaction})

    async def conference(request: web.Request) -> web.Response:
        data = await body(request)
        number = text_field(data, "number", required=False)
        other = text_field(data, "agent", required=False)
        agent = request.match_info["agent"]
        if agent not in callpath.site.agents:
            raise _error(404, f"unknown agent {agent!r}")
        try:
            room = await callpath.conference(agent, number=number, agent=other)
        except RoutingError as exc:
            raise _error(409, str(exc)) from None
        except AsteriskError as exc:
            raise _error(502, f"Asterisk refused: {exc}") from None
        return web.json_response({"room": room})

    async def disposition(request: web.Request) -> web.Response:
        data = await body(request)
        agent = text_field(data, "agent", required=True) or ""
        code = text_field(data, "code", required=True) or ""
        notes = data.get("notes", "")
        if not isinstance(notes, str) or len(notes) > 4000:
            raise _error(400, "'notes' must be a string of at most 4000 characters")
        wanted = request.match_info["interaction"]
        try:
            callpath.set_disposition(wanted, agent, code, notes)
        except RoutingError as exc:
            raise _error(409, str(exc)) from None
        return web.json_response({"interaction": wanted, "code": code})

    async def coach(request: web.Request) -> web.Response:
        data = await body(request)
        agent = text_field(data, "agent", required=True)
        mode_text = text_field(data, "mode", required=True)
        try:
            mode = SpyMode(mode_text or "")
        except ValueError:
            raise _error(400, "'mode' must be listen, whisper or barge") from None
        supervisor = request.match_info["supervisor"]
        if supervisor not in callpath.site.supervisors:
            raise _error(404, f"unknown supervisor {supervisor!r}")
        try:
            leg = await callpath.coach(supervisor, agent or "", mode)
        except RoutingError as exc:
            raise _error(409, str(exc)) from None
        except AsteriskError as exc:
            raise _error(502, f"Asterisk refused: {exc}") from None
        return web.json_response({"supervisor_leg": leg, "agent": agent, "mode": mode.value})

    async def agents(_request: web.Request) -> web.Response:
        return web.json_response(
            [_agent_view(engine, callpath, agent) for agent in sorted(callpath.site.agents)]
        )

    async def queues(_request: web.Request) -> web.Response:
        now = callpath.clock.now()
        view: dict[str, dict[str, Any]] = {
            name: {"waiting": 0, "longest_wait": 0.0, "ringing": 0} for name in callpath.site.queues
        }
        for record in callpath.calls.values():
            entry = view[record.queue]
            if record.waiting:
                entry["waiting"] += 1
                entry["longest_wait"] = max(
                    entry["longest_wait"], round(now - record.arrived_at, 1)
                )
            if record.phase == "ringing":
                entry["ringing"] += 1
        return web.json_response(view)

    async def interaction(request: web.Request) -> web.Response:
        wanted = request.match_info["interaction"]
        record = callpath.calls.get(wanted) or next(
            (r for r in reversed(callpath.history) if r.interaction_id == wanted), None
        )
        if record is None:
            raise _error(404, f"unknown interaction {wanted!r}")
        return web.json_response(_interaction_view(record))

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
        web.post("/api/supervisors/{supervisor}/coach", coach),
        web.get("/api/agents", agents),
        web.get("/api/queues", queues),
        web.get("/api/interactions/{interaction}", interaction),
    ]


def _error(status: int, message: str) -> web.HTTPException:
    kinds: dict[int, type[web.HTTPException]] = {
        400: web.HTTPBadRequest,
        404: web.HTTPNotFound,
        409: web.HTTPConflict,
        502: web.HTTPBadGateway,
    }
    return kinds[status](text=json.dumps({"error": message}), content_type="application/json")


def _agent_view(engine: Engine, callpath: CallPath, agent_id: str) -> dict[str, Any]:
    live = engine.agents.get(agent_id)
    setup = callpath.site.agents[agent_id]
    return {
        "agent": agent_id,
        "name": setup.name,
        "endpoint": callpath.agent_endpoints.get(agent_id, setup.endpoint),
        "state": live.state.value if live else "logged_out",
        "since": live.since if live else None,
        "reason": (live.pause_reason if live else None),
        "interaction": live.interaction if live else None,
        "handled": live.handled if live else 0,
    }


def _interaction_view(record: CallRecord) -> dict[str, Any]:
    return {
        "interaction": record.interaction_id,
        "node": record.node,
        "caller_uniqueid": record.caller_uniqueid,
        "caller_number": record.caller_number,
        "queue": record.queue,
        "language": record.language,
        "phase": record.phase.value,
        "agent": record.agent_id,
        "offers": record.offers,
        "arrived_at": record.arrived_at,
        "answered_at": record.answered_at,
        "ended_at": record.ended_at,
        "abandoned_where": record.abandoned_where,
        "recording": record.recording,
        "callback_number": record.callback_number,
        "origin": record.origin,
        "context": record.context,
        "disposition": record.disposition,
        "notes": record.notes,
    }
