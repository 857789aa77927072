"""Back-office Excel exports: one registry, one writer (``apps.core.xlsx``), inline or in the background.

A slice registers an exporter — a function ``(params) -> Export`` (the sheets, whose rows are
iterators, and the expected row count) — under a name. ``export_respond`` writes it inside the
request when it has at most ``EXPORT_INLINE_MAX_ROWS`` rows (100,000), else queues an ``ExportJob``
(after commit) whose Celery task writes the file under ``EXPORT_DIR`` with its progress saved every
10,000 rows; the admin (Platform › Exports) shows the progress and the download link.
"""
from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.http import FileResponse, HttpResponse
from django.utils import timezone

from apps.core.models import ExportJob, ExportState
from apps.core.xlsx import Sheet, write_xlsx

log = structlog.get_logger(__name__)

XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass
class Export:
    file_name: str
    sheets: Sequence[Sheet]
    rows: int  # expected data rows (decides inline or background; shown as the total)


EXPORTERS: dict[str, Callable[[dict], Export]] = {}


def register(name: str):
    def wrap(function: Callable[[dict], Export]) -> Callable[[dict], Export]:
        EXPORTERS[name] = function
        return function
    return wrap


def export_dir() -> Path:
    path = Path(settings.EXPORT_DIR)
    if not path.is_absolute():
        path = Path(settings.BASE_DIR) / path
    path.mkdir(parents=True, exist_ok=True)
    return path


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name)[:150] or "export.xlsx"


def export_respond(*, kind: str, params: dict, actor: AbstractBaseUser | None) -> HttpResponse | ExportJob:
    """The workbook as a download when small enough, else a queued ``ExportJob``."""
    export = EXPORTERS[kind](params)
    if export.rows <= settings.EXPORT_INLINE_MAX_ROWS:
        buffer = io.BytesIO()
        write_xlsx(buffer, export.sheets)
        response = HttpResponse(buffer.getvalue(), content_type=XLSX_CONTENT_TYPE)
        response["Content-Disposition"] = f'attachment; filename="{_safe(export.file_name)}"'
        return response
    job = ExportJob.objects.create(kind=kind, params=params, requested_by_id=getattr(actor, "pk", None),
                                   rows_total=export.rows, file_name=_safe(export.file_name))

    def enqueue() -> None:
        from apps.core.tasks import run_export

        run_export.delay(job.pk)

    transaction.on_commit(enqueue, robust=True)
    return job


def export_run(*, job_id: int) -> ExportJob:
    """Write a queued export to ``EXPORT_DIR/<id>-<name>`` with its progress; idempotent (a done job stays done)."""
    with transaction.atomic():
        job = ExportJob.objects.select_for_update().get(pk=job_id)
        if job.state == ExportState.DONE:
            return job
        job.state, job.rows_done, job.error = ExportState.RUNNING, 0, ""
        job.save(update_fields=["state", "rows_done", "error"])
    target = export_dir() / f"{job.pk}-{job.file_name}"
    try:
        export = EXPORTERS[job.kind](job.params)

        def progress(rows: int) -> None:
            ExportJob.objects.filter(pk=job.pk).update(rows_done=rows)

        counts = write_xlsx(str(target), export.sheets, progress=progress)
    except Exception as exc:  # noqa: BLE001 - recorded for the person waiting on it, then re-raised
        ExportJob.objects.filter(pk=job.pk).update(state=ExportState.FAILED, error=repr(exc)[:500],
                                                   finished_at=timezone.now())
        raise
    ExportJob.objects.filter(pk=job.pk).update(state=ExportState.DONE, rows_done=sum(counts.values()),
                                               finished_at=timezone.now())
    log.info("export_done", job_id=job.pk, kind=job.kind, rows=sum(counts.values()))
    return ExportJob.objects.get(pk=job.pk)


def export_file(job: ExportJob) -> FileResponse:
    path = export_dir() / f"{job.pk}-{job.file_name}"
    return FileResponse(path.open("rb"), as_attachment=True, filename=job.file_name, content_type=XLSX_CONTENT_TYPE)


# --- the platform's own export: the outbound call log -------------------------------------------
@register("outbound_calls")
def outbound_calls_export(params: dict) -> Export:
    """Outbound calls, newest first, optionally of one client name / connection / outcome."""
    from apps.core.models import OutboundCall
    from apps.core.xlsx import Column

    calls = OutboundCall.objects.order_by("-created_at", "-id")
    for name in ("name", "connection", "outcome"):
        if params.get(name):
            calls = calls.filter(**{name: params[name]})
    fields = ("created_at", "name", "connection", "method", "url", "status_code", "outcome", "attempt", "duration_ms",
              "error")
    columns = [Column("When (UTC)", "datetime", 18), Column("Client"), Column("Connection"), Column("Method", width=8),
               Column("URL", width=60), Column("Status", "int", 8), Column("Outcome"), Column("Attempt", "int", 8),
               Column("Duration (ms)", "int"), Column("Error", width=60)]
    rows = (row for row in calls.values_list(*fields).iterator(chunk_size=5000))
    return Export("outbound-calls.xlsx", [Sheet("Outbound calls", columns, rows)], rows=calls.count())
