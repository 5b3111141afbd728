"""The right-to-left recursion stepper: nginx's ``real_ip_recursive`` walk, one click per step.

:class:`Stepper` keeps the inputs of :func:`realip.resolve.nginx_realip` (the TCP peer, the
X-Forwarded-For the proxies built, what the client forged, ``set_real_ip_from`` and
``real_ip_recursive``), re-runs the resolver whenever one of them changes and shows the
resolver's own trace one step at a time.  It never walks the header itself.

The state and its text/HTML are plain Python (testable without a browser); the ipywidgets view is
built on first display.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._display import esc
from .walk import WalkState, walk_html, walk_state, walk_text

if TYPE_CHECKING:
    from ..resolve import Resolution
    from ..topology import Trace

__all__ = ["Stepper"]


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]


class Stepper:
    """Step through nginx's X-Forwarded-For walk.

    *peer* is the TCP peer of the hop running the realip module (``$realip_remote_addr``),
    *xff* the X-Forwarded-For value the proxies built in front of it (without the client's own
    part), *forged* what the client wrote in its own X-Forwarded-For (prepended, may be empty),
    *set_real_ip_from* the trusted ranges (a list, or a comma-separated string) and *recursive*
    ``real_ip_recursive``.

    ``next()``/``back()`` move the cursor; ``set(...)`` changes an input and re-runs
    :func:`~realip.resolve.nginx_realip`.  ``text()``/``html()`` render the current state;
    in Jupyter the object displays as a widget (Back/Next buttons, a ``real_ip_recursive``
    checkbox, text fields for the trusted ranges and the forged entries, and an ``Output`` where
    any error raised by a callback is shown).
    """

    def __init__(self, peer: str, xff: str | Sequence[str] = "", *,
                 set_real_ip_from: str | Sequence[str] = (), recursive: bool = True,
                 forged: str | Sequence[str] = "", peer_port: int | None = None,
                 title: str = "") -> None:
        self.peer = peer
        self.peer_port = peer_port
        self.xff = xff if isinstance(xff, str) else ", ".join(xff)
        self.forged = forged if isinstance(forged, str) else ", ".join(forged)
        self.trusted: tuple[str, ...] = tuple(
            _split(set_real_ip_from) if isinstance(set_real_ip_from, str) else set_real_ip_from)
        self.recursive = recursive
        self.title = title
        self.errors: list[str] = []
        self.cursor = 0
        self.resolution: Resolution = self._resolve()
        self._ui: dict[str, Any] | None = None

    # -- construction from a simulated flow --------------------------------------------------
    @classmethod
    def from_trace(cls, trace: Trace, hop: str) -> Stepper:
        """A stepper for nginx hop *hop* of a simulated *trace*: its TCP peer and the
        X-Forwarded-For it received (the client's own part taken as forged), its
        ``set_real_ip_from`` and ``real_ip_recursive``."""
        from ..forwarded import header_lines

        node = trace.topology.hop(hop)
        link = next(lk for lk in trace.links if lk.receiver == hop)
        line = ", ".join(header_lines(link.http_headers(), "x-forwarded-for"))
        client = trace.links[0].http_headers()
        forged = ", ".join(header_lines(client, "x-forwarded-for"))
        honest = line
        if forged and line.startswith(forged):
            honest = line[len(forged):].lstrip(" ,")
        else:
            forged = ""
        return cls(str(link.src).rsplit(":", 1)[0], honest,
                   set_real_ip_from=tuple(getattr(node, "set_real_ip_from", ())),
                   recursive=bool(getattr(node, "real_ip_recursive", True)), forged=forged,
                   peer_port=link.src.port,
                   title=f"{hop} receives X-Forwarded-For from {link.sender}")

    # -- the model ---------------------------------------------------------------------------
    @property
    def line(self) -> str:
        """The X-Forwarded-For line the resolving hop receives."""
        return ", ".join(p for p in (self.forged.strip(" ,"), self.xff.strip(" ,")) if p)

    @property
    def forged_count(self) -> int:
        """How many entries, from the left, the client forged."""
        return len([p for p in self.forged.replace(" ", ",").split(",") if p])

    def _resolve(self) -> Resolution:
        from ..resolve import nginx_realip

        headers = [("X-Forwarded-For", self.line)] if self.line else []
        return nginx_realip(self.peer, headers, set_real_ip_from=self.trusted,
                            real_ip_header="X-Forwarded-For", recursive=self.recursive,
                            peer_port=self.peer_port)

    @property
    def total(self) -> int:
        """Number of steps in the resolver's trace."""
        return len(self.resolution.trace)

    def state(self) -> WalkState:
        """The walk at the cursor."""
        return walk_state(self.resolution, self.cursor, forged=self.forged_count)

    def next(self) -> Stepper:
        """One step further left (stays on the last step)."""
        self.cursor = min(self.cursor + 1, max(self.total - 1, 0))
        self._refresh()
        return self

    def back(self) -> Stepper:
        """One step back to the right (stays on the first step)."""
        self.cursor = max(self.cursor - 1, 0)
        self._refresh()
        return self

    def goto(self, step: int) -> Stepper:
        """Show step *step* (0-based; negative counts from the end)."""
        self.cursor = step % self.total if self.total else 0
        self._refresh()
        return self

    def set(self, *, recursive: bool | None = None, set_real_ip_from: str | Sequence[str] |
            None = None, forged: str | None = None, xff: str | None = None) -> Stepper:
        """Change inputs and re-run the resolver; the cursor stays on its step (or the last
        one, when the new walk is shorter) so the learner keeps their place.  A bad
        ``set_real_ip_from`` entry raises :class:`~realip.ConfigurationError` and leaves the
        stepper as it was."""
        old = (self.recursive, self.trusted, self.forged, self.xff)
        if recursive is not None:
            self.recursive = recursive
        if set_real_ip_from is not None:
            self.trusted = tuple(_split(set_real_ip_from) if isinstance(set_real_ip_from, str)
                                 else set_real_ip_from)
        if forged is not None:
            self.forged = forged
        if xff is not None:
            self.xff = xff
        try:
            self.resolution = self._resolve()
        except Exception:
            self.recursive, self.trusted, self.forged, self.xff = old
            raise
        self.cursor = max(min(self.cursor, self.total - 1), 0)
        self._refresh()
        return self

    # -- faces -------------------------------------------------------------------------------
    def settings_text(self) -> str:
        """The configuration in nginx's words."""
        trusted = "; ".join(f"set_real_ip_from {t}" for t in self.trusted) or \
            "(no set_real_ip_from)"
        return (f"{trusted}; real_ip_header X-Forwarded-For; real_ip_recursive "
                f"{'on' if self.recursive else 'off'}")

    def text(self) -> str:
        """The current state as plain text."""
        head = [self.title] if self.title else []
        head.append(self.settings_text())
        head.append(f"X-Forwarded-For: {self.line}   (TCP peer {self.peer})")
        return "\n".join([*head, walk_text(self.state())])

    def html(self) -> str:
        """The current state as HTML (stable classes, see :func:`realip.viz.walk.walk_html`)."""
        return (f'<div class="realip-stepper-view"><div style="font-family:monospace;'
                f'font-size:85%">{esc(self.settings_text())}<br>X-Forwarded-For: '
                f"{esc(self.line)}</div>{walk_html(self.state())}</div>")

    def __repr__(self) -> str:
        return self.text()

    # -- widgets -----------------------------------------------------------------------------
    def _guard(self, fn: Callable[..., None]) -> Callable[..., None]:
        """Run a widget callback; any exception goes to the Output widget and ``errors``."""
        def run(*args: Any) -> None:
            try:
                fn(*args)
            except Exception as exc:
                from ..errors import RealIPError

                if isinstance(exc, RealIPError):
                    message = f"{type(exc).__name__}: {exc}"
                else:
                    message = "".join(traceback.format_exception(exc)).rstrip()
                self.errors.append(message)
                if self._ui is not None:
                    self._ui["output"].append_stderr(message + "\n")
        return run

    def widget(self) -> Any:
        """The ipywidgets view (built once): controls, the row, Back/Next, errors."""
        if self._ui is not None:
            return self._ui["box"]
        import ipywidgets as w  # type: ignore[import-untyped]

        recursive = w.Checkbox(value=self.recursive, description="real_ip_recursive on",
                               indent=False)
        # the fields apply as you type (a half-typed range shows its error below, then clears)
        trusted = w.Text(value=", ".join(self.trusted), description="set_real_ip_from",
                         placeholder="(empty: nothing trusted)",
                         continuous_update=True, style={"description_width": "initial"},
                         layout=w.Layout(width="360px"))
        forged = w.Text(value=self.forged, description="forged X-Forwarded-For",
                        placeholder="(empty: the client forges nothing)",
                        continuous_update=True, style={"description_width": "initial"},
                        layout=w.Layout(width="360px"))
        view = w.HTML(value=self.html())
        back = w.Button(description="◀ Back", tooltip="previous step (to the right)")
        nxt = w.Button(description="Next ▶", tooltip="next step (further left)")
        back.add_class("realip-back")
        nxt.add_class("realip-next")
        position = w.HTML()
        output = w.Output()
        output.add_class("realip-errors")
        title = w.HTML(value=f"<b>{esc(self.title)}</b>" if self.title else "")
        box = w.VBox([title, w.HBox([recursive, trusted]), forged, view,
                      w.HBox([back, nxt, position]), output])
        box.add_class("realip-stepper")
        self._ui = {"box": box, "view": view, "back": back, "next": nxt, "position": position,
                    "output": output, "recursive": recursive, "trusted": trusted,
                    "forged": forged}
        back.on_click(self._guard(lambda _b: self._move(-1)))
        nxt.on_click(self._guard(lambda _b: self._move(1)))
        recursive.observe(self._guard(lambda ch: self._changed(recursive=ch["new"])), "value")
        trusted.observe(self._guard(lambda ch: self._changed(set_real_ip_from=ch["new"])),
                        "value")
        forged.observe(self._guard(lambda ch: self._changed(forged=ch["new"])), "value")
        self._refresh()
        return box

    def _move(self, by: int) -> None:
        if by < 0:
            self.back()
        else:
            self.next()

    def _changed(self, **change: Any) -> None:
        self.set(**change)
        if self._ui is not None:
            self._ui["output"].outputs = ()

    def _refresh(self) -> None:
        ui = self._ui
        if ui is None:
            return
        ui["view"].value = self.html()
        ui["back"].disabled = self.cursor <= 0
        ui["next"].disabled = self.cursor >= self.total - 1
        ui["position"].value = (
            f'<span style="margin-left:8px">step {self.cursor + 1} of {self.total}</span>'
            if self.total else '<span style="margin-left:8px">nothing to step through: '
            f"{esc(self.resolution.reason)}</span>")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = dict(self.widget()._repr_mimebundle_())
        bundle["text/plain"] = self.text()
        bundle["text/html"] = self.html()
        return bundle
