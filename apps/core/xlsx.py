"""A streaming ``.xlsx`` writer: any number of rows in constant memory, number formats per column,
a frozen bold header, and native Excel charts. Every back-office export uses it.

Why not openpyxl's write-only mode or XlsxWriter's ``constant_memory``: both spend several µs per
cell in Python (measured on this 2-core box: ~35 s and ~21 s per 100,000 rows × 12 columns), which
puts a 1,000,000-row export far past a minute. Here a row is one string join of pre-built cell
templates, written straight into the zip member (deflate level 1), so memory holds one row at a time
and the cost is a fraction of a µs per cell (bench/xlsx_export.py, bench/README.md).

The package is the plain SpreadsheetML of ECMA-376: content types, workbook, one styles part with the
formats below, a worksheet per sheet (inline strings, so no shared-string table to hold in memory),
and for a chart a drawing part plus a chart part (``c:lineChart`` / ``c:barChart``) whose series are
ranges of a sheet. Sheets are written in order; a chart may reference any sheet (ranges are sized
from the row counts once every sheet is written).
"""
from __future__ import annotations

import datetime as dt
import math
import re
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, Any
from xml.sax.saxutils import escape

__all__ = ["Chart", "Column", "Sheet", "column_letter", "write_xlsx"]

#: column kind → (number format, style id in styles.xml below)
KINDS = {
    "text": ("General", 0),
    "int": ("#,##0", 2),
    "float": ("#,##0.000", 3),
    "money": ("#,##0.00", 4),
    "percent": ("0.00%", 5),
    "datetime": ("yyyy-mm-dd hh:mm", 6),
    "date": ("yyyy-mm-dd", 7),
}
HEADER_STYLE = 1
_EPOCH = dt.datetime(1899, 12, 30)
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
_NS_R = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_CT = "application/vnd.openxmlformats-officedocument"


@dataclass(frozen=True)
class Column:
    title: str
    kind: str = "text"
    width: float = 14.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"column kind must be one of {sorted(KINDS)}, got {self.kind!r}")


@dataclass(frozen=True)
class Chart:
    """A native chart placed on its sheet at ``anchor`` (a cell), plotting ``values`` columns of
    ``data_sheet`` against its ``categories`` column (0-based column indexes)."""

    title: str
    data_sheet: str
    categories: int
    values: Sequence[int]
    kind: str = "line"  # line | bar
    anchor: str = "E2"
    max_points: int = 10_000  # a chart of more points is unreadable: the first max_points rows

    def __post_init__(self):
        if self.kind not in ("line", "bar"):
            raise ValueError(f"chart kind must be line or bar, got {self.kind!r}")


@dataclass
class Sheet:
    name: str
    columns: Sequence[Column]
    rows: Iterable[Sequence[Any]]
    charts: Sequence[Chart] = field(default_factory=tuple)
    freeze_header: bool = True


