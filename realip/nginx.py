"""nginx's own address grammar (``ngx_inet_addr``, ``ngx_parse_addr``, ``ngx_ptocidr`` …).

The implementation lives in nginx's room, :mod:`realip.programs.nginx.grammar`; this module keeps
the public name.
"""

from .programs.nginx.grammar import *  # noqa: F403
from .programs.nginx.grammar import BRACKETS_WITHOUT_PORT, __all__  # noqa: F401
