"""Which ``$variables`` nginx 1.22.1 (Debian 12's ``nginx``) knows in ``http``, as data, and the
check ``nginx -t`` makes: a value that names any other variable stops nginx from starting
(``[emerg] unknown "name" variable``).

The list was read off the real nginx 1.22.1: each name below was put in a ``proxy_set_header``
value and ``nginx -t`` accepted it; names are matched case-insensitively (``$Host`` works), and
``$1``…``$9`` are regex captures (``$0`` is unknown).  Variables a configuration defines itself
(``map``, ``set``, ``geo``, ``split_clients``) are passed in as *defined*.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ...errors import ConfigurationError

__all__ = ["HTTP_PREFIXES", "HTTP_VARIABLES", "check_variables", "unknown_variables"]

#: Fixed names (ngx_http_core, proxy, realip, ssl, upstream and the other modules Debian builds in).
HTTP_VARIABLES = frozenset([
    "ancient_browser", "args", "binary_remote_addr", "body_bytes_sent", "bytes_sent",
    "connection", "connection_requests", "connection_time", "connections_active",
    "connections_reading", "connections_waiting", "connections_writing", "content_length",
    "content_type", "date_gmt", "date_local", "document_root", "document_uri",
    "fastcgi_path_info", "fastcgi_script_name", "gzip_ratio", "host", "hostname", "http2",
    "https", "invalid_referer", "is_args", "limit_conn_status", "limit_rate",
    "limit_req_status", "modern_browser", "msec", "msie", "nginx_version", "pid", "pipe",
    "proxy_add_x_forwarded_for", "proxy_host", "proxy_port", "proxy_protocol_addr",
    "proxy_protocol_port", "proxy_protocol_server_addr", "proxy_protocol_server_port",
    "query_string", "realip_remote_addr", "realip_remote_port", "realpath_root", "remote_addr",
    "remote_port", "remote_user", "request", "request_body", "request_body_file",
    "request_completion", "request_filename", "request_id", "request_length", "request_method",
    "request_time", "request_uri", "scheme", "secure_link", "secure_link_expires",
    "server_addr", "server_name", "server_port", "server_protocol", "slice_range",
    "ssl_alpn_protocol", "ssl_cipher", "ssl_ciphers", "ssl_client_cert",
    "ssl_client_escaped_cert", "ssl_client_fingerprint", "ssl_client_i_dn",
    "ssl_client_i_dn_legacy", "ssl_client_raw_cert", "ssl_client_s_dn",
    "ssl_client_s_dn_legacy", "ssl_client_serial", "ssl_client_v_end", "ssl_client_v_remain",
    "ssl_client_v_start", "ssl_client_verify", "ssl_curve", "ssl_curves", "ssl_early_data",
    "ssl_protocol", "ssl_server_name", "ssl_session_id", "ssl_session_reused", "status",
    "tcpinfo_rcv_space", "tcpinfo_rtt", "tcpinfo_rttvar", "tcpinfo_snd_cwnd", "time_iso8601",
    "time_local", "uid_got", "uid_reset", "uid_set", "upstream_addr",
    "upstream_bytes_received", "upstream_bytes_sent", "upstream_cache_status",
    "upstream_connect_time", "upstream_header_time", "upstream_response_length",
    "upstream_response_time", "upstream_status", "uri", "proxy_internal_body_length",
    "proxy_internal_chunked",
])

#: Families of names: ``$http_<header>``, ``$arg_<name>``, … (the bare prefix is accepted too).
HTTP_PREFIXES = ("http_", "sent_http_", "sent_trailer_", "cookie_", "arg_", "upstream_http_",
                 "upstream_cookie_", "upstream_trailer_")

_VAR = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


def unknown_variables(template: str, defined: Iterable[str] = ()) -> list[str]:
    """The variable names in *template* that nginx 1.22.1 would refuse, in order."""
    own = {d.lower().lstrip("$") for d in defined}
    bad = []
    for m in _VAR.finditer(template):
        name = m.group(1) or m.group(2)
        low = name.lower()
        if low in HTTP_VARIABLES or low in own or low.startswith(HTTP_PREFIXES):
            continue
        if len(low) == 1 and low in "123456789":
            continue
        bad.append(name)
    return bad


def check_variables(template: str, defined: Iterable[str] = (), *, where: str = "") -> None:
    """Raise :class:`~realip.errors.ConfigurationError` with nginx's own words when *template*
    names a variable nginx does not know (it would refuse to start)."""
    bad = unknown_variables(template, defined)
    if bad:
        at = f"{where}: " if where else ""
        raise ConfigurationError(
            f'{at}unknown "{bad[0]}" variable (nginx -t refuses the configuration: '
            f'[emerg] unknown "{bad[0]}" variable); variables come from nginx\'s modules '
            "($remote_addr, $http_<header>, $proxy_add_x_forwarded_for, …) or from a map/set "
            "in the configuration")
