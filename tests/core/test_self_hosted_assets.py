"""Every static asset is served by us: no template loads a script, stylesheet, font or image from
another host (a CDN that cannot be reached leaves the page blank)."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXTERNAL = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=["'](?:https?:)?//""", re.I)
IMPORT = re.compile(r"""@import\s+(?:url\()?["']?(?:https?:)?//|url\(["']?(?:https?:)?//""", re.I)


def _files():
    for base in ("templates", "apps", "static"):
        for path in (ROOT / base).rglob("*"):
            if path.suffix in {".html", ".css", ".js"} and "vendor" not in path.parts:
                yield path


def test_no_template_or_stylesheet_loads_from_another_host():
    offenders = []
    for path in _files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for pattern in (EXTERNAL, IMPORT):
            offenders += [f"{path.relative_to(ROOT)}: {m.group(0)[:80]}" for m in pattern.finditer(text)]
    assert offenders == []
    assert any(True for _ in _files())


def test_the_api_docs_use_the_sidecar_assets(client):
    """Each asset of /v1/docs/ is one of our static files (the browser test loads them over HTTP)."""
    from django.contrib.staticfiles import finders

    page = client.get("/v1/docs/").content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets and all(a.startswith("/static/drf_spectacular_sidecar/") for a in assets), assets
    for asset in assets:
        assert finders.find(asset.removeprefix("/static/")), asset
