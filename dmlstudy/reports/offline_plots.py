"""An offline HTML template for ``dvc plots show``.

DVC's default page loads vega, vega-lite and vega-embed from a CDN, so it renders blank without
internet. This module inlines the three libraries (the versions DVC's renderer pins, installed
from npm with ``dvc_plots/package.json``) into a template with DVC's ``{plot_divs}`` placeholder::

    (cd dvc_plots && npm install --legacy-peer-deps)
    python -m dmlstudy.reports.offline_plots dvc_plots/node_modules dvc_plots/offline.html
    dvc plots show --html-template dvc_plots/offline.html

>>> page = build_template({"vega": "var vega={};"})
>>> "{plot_divs}" in page and "cdn" not in page
True
"""

from __future__ import annotations

import sys
from pathlib import Path

#: library -> file inside node_modules (UMD builds defining the globals vegaEmbed expects)
LIBRARIES = {
    "vega": "vega/build/vega.min.js",
    "vega-lite": "vega-lite/build/vega-lite.min.js",
    "vega-embed": "vega-embed/build/vega-embed.min.js",
}


def build_template(sources: dict[str, str]) -> str:
    """The page with every script inlined, in order; ``{plot_divs}`` is where DVC puts the plots."""
    scripts = []
    for name, code in sources.items():
        if "</script" in code.lower() or "{plot_divs}" in code:
            raise ValueError(f"{name} cannot be inlined: it contains '</script' or '{{plot_divs}}'")
        scripts.append(f"<script>/* {name} */\n{code}\n</script>")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            "<html>",
            "<head>",
            "<meta charset='utf-8'>",
            "<title>dmlstudy plots (offline)</title>",
            *scripts,
            "<style>table { border-spacing: 15px; } body { font-family: sans-serif; }</style>",
            "</head>",
            "<body>",
            "{plot_divs}",
            "</body>",
            "</html>",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(
            "usage: python -m dmlstudy.reports.offline_plots NODE_MODULES_DIR OUT_HTML",
            file=sys.stderr,
        )
        return 2
    modules, out = Path(args[0]), Path(args[1])
    missing = [str(modules / f) for f in LIBRARIES.values() if not (modules / f).is_file()]
    if missing:
        print(
            f"missing {', '.join(missing)}: run `npm install --legacy-peer-deps` in dvc_plots/ "
            "first",
            file=sys.stderr,
        )
        return 1
    out.write_text(
        build_template(
            {k: (modules / f).read_text(encoding="utf-8") for k, f in LIBRARIES.items()}
        ),
        encoding="utf-8",
    )
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
