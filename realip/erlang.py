"""Erlang/OTP's address grammar (``inet:parse_address``, ``inet:ntoa``) as EMQX uses it.

The implementation lives in EMQX's room, :mod:`realip.programs.emqx.erlang`; this module keeps
the public name.
"""

from .programs.emqx.erlang import *  # noqa: F403
from .programs.emqx.erlang import __all__  # noqa: F401