def column_letter(index: int) -> str:
    """0 → A, 25 → Z, 26 → AA."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _text(value: Any) -> str:
    return escape(_ILLEGAL.sub("", str(value)))


def _cell_writer(letter: str, kind: str) -> Callable[[Any, int], str]:
    style = KINDS[kind][1]
    if kind == "text":
        def text(value, row):
            if value is None or value == "":
                return ""
            if isinstance(value, bool):
                return f'<c r="{letter}{row}" t="b"><v>{int(value)}</v></c>'
            if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
                return f'<c r="{letter}{row}"><v>{value}</v></c>'
            return f'<c r="{letter}{row}" t="inlineStr"><is><t xml:space="preserve">{_text(value)}</t></is></c>'
        return text
    if kind in ("datetime", "date"):
        def moment(value, row):
            if value is None:
                return ""
            if isinstance(value, dt.datetime):
                if value.tzinfo is not None:
                    value = value.astimezone(dt.UTC).replace(tzinfo=None)
                serial = (value - _EPOCH).total_seconds() / 86400
            elif isinstance(value, dt.date):
                serial = float((value - _EPOCH.date()).days)
            else:
                return f'<c r="{letter}{row}" t="inlineStr"><is><t>{_text(value)}</t></is></c>'
            return f'<c r="{letter}{row}" s="{style}"><v>{serial!r}</v></c>'
        return moment

    def number(value, row):
        if value is None:
            return ""
        if isinstance(value, float) and not math.isfinite(value):
            return ""
        if isinstance(value, str):
            return f'<c r="{letter}{row}" t="inlineStr"><is><t>{_text(value)}</t></is></c>'
        return f'<c r="{letter}{row}" s="{style}"><v>{value}</v></c>'
    return number


def _styles() -> str:
    custom = [(164 + i, code) for i, (code, _) in enumerate(v for k, v in KINDS.items() if k != "text")]
    num_fmts = "".join(f'<numFmt numFmtId="{i}" formatCode="{escape(code, {chr(34): "&quot;"})}"/>' for i, code in custom)
    xfs = ['<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>',
           '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>']
    xfs += [f'<xf numFmtId="{i}" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>' for i, _ in custom]
    return (f'{_XML}<styleSheet {_NS}><numFmts count="{len(custom)}">{num_fmts}</numFmts>'
            '<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
            '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
            '<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill></fills>'
            '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
            '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
            f'<cellXfs count="{len(xfs)}">{"".join(xfs)}</cellXfs>'
            '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>')


def _sheet_head(sheet: Sheet, *, selected: bool) -> str:
    pane = ('<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
            '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/>') if sheet.freeze_header else ""
    cols = "".join(f'<col min="{i + 1}" max="{i + 1}" width="{c.width:g}" customWidth="1"/>'
                   for i, c in enumerate(sheet.columns))
    header = "".join(f'<c r="{column_letter(i)}1" s="{HEADER_STYLE}" t="inlineStr"><is><t>{_text(c.title)}</t></is></c>'
                     for i, c in enumerate(sheet.columns))
    tab = ' tabSelected="1"' if selected else ""
    return (f'{_XML}<worksheet {_NS} {_NS_R}><sheetViews><sheetView{tab} workbookViewId="0">{pane}</sheetView>'
            f'</sheetViews><sheetFormatPr defaultRowHeight="15"/><cols>{cols}</cols><sheetData><row r="1">{header}</row>')


def _quote(name: str) -> str:
    return "'" + name.replace("'", "''") + "'"


def _chart_xml(chart: Chart, sheets: dict[str, Sheet], counts: dict[str, int], number: int) -> str:
    data = sheets[chart.data_sheet]
    last = 1 + min(counts[chart.data_sheet], chart.max_points)
    ref = _quote(chart.data_sheet)
    cat_col = column_letter(chart.categories)
    series = []
    for order, col in enumerate(chart.values):
        letter = column_letter(col)
        marker = '<c:marker><c:symbol val="none"/></c:marker>' if chart.kind == "line" else ""
        series.append(
            f'<c:ser><c:idx val="{order}"/><c:order val="{order}"/><c:tx><c:strRef><c:f>{escape(ref)}!${letter}$1</c:f>'
            f'<c:strCache><c:ptCount val="1"/><c:pt idx="0"><c:v>{_text(data.columns[col].title)}</c:v></c:pt>'
            f'</c:strCache></c:strRef></c:tx>{marker}<c:cat><c:numRef><c:f>{escape(ref)}!${cat_col}$2:${cat_col}${last}</c:f>'
            f'</c:numRef></c:cat><c:val><c:numRef><c:f>{escape(ref)}!${letter}$2:${letter}${last}</c:f></c:numRef></c:val></c:ser>')
    ax1, ax2 = 50_000_000 + 2 * number, 50_000_001 + 2 * number
    if chart.kind == "line":
        plot = f'<c:lineChart><c:grouping val="standard"/>{"".join(series)}<c:marker val="1"/>'
        close = "</c:lineChart>"
    else:
        plot = f'<c:barChart><c:barDir val="col"/><c:grouping val="clustered"/>{"".join(series)}'
        close = "</c:barChart>"
    cat_fmt = KINDS[data.columns[chart.categories].kind][0]
    return (
        f'{_XML}<c:chartSpace xmlns:c="http://schemas.openxmlformats.org/drawingml/2006/chart" '
        f'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" {_NS_R}><c:lang val="en-US"/><c:chart>'
        f'<c:title><c:tx><c:rich><a:bodyPr/><a:lstStyle/><a:p><a:pPr><a:defRPr/></a:pPr><a:r><a:rPr lang="en-US"/>'
        f'<a:t>{_text(chart.title)}</a:t></a:r></a:p></c:rich></c:tx><c:layout/></c:title><c:autoTitleDeleted val="0"/>'
        f'<c:plotArea><c:layout/>{plot}<c:axId val="{ax1}"/><c:axId val="{ax2}"/>{close}'
        f'<c:catAx><c:axId val="{ax1}"/><c:scaling><c:orientation val="minMax"/></c:scaling><c:delete val="0"/>'
        f'<c:axPos val="b"/><c:numFmt formatCode="{escape(cat_fmt)}" sourceLinked="0"/><c:tickLblPos val="nextTo"/>'
        f'<c:crossAx val="{ax2}"/><c:crosses val="autoZero"/><c:auto val="1"/><c:lblAlgn val="ctr"/>'
        f'<c:lblOffset val="100"/></c:catAx><c:valAx><c:axId val="{ax2}"/><c:scaling><c:orientation val="minMax"/>'
        f'</c:scaling><c:delete val="0"/><c:axPos val="l"/><c:majorGridlines/><c:numFmt formatCode="General" '
        f'sourceLinked="1"/><c:tickLblPos val="nextTo"/><c:crossAx val="{ax1}"/><c:crosses val="autoZero"/>'
        f'<c:crossBetween val="between"/></c:valAx></c:plotArea><c:legend><c:legendPos val="b"/><c:layout/>'
        f'</c:legend><c:plotVisOnly val="1"/></c:chart></c:chartSpace>')


def _anchor(cell: str) -> tuple[int, int]:
    match = re.fullmatch(r"([A-Z]+)([0-9]+)", cell)
    if match is None:
        raise ValueError(f"chart anchor must be a cell like E2, got {cell!r}")
    col = 0
    for char in match[1]:
        col = col * 26 + ord(char) - 64
    return col - 1, int(match[2]) - 1


def _drawing_xml(charts: Sequence[tuple[Chart, int]]) -> str:
    anchors = []
    for position, (chart, _number) in enumerate(charts):
        col, row = _anchor(chart.anchor)
        anchors.append(
            f'<xdr:twoCellAnchor><xdr:from><xdr:col>{col}</xdr:col><xdr:colOff>0</xdr:colOff><xdr:row>{row}</xdr:row>'
            f'<xdr:rowOff>0</xdr:rowOff></xdr:from><xdr:to><xdr:col>{col + 9}</xdr:col><xdr:colOff>0</xdr:colOff>'
            f'<xdr:row>{row + 18}</xdr:row><xdr:rowOff>0</xdr:rowOff></xdr:to><xdr:graphicFrame macro="">'
            f'<xdr:nvGraphicFramePr><xdr:cNvPr id="{position + 2}" name="Chart {position + 1}"/><xdr:cNvGraphicFramePr/>'
            f'</xdr:nvGraphicFramePr><xdr:xfrm><a:off x="0" y="0"/><a:ext cx="0" cy="0"/></xdr:xfrm><a:graphic>'
            f'<a:graphicData uri="http://schemas.openxmlformats.org/drawingml/2006/chart"><c:chart '
            f'xmlns:c="http://schemas.openxmlformats.org/drawingml/2006/chart" {_NS_R} r:id="rId{position + 1}"/>'
            f'</a:graphicData></a:graphic></xdr:graphicFrame><xdr:clientData/></xdr:twoCellAnchor>')
    return (f'{_XML}<xdr:wsDr xmlns:xdr="http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing" '
            f'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main">{"".join(anchors)}</xdr:wsDr>')


def _rels(targets: Sequence[tuple[str, str]]) -> str:
    items = "".join(f'<Relationship Id="rId{i + 1}" Type="{kind}" Target="{target}"/>'
                    for i, (kind, target) in enumerate(targets))
    return f'{_XML}<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{items}</Relationships>'


def write_xlsx(target: str | IO[bytes], sheets: Sequence[Sheet], *,
               progress: Callable[[int], None] | None = None, progress_every: int = 10_000) -> dict[str, int]:
    """Write ``sheets`` to ``target`` (a path or a binary file); returns the data rows per sheet.
    ``progress(rows_so_far)`` is called every ``progress_every`` rows (background exports)."""
    if not sheets:
        raise ValueError("a workbook needs at least one sheet")
    names = [s.name for s in sheets]
    if len(set(names)) != len(names) or any(len(n) > 31 or re.search(r"[\[\]:*?/\\]", n) for n in names):
        raise ValueError(f"sheet names must be unique, at most 31 characters, without []:*?/\\ : {names}")
    by_name = {s.name: s for s in sheets}
    for sheet in sheets:
        for chart in sheet.charts:
            if chart.data_sheet not in by_name:
                raise ValueError(f"chart {chart.title!r} plots unknown sheet {chart.data_sheet!r}")
    counts: dict[str, int] = {}
    done = 0
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for number, sheet in enumerate(sheets, 1):
            writers = [_cell_writer(column_letter(i), c.kind) for i, c in enumerate(sheet.columns)]
            width = len(writers)
            rows = 0
            with zf.open(f"xl/worksheets/sheet{number}.xml", "w", force_zip64=True) as member:
                member.write(_sheet_head(sheet, selected=number == 1).encode())
                chunk: list[str] = []
                for index, values in enumerate(sheet.rows, 2):
                    cells = "".join([writers[i](values[i], index) for i in range(min(width, len(values)))])
                    chunk.append(f'<row r="{index}">{cells}</row>')
                    rows += 1
                    if len(chunk) >= 2000:
                        member.write("".join(chunk).encode())
                        chunk.clear()
                        done += 2000
                        if progress is not None and done % progress_every < 2000:
                            progress(done)
                member.write("".join(chunk).encode())
                done += len(chunk)
                tail = '<drawing r:id="rId1"/>' if sheet.charts else ""
                member.write(f'</sheetData><pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" '
                             f'header="0.3" footer="0.3"/>{tail}</worksheet>'.encode())
            counts[sheet.name] = rows
        overrides = [("/xl/workbook.xml", f"{_CT}.spreadsheetml.sheet.main+xml"),
                     ("/xl/styles.xml", f"{_CT}.spreadsheetml.styles+xml")]
        chart_number = drawing_number = 0
        for number, sheet in enumerate(sheets, 1):
            overrides.append((f"/xl/worksheets/sheet{number}.xml", f"{_CT}.spreadsheetml.worksheet+xml"))
            if not sheet.charts:
                continue
            drawing_number += 1
            placed = []
            for chart in sheet.charts:
                chart_number += 1
                zf.writestr(f"xl/charts/chart{chart_number}.xml", _chart_xml(chart, by_name, counts, chart_number))
                overrides.append((f"/xl/charts/chart{chart_number}.xml", f"{_CT}.drawingml.chart+xml"))
                placed.append((chart, chart_number))
            zf.writestr(f"xl/drawings/drawing{drawing_number}.xml", _drawing_xml(placed))
            zf.writestr(f"xl/drawings/_rels/drawing{drawing_number}.xml.rels",
                        _rels([(f"{_REL}/chart", f"../charts/chart{n}.xml") for _, n in placed]))
            zf.writestr(f"xl/worksheets/_rels/sheet{number}.xml.rels",
                        _rels([(f"{_REL}/drawing", f"../drawings/drawing{drawing_number}.xml")]))
            overrides.append((f"/xl/drawings/drawing{drawing_number}.xml", f"{_CT}.drawing+xml"))
        zf.writestr("xl/styles.xml", _styles())
        sheet_entries = "".join(f'<sheet name="{_text(s.name)}" sheetId="{i}" r:id="rId{i}"/>'
                                for i, s in enumerate(sheets, 1))
        zf.writestr("xl/workbook.xml", f'{_XML}<workbook {_NS} {_NS_R}><bookViews><workbookView/></bookViews>'
                                       f'<sheets>{sheet_entries}</sheets></workbook>')
        zf.writestr("xl/_rels/workbook.xml.rels", _rels(
            [(f"{_REL}/worksheet", f"worksheets/sheet{i}.xml") for i in range(1, len(sheets) + 1)]
            + [(f"{_REL}/styles", "styles.xml")]))
        zf.writestr("_rels/.rels", _rels([(f"{_REL}/officeDocument", "xl/workbook.xml")]))
        types = "".join(f'<Override PartName="{part}" ContentType="{kind}"/>' for part, kind in overrides)
        zf.writestr("[Content_Types].xml", (
            f'{_XML}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            f'<Default Extension="xml" ContentType="application/xml"/>{types}</Types>'))
    if progress is not None:
        progress(done)
    return counts
