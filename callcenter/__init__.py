"""callcenter: a telephony-first call-centre engine around Asterisk."""

__version__ = "0.1.0"
