"""Declarative IVR: validated YAML scripts, a pure interpreter, designer tools.

Nothing here touches a live call: the FastAGI driver performs the requests
the interpreter yields (see :mod:`callcenter.ivr.messages`).
"""

from callcenter.ivr.interpreter import Interpreter, Session, interpret
from callcenter.ivr.loader import check_file, check_text, load_script, load_text
from callcenter.ivr.model import Problem, Script

__all__ = [
    "Interpreter",
    "Problem",
    "Script",
    "Session",
    "check_file",
    "check_text",
    "interpret",
    "load_script",
    "load_text",
]
