"""plotly.js embedded once, gzip-compressed, and figures drawn when it is ready.

The minified plotly.js that the ``plotly`` package ships (about 4.8 MB) would take almost all
of a 5 MB report. It is embedded instead as gzip (level 9) in base64, about 2 MB, and
decompressed by the browser's own ``DecompressionStream("gzip")`` (Compression Streams API:
https://developer.mozilla.org/en-US/docs/Web/API/DecompressionStream; Chrome/Edge 80+,
Firefox 113+, Safari 16.4+), then run as an inline script. The report still opens offline
from a single file and keeps every trace type of the full bundle.

Figures are handed to ``liqbtPlot(id, figure, config)``, which waits for that promise, so
each figure's script may run before plotly.js is ready. The compressed text is deterministic
(gzip with mtime 0), so a report rendered twice is byte-identical.
"""

from __future__ import annotations

import base64
import gzip
import json
from functools import lru_cache

import plotly.graph_objects as go
from markupsafe import Markup

__all__ = ["figure_html", "plotlyjs_loader", "plotlyjs_payload"]

LOADER_JS = """
window.liqbtPlotly = (async function () {
  var text = document.getElementById("plotlyjs-gzip").textContent.trim();
  var bytes = Uint8Array.from(atob(text), function (c) { return c.charCodeAt(0); });
  var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  var code = await new Response(stream).text();
  var script = document.createElement("script");
  script.text = code;
  document.head.appendChild(script);
  return window.Plotly;
})();
window.liqbtPlot = function (id, figure, config) {
  return window.liqbtPlotly.then(function (Plotly) {
    return Plotly.newPlot(id, figure.data, figure.layout, config);
  });
};
"""


@lru_cache(maxsize=1)
def plotlyjs_payload() -> str:
    """Return the plotly package's minified plotly.js, gzip-compressed, in base64.

    Returns
    -------
    str
        ASCII text (about 2 MB for plotly.js 3.x).
    """
    from plotly.offline import get_plotlyjs

    raw = get_plotlyjs().encode("utf-8")
    return base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode("ascii")


def plotlyjs_loader() -> Markup:
    """Return the ``<script>`` elements that embed and start plotly.js (for ``<head>``).

    Returns
    -------
    markupsafe.Markup
        A data script holding :func:`plotlyjs_payload` and the inline loader that defines
        ``liqbtPlotly`` (a promise of ``Plotly``) and ``liqbtPlot``.
    """
    return Markup('<script id="plotlyjs-gzip" type="application/octet-stream">'
                  + plotlyjs_payload() + "</script>\n<script type=\"text/javascript\">"
                  + LOADER_JS + "</script>")


def figure_html(fig: go.Figure, div_id: str, config: dict, height: int) -> str:
    r"""Return a figure's ``<div>`` and the script that draws it once plotly.js is ready.

    Parameters
    ----------
    fig : plotly.graph_objects.Figure
    div_id : str
        Element id (fixed, so the report is deterministic).
    config : dict
        plotly.js config (mode bar, responsiveness).
    height : int
        Pixels.

    Returns
    -------
    str
        HTML; the figure JSON (arrays as plotly's base64 typed arrays) has every ``<``
        escaped as ``\u003c`` so no text in it can close the script element.
    """
    payload = fig.to_json().replace("<", "\\u003c")
    conf = json.dumps(config, sort_keys=True)
    return (f'<div id="{div_id}" class="plotly-graph-div" '
            f'style="height:{int(height)}px; width:100%;"></div>\n'
            f'<script type="text/javascript">liqbtPlot("{div_id}", {payload}, {conf});</script>')
