"""Build ``vendor/vega/offline_template.html``: DVC's plots page with vega, vega-lite and vega-embed inlined.

``dvc plots show`` / ``dvc plots diff`` write a page that loads these three scripts from a CDN, so on a machine
without internet (most GPU clusters) every plot is blank. ``.dvc/config`` points ``plots.html_template`` at the
page built here, which carries the scripts itself and leaves out DVC's ``{scripts}`` placeholder (the CDN tags).
The scripts come unchanged from the npm registry (see ``vendor/vega/README.md`` for versions, hashes and
licences). Run ``python scripts/build_plots_template.py`` after updating them; a test checks the page is current.
"""

from __future__ import annotations

import argparse
from pathlib import Path

VENDOR = Path(__file__).resolve().parents[1] / "vendor" / "vega"
#: Load order matters: vega-embed needs vega and vega-lite.
SCRIPTS = ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js")
PAGE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>mlfilter plots</title>
{scripts}
    <style>
        body {{ font-family: sans-serif; }}
        table {{ border-spacing: 15px; }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def build_page(vendor: Path = VENDOR) -> str:
    """The template's text: DVC's ``{plot_divs}`` and ``{refresh_tag}`` placeholders, the scripts inlined."""
    inlined = []
    for name in SCRIPTS:
        source = (vendor / name).read_text(encoding="utf-8")
        if "</script" in source.lower():
            raise ValueError(f"{vendor / name}: contains '</script', which cannot be inlined")
        inlined.append(f"    <!-- {name} (npm; see vendor/vega/README.md) -->\n    <script>{source}</script>")
    return PAGE.format(scripts="\n".join(inlined))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=VENDOR / "offline_template.html")
    args = parser.parse_args()
    args.output.write_text(build_page(), encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
