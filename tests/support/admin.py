"""Admin pages in tests: a changelist is checked for what it shows, not only for a 200."""
from __future__ import annotations

import html


def changelist(response, *, expect_rows: bool | None = None):
    """The ChangeList of an admin changelist response, after checking the page shows it: every row
    on the page links to its object, and every filter of the admin is rendered with its title.
    ``expect_rows`` True/False asserts there are / are not rows."""
    assert response.status_code == 200, response.content.decode()[:2000]
    cl = response.context["cl"]
    content = html.unescape(response.content.decode())
    rows = list(cl.result_list)
    for obj in rows:
        assert f"/{obj.pk}/change/" in content, f"row {obj!r} is not on the page"
    for spec in cl.filter_specs:
        assert str(spec.title) in content, f"filter {spec.title!r} is not on the page"
    assert len(cl.filter_specs) == len(cl.model_admin.list_filter)
    assert f"{cl.result_count} " in content or not rows  # the count ("3 entries" / "3 results")
    if expect_rows is not None:
        assert bool(rows) is expect_rows, rows
    return cl
