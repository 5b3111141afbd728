"""Notebook 10's form: paste configurations, pick a client and forged headers, see what the
broker records and why.  The work is :func:`realip.teaching.explore`; this is only its face."""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Any

from ._display import esc

if TYPE_CHECKING:
    from ..teaching import Exploration

__all__ = ["ConfigForm"]

#: What separates two hops' files in the text area.
SEPARATOR = "# --- next hop ---"


class ConfigForm:
    """A form around :func:`realip.teaching.explore`: a text area for one or more
    configurations (separated by a line ``# --- next hop ---``), the client's address, a forged
    X-Forwarded-For, EMQX's address header, and a Simulate button.  The result (what each link
    carries, every decision, the peername, a drawing) appears below; errors go to an ``Output``.

    ``run()`` simulates the current inputs without widgets; ``result`` is the last
    :class:`~realip.teaching.Exploration` (or None after an error) and ``errors`` every error
    message shown.
    """

    def __init__(self, configs: str = "", *, client: str = "1.94.170.163:50412",
                 forge_xff: str = "", address_header: str = "X-Forwarded-For") -> None:
        self.configs = configs
        self.client = client
        self.forge_xff = forge_xff
        self.address_header = address_header
        self.errors: list[str] = []
        self.result: Exploration | None = None
        self._ui: dict[str, Any] | None = None
        self.run()

    def texts(self) -> list[str]:
        """The pasted files, one per hop."""
        parts: list[str] = []
        current: list[str] = []
        for line in self.configs.splitlines():
            if line.strip() == SEPARATOR:
                parts.append("\n".join(current))
                current = []
            else:
                current.append(line)
        parts.append("\n".join(current))
        return [p for p in parts if p.strip()]

    def run(self) -> Exploration | None:
        """Simulate the current inputs; an error is recorded (and shown), not raised."""
        from ..teaching import explore

        try:
            self.result = explore(self.texts(), client=self.client,
                                  forge_xff=self.forge_xff or None,
                                  broker={"proxy_address_header": self.address_header})
        except Exception as exc:
            from ..errors import RealIPError

            message = (f"{type(exc).__name__}: {exc}" if isinstance(exc, RealIPError) else
                       "".join(traceback.format_exception(exc)).rstrip())
            self.errors.append(message)
            self.result = None
        return self.result

    def text(self) -> str:
        """The outcome as text (the last error when the inputs could not be simulated)."""
        if self.result is None:
            return "could not simulate: " + (self.errors[-1] if self.errors else "no input")
        return repr(self.result)

    def __repr__(self) -> str:
        return self.text()

    def _html(self) -> str:
        return f'<pre class="realip-form-result" style="font-size:80%">{esc(self.text())}</pre>'

    def widget(self) -> Any:
        """The ipywidgets form (built once)."""
        if self._ui is not None:
            return self._ui["box"]
        import ipywidgets as w  # type: ignore[import-untyped]

        area = w.Textarea(value=self.configs, layout=w.Layout(width="100%", height="260px"),
                          description="", placeholder=f"nginx.conf or haproxy.cfg; separate "
                          f"hops with a line {SEPARATOR}")
        client = w.Text(value=self.client, description="client addr:port",
                        style={"description_width": "initial"})
        forged = w.Text(value=self.forge_xff, description="forged X-Forwarded-For",
                        style={"description_width": "initial"})
        header = w.ToggleButtons(options=["X-Forwarded-For", "X-Real-IP"],
                                 value=self.address_header if self.address_header in
                                 ("X-Forwarded-For", "X-Real-IP") else "X-Forwarded-For",
                                 description="EMQX proxy_address_header",
                                 style={"description_width": "initial"})
        button = w.Button(description="Simulate", button_style="primary")
        button.add_class("realip-simulate")
        result = w.Output()
        errors = w.Output()
        errors.add_class("realip-errors")
        box = w.VBox([area, w.HBox([client, forged]), header, button, result, errors])
        box.add_class("realip-config-form")
        self._ui = {"box": box, "result": result, "errors": errors}

        def simulate(_b: Any) -> None:
            try:
                self.configs, self.client = area.value, client.value
                self.forge_xff, self.address_header = forged.value, header.value
                before = len(self.errors)
                self.run()
                self._show()
                errors.outputs = ()
                for message in self.errors[before:]:
                    errors.append_stderr(message + "\n")
            except Exception as exc:  # never lose a callback error
                message = "".join(traceback.format_exception(exc)).rstrip()
                self.errors.append(message)
                errors.append_stderr(message + "\n")

        button.on_click(simulate)
        self._show()
        return box

    def _show(self) -> None:
        if self._ui is None:
            return
        out = self._ui["result"]
        out.outputs = ()
        out.append_stdout(self.text() + "\n")
        if self.result is not None:
            import base64

            from .flow import draw_topology

            drawing = draw_topology(self.result.trace)
            png = base64.b64encode(drawing.png()).decode("ascii")
            out.outputs += ({"output_type": "display_data", "metadata": {},
                             "data": {"image/png": png, "text/plain": drawing.text}},)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = dict(self.widget()._repr_mimebundle_())
        bundle["text/plain"] = self.text()
        bundle["text/html"] = self._html()
        return bundle
