"""Drawings and interactive views for the notebooks.

Importing this package imports neither matplotlib nor ipywidgets: each function imports what it
draws with when it is called.  Every view has a deterministic ``text/plain`` face (what nbval
compares and a terminal prints) next to its picture or widget.

* Bytes: :func:`hex_view` (Wireshark-like annotated dump, HTML + text), :func:`hex_figure`,
  :func:`tcpdump` (``tcpdump -X`` of a simulated link).
* Flows: :func:`draw_topology` (hosts, links, trust, peername), :func:`sequence_view`.
* The right-to-left walk: :func:`walk_figure` (static), :func:`walk_view` (text/HTML snapshot),
  :class:`Stepper` (widget: Back/Next, ``real_ip_recursive``, trusted ranges, forged entries).
* Tables: :func:`profile_view`, :func:`acceptance_table`, :func:`modes_table`.
* :class:`ConfigForm` — paste an nginx.conf / haproxy.cfg and see what the broker records.
"""

from __future__ import annotations

from ._display import Drawing, Rendered, Table
from .flow import carried, draw_topology, sequence_view, trust_of
from .forms import ConfigForm
from .hexdump import HexView, hex_figure, hex_view, tcpdump
from .stepper import Stepper
from .tables import acceptance_table, modes_table, profile_view
from .walk import walk_figure, walk_state, walk_view

__all__ = [
    "ConfigForm",
    "Drawing",
    "HexView",
    "Rendered",
    "Stepper",
    "Table",
    "acceptance_table",
    "carried",
    "draw_topology",
    "hex_figure",
    "hex_view",
    "modes_table",
    "profile_view",
    "sequence_view",
    "tcpdump",
    "trust_of",
    "walk_figure",
    "walk_state",
    "walk_view",
]
