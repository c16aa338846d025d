"""Draw a script as a Graphviz DOT graph, for designers to review.

Pure text generation: the CLI pipes the result to ``dot``. Each node shows
its id, its type and what the caller hears (in the chosen language); edges
carry the key, intent or condition that takes them.
"""

from __future__ import annotations

import textwrap

from callcenter.ivr.model import (
    TYPE_NAMES,
    AnyNode,
    CallbackNode,
    CollectNode,
    Flow,
    HttpNode,
    IdentifyNode,
    MenuNode,
    PlayNode,
    Prompt,
    QueueNode,
    Script,
    SetNode,
    SpeechNode,
    SubflowNode,
    SurveyNode,
    TransferNode,
    VoicemailNode,
    targets,
)

EDGE_LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "failure": "échec",
        "fallback": "repli clavier",
        "found": "reconnu",
        "not_found": "inconnu",
        "success": "identifié",
        "locked": "bloqué",
        "error": "erreur",
        "else": "sinon",
        "accepted": "accepté",
        "declined": "refusé",
        "after": "ensuite",
    },
    "en": {
        "failure": "failure",
        "fallback": "keypad fallback",
        "found": "found",
        "not_found": "unknown",
        "success": "identified",
        "locked": "locked",
        "error": "error",
        "else": "else",
        "accepted": "accepted",
        "declined": "declined",
        "after": "then",
    },
}
TYPE_LABELS = {
    "fr": {
        "play": "annonce", "menu": "menu", "collect": "saisie", "speech": "voix",
        "identify": "identification", "condition": "condition", "set": "réglage",
        "http": "requête web", "queue": "file d'attente", "voicemail": "messagerie",
        "callback": "rappel", "transfer": "transfert", "survey": "enquête",
        "goto": "aller à", "subflow": "sous-flux", "return": "retour", "hangup": "raccrocher",
    },
}  # fmt: skip

# (shape, fill colour) per node type; terminal nodes also get a double border.
STYLE = {
    "play": ("box", "#dbeafe"),
    "menu": ("box", "#fef3c7"),
    "collect": ("box", "#fef3c7"),
    "speech": ("box", "#fde68a"),
    "identify": ("box", "#e9d5ff"),
    "condition": ("diamond", "#f3f4f6"),
    "set": ("box", "#f3f4f6"),
    "http": ("cylinder", "#e0f2fe"),
    "queue": ("box", "#bbf7d0"),
    "voicemail": ("box", "#fecaca"),
    "callback": ("box", "#fed7aa"),
    "transfer": ("box", "#bbf7d0"),
    "survey": ("box", "#fef3c7"),
    "goto": ("box", "#e5e7eb"),
    "subflow": ("component", "#e5e7eb"),
    "return": ("box", "#e5e7eb"),
    "hangup": ("octagon", "#fecaca"),
}
TERMINAL = {"queue", "voicemail", "transfer", "hangup"}
ALARMING = {"failure", "error", "locked", "fallback", "declined"}


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _wrap(text: str, width: int = 34, lines: int = 3) -> str:
    parts = textwrap.wrap(text, width) or [""]
    if len(parts) > lines:
        parts = [*parts[: lines - 1], parts[lines - 1][: width - 1] + "…"]
    return "\n".join(parts)


def _prompt_text(prompt: Prompt | None, language: str) -> str:
    if prompt is None:
        return ""
    if prompt.file is not None:
        return f"♪ {prompt.file}"
    return f"« {_wrap(prompt.texts.get(language, ''))} »"


def _detail(node: AnyNode, language: str) -> str:
    if isinstance(node, PlayNode):
        if node.say_kind is not None:
            return f"dire {node.say_kind}" if language == "fr" else f"say {node.say_kind}"
        return _prompt_text(node.prompt, language)
    if isinstance(node, MenuNode | CollectNode | SpeechNode):
        extra = f"→ {node.variable}\n" if isinstance(node, CollectNode) else ""
        return extra + _prompt_text(node.prompt, language)
    if isinstance(node, IdentifyNode):
        return node.method.replace("_", " ")
    if isinstance(node, SetNode):
        bits = [f"{k} = {v}" for k, v in node.values.items()]
        bits += [f"{k} = …" for k in node.computed]
        if node.language:
            bits.append(
                f"langue = {node.language}" if language == "fr" else f"language = {node.language}"
            )
        if node.priority is not None:
            bits.append(
                f"priorité = {node.priority}" if language == "fr" else f"priority = {node.priority}"
            )
        bits += [f"skill {k} ≥ {v}" for k, v in node.skills.items()]
        return "\n".join(bits)
    if isinstance(node, HttpNode):
        return _wrap(f"{node.method} {node.url}", 40, 2)
    if isinstance(node, QueueNode):
        skills = ", ".join(f"{k}≥{v}" for k, v in node.skills.items())
        return (
            f"{node.queue}"
            + (f"\n{skills}" if skills else "")
            + (f"\nprio +{node.priority}" if node.priority else "")
        )
    if isinstance(node, VoicemailNode):
        return node.mailbox
    if isinstance(node, CallbackNode):
        return f"→ {node.queue}\n" + _prompt_text(node.prompt, language)
    if isinstance(node, TransferNode):
        return node.number or f"script {node.script}"
    if isinstance(node, SurveyNode):
        comment = " + commentaire" if language == "fr" else " + comment"
        return "CSAT 1-5" + (comment if node.comment_prompt else "")
    if isinstance(node, SubflowNode):
        return node.flow
    return ""


def _node_id(flow: Flow, nid: str) -> str:
    return f"{flow.name}/{nid}" if flow.name else nid


def _edge_label(label: str, language: str) -> str:
    words = EDGE_LABELS.get(language, EDGE_LABELS["en"])
    if label in words:
        return words[label]
    if len(label) == 1 and label in "0123456789*#":
        return f"touche {label}" if language == "fr" else f"key {label}"
    return _wrap(label, 28, 2)


def _flow_lines(flow: Flow, language: str, indent: str) -> list[str]:
    lines: list[str] = []
    for nid, node in flow.nodes.items():
        kind = TYPE_NAMES[type(node)]
        shape, fill = STYLE[kind]
        kind_label = TYPE_LABELS.get(language, {}).get(kind, kind)
        label = f"{nid}\n[{kind_label}]"
        detail = _detail(node, language)
        if detail:
            label += f"\n{detail}"
        if node.description:
            label += f"\n({_wrap(node.description, 34, 2)})"
        attrs = [f"label={_quote(label)}", f"shape={shape}", f'fillcolor="{fill}"']
        if kind in TERMINAL or (isinstance(node, SurveyNode) and node.next is None):
            attrs.append("peripheries=2")
        lines.append(f"{indent}{_quote(_node_id(flow, nid))} [{', '.join(attrs)}];")
    return lines


def _edges(flow: Flow, language: str, script: Script) -> list[str]:
    lines: list[str] = []
    for nid, node in flow.nodes.items():
        source = _quote(_node_id(flow, nid))
        # One arrow per destination: "échec / erreur" reads better than two
        # parallel arrows to the same node.
        merged: dict[str, list[str]] = {}
        for label, target in targets(node):
            labels = merged.setdefault(target, [])
            if label and label not in labels:
                labels.append(label)
        for target, labels in merged.items():
            text = " / ".join(_edge_label(label, language) for label in labels)
            attrs = [f"label={_quote(text)}"] if text else []
            if labels and all(label in ALARMING for label in labels):
                attrs.append('color="#b91c1c", fontcolor="#b91c1c"')
            lines.append(f"  {source} -> {_quote(_node_id(flow, target))} [{', '.join(attrs)}];")
        if isinstance(node, SubflowNode):
            sub = script.subflows[node.flow]
            lines.append(
                f"  {source} -> {_quote(_node_id(sub, sub.start))} [style=dashed, color=gray40];"
            )
    return lines


def to_dot(script: Script, language: str | None = None) -> str:
    """DOT source of *script*'s flow; prompts shown in *language*."""
    lang = language or script.default_language
    title = script.name + (f" — {script.description}" if script.description else "")
    lines = [
        f"digraph {_quote(script.name)} {{",
        f"  label={_quote(title)}; labelloc=t; fontsize=16; fontname=Helvetica;",
        "  rankdir=TB; nodesep=0.35; ranksep=0.45;",
        '  node [style="rounded,filled", fontname=Helvetica, fontsize=10, margin="0.12,0.06"];',
        "  edge [fontname=Helvetica, fontsize=9, color=gray30];",
        '  "__start" [shape=circle, label="", width=0.25, style=filled, fillcolor=black];',
        f'  "__start" -> {_quote(script.main.start)};',
        *_flow_lines(script.main, lang, "  "),
    ]
    for name, flow in script.subflows.items():
        lines.append(f"  subgraph {_quote('cluster_' + name)} {{")
        lines.append(f'    label={_quote(name)}; style="rounded,dashed"; color=gray50;')
        lines.extend(_flow_lines(flow, lang, "    "))
        lines.append("  }")
    for flow in (script.main, *script.subflows.values()):
        lines.extend(_edges(flow, lang, script))
    lines.append("}")
    return "\n".join(lines) + "\n"
